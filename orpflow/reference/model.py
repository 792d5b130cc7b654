"""Pure-Python twin of the native ONNX evaluator: the supported operators, one by one, in numpy.

Written to be read, not to be fast: it is the specification the compiled evaluator is tested
against. One row at a time (batch 1), every node's output rounded to float32 as onnxruntime
stores it. Where onnxruntime's ai.onnx.ml kernels do something the ONNX text leaves open (the
tree ensembles' binary cases, base values, one-output paths, the linear classifier with one
coefficient row), this file follows onnxruntime, the ground truth; docs/ml.md "Operator
semantics" says the same in words.

``onnx`` is imported here at module level: nothing imports orpflow.reference from
``import orpflow``, and this module is only used by tests and tools that have the ml extra.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from orpflow.ml.errors import ModelError, NotNative

F32 = np.float32
FLOAT = onnx.TensorProto.FLOAT
ML = "ai.onnx.ml"

DEFAULT_OPS = frozenset({"Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Tanh",
                         "Sigmoid", "Softmax", "Clip", "Identity", "Flatten", "Cast", "Reshape",
                         "Concat"})
ML_OPS = frozenset({"Scaler", "Normalizer", "LinearRegressor", "LinearClassifier",
                    "TreeEnsembleRegressor", "TreeEnsembleClassifier"})
POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
AGGREGATES = ("SUM", "AVERAGE", "MIN", "MAX")
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "LEAF")
# the classifiers' float output is their second one ("probabilities"/"scores"); the first is
# the label (int64 or string), never evaluated
FLOAT_OUTPUT_INDEX = {"LinearClassifier": 1, "TreeEnsembleClassifier": 1}


def node_label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else "?")


def not_native(node: onnx.NodeProto, what: str) -> NotNative:
    return NotNative(f"{what} of op {node.op_type} (node '{node_label(node)}') is not supported natively")


def attrs_of(node: onnx.NodeProto) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


# ---------------------------------------------------------------- float32 scalar helpers
# onnxruntime's ml_common.h computes these in float; each step rounds to float32 here too.

def logistic(v: F32) -> F32:
    v = F32(v)
    with np.errstate(over="ignore"):
        e = F32(1) / (F32(1) + np.exp(-np.abs(v), dtype=F32))
    return F32(1) - e if v < 0 else e


def probit(v: F32) -> F32:
    """sqrt(2) * erfinv(2v - 1) with onnxruntime's erfinv approximation (Winitzki, a = 0.147),
    not the exact inverse: probit(0.975) is 1.9604 here, not 1.95996."""
    x = F32(2) * F32(v) - F32(1)
    sgn = F32(-1) if x < 0 else F32(1)
    x = (F32(1) - x) * (F32(1) + x)
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log(x, dtype=F32)
        a = F32(2) / (F32(np.pi) * F32(0.147)) + F32(0.5) * lg
        b = F32(1) / F32(0.147) * lg
        c = -a + np.sqrt(a * a - b, dtype=F32)
        return F32(np.sqrt(F32(2))) * (sgn * np.sqrt(c, dtype=F32))


def softmax_list(v: List[F32]) -> List[F32]:
    m = F32(-np.finfo(F32).max)
    for x in v:
        if x > m:
            m = x
    e = [np.exp(F32(x) - m, dtype=F32) for x in v]
    s = F32(0)
    for x in e:
        s = F32(s + x)
    return [F32(x / s) for x in e]


def softmax_zero_list(v: List[F32]) -> List[F32]:
    """SOFTMAX over the non-zero scores; a zero score (|x| <= 1e-7) stays (almost) zero."""
    m = F32(-np.finfo(F32).max)
    for x in v:
        if x > m:
            m = x
    exp_neg_max = np.exp(-m, dtype=F32)
    out: List[F32] = []
    s = F32(0)
    for x in v:
        if x > F32(1e-7) or x < F32(-1e-7):
            y = np.exp(F32(x) - m, dtype=F32)
            s = F32(s + y)
        else:
            y = F32(x * exp_neg_max)
        out.append(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [F32(x / s) for x in out]


def transform_scores(v: List[F32], post: str) -> List[F32]:
    """Post transform of two or more scores (onnxruntime's write_scores, scores.size() >= 2)."""
    if post == "PROBIT":
        return [probit(x) for x in v]
    if post == "LOGISTIC":
        return [logistic(x) for x in v]
    if post == "SOFTMAX":
        return softmax_list(v)
    if post == "SOFTMAX_ZERO":
        return softmax_zero_list(v)
    return [F32(x) for x in v]


def expand_binary(s: F32, post: str, add_second_class: int) -> List[F32]:
    """One score made into two probabilities (write_scores, scores.size() == 1)."""
    if add_second_class in (0, 1):
        return [F32(F32(1) - s), F32(s)]
    if post == "LOGISTIC":
        return [logistic(-s), logistic(s)]
    return [F32(-s), F32(s)]


# ---------------------------------------------------------------- tree ensembles

class Trees:
    """The attributes of TreeEnsembleRegressor/Classifier, checked and linked once."""

    def __init__(self, node: onnx.NodeProto, a: Dict[str, Any], prefix: str) -> None:
        def floats(name: str) -> Optional[np.ndarray]:
            if name in a:
                return np.asarray(a[name], dtype=F32)
            t = a.get(name + "_as_tensor")
            if t is None:
                return None
            if t.dtype != F32:
                # onnxruntime reads a threshold/weight tensor of the input's type (float32 here)
                raise not_native(node, f"attribute {name}_as_tensor of type {t.dtype}")
            return t.astype(F32).ravel()

        for name, allowed in (("post_transform", POST_TRANSFORMS), ("aggregate_function", AGGREGATES)):
            if name in a and a[name] not in allowed:
                raise not_native(node, f"{name} {a[name]}")
        self.post = a.get("post_transform", "NONE")
        self.aggregate = a.get("aggregate_function", "SUM")
        modes = list(a.get("nodes_modes", []))
        for m in modes:
            if m not in MODES:
                raise not_native(node, f"nodes_modes value {m}")
        treeids = list(a.get("nodes_treeids", []))
        nodeids = list(a.get("nodes_nodeids", []))
        feat = list(a.get("nodes_featureids", []))
        true_ids = list(a.get("nodes_truenodeids", []))
        false_ids = list(a.get("nodes_falsenodeids", []))
        values = floats("nodes_values")
        n = len(treeids)
        if not n or values is None or any(len(x) != n for x in (nodeids, feat, true_ids, false_ids, modes, values)):
            raise ModelError(f"node '{node_label(node)}': the nodes_* attributes differ in length")
        missing = list(a.get("nodes_missing_value_tracks_true", []))
        base = floats("base_values")
        self.base: List[F32] = [] if base is None else [F32(x) for x in base]
        wt = floats(prefix + "_weights")
        ids = list(a.get(prefix + "_ids", []))
        w_nodes = list(a.get(prefix + "_nodeids", []))
        w_trees = list(a.get(prefix + "_treeids", []))
        if wt is None or not (len(ids) == len(w_nodes) == len(w_trees) == len(wt)):
            raise ModelError(f"node '{node_label(node)}': the {prefix}_* attributes differ in length")

        index: Dict[Tuple[int, int], int] = {}
        for i in range(n):
            key = (treeids[i], nodeids[i])
            if key in index:
                raise ModelError(f"node '{node_label(node)}': tree {key[0]} has node {key[1]} twice")
            index[key] = i
        self.leaf = [m == "LEAF" for m in modes]
        self.mode = modes
        self.feature = [int(f) for f in feat]
        self.threshold = [F32(v) for v in values]
        self.tracks_missing = [i < len(missing) and missing[i] == 1 for i in range(n)]
        self.true_next = [0] * n
        self.false_next = [0] * n
        for i in range(n):
            if self.leaf[i]:
                continue
            for ids_, dest in ((true_ids, self.true_next), (false_ids, self.false_next)):
                j = index.get((treeids[i], ids_[i]))
                if j is None or j == i:
                    raise ModelError(f"node '{node_label(node)}': tree {treeids[i]} node {nodeids[i]} "
                                     f"points to a missing node {ids_[i]}")
                dest[i] = j
        # a leaf's weights in the order onnxruntime sums them: by (tree, node), then as listed;
        # weights on a branch node are ignored (old converters wrote some)
        self.weights: List[List[Tuple[int, F32]]] = [[] for _ in range(n)]
        for k in sorted(range(len(ids)), key=lambda k: (w_trees[k], w_nodes[k], k)):
            j = index.get((w_trees[k], w_nodes[k]))
            if j is None:
                raise ModelError(f"node '{node_label(node)}': a weight names a missing node "
                                 f"{w_nodes[k]} of tree {w_trees[k]}")
            if self.leaf[j]:
                self.weights[j].append((int(ids[k]), F32(wt[k])))
        for i in range(n):
            if self.leaf[i] and not self.weights[i]:
                raise ModelError(f"node '{node_label(node)}': leaf {nodeids[i]} of tree {treeids[i]} has no weight")
        # a tree starts wherever the listed tree id changes (onnxruntime's rule)
        self.roots = [i for i in range(n) if i == 0 or treeids[i] != treeids[i - 1]]
        self.max_feature = max((self.feature[i] for i in range(n) if not self.leaf[i]), default=-1)
        for r in self.roots:                      # no cycles: a walk visits each node at most once
            seen = set()
            stack = [r]
            while stack:
                i = stack.pop()
                if i in seen:
                    raise ModelError(f"node '{node_label(node)}': tree {treeids[r]} has a cycle or a shared node")
                seen.add(i)
                if not self.leaf[i]:
                    stack += [self.true_next[i], self.false_next[i]]
        self.ids_used = {t for w in self.weights for t, _ in w}
        self.all_positive = all(v >= 0 for w in self.weights for _, v in w)

    def leaf_of(self, root: int, x: np.ndarray) -> int:
        i = root
        while not self.leaf[i]:
            v = F32(x[self.feature[i]])
            t = self.threshold[i]
            m = self.mode[i]
            go: bool
            if m == "BRANCH_LEQ":
                go = bool(v <= t)
            elif m == "BRANCH_LT":
                go = bool(v < t)
            elif m == "BRANCH_GTE":
                go = bool(v >= t)
            elif m == "BRANCH_GT":
                go = bool(v > t)
            elif m == "BRANCH_EQ":
                go = bool(v == t)
            else:                                 # BRANCH_NEQ: NaN != t, so NaN goes true
                go = bool(v != t)
            if not go and self.tracks_missing[i] and np.isnan(v):
                go = True
            i = self.true_next[i] if go else self.false_next[i]
        return i

    def accumulate(self, x: np.ndarray, n: int, aggregate: str) -> Tuple[List[F32], List[bool]]:
        """Per output: (score, has_score) after every tree, as onnxruntime's N-output path."""
        score = [F32(0)] * n
        has = [False] * n
        for r in self.roots:
            for t, w in self.weights[self.leaf_of(r, x)]:
                if aggregate in ("SUM", "AVERAGE"):
                    score[t] = F32(score[t] + w)
                elif aggregate == "MIN":
                    score[t] = w if (not has[t] or w < score[t]) else score[t]
                else:
                    score[t] = w if (not has[t] or w > score[t]) else score[t]
                has[t] = True
        return score, has

    def always_scores(self, target: int) -> bool:
        """True when some tree carries a weight for `target` on every leaf (so every row scores it)."""
        for r in self.roots:
            stack, ok = [r], True
            while stack and ok:
                i = stack.pop()
                if self.leaf[i]:
                    ok = any(t == target for t, _ in self.weights[i])
                else:
                    stack += [self.true_next[i], self.false_next[i]]
            if ok:
                return True
        return False


def tree_regressor(node: onnx.NodeProto, a: Dict[str, Any]) -> Callable:
    tr = Trees(node, a, "target")
    n = int(a.get("n_targets", 1))
    if n < 1:
        raise ModelError(f"node '{node_label(node)}': n_targets must be positive")
    if any(t < 0 or t >= n for t in tr.ids_used):
        raise ModelError(f"node '{node_label(node)}': a target id is outside 0..{n - 1}")
    if len(tr.base) not in (0, n):
        raise ModelError(f"node '{node_label(node)}': {len(tr.base)} base values for {n} targets")
    n_trees = len(tr.roots)

    def one_target(x: np.ndarray) -> List[F32]:
        # the one-output path reads only each leaf's first weight, whatever its target id, and
        # applies no post transform but PROBIT
        origin = tr.base[0] if len(tr.base) == 1 else F32(0)
        score, has = F32(0), False
        for r in tr.roots:
            w = tr.weights[tr.leaf_of(r, x)][0][1]
            if tr.aggregate in ("SUM", "AVERAGE"):
                score = F32(score + w)
            elif tr.aggregate == "MIN":
                score = w if (not has or w < score) else score
            else:
                score = w if (not has or w > score) else score
            has = True
        if tr.aggregate == "AVERAGE":
            score = F32(F32(score / F32(n_trees)) + origin)
        elif tr.aggregate == "SUM":
            score = F32(score + origin)
        else:
            score = F32(score + origin) if has else origin
        return [probit(score) if tr.post == "PROBIT" else score]

    def targets(x: np.ndarray) -> List[F32]:
        score, has = tr.accumulate(x, n, tr.aggregate)
        use_base = len(tr.base) == n
        for t in range(n):
            base = tr.base[t] if use_base else F32(0)
            if tr.aggregate == "SUM":
                score[t] = F32(score[t] + base)
            elif tr.aggregate == "AVERAGE":
                score[t] = F32(F32(score[t] / F32(n_trees)) + base)
            else:
                score[t] = F32(base + (score[t] if has[t] else F32(0)))
        # a target no leaf scored reads 0, base value or not (onnxruntime's ScoreValue)
        return transform_scores([score[t] if has[t] else F32(0) for t in range(n)], tr.post)

    run = one_target if n == 1 else targets
    return lambda x: rows_of(x, tr.max_feature, run)


def tree_classifier(node: onnx.NodeProto, a: Dict[str, Any]) -> Callable:
    tr = Trees(node, a, "class")
    labels = a.get("classlabels_int64s") or a.get("classlabels_strings") or []
    n = len(labels)
    if n < 2:
        raise not_native(node, f"{n} class label(s)")
    if any(t < 0 or t >= n for t in tr.ids_used):
        raise ModelError(f"node '{node_label(node)}': a class id is outside 0..{n - 1}")
    if len(tr.base) not in ((0, 1, 2) if n == 2 else (0, n)):
        raise ModelError(f"node '{node_label(node)}': {len(tr.base)} base values for {n} classes")
    binary = n == 2 and len(tr.ids_used) == 1     # weights for one class only
    if n == 2 and len(tr.base) in (0, 1) and not tr.always_scores(1):
        # a row that scores no class 1 leaves one score; onnxruntime then writes only
        # probabilities[0] for PROBIT, or with one base value and weights for both classes
        if tr.post == "PROBIT" or (not binary and len(tr.base) == 1):
            raise not_native(node, f"post_transform {tr.post} with {len(tr.base)} base value(s) on two "
                             "classes (onnxruntime leaves probabilities[1] unset)")

    def run(x: np.ndarray) -> List[F32]:
        score, has = tr.accumulate(x, n, "SUM")
        if n > 2:
            for k, b in enumerate(tr.base):
                score[k] = b if not has[k] else F32(score[k] + b)
                has[k] = True
            return transform_scores([score[k] if has[k] else F32(0) for k in range(n)], tr.post)
        add_second = -1
        if len(tr.base) == 2:
            if has[1]:
                # onnxruntime ignores class 1's own sum here and base_values[0]
                score[1] = F32(tr.base[1] + score[0])
                score[0] = F32(-score[1])
            else:
                score[1] = F32(score[1] + tr.base[1])
                score[0] = F32(score[0] + tr.base[0])
        elif len(tr.base) == 1:
            score[0] = F32(score[0] + tr.base[0])
        elif not tr.base:
            add_second = 3
        one = len(tr.base) in (0, 1) and not has[1]
        if binary:
            if one:
                pos = score[0] if has[0] else F32(0)
            else:
                pos = score[1] if has[1] else (score[0] if has[0] else F32(0))
            if tr.all_positive:
                add_second = 0 if pos > F32(0.5) else 1
            else:
                add_second = 2 if pos > 0 else 3
        if not one:
            return transform_scores([score[k] if has[k] else F32(0) for k in range(2)], tr.post)
        s = score[0] if has[0] else F32(0)
        return expand_binary(s, tr.post, add_second)

    return lambda x: rows_of(x, tr.max_feature, run)


def rows_of(x: np.ndarray, max_feature: int, run: Callable[[np.ndarray], List[F32]]) -> np.ndarray:
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.ndim != 2 or max_feature >= rows.shape[1]:
        raise ModelError(f"a tree reads feature {max_feature} of a {rows.shape} input")
    return np.array([run(r) for r in rows], dtype=F32)


# ---------------------------------------------------------------- linear models and the rest

def linear_regressor(node: onnx.NodeProto, a: Dict[str, Any]) -> Callable:
    post = a.get("post_transform", "NONE")
    if post not in POST_TRANSFORMS:
        raise not_native(node, f"post_transform {post}")
    n = int(a.get("targets", 1))
    coef = np.asarray(a.get("coefficients", []), dtype=F32)
    if n < 1 or coef.size % n:
        raise ModelError(f"node '{node_label(node)}': {coef.size} coefficients for {n} targets")
    coef = coef.reshape(n, -1)
    icpt = np.asarray(a.get("intercepts", []), dtype=F32)
    use_icpt = icpt.size == n                 # onnxruntime ignores intercepts of another length

    def run(x: np.ndarray) -> np.ndarray:
        rows = x.reshape(1, -1) if x.ndim == 1 else x
        z = (rows @ coef.T).astype(F32)
        if use_icpt:
            z = (z + icpt).astype(F32)
        # one target: only PROBIT applies (onnxruntime's batched scores, batch of 1)
        if n == 1:
            return np.array([[probit(v[0]) if post == "PROBIT" else v[0]] for v in z], dtype=F32)
        return np.array([transform_scores(list(v), post) for v in z], dtype=F32)

    return run


def linear_classifier(node: onnx.NodeProto, a: Dict[str, Any]) -> Callable:
    post = a.get("post_transform", "NONE")
    if post not in POST_TRANSFORMS:
        raise not_native(node, f"post_transform {post}")
    icpt = np.asarray(a.get("intercepts", []), dtype=F32)
    n = icpt.size                             # onnxruntime counts classes by the intercepts
    coef = np.asarray(a.get("coefficients", []), dtype=F32)
    if n < 1 or coef.size % n:
        raise ModelError(f"node '{node_label(node)}': {coef.size} coefficients for {n} intercepts")
    coef = coef.reshape(n, -1)
    labels = a.get("classlabels_ints") or a.get("classlabels_strings") or []
    if n == 1 and len(labels) != 2:
        # onnxruntime refuses to load it
        raise ModelError(f"node '{node_label(node)}': one coefficient row needs exactly two class labels")
    second = n == 1
    if second and post == "PROBIT":
        raise not_native(node, "post_transform PROBIT with one coefficient row "
                         "(onnxruntime leaves probabilities[1] unset)")

    def row(z: np.ndarray) -> List[F32]:
        v = [F32(t) for t in z]
        if second:
            # the binary case: p = logistic(z) for LOGISTIC, else p = z untransformed (SOFTMAX
            # and SOFTMAX_ZERO are ignored); the output is [1 - p, p]
            p = logistic(v[0]) if post == "LOGISTIC" else v[0]
            return [F32(F32(1) - p), p]
        return transform_scores(v, post)

    def run(x: np.ndarray) -> np.ndarray:
        rows = x.reshape(1, -1) if x.ndim == 1 else x
        z = ((rows @ coef.T).astype(F32) + icpt).astype(F32)
        return np.array([row(v) for v in z], dtype=F32)

    return run


def scaler(node: onnx.NodeProto, a: Dict[str, Any]) -> Callable:
    offset = np.asarray(a.get("offset", [0.0]), dtype=F32)
    scale = np.asarray(a.get("scale", [1.0]), dtype=F32)
    return lambda x: ((x.astype(F32) - offset) * scale).astype(F32)


def normalizer(node: onnx.NodeProto, a: Dict[str, Any]) -> Callable:
    norm = a.get("norm", "MAX")
    if norm not in ("MAX", "L1", "L2"):
        raise not_native(node, f"norm {norm}")

    def one(r: np.ndarray) -> List[F32]:
        v = [F32(t) for t in r]
        if norm == "MAX":
            d = F32(np.finfo(F32).min)
            for t in v:
                d = t if d < t else d            # std::max(d, t): NaN never wins
            return [F32(t / d) for t in v] if d != 0 else v
        if norm == "L1":
            d = F32(0)
            for t in v:
                d = F32(d + abs(t))
            return [F32(t / d) for t in v] if d != 0 else v
        sq = [F32(t * t) for t in v]
        d = F32(0)
        for t in sq:
            d = F32(d + t)
        if d == 0:
            return v
        return [F32(-np.sqrt(F32(q / d), dtype=F32)) if t < 0 else np.sqrt(F32(q / d), dtype=F32)
                for t, q in zip(v, sq)]

    def run(x: np.ndarray) -> np.ndarray:
        if x.ndim > 2:
            raise ModelError("Normalizer needs a 1-D or 2-D input")
        out = np.array([one(r) for r in x.reshape(-1, x.shape[-1])], dtype=F32)
        return out.reshape(x.shape)

    return run


def softmax(x: np.ndarray, axis: int, coerce_2d: bool) -> np.ndarray:
    axis = axis + x.ndim if axis < 0 else axis
    if coerce_2d:                               # opset < 13: flatten to 2-D at axis
        shape = x.shape
        y = x.reshape(int(np.prod(shape[:axis], dtype=np.int64)), -1)
        return softmax(y, 1, False).reshape(shape)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(F32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x64))).astype(F32)


# ---------------------------------------------------------------- the graph

class ReferenceModel:
    """An ONNX model evaluated node by node in numpy, pruned to one float output.

    ``evaluate(x)`` takes float32 of shape (k,) or (rows, k) and returns float32
    (rows, n_outputs), each row evaluated alone as a batch of one.
    """

    def __init__(self, model: onnx.ModelProto, output: Optional[str] = None) -> None:
        graph = model.graph
        self.opset = {(imp.domain or "ai.onnx"): imp.version for imp in model.opset_import}
        self.opset.setdefault("ai.onnx", 1)
        self.values: Dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.values]
        if len(inputs) != 1:
            raise ModelError(f"the model has {len(inputs)} inputs; one (the feature vector) is needed")
        self.input_name = inputs[0].name
        dims = inputs[0].type.tensor_type.shape.dim
        if len(dims) not in (1, 2) or not dims[-1].HasField("dim_value") or dims[-1].dim_value < 1:
            raise ModelError(f"input '{self.input_name}' must be [k] or [batch, k] with a fixed k")
        if len(dims) == 2 and dims[0].HasField("dim_value") and dims[0].dim_value not in (1,):
            raise ModelError(f"input '{self.input_name}' has a fixed batch of {dims[0].dim_value}; 1 or symbolic is needed")
        self.n_inputs = int(dims[-1].dim_value)
        self.input_shape: Tuple[int, ...] = (self.n_inputs,) if len(dims) == 1 else (1, self.n_inputs)

        floats = [o.name for o in graph.output if o.type.tensor_type.elem_type == FLOAT]
        if output is None:
            if not floats:
                raise ModelError("the model has no float output")
            output = floats[0]
        elif output not in floats:
            raise ModelError(f"'{output}' is not a float output of the model (float outputs: {floats})")
        self.output = output

        producer: Dict[str, Tuple[int, int]] = {}
        for i, node in enumerate(graph.node):
            for j, name in enumerate(node.output):
                if name:
                    producer[name] = (i, j)
        needed, stack = set(), [output]
        while stack:
            name = stack.pop()
            if name in self.values or name == self.input_name or not name:
                continue
            if name not in producer:
                raise ModelError(f"value '{name}' is produced by no node")
            i, j = producer[name]
            node = graph.node[i]
            if j != FLOAT_OUTPUT_INDEX.get(node.op_type, 0) and node.domain in ("", "ai.onnx", ML):
                if node.op_type in DEFAULT_OPS | ML_OPS:
                    raise not_native(node, f"output {j} ('{name}')")
            if i not in needed:
                needed.add(i)
                stack.extend(node.input)
        # graph order is topological in a valid model; the first unsupported op is named
        self.steps: List[Tuple[onnx.NodeProto, Callable]] = []
        for i in sorted(needed):
            node = graph.node[i]
            self.steps.append((node, self.compile(node)))
        self.n_outputs = int(self.run(np.zeros(self.n_inputs, dtype=F32)).size)

    # each op becomes a function of its evaluated inputs (a list; None for an absent optional)
    def compile(self, node: onnx.NodeProto) -> Callable:
        domain = node.domain or "ai.onnx"
        op = node.op_type
        supported = DEFAULT_OPS if domain == "ai.onnx" else ML_OPS if domain == ML else frozenset()
        if op not in supported:
            shown = op if domain in ("ai.onnx", ML) else f"{domain}.{op}"
            raise NotNative(f"op {shown} (node '{node_label(node)}') is not supported natively")
        a = attrs_of(node)
        version = self.opset.get(domain, 1)

        if op == "Gemm":
            alpha, beta = F32(a.get("alpha", 1.0)), F32(a.get("beta", 1.0))
            ta, tb = int(a.get("transA", 0)), int(a.get("transB", 0))

            def gemm(v):
                A = v[0].T if ta else v[0]
                B = v[1].T if tb else v[1]
                y = (alpha * (A.astype(F32) @ B.astype(F32))).astype(F32)
                if len(v) > 2 and v[2] is not None:
                    y = (y + beta * v[2].astype(F32)).astype(F32)
                return y
            return gemm
        if op == "MatMul":
            return lambda v: (v[0].astype(F32) @ v[1].astype(F32)).astype(F32)
        if op in ("Add", "Sub", "Mul", "Div"):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]

            def arith(v):
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    return f(v[0].astype(F32), v[1].astype(F32)).astype(F32)
            return arith
        if op == "Relu":
            return lambda v: np.maximum(v[0], F32(0)).astype(F32)
        if op == "LeakyRelu":
            alpha = F32(a.get("alpha", 0.01))
            return lambda v: np.where(v[0] >= 0, v[0], (alpha * v[0]).astype(F32)).astype(F32)
        if op == "Tanh":
            return lambda v: np.tanh(v[0].astype(np.float64)).astype(F32)
        if op == "Sigmoid":
            return lambda v: sigmoid(v[0])
        if op == "Softmax":
            axis = int(a.get("axis", -1 if version >= 13 else 1))
            return lambda v: softmax(v[0].astype(F32), axis, version < 13)
        if op == "Clip":
            if version < 11:
                lo = F32(a.get("min", -np.finfo(F32).max))
                hi = F32(a.get("max", np.finfo(F32).max))
                return lambda v: np.minimum(np.maximum(v[0], lo), hi).astype(F32)

            def clip(v):
                y = v[0].astype(F32)
                if len(v) > 1 and v[1] is not None:
                    y = np.maximum(y, F32(v[1]))
                if len(v) > 2 and v[2] is not None:
                    y = np.minimum(y, F32(v[2]))
                return y.astype(F32)
            return clip
        if op == "Identity":
            return lambda v: v[0]
        if op == "Flatten":
            axis = int(a.get("axis", 1))

            def flatten(v):
                x = v[0]
                ax = axis + x.ndim if axis < 0 else axis
                return x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)
            return flatten
        if op == "Cast":
            if int(a.get("to", 0)) != FLOAT:
                name = onnx.TensorProto.DataType.Name(int(a.get("to", 0)))
                raise not_native(node, f"cast to {name}")
            return lambda v: v[0].astype(F32)
        if op == "Reshape":
            if version < 5:
                target = list(a.get("shape", []))
            else:
                if len(node.input) < 2 or node.input[1] not in self.values:
                    raise not_native(node, "a computed target shape")
                target = [int(d) for d in self.values[node.input[1]].ravel()]
            allowzero = int(a.get("allowzero", 0))

            def reshape(v):
                x = v[0]
                shape = [x.shape[i] if (d == 0 and not allowzero) else d for i, d in enumerate(target)]
                return x.reshape(shape)
            return reshape
        if op == "Concat":
            axis = int(a["axis"])
            return lambda v: np.concatenate([t.astype(F32) for t in v], axis=axis)
        if op == "Scaler":
            return wrap1(scaler(node, a))
        if op == "Normalizer":
            return wrap1(normalizer(node, a))
        if op == "LinearRegressor":
            return wrap1(linear_regressor(node, a))
        if op == "LinearClassifier":
            return wrap1(linear_classifier(node, a))
        if op == "TreeEnsembleRegressor":
            return wrap1(tree_regressor(node, a))
        return wrap1(tree_classifier(node, a))

    def run(self, x: np.ndarray) -> np.ndarray:
        env = dict(self.values)
        env[self.input_name] = np.asarray(x, dtype=F32).reshape(self.input_shape)
        for node, f in self.steps:
            args = [env[name] if name else None for name in node.input]
            out = f(args)
            j = FLOAT_OUTPUT_INDEX.get(node.op_type, 0)
            env[node.output[j]] = np.asarray(out)
        return np.asarray(env[self.output], dtype=F32).ravel()

    def evaluate(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=F32)
        rows = x.reshape(1, -1) if x.ndim == 1 else x
        if rows.ndim != 2 or rows.shape[1] != self.n_inputs:
            raise ValueError(f"expected {self.n_inputs} features per row, got shape {x.shape}")
        out = np.empty((rows.shape[0], self.n_outputs), dtype=F32)
        for i, r in enumerate(rows):
            out[i] = self.run(r)
        return out


def wrap1(f: Callable[[np.ndarray], np.ndarray]) -> Callable:
    return lambda v: f(v[0].astype(F32))
