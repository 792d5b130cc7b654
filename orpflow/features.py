"""Feature rows from event arrays: ``compute_features`` and the column names.

The features are computed by the compiled core (``orpflow._core.features``) in one nogil
loop; ``orpflow/reference/features.py`` is the plain-Python twin. Formulas: docs/features.md.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import numpy.lib.recfunctions as rfn

from orpflow._core import features as _features
from orpflow.config import FeatureConfig
from orpflow.feature_names import FEATURE_GROUP, FEATURE_NAMES
from orpflow.instrument import Instrument

ROW_BOOK = 0
ROW_TRADE = 1


def _row_dtype(extra_names: Tuple[str, ...] = ()) -> np.dtype:
    """The FeatureVector layout as numpy sees it: offsets taken from the C compiler."""
    head, extra_offset, size = _features.vector_layout()
    names, formats, offsets = [], [], []
    for key, off in head:
        name = FEATURE_NAMES[key] if isinstance(key, int) else key
        names.append(name)
        formats.append("<f8" if isinstance(key, int) else ("<i4" if key in ("kind", "book_ok") else "<i8"))
        offsets.append(off)
    for i, n in enumerate(extra_names):
        names.append(n)
        formats.append("<f8")
        offsets.append(extra_offset + 8 * i)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


if len(_features.vector_layout()[0]) != 4 + len(FEATURE_NAMES):
    raise ImportError("FEATURE_NAMES does not match the compiled FeatureVector")

#: dtype of ``compute_features`` rows without extension columns.
FEATURE_DTYPE = rfn.repack_fields(np.zeros(0, _row_dtype())).dtype


def raw_dtype(config: Optional[FeatureConfig] = None) -> np.dtype:
    """The FeatureVector layout with `config`'s extension columns named (what the core fills)."""
    ext = config.extension if config is not None else None
    return _row_dtype(tuple(ext.names) if ext is not None else ())


def feature_dtype(config: Optional[FeatureConfig] = None) -> np.dtype:
    """Row dtype for `config`: ts_exch, seq, kind, book_ok, then every feature column."""
    return rfn.repack_fields(np.zeros(0, raw_dtype(config))).dtype


def make_book(inst: Instrument, config: FeatureConfig) -> Any:
    """An OrderBook whose metrics use the same windows as the features."""
    from orpflow._core.book import OrderBook
    return OrderBook(inst, imbalance_levels=config.imbalance_levels,
                     weighted_levels=config.weighted_levels, weighted_decay=config.weighted_decay)


class FeatureRunner:
    """Feature state for one instrument, fed event arrays piece by piece.

    Parameters
    ----------
    inst
        The instrument the events belong to.
    config
        FeatureConfig (defaults if None).
    """

    def __init__(self, inst: Instrument, config: Optional[FeatureConfig] = None) -> None:
        self.config = config if config is not None else FeatureConfig()
        if not isinstance(self.config, FeatureConfig):
            raise TypeError("config must be a FeatureConfig")
        self.instrument = inst
        self.book = make_book(inst, self.config)
        self.engine = _features.FeatureEngine(self.book, self.config.resolve(inst),
                                              raw_dtype(self.config), self.config.extension)

    def run(self, events: np.ndarray) -> np.ndarray:
        """Feature rows for `events` (one per complete book message or trade)."""
        return rfn.repack_fields(self.engine.run(events))

    def stats(self) -> Dict[str, int]:
        return dict(self.engine.stats())


def compute_features(events: np.ndarray, inst: Instrument,
                     config: Optional[FeatureConfig] = None) -> np.ndarray:
    """Feature rows for an event array, one per complete book message or trade.

    Parameters
    ----------
    events
        EVENT_DTYPE array of one instrument, in arrival order (``read_binance`` etc.).
    inst
        Its Instrument (venue rules, tick and size grids).
    config
        FeatureConfig; defaults if None.

    Returns
    -------
    numpy.ndarray
        Structured array: ``ts_exch``, ``seq`` (Binance ``u`` of a book message, trade id of a
        trade), ``kind`` (0 book, 1 trade), ``book_ok``, then one float64 column per name in
        ``FEATURE_NAMES`` (and the extension's). Undefined values are NaN (docs/features.md).
        ``pandas.DataFrame(rows)`` gives a frame.

    Raises
    ------
    TypeError, ValueError
        `events` is not a 1-D C-contiguous EVENT_DTYPE array, or the config is invalid.
    """
    return FeatureRunner(inst, config).run(events)
