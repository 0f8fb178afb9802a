#!/usr/bin/python3
"""Jet-tagging scores in Python: the production job's HDF5 output, re-run through quiver.InferenceSession
and through quiver.Client against a local `quiver serve`, compared, and drawn per flavour.

    PYTHONPATH=build/python python3 examples/python/jet_tagging_scores.py            # runs the job first
    PYTHONPATH=build/python python3 examples/python/jet_tagging_scores.py --h5 jet_tags.h5

The production side is the event-framework example (examples/jet_tagging) run with
`-Pinference.keep_inputs=true`, which stores each jet's ParticleNet-AK4 inputs in the HDF5 file
(/inputs/*, row i = jet i of /jets/*) next to the scores it computed (/jets/prob_*).
Exits non-zero when the scores do not agree.
"""
import argparse
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import quiver  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAVOURS = ["prob_taup", "prob_taum", "prob_b", "prob_c", "prob_uds", "prob_g"]
LABELS = [r"$\tau^+$", r"$\tau^-$", "b", "c", "uds", "g"]
TRUTH = ["light", "gluon", "c", "b", "tau"]  # /jets/truth_flavour: the generator's jet flavour
INPUTS = ["pf_points", "pf_features", "pf_mask", "sv_points", "sv_features", "sv_mask"]


def run_production(quiver_bin, out_dir, nevents):
    """The C++ job: generator -> FastJet -> ParticleNet (direct mode) -> HDF5 with the inputs kept."""
    h5 = out_dir / "jet_tags.h5"
    subprocess.run([str(quiver_bin), "run", str(ROOT / "examples/jet_tagging/config.toml"),
                    f"-Pnevents={nevents}", "-Pinference.mode=direct", "-Pinference.keep_inputs=true",
                    f"-Pwriter.hdf5={h5}", f"-Pwriter.csv={out_dir / 'jet_tags.csv'}"], check=True,
                   stdout=subprocess.DEVNULL)
    return h5


def read_h5(path):
    with h5py.File(path, "r") as f:
        if "inputs" not in f:
            sys.exit(f"{path} has no /inputs: run the job with -Pinference.keep_inputs=true")
        inputs = {name: f["inputs"][name][()] for name in INPUTS}
        scores = np.stack([f["jets"][k][()] for k in FLAVOURS + ["target_pt"]], axis=1)
        truth = f["jets"]["truth_flavour"][()]
        sha = {s.decode() for s in f["jets"]["model_sha256"][()]}
        modes = {s.decode() for s in f["jets"]["inference_mode"][()]}
    return inputs, scores, truth, sha, modes


class LocalServer:
    """`quiver serve` on a free loopback port with a one-model repository."""

    def __init__(self, quiver_bin, model, workdir):
        repo = workdir / "repository"
        (repo / "particlenet_ak4_hlt" / "1").mkdir(parents=True)
        shutil.copy(model, repo / "particlenet_ak4_hlt" / "1" / "model.onnx")
        (repo / "particlenet_ak4_hlt" / "config.pbtxt").write_text(
            'name: "particlenet_ak4_hlt"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 256\n')
        self.proc = subprocess.Popen([str(quiver_bin), "serve", "--model-repository", str(repo), "--grpc-port", "0",
                                      "--http-port", "-1", "--metrics-port", "-1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, deadline = b"", time.monotonic() + 60
        while b"\n" not in out.partition(b"quiver serve ready grpc=")[2]:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                sys.exit("quiver serve did not start: " + out.decode(errors="replace"))
            if select.select([self.proc.stdout], [], [], 1.0)[0]:
                out += os.read(self.proc.stdout.fileno(), 4096)
        self.address = out.partition(b"quiver serve ready grpc=")[2].split()[0].decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def batches(inputs, size):
    n = len(inputs["pf_points"])
    for start in range(0, n, size):
        yield {k: v[start:start + size] for k, v in inputs.items()}


def roc(scores, signal, background):
    """Signal efficiency and background mistag rate of a cut on `scores`."""
    cuts = np.unique(scores)[::-1]
    s, b = scores[signal], scores[background]
    return np.array([(s >= c).mean() for c in cuts]), np.array([(b >= c).mean() for c in cuts])


def draw(path, production, session, remote, truth, summary):
    fig, axes = plt.subplots(2, 4, figsize=(17, 8))
    bins = np.linspace(0, 1, 26)
    for k, ax in enumerate(axes.ravel()[:6]):
        for f, name in enumerate(TRUTH):
            sel = truth == f
            if sel.any():
                ax.hist(session[sel, k], bins=bins, histtype="step", lw=1.6, density=True, label=f"{name} jets ({sel.sum()})")
        ax.set_yscale("log")
        ax.set_xlabel(f"ParticleNet-AK4 score {LABELS[k]}")
        ax.set_ylabel("jets (normalised)")
    axes[0, 0].legend(fontsize=8, title="generator flavour", title_fontsize=8)
    # b tagging: b jets against light + gluon jets, from each of the three sources
    ax = axes[1, 2]
    b, light = truth == 3, (truth == 0) | (truth == 1)
    for scores, style, label in ((production, "-", "production (HDF5)"), (session, "--", "InferenceSession"),
                                 (remote, ":", "Client → quiver serve")):
        eff, mistag = roc(scores[:, 2], b, light)
        ax.plot(eff, np.maximum(mistag, 1e-4), style, lw=2, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("b-jet efficiency")
    ax.set_ylabel("light/gluon mistag rate")
    ax.legend(fontsize=8)
    ax = axes[1, 3]
    ax.axis("off")
    ax.text(0, 1, summary, va="top", family="monospace", fontsize=8.5, wrap=True)
    fig.suptitle(f"ParticleNet-AK4 scores per generator flavour, {len(production)} jets")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--h5", help="the job's HDF5 output (default: run the job now)")
    ap.add_argument("--nevents", type=int, default=1000, help="events for the job when --h5 is not given")
    ap.add_argument("--quiver", default=str(ROOT / "build/src/cli/quiver"), help="the quiver program")
    ap.add_argument("--model", default=str(ROOT.parent / "shared/models/hep/particlenet_ak4_hlt/model.onnx"))
    ap.add_argument("--png", default="jet_tag_scores.png")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="quiver_example_") as tmp:
        tmp = pathlib.Path(tmp)
        h5 = pathlib.Path(a.h5) if a.h5 else run_production(a.quiver, tmp, a.nevents)
        inputs, production, truth, sha, modes = read_h5(h5)
        n = len(production)
        print(f"{h5}: {n} jets, inference mode {', '.join(sorted(modes))}, model sha256 {', '.join(sorted(sha))[:16]}...")

        # 1. In process, ONNX Runtime's call shape.
        sess = quiver.InferenceSession(a.model, providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta()
        print(f"InferenceSession: {meta.name} ({meta.backend}, {meta.device}), sha256 {meta.sha256[:16]}..., "
              f"inputs {[(i.name, i.shape) for i in sess.get_inputs()][:2]} ...")
        session = np.concatenate([sess.run(None, b)[0] for b in batches(inputs, 256)])
        # The production job ran one jet per call (direct mode): the same calls here give the same bits.
        per_jet = np.concatenate([sess.run(None, b)[0] for b in batches(inputs, 1)])

        # 2. Through the client and a local server (requests of 64 jets in flight at once).
        server = LocalServer(a.quiver, a.model, tmp)
        try:
            with quiver.Client(f"grpc://{server.address}", timeout=60.0) as client:
                client.model_metadata("particlenet_ak4_hlt")  # results then carry the model's checksum
                futures = [client.infer_async("particlenet_ak4_hlt", b) for b in batches(inputs, 64)]
                results = [f.result() for f in futures]
        finally:
            server.stop()
        remote = np.concatenate([r["output"] for r in results])
        prov = results[0].provenance

        d_batched = float(np.max(np.abs(session - production)))
        d_remote = float(np.max(np.abs(remote - session)))
        bitwise = bool(np.array_equal(per_jet, production))
        print(f"Client: {len(results)} requests answered by {prov.server} (model {prov.model} version {prov.version}, "
              f"sha256 {prov.sha256[:16]}..., fallback {prov.fallback})")
        print(f"max |score difference|: session (256 jets per call) vs production {d_batched:.2g}; "
              f"session one jet per call vs production: {'bitwise identical' if bitwise else 'DIFFERENT'}; "
              f"client vs session {d_remote:.2g}")
        summary = (f"max |score difference|\n"
                   f"  session, 1 jet/call vs production:\n    {'0 (bitwise identical)' if bitwise else 'DIFFERENT'}\n"
                   f"  session, 256 jets/call vs production:\n    {d_batched:.2g}\n"
                   f"  client vs session: {d_remote:.2g}\n\n"
                   f"model sha256\n  {meta.sha256[:32]}\n  {meta.sha256[32:]}\n"
                   f"  production: {'same' if sha == {meta.sha256} else 'DIFFERENT'}\n"
                   f"  server ({prov.server}): {'same' if prov.sha256 == meta.sha256 else 'DIFFERENT'}")
        draw(a.png, production, session, remote, truth, summary)
        print(f"wrote {a.png}")

        ok = bitwise and d_batched < 1e-5 and d_remote < 1e-5 and sha == {meta.sha256} and prov.sha256 == meta.sha256
        if not ok:
            print("FAIL: the scores or checksums disagree")
            return 1
        print("PASS: production, InferenceSession and Client agree")
        return 0


if __name__ == "__main__":
    sys.exit(main())
