"""Native model evaluator vs onnxruntime, per row (one row at a time, as the engine evaluates).

    python benchmarks/bench_model.py [--runs 7]

Models: an MLP 22 -> 32 -> 16 -> 1 (Gemm + Relu) and a 100-tree depth-6 ensemble (LightGBM
regressor on random data if lightgbm is installed, else a random full depth-6 ensemble). Native:
``NativeModel.bench_ns`` times a nogil C loop over ``run()`` (what a Cython caller pays).
onnxruntime: ``InferenceSession.run`` from Python with one [1, k] row, intra_op_num_threads=1
(what a Python caller of onnxruntime pays). Each figure is the median of the runs; the two are
measured alternately in the same process. Nothing asserts a timing.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as onh

from orpflow.ml.native import compile_native


def mlp_model(rng: np.random.Generator) -> onnx.ModelProto:
    sizes = [22, 32, 16, 1]
    nodes, inits, cur = [], [], "X"
    for i in range(3):
        W = rng.normal(0, 1 / np.sqrt(sizes[i]), size=(sizes[i], sizes[i + 1])).astype(np.float32)
        b = rng.normal(0, 0.1, size=sizes[i + 1]).astype(np.float32)
        inits += [onh.from_array(W, f"W{i}"), onh.from_array(b, f"b{i}")]
        out = f"g{i}"
        nodes.append(oh.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out]))
        cur = out
        if i < 2:
            nodes.append(oh.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    nodes.append(oh.make_node("Identity", [cur], ["Y"]))
    g = oh.make_graph(nodes, "mlp", [oh.make_tensor_value_info("X", TP.FLOAT, [None, 22])],
                      [oh.make_tensor_value_info("Y", TP.FLOAT, None)], inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def trees_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, str]:
    try:
        import lightgbm as lgb
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        return random_trees(rng), "random full trees"
    X = rng.normal(size=(5000, 22)).astype(np.float32)
    y = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + 0.1 * rng.normal(size=len(X))
    est = lgb.LGBMRegressor(n_estimators=100, max_depth=6, num_leaves=63, verbose=-1, random_state=0)
    est.fit(X, y)
    m = convert_lightgbm(est, initial_types=[("X", FloatTensorType([None, 22]))], target_opset=15)
    return m, "LightGBM"


def random_trees(rng: np.random.Generator, n_trees: int = 100, depth: int = 6) -> onnx.ModelProto:
    t_ids, n_ids, f_ids, modes, vals, tn, fn, wt, wn, ww = ([] for _ in range(10))
    n_nodes = 2 ** (depth + 1) - 1
    for t in range(n_trees):
        for i in range(n_nodes):
            t_ids.append(t)
            n_ids.append(i)
            if i < 2 ** depth - 1:
                f_ids.append(int(rng.integers(0, 22)))
                modes.append("BRANCH_LEQ")
                vals.append(float(rng.normal()))
                tn.append(2 * i + 1)
                fn.append(2 * i + 2)
            else:
                f_ids.append(0)
                modes.append("LEAF")
                vals.append(0.0)
                tn.append(0)
                fn.append(0)
                wt.append(t)
                wn.append(i)
                ww.append(float(rng.normal(0, 0.1)))
    node = oh.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=1,
                        nodes_treeids=t_ids, nodes_nodeids=n_ids, nodes_featureids=f_ids,
                        nodes_modes=modes, nodes_values=vals, nodes_truenodeids=tn,
                        nodes_falsenodeids=fn, target_ids=[0] * len(wt), target_nodeids=wn,
                        target_treeids=wt, target_weights=ww)
    g = oh.make_graph([node], "trees", [oh.make_tensor_value_info("X", TP.FLOAT, [None, 22])],
                      [oh.make_tensor_value_info("Y", TP.FLOAT, None)])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    return m


def ort_ns(sess: ort.InferenceSession, rows: np.ndarray) -> float:
    name = sess.get_inputs()[0].name
    out = [sess.get_outputs()[0].name]
    feeds = [{name: r[None, :]} for r in rows]
    run = sess.run
    t0 = time.perf_counter_ns()
    for f in feeds:
        run(out, f)
    return (time.perf_counter_ns() - t0) / len(rows)


def native_ns(nm, rows: np.ndarray, reps: int) -> float:
    total = 0
    for r in rows:
        total += nm.bench_ns(r, reps)
    return total / (len(rows) * reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    trees, trees_kind = trees_model(rng)
    models = [("MLP 22-32-16-1 (Relu)", mlp_model(rng)), (f"100 trees depth 6 ({trees_kind})", trees)]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}; medians of {args.runs} runs")
    print(f"{'model':<38} {'native ns/row':>14} {'onnxruntime ns/row':>19} {'ratio':>8}")
    for label, model in models:
        nm = compile_native(model)
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        rows = rng.normal(size=(200, nm.n_inputs)).astype(np.float32)
        # same answers before timing anything
        ref = np.vstack([sess.run(None, {sess.get_inputs()[0].name: r[None, :]})[0].reshape(1, -1) for r in rows[:20]])
        assert np.allclose(nm.evaluate(rows[:20]), ref, rtol=1e-4, atol=1e-5)
        nat, onx, ratios = [], [], []
        for _ in range(args.runs):
            a = native_ns(nm, rows, 200)
            b = ort_ns(sess, rows)
            nat.append(a)
            onx.append(b)
            ratios.append(b / a)
        print(f"{label:<38} {statistics.median(nat):>14.1f} {statistics.median(onx):>19.1f} "
              f"{statistics.median(ratios):>7.0f}x")


if __name__ == "__main__":
    main()
