/* keytrans stats: the daemon's counters as text, one JSON object, or Prometheus text. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The upper bound (µs) of the bucket holding the q-quantile; 0 above the last bound. */
static uint32_t quantile_bound(const struct kt_stats *s, const struct kt_op_stats *o, double q)
{
	uint64_t seen = 0;

	for (size_t i = 0; i < s->nbounds; i++) {
		seen += o->buckets[i];
		if ((double)seen >= q * (double)o->count)
			return s->bounds_us[i];
	}
	return 0;
}

static void print_bound(const char *what, uint32_t us)
{
	if (us == 0)
		printf(", %s above the last bound", what);
	else
		printf(", %s <= %g ms", what, us / 1000.0);
}

static void op_text(const struct kt_stats *s, const struct kt_op_stats *o)
{
	const char *sep = "";

	printf("op %s: %" PRIu64 " answered (", o->name, o->count);
	for (int st = 0; st < KT_STATS_STATUSES; st++)
		if (o->by_status[st] > 0) {
			printf("%s%s %" PRIu64, sep, kt_status_name(st), o->by_status[st]);
			sep = ", ";
		}
	if (o->other_status > 0)
		printf("%sother %" PRIu64, sep, o->other_status);
	printf("), mean %.3f ms", (double)o->latency_sum_ns / (double)o->count / 1e6);
	print_bound("p50", quantile_bound(s, o, 0.50));
	print_bound("p99", quantile_bound(s, o, 0.99));
	putchar('\n');
}

static void stats_text(const struct kt_stats *s, const struct kt_recipient_stats *r,
		       const struct kt_session_stats *sess)
{
	size_t shown = 0;

	printf("uptime_s: %" PRIu64 "\nconnections: %" PRIu32 " open, %" PRIu64 " accepted, %" PRIu64
	       " refused\n", s->uptime_s, s->connections, s->accepted, s->refused);
	for (size_t i = 0; i < s->npools; i++)
		printf("pool %s: %" PRIu32 " worker%s, %" PRIu32 " queued, %" PRIu32 " in flight\n",
		       s->pools[i].name, s->pools[i].workers, plural(s->pools[i].workers),
		       s->pools[i].queued, s->pools[i].in_flight);
	if (r->present)
		printf("recipient cache: %" PRIu32 " key%s, %" PRIu64 " hit%s, %" PRIu64 " miss%s\n",
		       r->entries, plural(r->entries), r->hits, plural(r->hits), r->misses,
		       r->misses == 1 ? "" : "es");
	printf("sessions: %" PRIu32 " open, %" PRIu64 " opened, %" PRIu64 " expired\n", sess->open,
	       sess->opened, sess->expired);
	hsms_text(s->hsms, s->nhsms);
	for (size_t i = 0; i < s->nops; i++)
		if (s->ops[i].count > 0) {
			op_text(s, &s->ops[i]);
			shown++;
		}
	if (shown == 0)
		puts("no request answered yet");
}

static void op_json(struct json *j, const struct kt_stats *s, const struct kt_op_stats *o)
{
	json_object_begin(j, NULL);
	json_str(j, "op", o->name);
	json_u64(j, "code", o->op);
	json_u64(j, "count", o->count);
	json_object_begin(j, "statuses");
	for (int st = 0; st < KT_STATS_STATUSES; st++)
		if (o->by_status[st] > 0)
			json_u64(j, kt_status_name(st), o->by_status[st]);
	if (o->other_status > 0)
		json_u64(j, "other", o->other_status);
	json_object_end(j);
	json_array_begin(j, "latency_buckets");
	for (size_t i = 0; i <= s->nbounds; i++)
		json_u64(j, NULL, o->buckets[i]);
	json_array_end(j);
	json_u64(j, "latency_sum_ns", o->latency_sum_ns);
	json_object_end(j);
}

static int stats_json(const struct kt_stats *s, const struct kt_recipient_stats *r,
		      const struct kt_session_stats *sess)
{
	struct json j;

	json_begin(&j, stdout);
	json_u64(&j, "uptime_s", s->uptime_s);
	json_u64(&j, "connections", s->connections);
	json_u64(&j, "accepted", s->accepted);
	json_u64(&j, "refused", s->refused);
	json_array_begin(&j, "latency_bounds_us");
	for (size_t i = 0; i < s->nbounds; i++)
		json_u64(&j, NULL, s->bounds_us[i]);
	json_array_end(&j);
	json_array_begin(&j, "ops");
	for (size_t i = 0; i < s->nops; i++)
		op_json(&j, s, &s->ops[i]);
	json_array_end(&j);
	json_array_begin(&j, "pools");
	for (size_t i = 0; i < s->npools; i++) {
		json_object_begin(&j, NULL);
		json_str(&j, "name", s->pools[i].name);
		json_u64(&j, "workers", s->pools[i].workers);
		json_u64(&j, "queued", s->pools[i].queued);
		json_u64(&j, "in_flight", s->pools[i].in_flight);
		json_object_end(&j);
	}
	json_array_end(&j);
	if (r->present) {
		json_object_begin(&j, "recipient_cache");
		json_u64(&j, "entries", r->entries);
		json_u64(&j, "hits", r->hits);
		json_u64(&j, "misses", r->misses);
		json_object_end(&j);
	}
	json_object_begin(&j, "sessions");
	json_u64(&j, "open", sess->open);
	json_u64(&j, "opened", sess->opened);
	json_u64(&j, "expired", sess->expired);
	json_object_end(&j);
	hsms_json(&j, s->hsms, s->nhsms);
	return json_end(&j);
}

/* Every counter group from one answer. */
int stats_fetch(kt_conn *c, struct kt_stats *s, struct kt_recipient_stats *r,
		struct kt_session_stats *sess)
{
	return kt_stats_sessions(c, s, r, sess);
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	int prometheus = 0, http = 0;
	const struct opt opts[] = {
		OPT_FLAG("--prometheus", NULL, &prometheus,
			 "print the Prometheus text format (0.0.4) instead; not with --json"),
		OPT_FLAG("--http", NULL, &http,
			 "with --prometheus: answer one HTTP request read on stdin (a socket unit's)"),
		OPT_END,
	};
	struct kt_recipient_stats r;
	struct kt_session_stats sess;
	struct kt_stats *s;
	kt_conn *c;
	int st = args_parse(cli, argc, argv, opts, NULL, 0);

	if (st == EXIT_DONE && prometheus && cli->json)
		st = cli_usage(cli, "--json and --prometheus exclude each other");
	if (st == EXIT_DONE && http && !prometheus)
		st = cli_usage(cli, "--http needs --prometheus");
	if (st == EXIT_DONE && http)
		return http_metrics(cli);
	if (st == EXIT_DONE)
		st = cli_connect(cli, &c);
	if (st != EXIT_DONE)
		return st;
	/* About 15 KiB: kept off the stack. */
	s = malloc(sizeof(*s));
	st = s == NULL ? KT_ERR_NOMEM : stats_fetch(c, s, &r, &sess);
	if (st != KT_OK)
		st = cli_fail(cli, st, kt_errmsg(c));
	else if (prometheus)
		prometheus_write(stdout, s, &r, &sess);
	else if (cli->json)
		st = stats_json(s, &r, &sess) == 0 ? EXIT_DONE : EXIT_FAILED;
	else
		stats_text(s, &r, &sess);
	free(s);
	kt_conn_free(c);
	return st;
}
