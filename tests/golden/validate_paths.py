"""`quiver validate MODEL` runs every path this machine has (issue #15) and each one is checked.

1. Every expected path is in the table (local ISAs, batches, threads, default mode, the GPU emulator,
   a local `quiver serve` over gRPC and HTTP, the client's fallback) for every data set and output,
   and passes; the reproducible ones bitwise. The server it spawned is gone and its temporary
   repository removed when validate returns.
2. With a data set whose outputs belong to other inputs (when the model has a second data set),
   every one of those paths fails and validate exits non-zero: a wrong path cannot pass.
Usage: validate_paths.py QUIVER MODEL
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

quiver, model = sys.argv[1], sys.argv[2]
EXPECTED = ["reproducible batch=1 (each row)", "reproducible threads=2", "default", "default batch=1 (each row)",
            "serve gRPC reproducible", "serve HTTP reproducible", "serve gRPC default", "serve HTTP default",
            "client fallback reproducible", "client fallback default"]
failures = []


def run(extra, tmp):
    env = dict(os.environ, TMPDIR=tmp)
    r = subprocess.run([quiver, "validate", model, "--json"] + extra, capture_output=True, text=True, timeout=900, env=env)
    try:
        return r.returncode, json.loads(r.stdout.strip().splitlines()[-1]), r
    except (ValueError, IndexError):
        sys.exit(f"validate printed no JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}")


def leftovers(tmp):
    """Processes whose command line names `tmp` (the spawned server's repository) and files left in it."""
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if tmp.encode() in f.read():
                    procs.append(pid)
        except OSError:
            pass
    return procs, os.listdir(tmp)


tmp = tempfile.mkdtemp(prefix="quiver-validate-test-")
try:
    rc, out, raw = run([], tmp)
    rows = out["rows"]
    names = {r["path"] for r in rows}
    for p in EXPECTED:
        if p not in names:
            failures.append(f"path '{p}' is missing from the table (notes: {out['notes']})")
    if model.endswith(".onnx") and not any(n.startswith("gpu-emulator") for n in names):
        failures.append(f"no gpu-emulator path (notes: {out['notes']})")
    per_path = {}
    for r in rows:
        per_path.setdefault(r["path"], []).append(r)
        if not r["pass"]:
            failures.append(f"{r['path']} / {r['data_set']} / {r['output']} fails: {r}")
        if r["path"] in EXPECTED and "reproducible" in r["path"] and not r["bitwise"]:
            failures.append(f"{r['path']} / {r['output']}: not bitwise equal to the reproducible result")
    n = len(out["rows"]) // max(1, len(per_path))
    for p, rs in per_path.items():
        if len(rs) != n:
            failures.append(f"{p}: {len(rs)} rows, other paths {n}")
    if rc != 0 or not out["pass"]:
        failures.append(f"validate exited {rc}, pass={out['pass']}")
    procs, files = leftovers(tmp)
    if procs or files:
        failures.append(f"after validate: processes {procs} still use {tmp}, files left {files}")
    print(f"{len(per_path)} paths x {n} rows each; notes: {out['notes']}")

    # Outputs of data set 1 given for the inputs of data set 0: every path must fail.
    d = os.path.dirname(os.path.abspath(model))
    s0, s1 = os.path.join(d, "test_data_set_0"), os.path.join(d, "test_data_set_1")
    if os.path.isdir(s1):
        mixed = os.path.join(tmp, "mixed")
        os.mkdir(mixed)
        for f in os.listdir(s0):
            src = os.path.join(s0 if f.startswith("input") else s1, f)
            shutil.copy(src, mixed)
        rc2, out2, _ = run(["--test-data", mixed], tmp)
        shutil.rmtree(mixed)
        failed = {r["path"] for r in out2["rows"] if not r["pass"]}
        for p in EXPECTED:
            if p not in failed:
                failures.append(f"path '{p}' passed against another data set's outputs")
        if rc2 == 0 or out2["pass"]:
            failures.append("validate exited 0 with outputs of another data set")
        print(f"mixed data set: {len(failed)} paths fail as they must, exit {rc2}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
