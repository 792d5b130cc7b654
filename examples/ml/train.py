#!/usr/bin/env python3
"""From a recording to ONNX models trading in the engine.

    python examples/ml/train.py [--data FILE] [--out DIR] [--quick]

1. Feature rows with 1-second forward-return labels (``orpflow.ml.dataset``), split in time
   with purging (``orpflow.ml.purged_split``): the model learns on the first half of the
   recording and is tested on the second half, and no training label reaches the second half.
2. Two regressors of the forward return in basis points: a scikit-learn MLP and a LightGBM
   model, on z-scored features (the engine applies the same z-score before the model).
3. Both exported to ONNX (skl2onnx, onnxmltools with target_opset=15) in DIR.
4. Each backtested by the engine as an ``orpflow.OnnxSignal`` over the whole recording, with
   no order during the training half (``warmup_rows``), next to the built-in imbalance rules.
5. A summary table on stdout and the PnL curves in DIR/backtest.png.

The score a model returns is a predicted move in bps. ``scale`` turns it into a strength in
[-1, 1]: we set it so that the 95th percentile of |prediction| on the training rows is
strength 1, and enter when |strength| >= ENTRY_THRESHOLD. DATA must be a Binance spot BTCUSDT
recording (the bundled sample by default); needs ``pip install 'orpflow[test]'`` (pandas,
scikit-learn, lightgbm, skl2onnx, onnxmltools, matplotlib, onnxruntime).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

import orpflow as of
import orpflow.ml as ml

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "data" / "binance_spot_btcusdt_sample.gz"

#: The model's inputs, in its input order: stationary features (no prices).
INPUTS = ["imbalance", "weighted_imbalance", "depth_ratio", "book_pressure", "spread_bps", "ofi",
          "ofi_window", "imbalance_twa", "imbalance_momentum", "trade_flow", "momentum"]
HORIZON_MS = 1000           # label: the mid's return over the next second
TEST_FRACTION = 0.5         # the second half of the rows (by time) is the test period
ENTRY_THRESHOLD = 0.5       # |strength| to enter a position


def engine_config() -> of.EngineConfig:
    """Like examples/paper.toml (no database): the signal section is replaced per model."""
    return of.config_from_dict({
        "strategy": {"id": "ml-example"},
        "instruments": [{"symbol": "BTCUSDT", "venue": "binance-spot",
                         "tick_size": "0.01", "lot_size": "0.00001"}],
        "features": {"window_ms": 1000},
        "signal": {"base_position_pct": 0.1, "equity": 10000, "holding_ms": HORIZON_MS},
        "risk": {"max_position": "0.05", "max_order_notional": "5000", "price_band_bps": 50,
                 "rate_per_second": 5},
        "broker": {"cash": "10000", "maker_fee": "0.0001", "taker_fee": "0.0004",
                   "latency_entry_ns": 2_000_000, "latency_response_ns": 2_000_000, "seed": 7},
        "execution": {"order_type": "market", "account_every_ms": 1000},
    })


def build_dataset(events, cfg):
    """Labelled rows, split (train, test) in time with purging; train keeps complete rows only."""
    inst = cfg.make_instruments()[0]
    df = ml.dataset(events, inst, HORIZON_MS, cfg.signal.features, columns=INPUTS)
    train, test = ml.purged_split(df, TEST_FRACTION, embargo_ms=HORIZON_MS)
    train = train.dropna(subset=INPUTS + ["fwd_return"])
    return df, train, test


def zscore(train):
    """Per-input mean and std of the training rows (std 0 -> 1: a constant input)."""
    x = train[INPUTS].to_numpy(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[~(std > 0)] = 1.0
    return mean, std


def model_inputs(frame, mean, std):
    """float32 model inputs, normalised the way the engine does: (x - mean) * (1 / std)."""
    return ((frame[INPUTS].to_numpy(np.float64) - mean) * (1.0 / std)).astype(np.float32)


def train_models(x, y, quick):
    """name -> fitted regressor (y: forward return in bps)."""
    from lightgbm import LGBMRegressor
    from sklearn.neural_network import MLPRegressor
    mlp = MLPRegressor(hidden_layer_sizes=(16,) if quick else (32, 16), alpha=1e-3,
                       max_iter=100 if quick else 400, early_stopping=True, random_state=0)
    gbm = LGBMRegressor(n_estimators=30 if quick else 200, num_leaves=7 if quick else 15,
                        learning_rate=0.05, min_child_samples=50, subsample=0.8, subsample_freq=1,
                        random_state=0, n_jobs=1, verbose=-1)
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x, y)
    gbm.fit(x, y)
    return {"mlp": mlp, "lightgbm": gbm}


def export(name, model, n_inputs, out):
    """Write the model as DIR/name.onnx; returns the path."""
    if name == "lightgbm":
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
        onx = onnxmltools.convert_lightgbm(model, initial_types=[("features", FloatTensorType([None, n_inputs]))],
                                           target_opset=15, zipmap=False)
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, n_inputs]))],
                              options={id(model): {"zipmap": False}} if hasattr(model, "classes_") else None)
    path = Path(out) / f"{name}.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


def check_export(path, model, x):
    """The ONNX file predicts what the fitted model predicts (float32 tolerance)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0].ravel()
    want = model.predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(want).max())))


def with_signal(cfg, generator, warmup_rows, entry_threshold=ENTRY_THRESHOLD):
    """cfg with another signal generator and no order before `warmup_rows` feature rows."""
    signal = dataclasses.replace(cfg.signal, generator=generator, entry_threshold=entry_threshold)
    execution = dataclasses.replace(cfg.execution, warmup_rows=warmup_rows)
    return dataclasses.replace(cfg, signal=signal, execution=execution)


def run_backtests(events, cfg, models, paths, mean, std, scales, warmup_rows):
    """name -> BacktestResult: each model, and the built-in imbalance rules for comparison."""
    results = {}
    for name in models:
        sig = of.OnnxSignal(str(paths[name]), inputs=INPUTS, mode="score", scale=scales[name],
                            normalize="zscore", mean=tuple(mean), std=tuple(std), evaluator="auto")
        results[name] = of.backtest(events, with_signal(cfg, sig, warmup_rows))
    results["imbalance rules"] = of.backtest(events, with_signal(cfg, "imbalance", warmup_rows))
    return results


def summary(results, correlations):
    """The printed table: one row per model (breaker: the first risk breaker that tripped)."""
    lines = [f"{'model':<16} {'evaluator':<12} {'test corr':>9} {'orders':>7} {'fills':>6} {'PnL':>12}  breaker"]
    for name, res in results.items():
        sym = res.symbols[0]
        evaluator = res.models.get(sym, {}).get("evaluator", "-")
        corr = correlations.get(name)
        lines.append(f"{name:<16} {evaluator:<12} {'-' if corr is None else f'{corr:.3f}':>9} "
                     f"{len(res.orders[sym]):>7} {len(res.fills[sym]):>6} {res.stats[sym]['pnl']:>12.4f}  "
                     f"{res.breaker_trips[0].breaker if res.breaker_trips else '-'}")
    return "\n".join(lines)


def plot(results, test_start_ns, path):
    """PnL (equity less the starting cash) over the test period, one line per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, res in results.items():
        eq = res.equity[res.equity["slot"] == 0]
        eq = eq[eq["ts_exch"] >= test_start_ns]
        if len(eq):
            ax.plot((eq["ts_exch"] - test_start_ns) / 1e9, eq["equity"] - eq["equity"][0], lw=1, label=name)
    ax.set_xlabel("seconds into the test period")
    ax.set_ylabel("PnL (USDT)")
    ax.set_title("Out-of-sample backtests")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(SAMPLE), help="Binance spot BTCUSDT recording (default: the bundled sample)")
    ap.add_argument("--out", default="ml-out", help="folder for the .onnx files and backtest.png")
    ap.add_argument("--quick", action="store_true", help="small models (for CI)")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.data):
        print(f"train.py: {args.data}: no such file", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)

    cfg = engine_config()
    events = of.read_binance(args.data, cfg.make_instruments()[0])
    df, train, test = build_dataset(events, cfg)
    print(f"{len(df):,} feature rows: {len(train):,} training rows (after purging and dropping "
          f"incomplete ones), {len(test):,} test rows")

    mean, std = zscore(train)
    x_train = model_inputs(train, mean, std)
    y_train = train["fwd_return"].to_numpy() * 1e4                     # bps
    models = train_models(x_train, y_train, args.quick)

    test_rows = test.dropna(subset=INPUTS + ["fwd_return"])
    x_test = model_inputs(test_rows, mean, std)
    paths, scales, correlations = {}, {}, {}
    for name, model in models.items():
        paths[name] = export(name, model, len(INPUTS), args.out)
        check_export(paths[name], model, x_test[:1000])
        q95 = float(np.quantile(np.abs(model.predict(x_train)), 0.95))
        scales[name] = 1.0 / q95 if q95 > 0 else 1.0
        pred = model.predict(x_test)
        correlations[name] = float(np.corrcoef(pred, test_rows["fwd_return"])[0, 1]) if pred.std() > 0 else float("nan")

    # the engine makes the same feature rows: no order before the first test row
    warmup_rows = int(test.index.min())
    results = run_backtests(events, cfg, models, paths, mean, std, scales, warmup_rows)
    print(summary(results, correlations))
    png = Path(args.out) / "backtest.png"
    plot(results, int(test["ts_exch"].min()), png)
    print(f"models: {', '.join(str(p) for p in paths.values())}; plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
