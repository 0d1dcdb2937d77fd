/*
 * stats: the daemon's counters (stats.h), its pools and its HSMs, answered
 * on the loop thread, which owns the counters. Everyone who may connect may
 * ask, as for info: the answer names no key and no peer. But the outcomes of
 * the private-key operations (how many blobs failed to decrypt) are other
 * users' business: only [daemon] admin and stats_outcomes peers see those
 * operations' series; the others get them empty. stats_outcomes grants that
 * alone, for a metrics scraper that must not also create keys.
 */
#include <time.h>

#include "acl.h"
#include "daemon.h"
#include "gen.h"
#include "job.h"
#include "metrics.h"
#include "ops.h"
#include "recipients.h"
#include "server.h"
#include "wire.h"

/* Every operation, answered or not, so that a scraper sees each series from the start. */
static void put_ops(struct job *j, const struct stats *s, int admin)
{
	static const uint64_t none[STATS_STATUSES > METRICS_BUCKETS ? STATS_STATUSES : METRICS_BUCKETS];

	for (unsigned op = 0; op < WIRE_OP_MAX; op++) {
		const struct op_stats *o = &s->ops[op];
		const struct op_def *def = ops_find((uint8_t)op);
		int hidden = !admin && def != NULL && def->place == OP_PRIVATE;
		size_t at = wire_group_begin(&j->reply, WIRE_T_OP_ENTRY);

		wire_put_u8(&j->reply, WIRE_T_OP, (uint8_t)op);
		metrics_put_counts(&j->reply, WIRE_T_STATUS_COUNTS, hidden ? none : o->by_status,
				   STATS_STATUSES);
		metrics_put_u64s(&j->reply, WIRE_T_LATENCY_BUCKETS, hidden ? none : o->buckets,
				 METRICS_BUCKETS);
		wire_put_u64(&j->reply, WIRE_T_LATENCY_SUM, hidden ? 0 : o->sum_ns);
		wire_group_end(&j->reply, at);
	}
}

/* Queue depth is read without the pool's lock: a snapshot is all a gauge promises. */
static void put_pool(struct job *j, struct daemon *d, struct pool *p)
{
	size_t at = wire_group_begin(&j->reply, WIRE_T_POOL_ENTRY);

	wire_put_str(&j->reply, WIRE_T_NAME, p->name);
	wire_put_u32(&j->reply, WIRE_T_WORKER_COUNT, (uint32_t)p->nworkers);
	wire_put_u32(&j->reply, WIRE_T_QUEUED, (uint32_t)atomic_load(&p->queued));
	wire_put_u32(&j->reply, WIRE_T_IN_FLIGHT, server_in_flight(d->server, p));
	wire_group_end(&j->reply, at);
}

/* The cache of decoded PUBLIC_KEYs (recipients.h), kept by the public workers. */
static void put_recipients(struct job *j, struct daemon *d)
{
	struct recipient_stats r;

	recipients_stats(&d->recipients, &r);
	wire_put_u64(&j->reply, WIRE_T_RECIPIENT_HITS, r.hits);
	wire_put_u64(&j->reply, WIRE_T_RECIPIENT_MISSES, r.misses);
	wire_put_u32(&j->reply, WIRE_T_RECIPIENTS, r.entries);
}

/* Sealed sessions (sessions.h): open now, opened and expired since the start. */
static void put_sessions(struct job *j, struct daemon *d)
{
	struct session_counts s;

	sessions_counts(&d->sessions, &s);
	wire_put_u32(&j->reply, WIRE_T_SESSIONS, s.open);
	wire_put_u64(&j->reply, WIRE_T_SESSIONS_OPENED, s.opened);
	wire_put_u64(&j->reply, WIRE_T_SESSIONS_EXPIRED, s.expired);
}

static void stats_run(struct job *j, struct daemon *d, struct worker *w)
{
	struct timespec now;

	(void)w;
	if (job_reply_big(j, REPLY_PUBLIC) != 0) {
		job_fail(j, KT_INTERNAL, "out of memory");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	wire_put_u64(&j->reply, WIRE_T_UPTIME, (uint64_t)(now.tv_sec - d->started.tv_sec));
	wire_put_u32(&j->reply, WIRE_T_CONNECTIONS, (uint32_t)server_connections(d->server));
	wire_put_u64(&j->reply, WIRE_T_ACCEPTED, d->stats.accepted);
	wire_put_u64(&j->reply, WIRE_T_REFUSED, d->stats.refused);
	metrics_put_bounds(&j->reply, WIRE_T_LATENCY_BOUNDS, metrics_bounds_us, METRICS_BOUNDS);
	put_ops(j, &d->stats, acl_allows(&j->gen->conf.admin, j->peer, d->uid) ||
			      acl_allows(&j->gen->conf.stats_outcomes, j->peer, d->uid));
	put_pool(j, d, &d->hsm_pool);
	put_pool(j, d, &d->pub_pool);
	put_recipients(j, d);
	put_sessions(j, d);
	put_hsm_entries(j, d);
}

const struct op_def op_stats = { WIRE_OP_STATS, OP_INLINE, req_no_fields, stats_run };
