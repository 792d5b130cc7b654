/* orp_debug.h -- debug counters that compile away.
 * Built with ORPFLOW_CYTHON_DEBUG=1 (which defines ORP_DEBUG), each compiled component counts
 * its live C allocations; tests assert the counts return to where they were after every test.
 * In a release build the counting macro is empty and the counters read as -1 ("not counted"). */
#ifndef ORP_DEBUG_H
#define ORP_DEBUG_H
#ifdef ORP_DEBUG
#define ORP_DEBUG_ENABLED 1
#define ORP_DEBUG_ADD(counter, v) ((counter) += (v))
#else
#define ORP_DEBUG_ENABLED 0
#define ORP_DEBUG_ADD(counter, v) ((void)0)
#endif
#endif
