/* One function per operation, on top of the request table. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Submits one item, then waits for its id. */
static int run_item_once(kt_conn *c, struct kt_item *it, const struct deadline *dl)
{
	struct pending *p;
	uint32_t id;
	int st;

	st = conn_ensure(c);
	if (st != KT_OK)
		return it->status = st;
	st = item_submit(c, it, dl, &id);
	if (st != KT_OK)
		return st;
	st = conn_wait(c, &(struct want){ .id = id }, dl, &p);
	if (st != KT_OK) {
		p = pending_find(c, id);
		if (p != NULL)
			pending_abandon(c, p, st);
		return st;
	}
	conn_collect(c, p);
	return it->status;
}

/*
 * 0 for an item that must not be sent twice: a sealed open (a second session)
 * and a verify that checks a sequence number (the first may have advanced it).
 */
static int item_retryable(const struct kt_item *it)
{
	switch (it->op) {
	case KT_OP_COPP_OPEN:
	case KT_OP_OPM_OPEN:
		return !(it->in.copp_open.flags & KT_SEAL);
	case KT_OP_SESSION_VERIFY:
		return it->in.session.kind == KT_KIND_NONE;
	}
	return 1;
}

/* Runs one item to completion, once more on a new connection if it was lost. */
static int run_item(kt_conn *c, struct kt_item *it)
{
	struct deadline dl;
	int st;

	deadline_start(&dl, c->timeout_ms);
	st = run_item_once(c, it, &dl);
	if (item_retryable(it) && conn_may_retry(c, st) && deadline_left(&dl) != 0 &&
	    conn_reopen(c) == KT_OK)
		st = run_item_once(c, it, &dl);
	return st;
}

/* A request's arguments, for the calls that are not items. */
struct call_args {
	const char *name;
	int format;                     /* pubkey */
	unsigned bits;                  /* keygen */
	uint64_t exponent;
	const uint8_t *key;             /* import */
	size_t key_len;
	const uint8_t *session;         /* session-close */
};

static size_t encode(kt_conn *c, uint8_t op, uint32_t id, const struct call_args *a)
{
	switch (op) {
	case WIRE_OP_PUBKEY:
		return req_pubkey(c, id, a->name, a->format);
	case WIRE_OP_KEYGEN:
		return req_keygen(c, id, a->name, a->bits, a->exponent);
	case WIRE_OP_IMPORT:
		return req_import(c, id, a->name, a->key, a->key_len);
	case WIRE_OP_SESSION_CLOSE:
		return req_session_close(c, id, a->session);
	}
	return req_simple(c, op, id);
}

/* Sends one request that is not an item and lends the answer's fields. */
static int call_once(kt_conn *c, uint8_t op, const struct call_args *a, const struct deadline *dl,
		     struct frame *f, struct wire_fields *m, uint32_t *id)
{
	size_t len;
	int st;

	*id = 0;
	st = conn_ensure(c);
	if (st != KT_OK)
		return st;
	*id = pending_add(c, op, NULL);
	if (*id == 0)
		return conn_err(c, KT_ERR_NOMEM, "out of memory");
	len = encode(c, op, *id, a);
	if (len == 0) {
		conn_call_end(c, *id);
		return KT_ERR_ARG;
	}
	st = conn_call(c, *id, len, dl, f);
	if (st == KT_OK)
		st = resp_parse(f, op, m, c->err, sizeof(c->err));
	return st;
}

/*
 * call_once, and once more on a new connection if it was lost (run_item);
 * never keygen and import, which change the token: a lost answer does not
 * say whether the key was made; nor session-close, whose second answer would
 * be UNKNOWN_SESSION.
 */
static int call(kt_conn *c, uint8_t op, const struct call_args *a, struct frame *f,
		struct wire_fields *m, uint32_t *id)
{
	int idempotent = op != WIRE_OP_KEYGEN && op != WIRE_OP_IMPORT &&
			 op != WIRE_OP_SESSION_CLOSE;
	struct deadline dl;
	int st;

	deadline_start(&dl, c->timeout_ms);
	st = call_once(c, op, a, &dl, f, m, id);
	if (st == KT_OK)
		return st;
	conn_call_end(c, *id);
	*id = 0;
	if (idempotent && conn_may_retry(c, st) && deadline_left(&dl) != 0 &&
	    conn_reopen(c) == KT_OK)
		st = call_once(c, op, a, &dl, f, m, id);
	return st;
}

int kt_info(kt_conn *c, struct kt_info *out)
{
	struct wire_fields m;
	struct frame f;
	uint32_t id = 0;
	int st;

	if (c == NULL || out == NULL)
		return KT_ERR_ARG;
	memset(out, 0, sizeof(*out));
	st = call(c, WIRE_OP_INFO, &(struct call_args){ 0 }, &f, &m, &id);
	if (st == KT_OK)
		st = resp_info(&m, out, c->err, sizeof(c->err));
	if (st == KT_OK)
		st = resp_hsms(f.body, f.body_len, out->hsms, &out->nhsms, c->err, sizeof(c->err));
	conn_call_end(c, id);
	return st;
}

/* One stats answer into out and the counter groups that are not NULL. */
static int stats_call(kt_conn *c, struct kt_stats *out, struct kt_recipient_stats *rec,
		      struct kt_session_stats *sess)
{
	struct wire_fields m;
	struct frame f;
	uint32_t id = 0;
	int st;

	memset(out, 0, sizeof(*out));
	if (rec != NULL)
		memset(rec, 0, sizeof(*rec));
	if (sess != NULL)
		memset(sess, 0, sizeof(*sess));
	st = call(c, WIRE_OP_STATS, &(struct call_args){ 0 }, &f, &m, &id);
	if (st == KT_OK)
		st = resp_stats(&m, f.body, f.body_len, out, c->err, sizeof(c->err));
	if (st == KT_OK && rec != NULL)
		st = resp_recipients(&m, rec, c->err, sizeof(c->err));
	if (st == KT_OK && sess != NULL)
		st = resp_sessions(&m, sess, c->err, sizeof(c->err));
	conn_call_end(c, id);
	return st;
}

int kt_stats(kt_conn *c, struct kt_stats *out)
{
	if (c == NULL || out == NULL)
		return KT_ERR_ARG;
	return stats_call(c, out, NULL, NULL);
}

int kt_stats_recipients(kt_conn *c, struct kt_stats *out, struct kt_recipient_stats *rec)
{
	if (c == NULL || out == NULL || rec == NULL)
		return KT_ERR_ARG;
	return stats_call(c, out, rec, NULL);
}

int kt_stats_sessions(kt_conn *c, struct kt_stats *out, struct kt_recipient_stats *rec,
		      struct kt_session_stats *sess)
{
	if (c == NULL || out == NULL || sess == NULL)
		return KT_ERR_ARG;
	return stats_call(c, out, rec, sess);
}

int kt_keys(kt_conn *c, struct kt_key **keys, size_t *n)
{
	struct wire_fields m;
	struct frame f;
	uint32_t id = 0;
	int st;

	if (c == NULL || keys == NULL || n == NULL)
		return KT_ERR_ARG;
	*keys = NULL;
	*n = 0;
	st = call(c, WIRE_OP_KEYS, &(struct call_args){ 0 }, &f, &m, &id);
	if (st == KT_OK)
		st = resp_keys(&f, keys, n, c->err, sizeof(c->err));
	conn_call_end(c, id);
	return st;
}

static int copy_out(kt_conn *c, const uint8_t *p, size_t len, uint8_t **out, size_t *outlen)
{
	*out = malloc(len + 1);
	if (*out == NULL)
		return conn_err(c, KT_ERR_NOMEM, "out of memory");
	memcpy(*out, p, len);
	(*out)[len] = '\0';
	*outlen = len;
	return KT_OK;
}

int kt_pubkey(kt_conn *c, const char *name, int format, uint8_t **out, size_t *len)
{
	struct wire_fields m;
	struct frame f;
	const uint8_t *p;
	size_t n;
	uint32_t id = 0;
	int st;

	if (c == NULL || out == NULL || len == NULL)
		return KT_ERR_ARG;
	*out = NULL;
	*len = 0;
	st = call(c, WIRE_OP_PUBKEY, &(struct call_args){ .name = name, .format = format }, &f, &m, &id);
	if (st == KT_OK)
		st = resp_pubkey(&m, format, &p, &n, c->err, sizeof(c->err));
	if (st == KT_OK)
		st = copy_out(c, p, n, out, len);
	conn_call_end(c, id);
	return st;
}

/* keygen and import: the new key's answer. */
static int new_key(kt_conn *c, uint8_t op, const struct call_args *a, struct kt_new_key *out)
{
	struct wire_fields m;
	struct frame f;
	uint32_t id = 0;
	int st;

	if (c == NULL || out == NULL)
		return KT_ERR_ARG;
	memset(out, 0, sizeof(*out));
	st = call(c, op, a, &f, &m, &id);
	if (st == KT_OK)
		st = resp_new_key(&m, a->name, out, c->err, sizeof(c->err));
	conn_call_end(c, id);
	return st;
}

int kt_keygen(kt_conn *c, const char *name, unsigned bits, uint64_t exponent,
	      struct kt_new_key *out)
{
	return new_key(c, WIRE_OP_KEYGEN,
		       &(struct call_args){ .name = name, .bits = bits, .exponent = exponent }, out);
}

int kt_import(kt_conn *c, const char *name, const uint8_t *key, size_t key_len,
	      struct kt_new_key *out)
{
	return new_key(c, WIRE_OP_IMPORT,
		       &(struct call_args){ .name = name, .key = key, .key_len = key_len }, out);
}

int kt_unwrap(kt_conn *c, const char *name, const uint8_t *blob, size_t blob_len, int padding,
	      struct kt_session_key *out)
{
	struct kt_item it = { .op = KT_OP_UNWRAP };
	int st;

	if (c == NULL || out == NULL)
		return KT_ERR_ARG;
	it.in.unwrap.name = name;
	it.in.unwrap.blob = blob;
	it.in.unwrap.blob_len = blob_len;
	it.in.unwrap.padding = padding;
	st = run_item(c, &it);
	if (st == KT_OK)
		*out = it.out.unwrap;
	wipe(&it, sizeof(it));
	return st;
}

int kt_wrap(kt_conn *c, const struct kt_wrap_args *a, struct kt_wrapped *out)
{
	struct kt_item it = { .op = KT_OP_WRAP };
	int st;

	if (c == NULL || a == NULL || out == NULL)
		return KT_ERR_ARG;
	it.in.wrap = *a;
	st = run_item(c, &it);
	if (st == KT_OK)
		*out = it.out.wrap;
	wipe(&it, sizeof(it));
	return st;
}

/* copp-sign and opm-sign. */
static int sign_item(kt_conn *c, int kind, const struct kt_copp_sign_args *a, struct kt_copp *out)
{
	struct kt_item it = { .op = kind };
	int st;

	if (c == NULL || a == NULL || out == NULL)
		return KT_ERR_ARG;
	it.in.copp_sign = *a;
	st = run_item(c, &it);
	if (st == KT_OK)
		*out = it.out.copp;
	wipe(&it, sizeof(it));
	return st;
}

int kt_copp_sign(kt_conn *c, const struct kt_copp_sign_args *a, struct kt_copp *out)
{
	return sign_item(c, KT_OP_COPP_SIGN, a, out);
}

int kt_opm_sign(kt_conn *c, const struct kt_copp_sign_args *a, struct kt_copp *out)
{
	return sign_item(c, KT_OP_OPM_SIGN, a, out);
}

/*
 * copp-open and opm-open: out is a struct kt_sealed with KT_SEAL in flags,
 * else a struct kt_copp.
 */
static int open_call(kt_conn *c, int kind, const char *name, const uint8_t sig[256],
		     const uint8_t *expect_random, unsigned flags, void *out)
{
	struct kt_item it = { .op = kind };
	int st;

	if (c == NULL || out == NULL)
		return KT_ERR_ARG;
	it.in.copp_open.name = name;
	it.in.copp_open.sig = sig;
	it.in.copp_open.expect_random = expect_random;
	it.in.copp_open.flags = flags;
	st = run_item(c, &it);
	if (st == KT_OK && (flags & KT_SEAL))
		memcpy(out, &it.out.sealed, sizeof(it.out.sealed));
	else if (st == KT_OK)
		memcpy(out, &it.out.copp, sizeof(it.out.copp));
	wipe(&it, sizeof(it));
	return st;
}

int kt_copp_open(kt_conn *c, const char *name, const uint8_t sig[256],
		 const uint8_t *expect_random, struct kt_copp *out)
{
	return kt_copp_open_ex(c, name, sig, expect_random, 0, out);
}

int kt_copp_open_ex(kt_conn *c, const char *name, const uint8_t sig[256],
		    const uint8_t *expect_random, unsigned flags, struct kt_copp *out)
{
	if (flags & KT_SEAL)
		return KT_ERR_ARG;      /* kt_copp_open_sealed */
	return open_call(c, KT_OP_COPP_OPEN, name, sig, expect_random, flags, out);
}

int kt_opm_open(kt_conn *c, const char *name, const uint8_t sig[256],
		const uint8_t *expect_random, unsigned flags, struct kt_copp *out)
{
	if (flags & KT_SEAL)
		return KT_ERR_ARG;      /* kt_opm_open_sealed */
	return open_call(c, KT_OP_OPM_OPEN, name, sig, expect_random, flags, out);
}

int kt_copp_open_sealed(kt_conn *c, const char *name, const uint8_t sig[256],
			const uint8_t *expect_random, unsigned flags, struct kt_sealed *out)
{
	return open_call(c, KT_OP_COPP_OPEN, name, sig, expect_random, flags | KT_SEAL, out);
}

int kt_opm_open_sealed(kt_conn *c, const char *name, const uint8_t sig[256],
		       const uint8_t *expect_random, struct kt_sealed *out)
{
	return open_call(c, KT_OP_OPM_OPEN, name, sig, expect_random, KT_SEAL, out);
}

/* session-mac and session-verify as one item. */
static int session_item(kt_conn *c, int kind, const uint8_t *session, const uint8_t *data,
			size_t len, const uint8_t *omac, int msg_kind, struct kt_item *it)
{
	memset(it, 0, sizeof(*it));
	it->op = kind;
	it->in.session.session = session;
	it->in.session.data = data;
	it->in.session.len = len;
	it->in.session.omac = omac;
	it->in.session.kind = msg_kind;
	return run_item(c, it);
}

int kt_session_mac(kt_conn *c, const uint8_t session[KT_SESSION_LEN], const uint8_t *data,
		   size_t len, uint8_t omac[KT_OMAC_LEN])
{
	struct kt_item it;
	int st;

	if (c == NULL || omac == NULL)
		return KT_ERR_ARG;
	st = session_item(c, KT_OP_SESSION_MAC, session, data, len, NULL, KT_KIND_NONE, &it);
	if (st == KT_OK)
		memcpy(omac, it.out.blob.b, KT_OMAC_LEN);
	wipe(&it, sizeof(it));
	return st;
}

int kt_session_verify(kt_conn *c, const uint8_t session[KT_SESSION_LEN], const uint8_t *data,
		      size_t len, const uint8_t *omac, int kind, struct kt_session_seq *next)
{
	struct kt_item it;
	int st;

	if (c == NULL)
		return KT_ERR_ARG;
	st = session_item(c, KT_OP_SESSION_VERIFY, session, data, len, omac, kind, &it);
	if (st == KT_OK && next != NULL)
		*next = it.out.seq;
	wipe(&it, sizeof(it));
	return st;
}

int kt_session_close(kt_conn *c, const uint8_t session[KT_SESSION_LEN])
{
	struct wire_fields m;
	struct frame f;
	uint32_t id = 0;
	int st;

	if (c == NULL)
		return KT_ERR_ARG;
	st = call(c, WIRE_OP_SESSION_CLOSE, &(struct call_args){ .session = session }, &f, &m, &id);
	conn_call_end(c, id);
	return st;
}
