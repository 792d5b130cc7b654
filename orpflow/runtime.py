"""Runtime objects from an EngineConfig: the compiled engine, its brokers and generators.

config.py is data and validation only; this module turns a validated EngineConfig into
compiled objects, and the Engine and backtest() import it (imports point down:
engine/backtest -> runtime -> config, compiled core).
"""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from orpflow._core.broker import ExecutionSim, PaperBroker
from orpflow._core.engine import EngineCore
from orpflow._core.features import FeatureEngine
from orpflow._core.snapshot import MarketSnapshot
from orpflow.config import EngineConfig
from orpflow.features import raw_dtype
from orpflow.instrument import Instrument
from orpflow.signals import make_generator

__all__ = ["build_core", "make_broker", "model_descriptions"]


def make_broker(config: EngineConfig, inst: Instrument) -> PaperBroker:
    """The paper broker of `inst` as [broker] describes it."""
    return PaperBroker(inst, **config.broker.params(inst))


def build_core(config: EngineConfig, insts: Sequence[Instrument]) -> Tuple[EngineCore, List[Any]]:
    """The compiled engine with one slot per instrument: (core, [(sim, snapshot, generator), ...])."""
    core = EngineCore()
    # "always": the idle strategy thread never sleeps (a live feed's latency is then not set
    # by a wake-up); only this thread may spin
    core.spin_ns = 2 ** 62 if config.spin == "always" else int(config.spin_us * 1000)
    parts = []
    fcfg = config.signal.features
    for inst in insts:
        sim = ExecutionSim(inst, make_broker(config, inst), config.risk,
                           imbalance_levels=fcfg.imbalance_levels,
                           weighted_levels=fcfg.weighted_levels, weighted_decay=fcfg.weighted_decay)
        features = FeatureEngine(sim.book, fcfg.resolve(inst), raw_dtype(fcfg), fcfg.extension)
        snapshot = MarketSnapshot()
        generator = make_generator(config.signal, inst)
        core.add(sim, features, generator, snapshot, config.signal.resolve(inst),
                 config.execution.resolve())
        parts.append((sim, snapshot, generator))
    return core, parts


def model_descriptions(symbols: Sequence[str], parts: Sequence[Any]) -> dict:
    """symbol -> {path, evaluator, reason, output} for the slots whose generator is a model."""
    out = {}
    for sym, part in zip(symbols, parts):
        loaded = getattr(part[2], "loaded", None)
        if loaded is not None:
            out[sym] = {"path": loaded.path, "evaluator": loaded.evaluator, "reason": loaded.reason,
                        "output": loaded.output}
    return out
