"""Your own strategy in Python: subclass ``orpflow.Strategy`` and override the callbacks you need.

The engine calls them on its own thread, in event time, with the GIL taken per callback (only
for the callbacks you override): the same calls in the same order in a backtest and in the
threaded Engine. Prices are integer ticks, sizes integer size units (``ctx.instrument``
converts), times ns. For speed, write the same class in Cython against ``CStrategy``
(``from orpflow._core.strategy cimport CStrategy``): its callbacks run nogil.

Example::

    class Quote(of.Strategy):
        def on_book(self, ctx):
            if not ctx.open_orders() and ctx.best_bid:
                ctx.submit("buy", 1000, ctx.best_bid, type="post_only")
        def on_fill(self, ctx, fill):
            print(fill.price_ticks, fill.qty_units, ctx.position)

    res = of.backtest(events, config, strategy=Quote())
"""
from __future__ import annotations

from typing import Any

from orpflow.strategy_types import FillUpdate, OrderUpdate, Trade

__all__ = ["Strategy", "Trade", "OrderUpdate", "FillUpdate"]


class Strategy:
    """Base class of Python strategies: every callback does nothing until you override it.

    - ``on_start(ctx)``: once per run, before the first record's callbacks (set timers here:
      after a restart it runs again; timers are not persisted).
    - ``on_book(ctx)``: after each complete book message that made a feature row.
    - ``on_trade(ctx, trade)``: after each trade that made a feature row (``Trade``).
    - ``on_order(ctx, order)``: every state change of one of your orders (``OrderUpdate``,
      with ``queue_ahead_units``), rejections included.
    - ``on_fill(ctx, fill)``: every fill (``FillUpdate``).
    - ``on_timer(ctx, timer_id)``: a timer set with ``ctx.set_timer`` fired.
    - ``on_stop(ctx)``: once at the end of the run (e.g. ``ctx.cancel_all()``).

    Order and fill callbacks arrive after the callback that caused them returns (never nested).
    An exception stops the run; the backtest or ``Engine.wait()`` re-raises it, and what was
    recorded until then is kept (persisted by the Engine).
    """

    def on_start(self, ctx: Any) -> None:
        pass

    def on_book(self, ctx: Any) -> None:
        pass

    def on_trade(self, ctx: Any, trade: Trade) -> None:
        pass

    def on_order(self, ctx: Any, order: OrderUpdate) -> None:
        pass

    def on_fill(self, ctx: Any, fill: FillUpdate) -> None:
        pass

    def on_timer(self, ctx: Any, timer_id: int) -> None:
        pass

    def on_stop(self, ctx: Any) -> None:
        pass

    def feature_reads(self) -> int:
        """The feature groups the callbacks read (bits of orpflow._core.features.FEATURE_GROUPS); the engine
        computes the others after on_book / on_trade. Default: all of them."""
        from orpflow._core.features import READS_ALL
        return int(READS_ALL)
