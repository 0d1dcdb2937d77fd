/*
 * The daemon's counters for the stats operation: per operation, the answers
 * by status and a latency histogram (common/metrics.h's fixed bounds), and
 * the connections accepted and refused. Only the event-loop thread touches
 * them (every answer leaves from there), so they need neither locks nor
 * atomics; a stats request reads them on the same thread.
 */
#ifndef KT_STATS_H
#define KT_STATS_H

#include <stdint.h>
#include <time.h>

#include "keytrans_status.h"
#include "metrics.h"
#include "wire.h"

/* Status codes counted one by one: every code the daemon answers (KT_STATUS_LIST) is below. */
#define STATS_STATUSES (KT_SESSION_LIMIT + 1)   /* every status the daemon answers */

struct op_stats {
	uint64_t by_status[STATS_STATUSES];
	uint64_t buckets[METRICS_BUCKETS];
	uint64_t sum_ns;                /* of the latencies: 584 years before it wraps */
};

struct stats {
	/* Indexed by op code; [0] counts frames whose op code is no operation. */
	struct op_stats ops[WIRE_OP_MAX];
	uint64_t accepted;              /* connections admitted */
	uint64_t refused;               /* connections closed at accept (limits, no memory) */
};

/*
 * One answer handed to a connection: op (0 for an unknown code), its status,
 * and the time since the request was complete (0 when answered at once
 * without a job: framing errors).
 */
void stats_answered(struct stats *s, unsigned op, int status, uint64_t ns);
/* Nanoseconds from since to now (CLOCK_MONOTONIC). */
uint64_t stats_elapsed_ns(const struct timespec *since);

#endif
