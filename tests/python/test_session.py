"""quiver.InferenceSession has ONNX Runtime's call shape: run(), get_inputs/outputs, metadata, errors."""
import gc
import hashlib
import warnings

import numpy as np
import onnx
import pytest

import quiver
from conftest import HEP, FOREST, SHARED, numbered, read_tensor

MLP = HEP / "hls4ml_three_layer" / "model.onnx"
PNET = HEP / "particlenet_ak4_hlt" / "model.onnx"
FOREST_JSON = FOREST / "xgboost" / "xgb17" / "BinaryLogisticAudit17.json"


@pytest.fixture(scope="module")
def mlp():
    return quiver.InferenceSession(str(MLP))


@pytest.fixture(scope="module")
def pnet():
    return quiver.InferenceSession(PNET, providers=["CPUExecutionProvider"])


def x16(rows=1, seed=0):
    return np.random.default_rng(seed).random((rows, 16), dtype=np.float32)


# ---- the call shape
def test_run_none_returns_every_output_in_order(pnet):
    feed = {name: a for name, a in (read_tensor(f) for f in numbered(HEP / "particlenet_ak4_hlt" / "test_data_set_0", "input"))}
    out = pnet.run(None, feed)
    assert isinstance(out, list) and len(out) == len(pnet.get_outputs()) == 1
    assert out[0].shape == (3, 7) and out[0].dtype == np.float32


def test_named_outputs_in_the_order_asked():
    s = quiver.InferenceSession(FOREST_JSON)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    pred, margin = s.run(None, {"input": x})
    m2, p2 = s.run(["margin", "prediction"], {"input": x})
    assert np.array_equal(m2, margin) and np.array_equal(p2, pred)
    (only,) = s.run(["prediction"], {"input": x})
    assert np.array_equal(only, pred)
    with pytest.raises(quiver.InvalidArgument, match="unknown output 'nope'") as e:
        s.run(["nope"], {"input": x})
    assert e.value.tensor == "nope"


def test_inputs_and_outputs_describe_the_model(pnet, mlp):
    ins = pnet.get_inputs()
    assert [i.name for i in ins] == ["pf_points", "pf_features", "pf_mask", "sv_points", "sv_features", "sv_mask"]
    assert ins[0].shape == ["N", 2, "n_pf"]  # symbolic dims as strings, like ONNX Runtime
    assert ins[0].type == "tensor(float)"
    assert pnet.get_outputs()[0].shape == ["N", 7]
    assert mlp.get_inputs()[0].shape == [1, 16]
    assert "NodeArg(name='pf_points', type='tensor(float)', shape=['N', 2, 'n_pf'])" == repr(ins[0])
    forest = quiver.InferenceSession(FOREST_JSON)
    assert forest.get_inputs()[0].shape == ["batch", 4]
    assert [o.name for o in forest.get_outputs()] == ["prediction", "margin"]


def test_model_metadata_and_provenance(pnet):
    md = pnet.get_modelmeta()
    proto = onnx.load(str(PNET), load_external_data=False)
    assert md.producer_name == proto.producer_name
    assert md.graph_name == proto.graph.name
    assert md.domain == proto.domain
    assert md.version == proto.model_version
    assert md.description == proto.doc_string
    assert md.custom_metadata_map == {p.key: p.value for p in proto.metadata_props}
    assert md.sha256 == hashlib.sha256(PNET.read_bytes()).hexdigest()
    assert md.backend == "onnx" and md.format == "onnx" and md.device == "cpu"
    assert md.path == str(PNET) and md.name == "particlenet_ak4_hlt" and md.model_version == ""
    f = quiver.InferenceSession(FOREST_JSON).get_modelmeta()
    assert f.backend == "forest" and f.format == "xgboost-json"
    assert f.sha256 == hashlib.sha256(FOREST_JSON.read_bytes()).hexdigest()


def test_model_from_bytes():
    data = MLP.read_bytes()
    s = quiver.InferenceSession(data)
    assert s.get_modelmeta().sha256 == hashlib.sha256(data).hexdigest()
    assert s.get_modelmeta().producer_name == onnx.load_model_from_string(data).producer_name
    x = x16()
    assert np.array_equal(s.run(None, {"input_1_0": x})[0], quiver.InferenceSession(MLP).run(None, {"input_1_0": x})[0])


# ---- what a feed may contain
def test_wrong_dtype_is_refused_naming_the_input(mlp):
    with pytest.raises(quiver.InvalidArgument) as e:
        mlp.run(None, {"input_1_0": x16().astype(np.float64)})
    assert e.value.tensor == "input_1_0"
    assert "float64" in str(e.value) and "tensor(float)" in str(e.value) and "input_1_0" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, quiver.Error)
    assert e.value.code == "InvalidArgument" and e.value.model == "hls4ml_three_layer"


def test_wrong_shape_is_refused_naming_the_input(mlp, pnet):
    with pytest.raises(quiver.InvalidArgument) as e:
        mlp.run(None, {"input_1_0": np.zeros((1, 15), np.float32)})
    assert e.value.tensor == "input_1_0" and "[1, 16]" in str(e.value)
    feed = {i.name: np.zeros((2, int(i.shape[1]), 10), np.float32) for i in pnet.get_inputs()}
    feed["sv_mask"] = np.zeros((2, 2, 10), np.float32)
    with pytest.raises(quiver.InvalidArgument) as e:
        pnet.run(None, feed)
    assert e.value.tensor == "sv_mask"


def test_unknown_and_missing_inputs(mlp, pnet):
    with pytest.raises(quiver.InvalidArgument, match="unknown input 'x'") as e:
        mlp.run(None, {"x": x16()})
    assert e.value.tensor == "x"
    with pytest.raises(quiver.InvalidArgument, match="missing input 'input_1_0'"):
        mlp.run(None, {})
    feed = {i.name: np.zeros((1, int(i.shape[1]), 4), np.float32) for i in pnet.get_inputs()}
    del feed["pf_mask"]
    with pytest.raises(quiver.InvalidArgument, match="missing input 'pf_mask'") as e:
        pnet.run(None, feed)
    assert e.value.tensor == "pf_mask"


def test_not_an_array_is_refused(mlp):
    with pytest.raises(quiver.InvalidArgument, match="expected a numpy array") as e:
        mlp.run(None, {"input_1_0": 3.0})
    assert e.value.tensor == "input_1_0"
    with pytest.raises(quiver.InvalidArgument, match="input_feed must be a dict"):
        mlp.run(None, [x16()])


def test_lists_are_converted_to_the_input_dtype(mlp):
    x = x16()
    assert np.array_equal(mlp.run(None, {"input_1_0": x.tolist()})[0], mlp.run(None, {"input_1_0": x})[0])
    with pytest.raises(quiver.InvalidArgument, match="cannot convert") as e:
        mlp.run(None, {"input_1_0": [[1.0, 2.0], [3.0]]})
    assert e.value.tensor == "input_1_0"


def test_other_layouts_of_the_right_dtype_are_copied(pnet):
    feed = {name: a for name, a in (read_tensor(f) for f in numbered(HEP / "particlenet_ak4_hlt" / "test_data_set_0", "input"))}
    want = pnet.run(None, feed)[0]
    fortran = {k: np.asfortranarray(v) for k, v in feed.items()}
    assert not fortran["pf_features"].flags.c_contiguous
    assert np.array_equal(pnet.run(None, fortran)[0], want)
    strided = {k: np.repeat(v, 2, axis=2)[:, :, ::2] for k, v in feed.items()}
    assert np.array_equal(pnet.run(None, strided)[0], want)
    swapped = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in feed.items()}
    assert np.array_equal(pnet.run(None, swapped)[0], want)
    # the caller's arrays are not touched
    for k, v in feed.items():
        assert np.array_equal(v, read_tensor(HEP / "particlenet_ak4_hlt" / "test_data_set_0" /
                                             f"input_{[i.name for i in pnet.get_inputs()].index(k)}.pb")[1])


def test_outputs_own_their_memory():
    s = quiver.InferenceSession(MLP)
    a = s.run(None, {"input_1_0": x16(seed=1)})[0]
    b = s.run(None, {"input_1_0": x16(seed=2)})[0]
    assert not np.shares_memory(a, b)
    keep = a.copy()
    del s
    gc.collect()
    assert np.array_equal(a, keep)  # still valid after the session is gone
    a[:] = 0  # writable, and nobody else's
    assert a.flags.writeable and a.flags.c_contiguous and a.flags.aligned


def test_run_options(mlp):
    ro = quiver.RunOptions()
    ro.run_tag = "tag"
    assert mlp.run(None, {"input_1_0": x16()}, ro)[0].shape == (1, 5)
    ro.terminate = True
    with pytest.raises(quiver.Cancelled):
        mlp.run(None, {"input_1_0": x16()}, ro)


# ---- formats and load errors
def test_every_loadable_format():
    for path in [FOREST_JSON, FOREST / "xgboost" / "xgb17" / "BinaryLogisticAudit17.ubj",
                 FOREST / "lightgbm" / "categorical" / "toy_categorical" / "toy_categorical_model.txt",
                 FOREST / "tmva" / "CombinedMVAV2_13_07_2015.weights.xml.gz"]:
        s = quiver.InferenceSession(path)
        assert s.get_modelmeta().backend == "forest"
        i = s.get_inputs()[0]
        out = s.run(None, {i.name: np.zeros((2, i.shape[1]), np.float32)})
        assert all(o.shape[0] == 2 for o in out)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(quiver.NotFound) as e:
        quiver.InferenceSession(tmp_path / "missing.onnx")
    assert "missing.onnx" in str(e.value)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(MLP.read_bytes()[:100])
    with pytest.raises(quiver.ParseError) as e:
        quiver.InferenceSession(bad)
    assert e.value.file == str(bad) or str(bad) in str(e.value)


# ---- options and providers
def test_session_config_entries_reach_the_backend():
    x = np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32)
    full = quiver.InferenceSession(FOREST_JSON).run(["margin"], {"input": x})[0]
    so = quiver.SessionOptions()
    so.add_session_config_entry("round_end", "5")
    assert so.get_session_config_entry("round_end") == "5"
    five = quiver.InferenceSession(FOREST_JSON, so).run(["margin"], {"input": x})[0]
    assert not np.array_equal(full, five)
    so.add_session_config_entry("round_end", "five")
    with pytest.raises(quiver.InvalidArgument, match="round_end"):
        quiver.InferenceSession(FOREST_JSON, so)


def test_ort_session_options_are_accepted(mlp):
    so = quiver.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = quiver.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = quiver.ExecutionMode.ORT_SEQUENTIAL
    s = quiver.InferenceSession(MLP, sess_options=so, providers=["CPUExecutionProvider"])
    assert s.get_session_options().intra_op_num_threads == 1
    x = x16()
    assert np.array_equal(s.run(None, {"input_1_0": x})[0], mlp.run(None, {"input_1_0": x})[0])
    assert so.numerics == "default"
    so.numerics = "reproducible"
    assert so.get_session_config_entry("numerics") == "reproducible"


def test_providers():
    assert "CPUExecutionProvider" in quiver.get_available_providers()
    s = quiver.InferenceSession(MLP, providers=["CPUExecutionProvider"])
    assert s.get_providers() == ["CPUExecutionProvider"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = quiver.InferenceSession(MLP, providers=["TensorrtExecutionProvider", "CPUExecutionProvider"])
    assert s.get_providers() == ["CPUExecutionProvider"]
    assert any("TensorrtExecutionProvider" in str(x.message) for x in w)
    with pytest.raises(quiver.InvalidArgument, match="none of the requested providers"):
        quiver.InferenceSession(MLP, providers=["TensorrtExecutionProvider"])
    # The GPU executor on host memory runs the same device code path and gives the CPU's answer.
    x = x16()
    emu = quiver.InferenceSession(MLP, providers=["gpu-emulator"])
    assert emu.get_providers()[0] == "gpu-emulator" and emu.get_modelmeta().device == "gpu-emulator"
    np.testing.assert_allclose(emu.run(None, {"input_1_0": x})[0], s.run(None, {"input_1_0": x})[0], rtol=1e-5, atol=1e-6)
    # CUDA then CPU: CUDA where there is a device, else the CPU (ONNX Runtime's fallback).
    both = quiver.InferenceSession(MLP, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert both.get_providers()[-1] == "CPUExecutionProvider"
    assert s.get_modelmeta().device == "cpu"
    s.set_providers(["gpu-emulator"])
    assert s.get_providers()[0] == "gpu-emulator" and s.get_modelmeta().device == "gpu-emulator"


def test_cuda_alone_without_a_device_says_so():
    s = None
    try:
        s = quiver.InferenceSession(MLP, providers=[("CUDAExecutionProvider", {"device_id": 0})])
    except quiver.Error as e:
        assert "cuda" in str(e).lower()
        return
    # a machine with a GPU
    assert s.get_providers()[0] == "CUDAExecutionProvider"
    assert s.get_provider_options()["CUDAExecutionProvider"]["device_id"] == "0"


# ---- other dtypes through the ONNX backend conformance cases
@pytest.mark.parametrize("case", ["test_equal_string", "test_ai_onnx_ml_label_encoder_string_int",
                                  "test_cast_FLOAT_to_FLOAT16", "test_cast_FLOAT16_to_FLOAT", "test_equal_uint64",
                                  "test_and2d", "test_argmax_default_axis_example"])
def test_dtypes_through_node_cases(case):
    d = SHARED / "conformance" / "onnx-node" / "node" / case
    s = quiver.InferenceSession(d / "model.onnx")
    feed = dict(read_tensor(f) for f in numbered(d / "test_data_set_0", "input"))
    feed = {i.name: feed.get(i.name, v) for i, v in zip(s.get_inputs(), feed.values())}
    for got, (name, want) in zip(s.run(None, feed), (read_tensor(f) for f in numbered(d / "test_data_set_0", "output"))):
        assert got.dtype == want.dtype or (want.dtype == object and got.dtype == object), name
        assert got.shape == want.shape
        if want.dtype == object:
            assert [x if isinstance(x, bytes) else x.encode() for x in got.ravel()] == \
                   [x if isinstance(x, bytes) else x.encode() for x in want.ravel()]
        else:
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)
