"""Tree ensembles through quiver.InferenceSession against their manifests (../shared/models/forest):
every XGBoost folder (JSON and UBJ), LightGBM, and the TMVA BDTs against an independent evaluator of
TMVA's response written here from the XML. Same checks as tests/forest/test_forest_models.cpp."""
import csv
import gzip
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import quiver
from conftest import FOREST

RTOL, ATOL = 1e-5, 1e-6


def close(got, want, rtol=RTOL, atol=ATOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return (np.abs(got - want) <= atol + rtol * np.abs(want)) | (np.isnan(got) & np.isnan(want))


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def category_codes(model_json):
    """Per feature: {category string: code} from the model's own encoding (gradient_booster.model.cats)."""
    learner = json.loads(model_json.read_text())["learner"]
    cats = learner["gradient_booster"]["model"].get("cats")
    if not cats:
        return {}
    codes = {}
    for f, enc in enumerate(cats["enc"]):
        values, offsets = bytes(enc["values"]), enc["offsets"]
        if offsets:
            ends = offsets[1:] + [len(values)]
            codes[f] = {values[a:b].decode(): i for i, (a, b) in enumerate(zip(offsets, ends))}
    return codes


def features(case, folder):
    header, rows = read_csv(folder / case["input"])
    cols = [header.index(name) for name in case["features"]]
    codes = category_codes(folder / case["model_json"]) if "model_json" in case else {}
    x = np.empty((len(rows), len(cols)), np.float32)
    for r, row in enumerate(rows):
        for f, c in enumerate(cols):
            s = row[c].strip()
            if s in ("", case.get("missing", "NA")):
                x[r, f] = np.nan
            elif f in codes:
                x[r, f] = codes[f].get(s, np.nan)
            elif s in ("TRUE", "FALSE"):
                x[r, f] = 1.0 if s == "TRUE" else 0.0
            else:
                x[r, f] = np.float32(float(s))
    return x


def classifier(objective):
    return objective in ("binary:logistic", "binary:hinge", "multi:softprob", "multi:softmax")


def check_expected(folder, case, expected, model_file):
    so = quiver.SessionOptions()
    if expected.get("rounds"):
        so.add_session_config_entry("round_begin", str(expected["rounds"][0]))
        so.add_session_config_entry("round_end", str(expected["rounds"][1]))
    sess = quiver.InferenceSession(folder / model_file, so)
    x = features(case, folder)
    pred, margin = sess.run(["prediction", "margin"], {"input": x})
    assert pred.shape[0] == margin.shape[0] == len(x)
    # one row per call agrees with the batch
    for r in range(0, len(x), 37):
        p1, m1 = sess.run(["prediction", "margin"], {"input": x[r:r + 1]})
        assert close(m1[0], margin[r], 1e-6, 1e-6).all(), (model_file, r)
    obj = case["objective"]
    checked = 0
    if isinstance(expected.get("margin"), dict):
        mh, mrows = read_csv(folder / expected["margin"]["file"])
        m = np.array(mrows, np.float64)
        for k in range(margin.shape[1]):
            c = mh.index("margin" if margin.shape[1] == 1 else f"margin_{k}")
            bad = ~close(margin[:, k], m[:, c])
            assert not bad.any(), f"{model_file} margin {k}: rows {np.nonzero(bad)[0][:5]}"
            checked += len(m)
    header, rows = read_csv(folder / expected["file"])
    want = np.array([[float(v) if v not in ("", "NA") else np.nan for v in row] for row in rows], np.float64)
    assert len(want) == len(x)
    for c, name in enumerate(header):
        w = want[:, c]
        if name == "prediction":
            got = pred[:, 0]
        elif name.startswith("prediction_"):
            got = pred[:, int(name[11:])]
        elif name == "margin":
            got = margin[:, 0]
        elif name.startswith("margin_"):
            got = margin[:, int(name[7:])]
        elif name in ("_target", "_target1", "_target2"):
            out = 1 if name == "_target2" else 0
            if not classifier(obj):
                got = pred[:, out]
            elif obj == "multi:softprob":
                assert (np.argmax(pred, axis=1) == w.astype(int)).all(), (model_file, name)
                continue
            else:
                p = pred[:, out].astype(np.float64)
                sure = np.abs(p - 0.5) > 1e-5
                assert ((p > 0.5).astype(int)[sure] == w.astype(int)[sure]).all(), (model_file, name)
                continue
        elif name.startswith("probability("):
            inner = name[12:-1]
            out = 0
            if inner.startswith("_target"):
                out = 1 if inner[7] == "2" else 0
                inner = inner.split(",")[1]
            k = int(inner)
            if obj == "multi:softprob":
                got = pred[:, k]
            else:
                p = pred[:, out].astype(np.float64)
                got = p if k == 1 else 1.0 - p
        else:
            pytest.fail(f"unknown expected column {name}")
        bad = ~close(got, w)
        assert not bad.any(), f"{model_file} {expected['file']} {name}: rows {np.nonzero(bad)[0][:5]}, " \
                              f"got {np.asarray(got)[bad][:3]} want {w[bad][:3]}"
        checked += len(w)
    return checked


@pytest.mark.parametrize("folder", ["jpmml", "categorical", "xgb17", "compat-1.0"])
@pytest.mark.parametrize("kind", ["model_json", "model_ubj"])
def test_xgboost_manifest(folder, kind):
    d = FOREST / "xgboost" / folder
    cases = json.loads((d / "cases.json").read_text())["cases"]
    models = checked = 0
    for case in cases:
        if kind not in case:
            continue
        models += 1
        for expected in case["expected"]:
            checked += check_expected(d, case, expected, case[kind])
    if kind == "model_ubj" and folder == "compat-1.0":
        assert models == 0  # JSON only
    else:
        assert models > 0 and checked > 0


def read_libsvm(path, n_features):
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        x = np.full(n_features, np.nan, np.float32)
        for tok in line.split()[1:]:
            i, v = tok.split(":")
            if int(i) < n_features:
                x[int(i)] = float(v)
        rows.append(x)
    return np.array(rows)


def test_lightgbm_manifest():
    d = FOREST / "lightgbm" / "categorical"
    cases = json.loads((d / "cases.json").read_text())["cases"]
    assert len(cases) == 2
    for case in cases:
        sess = quiver.InferenceSession(d / case["model"])
        nf = sess.get_inputs()[0].shape[1]
        x = read_libsvm(d / case["input"], nf)
        want = np.loadtxt(d / case["expected"], ndmin=1)
        pred, margin = sess.run(["prediction", "margin"], {"input": x})
        assert close(margin[:, 0], want).all(), case["name"]
        if "BEFORE the sigmoid" in case["expected_meaning"]:
            assert close(pred[:, 0], 1 / (1 + np.exp(-want))).all()
        else:
            assert close(pred[:, 0], want).all()


# ---- TMVA: no reference predictions exist; an evaluator of TMVA's MethodBDT response from the XML
def tmva_trees(path):
    root = ET.fromstring(gzip.decompress(path.read_bytes()).decode().strip())
    method = root.attrib["Method"]
    options = {o.attrib["name"]: (o.text or "").strip() for o in root.iter("Option")}
    variables = [v.attrib["Expression"] for v in root.find("Variables")]
    trees = [(float(t.attrib.get("boostWeight", "1")), t.find("Node")) for t in root.find("Weights")]
    return method, options, variables, trees


def tmva_leaf(node, x, use_yes_no):
    while True:
        children = {c.attrib["pos"]: c for c in node.findall("Node")}
        if not children:
            if use_yes_no:
                return 1.0 if int(node.attrib["nType"]) == 1 else -1.0
            return float(node.attrib["res"])
        # TMVA's DecisionTreeNode::GoesRight: (x >= cut) == cType
        v = x[int(node.attrib["IVar"])]
        right = (v >= float(node.attrib["Cut"])) == bool(int(node.attrib["cType"]))
        node = children["r" if right else "l"]


def tmva_response(trees, options, x):
    if options.get("BoostType") == "Grad":
        f = sum(tmva_leaf(n, x, False) for _, n in trees)
        return 2.0 / (1.0 + math.exp(-2.0 * f)) - 1.0
    yes_no = options.get("UseYesNoLeaf", "True").lower() == "true"
    num = sum(w * tmva_leaf(n, x, yes_no) for w, n in trees)
    return num / sum(w for w, _ in trees)


@pytest.mark.parametrize("name", ["CombinedMVAV2_13_07_2015", "ChargeBTag_16_1_2016", "ChargeBTag_4sep_2016"])
def test_tmva_bdt_against_the_response_formula(name):
    path = FOREST / "tmva" / f"{name}.weights.xml.gz"
    _, options, variables, trees = tmva_trees(path)
    sess = quiver.InferenceSession(path)
    assert sess.get_inputs()[0].shape[1] == len(variables)
    x = np.random.default_rng(7).normal(0.3, 0.5, size=(200, len(variables))).astype(np.float32)
    (pred,) = sess.run(["prediction"], {"input": x})
    want = np.array([tmva_response(trees, options, row) for row in x])
    assert close(pred[:, 0], want, 1e-5, 1e-5).all(), np.max(np.abs(pred[:, 0] - want))
