"""A golden file with one output value moved must fail `quiver validate --against`, naming the output.

Usage: perturbed_golden.py QUIVER MODEL GOLDEN
"""
import json
import subprocess
import sys
import tempfile

quiver, model, golden = sys.argv[1:4]
g = json.load(open(golden))
out = g["data_sets"][0]["outputs"][0]
out["float_bits"][0] += 1  # one ulp
out["sha256"] = "0" * 64
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(g, f)
    path = f.name
r = subprocess.run([quiver, "validate", model, "--against", path], capture_output=True, text=True)
print(r.stdout, r.stderr)
want = "output '%s' moved: max abs diff" % out["name"]
if r.returncode != 1 or want not in r.stdout or "max 1 ulp" not in r.stdout:
    print("expected exit 1 and '%s ... max 1 ulp', got exit %d" % (want, r.returncode))
    sys.exit(1)
# The unmodified golden file passes.
r = subprocess.run([quiver, "validate", model, "--against", golden], capture_output=True, text=True)
if r.returncode != 0 or "bitwise identical" not in r.stdout:
    print("the unmodified golden file did not pass:", r.stdout, r.stderr)
    sys.exit(1)
print("ok")
