/*
 * Response decoding, one function per operation. wire.c has already checked
 * the field lengths against the tag table; here every required field must be
 * present with the exact size the operation needs, and echoed values must
 * match the request. Anything else is KT_ERR_PROTOCOL.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIMPLEBLOB_HDR 12
#define PUBLICKEYBLOB_HDR 20

int resp_bad(char *why, size_t wl, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(why, wl, "malformed response: %s", msg);
	return KT_ERR_PROTOCOL;
}

static int missing(char *why, size_t wl, unsigned tag)
{
	return resp_bad(why, wl, "%s field missing or of the wrong size", wire_tag_name(tag));
}

/* A bytes field of exactly n bytes, copied into dst. */
static int get_exact(const struct wire_fields *m, unsigned tag, void *dst, size_t n)
{
	if (!wire_has(m, tag) || m->f[tag].len != n)
		return -1;
	memcpy(dst, m->f[tag].p, n);
	return 0;
}

int resp_parse(const struct frame *f, uint8_t op, struct wire_fields *m, char *why, size_t wl)
{
	char msg[KT_ERRMSG_MAX];

	if (f->h.op != op)
		return resp_bad(why, wl, "answer for operation %s to a %s request",
			   wire_op_name(f->h.op), wire_op_name(op));
	if (wire_parse_answer(f->body, f->body_len, m, msg, sizeof(msg)) != 0) {
		if (f->h.status != KT_OK)
			snprintf(why, wl, "%s", wire_status_text(f->h.status));
		else
			resp_bad(why, wl, "%s", msg);
		return f->h.status != KT_OK ? f->h.status : KT_ERR_PROTOCOL;
	}
	if (f->h.status == KT_OK)
		return KT_OK;
	if (wire_get_str(m, WIRE_T_MESSAGE, why, wl) != 0 || why[0] == '\0')
		snprintf(why, wl, "%s", wire_status_text(f->h.status));
	return f->h.status;
}

int resp_info(const struct wire_fields *m, struct kt_info *out, char *why, size_t wl)
{
	if (wire_get_str(m, WIRE_T_VERSION, out->version, sizeof(out->version)) != 0)
		return missing(why, wl, WIRE_T_VERSION);
	if (wire_get_str(m, WIRE_T_TOKEN_LABEL, out->token_label, sizeof(out->token_label)) != 0)
		return missing(why, wl, WIRE_T_TOKEN_LABEL);
	if (wire_get_u32(m, WIRE_T_KEY_COUNT, &out->key_count) != 0)
		return missing(why, wl, WIRE_T_KEY_COUNT);
	if (wire_get_u32(m, WIRE_T_WORKER_COUNT, &out->worker_count) != 0)
		return missing(why, wl, WIRE_T_WORKER_COUNT);
	if (wire_get_u64(m, WIRE_T_UPTIME, &out->uptime_s) != 0)
		return missing(why, wl, WIRE_T_UPTIME);
	out->notice[0] = '\0';
	if (wire_has(m, WIRE_T_NOTICE) &&
	    wire_get_str(m, WIRE_T_NOTICE, out->notice, sizeof(out->notice)) != 0)
		return missing(why, wl, WIRE_T_NOTICE);
	return KT_OK;
}

/* The HSM_ENTRY groups of an info or stats answer (body: the whole frame body). */
int resp_hsms(const uint8_t *body, size_t len, struct kt_hsm *hsms, size_t *n, char *why,
	      size_t wl)
{
	struct wire_field g;
	size_t off = 0;
	int rc;

	*n = 0;
	while ((rc = wire_next_field(body, len, &off, WIRE_T_HSM_ENTRY, &g)) == 1) {
		struct kt_hsm *h = &hsms[*n];
		struct wire_fields m;
		char msg[256];

		if (*n == KT_HSMS_MAX)
			break;
		memset(h, 0, sizeof(*h));
		if (wire_parse_answer(g.p, g.len, &m, msg, sizeof(msg)) != 0)
			return resp_bad(why, wl, "HSM entry: %s", msg);
		if (wire_get_str(&m, WIRE_T_NAME, h->name, sizeof(h->name)) != 0 ||
		    wire_get_str(&m, WIRE_T_TOKEN_LABEL, h->token_label, sizeof(h->token_label)) != 0 ||
		    wire_get_str(&m, WIRE_T_STATE, h->state, sizeof(h->state)) != 0 ||
		    wire_get_u32(&m, WIRE_T_IN_FLIGHT, &h->in_flight) != 0 ||
		    wire_get_u64(&m, WIRE_T_FAULTS, &h->faults) != 0)
			return resp_bad(why, wl, "HSM entry lacks a field");
		if (wire_has(&m, WIRE_T_LAST_ERROR))
			wire_get_str(&m, WIRE_T_LAST_ERROR, h->last_error, sizeof(h->last_error));
		++*n;
	}
	return rc < 0 ? resp_bad(why, wl, "malformed HSM entries") : KT_OK;
}

/* One KEY_ENTRY group's value. */
static int key_entry(const struct wire_field *g, struct kt_key *k, char *why, size_t wl)
{
	struct wire_fields m;
	char msg[256];

	if (wire_parse_answer(g->p, g->len, &m, msg, sizeof(msg)) != 0)
		return resp_bad(why, wl, "key entry: %s", msg);
	if (wire_get_str(&m, WIRE_T_NAME, k->name, sizeof(k->name)) != 0)
		return missing(why, wl, WIRE_T_NAME);
	if (wire_has(&m, WIRE_T_LABEL) &&
	    wire_get_str(&m, WIRE_T_LABEL, k->label, sizeof(k->label)) != 0)
		return missing(why, wl, WIRE_T_LABEL);
	if (wire_has(&m, WIRE_T_ID)) {
		k->id_len = m.f[WIRE_T_ID].len;
		memcpy(k->id, m.f[WIRE_T_ID].p, k->id_len);
	}
	if (wire_get_u32(&m, WIRE_T_BITS, &k->bits) != 0)
		return missing(why, wl, WIRE_T_BITS);
	if (wire_get_u64(&m, WIRE_T_EXPONENT, &k->exponent) != 0)
		return missing(why, wl, WIRE_T_EXPONENT);
	k->mechanism[0] = '\0';
	if (wire_has(&m, WIRE_T_MECHANISM) &&
	    wire_get_str(&m, WIRE_T_MECHANISM, k->mechanism, sizeof(k->mechanism)) != 0)
		return missing(why, wl, WIRE_T_MECHANISM);
	return KT_OK;
}

static size_t count_entries(const struct frame *f)
{
	struct wire_field g;
	size_t off = 0, n = 0;

	while (wire_next_field(f->body, f->body_len, &off, WIRE_T_KEY_ENTRY, &g) == 1)
		n++;
	return n;
}

/* The body was validated by resp_parse, so the iteration cannot fail. */
int resp_keys(const struct frame *f, struct kt_key **keys, size_t *n, char *why, size_t wl)
{
	size_t count = count_entries(f), off = 0;
	struct kt_key *k;
	struct wire_field g;

	*keys = NULL;
	*n = 0;
	if (count == 0)
		return KT_OK;
	k = calloc(count, sizeof(*k));
	if (k == NULL) {
		snprintf(why, wl, "out of memory for %zu keys", count);
		return KT_ERR_NOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		int st;

		wire_next_field(f->body, f->body_len, &off, WIRE_T_KEY_ENTRY, &g);
		st = key_entry(&g, &k[i], why, wl);
		if (st != KT_OK) {
			free(k);
			return st;
		}
	}
	*keys = k;
	*n = count;
	return KT_OK;
}

static int pubkey_looks_right(const uint8_t *p, size_t n, int format)
{
	static const char pem[] = "-----BEGIN ";

	switch (format) {
	case KT_FMT_BLOB:
		return n > PUBLICKEYBLOB_HDR && p[0] == 0x06;
	case KT_FMT_PEM:
		return n > sizeof(pem) && memcmp(p, pem, sizeof(pem) - 1) == 0;
	case KT_FMT_DER:
		return n > 2 && p[0] == 0x30;
	case KT_FMT_CNG:        /* BCRYPT_RSAKEY_BLOB header: magic "RSA1", then 5 more u32 */
		return n > 24 && memcmp(p, "RSA1", 4) == 0;
	}
	return 0;
}

int resp_pubkey(const struct wire_fields *m, int format, const uint8_t **p, size_t *n,
		char *why, size_t wl)
{
	if (!wire_has(m, WIRE_T_PUBLIC_KEY))
		return missing(why, wl, WIRE_T_PUBLIC_KEY);
	*p = m->f[WIRE_T_PUBLIC_KEY].p;
	*n = m->f[WIRE_T_PUBLIC_KEY].len;
	if (!pubkey_looks_right(*p, *n, format))
		return resp_bad(why, wl, "PUBLIC_KEY is not in the requested format");
	return KT_OK;
}

static int session_key(const struct wire_fields *m, struct kt_session_key *out, char *why, size_t wl)
{
	const struct alg_info *a;
	size_t len;

	if (wire_get_u32(m, WIRE_T_ALG_ID, &out->alg_id) != 0)
		return missing(why, wl, WIRE_T_ALG_ID);
	a = alg_by_id(out->alg_id);
	if (a == NULL)
		return resp_bad(why, wl, "unknown ALG_ID 0x%lx", (unsigned long)out->alg_id);
	if (!wire_has(m, WIRE_T_SESSION_KEY))
		return missing(why, wl, WIRE_T_SESSION_KEY);
	len = m->f[WIRE_T_SESSION_KEY].len;
	if (!alg_len_ok(a, len))
		return resp_bad(why, wl, "%zu-byte session key for %s", len, a->name);
	memcpy(out->key, m->f[WIRE_T_SESSION_KEY].p, len);
	out->len = len;
	return KT_OK;
}

/* SIMPLEBLOB header: bType 1, bVersion 2, reserved 0, aiKeyAlg, CALG_RSA_KEYX. */
static int simpleblob_ok(const uint8_t *p, size_t n, uint32_t alg_id)
{
	struct buf_reader r;
	uint8_t type, version;
	uint16_t reserved;
	uint32_t alg, wrap_alg;

	if (n <= SIMPLEBLOB_HDR || n > SIMPLEBLOB_MAX)
		return 0;
	buf_reader_init(&r, p, n);
	buf_get_u8(&r, &type);
	buf_get_u8(&r, &version);
	buf_get_u16le(&r, &reserved);
	buf_get_u32le(&r, &alg);
	buf_get_u32le(&r, &wrap_alg);
	return type == 0x01 && version == 0x02 && reserved == 0 && alg == alg_id &&
	       wrap_alg == CALG_RSA_KEYX;
}

static int resp_wrap(const struct wire_fields *m, const struct kt_wrap_args *a,
		     struct kt_wrapped *out, char *why, size_t wl)
{
	const struct wire_field *b = &m->f[WIRE_T_BLOB];
	uint32_t alg;

	if (wire_get_u32(m, WIRE_T_ALG_ID, &alg) != 0 || alg != a->alg_id)
		return resp_bad(why, wl, "ALG_ID missing or not the one requested");
	if (!b->present || !simpleblob_ok(b->p, b->len, alg))
		return resp_bad(why, wl, "BLOB missing or not a SIMPLEBLOB for the ALG_ID");
	memcpy(out->blob, b->p, b->len);
	out->blob_len = b->len;
	out->generated = a->key == NULL;
	if (!out->generated) {
		if (wire_has(m, WIRE_T_SESSION_KEY))
			return resp_bad(why, wl, "SESSION_KEY returned for a key the caller gave");
		return KT_OK;       /* out->key was filled at submission */
	}
	if (session_key(m, &out->key, why, wl) != KT_OK)
		return KT_ERR_PROTOCOL;
	if (a->gen_bits != 0 && out->key.len * 8 != a->gen_bits)
		return resp_bad(why, wl, "generated key is %zu bits, %u were asked", out->key.len * 8,
			   a->gen_bits);
	return KT_OK;
}

/* The session parameters every COPP and OPM answer carries, the AES key aside. */
static int session_params(const struct wire_fields *m, uint8_t random[16], uint32_t *status_seq,
			  uint32_t *command_seq, char *why, size_t wl)
{
	if (get_exact(m, WIRE_T_RANDOM, random, 16) != 0)
		return missing(why, wl, WIRE_T_RANDOM);
	if (wire_get_u32(m, WIRE_T_STATUS_SEQ, status_seq) != 0)
		return missing(why, wl, WIRE_T_STATUS_SEQ);
	if (wire_get_u32(m, WIRE_T_COMMAND_SEQ, command_seq) != 0)
		return missing(why, wl, WIRE_T_COMMAND_SEQ);
	return KT_OK;
}

/* The fields the unsealed COPP and OPM answers carry. */
static int copp_common(const struct wire_fields *m, struct kt_copp *out, char *why, size_t wl)
{
	if (session_params(m, out->random, &out->status_seq, &out->command_seq, why, wl) != KT_OK)
		return KT_ERR_PROTOCOL;
	if (get_exact(m, WIRE_T_AES_KEY, out->aes_key, sizeof(out->aes_key)) != 0)
		return missing(why, wl, WIRE_T_AES_KEY);
	return KT_OK;
}

static int resp_copp_sign(const struct wire_fields *m, const struct kt_copp_sign_args *a,
			  struct kt_copp *out, char *why, size_t wl)
{
	if (copp_common(m, out, why, wl) != KT_OK)
		return KT_ERR_PROTOCOL;
	if (get_exact(m, WIRE_T_SIGNATURE, out->signature, sizeof(out->signature)) != 0)
		return missing(why, wl, WIRE_T_SIGNATURE);
	if (memcmp(out->random, a->random, sizeof(a->random)) != 0 ||
	    ((a->flags & KT_COPP_AES_KEY) && memcmp(out->aes_key, a->aes_key, sizeof(a->aes_key)) != 0) ||
	    ((a->flags & KT_COPP_STATUS_SEQ) && out->status_seq != a->status_seq) ||
	    ((a->flags & KT_COPP_COMMAND_SEQ) && out->command_seq != a->command_seq))
		return resp_bad(why, wl, "returned values differ from the ones given");
	return KT_OK;
}

static int resp_copp_open(const struct wire_fields *m, const uint8_t *expect,
			  struct kt_copp *out, char *why, size_t wl)
{
	memset(out->signature, 0, sizeof(out->signature));
	if (copp_common(m, out, why, wl) != KT_OK)
		return KT_ERR_PROTOCOL;
	if (expect != NULL && memcmp(out->random, expect, sizeof(out->random)) != 0)
		return resp_bad(why, wl, "RANDOM differs from the expected one");
	return KT_OK;
}

/* A sealed open: the handle instead of the AES key, which must not come back at all. */
static int resp_sealed(const struct wire_fields *m, const uint8_t *expect, struct kt_sealed *out,
		       char *why, size_t wl)
{
	if (session_params(m, out->random, &out->status_seq, &out->command_seq, why, wl) != KT_OK)
		return KT_ERR_PROTOCOL;
	if (get_exact(m, WIRE_T_SESSION, out->session, sizeof(out->session)) != 0)
		return missing(why, wl, WIRE_T_SESSION);
	if (wire_has(m, WIRE_T_AES_KEY))
		return resp_bad(why, wl, "AES_KEY returned for a sealed session");
	if (expect != NULL && memcmp(out->random, expect, sizeof(out->random)) != 0)
		return resp_bad(why, wl, "RANDOM differs from the expected one");
	return KT_OK;
}

static int resp_open(const struct wire_fields *m, struct kt_item *it, char *why, size_t wl)
{
	const uint8_t *expect = it->in.copp_open.expect_random;

	if (it->in.copp_open.flags & KT_SEAL)
		return resp_sealed(m, expect, &it->out.sealed, why, wl);
	return resp_copp_open(m, expect, &it->out.copp, why, wl);
}

static int resp_session(const struct wire_fields *m, struct kt_item *it, char *why, size_t wl)
{
	if (it->op == KT_OP_SESSION_MAC) {
		if (get_exact(m, WIRE_T_OMAC, it->out.blob.b, KT_OMAC_LEN) != 0)
			return missing(why, wl, WIRE_T_OMAC);
		it->out.blob.len = KT_OMAC_LEN;
		return KT_OK;
	}
	if (wire_get_u32(m, WIRE_T_STATUS_SEQ, &it->out.seq.next_status_seq) != 0)
		return missing(why, wl, WIRE_T_STATUS_SEQ);
	if (wire_get_u32(m, WIRE_T_COMMAND_SEQ, &it->out.seq.next_command_seq) != 0)
		return missing(why, wl, WIRE_T_COMMAND_SEQ);
	return KT_OK;
}

static int resp_pubkey_blob(const struct wire_fields *m, struct kt_item *it, char *why, size_t wl)
{
	const uint8_t *p;
	size_t n;
	int st = resp_pubkey(m, KT_FMT_BLOB, &p, &n, why, wl);

	if (st != KT_OK)
		return st;
	if (n > sizeof(it->out.blob.b))
		return resp_bad(why, wl, "%zu-byte PUBLICKEYBLOB does not fit the item", n);
	memcpy(it->out.blob.b, p, n);
	it->out.blob.len = n;
	return KT_OK;
}

int resp_item(const struct wire_fields *m, struct kt_item *it, char *why, size_t wl)
{
	switch (it->op) {
	case KT_OP_UNWRAP:
		return session_key(m, &it->out.unwrap, why, wl);
	case KT_OP_WRAP:
		return resp_wrap(m, &it->in.wrap, &it->out.wrap, why, wl);
	case KT_OP_COPP_SIGN:
	case KT_OP_OPM_SIGN:
		return resp_copp_sign(m, &it->in.copp_sign, &it->out.copp, why, wl);
	case KT_OP_COPP_OPEN:
	case KT_OP_OPM_OPEN:
		return resp_open(m, it, why, wl);
	case KT_OP_SESSION_MAC:
	case KT_OP_SESSION_VERIFY:
		return resp_session(m, it, why, wl);
	case KT_OP_PUBKEY_BLOB:
		return resp_pubkey_blob(m, it, why, wl);
	}
	return resp_bad(why, wl, "unknown item operation");
}

int resp_new_key(const struct wire_fields *m, const char *name, struct kt_new_key *out, char *why,
		 size_t wl)
{
	const struct wire_field *id = &m->f[WIRE_T_ID], *pub = &m->f[WIRE_T_PUBLIC_KEY];

	if (wire_get_str(m, WIRE_T_NAME, out->name, sizeof(out->name)) != 0 ||
	    strcmp(out->name, name) != 0)
		return resp_bad(why, wl, "NAME missing or not the one requested");
	if (wire_get_str(m, WIRE_T_LABEL, out->label, sizeof(out->label)) != 0)
		return missing(why, wl, WIRE_T_LABEL);
	if (!id->present || id->len == 0)
		return missing(why, wl, WIRE_T_ID);
	if (wire_get_u32(m, WIRE_T_BITS, &out->bits) != 0)
		return missing(why, wl, WIRE_T_BITS);
	if (wire_get_u64(m, WIRE_T_EXPONENT, &out->exponent) != 0)
		return missing(why, wl, WIRE_T_EXPONENT);
	if (!pub->present || !pubkey_looks_right(pub->p, pub->len, KT_FMT_DER) ||
	    pub->len > sizeof(out->public_key))
		return resp_bad(why, wl, "PUBLIC_KEY missing or not a DER public key");
	memcpy(out->id, id->p, id->len);
	out->id_len = id->len;
	memcpy(out->public_key, pub->p, pub->len);
	out->public_key_len = pub->len;
	return KT_OK;
}
