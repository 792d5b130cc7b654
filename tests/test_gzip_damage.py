"""Damaged .gz recordings: every complete line before the damage is used, the damage is
reported as "truncated at line N", and the reading goes on."""
import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest

import orpflow as of
from orpflow.cli import main
from orpflow.feeds._io import read_lines
from helpers import SAMPLE, SPOT

RAW = SAMPLE.read_bytes()
LINES = gzip.decompress(RAW).splitlines()


def _clean_events(lines, tmp_path: Path) -> np.ndarray:
    """The events of `lines` read from an undamaged file."""
    path = tmp_path / "clean.gz"
    path.write_bytes(gzip.compress(b"".join(l + b"\n" for l in lines)))
    return of.read_binance(path, SPOT)


# offsets inside the gzip header, early, middle and late in the deflate stream, and inside
# the 8-byte trailer (every line complete, the CRC missing)
@pytest.mark.parametrize("cut", [5, 3_000, 250_001, 600_000, len(RAW) - 5])
def test_truncated_gz_yields_exactly_the_events_of_its_complete_lines(tmp_path, cut):
    path = tmp_path / "cut.gz"
    path.write_bytes(RAW[:cut])
    report = of.FeedReport()
    ev = of.read_binance(path, SPOT, report=report)
    assert len(report.truncated) == 1
    src, line_no, why = report.truncated[0]
    assert src == str(path) and "ends early" in why
    # what a streaming decompressor gets from the same bytes, cut back to whole lines
    d = zlib.decompressobj(wbits=31)
    got = d.decompress(RAW[:cut])
    complete = got[:got.rfind(b"\n") + 1].splitlines()
    assert line_no == len(complete) + 1
    assert complete == LINES[:len(complete)]
    if cut > 1000:
        assert len(complete) > 0
    want = _clean_events(complete, tmp_path) if complete else np.zeros(0, of.EVENT_DTYPE)
    assert np.array_equal(ev, want)
    assert report.lines == len(complete)
    assert f"truncated at line {line_no}" in report.summary()


def test_corrupt_bytes_mid_file_keep_the_lines_before(tmp_path):
    # a corrupt deflate block stops the decompressor at the bad data: the lines decompressed
    # before it are the file's own lines and are all used
    b = bytearray(RAW)
    for k in range(8):
        b[1000 + k] ^= 0x5A
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(b))
    report = of.FeedReport()
    ev = of.read_binance(path, SPOT, report=report)
    (src, line_no, why), = report.truncated
    assert "corrupt" in why and line_no > 1
    kept = LINES[:line_no - 1]
    assert np.array_equal(ev, _clean_events(kept, tmp_path))


def test_damage_in_a_later_gzip_member_keeps_the_earlier_members(tmp_path):
    half = len(LINES) // 2
    first = gzip.compress(b"".join(l + b"\n" for l in LINES[:half]))
    second = gzip.compress(b"".join(l + b"\n" for l in LINES[half:]))
    path = tmp_path / "two.gz"
    path.write_bytes(first + second)
    assert read_lines(path) == LINES                       # undamaged: both members
    path.write_bytes(first + second[:len(second) // 2])
    report = of.FeedReport()
    lines = read_lines(path, report)
    assert len(lines) > half and lines == LINES[:len(lines)]
    assert report.truncated[0][1] == len(lines) + 1


def test_clean_file_reports_nothing(tmp_path):
    report = of.FeedReport()
    ev = of.read_binance(SAMPLE, SPOT, report=report)
    assert report.truncated == [] and "truncated" not in report.summary() and len(ev) > 0


def test_cli_warns_in_one_line_and_goes_on(tmp_path, capsys):
    path = tmp_path / "cut.gz"
    path.write_bytes(RAW[:300_000])
    rc = main(["replay", str(path), "--no-bbo-check"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    warn = [l for l in err.splitlines() if "truncated" in l]
    assert len(warn) == 1 and warn[0].startswith("orpflow: warning: ") and str(path) in warn[0]
    n = int(warn[0].split("truncated at line ")[1].split()[0])
    assert f"{n - 1} lines" in out


def test_a_file_named_gz_that_is_not_gzip_is_an_error(tmp_path, capsys):
    path = tmp_path / "plain.gz"
    path.write_bytes(LINES[0] + b"\n")
    with pytest.raises(ValueError, match="not a gzip file"):
        of.read_binance(path, SPOT)
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("orpflow: error: ") and str(path) in err[0]
