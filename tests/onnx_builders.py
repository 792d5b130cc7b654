"""Random ONNX models for the model tests, built with onnx.helper, and the comparison helpers.

Hypothesis strategies: ``mlps()`` (dense graphs of the native op set) and ``tree_ensembles()``
(TreeEnsembleRegressor / TreeEnsembleClassifier with every branch mode, missing-value tracking,
aggregate function, post transform and base_values form). Each draws a ``Built``: the model,
its input width and rank, and input rows to evaluate it on (with NaN where it matters).
Weights come from a numpy generator seeded by Hypothesis, which keeps shrinking cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

onnx = __import__("onnx")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper as onh  # noqa: E402

TOL_ABS = 1e-5
TOL_REL = 1e-4


@dataclass
class Built:
    model: object
    n_inputs: int
    rank: int = 2                   # the input is declared [1|None, k] (2) or [k] (1)
    rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    atol: float = 1e-5


def make_model(nodes, inits, n_in, out_name="Y", rank=2, opset=17, ml_opset=None,
               batch=None, extra_outputs=()):
    shape = [batch, n_in] if rank == 2 else [n_in]
    outs = [oh.make_tensor_value_info(n, t, None) for n, t in extra_outputs]
    outs.append(oh.make_tensor_value_info(out_name, TP.FLOAT, None))
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("X", TP.FLOAT, shape)], outs,
                      [onh.from_array(np.asarray(v), k) for k, v in inits.items()])
    imports = [oh.make_opsetid("", opset)]
    if ml_opset is not None:
        imports.append(oh.make_opsetid("ai.onnx.ml", ml_opset))
    m = oh.make_model(g, opset_imports=imports)
    m.ir_version = 8
    return m


def ort_session(model):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_rows(model, rows, rank=2, output=None):
    """onnxruntime's output for each row fed alone ([1, k], or [k] for a rank-1 input),
    flattened: (rows, n_outputs)."""
    s = ort_session(model)
    name = s.get_inputs()[0].name
    outs = [o.name for o in s.get_outputs()]
    if output is None:
        floats = [o.name for o in s.get_outputs() if o.type == "tensor(float)"]
        output = floats[0]
    res = []
    for r in np.asarray(rows, np.float32):
        feed = r[None, :] if rank == 2 else r
        res.append(np.asarray(s.run([output], {name: feed})[0], np.float32).reshape(-1))
    assert outs
    return np.vstack(res)


def assert_close(native, ref, what="", atol=TOL_ABS):
    native = np.asarray(native, np.float32)
    ref = np.asarray(ref, np.float32)
    assert native.shape == ref.shape, f"{what}: shape {native.shape} != {ref.shape}"
    both_nan = np.isnan(native) & np.isnan(ref)
    same = (native == ref) | both_nan
    with np.errstate(invalid="ignore"):
        close = np.abs(native.astype(np.float64) - ref) <= atol + TOL_REL * np.abs(ref.astype(np.float64))
    ok = same | close
    if not ok.all():
        i = np.argwhere(~ok)[0]
        raise AssertionError(f"{what}: native {native[tuple(i)]!r} vs onnxruntime {ref[tuple(i)]!r} "
                             f"at {tuple(i)}\nnative={native}\nref={ref}")


# ------------------------------------------------------------------------------------------
# dense graphs

ACTIVATIONS = ["Relu", "LeakyRelu", "Tanh", "Sigmoid", "Softmax", "Clip", "Identity"]
LINEARS = ["gemm", "gemm_transB", "gemm_alpha_beta", "matmul_add", "matmul"]


@st.composite
def mlps(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_in = draw(st.integers(1, 32))
    depth = draw(st.integers(1, 4))
    rank = draw(st.sampled_from([2, 2, 1]))
    batch = draw(st.sampled_from([None, 1]))
    opset = draw(st.sampled_from([11, 13, 17]))
    nodes, inits = [], {}
    counter = iter(range(10_000))

    def name(p):
        return f"{p}{next(counter)}"

    def init(arr):
        n = name("c")
        inits[n] = np.asarray(arr, np.float32)
        return n

    cur, width = "X", n_in
    if rank == 1:
        shape = name("s")
        inits[shape] = np.array([1, n_in], np.int64)
        out = name("t")
        nodes.append(oh.make_node("Reshape", [cur, shape], [out]))
        cur = out
    for layer in range(depth):
        # optional elementwise op against a broadcast initializer
        op = draw(st.sampled_from([None, "Sub", "Mul", "Div"]))
        if op is not None:
            form = draw(st.sampled_from(["row", "vec", "scalar", "scalar0"]))
            shp = {"row": (1, width), "vec": (width,), "scalar": (1,), "scalar0": ()}[form]
            val = rng.uniform(0.5, 1.5, size=shp) * rng.choice([-1, 1], size=shp)
            out = name("t")
            # dividing *by* an activation amplifies the activations' last-bit differences
            # (onnxruntime's Sigmoid/Tanh are approximations): only Sub/Mul take either order
            flip = op != "Div" and draw(st.booleans())
            operands = [init(val), cur] if flip else [cur, init(val)]
            nodes.append(oh.make_node(op, operands, [out]))
            cur = out
        new_width = draw(st.integers(1, 32))
        W = rng.normal(0, 1 / np.sqrt(width), size=(width, new_width)).astype(np.float32)
        b = rng.normal(0, 0.5, size=new_width).astype(np.float32)
        kind = draw(st.sampled_from(LINEARS))
        out = name("t")
        if kind == "gemm":
            nodes.append(oh.make_node("Gemm", [cur, init(W), init(b)], [out]))
        elif kind == "gemm_transB":
            nodes.append(oh.make_node("Gemm", [cur, init(W.T), init(b[None, :])], [out], transB=1))
        elif kind == "gemm_alpha_beta":
            alpha = float(rng.uniform(0.25, 2))
            beta = float(rng.uniform(0.25, 2))
            cb = b if draw(st.booleans()) else b[:1]
            nodes.append(oh.make_node("Gemm", [cur, init(W), init(cb)], [out], alpha=alpha, beta=beta))
        elif kind == "matmul_add":
            mid = name("t")
            nodes.append(oh.make_node("MatMul", [cur, init(W)], [mid]))
            nodes.append(oh.make_node("Add", [mid, init(b)], [out]))
        else:
            nodes.append(oh.make_node("MatMul", [cur, init(W)], [out]))
        cur, width = out, new_width
        act = draw(st.sampled_from(ACTIVATIONS))
        out = name("t")
        if act == "LeakyRelu":
            nodes.append(oh.make_node(act, [cur], [out], alpha=float(rng.uniform(0.01, 0.3))))
        elif act == "Clip":
            lo, hi = sorted(rng.uniform(-1.5, 1.5, size=2).tolist())
            if opset >= 11:
                nodes.append(oh.make_node(act, [cur, init(np.float32(lo)), init(np.float32(hi))], [out]))
            else:
                nodes.append(oh.make_node(act, [cur], [out], min=lo, max=hi))
        elif act == "Softmax":
            axis = draw(st.sampled_from([None, 1, -1]))
            kw = {} if axis is None else {"axis": axis}
            nodes.append(oh.make_node(act, [cur], [out], **kw))
        else:
            nodes.append(oh.make_node(act, [cur], [out]))
        cur = out
        # optional shape ops
        shape_op = draw(st.sampled_from([None, "Flatten", "Reshape", "Cast", "Concat"]))
        if shape_op is not None:
            out = name("t")
            if shape_op == "Flatten":
                nodes.append(oh.make_node("Flatten", [cur], [out], axis=1))
            elif shape_op == "Reshape":
                shp = init(np.array([1, -1], np.int64))
                inits[shp] = np.array([1, -1], np.int64)
                nodes.append(oh.make_node("Reshape", [cur, shp], [out]))
            elif shape_op == "Cast":
                nodes.append(oh.make_node("Cast", [cur], [out], to=TP.FLOAT))
            else:
                other = init(rng.normal(size=(1, draw(st.integers(1, 4)))))
                parts = [cur, other, cur] if draw(st.booleans()) else [other, cur]
                nodes.append(oh.make_node("Concat", parts, [out], axis=1))
                width += inits[other].shape[1] + (width if len(parts) == 3 else 0)
            cur = out
    nodes.append(oh.make_node("Identity", [cur], ["Y"]))
    model = make_model(nodes, inits, n_in, rank=rank, opset=opset, batch=batch)
    rows = rng.normal(0, 2, size=(3, n_in)).astype(np.float32)
    return Built(model, n_in, rank, rows)


# ------------------------------------------------------------------------------------------
# tree ensembles

MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
GRID = np.array([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0], np.float32)


@st.composite
def tree_ensembles(draw, classifier=None, n_classes=None):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if classifier is None:
        classifier = draw(st.booleans())
    n_feat = draw(st.integers(1, 6))
    n_trees = draw(st.integers(1, 5))
    max_depth = draw(st.integers(0, 4))
    mode_set = draw(st.sampled_from(["leq", "all", "one"]))
    one_mode = draw(st.sampled_from(MODES))
    tracks = draw(st.sampled_from(["none", "random", "all"]))
    ml_opset = draw(st.sampled_from([1, 3]))
    as_tensor = ml_opset == 3 and draw(st.booleans())

    if classifier:
        if n_classes is None:
            n_classes = draw(st.sampled_from([2, 2, 3, 4]))
        n_out = n_classes
        weight_form = draw(st.sampled_from(["all", "single"]))
        single_id = draw(st.integers(0, n_classes - 1))
        positive = draw(st.booleans())
        posts = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"] + ([] if n_classes == 2 else ["PROBIT"])
        post = draw(st.sampled_from(posts))
        n_base = draw(st.sampled_from([0, 1, 2] if n_classes == 2 else [0, n_classes]))
    else:
        n_out = draw(st.integers(1, 3))
        post = draw(st.sampled_from(["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]))
        agg = draw(st.sampled_from(["SUM", "AVERAGE", "MIN", "MAX"]))
        n_base = draw(st.sampled_from([0, n_out]))

    t_ids, n_ids, f_ids, modes, vals, t_true, t_false, miss = [], [], [], [], [], [], [], []
    w_tree, w_node, w_id, w_val = [], [], [], []
    for t in range(n_trees):
        # build the tree breadth-first with shuffled node ids
        nodes = []                 # (depth) ; children assigned later

        def grow(depth):
            idx = len(nodes)
            nodes.append(None)
            if depth < max_depth and (depth == 0 or rng.random() < 0.75):
                left = grow(depth + 1)
                right = grow(depth + 1)
                nodes[idx] = ("B", left, right)
            else:
                nodes[idx] = ("L",)
            return idx

        grow(0)
        ids = rng.permutation(len(nodes))
        # the root stays first (onnxruntime takes a tree's first node as its root)
        order = [0] + list(rng.permutation(np.arange(1, len(nodes))))
        for i in order:
            nd = nodes[i]
            t_ids.append(t)
            n_ids.append(int(ids[i]))
            if nd[0] == "B":
                f_ids.append(int(rng.integers(0, n_feat)))
                if mode_set == "leq":
                    modes.append("BRANCH_LEQ")
                elif mode_set == "one":
                    modes.append(one_mode)
                else:
                    modes.append(MODES[int(rng.integers(0, 6))])
                v = float(rng.choice(GRID))
                vals.append(v)
                t_true.append(int(ids[nd[1]]))
                t_false.append(int(ids[nd[2]]))
                miss.append({"none": 0, "all": 1, "random": int(rng.integers(0, 2))}[tracks])
            else:
                f_ids.append(0)
                modes.append("LEAF")
                vals.append(0.0)
                t_true.append(0)
                t_false.append(0)
                miss.append(0)
                if classifier:
                    targets = range(n_classes) if weight_form == "all" else [single_id]
                else:
                    targets = range(n_out)
                for k in targets:
                    w = float(rng.uniform(0, 1) if (classifier and positive) else rng.normal(0, 1))
                    if post == "PROBIT" and not classifier:
                        w = float(rng.uniform(0.05, 0.9)) / max(1, n_trees)
                    w_tree.append(t)
                    w_node.append(int(ids[i]))
                    w_id.append(k)
                    w_val.append(w)

    attrs = dict(nodes_treeids=t_ids, nodes_nodeids=n_ids, nodes_featureids=f_ids,
                 nodes_modes=modes, nodes_truenodeids=t_true, nodes_falsenodeids=t_false,
                 post_transform=post)
    if tracks != "none":
        attrs["nodes_missing_value_tracks_true"] = miss
    dt = np.float32
    if as_tensor:
        attrs["nodes_values_as_tensor"] = onh.from_array(np.array(vals, dt))
    else:
        attrs["nodes_values"] = vals
    base = rng.normal(0, 0.3, size=n_base).tolist()
    if n_base:
        if as_tensor:
            attrs["base_values_as_tensor"] = onh.from_array(np.array(base, dt))
        else:
            attrs["base_values"] = base
    prefix = "class" if classifier else "target"
    attrs[f"{prefix}_treeids"] = w_tree
    attrs[f"{prefix}_nodeids"] = w_node
    attrs[f"{prefix}_ids"] = w_id
    if as_tensor:
        attrs[f"{prefix}_weights_as_tensor"] = onh.from_array(np.array(w_val, dt))
    else:
        attrs[f"{prefix}_weights"] = w_val
    if classifier:
        attrs["classlabels_int64s"] = list(range(n_classes))
        node = oh.make_node("TreeEnsembleClassifier", ["X"], ["label", "Y"], domain="ai.onnx.ml", **attrs)
        extra = [("label", TP.INT64)]
    else:
        attrs["n_targets"] = n_out
        attrs["aggregate_function"] = agg
        node = oh.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", **attrs)
        extra = []
    model = make_model([node], {}, n_feat, ml_opset=ml_opset, opset=17, extra_outputs=extra)
    grid = np.concatenate([GRID, GRID + np.float32(1e-3), [np.nan]]).astype(np.float32)
    rows = rng.choice(grid, size=(8, n_feat)).astype(np.float32)
    return Built(model, n_feat, 2, rows)
