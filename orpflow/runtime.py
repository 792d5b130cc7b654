"""Runtime objects from an EngineConfig: the compiled engine, its brokers and generators.

config.py is data and validation only; this module turns a validated EngineConfig into
compiled objects, and the Engine and backtest() import it (imports point down:
engine/backtest -> runtime -> config, compiled core).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from orpflow._core.broker import ExecutionSim, PaperBroker
from orpflow._core.engine import EngineCore
from orpflow._core.features import FeatureEngine
from orpflow._core.signal_strategy import SignalStrategy
from orpflow._core.strategy import CStrategy, PythonStrategy
from orpflow._core.snapshot import MarketSnapshot
from orpflow.config import EngineConfig
from orpflow.features import raw_dtype
from orpflow.instrument import Instrument
from orpflow.signals import make_generator

__all__ = ["build_core", "make_broker", "model_descriptions", "resolve_strategies"]


def make_broker(config: EngineConfig, inst: Instrument) -> PaperBroker:
    """The paper broker of `inst` as [broker] describes it."""
    return PaperBroker(inst, **config.broker.params(inst))


def _as_cstrategy(obj: Any, symbol: str) -> CStrategy:
    from orpflow.strategy import Strategy
    if isinstance(obj, CStrategy):
        return obj
    if isinstance(obj, Strategy):
        return PythonStrategy(obj)
    raise TypeError(f"strategy for {symbol}: expected an orpflow.Strategy or a CStrategy, "
                    f"got {type(obj).__name__}")


def strategy_from_config(config: EngineConfig) -> Any:
    """[strategy] class and params as a callable f(instrument) -> a fresh instance, or None.
    What cannot be loaded is a ConfigError naming the key."""
    import importlib
    import importlib.util
    import os
    import sys
    from orpflow.config import ConfigError
    from orpflow.strategy import Strategy
    target = config.strategy_class
    if target is None:
        return None
    where, _, name = target.rpartition(":")
    key = f"[strategy] class = {target!r}"
    try:
        if where.endswith(".py"):
            if not os.path.isfile(where):
                raise ConfigError(f"{key}: file not found: {where}")
            mod_name = "orpflow_user_strategy_" + os.path.splitext(os.path.basename(where))[0]
            spec = importlib.util.spec_from_file_location(mod_name, where)
            if spec is None or spec.loader is None:
                raise ConfigError(f"{key}: cannot load {where}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except ImportError as exc:
        raise ConfigError(f"{key}: cannot import {where}: {exc}") from None
    except Exception as exc:                 # the file itself fails: say where, in one line
        raise ConfigError(f"{key}: loading {where} failed: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise ConfigError(f"{key}: {where} has no {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, (Strategy, CStrategy))):
        raise ConfigError(f"{key}: {name} is not an orpflow.Strategy or CStrategy subclass")
    params = dict(config.strategy_params)

    def make(inst: Instrument) -> Any:
        try:
            return cls(**params)
        except TypeError as exc:
            raise ConfigError(f"[strategy] params {sorted(params)}: {name}(...) refused them: {exc}") from None
    return make


def resolve_strategies(strategy: Any, insts: Sequence[Instrument]) -> List[Optional[CStrategy]]:
    """One CStrategy per instrument from `strategy`: None (the config's signal strategy for
    each), an instance (a single-instrument config), a dict {symbol: instance} naming every
    instrument, or a callable f(instrument) -> instance."""
    from orpflow.strategy import Strategy
    if strategy is None:
        return [None] * len(insts)
    if isinstance(strategy, (Strategy, CStrategy)):
        if len(insts) != 1:
            raise ValueError(f"one strategy instance for {len(insts)} instruments: pass a dict "
                             "{symbol: strategy} or a callable f(instrument) -> strategy")
        return [_as_cstrategy(strategy, insts[0].symbol)]
    if isinstance(strategy, dict):
        syms = [i.symbol for i in insts]
        unknown = sorted(set(strategy) - set(syms))
        missing = [s for s in syms if s not in strategy]
        if unknown or missing:
            raise ValueError(f"strategy dict: unknown symbols {unknown}, missing {missing} "
                             f"(trading {syms})")
        if len({id(strategy[i.symbol]) for i in insts}) != len(insts):
            raise ValueError("one strategy object per instrument: give each symbol its own instance")
        return [_as_cstrategy(strategy[i.symbol], i.symbol) for i in insts]
    if callable(strategy):
        made = [strategy(i) for i in insts]
        if len({id(m) for m in made}) != len(made):
            raise ValueError("one strategy object per instrument: the callable returned the same "
                             "instance twice (a strategy keeps one instrument's state)")
        return [_as_cstrategy(m, i.symbol) for m, i in zip(made, insts)]
    raise TypeError("strategy must be an orpflow.Strategy, a CStrategy, a dict {symbol: strategy} "
                    f"or a callable f(instrument) -> strategy; got {type(strategy).__name__}")


def build_core(config: EngineConfig, insts: Sequence[Instrument],
               strategy: Any = None) -> Tuple[EngineCore, List[Any]]:
    """The compiled engine with one slot per instrument: (core, [(sim, snapshot, generator), ...]);
    generator is None where `strategy` (see resolve_strategies; default: the config's
    [strategy] class, else the signal strategy) replaces the signal strategy."""
    if strategy is None:
        strategy = strategy_from_config(config)
    strategies = resolve_strategies(strategy, insts)
    core = EngineCore()
    # "always": the idle strategy thread never sleeps (a live feed's latency is then not set
    # by a wake-up); only this thread may spin
    core.spin_ns = 2 ** 62 if config.spin == "always" else int(config.spin_us * 1000)
    parts = []
    fcfg = config.signal.features
    exec_params = config.execution.resolve()
    for inst, strat in zip(insts, strategies):
        sim = ExecutionSim(inst, make_broker(config, inst), config.risk,
                           imbalance_levels=fcfg.imbalance_levels,
                           weighted_levels=fcfg.weighted_levels, weighted_decay=fcfg.weighted_decay)
        features = FeatureEngine(sim.book, fcfg.resolve(inst), raw_dtype(fcfg), fcfg.extension)
        snapshot = MarketSnapshot()
        generator = None
        if strat is None:
            generator = make_generator(config.signal, inst)
            strat = SignalStrategy(generator, config.signal.resolve(inst), exec_params)
        core.add(sim, features, strat, snapshot, exec_params)
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
