"""orpflow: low-latency order-flow trading with a nogil Cython core.

Light to import: numpy and the compiled core only. Heavy optional pieces (ONNX, Prometheus)
load when a feature that needs them is configured.
"""
from orpflow.events import (
    EVENT_DTYPE, Flags, Reason, check_event_array, empty_events, flags, load_events, save_events,
)
from orpflow.instrument import Instrument
from orpflow._core.book import OrderBook
from orpflow._core.ring import EventRing
from orpflow._core.snapshot import MarketSnapshot
from orpflow.feeds import FeedReport, read_binance, read_cryptofeed, read_tardis
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
from orpflow.persistence import Store
from orpflow.bundled import example_config, sample_path

__version__ = "0.1.0"


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
    "FeatureConfig", "SignalConfig", "OnnxSignal", "FEATURE_DTYPE", "FEATURE_NAMES", "FeatureRunner",
    "compute_features", "SIGNAL_DTYPE", "SignalRunner", "compute_signals",
    "signals_from_features", "FeatureExtension", "SignalGenerator", "get_include", "__version__",
    "Fees", "Latency", "RiskLimits", "RiskGate", "PaperBroker", "ExecutionSim", "ORDER_DTYPE",
    "FILL_DTYPE", "OrderStatus", "OrderType", "Side", "TimeInForce",
    "BrokerConfig", "ConfigError", "EngineConfig", "ExecutionConfig", "FeedConfig", "InstrumentConfig",
    "MetricsConfig", "PersistenceConfig", "config_from_dict", "load_config", "Engine",
    "load_engine_events", "repeat_events", "BacktestResult", "backtest", "Store",
    "Strategy", "CStrategy", "Trade", "OrderUpdate", "FillUpdate",
    "sample_path", "example_config",
]
