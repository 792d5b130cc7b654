"""Pure-Python twin of ``orpflow._core.features``: every feature recomputed from its formula.

Written for reading, not speed: the twin keeps the whole history in lists and recomputes each
feature from its definition on every row (windows by bisecting the time-sorted history), with
exact integer sums where the data are integers. The compiled core updates the same quantities
incrementally; the differential tests demand the same rows (docs/features.md has the
tolerance table).
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from orpflow._core.types import FLAGS
from orpflow.config import FeatureConfig, _GROUP_BITS
from orpflow.events import check_event_array
from orpflow.features import FEATURE_NAMES, ROW_BOOK, ROW_TRADE, feature_dtype
from orpflow.instrument import Instrument
from orpflow.reference.book import OrderBook

NAN = math.nan
TRADE, LAST, BUY, SELL = FLAGS["TRADE"], FLAGS["LAST"], FLAGS["BUY"], FLAGS["SELL"]
BOOK_KINDS = FLAGS["DEPTH"] | FLAGS["SNAPSHOT"] | FLAGS["CLEAR"]
CLOCK_MAX = 2 ** 62          # the feature clock is clamped to [0, 2**62] ns


def ofi_contribution(pb: int, qb: int, pa: int, qa: int,
                     pb0: int, qb0: int, pa0: int, qa0: int) -> int:
    """Cont, Kukanov & Stoikov (2014), eq. (2): e_n from the best quotes before and after."""
    return ((qb if pb >= pb0 else 0) - (qb0 if pb <= pb0 else 0)
            - (qa if pa <= pa0 else 0) + (qa0 if pa >= pa0 else 0))


def ols_slope(y: List[float]) -> float:
    """Least-squares slope of y against 0..n-1; exactly 0 when y is flat.

    The numerator sum_k (k - c) y_k (c the mean index) is summed in symmetric pairs,
    (c - k)(y[n-1-k] - y[k]), so a flat or mirror-symmetric window cancels exactly.
    """
    n = len(y)
    c = (n - 1) / 2.0
    num = 0.0
    for k in range(n // 2):
        num += (c - k) * (y[n - 1 - k] - y[k])
    sxx = 0.0
    for k in range(n):
        sxx += (k - c) * (k - c)
    return num / sxx


class FeatureTwin:
    """Same contract as ``orpflow.features.FeatureRunner``."""

    def __init__(self, inst: Instrument, config: Optional[FeatureConfig] = None) -> None:
        self.config = config if config is not None else FeatureConfig()
        self.p: Dict[str, Any] = self.config.resolve(inst)
        self.inst = inst
        self.book = OrderBook(inst, imbalance_levels=self.config.imbalance_levels,
                              weighted_levels=self.config.weighted_levels,
                              weighted_decay=self.config.weighted_decay)
        self.px_num, self.px_den = inst.price_scale
        self.qty_num, self.qty_den = inst.size_scale
        self.groups = self.p["groups"]
        self.clock: Optional[int] = None
        self.first_clock = 0
        self.row: Dict[str, float] = dict.fromkeys(FEATURE_NAMES, NAN)
        self.row.update(kind=ROW_BOOK, book_ok=0)
        self.prev_quote: Optional[Tuple[int, int, int, int]] = None
        # histories of usable book rows
        self.mids: List[float] = []
        self.mid2s: List[int] = []
        self.imbalances: List[float] = []
        self.returns: List[float] = []
        self.vols: List[float] = []
        # book rows: (clock, imbalance, mid, e_n) with None where undefined
        self.book_rows: List[Tuple[int, Optional[float], Optional[float], Optional[int]]] = []
        self.book_times: List[int] = []
        # trades: (clock, price ticks, size units, side)
        self.trades: List[Tuple[int, int, int, int]] = []
        self.trade_times: List[int] = []
        self.bucket = [0, 0, 0]          # fill, buy, sell of the open VPIN bucket
        self.buckets: List[int] = []     # |B - S| of every closed bucket
        self.bad_trades = 0

    def on(self, group: str) -> bool:
        return bool(self.groups & _GROUP_BITS[group])

    # -------------------------------------------------------------- book rows
    def book_ok(self) -> bool:
        b = self.book
        return b.in_sync and not b.crossed and bool(b.bids) and bool(b.asks)

    def book_state(self) -> Optional[Tuple[int, int, int, int]]:
        """Fill the book-state columns; returns the best quotes (ticks, units)."""
        p, r = self.p, self.row
        n = max(p["imbalance_levels"], p["weighted_levels"], p["depth_ratio_levels"],
                p["pressure_levels"])
        bids, asks = self.book.top("bid", n), self.book.top("ask", n)
        qb = [q for _, q in bids]
        qa = [q for _, q in asks]
        pb, pa = bids[0][0], asks[0][0]
        bid_px = pb * self.px_num / self.px_den
        ask_px = pa * self.px_num / self.px_den
        r["mid"] = (bid_px + ask_px) / 2.0
        r["spread_bps"] = (ask_px - bid_px) / r["mid"] * 1e4
        k = p["imbalance_levels"]
        r["imbalance"] = (sum(qb[:k]) - sum(qa[:k])) / (sum(qb[:k]) + sum(qa[:k]))
        k, d = p["weighted_levels"], p["weighted_decay"]
        weights = [1.0]
        for _ in range(k - 1):
            weights.append(weights[-1] * d)       # decay**level, by repeated multiplication
        wb = sum(w * q for w, q in zip(weights, qb[:k]))
        wa = sum(w * q for w, q in zip(weights, qa[:k]))
        r["weighted_imbalance"] = (wb - wa) / (wb + wa)
        k = p["depth_ratio_levels"]
        r["depth_ratio"] = sum(qb[:k]) / sum(qa[:k])
        k = p["pressure_levels"]
        prb = sum(q / (i + 1) for i, q in enumerate(qb[:k]))
        pra = sum(q / (i + 1) for i, q in enumerate(qa[:k]))
        r["bid_pressure"] = prb * self.qty_num / self.qty_den
        r["ask_pressure"] = pra * self.qty_num / self.qty_den
        r["book_pressure"] = (prb - pra) / (prb + pra)
        i_l1 = qb[0] / (qb[0] + qa[0])
        r["weighted_mid"] = bid_px * (1 - i_l1) + ask_px * i_l1
        return pb, qb[0], pa, qa[0]

    def history(self, mid2: int) -> None:
        p, r = self.p, self.row
        if self.mid2s:
            self.returns.append(math.log(mid2 / self.mid2s[-1]))
        self.mid2s.append(mid2)
        self.mids.append(r["mid"])
        self.imbalances.append(r["imbalance"])
        nret = p["volatility_window"] - 1
        r["volatility"] = r["volatility_z"] = NAN
        if len(self.returns) >= nret:
            vol = float(np.std(self.returns[-nret:]))
            r["volatility"] = vol
            self.vols.append(vol)
            window = self.vols[-p["zscore_window"]:]
            if len(window) >= p["zscore_min"]:
                r["volatility_z"] = (vol - float(np.mean(window))) / max(float(np.std(window)), 1e-4)
        m = p["momentum_window"]
        r["momentum"] = ((self.mids[-1] - self.mids[-m]) / self.mids[-m]
                         if len(self.mids) >= m else NAN)
        m = p["imbalance_momentum_window"]
        r["imbalance_momentum"] = ols_slope(self.imbalances[-m:]) if len(self.imbalances) >= m else NAN
        window = self.imbalances[-p["zscore_window"]:]
        r["imbalance_z"] = ((r["imbalance"] - float(np.mean(window))) / max(float(np.std(window)), 0.001)
                            if len(window) >= p["zscore_min"] else NAN)

    def on_book_row(self) -> None:
        r = self.row
        ok = self.book_ok()
        r["book_ok"] = int(ok)
        for name in FEATURE_NAMES[:15]:
            r[name] = NAN
        e_n: Optional[int] = None
        if ok and self.groups & (_GROUP_BITS["book"] | _GROUP_BITS["history"] | _GROUP_BITS["windows"]):
            quote = self.book_state()
            if self.prev_quote is not None:
                e_n = ofi_contribution(*quote, *self.prev_quote)
                r["ofi"] = e_n * self.qty_num / self.qty_den
            self.prev_quote = quote
            if self.on("history"):
                self.history(quote[0] + quote[2])
        else:
            self.prev_quote = None
        if self.on("windows"):
            imb, mid = r["imbalance"], r["mid"]
            self.book_rows.append((self.clock, None if math.isnan(imb) else imb,
                                   None if math.isnan(mid) else mid, e_n))
            self.book_times.append(self.clock)
        if not self.on("book"):
            for name in FEATURE_NAMES[:10]:
                r[name] = NAN

    # -------------------------------------------------------------- trades
    def on_trade(self, price: int, qty: int, side: int) -> None:
        if self.on("trades"):
            self.trades.append((self.clock, price, qty, side))
            self.trade_times.append(self.clock)
        if self.on("toxicity") and self.p["vpin_bucket"] > 0:
            self.vpin(qty, side)
        if not math.isnan(self.row["ofi"]):
            self.row["ofi"] = 0.0

    def vpin(self, qty: int, side: int) -> None:
        V, b = self.p["vpin_bucket"], self.bucket
        while qty > 0:
            take = min(qty, V - b[0])
            b[0] += take
            if side > 0:
                b[1] += take
            elif side < 0:
                b[2] += take
            qty -= take
            if b[0] == V:
                self.buckets.append(abs(b[1] - b[2]))
                self.bucket = b = [0, 0, 0]
        n = self.p["vpin_buckets"]
        if len(self.buckets) >= n:
            self.row["toxicity"] = sum(self.buckets[-n:]) / (n * V)

    # -------------------------------------------------------------- time windows
    def trade_windows(self) -> None:
        r, W = self.row, self.p["window_ns"]
        now = self.clock
        recent = self.trades[bisect.bisect_right(self.trade_times, now - W):]
        vol = sum(q for _, _, q, _ in recent)
        if vol > 0:
            r["vwap"] = sum(p * q for _, p, q, _ in recent) / vol * self.px_num / self.px_den
            r["trade_flow"] = (sum(q for _, _, q, s in recent if s > 0)
                               - sum(q for _, _, q, s in recent if s < 0)) / vol
        else:
            r["vwap"] = r["trade_flow"] = NAN
        span = self.p["surge_windows"] * W
        longer = self.trades[bisect.bisect_right(self.trade_times, now - span):]
        vol_long = sum(q for _, _, q, _ in longer)
        observed = min(now - self.first_clock, span)
        # volume in W over the mean volume per W across the observed lookback
        r["volume_surge"] = (vol * observed / (vol_long * W)
                             if observed >= W and vol_long > 0 else NAN)

    def mid_at(self, t: int) -> Optional[float]:
        """The mid in force at time t: that of the last book row at or before t."""
        i = bisect.bisect_right(self.book_times, t) - 1
        return self.book_rows[i][2] if i >= 0 else None

    def book_windows(self) -> None:
        r, W = self.row, self.p["window_ns"]
        now = self.clock
        left = now - W
        rows = self.book_rows
        if not rows:
            r["ofi_window"] = r["imbalance_twa"] = r["price_acceleration"] = NAN
            return
        es = [e for t, _, _, e in rows[bisect.bisect_right(self.book_times, left):] if e is not None]
        r["ofi_window"] = sum(es) * self.qty_num / self.qty_den if es else NAN
        # each book row's imbalance holds until the next row; integrate over [now - W, now]
        area, covered = 0.0, 0
        for k in range(max(bisect.bisect_right(self.book_times, left) - 1, 0), len(rows)):
            t0, imb = rows[k][0], rows[k][1]
            t1 = rows[k + 1][0] if k + 1 < len(rows) else now
            overlap = min(t1, now) - max(t0, left)
            if imb is not None and overlap > 0:
                area += imb * overlap
                covered += overlap
        r["imbalance_twa"] = area / covered if covered > 0 else NAN
        m_full, m_half, m_now = self.mid_at(left), self.mid_at(now - W // 2), r["mid"]
        if m_full is None or m_half is None or math.isnan(m_now):
            r["price_acceleration"] = NAN
        else:
            r["price_acceleration"] = math.log(m_now / m_half) - math.log(m_half / m_full)

    # -------------------------------------------------------------- driver
    def run(self, events: np.ndarray) -> np.ndarray:
        check_event_array(events)
        rows = []
        for rec in events.tolist():
            rec = tuple(rec)
            self.book.apply_record(rec)
            row = self.update(rec)
            if row is not None:
                rows.append(row)
        out = np.zeros(len(rows), dtype=feature_dtype(self.config))
        for i, row in enumerate(rows):
            out[i] = row
        return out

    def update(self, rec: Tuple[int, ...]) -> Optional[Tuple[Any, ...]]:
        ts, seq, price, qty, f, inst_id = rec[0], rec[2], rec[5], rec[6], rec[7], rec[8]
        if ts == 0:
            ts = rec[1]         # no exchange time (a REST snapshot): the receive time
        if f & TRADE:
            if (f & ~(TRADE | BUY | SELL | LAST) or (f & BUY and f & SELL) or qty <= 0
                    or price <= 0 or inst_id != self.inst.id):
                self.bad_trades += 1
                return None
            self.advance(ts)
            self.row["kind"] = ROW_TRADE
            self.on_trade(price, qty, 1 if f & BUY else (-1 if f & SELL else 0))
        elif f & BOOK_KINDS and f & LAST and inst_id == self.inst.id and not self.book.message_open:
            self.advance(ts)
            self.row["kind"] = ROW_BOOK
            self.on_book_row()
        else:
            return None
        if self.on("trades"):
            self.trade_windows()
        if self.on("windows"):
            self.book_windows()
        r = self.row
        return (ts, seq, r["kind"], r["book_ok"]) + tuple(r[n] for n in FEATURE_NAMES)

    def advance(self, ts: int) -> None:
        ts = min(max(ts, 0), CLOCK_MAX)
        if self.clock is None:
            self.clock = self.first_clock = ts
        else:
            self.clock = max(self.clock, ts)


def compute_features(events: np.ndarray, inst: Instrument,
                     config: Optional[FeatureConfig] = None) -> np.ndarray:
    """Twin of ``orpflow.compute_features``."""
    return FeatureTwin(inst, config).run(events)
