"""Compile an ONNX graph into orpflow's native evaluator (``NativeModel``).

The graph is pruned to the nodes the chosen output needs, its static shapes are inferred for
one row (a symbolic batch dimension is 1), every node's op, domain and attributes are checked,
and each node is lowered into the flat program of ``orpflow._core.model``. Anything outside the
supported set raises ``NotNative`` naming it (onnxruntime evaluates such a model instead); an
invalid graph raises ``ModelError``. Sizes are checked before anything is allocated.

Semantics follow onnxruntime (the ground truth), including its ai.onnx.ml special cases; the
comments below say where they are surprising.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from orpflow._core.model import KINDS, MAX_ELEMENTS, OPS_WIDTH, NativeModel
from orpflow.ml.errors import ModelError, NotNative

__all__ = ["compile_native", "NATIVE_OPS"]

ML = "ai.onnx.ml"
DEFAULT_OPS = {
    "Gemm": {"alpha", "beta", "transA", "transB", "broadcast"},
    "MatMul": set(),
    "Add": {"broadcast", "axis"},
    "Sub": {"broadcast", "axis"},
    "Mul": {"broadcast", "axis"},
    "Div": {"broadcast", "axis"},
    "Relu": set(),
    "LeakyRelu": {"alpha"},
    "Tanh": set(),
    "Sigmoid": set(),
    "Softmax": {"axis"},
    "Clip": {"min", "max"},
    "Identity": set(),
    "Flatten": {"axis"},
    "Cast": {"to", "saturate"},
    "Reshape": {"allowzero", "shape"},
    "Concat": {"axis"},
}
_TREE_NODE_ATTRS = {
    "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
    "nodes_values_as_tensor", "nodes_truenodeids", "nodes_falsenodeids",
    "nodes_missing_value_tracks_true", "nodes_hitrates", "nodes_hitrates_as_tensor",
    "base_values", "base_values_as_tensor", "post_transform",
}
ML_OPS = {
    "Scaler": {"offset", "scale"},
    "Normalizer": {"norm"},
    "LinearRegressor": {"coefficients", "intercepts", "targets", "post_transform"},
    "LinearClassifier": {"coefficients", "intercepts", "classlabels_ints", "classlabels_strings",
                         "multi_class", "post_transform"},
    "TreeEnsembleRegressor": _TREE_NODE_ATTRS | {
        "target_ids", "target_nodeids", "target_treeids", "target_weights",
        "target_weights_as_tensor", "n_targets", "aggregate_function"},
    "TreeEnsembleClassifier": _TREE_NODE_ATTRS | {
        "class_ids", "class_nodeids", "class_treeids", "class_weights", "class_weights_as_tensor",
        "classlabels_int64s", "classlabels_strings"},
}
# op -> supported attributes (the documentation's coverage table is generated from this)
NATIVE_OPS = {**{k: sorted(v) for k, v in DEFAULT_OPS.items()},
              **{f"{ML}.{k}": sorted(v) for k, v in ML_OPS.items()}}

POST = {"NONE": 0, "LOGISTIC": 1, "SOFTMAX": 2, "SOFTMAX_ZERO": 3, "PROBIT": 4}
AGG = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}
MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
         "BRANCH_NEQ": 5}
U_RELU, U_LEAKY, U_TANH, U_SIGMOID, U_CLIP, U_PROBIT, U_LOGISTIC = range(7)
B_ADD, B_SUB, B_MUL, B_DIV = range(4)
FLOAT, DOUBLE, INT64 = 1, 11, 7
CAP = int(MAX_ELEMENTS)         # floats (and int32s) of one model: 256 MB each


class _Val:
    """A tensor of the program: arena-resident (off) or constant (const)."""

    __slots__ = ("shape", "off", "const")

    def __init__(self, shape: tuple[int, ...], off: Any = None, const: np.ndarray | None = None):
        self.shape = shape
        self.off = off
        self.const = const

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


class _Program:
    def __init__(self) -> None:
        self.arena = 0
        self.consts: list[np.ndarray] = []
        self.n_consts = 0
        self.ints: list[np.ndarray] = []
        self.n_ints = 0
        self.ops: list[list[Any]] = []
        self.op_floats: list[tuple[float, float]] = []

    def alloc(self, n: int) -> tuple[str, int]:
        if n < 0 or self.arena + n > CAP:
            raise ModelError(f"the model's tensors exceed {CAP * 4 >> 20} MB")
        off = self.arena
        self.arena += max(n, 0)
        return ("a", off)

    def const(self, arr: np.ndarray) -> tuple[str, int]:
        arr = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
        if self.n_consts + arr.size > CAP:
            raise ModelError(f"the model's parameters exceed {CAP * 4 >> 20} MB")
        off = self.n_consts
        self.consts.append(arr)
        self.n_consts += arr.size
        return ("c", off)

    def int_block(self, arr: np.ndarray) -> int:
        arr = np.ascontiguousarray(arr, dtype=np.int32).reshape(-1)
        if self.n_ints + arr.size > CAP:
            raise ModelError(f"the model's parameters exceed {CAP * 4 >> 20} MB")
        off = self.n_ints
        self.ints.append(arr)
        self.n_ints += arr.size
        return off

    def where(self, v: _Val) -> tuple[str, int]:
        """Offset of a value, placing a constant in the parameters on first use."""
        if v.off is None:
            v.off = self.const(v.const)
        return v.off

    def emit(self, kind: str, sub: int, *params: Any, f0: float = 0.0, f1: float = 0.0) -> None:
        row = [KINDS[kind], sub, *params]
        row += [0] * (OPS_WIDTH - len(row))
        self.ops.append(row)
        self.op_floats.append((f0, f1))

    def resolve(self, ref: Any) -> int:
        if isinstance(ref, tuple):
            return ref[1] if ref[0] == "a" else self.arena + ref[1]
        return int(ref)


# ------------------------------------------------------------------------------------------
# reading the model


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        if a.name in out:
            raise ModelError(f"node '{node.name}' repeats attribute '{a.name}'")
        if a.ref_attr_name:
            raise NotNative(f"op {node.op_type} (node '{node.name}') uses a referenced attribute")
        if a.type == a.TENSOR:
            out[a.name] = _tensor(a.t, f"attribute {a.name} of node '{node.name}'")
        else:
            out[a.name] = helper.get_attribute_value(a)
    return out


def _tensor(t: Any, what: str) -> np.ndarray:
    from onnx import numpy_helper

    if t.data_location == t.EXTERNAL or len(t.external_data):
        raise ModelError(f"{what} is stored in an external file (not read)")
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise ModelError(f"{what} has a negative dimension {dims}")
    if _size(tuple(dims)) > CAP:
        raise ModelError(f"{what} is too large ({dims})")
    if t.data_type not in (FLOAT, DOUBLE, INT64, 6, 10):      # float, double, int64, int32, f16
        raise NotNative(f"{what} has element type {t.data_type} (not a number type read natively)")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:  # malformed payload: wrong byte count, ...
        raise ModelError(f"{what} cannot be read: {e}") from None
    if arr.shape != tuple(dims):
        raise ModelError(f"{what} holds {arr.size} values for dims {dims}")
    return arr


def _f32(v: Any, what: str) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64)
    if arr.size > CAP:
        raise ModelError(f"{what} is too large")
    return arr.astype(np.float32).reshape(-1)


def _shape_of_input(vi: Any) -> tuple[int, ...]:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise NotNative(f"input '{vi.name}' is not a tensor")
    if tt.elem_type != FLOAT:
        raise NotNative(f"input '{vi.name}' has element type {tt.elem_type} (native reads float32)")
    if not tt.HasField("shape"):
        raise ModelError(f"input '{vi.name}' has no declared shape")
    dims = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            if d.dim_value < 0:
                raise ModelError(f"input '{vi.name}' has a negative dimension")
            dims.append(int(d.dim_value))
        elif i == 0 and len(tt.shape.dim) > 1:
            dims.append(1)     # symbolic batch: one row
        else:
            raise NotNative(f"input '{vi.name}' has a symbolic feature dimension")
    if len(dims) == 2 and dims[0] != 1:
        raise NotNative(f"input '{vi.name}' has batch dimension {dims[0]} (native evaluates one row)")
    if len(dims) not in (1, 2) or dims[-1] < 1:
        raise NotNative(f"input '{vi.name}' has shape {dims} (native needs [k] or [1, k])")
    if dims[-1] > CAP:
        raise ModelError(f"input '{vi.name}' is too large")
    return tuple(dims)


def _prune(graph: Any, target: str, known: set[str]) -> list[Any]:
    """The nodes `target` depends on, in an order where producers come first (iterative DFS;
    a cycle is a ModelError)."""
    producer: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for o in node.output:
            if not o:
                continue
            if o in producer or o in known:
                raise ModelError(f"tensor '{o}' is produced twice")
            producer[o] = i
    order: list[int] = []
    state: dict[int, int] = {}          # 1 on the path, 2 done
    if target in known:
        return []
    if target not in producer:
        raise ModelError(f"output '{target}' is not produced by any node")
    stack: list[tuple[int, int]] = [(producer[target], 0)]
    state[producer[target]] = 1
    while stack:
        ni, k = stack.pop()
        node = graph.node[ni]
        inputs = [x for x in node.input if x]
        if k < len(inputs):
            stack.append((ni, k + 1))
            name = inputs[k]
            if name in known:
                continue
            if name not in producer:
                raise ModelError(f"tensor '{name}' (input of node '{node.name}') has no producer "
                                 "and is neither an input nor an initializer")
            pi = producer[name]
            s = state.get(pi, 0)
            if s == 1:
                raise ModelError(f"the graph has a cycle through node '{graph.node[pi].name}'")
            if s == 0:
                state[pi] = 1
                stack.append((pi, 0))
        else:
            state[ni] = 2
            order.append(ni)
    return [graph.node[i] for i in order]


# ------------------------------------------------------------------------------------------


def compile_native(model: Any, output: str | None = None) -> NativeModel:
    """Compile `model` (an ``onnx.ModelProto``) for the native evaluator.

    `output` names the graph output to evaluate; by default the first graph output whose
    element type is float. Raises NotNative for what the native evaluator does not implement
    and ModelError for an invalid model (never another exception for a malformed one).
    """
    try:
        return _compile(model, output)
    except (ModelError, NotNative, MemoryError):
        raise
    except (TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError,
            RecursionError) as e:
        # a malformed attribute or field of a type the lowering did not expect
        raise ModelError(f"malformed model ({type(e).__name__}: {e})") from None


def _compile(model: Any, output: str | None) -> NativeModel:
    import onnx

    if not isinstance(model, onnx.ModelProto):
        raise ModelError("not an ONNX model")
    graph = model.graph
    opsets: dict[str, int] = {}
    for o in model.opset_import:
        opsets[o.domain or ""] = int(o.version)
    if "ai.onnx" in opsets:
        opsets.setdefault("", opsets["ai.onnx"])

    inits: dict[str, Any] = {}
    for t in graph.initializer:
        if t.name in inits:
            raise ModelError(f"initializer '{t.name}' is defined twice")
        inits[t.name] = t
    if len(graph.sparse_initializer):
        raise NotNative("sparse initializers are not supported natively")
    real_inputs = [vi for vi in graph.input if vi.name not in inits]
    if len(real_inputs) != 1:
        raise NotNative(f"the model has {len(real_inputs)} inputs (native needs exactly one)")
    in_vi = real_inputs[0]
    in_shape = _shape_of_input(in_vi)

    outputs = list(graph.output)
    if not outputs:
        raise ModelError("the model declares no output")
    if output is None:
        floats = [o for o in outputs if o.type.tensor_type.elem_type == FLOAT]
        if not floats:
            raise NotNative("the model has no float output")
        target = floats[0].name
    else:
        names = [o.name for o in outputs]
        if output not in names:
            raise ModelError(f"the model has no output '{output}' (it has {', '.join(names)})")
        target = output
        et = outputs[names.index(output)].type.tensor_type.elem_type
        if et != FLOAT:
            raise NotNative(f"output '{output}' has element type {et} (native produces float32)")

    nodes = _prune(graph, target, set(inits) | {in_vi.name})
    prog = _Program()
    values: dict[str, _Val] = {in_vi.name: _Val(in_shape, off=prog.alloc(_size(in_shape)))}
    const_cache: dict[str, _Val] = {}

    skipped: dict[str, str] = {}      # outputs the native program does not compute (labels)

    def get(name: str, node: Any) -> _Val:
        if name in values:
            return values[name]
        if name in skipped:
            raise NotNative(f"{skipped[name]}: output '{name}' (a class label) is not computed natively")
        if name in inits:
            if name not in const_cache:
                arr = _tensor(inits[name], f"initializer '{name}'")
                const_cache[name] = _Val(tuple(int(d) for d in arr.shape), const=arr)
            return const_cache[name]
        raise ModelError(f"tensor '{name}' used by node '{node.name}' is not available")

    for idx, node in enumerate(nodes):
        domain = node.domain or ""
        label = f"op {node.op_type} (node '{node.name or idx}')"
        if domain in ("", "ai.onnx"):
            allowed = DEFAULT_OPS.get(node.op_type)
        elif domain == ML:
            allowed = ML_OPS.get(node.op_type)
        else:
            raise NotNative(f"{label} in domain '{domain}' is not supported natively")
        if allowed is None:
            raise NotNative(f"{label} is not supported natively")
        attrs = _attrs(node)
        for a in attrs:
            if a not in allowed:
                raise NotNative(f"{label}: attribute '{a}' is not supported natively")
        ins = [get(x, node) if x else None for x in node.input]
        lower = _LOWER[node.op_type]
        opset = opsets.get(domain if domain != "ai.onnx" else "", 1)
        outs = lower(prog, node, label, attrs, ins, opset)
        n_out = [o for o in node.output if o]
        for name, v in zip(node.output, outs):
            if name and v is None:
                skipped[name] = label
            elif name:
                values[name] = v
        if len(n_out) > len(outs):
            raise ModelError(f"{label} declares {len(node.output)} outputs")

    res = get(target, graph)
    if res.size < 1:
        raise ModelError(f"output '{target}' is empty")
    out_ref = prog.where(res)
    consts = np.concatenate(prog.consts) if prog.consts else np.zeros(0, np.float32)
    ints = np.concatenate(prog.ints) if prog.ints else np.zeros(0, np.int32)
    ops = np.array([[prog.resolve(x) for x in row] for row in prog.ops], dtype=np.int64).reshape(-1, OPS_WIDTH)
    op_floats = np.array(prog.op_floats, dtype=np.float32).reshape(-1, 2)
    try:
        return NativeModel(_size(in_shape), res.size, 0, prog.resolve(out_ref), max(prog.arena, 1),
                           consts, ints, ops, op_floats)
    except ValueError as e:     # the evaluator's own range checks (a compiler bug if ever hit)
        raise ModelError(f"the compiled program was refused: {e}") from None


# ------------------------------------------------------------------------------------------
# lowering, one function per op: (prog, node, label, attrs, inputs, opset) -> output values


def _need(ins: list, n_min: int, n_max: int, label: str) -> None:
    present = len(ins)
    if present < n_min or present > n_max or any(v is None for v in ins[:n_min]):
        raise ModelError(f"{label} has {present} inputs (expects {n_min}..{n_max})")


def _alias(v: _Val, shape: tuple[int, ...]) -> _Val:
    return _Val(shape, off=v.off, const=None if v.const is None else v.const.reshape(shape))


def _unary(prog: _Program, v: _Val, sub: int, f0: float = 0.0, f1: float = 0.0) -> _Val:
    out = _Val(v.shape, off=prog.alloc(v.size))
    if v.size:
        prog.emit("UNARY", sub, v.size, prog.where(v), out.off, f0=f0, f1=f1)
    return out


def _lower_identity(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    return [_alias(ins[0], ins[0].shape)]


def _lower_cast(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    if attrs.get("to") != FLOAT:
        raise NotNative(f"{label}: Cast to type {attrs.get('to')} is not supported natively (float32 only)")
    return [_alias(ins[0], ins[0].shape)]


def _lower_flatten(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    v = ins[0]
    r = len(v.shape)
    axis = int(attrs.get("axis", 1))
    if not -r <= axis <= r:
        raise ModelError(f"{label}: axis {axis} out of range for rank {r}")
    if axis < 0:
        axis += r
    return [_alias(v, (_size(v.shape[:axis]), _size(v.shape[axis:])))]


def _lower_reshape(prog, node, label, attrs, ins, opset):
    if "shape" in attrs:       # opset 1-4 form
        _need(ins, 1, 1, label)
        target = [int(x) for x in attrs["shape"]]
    else:
        _need(ins, 2, 2, label)
        if ins[1].const is None:
            raise NotNative(f"{label}: a computed target shape is not supported natively")
        target = [int(x) for x in ins[1].const.reshape(-1)]
    v = ins[0]
    allowzero = int(attrs.get("allowzero", 0))
    if len(target) > 64:
        raise ModelError(f"{label}: target shape of rank {len(target)}")
    dims: list[int] = []
    infer = -1
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= len(v.shape):
                raise ModelError(f"{label}: 0 at position {i} beyond the input's rank")
            d = v.shape[i]
        elif d == -1:
            if infer >= 0:
                raise ModelError(f"{label}: two -1 in the target shape")
            infer = i
            d = 1
        elif d < 0:
            raise ModelError(f"{label}: negative dimension {d} in the target shape")
        dims.append(d)
    known = _size(tuple(dims))
    if infer >= 0:
        if known == 0 or v.size % known:
            raise ModelError(f"{label}: cannot reshape {v.shape} to {target}")
        dims[infer] = v.size // known
    if _size(tuple(dims)) != v.size:
        raise ModelError(f"{label}: cannot reshape {v.shape} to {target}")
    return [_alias(v, tuple(dims))]


def _lower_concat(prog, node, label, attrs, ins, opset):
    if not ins or any(v is None for v in ins):
        raise ModelError(f"{label} needs inputs")
    if "axis" not in attrs:
        raise ModelError(f"{label} has no axis")
    r = len(ins[0].shape)
    axis = int(attrs["axis"])
    if r == 0 or not -r <= axis < r:
        raise ModelError(f"{label}: axis {axis} out of range for rank {r}")
    axis %= r
    for v in ins:
        if len(v.shape) != r or any(v.shape[i] != ins[0].shape[i] for i in range(r) if i != axis):
            raise ModelError(f"{label}: shapes {[v.shape for v in ins]} do not concatenate on axis {axis}")
    total = sum(v.shape[axis] for v in ins)
    shape = ins[0].shape[:axis] + (total,) + ins[0].shape[axis + 1:]
    out = _Val(shape, off=prog.alloc(_size(shape)))
    outer = _size(shape[:axis])
    inner = _size(shape[axis + 1:])
    at = 0
    for v in ins:
        n = v.shape[axis] * inner
        if n and outer:
            dst = ("a", out.off[1] + at * inner)
            prog.emit("COPY", 0, outer, n, prog.where(v), n, dst, total * inner)
        at += v.shape[axis]
    return [out]


def _broadcast(a: tuple[int, ...], b: tuple[int, ...], label: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(a, b))
    except ValueError:
        raise ModelError(f"{label}: shapes {a} and {b} do not broadcast") from None


def _binary(prog: _Program, sub: int, a: _Val, b: _Val, label: str) -> _Val:
    shape = _broadcast(a.shape, b.shape, label)
    n = _size(shape)
    if n > CAP:
        raise ModelError(f"{label}: result too large")
    out = _Val(shape, off=prog.alloc(n))
    if n == 0:
        return out
    if a.size == n and b.size == n:
        prog.emit("BINARY", sub, 0, n, prog.where(a), prog.where(b), out.off)
    elif b.size == 1 and a.size == n:
        prog.emit("BINARY", sub, 1, n, prog.where(a), prog.where(b), out.off)
    elif a.size == 1 and b.size == n:
        prog.emit("BINARY", sub, 2, n, prog.where(a), prog.where(b), out.off)
    else:
        ia = np.broadcast_to(np.arange(a.size, dtype=np.int32).reshape(a.shape), shape).reshape(-1)
        ib = np.broadcast_to(np.arange(b.size, dtype=np.int32).reshape(b.shape), shape).reshape(-1)
        prog.emit("BINARY", sub, 3, n, prog.where(a), prog.where(b), out.off,
                  prog.int_block(ia), prog.int_block(ib))
    return out


def _lower_arith(sub: int):
    def lower(prog, node, label, attrs, ins, opset):
        _need(ins, 2, 2, label)
        if int(attrs.get("broadcast", 0)) and "axis" in attrs:
            raise NotNative(f"{label}: legacy broadcast with axis is not supported natively")
        return [_binary(prog, sub, ins[0], ins[1], label)]
    return lower


def _matmul(prog: _Program, a: _Val, w: np.ndarray, bias: np.ndarray | None, label: str) -> _Val:
    """a (M, K) row-major times constant w (K, N) (+ bias (N,)) -> (M, N)."""
    M, K = a.shape
    K2, N = w.shape
    if K != K2:
        raise ModelError(f"{label}: inner dimensions {K} and {K2} differ")
    if M * N > CAP:
        raise ModelError(f"{label}: result too large")
    out = _Val((M, N), off=prog.alloc(M * N))
    if M * N == 0:
        return out
    if K == 0:
        fill = np.zeros((M, N), np.float32) if bias is None else np.broadcast_to(bias, (M, N))
        prog.emit("COPY", 0, 1, M * N, prog.const(fill), M * N, out.off, M * N)
        return out
    wref = prog.const(w)
    bref = prog.const(bias) if bias is not None else 0
    prog.emit("MATMUL", 0, 1 if bias is not None else 0, M, K, N, prog.where(a), wref, bref, out.off)
    return out


def _as_rows(v: _Val, label: str) -> _Val:
    if len(v.shape) == 1:
        return _alias(v, (1, v.shape[0]))
    if len(v.shape) != 2:
        raise NotNative(f"{label}: input of rank {len(v.shape)} is not supported natively")
    return v


def _lower_matmul(prog, node, label, attrs, ins, opset):
    _need(ins, 2, 2, label)
    a, b = ins
    if b.const is None:
        raise NotNative(f"{label}: a computed right operand is not supported natively")
    if len(a.shape) not in (1, 2) or len(b.shape) not in (1, 2):
        raise NotNative(f"{label}: operands of rank {len(a.shape)} and {len(b.shape)} are not supported natively")
    w = b.const.astype(np.float32)
    w2 = w.reshape(-1, 1) if w.ndim == 1 else w
    res = _matmul(prog, _as_rows(a, label), w2, None, label)
    shape = (a.shape[0],) if len(a.shape) == 2 else ()
    shape += (w.shape[1],) if w.ndim == 2 else ()
    return [_alias(res, shape)]


def _lower_gemm(prog, node, label, attrs, ins, opset):
    _need(ins, 2, 3, label)
    a, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    alpha = float(attrs.get("alpha", 1.0))
    beta = float(attrs.get("beta", 1.0))
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise ModelError(f"{label}: Gemm needs 2-D operands, got {a.shape} and {b.shape}")
    if int(attrs.get("transA", 0)):
        if 1 not in a.shape:
            raise NotNative(f"{label}: transA of a matrix is not supported natively")
        a = _alias(a, (a.shape[1], a.shape[0]))
    if b.const is None:
        raise NotNative(f"{label}: a computed B is not supported natively")
    w = b.const.astype(np.float32)
    if int(attrs.get("transB", 0)):
        w = w.T
    if alpha != 1.0:
        w = (w * np.float32(alpha)).astype(np.float32)
    M, N = a.shape[0], w.shape[1]
    bias = None
    c_after = None
    if c is not None:
        if c.const is not None:
            cc = c.const.astype(np.float32)
            if beta != 1.0:
                cc = (cc * np.float32(beta)).astype(np.float32)
            try:
                full = np.broadcast_to(cc, (M, N))
            except ValueError:
                raise ModelError(f"{label}: C of shape {cc.shape} does not broadcast to {(M, N)}") from None
            if M == 1 or (full == full[:1]).all():
                bias = np.ascontiguousarray(full[0])
            else:
                c_after = _Val((M, N), const=np.ascontiguousarray(full))
        else:
            if beta != 1.0:
                raise NotNative(f"{label}: beta with a computed C is not supported natively")
            c_after = c
    res = _matmul(prog, a, np.ascontiguousarray(w), bias, label)
    if c_after is not None:
        res = _binary(prog, B_ADD, res, c_after, label)
        if res.shape != (M, N):
            raise ModelError(f"{label}: C does not broadcast to {(M, N)}")
    return [res]


def _lower_relu(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    return [_unary(prog, ins[0], U_RELU)]


def _lower_leaky(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    return [_unary(prog, ins[0], U_LEAKY, f0=float(attrs.get("alpha", 0.01)))]


def _lower_tanh(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    return [_unary(prog, ins[0], U_TANH)]


def _lower_sigmoid(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    return [_unary(prog, ins[0], U_SIGMOID)]


def _lower_clip(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 3, label)
    lo, hi = -np.inf, np.inf
    if opset < 11:
        lo = float(attrs.get("min", -3.4028234663852886e38))
        hi = float(attrs.get("max", 3.4028234663852886e38))
    else:
        for i, name in ((1, "min"), (2, "max")):
            if len(ins) > i and ins[i] is not None:
                if ins[i].const is None or ins[i].size != 1:
                    raise NotNative(f"{label}: a computed or non-scalar {name} is not supported natively")
                val = float(ins[i].const.reshape(-1)[0])
                if i == 1:
                    lo = val
                else:
                    hi = val
    return [_unary(prog, ins[0], U_CLIP, f0=float(np.float32(lo)), f1=float(np.float32(hi)))]


def _softmax(prog: _Program, v: _Val, outer: int, n: int, inner: int, sub: int = 0) -> _Val:
    out = _Val(v.shape, off=prog.alloc(v.size))
    if v.size:
        prog.emit("SOFTMAX", sub, outer, n, inner, prog.where(v), out.off)
    return out


def _lower_softmax(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    v = ins[0]
    r = len(v.shape)
    if r == 0:
        raise ModelError(f"{label}: Softmax of a scalar")
    axis = int(attrs.get("axis", -1 if opset >= 13 else 1))
    if not -r <= axis < r:
        raise ModelError(f"{label}: axis {axis} out of range for rank {r}")
    axis %= r
    if opset >= 13:
        outer, n, inner = _size(v.shape[:axis]), v.shape[axis], _size(v.shape[axis + 1:])
    else:          # opsets 1-12: the input is coerced to 2-D at axis
        outer, n, inner = _size(v.shape[:axis]), _size(v.shape[axis:]), 1
    if n == 0:
        return [_Val(v.shape, off=prog.alloc(v.size))]
    return [_softmax(prog, v, outer, n, inner)]


# -- ai.onnx.ml ------------------------------------------------------------------------------


def _post(prog: _Program, v: _Val, post: int, label: str) -> _Val:
    """write_scores for rows of two or more scores."""
    rows, n = v.shape
    if post == POST["NONE"]:
        return v
    if post == POST["LOGISTIC"]:
        return _unary(prog, v, U_LOGISTIC)
    if post == POST["PROBIT"]:
        return _unary(prog, v, U_PROBIT)
    return _softmax(prog, v, rows, n, 1, sub=1 if post == POST["SOFTMAX_ZERO"] else 0)


def _post_attr(attrs: dict, label: str) -> int:
    p = attrs.get("post_transform", b"NONE")
    p = p.decode() if isinstance(p, bytes) else str(p)
    if p not in POST:
        raise NotNative(f"{label}: post_transform '{p}' is not supported natively")
    return POST[p]


def _lower_scaler(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    v = ins[0]
    if len(v.shape) not in (1, 2):
        raise NotNative(f"{label}: input of rank {len(v.shape)}")
    C = v.shape[-1]
    offset = _f32(attrs.get("offset", []), f"{label} offset")
    scale = _f32(attrs.get("scale", []), f"{label} scale")
    for name, arr in (("offset", offset), ("scale", scale)):
        if arr.size not in (1, C):
            raise ModelError(f"{label}: {name} has {arr.size} values for {C} columns")
    y = _binary(prog, B_SUB, v, _Val((offset.size,), const=offset), label)
    return [_binary(prog, B_MUL, y, _Val((scale.size,), const=scale), label)]


def _lower_normalizer(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    v = _as_rows(ins[0], label)
    norm = attrs.get("norm", b"MAX")
    norm = norm.decode() if isinstance(norm, bytes) else str(norm)
    subs = {"MAX": 0, "L1": 1, "L2": 2}
    if norm not in subs:
        raise NotNative(f"{label}: norm '{norm}' is not supported natively")
    out = _Val(ins[0].shape, off=prog.alloc(v.size))
    if v.size:
        prog.emit("NORMALIZE", subs[norm], v.shape[0], v.shape[1], prog.where(v), out.off)
    return [out]


def _linear(prog, label, v: _Val, coefs: np.ndarray, intercepts: np.ndarray, n: int) -> _Val:
    rows = _as_rows(v, label)
    C = rows.shape[1]
    if n < 1 or coefs.size != n * C:
        raise ModelError(f"{label}: {coefs.size} coefficients for {n} outputs x {C} features")
    if intercepts.size not in (0, n):
        raise ModelError(f"{label}: {intercepts.size} intercepts for {n} outputs")
    bias = intercepts if intercepts.size else np.zeros(n, np.float32)
    return _matmul(prog, rows, np.ascontiguousarray(coefs.reshape(n, C).T), bias, label)


def _lower_linreg(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    targets = int(attrs.get("targets", 1))
    post = _post_attr(attrs, label)
    y = _linear(prog, label, ins[0], _f32(attrs.get("coefficients", []), label),
                _f32(attrs.get("intercepts", []), label), targets)
    if targets == 1:
        # onnxruntime applies only PROBIT to a single target
        return [_unary(prog, y, U_PROBIT) if post == POST["PROBIT"] else y]
    return [_post(prog, y, post, label)]


def _labels(attrs: dict, ints: str, strings: str, label: str) -> int:
    li, ls = attrs.get(ints), attrs.get(strings)
    if li is not None and ls is not None and len(li) and len(ls):
        raise ModelError(f"{label} has both integer and string class labels")
    return len(li) if li is not None and len(li) else len(ls) if ls is not None else 0


def _lower_lincls(prog, node, label, attrs, ins, opset):
    _need(ins, 1, 1, label)
    post = _post_attr(attrs, label)
    intercepts = _f32(attrs.get("intercepts", []), label)
    n = intercepts.size
    n_labels = _labels(attrs, "classlabels_ints", "classlabels_strings", label)
    y = _linear(prog, label, ins[0], _f32(attrs.get("coefficients", []), label), intercepts, n)
    if n == 1:
        if n_labels != 2:
            raise NotNative(f"{label}: one score with {n_labels} class labels")
        if post == POST["PROBIT"]:
            raise NotNative(f"{label}: post_transform 'PROBIT' with one score")
        if y.shape[0] != 1:
            raise NotNative(f"{label}: batch of {y.shape[0]} rows")
        out = _Val((1, 2), off=prog.alloc(2))
        prog.emit("BINARY_SCORES", post, prog.where(y), out.off)
        return [None, out]
    if n_labels != n:
        raise ModelError(f"{label}: {n_labels} class labels for {n} intercepts")
    return [None, _post(prog, y, post, label)]


from orpflow.ml.native_trees import lower_trees  # noqa: E402  (it uses the helpers above)

_LOWER = {
    "Identity": _lower_identity, "Cast": _lower_cast, "Flatten": _lower_flatten,
    "Reshape": _lower_reshape, "Concat": _lower_concat,
    "Add": _lower_arith(B_ADD), "Sub": _lower_arith(B_SUB), "Mul": _lower_arith(B_MUL),
    "Div": _lower_arith(B_DIV),
    "MatMul": _lower_matmul, "Gemm": _lower_gemm,
    "Relu": _lower_relu, "LeakyRelu": _lower_leaky, "Tanh": _lower_tanh,
    "Sigmoid": _lower_sigmoid, "Clip": _lower_clip, "Softmax": _lower_softmax,
    "Scaler": _lower_scaler, "Normalizer": _lower_normalizer,
    "LinearRegressor": _lower_linreg, "LinearClassifier": _lower_lincls,
    "TreeEnsembleRegressor": lower_trees(False), "TreeEnsembleClassifier": lower_trees(True),
}
