"""`cmake --install` puts the package where the interpreter finds it, with the libraries it needs."""
import os
import subprocess
import sys

from conftest import BINARY_DIR, HEP


def test_install_into_a_prefix(tmp_path):
    cmake = os.environ.get("QUIVER_CMAKE", "cmake")
    prefix = tmp_path / "prefix"
    where = os.environ["QUIVER_PYTHON_INSTALL_DIR"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "DESTDIR")}
    install_env = dict(env)
    if os.path.isabs(where):
        # an interpreter whose site-packages is outside the prefix: staged under DESTDIR, not installed
        install_env["DESTDIR"] = str(tmp_path / "stage")
        site = tmp_path / "stage" / where.lstrip("/")
        env["LD_LIBRARY_PATH"] = str(tmp_path / "stage" / str(prefix).lstrip("/") / "lib")
    else:
        site = prefix / where
    subprocess.run([cmake, "--install", str(BINARY_DIR), "--prefix", str(prefix)], check=True,
                   stdout=subprocess.DEVNULL, env=install_env)
    assert (site / "quiver" / "__init__.pyi").exists() and (site / "quiver" / "py.typed").exists()
    env["PYTHONPATH"] = str(site)
    code = ("import quiver, numpy as np; print(quiver.__file__);"
            f"s = quiver.InferenceSession({str(HEP / 'hls4ml_three_layer' / 'model.onnx')!r});"
            "print(s.run(None, {'input_1_0': np.zeros((1, 16), np.float32)})[0].shape)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
                         cwd=tmp_path).stdout.split("\n")
    assert out[0].startswith(str(site)), out  # the installed copy, not the build tree's
    assert out[1] == "(1, 5)"
