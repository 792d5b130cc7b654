"""The models ``orpflow bench`` measures: an MLP and a tree ensemble of the sizes a signal model
has, built with fixed seeds (no training, so the benchmark needs onnx only), and the per-row
timing of both evaluators on the same rows."""
from __future__ import annotations

import statistics
import time
from typing import Any, Dict, Sequence, Tuple

import numpy as np


def mlp_model(widths: Sequence[int] = (22, 32, 16, 1), seed: int = 7) -> Any:
    """An ONNX MLP: Gemm + Relu per hidden layer, then Gemm and Tanh (a score in [-1, 1])."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        w, c = f"w{i}", f"b{i}"
        inits += [numpy_helper.from_array((rng.normal(0, 1, (a, b)) / np.sqrt(a)).astype(np.float32), w),
                  numpy_helper.from_array(rng.normal(0, 0.1, b).astype(np.float32), c)]
        last = i == len(widths) - 2
        nodes.append(helper.make_node("Gemm", [x, w, c], [f"h{i}"]))
        nodes.append(helper.make_node("Tanh" if last else "Relu", [f"h{i}"], ["score" if last else f"a{i}"]))
        x = f"a{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, widths[0]])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, widths[-1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def tree_model(n_trees: int = 100, depth: int = 6, n_features: int = 22, seed: int = 7) -> Any:
    """An ONNX TreeEnsembleRegressor of full binary trees (BRANCH_LEQ, thresholds drawn from
    the standard normal the benchmark rows come from), summed: a gradient-boosting shape."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(seed)
    tree_ids, node_ids, feats, values, modes, left, right = [], [], [], [], [], [], []
    t_tree, t_node, t_weight = [], [], []
    inner = 2 ** depth - 1
    for t in range(n_trees):
        for n in range(2 ** (depth + 1) - 1):
            tree_ids.append(t)
            node_ids.append(n)
            if n < inner:
                feats.append(int(rng.integers(n_features)))
                values.append(float(rng.normal()))
                modes.append("BRANCH_LEQ")
                left.append(2 * n + 1)
                right.append(2 * n + 2)
            else:
                feats.append(0)
                values.append(0.0)
                modes.append("LEAF")
                left.append(0)
                right.append(0)
                t_tree.append(t)
                t_node.append(n)
                t_weight.append(float(rng.normal(0, 0.01)))
    node = helper.make_node(
        "TreeEnsembleRegressor", ["x"], ["score"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=tree_ids, nodes_nodeids=node_ids, nodes_featureids=feats,
        nodes_values=values, nodes_modes=modes, nodes_truenodeids=left, nodes_falsenodeids=right,
        nodes_missing_value_tracks_true=[0] * len(tree_ids),
        target_treeids=t_tree, target_nodeids=t_node, target_ids=[0] * len(t_tree),
        target_weights=t_weight, aggregate_function="SUM", post_transform="NONE")
    graph = helper.make_graph([node], "trees", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_features])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)],
                             ir_version=8)


def per_row_ns(model: Any, rows: int = 2000, reps: int = 5, seed: int = 1) -> Dict[str, Any]:
    """Median ns per row of the native evaluator and of onnxruntime (Python, one row per call,
    I/O binding), measured side by side on the same random rows; and their largest difference."""
    from orpflow.ml.load import OrtEvaluator
    from orpflow.ml.native import compile_native
    native = compile_native(model, None)
    name = model.graph.input[0].name
    ort = OrtEvaluator("bench", model.SerializeToString(), name, (1, native.n_inputs),
                       model.graph.output[0].name)
    x = np.random.default_rng(seed).normal(size=(rows, native.n_inputs)).astype(np.float32)
    t_native, t_ort = [], []
    for _ in range(reps):
        t = time.perf_counter_ns()
        a = native.evaluate(x)
        t_native.append((time.perf_counter_ns() - t) / rows)
        t = time.perf_counter_ns()
        b = ort.evaluate(x)
        t_ort.append((time.perf_counter_ns() - t) / rows)
    n, o = statistics.median(t_native), statistics.median(t_ort)
    return {"native_ns": n, "onnxruntime_ns": o, "ratio": o / n,
            "max_abs_diff": float(np.max(np.abs(a - b)))}


def bench_rows() -> Tuple[Tuple[str, Any], ...]:
    return (("MLP 22-32-16-1", mlp_model()), ("100 trees, depth 6", tree_model()))
