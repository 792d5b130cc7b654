"""Readers other than the Binance recorder format: Tardis CSV, cryptofeed, .npy round trip."""
from pathlib import Path

import numpy as np
import pytest

import orpflow as of
from helpers import SAMPLE, SPOT, shared_file

F = of.flags
DATA = Path(__file__).parent / "data"
DERIBIT = of.Instrument("BTC-PERPETUAL", venue="generic", tick_size="0.5", lot_size="10", size_increment="1", id=9)
BITMEX = of.Instrument("XBTUSD", venue="generic", tick_size="0.5", lot_size="1", size_increment="1")


def test_tardis_book_snapshot_excerpt():
    report = of.FeedReport()
    ev = of.read_tardis(DATA / "tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv", DERIBIT, report=report)
    assert len(ev) == 15 and report.messages == 1 and report.rejected == {}
    assert ev["flags"][0] & F.CLEAR and (ev["flags"] & F.SNAPSHOT).all() and ev["flags"][-1] & F.LAST
    assert ev["ts_local"][0] == 1585699200355684000 and ev["ts_exch"][0] == 1585699200245000000
    assert (ev["instrument"] == 9).all()
    book = of.OrderBook(DERIBIT)
    book.apply(ev)
    assert book.in_sync and book.best_ask() == (6421.5, 18640.0) and book.best_bid() is None
    assert book.depth() == (0, 15)


def _tardis_file(tmp_path, rows):
    head = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
    path = tmp_path / "book.csv"
    path.write_text(head + "\n".join(rows) + "\n")
    return path


def test_tardis_updates_grouped_by_local_timestamp_and_bad_message_clears(tmp_path):
    rows = open(DATA / "tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv").read().splitlines()[1:4]
    rows += [
        "deribit,BTC-PERPETUAL,1585699200300000,1585699200400000,false,bid,6420,100",
        "deribit,BTC-PERPETUAL,1585699200300000,1585699200400000,false,ask,6421.5,0",
        "deribit,BTC-PERPETUAL,1585699200310000,1585699200410000,false,bid,6420.25,5",   # off the 0.5 grid
        "deribit,BTC-PERPETUAL,1585699200310000,1585699200410000,false,bid,6419,5",
        "deribit,BTC-PERPETUAL,1585699200320000,1585699200420000,false,bid,6418,7",
    ]
    report = of.FeedReport()
    with pytest.warns(UserWarning):
        ev = of.read_tardis(_tardis_file(tmp_path, rows), DERIBIT, report=report)
    assert report.rejected == {"OFF_TICK": 1} and report.examples[0][1] == 2 + 5
    book = of.OrderBook(DERIBIT)
    book.apply(ev[: 3 + 2])
    assert book.in_sync and book.best_bid() == (6420.0, 100.0) and book.best_ask() == (6422.0, 1190.0)
    book.apply(ev[3 + 2:])
    # the refused message became a CLEAR: the book waits for a snapshot rather than miss it
    assert not book.in_sync and book.depth() == (0, 0)
    assert book.stats()["rejected_by_reason"] == {"NO_SNAPSHOT": 1}


def test_tardis_trades_excerpt():
    ev = of.read_tardis(DATA / "tardis_bitmex_trades_XBTUSD.csv", BITMEX)
    assert len(ev) == 10 and (ev["flags"] & F.TRADE).all() and (ev["flags"] & F.LAST).all()
    assert (ev["flags"][0] & F.SELL) and ev["price"][0] == 17063 and ev["qty"][0] == 2152


def test_tardis_unknown_kind(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n")
    with pytest.raises(ValueError, match="not a Tardis incremental_book_L2 or trades"):
        of.read_tardis(path, BITMEX)


def test_tardis_other_symbols_are_set_aside_not_cleared(tmp_path):
    rows = ["deribit,BTC-PERPETUAL,1,2,true,ask,100,1",
            "deribit,ETH-PERPETUAL,3,4,false,ask,100,1",
            "deribit,BTC-PERPETUAL,5,6,false,bid,99,2"]
    report = of.FeedReport()
    ev = of.read_tardis(_tardis_file(tmp_path, rows), DERIBIT, report=report)
    assert report.rejected == {"WRONG_SYMBOL": 1} and report.examples == [(str(tmp_path / "book.csv"), 3, "WRONG_SYMBOL")]
    book = of.OrderBook(DERIBIT)
    book.apply(ev)
    assert book.in_sync and book.best_bid() == (99.0, 2.0) and book.best_ask() == (100.0, 1.0)


def test_cryptofeed_places_snapshot_by_receive_time():
    ws = shared_file("cryptofeed", "BINANCE_FUTURES.ws.1.0.gz")
    http = shared_file("cryptofeed", "BINANCE_FUTURES.http.0.0.gz")
    inst = of.Instrument("SUSHIUSDT", venue="binance-usdm", tick_size="0.001", lot_size="1")
    ev = of.read_cryptofeed(ws, http, inst)
    assert (np.diff(ev["ts_local"]) >= 0).all()
    snap = np.flatnonzero(ev["flags"] & F.SNAPSHOT)
    assert len(snap) > 100 and (ev["seq"][snap] == 600859605926).all()
    assert (ev["flags"][:snap[0]] & F.DEPTH).any()          # diffs arrived before the snapshot


def test_events_roundtrip_through_npy(tmp_path):
    ev = of.read_binance(SAMPLE, SPOT)
    of.save_events(tmp_path / "s.npy", ev)
    back = of.load_events(tmp_path / "s.npy", mmap=True)
    a, b = of.OrderBook(SPOT), of.OrderBook(SPOT)
    a.apply(ev)
    b.apply(back)           # read-only memory map works as input
    assert a.stats() == b.stats() and np.array_equal(a.levels_raw("bid"), b.levels_raw("bid"))


def test_tardis_file_of_another_symbol_names_it(tmp_path):
    rows = ["deribit,ETH-PERPETUAL,1,2,true,ask,100,1", "deribit,ETH-PERPETUAL,3,4,false,ask,100,1"]
    with pytest.raises(ValueError, match="no rows for BTC-PERPETUAL; the file has ETH-PERPETUAL"):
        of.read_tardis(_tardis_file(tmp_path, rows), DERIBIT)


def test_binance_file_of_another_symbol_names_it(tmp_path):
    import gzip
    lines = gzip.decompress(SAMPLE.read_bytes()).splitlines()[:300]
    path = tmp_path / "eth.txt"
    path.write_bytes(b"\n".join(l.replace(b"BTCUSDT", b"ETHUSDT") for l in lines) + b"\n")
    with pytest.raises(ValueError, match=f"{path}: no market messages for BTCUSDT; the file has ETHUSDT"):
        of.read_binance(path, SPOT)
