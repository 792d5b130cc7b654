"""``BacktestResult.report()``: the run in words, one block per instrument."""
from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np

from orpflow import records as R


def utc(ns: int) -> str:
    """Venue ns as 'YYYY-MM-DD HH:MM:SS.mmm UTC'."""
    return str(np.datetime64(int(ns), "ns").astype("datetime64[ms]")).replace("T", " ") + " UTC"


def _counts(d: Dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in d.items() if v) or "none"


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%" if math.isfinite(x) else "n/a"


def result_report(res: Any) -> str:
    from orpflow.results import risk_rejections, sharpe_text
    c = res.counters
    eq = res.equity
    lines: List[str] = []
    head = f"backtest     {c['events']:,} events"
    if len(eq):
        span = (int(eq["ts_exch"][-1]) - int(eq["ts_exch"][0])) / 1e9
        head += f", {utc(eq['ts_exch'][0])} -> {utc(eq['ts_exch'][-1])} ({span:,.0f} s of event time)"
    lines.append(head + f"; {res.seconds:.3f} s to run")
    for slot, (inst, sym) in enumerate(zip(res.instruments, res.symbols)):
        st, acct = res.stats[sym], res.accounts[sym]
        fills, orders = res.fills[sym], res.orders[sym]
        lines.append(f"\n{sym} ({inst.venue}, tick {inst.tick_size}, lot {inst.lot_size})")
        lines.append(f"  PnL            {st['pnl']:.6f} = realised {st['realised']:.6f} - fees {st['fees']:.6f}"
                     f" + unrealised {float(acct['unrealised_pnl']):.6f}")
        lines.append(f"  Sharpe         {sharpe_text(st)}")
        lines.append(f"  max drawdown   {st['max_drawdown'] * 100:.3f}% of peak equity")
        rt = st["round_trips"]
        lines.append(f"  round trips    {rt:,}, win rate {_pct(st['win_rate']) if rt else 'n/a (no round trips)'}"
                     + (f", avg trade {st['avg_trade']:.6f} net of fees" if rt else ""))
        maker = int((fills["liquidity"] == 0).sum())
        buys = int((fills["side"] > 0).sum())
        lines.append(f"  fills          {len(fills):,} ({buys:,} buy, {len(fills) - buys:,} sell; "
                     f"{maker:,} maker, {len(fills) - maker:,} taker)")
        lines.append(f"  final          position {acct['position'].normalize():f}, "
                     f"equity {st['final_equity']:.6f}")
        by_status = {name: int((orders["status"] == code).sum()) for code, name in enumerate(R.ORDER_STATUS)}
        lines.append(f"  orders         {len(orders):,}: {_counts(by_status)}")
        lines.append(f"  risk refused   {_counts(risk_rejections([res.risk[sym]]))}")
        trips = [t for t in res.breaker_trips if t.symbol == sym]
        if not trips:
            lines.append("  breakers       no trips")
        for t in trips:
            lines.append(f"  breaker trip   {utc(t.ts)} {t.breaker}: {t.value:g} vs limit {t.limit:g} ({t.why})")
        b = res.book.get(sym)
        if b is not None:
            lines.append(f"  book           {b['records']:,} records in {b['messages']:,} messages; "
                         f"{b['gaps']:,} gaps, {b['resyncs']:,} resyncs, {b['desyncs']:,} desyncs, "
                         f"{b['stale']:,} stale, {b['crossed']:,} crossed")
            lines.append(f"  book rejected  {_counts(b['rejected_by_reason'])}")
    lines.append("")
    extra = f"{c['unknown']:,} events of other instruments skipped" if c.get("unknown") else \
        "no events of other instruments"
    fr = res.feed_report
    if fr is not None:
        lines.append(f"feed           {fr.lines:,} lines, {fr.messages:,} messages -> {fr.records:,} records; "
                     f"rejected: {_counts(fr.rejected)}" + "".join(f"; {w}" for w in fr.warnings()))
    else:
        lines.append("feed           no feed report (backtest() was given events: the reader's FeedReport "
                     "has the file-level refusals); engine counters only")
    lines.append(f"engine         {c['rows']:,} feature rows, {c['signals']:,} signals, {c['orders']:,} orders "
                 f"({c['rejected']:,} refused by risk), {c['fills']:,} fills; {extra}")
    return "\n".join(lines)
