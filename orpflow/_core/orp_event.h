/* orp_event.h -- the Event record, laid out once in C so the compiler can check it.
 * Mirrored by types.pxd (Cython view) and orpflow.EVENT_DTYPE (numpy view); the import-time
 * check in orpflow/events.py compares those offsets with the ones below. */
#ifndef ORP_EVENT_H
#define ORP_EVENT_H
#include <stddef.h>
#include <stdint.h>

typedef struct orp_event {
    int64_t ts_exch;     /* exchange timestamp, ns */
    int64_t ts_local;    /* local receive timestamp, ns */
    int64_t seq;         /* venue final update id (Binance u / lastUpdateId / trade id) */
    int64_t seq_first;   /* Binance U */
    int64_t seq_prev;    /* Binance futures pu */
    int64_t price;       /* ticks */
    int64_t qty;         /* size units */
    uint32_t flags;
    uint32_t instrument;
} orp_event;

#if defined(__cplusplus)
#define ORP_STATIC_ASSERT(c, m) static_assert(c, m)
#elif defined(_MSC_VER)
#define ORP_STATIC_ASSERT(c, m) typedef char orp_sa_##__LINE__[(c) ? 1 : -1]
#else
#define ORP_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

ORP_STATIC_ASSERT(sizeof(orp_event) == 64, "Event must be exactly one cache line");
ORP_STATIC_ASSERT(offsetof(orp_event, price) == 40, "Event.price offset");
ORP_STATIC_ASSERT(offsetof(orp_event, flags) == 56, "Event.flags offset");
ORP_STATIC_ASSERT(offsetof(orp_event, instrument) == 60, "Event.instrument offset");

#endif
