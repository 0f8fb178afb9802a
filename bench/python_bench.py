#!/usr/bin/python3
"""The Python package's speed against its peers, in one run, warm on both sides, alternating rounds.

  PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py [--quick] [--rounds N]

1. Python overhead per call: InferenceSession.run on the hls4ml MLP (batch 1) against the C++
   quiver::Session::run on the same loaded model and inputs (quiver._quiver._bench_cpp_session_run:
   a C++ loop in this process, outputs reused as a C++ caller reuses them).
2. Tree ensembles against Debian's python3-xgboost (Booster.inplace_predict), same model file and
   float32 rows: one row per call (the per-event case) and one call on 100k rows. Models: a 1000-tree
   depth-6 binary:logistic model trained here by xgboost from seeded random data, and the shared
   xgb17 models. XGBoost runs with nthread=1 (Quiver evaluates one call on one thread); the 100k-row
   case is also run on all cores: XGBoost nthread=2 against the rows split over 2 Python threads
   sharing one session (the GIL is released while a call runs).
Each figure is the median over rounds of the per-call time; the spread is min..max over rounds.
"""
import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import xgboost as xgb

import quiver

SHARED = pathlib.Path(os.environ.get("QUIVER_SHARED_DIR", pathlib.Path(__file__).resolve().parents[2] / "shared"))


def per_call(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def rounds_of(fns, rounds):
    """Alternates the functions (each returns seconds per call) for `rounds` rounds."""
    out = [[] for _ in fns]
    for _ in range(rounds):
        for i, f in enumerate(fns):
            out[i].append(f())
    return out


def med(xs):
    return statistics.median(xs)


def spread(xs, scale=1e6, fmt="{:.2f}"):
    return f"{fmt.format(min(xs) * scale)}..{fmt.format(max(xs) * scale)}"


def overhead(rounds, n):
    sess = quiver.InferenceSession(SHARED / "models/hep/hls4ml_three_layer/model.onnx")
    feed = {"input_1_0": np.random.default_rng(0).random((1, 16), dtype=np.float32)}
    run = sess.run
    per_call(lambda: run(None, feed), n)  # warm
    quiver._quiver._bench_cpp_session_run(sess, feed, n)
    py, cpp = rounds_of([lambda: per_call(lambda: run(None, feed), n),
                         lambda: quiver._quiver._bench_cpp_session_run(sess, feed, n)], rounds)
    diff = [p - c for p, c in zip(py, cpp)]
    print("\n### Python overhead per call (hls4ml MLP, batch 1)\n")
    print("| path | µs per call (median) | spread (min..max over rounds) |")
    print("|---|---|---|")
    print(f"| `InferenceSession.run` (Python) | {med(py) * 1e6:.2f} | {spread(py)} |")
    print(f"| `quiver::Session::run` (C++, same process, same model) | {med(cpp) * 1e6:.2f} | {spread(cpp)} |")
    print(f"| **Python overhead** (per-round difference) | **{med(diff) * 1e6:.2f}** | {spread(diff)} |")
    return med(diff)


def train_big_model(path):
    rng = np.random.default_rng(42)
    x = rng.normal(size=(20000, 20)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1] + np.sin(x[:, 2]) + 0.5 * x[:, 3] ** 2 + rng.normal(scale=0.5, size=len(x))) > 0.5)
    d = xgb.DMatrix(x, label=y.astype(np.float32))
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "tree_method": "hist",
                     "seed": 42, "nthread": os.cpu_count()}, d, num_boost_round=1000)
    bst.save_model(str(path))


def forest_case(name, path, nf, rounds, n_row, n_rows):
    bst = xgb.Booster(model_file=str(path))
    bst.set_param({"nthread": 1})
    sess = quiver.InferenceSession(path)
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(n_rows, nf)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.05] = np.nan
    singles = [np.ascontiguousarray(rows[i:i + 1]) for i in range(256)]
    # same numbers first
    want = bst.inplace_predict(rows[:2000])
    got = sess.run(["prediction"], {"input": rows[:2000]})[0].reshape(want.shape)
    maxdiff = float(np.max(np.abs(got - want)))
    run = sess.run
    idx = [0]

    def q_row():
        r = singles[idx[0] & 255]
        idx[0] += 1
        return run(["prediction"], {"input": r})

    def x_row():
        r = singles[idx[0] & 255]
        idx[0] += 1
        return bst.inplace_predict(r)

    per_call(q_row, n_row), per_call(x_row, n_row)  # warm
    qr, xr = rounds_of([lambda: per_call(q_row, n_row), lambda: per_call(x_row, n_row)], rounds)
    nb = 3
    per_call(lambda: run(["prediction"], {"input": rows}), 1), per_call(lambda: bst.inplace_predict(rows), 1)
    qb, xb = rounds_of([lambda: per_call(lambda: run(["prediction"], {"input": rows}), nb),
                        lambda: per_call(lambda: bst.inplace_predict(rows), nb)], rounds)
    # all cores: 2 Python threads sharing the session vs XGBoost's own threads
    cores = os.cpu_count() or 2
    halves = np.array_split(rows, cores)
    pool = ThreadPoolExecutor(max_workers=cores)

    def q_all():
        return list(pool.map(lambda h: run(["prediction"], {"input": h}), halves))

    bst_all = xgb.Booster(model_file=str(path))
    bst_all.set_param({"nthread": cores})
    per_call(q_all, 1), per_call(lambda: bst_all.inplace_predict(rows), 1)
    qa, xa = rounds_of([lambda: per_call(q_all, nb), lambda: per_call(lambda: bst_all.inplace_predict(rows), nb)], rounds)
    pool.shutdown()
    row_ratio = [x / q for x, q in zip(xr, qr)]
    batch_ratio = [x / q for x, q in zip(xb, qb)]
    all_ratio = [x / q for x, q in zip(xa, qa)]
    print(f"| {name} | {med(qr) * 1e6:.2f} ({spread(qr)}) | {med(xr) * 1e6:.2f} ({spread(xr)}) | "
          f"**{med(row_ratio):.1f}×** | {med(qb) * 1e3:.2f} ({spread(qb, 1e3)}) | {med(xb) * 1e3:.2f} ({spread(xb, 1e3)}) | "
          f"**{med(batch_ratio):.2f}×** | {med(qa) * 1e3:.2f} / {med(xa) * 1e3:.2f} = **{med(all_ratio):.2f}×** | {maxdiff:.1e} |",
          flush=True)
    return med(row_ratio), med(batch_ratio), med(all_ratio)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    rounds = 3 if a.quick else a.rounds
    n_over = 20000 if a.quick else 100000
    n_row = 2000 if a.quick else 10000
    n_rows = 100000
    print(f"quiver {quiver.__version__} ({quiver.__file__}), xgboost {xgb.__version__}, numpy {np.__version__}, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, {rounds} alternating rounds")
    ov = overhead(rounds, n_over)
    print("\n### Tree ensembles vs python3-xgboost `Booster.inplace_predict` (XGBoost / Quiver: > 1 = Quiver faster)\n")
    print("| model | Quiver 1 row/call µs | XGBoost 1 row/call µs | ratio | Quiver 100k rows ms | XGBoost 100k rows ms "
          "| ratio | all cores 100k: Quiver (2 Python threads) / XGBoost (nthread 2) ms | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        big = pathlib.Path(tmp) / "big_1000x6.json"
        train_big_model(big)
        results["1000 trees depth 6 (20 features)"] = forest_case("1000 trees, depth 6, 20 features (trained here)", big, 20,
                                                                  rounds, n_row // 4, n_rows)
    for name, nf in (("BinaryLogisticAudit17", 4), ("RegressionAutoNA17", 7), ("PoissonVisitNA17", 8),
                     ("SoftmaxIrisNA17", 4)):
        path = SHARED / "models/forest/xgboost/xgb17" / f"{name}.json"
        results[name] = forest_case(f"xgb17/{name}", path, nf, rounds, n_row, n_rows)
    print(f"\nPython overhead {ov * 1e6:.2f} µs (target <= 3 µs); per-row ratios "
          + ", ".join(f"{r[0]:.1f}x" for r in results.values()) + " (target >= 4x); 100k-row ratios "
          + ", ".join(f"{r[1]:.2f}x" for r in results.values()) + " (target >= 1.0x)")


if __name__ == "__main__":
    main()
