"""orpflow: low-latency order-flow trading with a nogil Cython core.

The L2 order book, features, signals, pre-trade risk, the paper broker and the engine's
per-event loop run compiled, without the GIL, over C structs; Python reads the market data,
holds the config, runs the feed, strategy and persistence threads, writes SQLite and serves
the ``orpflow`` command.

Light to import: numpy, orjson and the compiled core. The rest loads when it is used: SQLite
(apsw) when a database is opened, Prometheus when metrics are enabled, ONNX when a model is
configured, pandas and matplotlib for decoded frames and plots, dask for ``sweep()``,
tqdm for progress bars, ``orpflow.ml`` on first access. Logs go to the standard ``logging``
loggers under ``orpflow.*`` (a NullHandler by default; ``orpflow --log-format json`` on the
command line).

``sample_path()`` is the real Binance recording that comes with the package and
``example_config("paper")`` a session over it (``orpflow run``); ``orpflow init DIR`` writes a
copy of that config to start from.
"""
import importlib as _importlib


def _source_tree_guard() -> None:
    """A checkout's orpflow/ has no compiled modules: imported from there (python started in
    the checkout, a notebook beside it) it would fail on its first compiled import with an
    error that does not say why. Say why, and what to do."""
    try:
        _importlib.import_module("orpflow._core.types")
    except ModuleNotFoundError as exc:
        if exc.name != "orpflow._core.types":
            raise
        import os
        import sys
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.dirname(here)
        py = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
        if os.path.isfile(os.path.join(root, "setup.py")) and os.path.isdir(os.path.join(root, "examples")):
            msg = (f"orpflow is being imported from the source tree at {root}, which has no compiled "
                   f"extensions (for {py}): run from another folder, so that the installed orpflow is "
                   "imported (pip install . first), or build the checkout in place with `pip install -e .`")
        else:
            msg = (f"the orpflow at {here} has no compiled extension for {py} (orpflow._core.types): "
                   "reinstall orpflow for this Python")
        raise ImportError(msg) from None


_source_tree_guard()
del _source_tree_guard, _importlib

from orpflow.events import (  # noqa: E402  (after the guard: the first compiled import)
    EVENT_DTYPE, Flags, Reason, check_event_array, empty_events, flags, load_events, save_events,
)
from orpflow.instrument import Instrument
from orpflow._core.book import OrderBook
from orpflow._core.ring import EventRing
from orpflow._core.snapshot import MarketSnapshot
from orpflow.feeds import FeedReport, read_binance, read_cryptofeed, read_tardis
from orpflow.feeds import events_from_frame, merge_events
from orpflow.config import FeatureConfig, Fees, Latency, RiskLimits, SignalConfig
from orpflow.model_config import OnnxSignal
from orpflow.features import FEATURE_DTYPE, FEATURE_NAMES, FeatureRunner, compute_features
from orpflow.signals import SIGNAL_DTYPE, SignalRunner, compute_signals, signals_from_features
from orpflow._core.features import FeatureExtension
from orpflow._core.signals import SignalGenerator
from orpflow._core.strategy import CStrategy
from orpflow.strategy import FillUpdate, OrderUpdate, Strategy, Trade
from orpflow._core.risk import RiskGate
from orpflow._core.broker import ExecutionSim, PaperBroker
from orpflow.orders import (
    FILL_DTYPE, ORDER_DTYPE, OrderStatus, OrderType, Side, TimeInForce,
)
from orpflow.config import (
    BrokerConfig, ConfigError, EngineConfig, ExecutionConfig, FeedConfig, InstrumentConfig,
    MetricsConfig, PersistenceConfig, config_from_dict, load_config,
)
from orpflow.engine import Engine, load_engine_events, repeat_events
from orpflow.backtest import BacktestResult, backtest
from orpflow.plots import plot_book, plot_features
from orpflow.persistence import Store
from orpflow.sweep import sweep          # light: dask and pandas load when a sweep runs
from orpflow.bundled import example_config, sample_path

__version__ = "0.1.0"

# a library configures no handler: the application decides where orpflow's records go
import logging as _logging
_logging.getLogger("orpflow").addHandler(_logging.NullHandler())


def get_include() -> str:
    """Directory of orpflow's C headers, for building your own Cython against orpflow's .pxd."""
    import os
    return os.path.join(os.path.dirname(__file__), "_core")

def __getattr__(name: str):
    # of.ml loads on first use: it is heavy (pandas, onnx) and most sessions never touch it
    if name == "ml":
        import importlib
        return importlib.import_module("orpflow.ml")
    raise AttributeError(f"module 'orpflow' has no attribute {name!r}")


__all__ = [
    "EVENT_DTYPE", "Flags", "Reason", "flags", "check_event_array", "empty_events",
    "load_events", "save_events", "Instrument", "OrderBook", "EventRing", "MarketSnapshot",
    "FeedReport", "read_binance", "read_cryptofeed", "read_tardis",
    "events_from_frame", "merge_events",
    "FeatureConfig", "SignalConfig", "OnnxSignal", "FEATURE_DTYPE", "FEATURE_NAMES", "FeatureRunner",
    "compute_features", "SIGNAL_DTYPE", "SignalRunner", "compute_signals",
    "signals_from_features", "FeatureExtension", "SignalGenerator", "get_include", "__version__",
    "Fees", "Latency", "RiskLimits", "RiskGate", "PaperBroker", "ExecutionSim", "ORDER_DTYPE",
    "FILL_DTYPE", "OrderStatus", "OrderType", "Side", "TimeInForce",
    "BrokerConfig", "ConfigError", "EngineConfig", "ExecutionConfig", "FeedConfig", "InstrumentConfig",
    "MetricsConfig", "PersistenceConfig", "config_from_dict", "load_config", "Engine",
    "load_engine_events", "repeat_events", "BacktestResult", "backtest", "Store",
    "Strategy", "CStrategy", "Trade", "OrderUpdate", "FillUpdate", "plot_book", "plot_features", "sweep",
    "sample_path", "example_config",
]
