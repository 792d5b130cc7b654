"""A grid strategy as a Python strategy (of.Strategy).

On the first book with both sides, a reference price is taken, the mid rounded down to a
multiple of `step` ticks (`center`), and post-only GTC orders are placed every `step` ticks:
buys at center - step, center - 2 step, ... and sells at center + step, ... (`levels` a side).
Refill on fill: when a buy at p is completely filled a sell is placed at p + step, when a sell
at p is filled a buy at p - step (the same size), so every completed pair earns `step` ticks.
Refills are plain GTC limit orders: one the market has already gone through takes liquidity
at once (the grid then follows the price). A refill the risk gate refuses (a rate limit, the
open-order cap, ...) is kept and sent again after the next book message. No buy refill once the position reaches
+max_position, no sell at -max_position.

`grid_cython.pyx` is the same strategy in Cython (integer arithmetic only): identical fills.
"""
from __future__ import annotations

import orpflow as of

MAX_WAITING = 256                         # refills kept for the next book message (more are dropped)


def grid_center(best_bid: int, best_ask: int, step: int) -> int:
    """The mid rounded down to a multiple of step (ticks)."""
    return ((best_bid + best_ask) // 2 // step) * step


class Grid(of.Strategy):
    """Parameters: order_units (size units per order), step (ticks between levels), levels
    (orders a side at the start), max_position (size units; 0: levels x order_units)."""

    def __init__(self, order_units: int, step: int = 10, levels: int = 5, max_position: int = 0):
        if order_units <= 0 or step <= 0 or levels <= 0:
            raise ValueError("order_units, step and levels must be > 0")
        self.order_units = int(order_units)
        self.step = int(step)
        self.levels = int(levels)
        self.max_position = int(max_position) if max_position > 0 else self.levels * self.order_units
        self.center = 0
        self.refills = 0
        self.waiting = []                 # refills the risk gate refused: (side, price, qty)
        self.dropped = 0

    def feature_reads(self):
        return 0                          # no feature column read: the engine computes them after the callbacks

    def on_book(self, ctx):
        if self.center:
            if self.waiting:
                waiting, self.waiting = self.waiting, []
                for side, price, qty in waiting:
                    self.refill(ctx, side, price, qty)
            return
        bb, ba = ctx.best_bid, ctx.best_ask
        if bb <= 0 or ba <= 0 or bb >= ba:
            return
        self.center = grid_center(bb, ba, self.step)
        for i in range(1, self.levels + 1):
            ctx.submit(1, self.order_units, self.center - i * self.step, type="post_only")
            ctx.submit(-1, self.order_units, self.center + i * self.step, type="post_only")

    def on_order(self, ctx, order):
        if order.status != "filled":
            return
        if order.side > 0:
            self.refill(ctx, -1, order.price_ticks + self.step, order.qty_units)
        else:
            self.refill(ctx, 1, order.price_ticks - self.step, order.qty_units)

    def refill(self, ctx, side, price, qty):
        if (ctx.position >= self.max_position) if side > 0 else (ctx.position <= -self.max_position):
            return
        if ctx.submit(side, qty, price) > 0:
            self.refills += 1
        elif len(self.waiting) < MAX_WAITING:
            self.waiting.append((side, price, qty))
        else:
            self.dropped += 1

    def on_stop(self, ctx):
        ctx.cancel_all()
