"""Pure-Python twin of ``orpflow._core.book.OrderBook``: same API, same rules, same counters.

Written for reading, not speed: each side is a dict price -> size, sorted when asked. The
differential tests feed this and the compiled book the same streams and demand identical
state, so every rule here is the specification of the compiled one.
"""
from __future__ import annotations

import collections
import heapq
import math
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np

from orpflow.events import check_event_array
from orpflow._core.types import FLAGS, REASONS

DEPTH, TRADE, BBO = FLAGS["DEPTH"], FLAGS["TRADE"], FLAGS["BBO"]
SNAPSHOT, CLEAR, BID, ASK, LAST = FLAGS["SNAPSHOT"], FLAGS["CLEAR"], FLAGS["BID"], FLAGS["ASK"], FLAGS["LAST"]

VENUES = {"binance-spot": "spot", "binance-usdm": "futures", "binance-coinm": "futures", "generic": "generic"}
WAIT_SNAPSHOT, AWAIT_FIRST, IN_SYNC, OUT_OF_SYNC = range(4)
# after a snapshot, older diffs are stale (dropped) only within this long of it (receive time)
AWAIT_FIRST_STALE_NS = 5_000_000_000
BBO_PENDING = 64         # venue BBO records held until the diff with their update id
STATE_NAMES = ("WAIT_SNAPSHOT", "AWAIT_FIRST_DIFF", "IN_SYNC", "OUT_OF_SYNC")
COUNTER_NAMES = ("records", "messages", "applied", "buffered", "snapshots", "resyncs", "gaps",
                 "stale", "desyncs", "crossed", "locked", "trades", "bbo", "rejected",
                 "bbo_checked", "bbo_mismatched")
K_DEPTH, K_SNAPSHOT, K_CLEAR = 1, 2, 3
A_NONE, A_APPLY, A_SNAPSHOT, A_BUFFER, A_DROP = range(5)

Record = Tuple[int, int, int, int, int, int, int, int, int]   # the EVENT_DTYPE fields in order


def _record_kind(f: int) -> int:
    kinds = f & (DEPTH | SNAPSHOT | TRADE | BBO)
    if kinds == SNAPSHOT:
        return K_SNAPSHOT
    if kinds == DEPTH and not f & CLEAR:
        return K_DEPTH
    if kinds == 0 and f & CLEAR:
        return K_CLEAR
    return -1


class OrderBook:
    """Reference L2 book. See ``orpflow.OrderBook`` for the documented behaviour."""

    def __init__(self, instrument, *, buffer_capacity: int = 65536, imbalance_levels: int = 5,
                 weighted_levels: int = 10, weighted_decay: float = 0.9, depth_levels: int = 10,
                 window_ticks: int = 32768):
        if instrument.venue not in VENUES:
            raise ValueError(f"unknown venue {instrument.venue!r}; expected one of {sorted(VENUES)}")
        if buffer_capacity < 1:
            raise ValueError("buffer_capacity must be >= 1")
        if imbalance_levels < 1 or weighted_levels < 1 or depth_levels < 1:
            raise ValueError("metric level windows must be >= 1")
        if not 0.0 < weighted_decay <= 1.0:
            raise ValueError("weighted_decay must be in (0, 1]")
        # the compiled book's dense window around the best: a speed setting only (levels are
        # dicts here), validated the same way so both books accept the same arguments
        if not (64 <= window_ticks <= 1 << 24) or window_ticks & (window_ticks - 1):
            raise ValueError(f"window_ticks must be a power of two from 64 to {1 << 24}, got {window_ticks}")
        self.instrument = instrument
        self.venue = VENUES[instrument.venue]
        self.bids: Dict[int, int] = {}
        self.asks: Dict[int, int] = {}
        self._staged: Dict[str, List[Tuple[int, int]]] = {"bid": [], "ask": []}
        self._state = WAIT_SNAPSHOT
        self._ever_synced = False
        self._crossed_now = False
        self._lid = 0
        self._msg_open = False
        self._bbo_held: Deque[Tuple[int, int, int, int]] = collections.deque()
        self._msg_kind = 0
        self._msg_action = A_NONE
        self._msg_drop_reason = 0
        self._msg_resync = False
        self._msg_seq = 0
        self._msg_buf_start = 0      # index in self._buf where the message in progress starts
        self._ts = (0, 0)
        self._buf: List[Record] = []
        self._buf_cap = buffer_capacity
        self._replaying = False
        self._replay_stop = False
        self._px_num, self._px_den = instrument.price_scale
        self._qty_num, self._qty_den = instrument.size_scale
        self._imb_n, self._wimb_n, self._depth_n = imbalance_levels, weighted_levels, depth_levels
        self._decay = weighted_decay
        self.c = dict.fromkeys(COUNTER_NAMES, 0)
        self.rejects: Dict[int, int] = {}

    # ---------------------------------------------------------------- helpers
    def _reject(self, reason: int, n: int = 1) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + n
        self.c["rejected"] += n

    def _clear_levels(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._staged = {"bid": [], "ask": []}
        self._crossed_now = False

    def _in_sync(self) -> bool:
        return self._state in (AWAIT_FIRST, IN_SYNC)

    def _lose_sync(self) -> None:
        if self._state not in (OUT_OF_SYNC, WAIT_SNAPSHOT):
            self.c["desyncs"] += 1
        self._state = OUT_OF_SYNC if self._ever_synced else WAIT_SNAPSHOT

    def _check_bbo(self, price: int, qty: int, side: int) -> None:
        """The venue's best bid/ask at the book's own update id must be the book's top."""
        levels = self.bids if side == BID else self.asks
        self.c["bbo_checked"] += 1
        if not levels:
            ok = False
        else:
            px = max(levels) if side == BID else min(levels)
            ok = px == price and levels[px] == qty
        if not ok:
            self.c["bbo_mismatched"] += 1
            self._lose_sync()

    def _bbo_due(self) -> None:
        """After a diff is applied: check the held BBO records of its id, drop older ones."""
        held = self._bbo_held
        while held and self._state == IN_SYNC and held[0][0] <= self._lid:
            u, px, qty, side = held.popleft()
            if u == self._lid:
                self._check_bbo(px, qty, side)

    def _check_crossed(self) -> None:
        self._crossed_now = False
        if not self.bids or not self.asks:
            return
        bb, ba = max(self.bids), min(self.asks)
        if bb > ba:
            self.c["crossed"] += 1
            self._crossed_now = True
        elif bb == ba:
            self.c["locked"] += 1
            self._crossed_now = True

    # ---------------------------------------------------------------- sequence rules
    def _depth_action(self, e: Record) -> int:
        seq, seq_first, seq_prev = e[2], e[3], e[4]
        lid = self._lid
        spot = self.venue == "spot"
        if self.venue == "generic":
            if self._state == IN_SYNC:
                return A_APPLY
            self._msg_drop_reason = REASONS["NO_SNAPSHOT"] if self._state == WAIT_SNAPSHOT else REASONS["OUT_OF_SYNC"]
            return A_DROP
        if self._state in (WAIT_SNAPSHOT, OUT_OF_SYNC):
            return A_BUFFER
        if self._state == AWAIT_FIRST:
            # self._ts is still the snapshot's; an old diff received long after it is a gap
            if ((seq <= lid) if spot else (seq < lid)) and (
                    self._ts[1] == 0 or e[1] - self._ts[1] <= AWAIT_FIRST_STALE_NS):
                self.c["stale"] += 1
                self._msg_drop_reason = REASONS["STALE"]
                return A_DROP
            if (seq_first <= lid + 1 <= seq) if spot else (seq_first <= lid <= seq):
                return A_APPLY
        else:   # IN_SYNC: every diff must continue the sequence (u <= lid included)
            if (seq_first == lid + 1) if spot else (seq_prev == lid):
                return A_APPLY
        self.c["gaps"] += 1
        self._state = OUT_OF_SYNC
        return A_BUFFER

    def _snapshot_action(self, e: Record) -> int:
        # AWAIT_FIRST: the newest snapshot wins whatever its id (the pending one may be corrupt)
        if self.venue != "generic" and self._state == IN_SYNC and e[2] <= self._lid:
            self._msg_drop_reason = REASONS["STALE_SNAPSHOT"]
            return A_DROP
        self._msg_resync = self._state == OUT_OF_SYNC
        self._clear_levels()
        self._state = WAIT_SNAPSHOT
        return A_SNAPSHOT

    # ---------------------------------------------------------------- buffer
    def _buffer_push(self, e: Record) -> None:
        if len(self._buf) == self._buf_cap:
            while len(self._buf) == self._buf_cap:
                if self._msg_buf_start == 0:
                    n = len(self._buf) + 1
                    self._reject(REASONS["BUFFER_OVERFLOW"], n)
                    self._buf.clear()
                    self._msg_action = A_DROP
                    self._msg_drop_reason = REASONS["BUFFER_OVERFLOW"]
                    return
                j = 0
                while j < len(self._buf) and not self._buf[j][7] & LAST:
                    j += 1
                self._reject(REASONS["BUFFER_OVERFLOW"], j + 1)
                del self._buf[:j + 1]
                self._msg_buf_start -= j + 1
        self._buf.append(e)
        self.c["buffered"] += 1

    def _abandon_message(self) -> None:
        if self._msg_action in (A_APPLY, A_SNAPSHOT):
            if self._msg_action == A_SNAPSHOT:
                self._clear_levels()
            self._lose_sync()
        elif self._msg_action == A_BUFFER:
            del self._buf[self._msg_buf_start:]
        self._msg_action = A_DROP
        self._msg_drop_reason = REASONS["OUT_OF_SYNC"]

    # ---------------------------------------------------------------- messages
    def _finish_snapshot_side(self, side: str) -> Dict[int, int]:
        levels: Dict[int, int] = {}
        for px, qty in self._staged[side]:        # later entries for a price win
            levels[px] = qty
        return {px: q for px, q in levels.items() if q != 0}

    def _end_message(self) -> None:
        self._msg_open = False
        self.c["messages"] += 1
        if self._msg_action == A_APPLY:
            self._lid = self._msg_seq
            self._state = IN_SYNC
            self._check_crossed()
            self._bbo_due()
        elif self._msg_action == A_SNAPSHOT:
            self.bids = self._finish_snapshot_side("bid")
            self.asks = self._finish_snapshot_side("ask")
            self._staged = {"bid": [], "ask": []}
            self._lid = self._msg_seq
            self._state = IN_SYNC if self.venue == "generic" else AWAIT_FIRST
            self.c["snapshots"] += 1
            if self._msg_resync:
                self.c["resyncs"] += 1
            self._ever_synced = True
            self._check_crossed()
            if not self._replaying:
                self._replay_buffer()

    def _begin_message(self, e: Record, kind: int) -> bool:
        self._msg_open = True
        self._msg_kind = kind
        self._msg_seq = e[2]
        self._msg_buf_start = len(self._buf)
        self._msg_resync = False
        if kind == K_DEPTH:
            self._msg_action = self._depth_action(e)
            if self._msg_action == A_BUFFER and self._replaying:
                self._replay_stop = True
                self._msg_open = False
                return False
        elif kind == K_SNAPSHOT:
            self._msg_action = self._snapshot_action(e)
        else:
            self._clear_levels()
            if self._in_sync():
                self._state = WAIT_SNAPSHOT
            self._msg_action = A_NONE
        return True

    def _valid_level(self, e: Record, side: int) -> bool:
        if side == 0:
            return True
        if e[5] <= 0:
            self._reject(REASONS["BAD_PRICE"])
            return False
        if e[6] < 0:
            self._reject(REASONS["NEGATIVE"])
            return False
        return True

    def _process(self, e: Record) -> None:
        f = e[7]
        side = f & (BID | ASK)
        if e[8] != self.instrument.id:
            self._reject(REASONS["WRONG_INSTRUMENT"])
            return
        if not f & (DEPTH | SNAPSHOT | CLEAR):
            if f & TRADE and not f & BBO:
                self.c["trades"] += 1
            elif f & BBO and not f & TRADE:
                self.c["bbo"] += 1
                if e[2] != 0 and side in (BID, ASK):
                    if self._state == IN_SYNC and not self._msg_open and e[2] == self._lid:
                        self._check_bbo(e[5], e[6], side)
                    elif e[2] > self._lid or not self._in_sync():
                        if len(self._bbo_held) == BBO_PENDING:
                            self._bbo_held.popleft()
                        self._bbo_held.append((e[2], e[5], e[6], side))
            else:
                self._reject(REASONS["BAD_FLAGS"])
            return
        kind = _record_kind(f)
        if kind < 0 or side == (BID | ASK):
            self._reject(REASONS["BAD_FLAGS"])
            if self._msg_open:
                self._abandon_message()
                if f & LAST:
                    self._end_message()
            return
        if not self._msg_open:
            if not self._begin_message(e, kind):
                return
        elif kind != self._msg_kind:
            if self._msg_kind == K_CLEAR and kind == K_SNAPSHOT:
                self._msg_kind = K_SNAPSHOT
                self._msg_seq = e[2]
                self._msg_action = self._snapshot_action(e)
            else:
                self._reject(REASONS["BAD_FLAGS"])
                self._abandon_message()
                if f & LAST:
                    self._end_message()
                return

        if self._msg_action != A_DROP and not self._valid_level(e, side):
            self._abandon_message()
        elif self._msg_action == A_DROP:
            self._reject(self._msg_drop_reason)
        elif side:
            name = "ask" if side == ASK else "bid"
            if self._msg_action == A_APPLY:
                levels = self.asks if side == ASK else self.bids
                if e[6] == 0:
                    levels.pop(e[5], None)
                else:
                    levels[e[5]] = e[6]
                self.c["applied"] += 1
            elif self._msg_action == A_SNAPSHOT:
                self._staged[name].append((e[5], e[6]))
                self.c["applied"] += 1
            elif self._msg_action == A_BUFFER:
                self._buffer_push(e)
        elif self._msg_action == A_BUFFER:
            self._buffer_push(e)

        if f & LAST:
            if self._msg_action in (A_APPLY, A_SNAPSHOT):
                self._ts = (e[0], e[1])
            self._end_message()

    def _replay_buffer(self) -> None:
        i = 0
        msg_start = 0
        self._replaying = True
        self._replay_stop = False
        while i < len(self._buf):
            if not self._msg_open:
                msg_start = i
            self._process(self._buf[i])
            if self._replay_stop:
                break
            i += 1
        self._replaying = False
        if self._replay_stop:
            del self._buf[:msg_start]
            self._replay_stop = False
        else:
            self._buf.clear()
        self._msg_open = False
        self._msg_buf_start = len(self._buf)

    # ---------------------------------------------------------------- public API
    def apply(self, events: np.ndarray) -> int:
        check_event_array(events)
        before = self.c["applied"]
        for rec in events.tolist():
            self.apply_record(tuple(rec))
        return self.c["applied"] - before

    def apply_record(self, rec: Record) -> None:
        """One record as a tuple of the EVENT_DTYPE fields (for twins driving the book)."""
        self.c["records"] += 1
        self._process(rec)

    def top(self, side: str, n: int) -> List[Tuple[int, int]]:
        """The n best (price ticks, size units) of a side, best first."""
        return heapq.nlargest(n, self.bids.items()) if side == "bid" \
            else heapq.nsmallest(n, self.asks.items())

    @property
    def message_open(self) -> bool:
        return self._msg_open

    def _sorted(self, side: str) -> List[Tuple[int, int]]:
        if side == "bid":
            return sorted(self.bids.items(), key=lambda kv: -kv[0])
        return sorted(self.asks.items())

    def _side_levels(self, side: str) -> List[Tuple[int, int]]:
        """Levels as the compiled book would show them, including a snapshot being staged."""
        if self._msg_open and self._msg_action == A_SNAPSHOT:
            return []      # mid-snapshot (split across apply calls): levels are staged, not shown
        return self._sorted(side)

    def levels_raw(self, side, n=None) -> np.ndarray:
        if side not in ("bid", "ask"):
            raise ValueError(f'side must be "bid" or "ask", got {side!r}')
        if n is not None and n < 0:
            raise ValueError("n must be >= 0")
        lv = self._side_levels(side)
        if n is not None:
            lv = lv[:n]
        return np.array(lv, dtype=np.int64).reshape(-1, 2)

    def levels(self, side, n=None) -> np.ndarray:
        raw = self.levels_raw(side, n)
        out = np.empty(raw.shape, dtype=np.float64)
        for i, (px, q) in enumerate(raw.tolist()):
            out[i, 0] = px * self._px_num / self._px_den
            out[i, 1] = q * self._qty_num / self._qty_den
        return out

    def best_bid(self) -> Optional[Tuple[float, float]]:
        lv = self.levels("bid", 1)
        return (float(lv[0, 0]), float(lv[0, 1])) if len(lv) else None

    def best_ask(self) -> Optional[Tuple[float, float]]:
        lv = self.levels("ask", 1)
        return (float(lv[0, 0]), float(lv[0, 1])) if len(lv) else None

    def depth(self) -> Tuple[int, int]:
        return len(self._side_levels("bid")), len(self._side_levels("ask"))

    @property
    def in_sync(self) -> bool:
        return self._in_sync() and not self._msg_open

    @property
    def state(self) -> str:
        return STATE_NAMES[self._state]

    @property
    def crossed(self) -> bool:
        return self._crossed_now

    @property
    def last_update_id(self) -> int:
        return self._lid

    def stats(self) -> dict:
        out = dict(self.c)
        out["buffer_pending"] = len(self._buf)
        names = {code: name for name, code in REASONS.items()}
        out["rejected_by_reason"] = {names[code]: n for code, n in sorted(self.rejects.items()) if n}
        return out

    def metrics(self) -> dict:
        nan = math.nan
        bids, asks = self._side_levels("bid"), self._side_levels("ask")
        px = lambda t: t * self._px_num / self._px_den
        sz = lambda u: u * self._qty_num / self._qty_den
        m = dict.fromkeys(("best_bid", "best_ask", "bid_qty", "ask_qty", "mid", "spread_bps",
                           "imbalance", "weighted_imbalance", "depth_bid", "depth_ask",
                           "stoikov_imbalance", "weighted_mid"), nan)
        if bids:
            m["best_bid"], m["bid_qty"] = px(bids[0][0]), sz(bids[0][1])
        if asks:
            m["best_ask"], m["ask_qty"] = px(asks[0][0]), sz(asks[0][1])
        m["depth_bid"] = sz(sum(q for _, q in bids[:self._depth_n]))
        m["depth_ask"] = sz(sum(q for _, q in asks[:self._depth_n]))
        if not bids or not asks:
            return m
        m["mid"] = (m["best_bid"] + m["best_ask"]) / 2.0
        m["spread_bps"] = (m["best_ask"] - m["best_bid"]) / m["mid"] * 1e4
        sb = sum(q for _, q in bids[:self._imb_n])
        sa = sum(q for _, q in asks[:self._imb_n])
        m["imbalance"] = float(sb - sa) / float(sb + sa)
        w, wb, wa = 1.0, 0.0, 0.0
        for i in range(self._wimb_n):
            if i < len(bids):
                wb += w * bids[i][1]
            if i < len(asks):
                wa += w * asks[i][1]
            w *= self._decay
        m["weighted_imbalance"] = (wb - wa) / (wb + wa)
        qb, qa = bids[0][1], asks[0][1]
        m["stoikov_imbalance"] = float(qb) / float(qb + qa)
        m["weighted_mid"] = m["best_bid"] * (1.0 - m["stoikov_imbalance"]) + m["best_ask"] * m["stoikov_imbalance"]
        return m
