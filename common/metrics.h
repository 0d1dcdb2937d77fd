/*
 * The packed values of a stats answer (docs/protocol.md, "8 stats"): the
 * latency buckets' fixed bounds, and the codec of the three packed fields,
 * shared by the daemon, which encodes them, and libkeytrans, which decodes
 * them. Packing keeps the answer to one field per array instead of a field
 * per number, well inside one frame however many operations there are.
 *
 *   LATENCY_BOUNDS   u32 upper bounds in microseconds, strictly ascending
 *   LATENCY_BUCKETS  u64 counts, one per bound and one above the last
 *   STATUS_COUNTS    entries of u16 status + u64 count, statuses ascending
 *
 * (all big-endian, as everything on the wire).
 */
#ifndef KT_METRICS_H
#define KT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * Fixed log-scale bounds, 1-2-5 per decade from 10 µs to 10 s: the same for
 * every operation and every daemon of a version, so that Prometheus can sum
 * histograms across hosts.
 */
#define METRICS_BOUNDS 19
#define METRICS_BUCKETS (METRICS_BOUNDS + 1)    /* the last one: above 10 s */
#define METRICS_BOUNDS_MAX 31                   /* what a decoder accepts */
#define METRICS_STATUS_ENTRY 10                 /* u16 status, u64 count */

extern const uint32_t metrics_bounds_us[METRICS_BOUNDS];

/* The bucket of a latency of ns nanoseconds: the first whose bound is >= it. */
unsigned metrics_bucket(uint64_t ns);

/* Writers: one field each; 0, or -1 when it did not fit (the writer's error flag). */
int metrics_put_bounds(struct buf_writer *w, unsigned tag, const uint32_t *us, size_t n);
int metrics_put_u64s(struct buf_writer *w, unsigned tag, const uint64_t *v, size_t n);
/* Only the nonzero counts of by_status[0 .. n) are written. */
int metrics_put_counts(struct buf_writer *w, unsigned tag, const uint64_t *by_status, size_t n);

/*
 * Readers of a field's value: 0, or -1 when it is malformed (nothing is
 * promised about the outputs then).
 * Bounds: 1 to cap values, each above the one before; *n receives how many.
 */
int metrics_get_bounds(const uint8_t *p, size_t len, uint32_t *us, size_t cap, size_t *n);
/* Exactly n values. */
int metrics_get_u64s(const uint8_t *p, size_t len, uint64_t *v, size_t n);
/*
 * Status counts, statuses strictly ascending: stored into by_status[0 .. slots)
 * (zeroed first), those of statuses >= slots summed into *other; *total
 * receives the sum of all. -1 as well when the sum overflows 64 bits.
 */
int metrics_get_counts(const uint8_t *p, size_t len, uint64_t *by_status, size_t slots,
		       uint64_t *other, uint64_t *total);

#endif
