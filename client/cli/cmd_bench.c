/*
 * keytrans bench: C connections, each keeping D requests in flight (closed
 * loop, like redis-benchmark), for S seconds or N requests; ops/s, latency
 * percentiles, errors, and the benchmark's own CPU use (to show it is not the
 * bottleneck).
 */
#include "alg.h"
#include "bench.h"
#include "cli.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define SPOT_CHECKS 4           /* wrap/sign answers per thread checked again at the end */

struct spot {
	uint64_t seq;
	struct kt_item it;
};

struct worker {
	pthread_t tid;
	const struct bench_cfg *cfg;
	const struct bench_fixture *fx;
	atomic_uint_fast64_t *issued;   /* shared request counter */
	double deadline;                /* CLOCK_MONOTONIC seconds */
	uint64_t done, errors;
	uint32_t *lat;                  /* microseconds, one per answer */
	size_t nlat, cap;
	struct spot spots[SPOT_CHECKS];
	size_t nspots;
	char first_error[300];
	int failed;                     /* the connection itself failed */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The next request number, or -1 when the run is over (by count or by time). */
static int next_seq(struct worker *w, uint64_t *seq)
{
	if (w->cfg->requests == 0) {
		if (now_s() >= w->deadline)
			return -1;
		*seq = atomic_fetch_add(w->issued, 1);
		return 0;
	}
	*seq = atomic_fetch_add(w->issued, 1);
	return *seq < w->cfg->requests ? 0 : -1;
}

static void note_error(struct worker *w, const char *fmt, const char *a, const char *b)
{
	w->errors++;
	if (w->first_error[0] == '\0')
		snprintf(w->first_error, sizeof(w->first_error), fmt, a, b);
}

static void record(struct worker *w, double started)
{
	uint32_t us = (uint32_t)((now_s() - started) * 1e6);

	if (w->nlat == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 65536;
		uint32_t *p = realloc(w->lat, cap * sizeof(*p));

		if (p == NULL)
			return;
		w->lat = p;
		w->cap = cap;
	}
	w->lat[w->nlat++] = us;
}

static void keep_spot(struct worker *w, uint64_t seq, const struct kt_item *it)
{
	if (w->nspots < SPOT_CHECKS && (w->cfg->op == B_WRAP || w->cfg->op == B_WRAP_GENERATE ||
					w->cfg->op == B_COPP_SIGN || w->cfg->op == B_OPM_SIGN)) {
		w->spots[w->nspots].seq = seq;
		w->spots[w->nspots].it = *it;
		w->nspots++;
	}
}

/* One finished item: latency, check, spot. */
static void finish(struct worker *w, kt_conn *c, struct kt_item *it, const uint64_t *seqs,
		   const double *started, size_t slot)
{
	char why[200];

	record(w, started[slot]);
	w->done++;
	if (it->status != KT_OK)
		note_error(w, "%s: %s", kt_status_name(it->status), kt_errmsg(c));
	else if (bench_check(w->cfg, w->fx, seqs[slot], it, why, sizeof(why)) != 0)
		note_error(w, "%s%s", why, "");
	else
		keep_spot(w, seqs[slot], it);
}

static int submit(struct worker *w, kt_conn *c, struct kt_item *items, uint64_t *seqs,
		  double *started, size_t slot)
{
	if (next_seq(w, &seqs[slot]) != 0)
		return 0;
	bench_fill(w->cfg, w->fx, seqs[slot], &items[slot]);
	items[slot].user = (void *)(uintptr_t)slot;
	started[slot] = now_s();
	if (kt_submit(c, &items[slot]) != KT_OK) {
		note_error(w, "submit: %s%s", kt_errmsg(c), "");
		return -1;
	}
	return 1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned depth = w->cfg->depth;
	struct kt_item *items = calloc(depth, sizeof(*items)), *done;
	uint64_t *seqs = calloc(depth, sizeof(*seqs));
	double *started = calloc(depth, sizeof(*started));
	kt_conn *c = kt_conn_new();

	if (items == NULL || seqs == NULL || started == NULL || c == NULL ||
	    kt_connect(c, w->cfg->socket) != KT_OK) {
		w->failed = 1;
		note_error(w, "connect: %s%s", c ? kt_errmsg(c) : "out of memory", "");
		goto out;
	}
	for (size_t s = 0; s < depth; s++)
		if (submit(w, c, items, seqs, started, s) < 0)
			goto out;
	while (kt_in_flight(c) > 0) {
		size_t slot;

		if (kt_complete(c, &done) != KT_OK) {
			w->failed = 1;
			note_error(w, "connection: %s%s", kt_errmsg(c), "");
			break;
		}
		slot = (size_t)(uintptr_t)done->user;
		finish(w, c, done, seqs, started, slot);
		if (submit(w, c, items, seqs, started, slot) < 0)
			break;
	}
out:
	kt_conn_free(c);
	free(items);
	free(seqs);
	free(started);
	return NULL;
}

/* Wrap and sign answers cannot be checked by the client alone: undo some with the HSM key. */
static uint64_t spot_check(const struct bench_cfg *cfg, const struct bench_fixture *fx,
			   struct worker *ws, char *first, size_t firstlen)
{
	uint64_t bad = 0;
	kt_conn *c = kt_conn_new();

	if (cfg->to_pub != NULL || c == NULL || kt_connect(c, cfg->socket) != KT_OK) {
		kt_conn_free(c);
		return 0;
	}
	for (unsigned t = 0; t < cfg->conns; t++)
		for (size_t s = 0; s < ws[t].nspots; s++) {
			const struct kt_item *it = &ws[t].spots[s].it;
			const struct kt_session_key *want = cfg->op == B_WRAP
				? &fx->keys[ws[t].spots[s].seq % BENCH_CASES] : &it->out.wrap.key;
			struct kt_session_key k;
			struct kt_copp o;
			int ok;

			if (cfg->op == B_COPP_SIGN || cfg->op == B_OPM_SIGN)
				ok = (cfg->op == B_COPP_SIGN
					      ? kt_copp_open(c, cfg->key, it->out.copp.signature,
							     it->out.copp.random, &o)
					      : kt_opm_open(c, cfg->key, it->out.copp.signature,
							    it->out.copp.random, 0, &o)) == KT_OK &&
				     memcmp(o.aes_key, it->out.copp.aes_key, 16) == 0;
			else
				ok = kt_unwrap(c, cfg->key, it->out.wrap.blob, it->out.wrap.blob_len,
					       KT_PAD_PKCS1 | KT_STRICT, &k) == KT_OK &&
				     k.len == want->len && memcmp(k.key, want->key, k.len) == 0;
			if (!ok && bad++ == 0)
				snprintf(first, firstlen, "a %s answer does not open again with %s",
					 bench_op_name(cfg->op), cfg->key);
		}
	kt_conn_free(c);
	return bad;
}

struct totals {
	uint64_t requests, errors;
	double seconds, cpu_percent;
	struct bench_stats lat;
	char first_error[300];
	int failed;
};

static int gather(const struct bench_cfg *cfg, const struct bench_fixture *fx, struct worker *ws,
		  struct totals *t)
{
	char spot_error[300] = "";
	size_t n = 0;
	uint32_t *all;

	for (unsigned i = 0; i < cfg->conns; i++)
		n += ws[i].nlat;
	all = malloc((n ? n : 1) * sizeof(*all));
	if (all == NULL)
		return -1;
	n = 0;
	for (unsigned i = 0; i < cfg->conns; i++) {
		memcpy(all + n, ws[i].lat, ws[i].nlat * sizeof(*all));
		n += ws[i].nlat;
		t->requests += ws[i].done;
		t->errors += ws[i].errors;
		t->failed |= ws[i].failed;
		if (t->first_error[0] == '\0')
			memcpy(t->first_error, ws[i].first_error, sizeof(t->first_error));
	}
	bench_stats(all, n, &t->lat);
	free(all);
	t->errors += spot_check(cfg, fx, ws, spot_error, sizeof(spot_error));
	if (t->first_error[0] == '\0')
		memcpy(t->first_error, spot_error, sizeof(t->first_error));
	return 0;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int run(const struct bench_cfg *cfg, const struct bench_fixture *fx, struct totals *t)
{
	struct worker *ws = calloc(cfg->conns, sizeof(*ws));
	atomic_uint_fast64_t issued = 0;
	double start = now_s(), cpu0 = cpu_seconds();
	unsigned started = 0;

	if (ws == NULL)
		return -1;
	for (; started < cfg->conns; started++) {
		ws[started].cfg = cfg;
		ws[started].fx = fx;
		ws[started].issued = &issued;
		ws[started].deadline = start + cfg->duration;
		if (pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]) != 0)
			break;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(ws[i].tid, NULL);
	t->seconds = now_s() - start;
	t->cpu_percent = 100.0 * (cpu_seconds() - cpu0) / (t->seconds > 0 ? t->seconds : 1);
	gather(cfg, fx, ws, t);
	for (unsigned i = 0; i < cfg->conns; i++)
		free(ws[i].lat);
	free(ws);
	return started == cfg->conns ? 0 : -1;
}

static void report(const struct cli *cli, const struct bench_cfg *cfg, const struct totals *t)
{
	double ops = t->seconds > 0 ? (double)(t->requests - t->errors) / t->seconds : 0;
	struct json j;

	if (!cli->json) {
		printf("%s: %u connection%s x %u in flight, %.1f s", bench_op_name(cfg->op), cfg->conns,
		       plural(cfg->conns), cfg->depth, t->seconds);
		if (cfg->variants != NULL)
			printf(", %zu distinct recipient%s", cfg->variants->n, plural(cfg->variants->n));
		putchar('\n');
		printf("requests %llu, errors %llu, %.0f ops/s\n", (unsigned long long)t->requests,
		       (unsigned long long)t->errors, ops);
		printf("latency us: p50 %u, p90 %u, p99 %u, max %u\n", t->lat.p50, t->lat.p90,
		       t->lat.p99, t->lat.max);
		printf("client cpu: %.0f%% of one core\n", t->cpu_percent);
		if (t->first_error[0] != '\0')
			printf("first error: %s\n", t->first_error);
		return;
	}
	json_begin(&j, stdout);
	json_str(&j, "op", bench_op_name(cfg->op));
	json_u64(&j, "connections", cfg->conns);
	json_u64(&j, "pipeline", cfg->depth);
	if (cfg->variants != NULL)
		json_u64(&j, "distinct_recipients", cfg->variants->n);
	json_u64(&j, "requests", t->requests);
	json_u64(&j, "errors", t->errors);
	json_f64(&j, "ops_per_s", ops);
	json_u64(&j, "p50_us", t->lat.p50);
	json_u64(&j, "p90_us", t->lat.p90);
	json_u64(&j, "p99_us", t->lat.p99);
	json_u64(&j, "max_us", t->lat.max);
	json_f64(&j, "seconds", t->seconds);
	json_f64(&j, "client_cpu_percent", t->cpu_percent);
	if (t->first_error[0] != '\0')
		json_str(&j, "first_error", t->first_error);
	json_end(&j);
}

static int parse_count(const struct cli *cli, const char *opt, const char *text, uint64_t max,
		       uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(text ? text : "", &end, 10);

	if (text == NULL || *text == '\0' || *end != '\0' || v == 0 || v > max)
		return cli_usage(cli, "%s must be a number from 1 to %llu", opt,
				 (unsigned long long)max);
	*out = v;
	return EXIT_DONE;
}

static int parse_seconds(const struct cli *cli, const char *text, double *out)
{
	char *end;
	double v = strtod(text, &end);

	if (*text == '\0' || *end != '\0' || !(v > 0 && v <= 86400))
		return cli_usage(cli, "--duration must be a number of seconds above 0 (e.g. 0.5 or 10)");
	*out = v;
	return EXIT_DONE;
}

#define OP_LIST "unwrap, unwrap-oaep, wrap, wrap-generate, copp-sign, copp-open, opm-sign, " \
	"opm-open, session-mac, session-verify or pubkey"

struct bench_args {
	const char *op, *key, *to, *alg, *conns, *depth, *duration, *requests, *distinct;
	int strict;
};

/* --distinct-recipients N: N variants of the --to file, made before the clock starts. */
static int make_variants(const struct cli *cli, const struct bench_args *a, struct bench_cfg *cfg,
			 struct bench_recipients *variants)
{
	uint64_t n = 0;
	int st;

	if (a->distinct == NULL)
		return EXIT_DONE;
	if (a->to == NULL)
		return cli_usage(cli, "--distinct-recipients needs --to KEYFILE");
	st = parse_count(cli, "--distinct-recipients", a->distinct, BENCH_RECIPIENTS_MAX, &n);
	if (st != EXIT_DONE)
		return st;
	if (bench_recipients_make(cfg->to_pub, cfg->to_pub_len, (size_t)n, variants) != 0)
		return cli_usage(cli, "--distinct-recipients: no RSA modulus found in %s", a->to);
	cfg->variants = variants;
	return EXIT_DONE;
}

static int configure(const struct cli *cli, const struct bench_args *a, struct bench_cfg *cfg,
		     struct keyref *key, uint8_t **pub, struct bench_recipients *variants)
{
	uint64_t v = 0;
	int st = EXIT_DONE;

	cfg->socket = cli->socket;
	cfg->conns = 1;
	cfg->depth = 1;
	cfg->duration = 10;
	cfg->alg_id = 0x660e;
	if (a->op == NULL || bench_op_parse(a->op, &cfg->op) != 0)
		return cli_usage(cli, "--op must be " OP_LIST);
	if ((a->key == NULL) == (a->to == NULL) ||
	    (a->to != NULL && cfg->op != B_WRAP && cfg->op != B_WRAP_GENERATE &&
	     cfg->op != B_COPP_SIGN && cfg->op != B_OPM_SIGN))
		return cli_usage(cli, "give --key NAME, or --to KEYFILE (wrap, wrap-generate, copp-sign, "
				 "opm-sign)");
	st = keyref_parse(cli, a->key, key);   /* resolved once connected */
	if (st == EXIT_DONE && a->to != NULL && (st = io_read(cli, a->to, pub, &cfg->to_pub_len)) == EXIT_DONE)
		cfg->to_pub = *pub;
	if (st == EXIT_DONE && a->alg != NULL) {
		const struct alg_info *alg = alg_by_name(a->alg);   /* any case or spelling */

		if (alg != NULL && (alg->id == 0x660e || alg->id == 0x6610))
			cfg->alg_id = alg->id;
		else
			st = cli_usage(cli, "--alg must be AES_128 or AES_256");
	}
	if (st == EXIT_DONE && a->conns && (st = parse_count(cli, "--connections", a->conns, 4096, &v)) == EXIT_DONE)
		cfg->conns = (unsigned)v;
	if (st == EXIT_DONE && a->depth && (st = parse_count(cli, "--pipeline", a->depth, 256, &v)) == EXIT_DONE)
		cfg->depth = (unsigned)v;
	if (st == EXIT_DONE && a->duration)
		st = parse_seconds(cli, a->duration, &cfg->duration);
	if (st == EXIT_DONE && a->requests && (st = parse_count(cli, "--requests", a->requests, UINT64_MAX / 2, &v)) == EXIT_DONE)
		cfg->requests = v;
	if (st == EXIT_DONE && a->duration && a->requests)
		st = cli_usage(cli, "give --duration or --requests, not both");
	if (st == EXIT_DONE)
		st = make_variants(cli, a, cfg, variants);
	cfg->strict = a->strict;
	return st;
}

int cmd_bench(struct cli *cli, int argc, char **argv)
{
	struct bench_args a = { 0 };
	const struct opt opts[] = {
		OPT_VALUE("--op", NULL, &a.op, "OP", OP_LIST " (required)"),
		OPT_VALUE("--key", NULL, &a.key, "NAME", "the daemon's key to use (or a PKCS#11 URI)"),
		OPT_VALUE("--to", NULL, &a.to, "KEYFILE",
			  "a public key file as recipient instead (wrap, wrap-generate, copp-sign, opm-sign)"),
		OPT_VALUE("--alg", NULL, &a.alg, "ALG", "the session keys: AES_128 (default) or AES_256"),
		OPT_VALUE("--connections", "-c", &a.conns, "N",
			  "connections, a thread each (1 to 4096, default 1)"),
		OPT_VALUE("--pipeline", "-P", &a.depth, "N",
			  "requests in flight per connection (1 to 256, default 1)"),
		OPT_VALUE("--duration", "-d", &a.duration, "SECONDS",
			  "how long to run (above 0, fractions allowed, default 10)"),
		OPT_VALUE("--requests", "-n", &a.requests, "N", "how many requests in all, instead of -d"),
		OPT_VALUE("--distinct-recipients", NULL, &a.distinct, "N",
			  "with --to: cycle through N recipients made from KEYFILE (1 to 100000)"),
		OPT_FLAG("--strict", NULL, &a.strict,
			 "unwrap and copp-open with no implicit rejection (STRICT)"),
		OPT_END,
	};
	struct bench_recipients variants = { 0 };
	struct bench_fixture *fx = calloc(1, sizeof(*fx));
	struct bench_cfg cfg = { 0 };
	struct keyref key;
	struct totals t = { 0 };
	uint8_t *pub = NULL;
	char err[300];
	kt_conn *c = NULL;
	int st = args_parse(cli, argc, argv, opts, NULL, 0);

	if (fx == NULL)
		st = cli_fail(cli, KT_ERR_NOMEM, NULL);
	if (st == EXIT_DONE)
		st = configure(cli, &a, &cfg, &key, &pub, &variants);
	if (st == EXIT_DONE)
		st = cli_connect(cli, &c);
	if (st == EXIT_DONE)
		st = keyref_resolve(cli, c, &key, &cfg.key);
	if (st == EXIT_DONE && (st = bench_prepare(c, &cfg, fx, err, sizeof(err))) != KT_OK)
		st = cli_fail(cli, st, err);
	if (st == EXIT_DONE && run(&cfg, fx, &t) != 0)
		st = cli_fail(cli, KT_ERR_NOMEM, "cannot start the benchmark threads");
	if (c != NULL && fx != NULL)
		bench_finish(c, fx);
	kt_conn_free(c);
	if (st == EXIT_DONE) {
		report(cli, &cfg, &t);
		st = t.errors || t.failed ? EXIT_FAILED : EXIT_DONE;
	}
	bench_recipients_free(&variants);
	free(pub);
	free(fx);
	return st;
}
