"""Every HEP model's reference data sets, and the ONNX node conformance cases of HEP_CORE_CASES.txt,
through quiver.InferenceSession: the numbers analysts get in Python are the engine's, within the
same tolerance as the C++ conformance tests (|actual - expected| <= 1e-5 + 1e-4 |expected|)."""
import numpy as np
import pytest

import quiver
from conftest import HEP, HEP_MODELS, SHARED, numbered, read_tensor


def run_data_set(sess, directory):
    names = [i.name for i in sess.get_inputs()]
    feed = {}
    for k, f in enumerate(numbered(directory, "input")):
        name, a = read_tensor(f)
        feed[name or names[k]] = a
    outs = sess.run(None, feed)
    want = [read_tensor(f) for f in numbered(directory, "output")]
    assert len(outs) == len(want)
    return outs, want


def test_all_twelve_models_are_here():
    assert len(HEP_MODELS) == 12, HEP_MODELS


@pytest.mark.parametrize("model", HEP_MODELS)
def test_hep_model_reproduces_its_references(model):
    sess = quiver.InferenceSession(HEP / model / "model.onnx")
    for data_set in ("test_data_set_0", "test_data_set_1"):
        outs, want = run_data_set(sess, HEP / model / data_set)
        for got, (name, exp), info in zip(outs, want, sess.get_outputs()):
            assert name == info.name
            assert got.dtype == exp.dtype and got.shape == exp.shape, (model, data_set, name)
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5, err_msg=f"{model} {data_set} {name}")


def hep_core_cases():
    listing = SHARED / "conformance" / "onnx-node" / "HEP_CORE_CASES.txt"
    return [line.split()[0] for line in listing.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_hep_core_node_cases():
    """The 404 operator cases the C++ `onnx-test` passes, through Python (every dtype they use)."""
    cases = hep_core_cases()
    assert len(cases) > 300
    failures = []
    for case in cases:
        d = SHARED / "conformance" / "onnx-node" / "node" / case
        try:
            sess = quiver.InferenceSession(d / "model.onnx")
            outs, want = run_data_set(sess, d / "test_data_set_0")
            for got, (name, exp) in zip(outs, want):
                if got.shape != exp.shape or got.dtype != exp.dtype:
                    failures.append(f"{case} {name}: {got.dtype}{got.shape} vs {exp.dtype}{exp.shape}")
                elif exp.dtype == object:
                    if [x if isinstance(x, bytes) else x.encode() for x in got.ravel()] != list(exp.ravel()):
                        failures.append(f"{case} {name}: strings differ")
                elif not np.allclose(got, exp, rtol=1e-3, atol=1e-7, equal_nan=True):
                    failures.append(f"{case} {name}: max |diff| {np.max(np.abs(got.astype(np.float64) - exp)):.3g}")
        except quiver.Error as e:
            failures.append(f"{case}: {e}")
    assert not failures, "\n".join(failures)
