#include "stats.h"

void stats_answered(struct stats *s, unsigned op, int status, uint64_t ns)
{
	struct op_stats *o = &s->ops[op < WIRE_OP_MAX ? op : 0];

	/* Only the daemon's own codes are ever answered; the clamp keeps a future one in bounds. */
	o->by_status[status >= 0 && status < STATS_STATUSES ? status : KT_INTERNAL]++;
	o->buckets[metrics_bucket(ns)]++;
	o->sum_ns += ns;
}

uint64_t stats_elapsed_ns(const struct timespec *since)
{
	struct timespec now;
	int64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (int64_t)(now.tv_sec - since->tv_sec) * 1000000000 + (now.tv_nsec - since->tv_nsec);
	return ns > 0 ? (uint64_t)ns : 0;
}
