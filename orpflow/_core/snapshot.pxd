# Seqlock MarketSnapshot: one writer (the strategy thread), any number of lock-free readers.
from libc.stdint cimport int64_t
from orpflow._core.book cimport Book, BookMetrics

cdef enum:
    SNAPSHOT_LEVELS = 20

cdef struct SnapshotData:
    int64_t version          # publish counter (1, 2, ...)
    int64_t book_seq         # book's last_update_id when published
    int64_t ts_exch
    int64_t ts_local
    int64_t in_sync
    int64_t crossed
    int64_t n_bid            # valid entries in the level arrays below
    int64_t n_ask
    int64_t bid_px[SNAPSHOT_LEVELS]    # ticks, best first
    int64_t bid_qty[SNAPSHOT_LEVELS]   # size units
    int64_t ask_px[SNAPSHOT_LEVELS]
    int64_t ask_qty[SNAPSHOT_LEVELS]
    BookMetrics metrics

cdef struct SeqlockSnapshot:
    int64_t seq              # odd while a write is in progress
    char _pad[56]            # readers spin on `seq`: keep the payload off its cache line
    SnapshotData data

# Publish d as one seqlock write section (sets d.version); one writer thread only.
cdef void snapshot_write(SeqlockSnapshot *s, SnapshotData *d) noexcept nogil
cdef void snapshot_publish_book(SeqlockSnapshot *s, const Book *b) noexcept nogil
cdef int64_t snapshot_read(const SeqlockSnapshot *s, SnapshotData *out) noexcept nogil

cdef class MarketSnapshot:
    cdef SeqlockSnapshot *snap
    cdef void *_block
