"""Random ONNX models for the evaluator tests: Hypothesis strategies built with onnx.helper,
and small fitted scikit-learn / LightGBM models exported the way users export them.

Every strategy returns (ModelProto, description); the description is a short string that
Hypothesis prints with a failing example. Needs the ml test extras (onnx, scikit-learn,
skl2onnx, onnxmltools, lightgbm): import it after pytest.importorskip("onnx").
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, List, Tuple

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32
Model = Tuple[onnx.ModelProto, str]
ML = "ai.onnx.ml"
# values that thresholds and inputs share, so that EQ/NEQ branches and exact ties are reached
TINY, HUGE = float(F32(1e-20)), float(F32(3e38))
GRID = np.array([-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0], dtype=F32)


def make_model(nodes, inputs, outputs, inits, opset: int = 13, ml_opset: int = 0) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    imports = [helper.make_opsetid("", opset)]
    if ml_opset:
        imports.append(helper.make_opsetid(ML, ml_opset))
    m = helper.make_model(graph, opset_imports=imports)
    m.ir_version = 8                              # what onnxruntime reads for these opsets
    onnx.checker.check_model(m)
    return m


def tensor(name: str, a: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(a), name)


# ---------------------------------------------------------------- input rows

def rows(k: int, n_max: int = 6, nan: bool = False, extreme: bool = False) -> st.SearchStrategy:
    """float32 rows (n, k): ordinary values, the shared GRID values (ties with thresholds),
    tiny magnitudes; NaN (missing values) when `nan`, huge magnitudes when `extreme`."""
    parts = [st.floats(-4, 4, width=32), st.sampled_from([float(g) for g in GRID]),
             st.floats(-TINY, TINY, width=32)]
    if nan:
        parts.append(st.just(float("nan")))
    if extreme:
        parts.append(st.floats(-HUGE, HUGE, width=32))
        parts.append(st.sampled_from([float("inf"), float("-inf")]))
    value = st.one_of(*parts)
    return st.lists(st.lists(value, min_size=k, max_size=k), min_size=1, max_size=n_max).map(
        lambda r: np.array(r, dtype=F32))


# ---------------------------------------------------------------- MLPs

ACTIVATIONS = ["Relu", "LeakyRelu", "Tanh", "Sigmoid", "Softmax", "Clip", "Identity"]


@st.composite
def mlps(draw) -> Model:
    """A feed-forward network: optional Scaler/Normalizer and an elementwise Sub/Mul/Div with a
    broadcast initializer in front, 1-4 dense layers (Gemm with transB/alpha/beta or
    MatMul+Add) each followed by an activation and sometimes a Flatten/Reshape/Cast/Concat."""
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    opset = draw(st.sampled_from([10, 13]))      # 10: Clip by attributes, Softmax coerced to 2-D
    k = draw(st.integers(1, 8))
    nodes, inits, desc = [], [], [f"opset {opset} k={k}"]
    uses_ml = False
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def init(a: np.ndarray) -> str:
        name = fresh("w")
        inits.append(tensor(name, a))
        return name

    cur, width = "x", k
    front = draw(st.sampled_from(["none", "Scaler", "Normalizer"]))
    if front == "Scaler":
        uses_ml = True
        size = draw(st.sampled_from([1, k]))
        out = fresh("t")
        nodes.append(helper.make_node("Scaler", [cur], [out], domain=ML, name=fresh("n"),
                                      offset=rng.normal(size=size).astype(F32).tolist(),
                                      scale=rng.uniform(0.2, 2, size=size).astype(F32).tolist()))
        cur = out
        desc.append(f"Scaler[{size}]")
    elif front == "Normalizer":
        uses_ml = True
        norm = draw(st.sampled_from(["MAX", "L1", "L2"]))
        out = fresh("t")
        nodes.append(helper.make_node("Normalizer", [cur], [out], domain=ML, name=fresh("n"), norm=norm))
        cur = out
        desc.append(f"Normalizer {norm}")
    elementwise = draw(st.sampled_from(["none", "Sub", "Mul", "Div"]))
    if elementwise != "none":
        shape = draw(st.sampled_from([(k,), (1, k), ()]))
        b = (rng.choice([-1, 1], size=shape) * rng.uniform(0.5, 2, size=shape)).astype(F32)
        out = fresh("t")
        nodes.append(helper.make_node(elementwise, [cur, init(b)], [out], name=fresh("n")))
        cur = out
        desc.append(f"{elementwise}{shape}")

    depth = draw(st.integers(1, 4))
    for layer in range(depth):
        h = draw(st.integers(1, 32))
        w = (rng.normal(size=(width, h)) / np.sqrt(width)).astype(F32)
        b = rng.normal(size=(h,)).astype(F32) * F32(0.5)
        out = fresh("t")
        if draw(st.booleans()):
            trans_b = draw(st.booleans())
            alpha = draw(st.sampled_from([1.0, 0.5, 2.0]))
            beta = draw(st.sampled_from([1.0, 0.5, -1.0]))
            c_shape = draw(st.sampled_from([(h,), (1, h)]))
            ins = [cur, init(w.T.copy() if trans_b else w), init(b.reshape(c_shape))]
            nodes.append(helper.make_node("Gemm", ins, [out], name=fresh("n"), transB=int(trans_b),
                                          alpha=alpha, beta=beta))
            desc.append(f"Gemm({width}->{h} tB={int(trans_b)} a={alpha} b={beta})")
        else:
            mm = fresh("t")
            nodes.append(helper.make_node("MatMul", [cur, init(w)], [mm], name=fresh("n")))
            nodes.append(helper.make_node("Add", [mm, init(b)], [out], name=fresh("n")))
            desc.append(f"MatMul+Add({width}->{h})")
        cur, width = out, h
        act = draw(st.sampled_from(ACTIVATIONS))
        out = fresh("t")
        if act == "LeakyRelu":
            alpha = draw(st.sampled_from([0.01, 0.2, 1.5]))
            nodes.append(helper.make_node("LeakyRelu", [cur], [out], name=fresh("n"), alpha=alpha))
        elif act == "Softmax":
            axis = draw(st.sampled_from([1, -1, 0]))
            nodes.append(helper.make_node("Softmax", [cur], [out], name=fresh("n"), axis=axis))
            act = f"Softmax(axis={axis})"
        elif act == "Clip":
            lo, hi = sorted(rng.uniform(-2, 2, size=2).astype(F32).tolist())
            if opset >= 11:
                which = draw(st.sampled_from(["both", "min", "max"]))
                ins = [cur, init(np.array(lo, F32)) if which != "max" else "",
                       init(np.array(hi, F32)) if which != "min" else ""]
                while ins[-1] == "":
                    ins.pop()
                nodes.append(helper.make_node("Clip", ins, [out], name=fresh("n")))
            else:
                nodes.append(helper.make_node("Clip", [cur], [out], name=fresh("n"), min=lo, max=hi))
        else:
            nodes.append(helper.make_node(act, [cur], [out], name=fresh("n")))
        desc.append(act)
        cur = out
        shaper = draw(st.sampled_from(["none", "none", "Flatten", "Reshape", "Cast", "Concat"]))
        out = fresh("t")
        if shaper == "Flatten":
            nodes.append(helper.make_node("Flatten", [cur], [out], name=fresh("n"), axis=1))
        elif shaper == "Reshape":
            target = draw(st.sampled_from([[0, -1], [1, -1], [-1, width]]))
            nodes.append(helper.make_node("Reshape", [cur, init(np.array(target, np.int64))], [out],
                                          name=fresh("n")))
            shaper = f"Reshape{target}"
        elif shaper == "Cast":
            nodes.append(helper.make_node("Cast", [cur], [out], name=fresh("n"), to=TensorProto.FLOAT))
        elif shaper == "Concat":
            other = fresh("t")
            nodes.append(helper.make_node("Relu", [cur], [other], name=fresh("n")))
            axis = draw(st.sampled_from([1, -1]))
            nodes.append(helper.make_node("Concat", [cur, other], [out], name=fresh("n"), axis=axis))
            width *= 2
        else:
            continue
        desc.append(shaper)
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"], name="out"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])
    return make_model(nodes, [x], [y], inits, opset, 1 if uses_ml else 0), " ".join(desc)


# ---------------------------------------------------------------- tree ensembles

BRANCHES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def random_tree(rng: np.random.Generator, k: int, max_depth: int, modes: List[str]) -> List[dict]:
    """One tree as a list of node dicts, root first, then the others shuffled; node ids are a
    permutation of 0..n-1 (onnxruntime requires ids below the node count)."""
    nodes: List[dict] = []

    def grow(depth: int) -> int:
        i = len(nodes)
        nodes.append({})
        if depth >= max_depth or (depth > 0 and rng.random() < 0.35):
            nodes[i] = {"leaf": True}
        else:
            threshold = F32(rng.choice(GRID)) if rng.random() < 0.6 else F32(rng.normal() * 2)
            nodes[i] = {"leaf": False, "feature": int(rng.integers(k)), "threshold": float(threshold),
                        "mode": str(rng.choice(modes)), "missing": int(rng.random() < 0.5)}
            nodes[i]["true"] = grow(depth + 1)
            nodes[i]["false"] = grow(depth + 1)
        return i

    grow(0)
    ids = rng.permutation(len(nodes))
    order = [0] + list(rng.permutation(np.arange(1, len(nodes))))
    out = []
    for i in order:
        n = dict(nodes[i], id=int(ids[i]))
        if not n["leaf"]:
            n["true"], n["false"] = int(ids[n["true"]]), int(ids[n["false"]])
        out.append(n)
    return out


@st.composite
def tree_ensembles(draw, classifier: bool) -> Model:
    """TreeEnsembleRegressor (1-3 targets, every aggregate function) or TreeEnsembleClassifier
    (2 or 3-5 classes, int64 or string labels; weights for one class only or for several,
    all positive or mixed), random shapes up to depth 6, every branch mode (one for the whole
    ensemble or mixed), random missing-value flags, every post transform, base values absent,
    of length 1 or of the output count; attributes in the ai.onnx.ml opset 1 form (lists) or
    the opset 3 form (*_as_tensor)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    k = draw(st.integers(1, 6))
    n_trees = draw(st.integers(1, 5))
    max_depth = draw(st.integers(1, 6))
    if draw(st.booleans()):
        modes = [draw(st.sampled_from(BRANCHES))]
    else:
        modes = draw(st.lists(st.sampled_from(BRANCHES), min_size=2, max_size=6, unique=True))
    missing_form = draw(st.sampled_from(["flags", "absent", "short"]))
    post = draw(st.sampled_from(["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]))
    as_tensor = draw(st.booleans())
    if classifier:
        n_out = draw(st.sampled_from([2, 2, 3, 4, 5]))
        weighting = draw(st.sampled_from(["one class", "several", "all"]))
        one_class = draw(st.sampled_from([0, 1])) if n_out == 2 else 0
        positive = draw(st.booleans())
        aggregate = "SUM"
        labels = draw(st.sampled_from(["int64", "string"]))
    else:
        n_out = draw(st.integers(1, 3))
        weighting = draw(st.sampled_from(["several", "all"]))
        positive = draw(st.booleans())
        aggregate = draw(st.sampled_from(["SUM", "AVERAGE", "MIN", "MAX"]))
    # onnxruntime accepts 0 or n_out base values (and 1 for two classes)
    base_len = draw(st.sampled_from([0, 1, 2] if classifier and n_out == 2 else [0, n_out]))

    treeids, nodeids, feats, values, modes_l, trues, falses, missing = ([] for _ in range(8))
    w_ids, w_nodes, w_trees, w_values = [], [], [], []
    for t in range(n_trees):
        for n in random_tree(rng, k, max_depth, modes):
            treeids.append(t)
            nodeids.append(n["id"])
            if n["leaf"]:
                feats.append(0)
                values.append(0.0)
                modes_l.append("LEAF")
                trues.append(0)
                falses.append(0)
                missing.append(0)
                if classifier and weighting == "one class":
                    targets = [one_class]
                elif weighting == "all" or n_out == 1:
                    targets = list(range(n_out))
                    if n_out == 1 and rng.random() < 0.2:
                        targets = [0, 0]       # two weights on one leaf of a 1-target ensemble
                else:
                    size = int(rng.integers(1, n_out + 1))
                    targets = sorted(rng.choice(n_out, size=size, replace=False).tolist())
                for target in targets:
                    w = rng.uniform(0, 1) if positive else rng.normal()
                    w_ids.append(int(target))
                    w_nodes.append(n["id"])
                    w_trees.append(t)
                    w_values.append(float(F32(w)))
            else:
                feats.append(n["feature"])
                values.append(n["threshold"])
                modes_l.append(n["mode"])
                trues.append(n["true"])
                falses.append(n["false"])
                missing.append(n["missing"])
    prefix = "class" if classifier else "target"
    attrs: Dict[str, object] = dict(
        nodes_treeids=treeids, nodes_nodeids=nodeids, nodes_featureids=feats, nodes_modes=modes_l,
        nodes_truenodeids=trues, nodes_falsenodeids=falses, post_transform=post)
    attrs[prefix + "_ids"] = w_ids
    attrs[prefix + "_nodeids"] = w_nodes
    attrs[prefix + "_treeids"] = w_trees
    if missing_form == "flags":
        attrs["nodes_missing_value_tracks_true"] = missing
    elif missing_form == "short":
        attrs["nodes_missing_value_tracks_true"] = missing[: len(missing) // 2]
    base = rng.normal(size=base_len).astype(F32).tolist()
    if as_tensor:
        attrs["nodes_values_as_tensor"] = helper.make_tensor("v", TensorProto.FLOAT, [len(values)], values)
        attrs[prefix + "_weights_as_tensor"] = helper.make_tensor("w", TensorProto.FLOAT, [len(w_values)], w_values)
        if base_len:
            attrs["base_values_as_tensor"] = helper.make_tensor("b", TensorProto.FLOAT, [base_len], base)
    else:
        attrs["nodes_values"] = values
        attrs[prefix + "_weights"] = w_values
        if base_len:
            attrs["base_values"] = base
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])
    desc = (f"{'classifier' if classifier else 'regressor'} k={k} trees={n_trees} depth<={max_depth} "
            f"modes={modes} missing={missing_form} post={post} base={base_len} tensor={as_tensor} ")
    if classifier:
        if labels == "int64":
            attrs["classlabels_int64s"] = list(range(10, 10 + n_out))
            label_type = TensorProto.INT64
        else:
            attrs["classlabels_strings"] = [f"c{i}" for i in range(n_out)]
            label_type = TensorProto.STRING
        node = helper.make_node("TreeEnsembleClassifier", ["x"], ["label", "probabilities"], domain=ML,
                                name="trees", **attrs)
        outputs = [helper.make_tensor_value_info("label", label_type, [None]),
                   helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_out])]
        desc += f"classes={n_out} {labels} weighting={weighting} class={one_class if weighting == 'one class' else '-'} positive={positive}"
    else:
        node = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain=ML, name="trees",
                                n_targets=n_out, aggregate_function=aggregate, **attrs)
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_out])]
        desc += f"targets={n_out} aggregate={aggregate} weighting={weighting} positive={positive}"
    return make_model([node], [x], outputs, [], 13, 3 if as_tensor else 1), desc


# ---------------------------------------------------------------- linear models

@st.composite
def linear_models(draw, classifier: bool) -> Model:
    """LinearRegressor (1-3 targets, intercepts of the right length, absent or of another
    length) or LinearClassifier (2-4 classes, one coefficient row per class, or one row for two
    labels: the binary case), every post transform."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    k = draw(st.integers(1, 6))
    post = draw(st.sampled_from(["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])
    if classifier:
        n_labels = draw(st.integers(2, 4))
        rows = 1 if (n_labels == 2 and draw(st.booleans())) else n_labels
        if rows == 1 and post == "PROBIT":
            post = "LOGISTIC"                 # undefined in onnxruntime: see test_not_native_cases
        coef = rng.normal(size=(rows, k)).astype(F32)
        icpt = rng.normal(size=rows).astype(F32)
        labels = draw(st.sampled_from(["int64", "string"]))
        kw = ({"classlabels_ints": list(range(n_labels))} if labels == "int64"
              else {"classlabels_strings": [f"c{i}" for i in range(n_labels)]})
        node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain=ML, name="lin",
                                coefficients=coef.ravel().tolist(), intercepts=icpt.tolist(),
                                post_transform=post, **kw)
        outs = [helper.make_tensor_value_info("label", TensorProto.INT64 if labels == "int64" else TensorProto.STRING, [None]),
                helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, None])]
        desc = f"LinearClassifier k={k} labels={n_labels} rows={rows} post={post}"
    else:
        n = draw(st.integers(1, 3))
        coef = rng.normal(size=(n, k)).astype(F32)
        icpt_len = draw(st.sampled_from([n, 0, n + 1]))
        kw = {"intercepts": rng.normal(size=icpt_len).astype(F32).tolist()} if icpt_len else {}
        node = helper.make_node("LinearRegressor", ["x"], ["y"], domain=ML, name="lin", targets=n,
                                coefficients=coef.ravel().tolist(), post_transform=post, **kw)
        outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])]
        desc = f"LinearRegressor k={k} targets={n} intercepts={icpt_len} post={post}"
    return make_model([node], [x], outs, [], 13, 1), desc


# ---------------------------------------------------------------- fitted models, exported

def training_data(seed: int, k: int = 5, n: int = 300, classes: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k)).astype(F32)
    score = X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3] + 0.2 * rng.normal(size=n)
    if not classes:
        return X, score.astype(F32)
    cuts = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
    return X, np.searchsorted(cuts, score)


def sklearn_model(kind: str, seed: int = 0) -> Model:
    """A small scikit-learn model fitted on random data and exported with skl2onnx (zipmap=False)."""
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = {"MLPClassifier2": 2, "MLPClassifier3": 3, "RandomForestClassifier2": 2,
               "RandomForestClassifier3": 3, "GradientBoostingClassifier2": 2,
               "GradientBoostingClassifier3": 3, "LogisticRegression2": 2,
               "LogisticRegression3": 3}.get(kind, 0)
    X, y = training_data(seed, classes=classes)
    base = kind.rstrip("23")
    make: Dict[str, Callable] = {
        "MLPRegressor": lambda: MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=200, random_state=seed),
        "MLPClassifier": lambda: MLPClassifier(hidden_layer_sizes=(12,), max_iter=200, random_state=seed),
        "RandomForestRegressor": lambda: RandomForestRegressor(n_estimators=5, max_depth=5, random_state=seed),
        "RandomForestClassifier": lambda: RandomForestClassifier(n_estimators=5, max_depth=5, random_state=seed),
        "GradientBoostingRegressor": lambda: GradientBoostingRegressor(n_estimators=8, max_depth=3, random_state=seed),
        "GradientBoostingClassifier": lambda: GradientBoostingClassifier(n_estimators=8, max_depth=3, random_state=seed),
        "LinearRegression": LinearRegression,
        "LogisticRegression": lambda: LogisticRegression(max_iter=300),
        "ScalerRidge": lambda: make_pipeline(StandardScaler(), Ridge(alpha=0.5)),
    }
    est = make[base]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # an MLP on 200 iterations has not converged: fine
        est.fit(X, y)
    from skl2onnx import to_onnx
    opts = {"zipmap": False} if classes else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = to_onnx(est, X[:1], options=opts, target_opset=17)
    return m, f"sklearn {kind} seed={seed}"


SKLEARN_KINDS = ["MLPRegressor", "MLPClassifier2", "MLPClassifier3", "RandomForestRegressor",
                 "RandomForestClassifier2", "RandomForestClassifier3", "GradientBoostingRegressor",
                 "GradientBoostingClassifier2", "GradientBoostingClassifier3", "LinearRegression",
                 "LogisticRegression2", "LogisticRegression3", "ScalerRidge"]


def lightgbm_model(kind: str, seed: int = 0) -> Model:
    """A small LightGBM model (few trees, few leaves) exported with onnxmltools, target_opset 15
    (its converter's limit), zipmap=False. kind: "regressor", "classifier2", "classifier3"."""
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    classes = {"regressor": 0, "classifier2": 2, "classifier3": 3}[kind]
    X, y = training_data(seed, classes=classes)
    X = X.copy()
    X[::7, 1] = np.nan                        # LightGBM learns where missing values go
    params = dict(n_estimators=6, num_leaves=6, min_child_samples=5, random_state=seed, verbose=-1)
    est = lgb.LGBMClassifier(**params) if classes else lgb.LGBMRegressor(**params)
    est.fit(X, y)
    kw = {"zipmap": False} if classes else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = convert_lightgbm(est, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                             target_opset=15, **kw)
    return m, f"lightgbm {kind} seed={seed}"
