"""Venue files -> Event arrays (converted once; every later run reads the array)."""
from orpflow.feeds.report import FeedReport
from orpflow.feeds.binance import read_binance
from orpflow.feeds.cryptofeed import read_cryptofeed
from orpflow.feeds.tardis import read_tardis

__all__ = ["FeedReport", "read_binance", "read_cryptofeed", "read_tardis"]
