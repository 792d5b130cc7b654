"""Pure-Python twin of ``orpflow._core.signals``: the rules of docs/signals.md, one by one.

Floating-point sums are written in the same order as the compiled code, so every decision
(side, reason, size) must agree exactly and the floats to the last bit.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from orpflow.config import SignalConfig, feature_columns
from orpflow.events import Reason
from orpflow.features import ROW_BOOK
from orpflow.instrument import Instrument
from orpflow.reference.features import FeatureTwin
from orpflow.signals import SIGNAL_DTYPE

LOT_EPS = 1e-9
MAX_LOTS = float(2 ** 52)
FLT_MAX = float(np.finfo(np.float32).max)
Z_BAND = 1e-9                # vol_z within 1e-9 of +-1 counts as on the boundary

# (side, reason, strength, confidence, holding_ms, size_mult)
Candidate = Tuple[int, int, float, float, float, float]


def none(reason: Reason) -> Candidate:
    return (0, int(reason), 0.0, 0.0, 0.0, 0.0)


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else (hi if x > hi else x)


class ImbalanceRules:
    """ORPFlow's imbalance generator, rules 1-10 in order."""

    def __init__(self, p: Dict[str, Any]) -> None:
        self.p = p
        self.streak = 0
        self.last_sign = 0

    def __call__(self, row: Dict[str, float]) -> Candidate:
        p = self.p
        if row["kind"] != ROW_BOOK:
            return none(Reason.SIG_TRADE_ROW)
        imb = row["imbalance"]
        if not row["book_ok"] or math.isnan(imb) or math.isnan(row["mid"]):      # 1
            return none(Reason.SIG_BOOK_UNUSABLE)
        if row["spread_bps"] > p["max_spread_bps"]:                               # 2
            return none(Reason.SIG_SPREAD)
        sign = (imb > 0) - (imb < 0)                                              # 3
        if sign == 0:
            self.streak = 0
        elif sign == self.last_sign:
            self.streak += 1
        else:
            self.streak = 1
        self.last_sign = sign
        if abs(imb) < p["threshold"]:                                             # 4
            return none(Reason.SIG_BELOW_THRESHOLD)
        if self.streak < p["persistence"]:                                        # 5
            return none(Reason.SIG_PERSISTENCE)
        vz, imom = row["volatility_z"], row["imbalance_momentum"]                 # 6
        conf = 0.4 * min(abs(imb), 1.0)
        conf += 0.2 * min(abs(row["weighted_imbalance"]), 1.0)
        conf += 0.2 * min(self.streak / 10.0, 1.0)
        if vz < -1.0 - Z_BAND:
            conf += 0.1
        if vz > 1.0 + Z_BAND:
            conf -= 0.1
        if imom * sign > 0.0:
            conf += 0.1
        conf = clamp(conf, 0.0, 1.0)
        if conf < p["min_confidence"]:
            return none(Reason.SIG_LOW_CONFIDENCE)
        if p["momentum_confirmation"] and not row["momentum"] * sign >= p["momentum_threshold"]:
            return none(Reason.SIG_NO_MOMENTUM)                                   # 7
        if imom * sign < 0.0:                                                     # 8
            return none(Reason.SIG_DIVERGENCE)
        mult = 1.5 if vz < -1.0 - Z_BAND else (0.5 if vz > 1.0 + Z_BAND else 1.0)  # 9 (sizing)
        return (sign, 0, clamp(imb / p["threshold"], -1.0, 1.0), conf,            # 10
                clamp(1000.0 / max(abs(imb), 0.01), 100.0, 10000.0), mult)


def strength_candidate(s: float, threshold: float, holding_ms: float) -> Candidate:
    if not abs(s) >= threshold or s == 0.0:
        return none(Reason.SIG_WEAK)
    return (1 if s > 0 else -1, 0, s, abs(s), holding_ms, 1.0)


class LinearRule:
    def __init__(self, p: Dict[str, Any], names: Tuple[str, ...]) -> None:
        self.p, self.names = p, names

    def __call__(self, row: Dict[str, float]) -> Candidate:
        if not row["book_ok"]:
            return none(Reason.SIG_BOOK_UNUSABLE)
        z = self.p["bias"]
        for w, name in zip(self.p["weights"], self.names):
            if w != 0.0:
                if math.isnan(row[name]):
                    return none(Reason.SIG_FEATURE_NAN)
                z += w * row[name]
        return strength_candidate(math.tanh(z), self.p["entry_threshold"], self.p["holding_ms"])


class CallableRule:
    def __init__(self, p: Dict[str, Any], fn: Callable[[Dict[str, float]], Any]) -> None:
        self.p, self.fn = p, fn

    def __call__(self, row: Dict[str, float]) -> Candidate:
        r = self.fn(dict(row))
        if r is None or math.isnan(float(r)):
            return none(Reason.SIG_USER_NONE)
        if not -1.0 <= float(r) <= 1.0:
            raise ValueError(f"signal callable returned {r!r}; expected a strength in [-1, 1] or None")
        if not row["book_ok"]:
            return none(Reason.SIG_BOOK_UNUSABLE)
        return strength_candidate(float(r), self.p["entry_threshold"], self.p["holding_ms"])


class ModelRule:
    """The ONNX generator: features checked and normalised in double, rounded to float32, the
    model run by the numpy reference evaluator, its output mapped to a candidate."""

    def __init__(self, p: Dict[str, Any], sig: Any, model: Any) -> None:
        from orpflow.model_config import CLASS_SIDES
        self.p, self.sig, self.model = p, sig, model
        self.shift, self.mul = sig.affine()
        self.sides = [CLASS_SIDES[c] for c in sig.classes]

    def __call__(self, row: Dict[str, float]) -> Candidate:
        if not row["book_ok"]:
            return none(Reason.SIG_BOOK_UNUSABLE)
        x = np.zeros(len(self.sig.inputs), dtype=np.float32)
        for i, name in enumerate(self.sig.inputs):
            v = (row[name] - self.shift[i]) * self.mul[i]
            if not abs(v) <= FLT_MAX:          # undefined, infinite, or beyond float32
                return none(Reason.SIG_FEATURE_NAN)
            x[i] = v
        y = [float(v) for v in np.asarray(self.model.evaluate(x), dtype=np.float32).reshape(-1)]
        if not all(math.isfinite(v) for v in y):
            return none(Reason.SIG_MODEL_BAD_OUTPUT)
        size_mult = 1.0
        if self.sig.mode == "score":
            s = clamp(y[0] * self.sig.scale, -1.0, 1.0)
            if not abs(s) >= self.p["entry_threshold"] or s == 0.0:
                return none(Reason.SIG_WEAK)
            if self.sig.size_by_strength:
                size_mult = abs(s)
            return (1 if s > 0 else -1, 0, s, abs(s), self.p["holding_ms"], size_mult)
        best = 0
        for i, v in enumerate(y):
            if v > y[best]:
                best = i
        side, prob = self.sides[best], y[best]
        if side == 0:
            return none(Reason.SIG_MODEL_FLAT)
        if not prob >= self.sig.min_probability:
            return none(Reason.SIG_WEAK)
        if self.sig.size_by_strength:
            size_mult = prob
        return (side, 0, side * prob, prob, self.p["holding_ms"], size_mult)


class PositionRules:
    """Sizing, adds, reversals, the minimum entry interval and holding-period exits."""

    def __init__(self, p: Dict[str, Any]) -> None:
        self.p = p
        self.clock = 0
        self.position = 0
        self.deadline = 0
        self.last_entry: Optional[int] = None

    def size_units(self, mid: float, mult: float) -> int:
        p = self.p
        if not mid > 0.0:
            return 0
        qty = p["equity"] * p["base_position_pct"] * mult / mid
        lot_qty = p["lot_units"] * p["qty_num"] / p["qty_den"]
        lots = math.floor(qty / lot_qty + LOT_EPS)
        return int(min(lots, MAX_LOTS)) * p["lot_units"] if lots >= 1 else 0

    def decide(self, row: Dict[str, float], c: Candidate) -> Tuple[Any, ...]:
        p = self.p
        self.clock = max(self.clock, int(row["ts_exch"]))
        t, pos = self.clock, self.position
        side, reason, strength, conf, holding_ms, mult = c
        out_side, units, shown = 0, 0, False
        if side != 0:
            same = pos != 0 and (pos > 0) == (side > 0)
            opposite = pos != 0 and not same
            holding_ns = int(holding_ms * 1e6)
            if same:
                self.deadline = max(self.deadline, t + holding_ns)
            if not opposite and self.last_entry is not None and t - self.last_entry < p["min_interval_ns"]:
                reason = Reason.SIG_MIN_INTERVAL
            else:
                new = self.size_units(row["mid"], mult * (0.5 if same else 1.0))
                if opposite:
                    out_side, units = side, abs(pos) + new
                    reason = Reason.SIG_REVERSE if new > 0 else Reason.SIG_EXIT_OPPOSITE
                    self.position, self.deadline = side * new, t + holding_ns
                elif new > 0:
                    out_side, units = side, new
                    reason = Reason.SIG_ADD if same else Reason.SIG_ENTER
                    self.position = pos + side * new
                    if not same:
                        self.deadline = t + holding_ns
                else:
                    reason = Reason.SIG_SIZE_ZERO
                if out_side != 0 and new > 0:
                    self.last_entry = t
                    shown = True
        elif p["exit_on_holding"] and pos != 0 and t >= self.deadline:
            out_side, units, reason = (-1 if pos > 0 else 1), abs(pos), Reason.SIG_EXIT_HOLDING
            self.position = 0
        size = units * p["qty_num"] / p["qty_den"]
        return (int(row["ts_exch"]), int(row["seq"]), out_side, int(reason),
                strength if shown else 0.0, conf if shown else 0.0, size,
                holding_ms if shown else 0.0, units, self.position)


def make_rule(config: SignalConfig, inst: Instrument) -> Callable[[Dict[str, float]], Candidate]:
    p = config.resolve(inst)
    g = config.generator
    if g == "imbalance":
        return ImbalanceRules(p)
    if g == "linear":
        return LinearRule(p, feature_columns(config.features))
    from orpflow.model_config import OnnxSignal
    if isinstance(g, OnnxSignal):
        import onnx
        from orpflow.reference.model import ReferenceModel
        return ModelRule(p, g, ReferenceModel(onnx.load_model(g.path), g.output))
    if callable(g) and not isinstance(g, str):
        return CallableRule(p, g)
    raise ValueError("the twin runs the imbalance, linear, onnx and callable generators only")


def signals_from_features(features: np.ndarray, inst: Instrument,
                          config: Optional[SignalConfig] = None) -> np.ndarray:
    """Twin of ``orpflow.signals.signals_from_features``."""
    config = config if config is not None else SignalConfig()
    rule = make_rule(config, inst)
    position = PositionRules(config.resolve(inst))
    names = features.dtype.names or ()
    out: List[Tuple[Any, ...]] = []
    for rec in features.tolist():
        row = dict(zip(names, rec))
        out.append(position.decide(row, rule(row)))
    return np.array(out, dtype=SIGNAL_DTYPE) if out else np.zeros(0, SIGNAL_DTYPE)


def compute_signals(events: np.ndarray, inst: Instrument,
                    config: Optional[SignalConfig] = None) -> np.ndarray:
    """Twin of ``orpflow.compute_signals``: twin features, then the rules."""
    config = config if config is not None else SignalConfig()
    feats = FeatureTwin(inst, config.features).run(events)
    return signals_from_features(feats, inst, config)
