/*
 * Conformance runner, C side: reads the cases of a case file (format in
 * cases.txt), runs each through libkeytrans and prints one normalized result
 * line per case. run_py.py does the same with client/python/keytrans.py;
 * test_conformance.py requires the two outputs to be identical.
 *
 *     run_c CASEFILE        (the shared connection goes to $KEYTRANS_SOCKET)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alg.h"        /* alg_by_name: the spellings the CLI accepts */
#include "hex.h"
#include "keytrans.h"

#define MAX_KV 32
#define MAX_ITEMS 1024

struct kv {
	char *k, *v;
};

struct kase {
	char *line;             /* owns the strings below */
	char *id, *op;
	struct kv kv[MAX_KV];
	int n;
};

/* Inputs of one case, decoded; the buffers stay alive until the case is printed. */
struct in {
	uint8_t *blob, *key, *pub, *rnd, *aes, *sig, *expect;
	size_t blob_len, key_len, pub_len, rnd_len, aes_len, sig_len, expect_len;
	int has_key;
};

static kt_conn *shared;

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "run_c: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static const char *get(const struct kase *k, const char *key)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->kv[i].k, key) == 0)
			return k->kv[i].v;
	return NULL;
}

static long num(const struct kase *k, const char *key, long dflt)
{
	const char *v = get(k, key);
	char *end;
	long x;

	if (v == NULL)
		return dflt;
	errno = 0;
	x = strtol(v, &end, 0);
	if (*v == '\0' || *end != '\0' || errno != 0)
		die("%s: bad number %s=%s", k->id, key, v);
	return x;
}

/* A bytes value: hex, "-" (empty) or "@FILE". */
static uint8_t *bytes_of(const struct kase *k, const char *v, size_t *len)
{
	uint8_t *p;
	long n;

	if (v[0] == '@') {
		FILE *f = fopen(v + 1, "rb");

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0)
			die("%s: cannot read %s", k->id, v + 1);
		rewind(f);
		p = malloc((size_t)n + 1);
		if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n)
			die("%s: cannot read %s", k->id, v + 1);
		fclose(f);
		*len = (size_t)n;
		return p;
	}
	if (strcmp(v, "-") == 0)
		v = "";
	p = malloc(strlen(v) / 2 + 1);
	n = p != NULL ? hex_decode(v, p, strlen(v) / 2) : -1;
	if (n < 0)
		die("%s: bad hex %s", k->id, v);
	*len = (size_t)n;
	return p;
}

static uint8_t *opt_bytes(const struct kase *k, const char *key, size_t *len)
{
	const char *v = get(k, key);

	*len = 0;
	return v != NULL ? bytes_of(k, v, len) : NULL;
}

static void decode_inputs(const struct kase *k, struct in *in)
{
	memset(in, 0, sizeof(*in));
	in->blob = opt_bytes(k, "blob", &in->blob_len);
	in->key = opt_bytes(k, "key", &in->key_len);
	in->has_key = in->key != NULL;
	in->pub = opt_bytes(k, "pub", &in->pub_len);
	in->rnd = opt_bytes(k, "random", &in->rnd_len);
	in->aes = opt_bytes(k, "aes", &in->aes_len);
	in->sig = opt_bytes(k, "sig", &in->sig_len);
	in->expect = opt_bytes(k, "expect_random", &in->expect_len);
	if ((in->rnd && in->rnd_len != 16) || (in->aes && in->aes_len != 16) ||
	    (in->expect && in->expect_len != 16) || (in->sig && in->sig_len != 256))
		die("%s: random, aes and expect_random are 16 bytes, sig 256", k->id);
}

static void free_inputs(struct in *in)
{
	free(in->blob);
	free(in->key);
	free(in->pub);
	free(in->rnd);
	free(in->aes);
	free(in->sig);
	free(in->expect);
}

/* --- output: the format run_py.py prints too --- */

static void put_hex(const char *label, const uint8_t *p, size_t n)
{
	printf(" %s=", label);
	if (n == 0)
		printf("-");
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static void put_str(const char *label, const char *s)
{
	printf(" %s=\"", label);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			putchar(*p);
		else
			printf("\\x%02x", *p);
	}
	putchar('"');
}

static void put_status(const char *id, int st)
{
	printf("%s %s", id, kt_status_name(st));
}

static void put_error(const char *msg)
{
	put_str("msg", msg);
}

static void end_line(void)
{
	putchar('\n');
	fflush(stdout);
}

/* --- operations --- */

static int padding_of(const struct kase *k)
{
	return (int)num(k, "pad", 0) | (num(k, "strict", 0) ? KT_STRICT : 0);
}

static int format_of(const struct kase *k)
{
	const char *f = get(k, "fmt");

	if (f == NULL || strcmp(f, "blob") == 0)
		return KT_FMT_BLOB;
	if (strcmp(f, "pem") == 0)
		return KT_FMT_PEM;
	if (strcmp(f, "der") == 0)
		return KT_FMT_DER;
	return (int)num(k, "fmt", 0);
}

static void fill_wrap(const struct kase *k, const struct in *in, struct kt_wrap_args *a)
{
	memset(a, 0, sizeof(*a));
	a->alg_id = (uint32_t)num(k, "alg", 0);
	a->key = in->key;
	a->key_len = in->key_len;
	a->gen_bits = (unsigned)num(k, "bits", 0);
	a->to_key = get(k, "to");
	a->to_pub = in->pub;
	a->to_pub_len = in->pub_len;
	a->padding = (int)num(k, "pad", 0);
}

static void fill_copp_sign(const struct kase *k, const struct in *in, struct kt_copp_sign_args *a)
{
	memset(a, 0, sizeof(*a));
	a->to_key = get(k, "to");
	a->to_pub = in->pub;
	a->to_pub_len = in->pub_len;
	if (in->rnd == NULL)
		die("%s: copp-sign needs random=", k->id);
	memcpy(a->random, in->rnd, 16);
	if (in->aes != NULL) {
		a->flags |= KT_COPP_AES_KEY;
		memcpy(a->aes_key, in->aes, 16);
	}
	if (get(k, "sseq") != NULL) {
		a->flags |= KT_COPP_STATUS_SEQ;
		a->status_seq = (uint32_t)num(k, "sseq", 0);
	}
	if (get(k, "cseq") != NULL) {
		a->flags |= KT_COPP_COMMAND_SEQ;
		a->command_seq = (uint32_t)num(k, "cseq", 0);
	}
}

static void put_copp(const struct kt_copp *o)
{
	put_hex("random", o->random, 16);
	put_hex("aes", o->aes_key, 16);
	printf(" sseq=%lu cseq=%lu", (unsigned long)o->status_seq, (unsigned long)o->command_seq);
}

/* A wrap's randomized blob: its structure, and that check= unwraps it to the key. */
static void put_wrapped(kt_conn *c, const struct kase *k, const struct kt_wrapped *w)
{
	const char *check = get(k, "check");

	printf(" blob_len=%zu", w->blob_len);
	put_hex("header", w->blob, w->blob_len < 12 ? w->blob_len : 12);
	printf(" generated=%d alg=0x%lx key_len=%zu", w->generated, (unsigned long)w->key.alg_id,
	       w->key.len);
	if (!w->generated)
		put_hex("key", w->key.key, w->key.len);
	if (check != NULL) {
		struct kt_session_key s;
		int st = kt_unwrap(c, check, w->blob, w->blob_len, (int)num(k, "pad", 0), &s);

		if (st != KT_OK)
			printf(" check=%s", kt_status_name(st));
		else
			printf(" check=%s", s.alg_id == w->key.alg_id && s.len == w->key.len &&
			       memcmp(s.key, w->key.key, s.len) == 0 ? "ok" : "differs");
	}
}

/* A COPP signature is randomized: given values, and that check= opens it to the same. */
static void put_signed(kt_conn *c, const struct kase *k, const struct kt_copp_sign_args *a,
		       const struct kt_copp *o)
{
	const char *check = get(k, "check");

	printf(" sig_len=256");
	put_hex("random", o->random, 16);
	if (a->flags & KT_COPP_AES_KEY)
		put_hex("aes", o->aes_key, 16);
	if (a->flags & KT_COPP_STATUS_SEQ)
		printf(" sseq=%lu", (unsigned long)o->status_seq);
	if (a->flags & KT_COPP_COMMAND_SEQ)
		printf(" cseq=%lu", (unsigned long)o->command_seq);
	if (check != NULL) {
		struct kt_copp back;
		int st = kt_copp_open(c, check, o->signature, o->random, &back);

		if (st != KT_OK)
			printf(" check=%s", kt_status_name(st));
		else
			printf(" check=%s", memcmp(back.aes_key, o->aes_key, 16) == 0 &&
			       back.status_seq == o->status_seq &&
			       back.command_seq == o->command_seq ? "ok" : "differs");
	}
}

static void put_pubkey(const uint8_t *p, size_t n)
{
	printf(" len=%zu", n);
	put_hex("data", p, n);
}

static int run_info(kt_conn *c, const struct kase *k)
{
	struct kt_info i;
	int st = kt_info(c, &i);

	put_status(k->id, st);
	if (st == KT_OK) {
		put_str("version", i.version);
		put_str("token", i.token_label);
		printf(" keys=%lu workers=%lu", (unsigned long)i.key_count,
		       (unsigned long)i.worker_count);
		put_str("notice", i.notice);
		for (size_t h = 0; h < i.nhsms; h++) {
			printf(" [");
			put_str("hsm", i.hsms[h].name);
			put_str("token", i.hsms[h].token_label);
			put_str("state", i.hsms[h].state);
			printf(" in_flight=%lu faults=%llu", (unsigned long)i.hsms[h].in_flight,
			       (unsigned long long)i.hsms[h].faults);
			put_str("last_error", i.hsms[h].last_error);
			printf(" ]");
		}
	} else {
		put_error(kt_errmsg(c));
	}
	return st;
}

static int run_keys(kt_conn *c, const struct kase *k)
{
	struct kt_key *keys;
	size_t n;
	int st = kt_keys(c, &keys, &n);

	put_status(k->id, st);
	if (st != KT_OK) {
		put_error(kt_errmsg(c));
		return st;
	}
	printf(" count=%zu", n);
	for (size_t i = 0; i < n; i++) {
		printf(" [");
		put_str("name", keys[i].name);
		put_str("label", keys[i].label);
		put_hex("id", keys[i].id, keys[i].id_len);
		printf(" bits=%lu exp=%llu", (unsigned long)keys[i].bits,
		       (unsigned long long)keys[i].exponent);
		put_str("mech", keys[i].mechanism);
		printf(" ]");
	}
	kt_free(keys);
	return st;
}

static int run_pubkey(kt_conn *c, const struct kase *k)
{
	uint8_t *p;
	size_t n;
	int st = kt_pubkey(c, get(k, "name"), format_of(k), &p, &n);

	put_status(k->id, st);
	if (st == KT_OK)
		put_pubkey(p, n);
	else
		put_error(kt_errmsg(c));
	kt_free(p);
	return st;
}

static int run_unwrap(kt_conn *c, const struct kase *k, const struct in *in)
{
	struct kt_session_key s;
	int st = kt_unwrap(c, get(k, "name"), in->blob, in->blob_len, padding_of(k), &s);

	put_status(k->id, st);
	if (st == KT_OK) {
		printf(" alg=0x%lx", (unsigned long)s.alg_id);
		put_hex("key", s.key, s.len);
	} else {
		put_error(kt_errmsg(c));
	}
	return st;
}

static int run_wrap(kt_conn *c, const struct kase *k, const struct in *in)
{
	struct kt_wrap_args a;
	struct kt_wrapped w;
	int st;

	fill_wrap(k, in, &a);
	st = kt_wrap(c, &a, &w);
	put_status(k->id, st);
	if (st == KT_OK)
		put_wrapped(c, k, &w);
	else
		put_error(kt_errmsg(c));
	return st;
}

static int run_copp_sign(kt_conn *c, const struct kase *k, const struct in *in)
{
	struct kt_copp_sign_args a;
	struct kt_copp o;
	int st;

	fill_copp_sign(k, in, &a);
	st = kt_copp_sign(c, &a, &o);
	put_status(k->id, st);
	if (st == KT_OK)
		put_signed(c, k, &a, &o);
	else
		put_error(kt_errmsg(c));
	return st;
}

static int run_copp_open(kt_conn *c, const struct kase *k, const struct in *in)
{
	struct kt_copp o;
	int st;

	if (in->sig == NULL)
		die("%s: copp-open needs sig=", k->id);
	st = kt_copp_open_ex(c, get(k, "name"), in->sig, in->expect,
			     num(k, "strict", 0) ? KT_STRICT : 0, &o);
	put_status(k->id, st);
	if (st == KT_OK)
		put_copp(&o);
	else
		put_error(kt_errmsg(c));
	return st;
}

static void run_alg(const struct kase *k)
{
	const char *s = get(k, "spelling");
	const struct alg_info *a = alg_by_name(s != NULL ? s : "");

	printf("%s alg", k->id);
	if (a != NULL)
		printf(" id=0x%lx", (unsigned long)a->id);
	else
		printf(" id=none");
}

/* Runs one case on c and prints its line; returns its status. */
static int run_one(kt_conn *c, const struct kase *k)
{
	struct in in;
	int st = KT_OK;

	decode_inputs(k, &in);
	if (strcmp(k->op, "info") == 0)
		st = run_info(c, k);
	else if (strcmp(k->op, "keys") == 0)
		st = run_keys(c, k);
	else if (strcmp(k->op, "pubkey") == 0)
		st = run_pubkey(c, k);
	else if (strcmp(k->op, "unwrap") == 0)
		st = run_unwrap(c, k, &in);
	else if (strcmp(k->op, "wrap") == 0)
		st = run_wrap(c, k, &in);
	else if (strcmp(k->op, "copp-sign") == 0)
		st = run_copp_sign(c, k, &in);
	else if (strcmp(k->op, "copp-open") == 0)
		st = run_copp_open(c, k, &in);
	else
		die("%s: unknown operation %s", k->id, k->op);
	free_inputs(&in);
	end_line();
	return st;
}

/* --- pipelining: items between batch-begin and batch-end --- */

struct batch {
	struct kase begin;
	struct kase items[MAX_ITEMS];
	struct in in[MAX_ITEMS];
	struct kt_item it[MAX_ITEMS];
	size_t n;
};

static void fill_item(const struct kase *k, const struct in *in, struct kt_item *it)
{
	memset(it, 0, sizeof(*it));
	if (strcmp(k->op, "unwrap") == 0) {
		it->op = KT_OP_UNWRAP;
		it->in.unwrap.name = get(k, "name");
		it->in.unwrap.blob = in->blob;
		it->in.unwrap.blob_len = in->blob_len;
		it->in.unwrap.padding = padding_of(k);
	} else if (strcmp(k->op, "wrap") == 0) {
		it->op = KT_OP_WRAP;
		fill_wrap(k, in, &it->in.wrap);
	} else if (strcmp(k->op, "copp-sign") == 0) {
		it->op = KT_OP_COPP_SIGN;
		fill_copp_sign(k, in, &it->in.copp_sign);
	} else if (strcmp(k->op, "copp-open") == 0) {
		it->op = KT_OP_COPP_OPEN;
		it->in.copp_open.name = get(k, "name");
		it->in.copp_open.sig = in->sig;
		it->in.copp_open.expect_random = in->expect;
		it->in.copp_open.flags = num(k, "strict", 0) ? KT_STRICT : 0;
		if (in->sig == NULL)
			die("%s: copp-open needs sig=", k->id);
	} else if (strcmp(k->op, "pubkey") == 0) {
		if (format_of(k) != KT_FMT_BLOB)
			die("%s: a batch takes pubkey fmt=blob only", k->id);
		it->op = KT_OP_PUBKEY_BLOB;
		it->in.pubkey.name = get(k, "name");
	} else {
		die("%s: %s cannot be batched", k->id, k->op);
	}
}

static void put_item(kt_conn *c, const struct kase *k, const struct kt_item *it, const char *msg)
{
	put_status(k->id, it->status);
	if (it->status != KT_OK) {
		if (msg != NULL)
			put_error(msg);
		return;
	}
	switch (it->op) {
	case KT_OP_UNWRAP:
		printf(" alg=0x%lx", (unsigned long)it->out.unwrap.alg_id);
		put_hex("key", it->out.unwrap.key, it->out.unwrap.len);
		break;
	case KT_OP_WRAP:
		put_wrapped(c, k, &it->out.wrap);
		break;
	case KT_OP_COPP_SIGN:
		put_signed(c, k, &it->in.copp_sign, &it->out.copp);
		break;
	case KT_OP_COPP_OPEN:
		put_copp(&it->out.copp);
		break;
	case KT_OP_PUBKEY_BLOB:
		put_pubkey(it->out.blob.b, it->out.blob.len);
		break;
	}
}

/*
 * kt_submit / kt_complete with up to depth in flight, keeping each failed
 * item's message; a connection failure ends it as kt_batch would: what is
 * unfinished gets the failure's status and message.
 */
static int run_submit(kt_conn *c, struct batch *b, unsigned depth, char **msgs)
{
	size_t next = 0, running = 0;
	char *done_flag = calloc(b->n + 1, 1);
	int st = KT_OK;

	if (done_flag == NULL)
		die("out of memory");
	if (depth == 0)
		depth = 32;
	while (next < b->n || running > 0) {
		struct kt_item *done;

		while (st == KT_OK && next < b->n && running < depth) {
			int s = kt_submit(c, &b->it[next]);

			if (s == KT_OK) {
				running++;
			} else {
				msgs[next] = strdup(kt_errmsg(c));
				done_flag[next] = 1;
				if (s != KT_ERR_ARG && s != KT_ERR_NOMEM)
					st = s;
			}
			next++;
		}
		if (st != KT_OK || running == 0)
			break;
		st = kt_complete(c, &done);
		if (st != KT_OK)
			break;
		running--;
		done_flag[done - b->it] = 1;
		if (done->status != KT_OK)
			msgs[done - b->it] = strdup(kt_errmsg(c));
	}
	if (st != KT_OK) {
		kt_close(c);    /* nothing stays in flight; kt_errmsg still tells why */
		for (size_t i = 0; i < b->n; i++) {
			if (done_flag[i])
				continue;
			b->it[i].status = st;
			msgs[i] = strdup(kt_errmsg(c));
		}
	}
	free(done_flag);
	return st;
}

/*
 * mode=batch: kt_batch (which keeps no per-item message: none is printed);
 * mode=submit: kt_submit / kt_complete up to depth in flight, with messages.
 */
static int run_batch(kt_conn *c, struct batch *b)
{
	const struct kase *k = &b->begin;
	const char *mode = get(k, "mode");
	unsigned depth = (unsigned)num(k, "depth", 0);
	char **msgs = calloc(b->n + 1, sizeof(*msgs));
	int st = KT_OK;

	if (msgs == NULL)
		die("out of memory");
	for (size_t i = 0; i < b->n; i++) {
		decode_inputs(&b->items[i], &b->in[i]);
		fill_item(&b->items[i], &b->in[i], &b->it[i]);
		b->it[i].user = &msgs[i];
	}
	if (mode == NULL || strcmp(mode, "batch") == 0) {
		st = kt_batch(c, b->it, b->n, depth);
	} else if (strcmp(mode, "submit") == 0) {
		st = run_submit(c, b, depth, msgs);
	} else {
		die("%s: unknown batch mode %s", k->id, mode);
	}
	for (size_t i = 0; i < b->n; i++) {
		put_item(c, &b->items[i], &b->it[i], msgs[i]);
		end_line();
		free(msgs[i]);
		free_inputs(&b->in[i]);
	}
	put_status(k->id, st);
	if (st != KT_OK)
		put_error(kt_errmsg(c));
	end_line();
	free(msgs);
	return st;
}

/* --- the case file --- */

static int parse_line(char *line, struct kase *k)
{
	char *save = NULL, *tok;

	memset(k, 0, sizeof(*k));
	k->line = line;
	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '#' || strspn(line, " \t") == strlen(line))
		return 0;
	k->id = strtok_r(line, " \t", &save);
	k->op = strtok_r(NULL, " \t", &save);
	if (k->op == NULL)
		die("line without an operation: %s", k->id);
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		char *eq = strchr(tok, '=');

		if (eq == NULL || k->n == MAX_KV)
			die("%s: bad argument %s", k->id, tok);
		*eq = '\0';
		k->kv[k->n].k = tok;
		k->kv[k->n].v = eq + 1;
		k->n++;
	}
	return 1;
}

/* The connection for a case: its own for socket=, else the shared one. */
static kt_conn *conn_for(const struct kase *k, int *own)
{
	const char *path = get(k, "socket");
	kt_conn *c = shared;

	*own = path != NULL;
	if (*own) {
		c = kt_conn_new();
		if (c == NULL)
			die("out of memory");
	}
	kt_set_timeout(c, (int)num(k, "timeout", KT_DEFAULT_TIMEOUT_MS));
	if (*own) {
		int st = kt_connect(c, path);

		if (st != KT_OK) {
			put_status(k->id, st);
			put_error(kt_errmsg(c));
			end_line();
			kt_conn_free(c);
			return NULL;
		}
	}
	return c;
}

static void done_with(kt_conn *c, int own, int fatal)
{
	if (own) {
		kt_conn_free(c);
		return;
	}
	kt_set_timeout(c, KT_DEFAULT_TIMEOUT_MS);
	if (fatal && kt_connect(c, NULL) != KT_OK)
		die("cannot reconnect: %s", kt_errmsg(c));
}

static int fatal_status(int st)
{
	return st == KT_ERR_IO || st == KT_ERR_PROTOCOL || st == KT_ERR_TIMEOUT;
}

int main(int argc, char **argv)
{
	static struct batch b;
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int in_batch = 0;

	if (argc != 2)
		die("usage: run_c CASEFILE");
	f = fopen(argv[1], "r");
	if (f == NULL)
		die("%s: %s", argv[1], strerror(errno));
	shared = kt_conn_new();
	if (shared == NULL || kt_connect(shared, NULL) != KT_OK)
		die("cannot connect: %s", shared ? kt_errmsg(shared) : "out of memory");
	while (getline(&line, &cap, f) > 0) {
		struct kase k;
		kt_conn *c;
		int own, repeat, st = KT_OK;

		if (!parse_line(strdup(line), &k)) {
			free(k.line);
			continue;
		}
		if (strcmp(k.op, "batch-begin") == 0) {
			b.begin = k;
			b.n = 0;
			in_batch = 1;
			continue;
		}
		if (in_batch && strcmp(k.op, "batch-end") != 0) {
			if (b.n == MAX_ITEMS)
				die("%s: too many items", k.id);
			b.items[b.n++] = k;
			continue;
		}
		if (in_batch) {
			in_batch = 0;
			free(k.line);
			c = conn_for(&b.begin, &own);
			if (c != NULL)
				done_with(c, own, fatal_status(run_batch(c, &b)));
			for (size_t i = 0; i < b.n; i++)
				free(b.items[i].line);
			free(b.begin.line);
			continue;
		}
		if (strcmp(k.op, "alg") == 0) {
			run_alg(&k);
			end_line();
			free(k.line);
			continue;
		}
		c = conn_for(&k, &own);
		if (c == NULL) {
			free(k.line);
			continue;
		}
		repeat = (int)num(&k, "repeat", 1);
		if (strcmp(k.op, "connect") == 0) {
			put_status(k.id, KT_OK);
			end_line();
		} else {
			/* repeat=N: the same call N times on the one connection (ids suffixed #i). */
			char *id = k.id;

			for (int i = 1; i <= repeat; i++) {
				char sub[256];

				if (repeat > 1) {
					snprintf(sub, sizeof(sub), "%s#%d", id, i);
					k.id = sub;
				}
				st = run_one(c, &k);
			}
			k.id = id;
		}
		/* A case that may have broken the shared connection: reconnect for the next one. */
		done_with(c, own, fatal_status(st));
		free(k.line);
	}
	free(line);
	fclose(f);
	kt_conn_free(shared);
	return 0;
}
