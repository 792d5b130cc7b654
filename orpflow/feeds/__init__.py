"""Venue files and your own tables -> Event arrays (converted once; every later run reads the array)."""
from orpflow.feeds.report import FeedReport
from orpflow.feeds.binance import read_binance
from orpflow.feeds.cryptofeed import read_cryptofeed
from orpflow.feeds.tardis import read_tardis
from orpflow.feeds.frame import events_from_frame, merge_events
from orpflow.feeds.recorder import Recorder, record_line, recording_files

__all__ = ["FeedReport", "read_binance", "read_cryptofeed", "read_tardis", "Recorder", "record_line",
           "recording_files", "events_from_frame", "merge_events"]
