"""Signal rows from event arrays: ``compute_signals``.

The compiled loop (``orpflow._core.signals``) applies each event to the book, updates the
features, runs one generator and the shared position rules, without the GIL (except for a
Python-callable generator). Rules: docs/signals.md; twin: orpflow/reference/signals.py.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import numpy.lib.recfunctions as rfn

from orpflow._core import signals as _signals
from orpflow.config import SignalConfig, feature_columns
from orpflow.features import FeatureRunner, raw_dtype
from orpflow.instrument import Instrument
from orpflow.model_config import CLASS_SIDES, OnnxSignal


def _signal_dtype() -> np.dtype:
    layout, size = _signals.row_layout()
    kinds = {"ts_exch": "<i8", "seq": "<i8", "side": "<i4", "reason": "<i4",
             "size_units": "<i8", "position_units": "<i8"}
    names = [n for n, _ in layout]
    return np.dtype({"names": names, "formats": [kinds.get(n, "<f8") for n in names],
                     "offsets": [o for _, o in layout], "itemsize": size})


#: dtype of ``compute_signals`` rows. ``side``: +1 buy, -1 sell, 0 none; ``reason``: a
#: ``Reason.SIG_*`` code (the kind of signal, or why there is none); ``size`` in the
#: instrument's size, ``size_units`` in its size_increment; ``position_units``: the position
#: the signals imply after the row.
SIGNAL_DTYPE = _signal_dtype()


def make_generator(config: SignalConfig, inst: Instrument) -> Any:
    """The compiled generator object `config` asks for."""
    params = config.resolve(inst)
    g = config.generator
    if isinstance(g, _signals.SignalGenerator):
        return g
    if isinstance(g, OnnxSignal):
        return make_model_generator(g, config, params)
    if g == "imbalance":
        return _signals.ImbalanceSignal(params)
    if g == "linear":
        return _signals.LinearSignal(params["weights"], params["bias"],
                                     params["entry_threshold"], params["holding_ms"])
    return _signals.PythonSignal(g, feature_columns(config.features), params["entry_threshold"],
                                 params["holding_ms"])


def make_model_generator(sig: OnnxSignal, config: SignalConfig, params: Dict[str, Any]) -> Any:
    """The compiled ONNX generator: the model loaded and checked, its evaluator chosen
    (orpflow.ml.load; onnx/onnxruntime are imported only here)."""
    from orpflow._core.model_signal import ModelSignal
    from orpflow.ml.load import load_model
    columns = feature_columns(config.features)
    shift, mul = sig.affine()
    return ModelSignal(load_model(sig), [columns.index(n) for n in sig.inputs], shift, mul,
                       sig.mode, float(sig.scale), params["entry_threshold"],
                       float(sig.min_probability), params["holding_ms"], sig.size_by_strength,
                       [CLASS_SIDES[c] for c in sig.classes])


class SignalRunner:
    """Features + one signal generator for one instrument, fed event arrays piece by piece.

    Parameters
    ----------
    inst
        The instrument the events belong to.
    config
        SignalConfig (defaults if None); its ``features`` configures the features.
    """

    def __init__(self, inst: Instrument, config: Optional[SignalConfig] = None) -> None:
        self.config = config if config is not None else SignalConfig()
        if not isinstance(self.config, SignalConfig):
            raise TypeError("config must be a SignalConfig")
        self.features = FeatureRunner(inst, self.config.features)
        self.generator = make_generator(self.config, inst)
        self.engine = _signals.SignalEngine(self.features.engine, self.generator,
                                            self.config.resolve(inst), SIGNAL_DTYPE)

    def run(self, events: np.ndarray) -> np.ndarray:
        """Signal rows for `events`, one per feature row."""
        return self.engine.run(events)

    def run_with_features(self, events: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(feature rows, signal rows) for `events`, aligned row by row."""
        feats, sigs = self.engine.run(events, True)
        return rfn.repack_fields(feats), sigs

    @property
    def position_units(self) -> int:
        """The position the signals imply, in size units."""
        return int(self.engine.position())


def compute_signals(events: np.ndarray, inst: Instrument,
                    config: Optional[SignalConfig] = None) -> np.ndarray:
    """Signal rows for an event array: one per feature row (book message or trade).

    Parameters
    ----------
    events
        EVENT_DTYPE array of one instrument, in arrival order.
    inst
        Its Instrument.
    config
        SignalConfig (generator, rules, sizing, features); defaults if None.

    Returns
    -------
    numpy.ndarray
        SIGNAL_DTYPE rows: ``ts_exch``, ``seq``, ``side`` (0 = none), ``strength``,
        ``confidence``, ``size``, ``holding_ms``, ``reason``, ``size_units``,
        ``position_units``. Sizes assume every signal fills at once (the paper broker
        and risk checks decide what really trades).

    Raises
    ------
    TypeError, ValueError
        Bad events or config. Whatever a Python-callable generator raises is re-raised.
    """
    return SignalRunner(inst, config).run(events)


def signals_from_features(features: np.ndarray, inst: Instrument,
                          config: Optional[SignalConfig] = None) -> np.ndarray:
    """Signal rows for feature rows already computed (``compute_features`` output)."""
    config = config if config is not None else SignalConfig()
    raw = np.zeros(len(features), dtype=raw_dtype(config.features))
    for name in raw.dtype.names or ():
        raw[name] = features[name]
    engine = _signals.SignalEngine(None, make_generator(config, inst), config.resolve(inst),
                                   SIGNAL_DTYPE)
    return engine.run_rows(raw)


def reason_names(reasons: np.ndarray) -> np.ndarray:
    """Reason codes as names (e.g. for a DataFrame column)."""
    from orpflow.events import Reason
    names: Dict[int, str] = {int(r): r.name for r in Reason}
    return np.array([names.get(int(r), str(int(r))) for r in reasons], dtype=object)
