"""The live session's recording: replayable, rotated, never overwritten, a crash loses at most
the last second."""
import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

import orpflow as of
from orpflow._core.convert import BinanceConverter
from orpflow.feeds import Recorder, read_binance, record_line, recording_files
from orpflow.feeds._io import read_lines
from helpers import SAMPLE, SPOT

LINES = [ln.split(b" ", 1) for ln in gzip.open(SAMPLE, "rb").read().splitlines()]
DAY = 86_400 * 10 ** 9


def test_round_trip_is_the_direct_conversion(tmp_path):
    rec = Recorder(tmp_path / "live.gz")
    direct = BinanceConverter(SPOT)
    for ts, payload in LINES[:5000]:
        rec.write(int(ts), payload)
        direct.feed_json(payload, int(ts))
    rec.close()
    files = recording_files(tmp_path / "live.gz")
    assert [f.name[:4] for f in files] == ["live"] and rec.lines == 5000
    assert np.array_equal(read_binance(files, SPOT), direct.out.take())


def test_rotation_by_size_and_by_day_and_restart_numbering(tmp_path):
    base = tmp_path / "r.gz"
    rec = Recorder(base, max_bytes=20_000)
    day0 = (int(LINES[0][0]) // DAY) * DAY
    sent = []
    for i, (_, payload) in enumerate(LINES[:3000]):
        ts = day0 + DAY - 1500 + i          # crosses UTC midnight at i = 1500
        rec.write(ts, payload)
        sent.append(record_line(ts, payload).rstrip(b"\n"))
    rec.close()
    files = recording_files(base)
    assert len(files) > 3
    days = {f.name.split("-")[1] for f in files}
    assert len(days) == 2
    got = [ln for f in files for ln in read_lines(f)]
    assert got == sent                       # all of it, in order, once
    for f in files:                          # a file never spans two days
        ds = {int(ln.split(b" ", 1)[0]) // DAY for ln in read_lines(f)}
        assert len(ds) == 1
    rec2 = Recorder(base)
    rec2.write(day0 + 2 * DAY, LINES[0][1])
    rec2.close()
    again = recording_files(base)
    assert again[:-1] == files and int(again[-1].name.split("-")[2][:4]) == len(files) + 1


def test_newlines_in_a_message_keep_one_line_each():
    assert record_line(5, b'{"a":\n1,\r"b":2}') == b'5 {"a": 1, "b":2}\n'


def test_sigkill_loses_at_most_the_last_flush(tmp_path):
    """A writer killed with SIGKILL: every line written more than flush_s (+ margin) before the
    kill reads back, as a prefix of what was written."""
    script = textwrap.dedent(f"""
        import sys, time, gzip
        from orpflow.feeds import Recorder
        lines = [ln.split(b" ", 1)[1] for ln in gzip.open({str(SAMPLE)!r}, "rb").read().splitlines()]
        rec = Recorder({str(tmp_path / 'k.gz')!r}, flush_s=0.2)
        for i in range(10 ** 9):
            rec.write(10 ** 18 + i, lines[i % len(lines)])
            if i % 200 == 0:
                print(i, flush=True)
                time.sleep(0.01)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=str(tmp_path))
    seen = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        seen.append((time.monotonic(), int(proc.stdout.readline())))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t_kill = time.monotonic()
    safe = max(i for t, i in seen if t < t_kill - 1.0)     # flush_s 0.2 + a generous margin
    files = recording_files(tmp_path / "k.gz")
    got = [int(ln.split(b" ", 1)[0]) - 10 ** 18 for f in files for ln in read_lines(f)]
    assert got == list(range(len(got))), "a prefix, in order, nothing twice"
    assert len(got) > safe
