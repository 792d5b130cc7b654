"""An Avellaneda-Stoikov-style two-sided market maker as a Python strategy (of.Strategy).

Quotes one post-only GTC order a side around a reference price (the microprice, or the mid),
shifted against the inventory:

    ref     = microprice (best_bid * ask_qty + best_ask * bid_qty) / (bid_qty + ask_qty), ticks
              or the mid (best_bid + best_ask) * 0.5
    q       = position / order size                  (inventory in orders, a double)
    r       = ref - q * skew                         (the reservation price)
    bid     = floor(r - half_spread)                 (rounded away from r: never inside the
    ask     = ceil(r + half_spread)                   half-spread)
    bid     = min(bid, best_ask - 1); ask = max(ask, best_bid + 1)   (post-only: never crossing)

skew is Avellaneda-Stoikov's gamma * sigma^2 * (T - t) with the time to the horizon held
constant (`as_skew`), in ticks per order of inventory. No bid once the position reaches
+max_position, no ask at -max_position.

Requotes when the desired price of a side differs from its open order's: the open order is
cancelled and the new one sent at once (a fill that beats the cancel to the venue still
counts). A side whose order is still in flight (sent, not yet accepted) waits. Decisions are
taken after every book message (requote_ns = 0) or on a timer every requote_ns of local time.

`mm_cython.pyx` is the same strategy in Cython: the same double arithmetic in the same order,
so both compute the same integer prices and get identical fills.
"""
from __future__ import annotations

import math

import orpflow as of

TIMER_ID = 1


def as_skew(gamma: float, sigma_ticks: float, horizon_s: float) -> float:
    """Avellaneda-Stoikov's inventory term gamma * sigma^2 * (T - t), in ticks per order of
    inventory: gamma the risk aversion, sigma the volatility in ticks per sqrt(second),
    horizon_s the (constant) time left to the horizon in seconds."""
    return gamma * sigma_ticks * sigma_ticks * horizon_s


def quote_prices(best_bid: int, bid_qty: int, best_ask: int, ask_qty: int, position: int,
                 order_units: int, half_spread: float, skew: float, max_position: int,
                 microprice: bool) -> tuple:
    """(bid, ask) prices in ticks, 0 for a side not quoted. The one formula of the module
    docstring; mm_cython.pyx repeats it operation for operation."""
    if microprice and bid_qty + ask_qty > 0:
        ref = (best_bid * float(ask_qty) + best_ask * float(bid_qty)) / float(bid_qty + ask_qty)
    else:
        ref = (best_bid + best_ask) * 0.5
    r = ref - (float(position) / float(order_units)) * skew
    bid = int(math.floor(r - half_spread))
    ask = int(math.ceil(r + half_spread))
    if bid >= best_ask:
        bid = best_ask - 1
    if ask <= best_bid:
        ask = best_bid + 1
    if position >= max_position or bid <= 0:
        bid = 0
    if position <= -max_position:
        ask = 0
    return bid, ask


class MarketMaker(of.Strategy):
    """Parameters: order_units (size units per quote), half_spread (ticks, a double), skew
    (ticks per order of inventory, see as_skew), max_position (size units), microprice (else
    the mid), requote_ns (0: after every book message; else a timer every requote_ns)."""

    def __init__(self, order_units: int, half_spread: float = 1.0, skew: float = 0.5,
                 max_position: int = 0, microprice: bool = True, requote_ns: int = 0):
        if order_units <= 0:
            raise ValueError("order_units must be > 0")
        self.order_units = int(order_units)
        self.half_spread = float(half_spread)
        self.skew = float(skew)
        self.max_position = int(max_position) if max_position > 0 else 5 * self.order_units
        self.microprice = bool(microprice)
        self.requote_ns = int(requote_ns)
        # per side (0 bid, 1 ask): our current order's id and price, and its state:
        # 0 none, 1 sent (waiting for the venue's answer), 2 open at the venue
        self.oid = [0, 0]
        self.price = [0, 0]
        self.live = [0, 0]
        self.requotes = 0

    def feature_reads(self):
        return 0                          # no feature column read: the engine computes them after the callbacks

    # ------------------------------------------------------------------ callbacks
    def on_start(self, ctx):
        if self.requote_ns > 0:
            ctx.set_timer(ctx.now + self.requote_ns, TIMER_ID)

    def on_book(self, ctx):
        if self.requote_ns == 0:
            self.requote(ctx)

    def on_timer(self, ctx, timer_id):
        if timer_id == TIMER_ID:
            self.requote(ctx)
            ctx.set_timer(ctx.now + self.requote_ns, TIMER_ID)

    def on_order(self, ctx, order):
        s = 0 if order.side > 0 else 1
        if order.id != self.oid[s]:
            return                            # an order we already replaced
        if order.status in ("accepted", "partially_filled"):
            self.live[s] = 2
        elif order.status in ("filled", "cancelled", "rejected", "expired"):
            self.live[s] = 0
            self.oid[s] = 0

    def on_stop(self, ctx):
        ctx.cancel_all()

    # ------------------------------------------------------------------ quoting
    def requote(self, ctx):
        bids, asks = ctx.top(1)
        if not bids or not asks:
            return
        (bb, bq), (ba, aq) = bids[0], asks[0]
        if bb >= ba:
            return
        want = quote_prices(bb, bq, ba, aq, ctx.position, self.order_units, self.half_spread,
                            self.skew, self.max_position, self.microprice)
        for s in (0, 1):
            if self.live[s] == 1 or (self.live[s] == 2 and self.price[s] == want[s]):
                continue                      # in flight, or already where we want it
            if self.live[s] == 2:
                ctx.cancel(self.oid[s])
                self.live[s] = 0
                self.oid[s] = 0
                self.requotes += 1
            if want[s] > 0:
                oid = ctx.submit(1 if s == 0 else -1, self.order_units, want[s], type="post_only")
                if oid > 0:
                    self.oid[s] = oid
                    self.price[s] = want[s]
                    self.live[s] = 1
