"""Opening an ONNX model for the signal generator: checks, then one of two evaluators.

A model file is read as bytes and parsed as an ONNX protobuf (never unpickled), checked
(opsets, one float input of the configured width, the output the settings read), then
compiled for the native nogil evaluator when every node on the output's path is supported,
else given to onnxruntime (one thread, preallocated input and output bound once).
``onnx`` and ``onnxruntime`` are imported here, so only when a model is configured.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from orpflow.ml.errors import ModelError, NotNative
from orpflow.model_config import OnnxSignal

#: Largest model file read (bytes): far above any model evaluated per row, far below memory.
MAX_MODEL_BYTES = 256 * 2 ** 20
# The first bytes of pickle protocols 2-5 and of zip/joblib archives: such files are refused
# before anything parses them (unpickling runs arbitrary code).
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")
_STANDARD_DOMAINS = ("", "ai.onnx")


def _import(name: str) -> Any:
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ModelError(f"ONNX models need the {name} package: pip install 'orpflow[ml]'") from None


def read_model(path: str) -> Tuple[Any, bytes]:
    """(ModelProto, file bytes) of `path`, checked; ModelError names what is wrong."""
    onnx = _import("onnx")
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory, not a model file")
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{path}: {size / 2 ** 20:,.0f} MiB; models above "
                         f"{MAX_MODEL_BYTES // 2 ** 20} MiB are refused")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from None
    if data.startswith(_PICKLE_MAGIC):
        raise ModelError(f"{path}: is a pickle or zip archive, not an ONNX model; pickles are never "
                         "loaded (they run code): export the model with skl2onnx or onnxmltools")
    if not data:
        raise ModelError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:            # protobuf DecodeError and friends
        raise ModelError(f"{path}: not an ONNX model ({_one_line(exc)})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(f"{path}: not an ONNX model (no graph, or a graph without nodes)")
    _check_no_external_data(path, model)
    _check_opsets(path, model, onnx)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(f"{path}: invalid ONNX model: {_one_line(exc)}") from None
    return model, data


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + " ..."
    return text or type(exc).__name__


def _tensors(graph: Any) -> Any:
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors(a.g)
            for g in a.graphs:
                yield from _tensors(g)


def _check_no_external_data(path: str, model: Any) -> None:
    for t in _tensors(model.graph):
        if t.data_location == 1:          # TensorProto.EXTERNAL: the data would come from another file
            raise ModelError(f"{path}: tensor {t.name!r} keeps its data in an external file; "
                             "only self-contained models are loaded")


def _max_opsets(onnx: Any) -> Dict[str, int]:
    best: Dict[str, int] = {}
    for s in onnx.defs.get_all_schemas_with_history():
        d = "" if s.domain == "ai.onnx" else s.domain
        best[d] = max(best.get(d, 0), s.since_version)
    best[""] = max(best.get("", 0), onnx.defs.onnx_opset_version())
    return best


def _check_opsets(path: str, model: Any, onnx: Any) -> None:
    known = _max_opsets(onnx)
    seen = set()
    for op in model.opset_import:
        d = "" if op.domain == "ai.onnx" else op.domain
        seen.add(d)
        if d not in known:
            raise ModelError(f"{path}: operator domain {op.domain!r} is not supported "
                             f"(known: {sorted(k or 'ai.onnx' for k in known)})")
        if not 1 <= op.version <= known[d]:
            raise ModelError(f"{path}: opset {op.version} of domain {op.domain or 'ai.onnx'!r} is not "
                             f"supported (1 to {known[d]})")
    if not seen:
        raise ModelError(f"{path}: the model imports no opset")
    for node in model.graph.node:
        d = "" if node.domain == "ai.onnx" else node.domain
        if d not in seen:
            raise ModelError(f"{path}: node {node.name or node.op_type!r} uses domain "
                             f"{node.domain!r}, which the model does not import")


def model_input(path: str, model: Any, n_inputs: int) -> Tuple[str, Tuple[int, ...]]:
    """(name, the shape a row is fed as) of the model's one float input."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f"{path}: the model has {len(inputs)} inputs "
                         f"({', '.join(repr(i.name) for i in inputs)}); orpflow feeds one: a vector of features")
    inp = inputs[0]
    tt = inp.type.tensor_type if inp.type.HasField("tensor_type") else None
    if tt is None or tt.elem_type != 1:                    # TensorProto.FLOAT
        raise ModelError(f"{path}: input {inp.name!r} must be a float32 tensor")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim] \
        if tt.HasField("shape") else None
    if dims is None or len(dims) not in (1, 2) or dims[-1] is None:
        raise ModelError(f"{path}: input {inp.name!r} must have shape [k] or [batch, k] with k known, "
                         f"got {dims}")
    if len(dims) == 2 and dims[0] not in (None, 0, 1):
        raise ModelError(f"{path}: input {inp.name!r} has a fixed batch of {dims[0]}; orpflow feeds one row")
    if dims[-1] != n_inputs:
        raise ModelError(f"{path}: the model takes {dims[-1]} features; inputs lists {n_inputs}")
    return inp.name, ((1, n_inputs) if len(dims) == 2 else (n_inputs,))


def model_output(path: str, model: Any, name: Optional[str]) -> str:
    outs = model.graph.output
    if name is not None:
        for o in outs:
            if o.name == name:
                if not o.type.HasField("tensor_type") or o.type.tensor_type.elem_type != 1:
                    raise ModelError(f"{path}: output {name!r} is not a float32 tensor")
                return name
        raise ModelError(f"{path}: no output {name!r}; outputs: {[o.name for o in outs]}")
    for o in outs:
        if o.type.HasField("tensor_type") and o.type.tensor_type.elem_type == 1:
            return o.name
    raise ModelError(f"{path}: no float32 tensor output; outputs: {[o.name for o in outs]}")


class OrtEvaluator:
    """onnxruntime on one row: one thread, the input and output arrays bound once (I/O
    binding on memory that stays put), so a row is: write ``x``, ``run()``, read ``y``."""

    def __init__(self, path: str, data: bytes, input_name: str, shape: Tuple[int, ...],
                 output: str) -> None:
        ort = _import("onnxruntime")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
            self.x = np.zeros(shape, dtype=np.float32)
            first = self.session.run([output], {input_name: self.x})[0]
        except Exception as exc:
            raise ModelError(f"{path}: onnxruntime cannot run the model: {_one_line(exc)}") from None
        first = np.asarray(first)
        if first.dtype != np.float32:
            raise ModelError(f"{path}: output {output!r} is {first.dtype}, not float32")
        self.y = np.zeros(first.shape, dtype=np.float32)
        self.xv = ort.OrtValue.ortvalue_from_numpy(self.x)
        self.yv = ort.OrtValue.ortvalue_from_numpy(self.y)
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input(input_name, self.xv)
        self.binding.bind_ortvalue_output(output, self.yv)
        self.flat_x = self.x.reshape(-1)
        self.flat_y = self.y.reshape(-1)
        self.n_outputs = int(self.y.size)
        self._run = self.session.run_with_iobinding

    def run(self) -> None:
        self._run(self.binding)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """(rows, n_outputs) float32 for rows of float32 features (tests, benchmarks)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        out = np.empty((len(x), self.n_outputs), dtype=np.float32)
        for i, row in enumerate(x):
            self.flat_x[:] = row
            self._run(self.binding)
            out[i] = self.flat_y
        return out


@dataclass
class LoadedModel:
    """A checked model with the evaluator the settings and the graph chose."""

    path: str
    evaluator: str                          # "native" or "onnxruntime"
    reason: str                             # why that evaluator
    input_name: str
    output: str
    n_inputs: int
    n_outputs: int
    ops: List[str] = field(default_factory=list)
    native: Any = None                      # orpflow._core.model.NativeModel
    ort: Optional[OrtEvaluator] = None

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """(rows, n_outputs) float32 from the chosen evaluator."""
        return (self.native if self.native is not None else self.ort).evaluate(x)  # type: ignore[union-attr]

    def describe(self) -> str:
        return f"{os.path.basename(self.path)}: {self.evaluator} ({self.reason})"


def load_model(sig: OnnxSignal) -> LoadedModel:
    """Read, check and prepare the model `sig` names; ModelError says what does not match."""
    path = sig.path
    model, data = read_model(path)
    input_name, shape = model_input(path, model, len(sig.inputs))
    output = model_output(path, model, sig.output)
    ops = sorted({n.op_type for n in model.graph.node})
    native = None
    reason = ""
    if sig.evaluator in ("auto", "native"):
        from orpflow.ml.native import compile_native
        try:
            native = compile_native(model, output)
        except NotNative as exc:
            if sig.evaluator == "native":
                raise ModelError(f"{path}: evaluator 'native' but {exc}") from None
            reason = f"not native: {exc}"
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None
        if native is not None and native.n_inputs != len(sig.inputs):
            raise ModelError(f"{path}: the model takes {native.n_inputs} features; inputs lists {len(sig.inputs)}")
    else:
        reason = "evaluator 'onnxruntime' configured"
    if native is not None:
        loaded = LoadedModel(path, "native", "every operator on the output's path is native: " + ", ".join(ops),
                             input_name, output, len(sig.inputs), native.n_outputs, ops, native=native)
    else:
        ort = OrtEvaluator(path, data, input_name, shape, output)
        loaded = LoadedModel(path, "onnxruntime", reason, input_name, output, len(sig.inputs),
                             ort.n_outputs, ops, ort=ort)
    want = 1 if sig.mode == "score" else len(sig.classes)
    if loaded.n_outputs != want:
        what = "mode 'score' reads one number" if sig.mode == "score" else \
            f"mode 'classes' lists {want} classes {list(sig.classes)}"
        raise ModelError(f"{path}: output {output!r} has {loaded.n_outputs} values; {what}")
    return loaded
