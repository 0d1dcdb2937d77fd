/*
 * timing: a dudect-style statistical timing test of PKCS#1 v1.5 unwrap, run
 * as a benchmark (scripts/timing; results in docs/timing.md), never
 * in the CI suite: it takes minutes and a busy machine makes it noisy.
 *
 * Two classes are timed in one random interleaved order: A, valid SIMPLEBLOBs
 * (the vectors' own and freshly wrapped ones), and B, one `decrypt` line of
 * tests/vectors/negative.txt, with the same ALG_ID; a last class B,
 * `control_valid`, is another valid blob: it differs from class A in its
 * data but not in its padding's validity, so its |t| is the floor the
 * negative classes are to be read against. (In process, a single input
 * against a mix of eight can reach |t| 4-6 at 500,000 samples per class even
 * when both are valid: hence the default of 100,000; see
 * docs/timing.md.) Welch's t-test (dudect.c) says whether the
 * timings differ.
 *
 *   timing inproc [--samples N] [--inject-leak N]
 *	what decrypt_raw() in daemon/op_unwrap.c does after the HSM call, in
 *	process, on raw RSA results computed beforehand; TSC ticks.
 *   timing socket --socket PATH --key NAME [--samples N] [--strict | --expect-failed]
 *	whole unwrap requests through libkeytrans, default (implicit
 *	rejection) mode; NAME must hold tests/vectors/keys/rsa2048.pem; ns.
 *   common: --vectors DIR, --valid N, --seed S, --json | --markdown,
 *	--append-markdown FILE, --dump PREFIX, --class NAME, --null (an A/A test)
 *
 * N is per class. Exit status 0: no leak detected; 2: some class above
 * |t| = 4.5; 1: an error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "alg.h"
#include "dudect.h"
#include "hex.h"
#include "implicit.h"
#include "keytrans.h"
#include "pkcs1.h"
#include "rsa_pub.h"
#include "simpleblob.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#define VECTOR_KEY "rsa2048"
#define CONTROL_ALG 0x660e      /* CALG_AES_128: the control class's ALG_ID */
#define MAX_CLASSES 16
#define MAX_VALID 64
#define INPROC_DEFAULT 100000
#define SOCKET_DEFAULT 10000
#define INPROC_WARMUP 20000
#define SOCKET_WARMUP 500
#define LINE_MAX_ 16384

enum fmt { FMT_TEXT, FMT_JSON, FMT_MD };

struct opts {
	const char *mode, *socket, *key, *vectors, *dump, *md_file, *only;
	size_t samples, nvalid;
	uint64_t seed;
	unsigned inject;
	int strict, expect_failed, aa;
	enum fmt fmt;
};

struct blob {
	char name[48];
	uint8_t b[SIMPLEBLOB_MAX];
	size_t len;
	uint8_t key[ALG_KEY_MAX];       /* the session key it holds (valid blobs) */
	size_t key_len;
};

/* One comparison: class A (valid[]) against class B (neg). */
struct tclass {
	struct blob neg;
	int control;                    /* neg is valid too: the noise-floor control */
	const struct alg_info *alg;
	struct blob valid[MAX_VALID];
	size_t nvalid;
	double seconds;
	struct dudect_result res;
};

/*
 * Interleaving: cls[i] is sample i's class, in[i] its input (one of class A's
 * several, or class B's), chosen before any timing: a branch on the class
 * just before the clock read would leave the branch predictor's history, and
 * so the timed code's speed, depending on the class (it did: |t| up to 19
 * with both classes fed the same inputs).
 */
struct schedule {
	size_t n;
	uint8_t *cls;
	const void **in;
	int64_t *t;
};

/* Keeps the measured work from being optimised away. */
static volatile unsigned sink;

/* --- randomness for the schedule (splitmix64: not secret, only unpredictable to the code timed) --- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
	return (size_t)(rng_next() % n);        /* bias below 2^-40 for these n */
}

/*
 * Exactly per_class samples of each class, shuffled (Fisher-Yates); class A
 * samples take a random one of the na inputs at a (each size bytes), class B
 * samples b (or, for an A/A test, a random one of class A's too).
 */
static int schedule_make(struct schedule *s, size_t per_class, const void *a, size_t na,
			 size_t size, const void *b, int aa)
{
	s->n = 2 * per_class;
	s->cls = malloc(s->n);
	s->in = malloc(s->n * sizeof(*s->in));
	s->t = malloc(s->n * sizeof(*s->t));
	if (s->cls == NULL || s->in == NULL || s->t == NULL)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		s->cls[i] = i >= per_class;
	for (size_t i = s->n - 1; i > 0; i--) {
		size_t j = rng_below(i + 1);
		uint8_t c = s->cls[i];

		s->cls[i] = s->cls[j];
		s->cls[j] = c;
	}
	for (size_t i = 0; i < s->n; i++)
		s->in[i] = s->cls[i] && !aa ? b : (const char *)a + rng_below(na) * size;
	return 0;
}

static void schedule_free(struct schedule *s)
{
	free(s->cls);
	free(s->in);
	free(s->t);
}

/* --- clocks --- */

#if defined(__x86_64__) || defined(__i386__)
#define TICK_UNIT "TSC ticks"
/* The fences keep rdtsc from running before earlier or after later instructions. */
static inline int64_t ticks(void)
{
	uint64_t t;

	_mm_lfence();
	t = __rdtsc();
	_mm_lfence();
	return (int64_t)t;
}
#else
#define TICK_UNIT "ns"
static inline int64_t ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
#endif

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- the vectors --- */

static int split(char *line, char **f, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *tok = strtok_r(line, " \t\r\n", &save); tok != NULL && n < max;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		f[n++] = tok;
	return n;
}

/* Calls each(fields, n, arg) for every non-empty, non-comment line of dir/name. */
static int each_line(const char *dir, const char *name, int (*each)(char **, int, void *), void *arg)
{
	static char line[LINE_MAX_];
	char path[4096], *f[8];
	FILE *fp;
	int rc = 0, n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r");
	if (fp == NULL) {
		fprintf(stderr, "timing: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), fp) != NULL)
		if (line[0] != '#' && (n = split(line, f, 8)) > 0)
			rc = each(f, n, arg);
	fclose(fp);
	return rc;
}

static int blob_from_hex(struct blob *b, const char *name, const char *hex)
{
	long n = strcmp(hex, "-") == 0 ? 0 : hex_decode(hex, b->b, sizeof(b->b));

	snprintf(b->name, sizeof(b->name), "%s", name);
	if (n < 0) {
		fprintf(stderr, "timing: %s: bad hex\n", name);
		return -1;
	}
	b->len = (size_t)n;
	return 0;
}

/* The ALG_ID in a SIMPLEBLOB header (aiKeyAlg, little-endian at offset 4). */
static const struct alg_info *blob_alg(const struct blob *b)
{
	if (b->len < SIMPLEBLOB_HDR)
		return NULL;
	return alg_by_id((uint32_t)b->b[4] | (uint32_t)b->b[5] << 8 | (uint32_t)b->b[6] << 16 |
			 (uint32_t)b->b[7] << 24);
}

struct class_list {
	struct tclass *c;
	size_t n;
};

/* negative.txt: one comparison per `decrypt` line. */
static int on_negative(char **f, int n, void *arg)
{
	struct class_list *l = arg;
	struct tclass *tc;

	if (n < 3 || strcmp(f[1], "decrypt") != 0)
		return 0;
	if (l->n == MAX_CLASSES - 1) {
		fprintf(stderr, "timing: more than %d decrypt classes\n", MAX_CLASSES - 1);
		return -1;
	}
	tc = &l->c[l->n];
	if (blob_from_hex(&tc->neg, f[0], f[2]) != 0)
		return -1;
	tc->alg = blob_alg(&tc->neg);
	if (tc->alg == NULL) {
		fprintf(stderr, "timing: %s: no session-key ALG_ID in its header\n", f[0]);
		return -1;
	}
	l->n++;
	return 0;
}

/* simpleblob.txt: the vector key's PKCS#1 v1.5 blobs with the class's ALG_ID. */
static int on_valid(char **f, int n, void *arg)
{
	struct tclass *tc = arg;
	struct blob *b;
	long klen;

	if (n < 5 || strcmp(f[0], VECTOR_KEY) != 0 || strcmp(f[1], "pkcs1") != 0 ||
	    strtoul(f[2], NULL, 0) != tc->alg->id || tc->nvalid == MAX_VALID)
		return 0;
	b = &tc->valid[tc->nvalid];
	if (blob_from_hex(b, "vector", f[4]) != 0)
		return -1;
	klen = hex_decode(f[3], b->key, sizeof(b->key));
	if (klen < 0)
		return -1;
	b->key_len = (size_t)klen;
	tc->nvalid++;
	return 0;
}

/*
 * A fresh valid blob made by the daemon's own wrap code; key lengths cycle
 * through the ALG_ID's allowed range (i picks one).
 */
static int wrap_fresh(EVP_PKEY *pub, const struct alg_info *alg, size_t i, struct blob *b)
{
	char why[256];
	int st;

	b->key_len = alg->min_len + i % (size_t)(alg->max_len - alg->min_len + 1);
	if (RAND_bytes(b->key, (int)b->key_len) != 1)
		return -1;
	st = simpleblob_wrap(pub, alg, b->key, b->key_len, RSA_PAD_PKCS1, b->b, &b->len, why,
			     sizeof(why));
	if (st != KT_OK) {
		fprintf(stderr, "timing: wrapping a %s key: %s\n", alg->name, why);
		return -1;
	}
	snprintf(b->name, sizeof(b->name), "fresh");
	return 0;
}

static int fill_valid(const struct opts *o, EVP_PKEY *pub, struct tclass *tc)
{
	if (each_line(o->vectors, "simpleblob.txt", on_valid, tc) != 0)
		return -1;
	for (; tc->nvalid < o->nvalid; tc->nvalid++)
		if (wrap_fresh(pub, tc->alg, tc->nvalid, &tc->valid[tc->nvalid]) != 0)
			return -1;
	return 0;
}

/* --class NAME: that comparison alone (to look again at one with more samples). */
static void keep_only(const struct opts *o, struct class_list *l)
{
	size_t kept = 0;

	if (o->only == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->c[i].neg.name, o->only) == 0)
			l->c[kept++] = l->c[i];
	l->n = kept;
}

/* Every decrypt class, then the control; each with its own set of valid blobs. */
static int build_classes(const struct opts *o, EVP_PKEY *pub, struct class_list *l)
{
	struct tclass *ctl;

	l->c = calloc(MAX_CLASSES, sizeof(*l->c));
	l->n = 0;
	if (l->c == NULL || each_line(o->vectors, "negative.txt", on_negative, l) != 0)
		return -1;
	ctl = &l->c[l->n++];
	ctl->control = 1;
	ctl->alg = alg_by_id(CONTROL_ALG);
	if (wrap_fresh(pub, ctl->alg, 0, &ctl->neg) != 0)
		return -1;
	snprintf(ctl->neg.name, sizeof(ctl->neg.name), "control_valid");
	keep_only(o, l);
	for (size_t i = 0; i < l->n; i++)
		if (fill_valid(o, pub, &l->c[i]) != 0)
			return -1;
	return 0;
}

static EVP_PKEY *read_key(const char *dir, const char *file, int private)
{
	char path[4096];
	EVP_PKEY *k;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/keys/%s", dir, file);
	fp = fopen(path, "r");
	if (fp == NULL) {
		fprintf(stderr, "timing: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	k = private ? PEM_read_PrivateKey(fp, NULL, NULL, NULL) : PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	if (k == NULL)
		fprintf(stderr, "timing: %s: not a PEM key\n", path);
	return k;
}

/* --- in process: the post-RSA path --- */

/* A blob parsed as the daemon parses it, and its raw RSA result (the HSM's answer). */
struct prepared {
	struct simpleblob sb;
	uint8_t em[RSA_MAX_BYTES];
};

/* What CKM_RSA_X_509 returns: the bare private operation, in software. */
static int rsa_raw(EVP_PKEY *priv, const uint8_t *c, size_t k, uint8_t *em)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
	size_t len = k;
	int ok;

	ok = ctx != NULL && EVP_PKEY_decrypt_init(ctx) > 0 &&
	     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) > 0 &&
	     EVP_PKEY_decrypt(ctx, em, &len, c, k) > 0 && len == k;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

/*
 * Parses, decrypts, and checks that the decoder agrees with the class: a
 * valid blob must decode to its key, a negative one must fail, or the
 * comparison would not be the one intended.
 */
static int prepare(EVP_PKEY *priv, const uint8_t *n, size_t k, const struct blob *b, int valid,
		   struct prepared *p)
{
	struct unpadded out;
	char why[256];

	if (simpleblob_parse(b->b, b->len, n, k, &p->sb, why, sizeof(why)) != KT_OK) {
		fprintf(stderr, "timing: %s: %s\n", b->name, why);
		return -1;
	}
	if (rsa_raw(priv, p->sb.c, k, p->em) != 0 ||
	    simpleblob_unpad(p->em, k, p->sb.alg, RSA_PAD_PKCS1, &out) != 0) {
		fprintf(stderr, "timing: %s: raw RSA or unpadding failed\n", b->name);
		return -1;
	}
	if (valid ? !out.good || out.len != b->key_len || memcmp(out.msg, b->key, out.len) != 0
		  : out.good != 0) {
		fprintf(stderr, "timing: %s: the decoder calls it %s, expected %s\n", b->name,
			out.good ? "valid" : "invalid", valid ? "valid" : "invalid");
		return -1;
	}
	return 0;
}

/* Positive control only: a deliberate branch on the secret, n loop turns long. */
static void injected_leak(unsigned good, unsigned n)
{
	volatile unsigned spin = 0;

	if (!good)
		for (unsigned i = 0; i < n; i++)
			spin = spin + 1;
}

/*
 * Exactly what decrypt_raw() in daemon/op_unwrap.c does after hsm_rsa_raw(),
 * for PKCS#1 v1.5 in the default (implicit-rejection) mode: keep in step.
 * Not inlined, so that the compiler cannot move work across the clock reads.
 */
static __attribute__((noinline)) int post_rsa(EVP_MAC_CTX *mac, uint8_t *em,
					       const struct simpleblob *sb,
					       const uint8_t ir_key[IR_KEY_LEN], unsigned inject,
					       struct unpadded *out)
{
	struct unpadded synth;

	simpleblob_unpad(em, sb->k, sb->alg, RSA_PAD_PKCS1, out);
	if (inject)
		injected_leak(out->good, inject);
	OPENSSL_cleanse(em, sb->k);
	if (ir_synthetic(mac, ir_key, sb->c, sb->k, sb->alg->min_len, sb->alg->max_len, &synth) != 0)
		return -1;
	ir_select(out, &synth, sb->alg->max_len);
	out->good = ~0u;
	OPENSSL_cleanse(&synth, sizeof(synth));
	return 0;
}

static void prepared_copy(struct prepared *dst, const struct prepared *src)
{
	dst->sb.alg = src->sb.alg;
	dst->sb.k = src->sb.k;
	memcpy(dst->sb.c, src->sb.c, src->sb.k);
	memcpy(dst->em, src->em, src->sb.k);
}

static void touch_inputs(const struct prepared *valid, size_t nvalid, const struct prepared *neg)
{
	unsigned sum = 0;

	for (size_t i = 0; i <= nvalid; i++) {
		const struct prepared *p = i < nvalid ? &valid[i] : neg;

		for (size_t j = 0; j < p->sb.k; j += 64)
			sum += p->sb.c[j] + p->em[j];
	}
	sink += sum;
}

/* Runs the schedule; the first INPROC_WARMUP runs (schedule order too) are not kept. */
static int inproc_measure(const struct opts *o, const struct prepared *valid, size_t nvalid,
			  const struct prepared *neg, struct schedule *s)
{
	static const uint8_t ir_key[IR_KEY_LEN] = "fixed ir_key for the timing test";
	static struct prepared work;
	EVP_MAC_CTX *mac = ir_mac_new();   /* as each worker keeps one */
	struct unpadded out;
	int rc = mac != NULL ? 0 : -1;

	for (size_t i = 0; rc == 0 && i < INPROC_WARMUP + s->n; i++) {
		size_t j = i < INPROC_WARMUP ? i % s->n : i - INPROC_WARMUP;
		const struct prepared *p = s->in[j];
		int64_t t0, t1;

		/*
		 * The timed code reads the same addresses for both classes (as the
		 * daemon's stack buffers), and every input is touched in the same
		 * order before it: else class A, spread over several inputs, would
		 * leave a different cache state than class B's single input.
		 */
		prepared_copy(&work, p);
		touch_inputs(valid, nvalid, neg);
		t0 = ticks();
		rc = post_rsa(mac, work.em, &work.sb, ir_key, o->inject, &out);
		t1 = ticks();
		if (rc == 0 && i >= INPROC_WARMUP)
			s->t[j] = t1 - t0;
		sink += out.msg[0];
	}
	EVP_MAC_CTX_free(mac);
	return rc;
}

/* --dump: the samples in measurement order, "class ticks" a line, for a closer look. */
static int dump_samples(const struct opts *o, const struct tclass *tc, const struct schedule *s)
{
	char path[4096];
	FILE *fp;

	if (o->dump == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s-%s-%s.txt", o->dump, o->mode, tc->neg.name);
	fp = fopen(path, "w");
	if (fp == NULL) {
		fprintf(stderr, "timing: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		fprintf(fp, "%u %" PRId64 "\n", s->cls[i], s->t[i]);
	return fclose(fp) == 0 ? 0 : -1;
}

static int inproc_class(const struct opts *o, EVP_PKEY *priv, const uint8_t *n, size_t k,
			struct tclass *tc, struct prepared *valid, struct prepared *neg)
{
	struct schedule s = { 0 };
	int64_t start = now_ns();
	int rc = -1;

	for (size_t i = 0; i < tc->nvalid; i++)
		if (prepare(priv, n, k, &tc->valid[i], 1, &valid[i]) != 0)
			return -1;
	if (prepare(priv, n, k, &tc->neg, tc->control, neg) != 0)
		return -1;
	if (schedule_make(&s, o->samples, valid, tc->nvalid, sizeof(*valid), neg, o->aa) == 0 &&
	    inproc_measure(o, valid, tc->nvalid, neg, &s) == 0 &&
	    dump_samples(o, tc, &s) == 0)
		rc = dudect_analyse(s.t, s.cls, s.n, &tc->res);
	tc->seconds = (double)(now_ns() - start) / 1e9;
	schedule_free(&s);
	return rc;
}

static int run_inproc(const struct opts *o, struct class_list *l)
{
	EVP_PKEY *priv = read_key(o->vectors, VECTOR_KEY ".pem", 1);
	struct prepared *valid = calloc(MAX_VALID + 1, sizeof(*valid));
	uint8_t n[RSA_MAX_BYTES];
	uint64_t e;
	size_t k;
	int rc = -1;

	if (priv == NULL || valid == NULL || rsa_pub_numbers(priv, n, &k, &e) != 0)
		goto done;
	for (size_t i = 0; i < l->n; i++) {
		fprintf(stderr, "timing: inproc %s...\n", l->c[i].neg.name);
		if (inproc_class(o, priv, n, k, &l->c[i], valid, &valid[MAX_VALID]) != 0)
			goto done;
	}
	rc = 0;
done:
	if (valid != NULL)
		OPENSSL_cleanse(valid, (MAX_VALID + 1) * sizeof(*valid));
	free(valid);
	EVP_PKEY_free(priv);
	return rc;
}

/* --- over the socket --- */

/*
 * What a blob must answer: valid ones their key; negative ones the
 * implicit-rejection key (KT_OK), or UNWRAP_FAILED with --expect-failed
 * (--strict, or a key with rsa_mechanism = pkcs).
 */
static int expected_status(const struct opts *o, int valid)
{
	return valid || !o->expect_failed ? KT_OK : KT_UNWRAP_FAILED;
}

static int unwrap_padding(const struct opts *o)
{
	return KT_PAD_PKCS1 | (o->strict ? KT_STRICT : 0);
}

static int unwrap_once(const struct opts *o, kt_conn *c, const struct blob *b, int valid)
{
	struct kt_session_key sk;
	int st = kt_unwrap(c, o->key, b->b, b->len, unwrap_padding(o), &sk);

	if (st != expected_status(o, valid)) {
		fprintf(stderr, "timing: %s: unwrap answered %s (%s), expected %s%s\n", b->name,
			kt_status_name(st), kt_errmsg(c), kt_status_name(expected_status(o, valid)),
			st == KT_UNWRAP_FAILED ? " (a key with rsa_mechanism = pkcs needs --expect-failed)"
					       : "");
		return -1;
	}
	if (valid && (sk.len != b->key_len || memcmp(sk.key, b->key, sk.len) != 0)) {
		fprintf(stderr, "timing: key %s does not hold tests/vectors/keys/%s.pem\n", o->key,
			VECTOR_KEY);
		return -1;
	}
	return 0;
}

/* Every blob once: the comparison must be the one intended. */
static int socket_check(const struct opts *o, kt_conn *c, const struct tclass *tc)
{
	for (size_t i = 0; i < tc->nvalid; i++)
		if (unwrap_once(o, c, &tc->valid[i], 1) != 0)
			return -1;
	return unwrap_once(o, c, &tc->neg, tc->control);
}

static int socket_measure(const struct opts *o, kt_conn *c, const struct tclass *tc,
			  struct schedule *s)
{
	struct kt_session_key sk;
	int want[2] = { KT_OK, o->aa ? KT_OK : expected_status(o, tc->control) };

	for (size_t i = 0; i < SOCKET_WARMUP + s->n; i++) {
		size_t j = i < SOCKET_WARMUP ? i % s->n : i - SOCKET_WARMUP;
		const struct blob *b = s->in[j];
		int64_t t0, t1;
		int st;

		t0 = now_ns();
		st = kt_unwrap(c, o->key, b->b, b->len, unwrap_padding(o), &sk);
		t1 = now_ns();
		if (st != want[s->cls[j]]) {
			fprintf(stderr, "timing: %s: unwrap answered %s (%s)\n", b->name,
				kt_status_name(st), kt_errmsg(c));
			return -1;
		}
		if (i >= SOCKET_WARMUP)
			s->t[j] = t1 - t0;
		sink += sk.key[0];
	}
	return 0;
}

static int socket_class(const struct opts *o, kt_conn *c, struct tclass *tc)
{
	struct schedule s = { 0 };
	int64_t start = now_ns();
	int rc = -1;

	if (socket_check(o, c, tc) != 0)
		return -1;
	if (schedule_make(&s, o->samples, tc->valid, tc->nvalid, sizeof(tc->valid[0]), &tc->neg,
			  o->aa) == 0 && socket_measure(o, c, tc, &s) == 0 &&
	    dump_samples(o, tc, &s) == 0)
		rc = dudect_analyse(s.t, s.cls, s.n, &tc->res);
	tc->seconds = (double)(now_ns() - start) / 1e9;
	if (rc == 0)
		fprintf(stderr, "timing: socket %s: %zu requests in %.1f s (%.0f/s)\n", tc->neg.name,
			s.n, tc->seconds, (double)s.n / tc->seconds);
	schedule_free(&s);
	return rc;
}

static int run_socket(const struct opts *o, struct class_list *l)
{
	kt_conn *c = kt_conn_new();
	int rc = -1;

	if (c == NULL)
		return -1;
	kt_set_timeout(c, KT_DEFAULT_TIMEOUT_MS);
	if (kt_connect(c, o->socket) != KT_OK) {
		fprintf(stderr, "timing: %s: %s\n", o->socket, kt_errmsg(c));
		goto done;
	}
	for (size_t i = 0; i < l->n; i++)
		if (socket_class(o, c, &l->c[i]) != 0)
			goto done;
	rc = 0;
done:
	kt_conn_free(c);
	return rc;
}

/* --- the report --- */

static int leaks(const struct tclass *tc)
{
	return fabs(tc->res.max_t) > DUDECT_THRESHOLD;
}

static const char *unit_of(const struct opts *o)
{
	return strcmp(o->mode, "inproc") == 0 ? TICK_UNIT : "ns";
}

static const char *alg_short(const struct alg_info *a)
{
	return a->name + strlen("CALG_");
}

static void print_summary(FILE *out, const struct opts *o, const struct class_list *l)
{
	size_t worst = 0, nleak = 0;

	for (size_t i = 0; i < l->n; i++) {
		nleak += (size_t)leaks(&l->c[i]);
		if (fabs(l->c[i].res.max_t) > fabs(l->c[worst].res.max_t))
			worst = i;
	}
	fprintf(out, "%s: %zu classes, %zu samples per class: max |t| = %.2f (%s): %s (threshold %.1f)\n",
		o->mode, l->n, o->samples, fabs(l->c[worst].res.max_t), l->c[worst].neg.name,
		nleak ? "LEAK DETECTED" : "no leak detected", DUDECT_THRESHOLD);
}

/* The runs that are not the plain test say so in their heading. */
static const char *variant(const struct opts *o)
{
	static char buf[96];

	if (o->aa)
		snprintf(buf, sizeof(buf), "; NULL TEST: class B drawn from class A's blobs");
	else if (o->inject)
		snprintf(buf, sizeof(buf), "; POSITIVE CONTROL: %u-turn loop injected on bad padding",
			 o->inject);
	else if (o->strict)
		snprintf(buf, sizeof(buf), "; --strict: class B answers UNWRAP_FAILED");
	else if (o->expect_failed)
		snprintf(buf, sizeof(buf), "; class B answers UNWRAP_FAILED (no implicit rejection)");
	else
		buf[0] = '\0';
	return buf;
}

static void print_table(FILE *out, const struct opts *o, const struct class_list *l)
{
	int md = o->fmt == FMT_MD;
	const char *row = md ? "| %s | %zu | %.2f | %s | %s | %s | %" PRId64 " | %" PRId64 " | %.1f |\n"
			     : "%-24s %8zu %7.2f  %-16s  %-10s %-8s %10" PRId64 " %10" PRId64 " %9.1f\n";
	char at[32];

	fprintf(out, "%stiming %s%s%s: class A = valid blobs, class B = the class named; "
		"samples per class; times in %s; seed %" PRIu64 "%s\n%s", md ? "" : "# ", o->mode,
		o->key ? " --key " : "", o->key ? o->key : "", unit_of(o), o->seed, variant(o),
		md ? "\n" : "");
	if (md)
		fprintf(out, "| class | samples | max\\|t\\| | verdict | at | ALG_ID | median A | median B | resolution |\n"
			"|---|---:|---:|---|---|---|---:|---:|---:|\n");
	else
		fprintf(out, "%-24s %8s %7s  %-16s  %-10s %-8s %10s %10s %9s\n", "class", "samples",
			"max|t|", "verdict", "at", "ALG_ID", "median A", "median B", "resol.");
	for (size_t i = 0; i < l->n; i++) {
		const struct tclass *tc = &l->c[i];

		fprintf(out, row, tc->neg.name, tc->res.n[1], fabs(tc->res.max_t),
			leaks(tc) ? "LEAK" : "no leak detected", dudect_test_name(&tc->res, at, sizeof(at)),
			alg_short(tc->alg), tc->res.median[0], tc->res.median[1], tc->res.resolution);
	}
	if (md)
		fprintf(out, "\n");
	print_summary(out, o, l);
}

static void print_json(FILE *out, const struct opts *o, const struct class_list *l)
{
	char at[32];

	fprintf(out, "{\"mode\": \"%s\", \"key\": \"%s\", \"unit\": \"%s\", \"samples_per_class\": %zu, "
		"\"seed\": %" PRIu64 ", \"threshold\": %.1f, \"inject_leak\": %u, \"strict\": %s, "
		"\"expect_failed\": %s, \"classes\": [\n", o->mode, o->key ? o->key : VECTOR_KEY,
		unit_of(o), o->samples, o->seed, DUDECT_THRESHOLD, o->inject,
		o->strict ? "true" : "false", o->expect_failed ? "true" : "false");
	for (size_t i = 0; i < l->n; i++) {
		const struct tclass *tc = &l->c[i];

		fprintf(out, "  {\"class\": \"%s\", \"alg\": \"%s\", \"control\": %s, \"samples\": [%zu, %zu], "
			"\"max_abs_t\": %.3f, \"t\": %.3f, \"test\": \"%s\", \"leak\": %s, "
			"\"mean\": [%.2f, %.2f], \"median\": [%" PRId64 ", %" PRId64 "], "
			"\"resolution\": %.2f, \"seconds\": %.1f}%s\n",
			tc->neg.name, tc->alg->name, tc->control ? "true" : "false", tc->res.n[0],
			tc->res.n[1], fabs(tc->res.max_t), tc->res.max_t,
			dudect_test_name(&tc->res, at, sizeof(at)), leaks(tc) ? "true" : "false",
			tc->res.mean[0], tc->res.mean[1], tc->res.median[0], tc->res.median[1],
			tc->res.resolution, tc->seconds,
			i + 1 < l->n ? "," : "");
	}
	fprintf(out, "]}\n");
}

static int append_markdown(const struct opts *o, const struct class_list *l)
{
	struct opts md = *o;
	FILE *fp = fopen(o->md_file, "a");

	if (fp == NULL) {
		fprintf(stderr, "timing: %s: %s\n", o->md_file, strerror(errno));
		return -1;
	}
	md.fmt = FMT_MD;
	print_table(fp, &md, l);
	return fclose(fp) == 0 ? 0 : -1;
}

/* --- arguments --- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: timing inproc [--samples N] [--inject-leak N] [options]\n"
		"       timing socket --socket PATH --key NAME [--samples N] [--strict | --expect-failed]\n"
		"                     [options]\n"
		"options: --vectors DIR (default $KT_VECTORS or the source tree's), --valid N (valid\n"
		"blobs in class A, default 8), --seed S, --json | --markdown, --append-markdown FILE\n"
		"(the table in markdown, also), --dump PREFIX (raw samples to PREFIX-MODE-CLASS.txt),\n"
		"--class NAME (that comparison only), --null (class B drawn from class A's blobs:\n"
		"an A/A test, whose |t| shows this machine's noise floor).\n"
		"N is per class (defaults: inproc %d, socket %d). --inject-leak N adds a deliberate\n"
		"N-turn loop on bad padding (a positive control). --strict (sends KT_STRICT) and\n"
		"--expect-failed (a key with rsa_mechanism = pkcs): class B answers UNWRAP_FAILED,\n"
		"a comparison that shows what a visible failure costs. Exit 0: no leak detected,\n"
		"2: a class above |t| = %.1f, 1: error.\n", INPROC_DEFAULT, SOCKET_DEFAULT,
		DUDECT_THRESHOLD);
}

static int parse_size(const char *s, size_t min, size_t max, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || *s == '-' || v < min || v > max) {
		fprintf(stderr, "timing: %s: expected a number from %zu to %zu\n", s, min, max);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

/* The options that only keep their argument. */
static const char **string_opt(int ch, struct opts *o)
{
	switch (ch) {
	case 's':
		return &o->socket;
	case 'k':
		return &o->key;
	case 'v':
		return &o->vectors;
	case 'd':
		return &o->dump;
	case 'M':
		return &o->md_file;
	case 'c':
		return &o->only;
	}
	return NULL;
}

/* The options without an argument. 0, or -1 for any other. */
static int flag_opt(int ch, struct opts *o)
{
	switch (ch) {
	case 'a':
		o->aa = 1;
		return 0;
	case 't':
		o->strict = 1;
		o->expect_failed = 1;
		return 0;
	case 'F':
		o->expect_failed = 1;
		return 0;
	case 'j':
		o->fmt = FMT_JSON;
		return 0;
	case 'm':
		o->fmt = FMT_MD;
		return 0;
	case 'h':
		usage(stdout);
		exit(0);
	}
	return -1;
}

static int parse_opt(int ch, struct opts *o, int *seeded)
{
	const char **str = string_opt(ch, o);
	size_t v;

	if (str != NULL) {
		*str = optarg;
		return 0;
	}
	switch (ch) {
	case 'n':
		return parse_size(optarg, 1000, 100000000, &o->samples);
	case 'V':
		return parse_size(optarg, 1, MAX_VALID, &o->nvalid);
	case 'S':
		*seeded = 1;
		if (parse_size(optarg, 0, SIZE_MAX, &v) != 0)
			return -1;
		o->seed = v;
		return 0;
	case 'i':
		if (parse_size(optarg, 0, 1000000, &v) != 0)
			return -1;
		o->inject = (unsigned)v;
		return 0;
	}
	if (flag_opt(ch, o) == 0)
		return 0;
	usage(stderr);
	return -1;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "samples", required_argument, NULL, 'n' }, { "socket", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' }, { "vectors", required_argument, NULL, 'v' },
		{ "valid", required_argument, NULL, 'V' }, { "seed", required_argument, NULL, 'S' },
		{ "inject-leak", required_argument, NULL, 'i' }, { "json", no_argument, NULL, 'j' },
		{ "markdown", no_argument, NULL, 'm' }, { "dump", required_argument, NULL, 'd' },
		{ "append-markdown", required_argument, NULL, 'M' }, { "strict", no_argument, NULL, 't' },
		{ "expect-failed", no_argument, NULL, 'F' }, { "class", required_argument, NULL, 'c' },
		{ "null", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, seeded = 0;

	memset(o, 0, sizeof(*o));
	o->nvalid = 8;
	o->vectors = getenv("KT_VECTORS") ? getenv("KT_VECTORS") : KT_VECTORS_DIR;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1)
		if (parse_opt(ch, o, &seeded) != 0)
			return -1;
	if (optind + 1 != argc || (strcmp(argv[optind], "inproc") != 0 &&
				   strcmp(argv[optind], "socket") != 0)) {
		usage(stderr);
		return -1;
	}
	o->mode = argv[optind];
	if (strcmp(o->mode, "socket") == 0 ? o->socket == NULL || o->key == NULL || o->inject
					     : o->socket || o->key || o->expect_failed) {
		fprintf(stderr, "timing: socket needs --socket and --key; --inject-leak is for inproc, "
			"--socket, --key, --strict and --expect-failed for socket\n");
		return -1;
	}
	if (o->samples == 0)
		o->samples = strcmp(o->mode, "inproc") == 0 ? INPROC_DEFAULT : SOCKET_DEFAULT;
	if (!seeded && getrandom(&o->seed, sizeof(o->seed), 0) != sizeof(o->seed))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct class_list l = { 0 };
	struct opts o;
	EVP_PKEY *pub = NULL;
	int rc = 1;

	if (parse_args(argc, argv, &o) != 0)
		return 1;
	rng_state = o.seed;
	pub = read_key(o.vectors, VECTOR_KEY ".pub.pem", 0);
	if (pub == NULL || build_classes(&o, pub, &l) != 0)
		goto done;
	if (l.n == 0) {
		fprintf(stderr, "timing: no class %s\n", o.only);
		goto done;
	}
	if ((strcmp(o.mode, "inproc") == 0 ? run_inproc(&o, &l) : run_socket(&o, &l)) != 0)
		goto done;
	if (o.fmt == FMT_JSON)
		print_json(stdout, &o, &l);
	else
		print_table(stdout, &o, &l);
	if (o.md_file != NULL && append_markdown(&o, &l) != 0)
		goto done;
	rc = 0;
	for (size_t i = 0; i < l.n; i++)
		if (leaks(&l.c[i]))
			rc = 2;
done:
	EVP_PKEY_free(pub);
	free(l.c);
	return rc;
}
