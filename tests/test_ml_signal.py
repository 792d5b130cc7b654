"""The ONNX signal generator end to end: settings, the loader's checks on bad and hostile model
files, the compiled generator against its twin, both evaluators giving the same orders, the
backtest against the threaded engine, and ``import orpflow`` staying light."""
from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import orpflow as of
from helpers import SAMPLE, SPOT

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from orpflow.ml import ModelError  # noqa: E402
from orpflow.ml.load import load_model  # noqa: E402
from orpflow.reference import signals as twin  # noqa: E402

INPUTS = ("imbalance", "weighted_imbalance", "depth_ratio", "ofi", "imbalance_momentum")
OPSETS = [helper.make_opsetid("", 17)]


def _model(nodes, inits, n_in=len(INPUTS), out="score", n_out=1, in_shape=None, opsets=None,
           in_type=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", in_type, in_shape or [None, n_in])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, n_out])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=opsets or OPSETS, ir_version=8)


def mlp(seed=1, n_in=len(INPUTS), hidden=8, n_out=1, head="Tanh"):
    """A fixed random 2-layer MLP: Gemm, Tanh, Gemm, then Tanh (score) or Softmax (classes)."""
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(0, 1.0, (n_in, hidden)), "b1": rng.normal(0, 0.1, hidden),
             "w2": rng.normal(0, 1.0, (hidden, n_out)), "b2": rng.normal(0, 0.1, n_out)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
             helper.make_node("Tanh", ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["z"]),
             helper.make_node(head, ["z"], ["score" if n_out == 1 else "probabilities"])]
    return _model(nodes, inits, n_in, "score" if n_out == 1 else "probabilities", n_out)


def save(model, path):
    path.write_bytes(model.SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def sample():
    return of.read_binance(str(SAMPLE), SPOT)


@pytest.fixture(scope="module")
def zscore(sample):
    feats = of.compute_features(sample, SPOT)
    ok = feats["book_ok"].astype(bool)
    cols = [feats[n][ok & np.isfinite(feats[n])] for n in INPUTS]
    return [float(c.mean()) for c in cols], [float(c.std()) or 1.0 for c in cols]


@pytest.fixture(scope="module")
def models(tmp_path_factory, zscore):
    d = tmp_path_factory.mktemp("models")
    mean, std = zscore
    score = save(mlp(), d / "score.onnx")
    classes = save(mlp(seed=2, n_out=3, head="Softmax"), d / "classes.onnx")
    return {
        "score": dict(path=score, inputs=INPUTS, normalize="zscore", mean=mean, std=std),
        "classes": dict(path=classes, inputs=INPUTS, normalize="zscore", mean=mean, std=std,
                        mode="classes", classes=("sell", "flat", "buy"), min_probability=0.45),
    }


def signal_config(settings, evaluator="auto", **kw):
    return of.SignalConfig(generator=of.OnnxSignal(**settings, evaluator=evaluator),
                           entry_threshold=kw.pop("entry_threshold", 0.3), **kw)


def engine_config(sig_cfg, **kw):
    cfg = of.config_from_dict({
        "instruments": [{"symbol": "BTCUSDT", "venue": "binance-spot", "tick_size": "0.01",
                         "lot_size": "0.00001", "paths": [str(SAMPLE)]}],
        "risk": {"max_position": "1", "max_order_notional": "100000", "rate_per_second": 50},
        "persistence": {"path": None}, **kw})
    return dataclasses.replace(cfg, signal=dataclasses.replace(
        sig_cfg, features=cfg.signal.features))


# ------------------------------------------------------------------ the generator


@pytest.mark.parametrize("mode", ["score", "classes"])
@pytest.mark.parametrize("evaluator", ["native", "onnxruntime"])
def test_compiled_generator_equals_twin(sample, models, mode, evaluator):
    cfg = signal_config(models[mode], evaluator)
    got = of.compute_signals(sample, SPOT, cfg)
    want = twin.compute_signals(sample, SPOT, cfg)
    assert len(got) == len(want) > 1000
    for f in ("ts_exch", "seq", "side", "reason", "size_units", "position_units"):
        assert np.array_equal(got[f], want[f]), f
    # float32 models: the evaluators may sum in another order (docs/ml.md: tolerance)
    np.testing.assert_allclose(got["strength"], want["strength"], rtol=1e-4, atol=1e-5)
    reasons = set(np.unique(got["reason"]).tolist())
    assert int(of.Reason.SIG_ENTER) in reasons                  # it trades
    assert int(of.Reason.SIG_FEATURE_NAN) in reasons            # imbalance_momentum starts undefined
    if mode == "classes":
        assert int(of.Reason.SIG_MODEL_FLAT) in reasons


def test_undefined_inputs_skip_the_row_and_never_reach_the_model(sample, models):
    cfg = signal_config(models["score"], "native")
    feats, sigs = of.SignalRunner(SPOT, cfg).run_with_features(sample)
    ok = feats["book_ok"].astype(bool)
    undefined = ok & ~np.all([np.isfinite(feats[n]) for n in INPUTS], axis=0)
    assert undefined.sum() > 0
    assert np.array_equal(sigs["reason"] == int(of.Reason.SIG_FEATURE_NAN), undefined)


def test_both_evaluators_place_the_same_orders(sample, models):
    results = {}
    for evaluator in ("native", "onnxruntime"):
        res = of.backtest(sample, engine_config(signal_config(models["score"], evaluator)))
        assert res.models["BTCUSDT"]["evaluator"] == evaluator
        results[evaluator] = res
    a, b = results["native"], results["onnxruntime"]
    assert len(a.order_events) > 10 and len(a.fills["BTCUSDT"]) > 0
    assert np.array_equal(a.order_events, b.order_events)
    assert np.array_equal(a.fills["BTCUSDT"], b.fills["BTCUSDT"])
    assert a.accounts == b.accounts


@pytest.mark.parametrize("evaluator", ["native", "onnxruntime"])
def test_threaded_engine_equals_backtest(sample, models, evaluator):
    cfg = engine_config(signal_config(models["classes"], evaluator))
    res = of.backtest(sample, cfg)
    engine = of.Engine(cfg)
    engine.start()
    engine.wait(60)
    engine.stop()
    assert engine.error is None
    assert engine.models()["BTCUSDT"]["evaluator"] == evaluator
    assert len(res.fills["BTCUSDT"]) > 0
    assert np.array_equal(engine.fills("BTCUSDT"), res.fills["BTCUSDT"])
    assert np.array_equal(engine.orders("BTCUSDT"), res.orders["BTCUSDT"])


def test_auto_names_the_operator_that_is_not_native(tmp_path):
    # ArgMax is outside the native set: auto falls back to onnxruntime and says why
    nodes = [helper.make_node("ReduceMax", ["x"], ["score"], keepdims=1, axes=[1])]
    path = save(_model(nodes, {}, opsets=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx")
    sig = of.OnnxSignal(path, inputs=INPUTS)
    loaded = load_model(sig)
    assert loaded.evaluator == "onnxruntime"
    assert "ReduceMax" in loaded.reason
    with pytest.raises(ModelError, match="ReduceMax"):
        load_model(dataclasses.replace(sig, evaluator="native"))


def test_native_evaluator_does_not_import_onnxruntime(tmp_path):
    path = save(mlp(), tmp_path / "m.onnx")
    code = textwrap.dedent(f"""
        import sys, orpflow as of
        assert "onnx" not in sys.modules and "onnxruntime" not in sys.modules
        assert "orpflow.ml" not in sys.modules and "pandas" not in sys.modules
        sig = of.OnnxSignal({path!r}, inputs={list(INPUTS)!r}, evaluator="native")
        of.SignalRunner(of.Instrument("BTCUSDT", "binance-spot", "0.01", "0.00001"),
                        of.SignalConfig(generator=sig))
        assert "onnx" in sys.modules and "onnxruntime" not in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ------------------------------------------------------------------ settings


def test_settings_are_checked():
    ok = dict(path="m.onnx", inputs=INPUTS)
    for bad, match in [
        (dict(inputs=()), "inputs"),
        (dict(inputs=("imbalance", "imbalance")), "twice"),
        (dict(mode="regression"), "mode"),
        (dict(mode="classes"), "classes"),
        (dict(mode="classes", classes=("flat", "flat")), "neither"),
        (dict(mode="classes", classes=("sell", "hold", "buy")), r"classes\[1\]"),
        (dict(classes=("sell", "buy")), "mode 'classes'"),
        (dict(normalize="zscore", mean=[0.0] * 5), "std"),
        (dict(normalize="zscore", mean=[0.0] * 5, std=[1.0] * 4), "std has 4"),
        (dict(normalize="zscore", mean=[0.0] * 5, std=[1.0, 1.0, 0.0, 1.0, 1.0]), r"std\[2\]"),
        (dict(normalize="minmax", min=[0.0] * 5, max=[1.0, 1.0, 1.0, 1.0, 0.0]), r"max\[4\]"),
        (dict(mean=[0.0] * 5), "normalize"),
        (dict(min_probability=0.0), "min_probability"),
        (dict(scale=float("nan")), "scale"),
        (dict(evaluator="gpu"), "evaluator"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            of.OnnxSignal(**{**ok, **bad})
    with pytest.raises(ValueError, match="unknown feature 'bogus'"):
        of.SignalConfig(generator=of.OnnxSignal("m.onnx", inputs=("imbalance", "bogus")))
    with pytest.raises(ValueError, match="OnnxSignal"):
        of.SignalConfig(generator="onnx")


def _toml(tmp_path, signal_text):
    cfg = tmp_path / "c.toml"
    cfg.write_text(textwrap.dedent(f"""
        [[instruments]]
        symbol = "BTCUSDT"
        venue = "binance-spot"
        tick_size = "0.01"
        lot_size = "0.00001"
        paths = ["{SAMPLE}"]
        """) + textwrap.dedent(signal_text))
    return cfg


def test_config_file_tables(tmp_path):
    save(mlp(), tmp_path / "m.onnx")
    cfg = of.load_config(str(_toml(tmp_path, """
        [signal]
        generator = "onnx"
        entry_threshold = 0.4
        [signal.onnx]
        path = "m.onnx"
        inputs = ["imbalance", "weighted_imbalance", "depth_ratio", "ofi", "imbalance_momentum"]
        """)))
    g = cfg.signal.generator
    assert isinstance(g, of.OnnxSignal)
    assert g.path == str(tmp_path / "m.onnx") and g.inputs == INPUTS
    for text, match in [
        ('[signal]\ngenerator = "onnx"\n', r"needs a \[signal.onnx\] table"),
        ('[signal]\ngenerator = "linear"\n[signal.onnx]\npath = "m.onnx"\ninputs = ["ofi"]\n',
         "is set but generator is 'linear'"),
        ('[signal]\ngenerator = "onnx"\n[signal.onnx]\npath = "m.onnx"\ninputs = ["ofi"]\nlayers = 3\n',
         r"\[signal.onnx\] unknown key 'layers'"),
        ('[signal]\ngenerator = "onnx"\n[signal.onnx]\ninputs = ["ofi"]\n', "missing key 'path'"),
        ('[signal]\ngenerator = "onnx"\n[signal.onnx]\npath = "m.onnx"\ninputs = ["nope"]\n',
         "unknown feature 'nope'"),
    ]:
        with pytest.raises(of.ConfigError, match=match):
            of.load_config(str(_toml(tmp_path, text)))


# ------------------------------------------------------------------ bad and hostile model files


def _external(tmp_path):
    m = mlp()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="/etc/passwd")
    return m


def _huge(tmp_path):
    m = mlp()
    t = m.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([2 ** 40, 8])             # declares 32 TB; carries 160 bytes
    return m


def _cycle(tmp_path):
    nodes = [helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Add", ["x", "a"], ["score"])]
    return _model(nodes, {}, out="score", n_out=len(INPUTS))


def _bad_shapes(tmp_path):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["score"])]
    return _model(nodes, {"w1": rng.normal(size=(4, 1))})       # 5 features into a 4-row matrix


HOSTILE = {
    "garbage": lambda p: b"\x07\x13 this is not a protobuf \xff\xfe" * 50,
    "truncated": lambda p: mlp().SerializeToString()[:150],
    "empty": lambda p: b"",
    "pickle": lambda p: pickle.dumps({"weights": [1, 2, 3]}),
    "zip": lambda p: b"PK\x03\x04" + b"\x00" * 100,
    "opset_999": lambda p: _model(mlp().graph.node, {}, opsets=[helper.make_opsetid("", 999)]),
    "unknown_domain": lambda p: _model(mlp().graph.node, {}, opsets=OPSETS + [helper.make_opsetid("evil.corp", 1)]),
    "int_input": lambda p: _model([helper.make_node("Cast", ["x"], ["score"], to=1)], {}, n_out=5,
                                  in_type=TensorProto.INT64),
    "fixed_batch": lambda p: _model(mlp().graph.node, {k: numpy_helper.to_array(t) for k, t in
                                    ((t.name, t) for t in mlp().graph.initializer)}, in_shape=[8, 5]),
    "width": lambda p: mlp(n_in=4),
    "score_with_3_outputs": lambda p: mlp(n_out=3, head="Softmax"),
    "external_data": _external,
    "huge_tensor": _huge,
    "cycle": _cycle,
    "bad_shapes": _bad_shapes,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("evaluator", ["auto", "onnxruntime"])
def test_bad_model_files_give_one_clear_error(tmp_path, case, evaluator):
    made = HOSTILE[case](tmp_path)
    data = made if isinstance(made, bytes) else made.SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError) as err:
        load_model(of.OnnxSignal(str(path), inputs=INPUTS, evaluator=evaluator))
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg and len(msg) < 600


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(of.OnnxSignal(str(tmp_path / "none.onnx"), inputs=INPUTS))
    with pytest.raises(ModelError, match="directory"):
        load_model(of.OnnxSignal(str(tmp_path), inputs=INPUTS))


def test_cli_model_mistakes_are_one_line_exit_2(tmp_path):
    (tmp_path / "m.onnx").write_bytes(pickle.dumps([1, 2]))
    cfg = _toml(tmp_path, f"""
        [signal]
        generator = "onnx"
        [signal.onnx]
        path = "m.onnx"
        inputs = {list(INPUTS)!r}
        """.replace("'", '"'))
    for cmd in (["backtest", str(cfg)], ["run", str(cfg)]):
        out = subprocess.run([sys.executable, "-m", "orpflow", *cmd], cwd=tmp_path,
                             capture_output=True, text=True)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "pickle" in lines[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize("case", ["cycle", "huge_tensor", "bad_shapes"])
def test_hostile_graphs_never_reach_the_compiler_unchecked(tmp_path, case):
    from orpflow.ml.native import compile_native
    from orpflow.ml.errors import NotNative
    with pytest.raises((ModelError, NotNative)):
        compile_native(HOSTILE[case](tmp_path), None)


@pytest.mark.parametrize("evaluator", ["native", "onnxruntime"])
def test_model_reads_its_inputs_first_the_rest_after_the_order(sample, models, evaluator):
    """The model's inputs are book and history columns: the engine computes those before the
    decision and the other groups after the order, with the same records and feature rows as
    computing everything first."""
    from orpflow.engine import load_engine_events
    from orpflow.runtime import build_core
    from orpflow._core.features import FEATURE_GROUPS
    from test_feature_order import run_both
    cfg = engine_config(signal_config(models["score"], evaluator))
    core, parts = build_core(cfg, cfg.make_instruments())
    assert parts[0][2].feature_reads() == FEATURE_GROUPS["book"] | FEATURE_GROUPS["history"]
    events = load_engine_events(cfg, cfg.make_instruments())[0]
    recs, counters = run_both(cfg, events, chunks=10)
    assert counters["orders"] > 0, counters
    flow = engine_config(signal_config({**models["score"], "inputs": INPUTS[:4] + ("trade_flow",)}, evaluator))
    core, parts = build_core(flow, flow.make_instruments())
    assert core.feature_order(0)["after"] == ["history", "windows", "toxicity"]
