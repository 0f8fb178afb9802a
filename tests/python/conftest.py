"""Shared fixtures of the Python tests (run by CTest: tests/python/CMakeLists.txt sets the paths)."""
import ctypes
import os
import pathlib
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import onnx
import onnx.numpy_helper
import pytest

SHARED = pathlib.Path(os.environ.get("QUIVER_SHARED_DIR", pathlib.Path(__file__).resolve().parents[3] / "shared"))
BINARY_DIR = pathlib.Path(os.environ.get("QUIVER_BINARY_DIR", pathlib.Path(__file__).resolve().parents[2] / "build"))
QUIVER = BINARY_DIR / "src" / "cli" / "quiver"
HEP = SHARED / "models" / "hep"
FOREST = SHARED / "models" / "forest"
HEP_MODELS = sorted(p.name for p in HEP.iterdir() if (p / "model.onnx").exists()) if HEP.exists() else []


def read_tensor(path):
    """(name, numpy array) of an ONNX TensorProto file, read with the onnx package (not Quiver)."""
    t = onnx.TensorProto()
    t.ParseFromString(pathlib.Path(path).read_bytes())
    return t.name, onnx.numpy_helper.to_array(t)


def numbered(directory, prefix):
    files = list(pathlib.Path(directory).glob(prefix + "_*.pb"))
    return sorted(files, key=lambda p: int(p.stem.split("_")[-1]))


def _die_with_parent():
    # The server never outlives the test run (PR_SET_PDEATHSIG = 1).
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)


class Server:
    """A real `quiver serve` on a free loopback port (port 0: the server picks and reports it)."""

    def __init__(self, repository, extra=()):
        self.repository = str(repository)
        self.extra = list(extra)
        self.port = 0
        self.proc = None
        self.start()

    def start(self, timeout=30.0):
        args = [str(QUIVER), "serve", "--model-repository", self.repository, "--grpc-port", str(self.port),
                "--http-port", "-1", "--metrics-port", "-1", *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                     preexec_fn=_die_with_parent)
        out = b""
        deadline = time.monotonic() + timeout
        while b"quiver serve ready grpc=" not in out or not out.split(b"quiver serve ready grpc=")[1].count(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError("quiver serve did not become ready: " + out.decode(errors="replace"))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                out += chunk
        self.address = out.split(b"quiver serve ready grpc=")[1].split()[0].decode()
        self.port = int(self.address.rsplit(":", 1)[1])
        # Keep reading so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()

    @staticmethod
    def _drain(stream):
        while stream.read(4096):
            pass

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.kill()
        self.start()


@pytest.fixture(scope="session")
def repository():
    """A model repository: ParticleNet-AK4 and the hls4ml MLP (ONNX), an XGBoost forest, identity models."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="quiver_pytest_repo_"))
    try:
        for name in ("particlenet_ak4_hlt", "hls4ml_three_layer"):
            (d / name / "1").mkdir(parents=True)
            shutil.copy(HEP / name / "model.onnx", d / name / "1" / "model.onnx")
            batch = "max_batch_size: 0\n" if name == "hls4ml_three_layer" else "max_batch_size: 256\n"
            (d / name / "config.pbtxt").write_text(f'name: "{name}"\nplatform: "onnxruntime_onnx"\n{batch}')
        (d / "forest" / "1").mkdir(parents=True)
        shutil.copy(FOREST / "xgboost" / "xgb17" / "BinaryLogisticAudit17.json", d / "forest" / "1" / "xgboost.json")
        (d / "forest" / "config.pbtxt").write_text('name: "forest"\nbackend: "fil"\nmax_batch_size: 1024\n'
                                                   'parameters { key: "model_type" value: { string_value: "xgboost_json" } }\n')
        for name, delay in (("identity", 0), ("slow", 300)):
            (d / name / "1").mkdir(parents=True)
            extra = f'parameters {{ key: "execute_delay_ms" value: {{ string_value: "{delay}" }} }}\n' if delay else ""
            (d / name / "config.pbtxt").write_text(
                f'name: "{name}"\nbackend: "identity"\nmax_batch_size: 64\n'
                'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n' + extra)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(repository):
    s = Server(repository)
    yield s
    s.kill()


def particlenet_inputs(n_jets=4, seed=0):
    """Inputs of ParticleNet-AK4 from its own test data set, tiled to n_jets jets."""
    d = HEP / "particlenet_ak4_hlt" / "test_data_set_0"
    feed = {}
    for f in numbered(d, "input"):
        name, a = read_tensor(f)
        reps = -(-n_jets // a.shape[0])
        feed[name] = np.ascontiguousarray(np.concatenate([a] * reps)[:n_jets])
    return feed
