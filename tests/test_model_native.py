"""The native model evaluator against onnxruntime (the ground truth), and its refusals.

Random dense graphs and tree ensembles (tests/onnx_builders.py), models exported from
scikit-learn and LightGBM, graphs it must refuse (NotNative, naming the op) and hostile graphs
(ModelError or NotNative, never a crash).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper as onh  # noqa: E402
from onnx_builders import assert_close, make_model, mlps, ort_rows, tree_ensembles  # noqa: E402

from orpflow.ml.errors import ModelError, NotNative  # noqa: E402
from orpflow.ml.native import compile_native  # noqa: E402

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(built, output=None):
    nm = compile_native(built.model, output)
    ref = ort_rows(built.model, built.rows, built.rank, output)
    got = nm.evaluate(built.rows)
    assert nm.n_inputs == built.n_inputs
    assert got.shape == ref.shape
    assert_close(got, ref, onnx.printer.to_text(built.model.graph), atol=built.atol)
    return nm


@settings(max_examples=80, **SETTINGS)
@given(mlps())
def test_random_dense_graphs_match_onnxruntime(built):
    check(built)


@settings(max_examples=100, **SETTINGS)
@given(tree_ensembles(classifier=False))
def test_random_tree_regressors_match_onnxruntime(built):
    check(built)


@settings(max_examples=100, **SETTINGS)
@given(tree_ensembles(classifier=True))
def test_random_tree_classifiers_match_onnxruntime(built):
    check(built)


# ------------------------------------------------------------------------------------------
# models exported by the usual converters


def _data(n_classes=None, n=300, k=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)).astype(np.float32)
    score = X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3]
    if n_classes is None:
        return X, score + 0.1 * rng.normal(size=n)
    edges = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    return X, np.digitize(score, edges)


def _skl(est, X):
    from skl2onnx import to_onnx

    return to_onnx(est, X[:1], options={"zipmap": False} if hasattr(est, "predict_proba") else None,
                   target_opset={"": 17, "ai.onnx.ml": 3})


def _check_export(model, X, output=None):
    from onnx_builders import Built

    return check(Built(model, X.shape[1], 2, X[:40]), output)


SKLEARN = [
    ("MLPRegressor", None), ("MLPClassifier", 2), ("MLPClassifier", 3),
    ("RandomForestRegressor", None), ("RandomForestClassifier", 2), ("RandomForestClassifier", 3),
    ("GradientBoostingRegressor", None), ("GradientBoostingClassifier", 2),
    ("GradientBoostingClassifier", 3), ("LinearRegression", None), ("LogisticRegression", 2),
    ("LogisticRegression", 3), ("ScalerRidge", None),
]


@pytest.mark.parametrize("name,n_classes", SKLEARN, ids=[f"{a}-{b}" for a, b in SKLEARN])
def test_sklearn_exports_match_onnxruntime(name, n_classes):
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    import warnings

    from sklearn import ensemble, linear_model, neural_network, pipeline, preprocessing

    X, y = _data(n_classes)
    est = {
        "MLPRegressor": lambda: neural_network.MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=200, random_state=0),
        "MLPClassifier": lambda: neural_network.MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0),
        "RandomForestRegressor": lambda: ensemble.RandomForestRegressor(10, max_depth=5, random_state=0),
        "RandomForestClassifier": lambda: ensemble.RandomForestClassifier(10, max_depth=5, random_state=0),
        "GradientBoostingRegressor": lambda: ensemble.GradientBoostingRegressor(n_estimators=20, max_depth=3),
        "GradientBoostingClassifier": lambda: ensemble.GradientBoostingClassifier(n_estimators=20, max_depth=3),
        "LinearRegression": lambda: linear_model.LinearRegression(),
        "LogisticRegression": lambda: linear_model.LogisticRegression(max_iter=500),
        "ScalerRidge": lambda: pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.Ridge()),
    }[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    model = _skl(est, X)
    nm = _check_export(model, X)
    assert nm.n_outputs == (n_classes or 1)


@pytest.mark.parametrize("n_classes", [None, 2, 3])
def test_lightgbm_exports_match_onnxruntime(n_classes):
    lgb = pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y = _data(n_classes)
    kw = dict(n_estimators=30, num_leaves=15, verbose=-1, random_state=0)
    est = lgb.LGBMRegressor(**kw) if n_classes is None else lgb.LGBMClassifier(**kw)
    est.fit(X, y)
    model = convert_lightgbm(est, initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
                             target_opset=15, zipmap=False)
    X_nan = X[:40].copy()
    X_nan[::5, 1] = np.nan             # LightGBM's missing-value branches
    from onnx_builders import Built

    nm = check(Built(model, X.shape[1], 2, X_nan))
    assert nm.n_outputs == (n_classes or 1)


# ------------------------------------------------------------------------------------------
# what is not native: NotNative names it


def _mlp_then(op_nodes, out="Y", extra_inits=None, opset=17, ml_opset=None):
    inits = {"W": np.ones((3, 4), np.float32)}
    inits.update(extra_inits or {})
    nodes = [oh.make_node("MatMul", ["X", "W"], ["h"])] + op_nodes
    return make_model(nodes, inits, 3, out_name=out, opset=opset, ml_opset=ml_opset)


@pytest.mark.parametrize("nodes,inits,needle", [
    ([oh.make_node("ArgMax", ["h"], ["Y"], name="n3")], None, "op ArgMax (node 'n3') is not supported natively"),
    ([oh.make_node("Exp", ["h"], ["Y"])], None, "op Exp"),
    ([oh.make_node("Relu", ["h"], ["Y"], domain="com.example")], None, "domain 'com.example'"),
    ([oh.make_node("Cast", ["h"], ["Y"], to=TP.INT64)], None, "Cast to type 7"),
    ([oh.make_node("LeakyRelu", ["h"], ["Y"], alpha=0.1, beta=2.0)], None, "attribute 'beta'"),
    ([oh.make_node("MatMul", ["h", "h"], ["Y"])], None, "computed right operand"),
    ([oh.make_node("Gemm", ["h", "h"], ["Y"], transB=1)], None, "computed B"),
    ([oh.make_node("Reshape", ["h", "h"], ["Y"])], None, "computed target shape"),
])
def test_not_native_names_what(nodes, inits, needle):
    model = _mlp_then(nodes, extra_inits=inits)
    with pytest.raises(NotNative, match=None) as e:
        compile_native(model)
    assert needle in str(e.value), str(e.value)


def test_not_native_post_transform_and_pruned_label_path():
    X, y = _data(3)
    from sklearn.tree import DecisionTreeClassifier

    model = _skl(DecisionTreeClassifier(max_depth=3).fit(X, y), X)
    # the label path (int64 "label") is pruned: probabilities compile
    compile_native(model)
    with pytest.raises(NotNative, match="element type 7"):
        compile_native(model, output="label")
    for node in model.graph.node:
        if node.op_type == "TreeEnsembleClassifier":
            for a in node.attribute:
                if a.name == "post_transform":
                    a.s = b"X"
            if not any(a.name == "post_transform" for a in node.attribute):
                node.attribute.append(oh.make_attribute("post_transform", "X"))
    with pytest.raises(NotNative, match="TreeEnsembleClassifier.*post_transform 'X'"):
        compile_native(model)


def test_two_inputs_and_unknown_output():
    m = _mlp_then([oh.make_node("Relu", ["h"], ["Y"])])
    m.graph.input.append(oh.make_tensor_value_info("Z", TP.FLOAT, [1, 2]))
    with pytest.raises(NotNative, match="2 inputs"):
        compile_native(m)
    with pytest.raises(ModelError, match="no output 'nope'"):
        compile_native(_mlp_then([oh.make_node("Relu", ["h"], ["Y"])]), output="nope")


# ------------------------------------------------------------------------------------------
# hostile graphs: ModelError or NotNative, never a crash


def _tree_model(**over):
    attrs = dict(n_targets=1, nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[1, 0, 0],
                 nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_values=[0.5, 0, 0],
                 nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0], target_ids=[0, 0],
                 target_nodeids=[1, 2], target_treeids=[0, 0], target_weights=[1.0, 2.0])
    attrs.update(over)
    node = oh.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", **attrs)
    return make_model([node], {}, 2, ml_opset=1)


def _raw_tensor(name, dims, raw):
    t = onh.from_array(np.zeros(1, np.float32), name)
    del t.dims[:]
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def _hostile_models():
    out = {}
    out["tree ok"] = _tree_model()
    out["tree cycle"] = _tree_model(nodes_modes=["BRANCH_LEQ", "BRANCH_LEQ", "LEAF"],
                                    nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 2, 0])
    out["tree self link"] = _tree_model(nodes_truenodeids=[0, 0, 0])
    out["tree feature out of range"] = _tree_model(nodes_featureids=[7, 0, 0])
    out["tree negative feature"] = _tree_model(nodes_featureids=[-1, 0, 0])
    out["tree link out of range"] = _tree_model(nodes_falsenodeids=[2**40, 0, 0])
    out["tree target out of range"] = _tree_model(target_ids=[0, 5])
    out["tree weight on unknown node"] = _tree_model(target_nodeids=[1, 9])
    out["tree lengths differ"] = _tree_model(nodes_values=[0.5])
    out["tree huge n_targets"] = _tree_model(n_targets=2**40)
    out["tree duplicate node"] = _tree_model(nodes_nodeids=[0, 1, 1])
    g = oh.make_graph([oh.make_node("Relu", ["b"], ["a"]), oh.make_node("Relu", ["a"], ["b"]),
                       oh.make_node("Add", ["X", "b"], ["Y"])], "g",
                      [oh.make_tensor_value_info("X", TP.FLOAT, [1, 2])],
                      [oh.make_tensor_value_info("Y", TP.FLOAT, None)])
    out["cycle"] = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    out["missing initializer"] = make_model([oh.make_node("MatMul", ["X", "W"], ["Y"])], {}, 3)
    out["huge input"] = make_model([oh.make_node("Relu", ["X"], ["Y"])], {}, 10**12)
    out["negative input dim"] = make_model([oh.make_node("Relu", ["X"], ["Y"])], {}, -3)
    out["matmul mismatch"] = make_model([oh.make_node("MatMul", ["X", "W"], ["Y"])],
                                        {"W": np.ones((4, 2), np.float32)}, 3)
    out["reshape mismatch"] = make_model([oh.make_node("Reshape", ["X", "s"], ["Y"])],
                                         {"s": np.array([5, 7], np.int64)}, 3)
    out["reshape overflow"] = make_model([oh.make_node("Reshape", ["X", "s"], ["Y"])],
                                         {"s": np.array([2**62, 2**62, 0], np.int64)}, 3)
    out["concat huge axis"] = make_model([oh.make_node("Concat", ["X", "X"], ["Y"], axis=2**40)], {}, 3)
    out["broadcast mismatch"] = make_model([oh.make_node("Add", ["X", "b"], ["Y"])],
                                           {"b": np.ones(4, np.float32)}, 3)
    m = make_model([oh.make_node("MatMul", ["X", "W"], ["Y"])], {}, 3)
    m.graph.initializer.append(_raw_tensor("W", [3, 2], b"\0" * 5))
    out["short raw data"] = m
    m = make_model([oh.make_node("MatMul", ["X", "W"], ["Y"])], {}, 3)
    m.graph.initializer.append(_raw_tensor("W", [2**31, 2**31], b""))
    out["huge initializer dims"] = m
    m = make_model([oh.make_node("MatMul", ["X", "W"], ["Y"])], {}, 3)
    t = onh.from_array(np.ones((3, 2), np.float32), "W")
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "/etc/passwd"
    m.graph.initializer.append(t)
    out["external data"] = m
    m = make_model([oh.make_node("Relu", ["X"], ["Y"]), oh.make_node("Tanh", ["X"], ["Y"])], {}, 3)
    out["produced twice"] = m
    return out


@pytest.mark.parametrize("name", list(_hostile_models()))
def test_hostile_graphs_are_refused_cleanly(name):
    model = _hostile_models()[name]
    if name == "tree ok":
        nm = compile_native(model)
        assert_close(nm.evaluate(np.array([[0.0, 0.2], [0.0, 0.9]], np.float32)), [[1.0], [2.0]])
        return
    with pytest.raises((ModelError, NotNative)):
        compile_native(model)


def test_external_data_is_never_read():
    with pytest.raises(ModelError, match="external file"):
        compile_native(_hostile_models()["external data"])


def _mutate_ints(model, rng):
    node = model.graph.node[0]
    ints = [a for a in node.attribute if a.type == a.INTS and len(a.ints)]
    a = ints[int(rng.integers(0, len(ints)))]
    i = int(rng.integers(0, len(a.ints)))
    a.ints[i] = int(rng.choice([-1, -2**31, 2**31, 2**62, 0, 1, 2, 3, int(rng.integers(-10, 50))]))


@settings(max_examples=100, **SETTINGS)
@given(tree_ensembles(), st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_mutated_tree_ensembles_never_crash(built, seed, n_mut):
    rng = np.random.default_rng(seed)
    for _ in range(n_mut):
        _mutate_ints(built.model, rng)
    try:
        nm = compile_native(built.model)
    except (ModelError, NotNative):
        return
    out = nm.evaluate(built.rows)
    assert out.shape == (len(built.rows), nm.n_outputs)


@settings(max_examples=60, **SETTINGS)
@given(mlps(), st.integers(0, 2**32 - 1))
def test_corrupted_bytes_never_crash(built, seed):
    rng = np.random.default_rng(seed)
    raw = bytearray(built.model.SerializeToString())
    for _ in range(int(rng.integers(1, 6))):
        raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
    try:
        model = onnx.load_from_string(bytes(raw))
    except Exception:
        return
    try:
        nm = compile_native(model)
    except (ModelError, NotNative):
        return
    nm.evaluate(np.zeros((1, nm.n_inputs), np.float32))


def test_native_model_checks_every_range():
    from orpflow._core.model import OPS_WIDTH, NativeModel

    ops = np.zeros((1, OPS_WIDTH), np.int64)
    ops[0, :10] = [3, 0, 4, 0, 8, 0, 0, 0, 0, 0]       # UNARY relu, n=4, in=0, out=8
    ok = NativeModel(4, 4, 0, 8, 12, np.zeros(0), np.zeros(0), ops, np.zeros((1, 2)))
    assert_close(ok.evaluate(np.array([-1, 2, -3, 4], np.float32)), [[0, 2, 0, 4]])
    bad = ops.copy()
    bad[0, 4] = 10                                      # writes past the arena
    with pytest.raises(ValueError, match="op 0"):
        NativeModel(4, 4, 0, 8, 12, np.zeros(0), np.zeros(0), bad, np.zeros((1, 2)))
    bad = ops.copy()
    bad[0, 0] = 99
    with pytest.raises(ValueError, match="unknown op kind"):
        NativeModel(4, 4, 0, 8, 12, np.zeros(0), np.zeros(0), bad, np.zeros((1, 2)))
    with pytest.raises(ValueError):
        NativeModel(4, 4, 0, 8, 2**40, np.zeros(0), np.zeros(0), ops, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="shape"):
        ok.evaluate(np.zeros((2, 3), np.float32))
    assert ok.evaluate(np.zeros((0, 4), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer_matches_onnxruntime(norm):
    from onnx_builders import Built

    node = oh.make_node("Normalizer", ["X"], ["Y"], domain="ai.onnx.ml", norm=norm)
    model = make_model([node], {}, 3, ml_opset=1)
    rows = np.array([[0, 0, 0], [0, -1, 0], [-1, -2, -3], [1, -2, 3], [0.5, 0, 0]], np.float32)
    check(Built(model, 3, 2, rows))


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"])
@pytest.mark.parametrize("n_classes", [1, 2, 3])
def test_linear_classifier_matches_onnxruntime(post, n_classes):
    from onnx_builders import Built

    rng = np.random.default_rng(n_classes)
    coefs = rng.normal(size=(n_classes, 4)).astype(np.float32)
    node = oh.make_node("LinearClassifier", ["X"], ["label", "Y"], domain="ai.onnx.ml",
                        coefficients=coefs.reshape(-1).tolist(), intercepts=rng.normal(size=n_classes).tolist(),
                        classlabels_ints=list(range(max(n_classes, 2))), post_transform=post)
    model = make_model([node], {}, 4, ml_opset=1, extra_outputs=[("label", TP.INT64)])
    rows = rng.normal(0, 0.3, size=(6, 4)).astype(np.float32)
    if n_classes == 1 and post == "PROBIT":
        with pytest.raises(NotNative, match="PROBIT"):
            compile_native(model)
        return
    check(Built(model, 4, 2, rows))


@pytest.mark.parametrize("offset,scale", [([0.5], [2.0]), ([0.1, -0.2, 0.3], [1.0, 0.5, -2.0])])
def test_scaler_matches_onnxruntime(offset, scale):
    from onnx_builders import Built

    node = oh.make_node("Scaler", ["X"], ["Y"], domain="ai.onnx.ml", offset=offset, scale=scale)
    model = make_model([node], {}, 3, ml_opset=1)
    check(Built(model, 3, 2, np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)))


def test_importing_the_compiler_does_not_import_onnx(tmp_path):
    import subprocess
    import sys

    code = ("import sys, orpflow, orpflow._core.model, orpflow.ml.native; "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, 'onnx imported'")
    # from an empty directory: the installed orpflow, never the source tree beside the tests
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=tmp_path)
