/*
 * Decoding of the stats answer (docs/protocol.md, "8 stats"). The packed
 * values go through common/metrics.c, the codec the daemon encodes them
 * with. Beyond the field sizes, the answer must hang together: latency bounds
 * ascending, each operation once, with a bucket per bound and one more, and
 * buckets that add up to the operation's count; else KT_ERR_PROTOCOL.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#include "metrics.h"

_Static_assert(KT_STATS_BOUNDS_MAX == METRICS_BOUNDS_MAX, "struct kt_stats holds every bound the codec accepts");

static int op_entry(const struct wire_field *g, size_t nbounds, struct kt_op_stats *o, char *why,
		    size_t wl)
{
	const struct wire_field *f;
	struct wire_fields m;
	uint64_t sum = 0;
	uint8_t op;
	char msg[256];

	if (wire_parse_answer(g->p, g->len, &m, msg, sizeof(msg)) != 0)
		return resp_bad(why, wl, "operation entry: %s", msg);
	if (wire_get_u8(&m, WIRE_T_OP, &op) != 0 || !wire_has(&m, WIRE_T_STATUS_COUNTS) ||
	    !wire_has(&m, WIRE_T_LATENCY_BUCKETS) ||
	    wire_get_u64(&m, WIRE_T_LATENCY_SUM, &o->latency_sum_ns) != 0)
		return resp_bad(why, wl, "operation entry lacks a field");
	o->op = op;
	snprintf(o->name, sizeof(o->name), "%s", wire_op_name(op));
	f = &m.f[WIRE_T_STATUS_COUNTS];
	if (metrics_get_counts(f->p, f->len, o->by_status, KT_STATS_STATUSES, &o->other_status,
			       &o->count) != 0)
		return resp_bad(why, wl, "%s: malformed STATUS_COUNTS", o->name);
	f = &m.f[WIRE_T_LATENCY_BUCKETS];
	if (metrics_get_u64s(f->p, f->len, o->buckets, nbounds + 1) != 0)
		return resp_bad(why, wl, "%s: LATENCY_BUCKETS does not hold %zu counts", o->name,
				nbounds + 1);
	for (size_t i = 0; i <= nbounds; i++)
		if (__builtin_add_overflow(sum, o->buckets[i], &sum))
			return resp_bad(why, wl, "%s: latency buckets overflow", o->name);
	if (sum != o->count)
		return resp_bad(why, wl, "%s: latency buckets add up to %llu, not the count %llu",
				o->name, (unsigned long long)sum, (unsigned long long)o->count);
	return KT_OK;
}

static int seen_op(const struct kt_stats *out, unsigned op)
{
	for (size_t i = 0; i < out->nops; i++)
		if (out->ops[i].op == op)
			return 1;
	return 0;
}

static int ops(const uint8_t *body, size_t len, struct kt_stats *out, char *why, size_t wl)
{
	struct wire_field g;
	size_t off = 0;
	int rc;

	while ((rc = wire_next_field(body, len, &off, WIRE_T_OP_ENTRY, &g)) == 1) {
		struct kt_op_stats o;
		int st;

		memset(&o, 0, sizeof(o));
		st = op_entry(&g, out->nbounds, &o, why, wl);
		if (st != KT_OK)
			return st;
		if (seen_op(out, o.op))
			return resp_bad(why, wl, "operation %u reported twice", o.op);
		if (out->nops < KT_STATS_OPS_MAX)
			out->ops[out->nops++] = o;
	}
	return rc < 0 ? resp_bad(why, wl, "malformed operation entries") : KT_OK;
}

static int pools(const uint8_t *body, size_t len, struct kt_stats *out, char *why, size_t wl)
{
	struct wire_field g;
	size_t off = 0;
	int rc;

	while ((rc = wire_next_field(body, len, &off, WIRE_T_POOL_ENTRY, &g)) == 1) {
		struct kt_pool_stats *p = &out->pools[out->npools];
		struct wire_fields m;
		char msg[256];

		if (out->npools == KT_STATS_POOLS_MAX)
			break;
		if (wire_parse_answer(g.p, g.len, &m, msg, sizeof(msg)) != 0)
			return resp_bad(why, wl, "pool entry: %s", msg);
		if (wire_get_str(&m, WIRE_T_NAME, p->name, sizeof(p->name)) != 0 ||
		    wire_get_u32(&m, WIRE_T_WORKER_COUNT, &p->workers) != 0 ||
		    wire_get_u32(&m, WIRE_T_QUEUED, &p->queued) != 0 ||
		    wire_get_u32(&m, WIRE_T_IN_FLIGHT, &p->in_flight) != 0)
			return resp_bad(why, wl, "pool entry lacks a field");
		out->npools++;
	}
	return rc < 0 ? resp_bad(why, wl, "malformed pool entries") : KT_OK;
}

int resp_stats(const struct wire_fields *m, const uint8_t *body, size_t len, struct kt_stats *out,
	       char *why, size_t wl)
{
	const struct wire_field *b = &m->f[WIRE_T_LATENCY_BOUNDS];
	int st;

	out->nops = out->npools = 0;
	if (wire_get_u64(m, WIRE_T_UPTIME, &out->uptime_s) != 0 ||
	    wire_get_u32(m, WIRE_T_CONNECTIONS, &out->connections) != 0 ||
	    wire_get_u64(m, WIRE_T_ACCEPTED, &out->accepted) != 0 ||
	    wire_get_u64(m, WIRE_T_REFUSED, &out->refused) != 0 || !b->present)
		return resp_bad(why, wl, "stats answer lacks a field");
	if (metrics_get_bounds(b->p, b->len, out->bounds_us, KT_STATS_BOUNDS_MAX, &out->nbounds) != 0)
		return resp_bad(why, wl, "malformed LATENCY_BOUNDS");
	st = ops(body, len, out, why, wl);
	if (st == KT_OK)
		st = pools(body, len, out, why, wl);
	if (st == KT_OK)
		st = resp_hsms(body, len, out->hsms, &out->nhsms, why, wl);
	return st;
}

/*
 * A group of counters a newer daemon added: 1 when all three tags are there, 0 when none
 * (an older daemon), else KT_ERR_PROTOCOL with why set.
 */
static int counter_group(const struct wire_fields *m, const unsigned tags[3], const char *what,
			 char *why, size_t wl)
{
	int n = wire_has(m, tags[0]) + wire_has(m, tags[1]) + wire_has(m, tags[2]);

	if (n == 0 || n == 3)
		return n / 3;
	return resp_bad(why, wl, "stats answer has only some of the %s counters", what);
}

int resp_recipients(const struct wire_fields *m, struct kt_recipient_stats *out, char *why,
		    size_t wl)
{
	static const unsigned tags[3] = { WIRE_T_RECIPIENT_HITS, WIRE_T_RECIPIENT_MISSES,
					  WIRE_T_RECIPIENTS };
	int n = counter_group(m, tags, "recipient cache's", why, wl);

	memset(out, 0, sizeof(*out));
	if (n != 1)
		return n == 0 ? KT_OK : n;
	wire_get_u64(m, WIRE_T_RECIPIENT_HITS, &out->hits);
	wire_get_u64(m, WIRE_T_RECIPIENT_MISSES, &out->misses);
	wire_get_u32(m, WIRE_T_RECIPIENTS, &out->entries);
	out->present = 1;
	return KT_OK;
}

int resp_sessions(const struct wire_fields *m, struct kt_session_stats *out, char *why, size_t wl)
{
	static const unsigned tags[3] = { WIRE_T_SESSIONS, WIRE_T_SESSIONS_OPENED,
					  WIRE_T_SESSIONS_EXPIRED };
	int n = counter_group(m, tags, "sealed sessions'", why, wl);

	memset(out, 0, sizeof(*out));
	if (n != 1)
		return n == 0 ? KT_OK : n;
	wire_get_u32(m, WIRE_T_SESSIONS, &out->open);
	wire_get_u64(m, WIRE_T_SESSIONS_OPENED, &out->opened);
	wire_get_u64(m, WIRE_T_SESSIONS_EXPIRED, &out->expired);
	return KT_OK;
}
