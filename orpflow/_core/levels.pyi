# One side of an order book (the price window and the far levels): C-level only, used by
# OrderBook (orpflow._core.book); nothing here is called from Python.
