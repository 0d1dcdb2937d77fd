/*
 * The Prometheus text exposition format, version 0.0.4, for node_exporter's
 * textfile collector: each family's # HELP and # TYPE, then its samples, all
 * of a family together. Histograms are cumulative (_bucket{le=...} up to
 * "+Inf", then _sum and _count), as the format requires.
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped, as the format wants. */
static void label_value(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void labelled(FILE *f, const char *name, const char *label, const char *value, uint64_t v)
{
	fprintf(f, "%s{%s=", name, label);
	label_value(f, value);
	fprintf(f, "} %" PRIu64 "\n", v);
}

/* A status label: its name, or its number for a code this library does not know. */
static void request_line(FILE *f, const struct kt_op_stats *o, const char *status, uint64_t v)
{
	fputs("keytrans_requests_total{op=", f);
	label_value(f, o->name);
	fputs(",status=", f);
	label_value(f, status);
	fprintf(f, "} %" PRIu64 "\n", v);
}

static void requests(FILE *f, const struct kt_stats *s)
{
	family(f, "keytrans_requests_total", "counter", "Requests answered, by operation and status.");
	for (size_t i = 0; i < s->nops; i++) {
		const struct kt_op_stats *o = &s->ops[i];

		for (int st = 0; st < KT_STATS_STATUSES; st++) {
			char code[16];
			const char *name = kt_status_name(st);

			/* OK always, so that rate() has a series from the start. */
			if (o->by_status[st] == 0 && st != KT_OK)
				continue;
			if (strcmp(name, "UNKNOWN") == 0) {
				snprintf(code, sizeof(code), "%d", st);
				name = code;
			}
			request_line(f, o, name, o->by_status[st]);
		}
		if (o->other_status > 0)
			request_line(f, o, "other", o->other_status);
	}
}

static void bucket(FILE *f, const char *op, const char *le, uint64_t v)
{
	fputs("keytrans_request_duration_seconds_bucket{op=", f);
	label_value(f, op);
	fprintf(f, ",le=\"%s\"} %" PRIu64 "\n", le, v);
}

static void histogram(FILE *f, const struct kt_stats *s, const struct kt_op_stats *o)
{
	uint64_t cum = 0;
	char le[32];

	for (size_t i = 0; i < s->nbounds; i++) {
		cum += o->buckets[i];
		snprintf(le, sizeof(le), "%g", s->bounds_us[i] / 1e6);
		bucket(f, o->name, le, cum);
	}
	bucket(f, o->name, "+Inf", o->count);
	fputs("keytrans_request_duration_seconds_sum{op=", f);
	label_value(f, o->name);
	/* Exact decimal seconds from the nanoseconds: no rounding through a double. */
	fprintf(f, "} %" PRIu64 ".%09" PRIu64 "\n", o->latency_sum_ns / 1000000000,
		o->latency_sum_ns % 1000000000);
	labelled(f, "keytrans_request_duration_seconds_count", "op", o->name, o->count);
}

static void pools(FILE *f, const struct kt_stats *s)
{
	family(f, "keytrans_workers", "gauge", "Worker threads per pool.");
	for (size_t i = 0; i < s->npools; i++)
		labelled(f, "keytrans_workers", "pool", s->pools[i].name, s->pools[i].workers);
	family(f, "keytrans_queue_depth", "gauge", "Jobs waiting for a worker, per pool.");
	for (size_t i = 0; i < s->npools; i++)
		labelled(f, "keytrans_queue_depth", "pool", s->pools[i].name, s->pools[i].queued);
	family(f, "keytrans_in_flight", "gauge", "Jobs handed to a pool and not yet answered.");
	for (size_t i = 0; i < s->npools; i++)
		labelled(f, "keytrans_in_flight", "pool", s->pools[i].name, s->pools[i].in_flight);
}

static void hsms(FILE *f, const struct kt_stats *s)
{
	family(f, "keytrans_hsm_up", "gauge", "1 when the HSM is in service.");
	for (size_t i = 0; i < s->nhsms; i++)
		labelled(f, "keytrans_hsm_up", "hsm", s->hsms[i].name,
			 strcmp(s->hsms[i].state, "up") == 0);
	family(f, "keytrans_hsm_in_flight", "gauge", "Operations running on the HSM.");
	for (size_t i = 0; i < s->nhsms; i++)
		labelled(f, "keytrans_hsm_in_flight", "hsm", s->hsms[i].name, s->hsms[i].in_flight);
	family(f, "keytrans_hsm_faults_total", "counter", "Times the HSM was taken out of service.");
	for (size_t i = 0; i < s->nhsms; i++)
		labelled(f, "keytrans_hsm_faults_total", "hsm", s->hsms[i].name, s->hsms[i].faults);
}

/* The daemon's cache of decoded recipient keys: left out when the daemon does not report it. */
static void recipients(FILE *f, const struct kt_recipient_stats *r)
{
	if (!r->present)
		return;
	family(f, "keytrans_recipient_cache_hits_total", "counter",
	       "Wraps and COPP signatures to a public key found already decoded.");
	fprintf(f, "keytrans_recipient_cache_hits_total %" PRIu64 "\n", r->hits);
	family(f, "keytrans_recipient_cache_misses_total", "counter",
	       "Wraps and COPP signatures to a public key that had to be decoded.");
	fprintf(f, "keytrans_recipient_cache_misses_total %" PRIu64 "\n", r->misses);
	family(f, "keytrans_recipient_cache_entries", "gauge", "Recipient keys in the cache.");
	fprintf(f, "keytrans_recipient_cache_entries %" PRIu32 "\n", r->entries);
}

static void sessions(FILE *f, const struct kt_session_stats *sess)
{
	family(f, "keytrans_sessions_open", "gauge", "Sealed sessions open.");
	fprintf(f, "keytrans_sessions_open %" PRIu32 "\n", sess->open);
	family(f, "keytrans_sessions_opened_total", "counter", "Sealed sessions opened.");
	fprintf(f, "keytrans_sessions_opened_total %" PRIu64 "\n", sess->opened);
	family(f, "keytrans_sessions_expired_total", "counter",
	       "Sealed sessions closed by the daemon after an idle time.");
	fprintf(f, "keytrans_sessions_expired_total %" PRIu64 "\n", sess->expired);
}

void prometheus_write(FILE *f, const struct kt_stats *s, const struct kt_recipient_stats *r,
		      const struct kt_session_stats *sess)
{
	family(f, "keytrans_uptime_seconds", "gauge", "Seconds since keytransd started.");
	fprintf(f, "keytrans_uptime_seconds %" PRIu64 "\n", s->uptime_s);
	family(f, "keytrans_connections", "gauge", "Client connections open.");
	fprintf(f, "keytrans_connections %" PRIu32 "\n", s->connections);
	family(f, "keytrans_connections_accepted_total", "counter", "Client connections accepted.");
	fprintf(f, "keytrans_connections_accepted_total %" PRIu64 "\n", s->accepted);
	family(f, "keytrans_connections_refused_total", "counter",
	       "Client connections refused (over a limit).");
	fprintf(f, "keytrans_connections_refused_total %" PRIu64 "\n", s->refused);
	requests(f, s);
	family(f, "keytrans_request_duration_seconds", "histogram",
	       "Time from a complete request to its answer, by operation.");
	for (size_t i = 0; i < s->nops; i++)
		histogram(f, s, &s->ops[i]);
	pools(f, s);
	recipients(f, r);
	sessions(f, sess);
	hsms(f, s);
}
