/*
 * Request encoding, one function per operation, into the connection's send
 * buffer with wire.c. Arguments are checked here so that a bad call fails
 * with KT_ERR_ARG before anything is sent.
 */
#include "internal.h"

#include <string.h>

#define PUBLIC_KEY_MAX 60000    /* the PUBLIC_KEY field's maximum in wire.h */

static size_t arg_error(kt_conn *c, const char *what)
{
	conn_err(c, KT_ERR_ARG, "%s", what);
	return 0;
}

static void begin(kt_conn *c, struct buf_writer *w, uint8_t op, uint32_t id)
{
	buf_writer_init(w, c->tx, WIRE_FRAME_MAX);
	wire_begin(w, op, 0, id);
}

static size_t finish(kt_conn *c, struct buf_writer *w)
{
	if (wire_end(w) != 0) {
		wipe(c->tx, WIRE_FRAME_MAX);
		return arg_error(c, "request does not fit in a frame");
	}
	return w->len;
}

static int name_ok(const char *name)
{
	return name != NULL && name[0] != '\0' && strlen(name) <= KT_NAME_MAX;
}

static int padding_ok(int padding)
{
	return padding == KT_PAD_PKCS1 || padding == KT_PAD_OAEP;
}

/* KT_STRICT and KT_SEAL as the protocol's FLAGS field. */
static void put_flags(struct buf_writer *w, unsigned flags)
{
	uint32_t v = ((flags & KT_STRICT) ? WIRE_FLAG_STRICT : 0) | (flags & KT_SEAL);

	if (v != 0)
		wire_put_u32(w, WIRE_T_FLAGS, v);
}

/* Puts NAME or PUBLIC_KEY; NULL when fine, else what is wrong. */
static const char *put_recipient(struct buf_writer *w, const char *to_key,
				 const uint8_t *to_pub, size_t to_pub_len)
{
	if ((to_key == NULL) == (to_pub == NULL))
		return "give exactly one recipient: a key name or a public key";
	if (to_key != NULL) {
		if (!name_ok(to_key))
			return "key name must be 1 to 64 bytes";
		wire_put_str(w, WIRE_T_NAME, to_key);
		return NULL;
	}
	if (to_pub_len == 0 || to_pub_len > PUBLIC_KEY_MAX)
		return "public key must be 1 to 60000 bytes";
	wire_put_bytes(w, WIRE_T_PUBLIC_KEY, to_pub, to_pub_len);
	return NULL;
}

size_t req_simple(kt_conn *c, uint8_t op, uint32_t id)
{
	struct buf_writer w;

	begin(c, &w, op, id);
	return finish(c, &w);
}

size_t req_pubkey(kt_conn *c, uint32_t id, const char *name, int format)
{
	struct buf_writer w;

	if (!name_ok(name))
		return arg_error(c, "key name must be 1 to 64 bytes");
	if (format != KT_FMT_BLOB && format != KT_FMT_PEM && format != KT_FMT_DER &&
	    format != KT_FMT_CNG)
		return arg_error(c, "unknown public key format");
	begin(c, &w, WIRE_OP_PUBKEY, id);
	wire_put_str(&w, WIRE_T_NAME, name);
	wire_put_u8(&w, WIRE_T_FORMAT, (uint8_t)format);
	return finish(c, &w);
}

static size_t req_unwrap(kt_conn *c, uint32_t id, const struct kt_item *it)
{
	struct buf_writer w;

	if (!name_ok(it->in.unwrap.name))
		return arg_error(c, "key name must be 1 to 64 bytes");
	/* An empty blob goes to the daemon, whose answer (BLOB_LENGTH) says exactly what is wrong. */
	if ((it->in.unwrap.blob == NULL && it->in.unwrap.blob_len != 0) ||
	    it->in.unwrap.blob_len > SIMPLEBLOB_MAX)
		return arg_error(c, "SIMPLEBLOB must be at most 2060 bytes");
	if (!padding_ok(it->in.unwrap.padding & ~KT_STRICT))
		return arg_error(c, "unknown padding");
	begin(c, &w, WIRE_OP_UNWRAP, id);
	wire_put_str(&w, WIRE_T_NAME, it->in.unwrap.name);
	wire_put_bytes(&w, WIRE_T_BLOB, it->in.unwrap.blob, it->in.unwrap.blob_len);
	wire_put_u8(&w, WIRE_T_PADDING, (uint8_t)(it->in.unwrap.padding & ~KT_STRICT));
	put_flags(&w, (unsigned)it->in.unwrap.padding);
	return finish(c, &w);
}

static const char *put_wrap_key(struct buf_writer *w, const struct kt_wrap_args *a)
{
	if (a->key == NULL) {
		if (a->gen_bits != 0)
			wire_put_u32(w, WIRE_T_KEY_BITS, a->gen_bits);
		return NULL;
	}
	if (a->gen_bits != 0)
		return "gen_bits is only for a generated key";
	if (a->key_len == 0 || a->key_len > KT_KEY_MAX)
		return "session key must be 1 to 32 bytes";
	wire_put_bytes(w, WIRE_T_SESSION_KEY, a->key, a->key_len);
	return NULL;
}

static size_t req_wrap(kt_conn *c, uint32_t id, const struct kt_wrap_args *a)
{
	struct buf_writer w;
	const char *bad;

	if (!padding_ok(a->padding))
		return arg_error(c, "unknown padding");
	begin(c, &w, WIRE_OP_WRAP, id);
	wire_put_u32(&w, WIRE_T_ALG_ID, a->alg_id);
	bad = put_wrap_key(&w, a);
	if (bad == NULL)
		bad = put_recipient(&w, a->to_key, a->to_pub, a->to_pub_len);
	if (bad != NULL) {
		wipe(c->tx, w.len);
		return arg_error(c, bad);
	}
	wire_put_u8(&w, WIRE_T_PADDING, (uint8_t)a->padding);
	return finish(c, &w);
}

/* copp-sign and opm-sign: the same fields, only the operation differs. */
static size_t req_copp_sign(kt_conn *c, uint32_t id, uint8_t op, const struct kt_copp_sign_args *a)
{
	const unsigned all = KT_COPP_AES_KEY | KT_COPP_STATUS_SEQ | KT_COPP_COMMAND_SEQ;
	uint8_t blob[KT_COPP_KEY_BLOB_LEN];
	const uint8_t *pub = a->to_pub;
	size_t pub_len = a->to_pub_len;
	struct buf_writer w;
	const char *bad;
	int st;

	if (a->flags & ~all)
		return arg_error(c, "unknown COPP flags");
	/* A driver's XML certificate chain becomes its leaf's key here: the daemon reads no XML. */
	if (a->to_key == NULL && pub != NULL && kt_is_xml(pub, pub_len)) {
		st = conn_copp_cert_key(c, pub, pub_len, blob);
		if (st != KT_OK) {
			c->req_status = st;
			return 0;
		}
		pub = blob;
		pub_len = sizeof(blob);
	}
	begin(c, &w, op, id);
	bad = put_recipient(&w, a->to_key, pub, pub_len);
	if (bad != NULL)
		return arg_error(c, bad);
	wire_put_bytes(&w, WIRE_T_RANDOM, a->random, sizeof(a->random));
	if (a->flags & KT_COPP_AES_KEY)
		wire_put_bytes(&w, WIRE_T_AES_KEY, a->aes_key, sizeof(a->aes_key));
	if (a->flags & KT_COPP_STATUS_SEQ)
		wire_put_u32(&w, WIRE_T_STATUS_SEQ, a->status_seq);
	if (a->flags & KT_COPP_COMMAND_SEQ)
		wire_put_u32(&w, WIRE_T_COMMAND_SEQ, a->command_seq);
	return finish(c, &w);
}

/* copp-open and opm-open; OPM has no implicit rejection, so no STRICT for it. */
static size_t req_copp_open(kt_conn *c, uint32_t id, uint8_t op, const struct kt_item *it)
{
	unsigned flags = it->in.copp_open.flags;
	struct buf_writer w;

	if (!name_ok(it->in.copp_open.name))
		return arg_error(c, "key name must be 1 to 64 bytes");
	if (it->in.copp_open.sig == NULL)
		return arg_error(c, "no signature given");
	if (flags & ~(unsigned)(KT_STRICT | KT_SEAL))
		return arg_error(c, "unknown flags");
	if (op == WIRE_OP_OPM_OPEN)
		flags &= ~(unsigned)KT_STRICT;
	begin(c, &w, op, id);
	wire_put_str(&w, WIRE_T_NAME, it->in.copp_open.name);
	wire_put_bytes(&w, WIRE_T_SIGNATURE, it->in.copp_open.sig, 256);
	if (it->in.copp_open.expect_random != NULL)
		wire_put_bytes(&w, WIRE_T_RANDOM, it->in.copp_open.expect_random, 16);
	put_flags(&w, flags);
	return finish(c, &w);
}

/* session-mac and session-verify: SESSION and DATA; verify adds OMAC (if any) and KIND. */
static size_t req_session(kt_conn *c, uint32_t id, uint8_t op, const struct kt_item *it)
{
	const uint8_t *data = it->in.session.data;
	size_t len = it->in.session.len;
	int kind = it->in.session.kind;
	struct buf_writer w;

	if (it->in.session.session == NULL)
		return arg_error(c, "no session handle given");
	if ((data == NULL && len != 0) || len > KT_SESSION_DATA_MAX)
		return arg_error(c, "data must be at most 4096 bytes");
	if (op == WIRE_OP_SESSION_VERIFY && kind != KT_KIND_NONE && kind != KT_KIND_STATUS &&
	    kind != KT_KIND_COMMAND)
		return arg_error(c, "unknown message kind");
	begin(c, &w, op, id);
	wire_put_bytes(&w, WIRE_T_SESSION, it->in.session.session, KT_SESSION_LEN);
	wire_put_bytes(&w, WIRE_T_DATA, len != 0 ? data : (const uint8_t *)"", len);
	if (op == WIRE_OP_SESSION_VERIFY && it->in.session.omac != NULL)
		wire_put_bytes(&w, WIRE_T_OMAC, it->in.session.omac, KT_OMAC_LEN);
	if (op == WIRE_OP_SESSION_VERIFY && kind != KT_KIND_NONE)
		wire_put_u8(&w, WIRE_T_KIND, (uint8_t)kind);
	return finish(c, &w);
}

size_t req_session_close(kt_conn *c, uint32_t id, const uint8_t *session)
{
	struct buf_writer w;

	if (session == NULL)
		return arg_error(c, "no session handle given");
	begin(c, &w, WIRE_OP_SESSION_CLOSE, id);
	wire_put_bytes(&w, WIRE_T_SESSION, session, KT_SESSION_LEN);
	return finish(c, &w);
}

uint8_t item_wire_op(int kind)
{
	switch (kind) {
	case KT_OP_UNWRAP:
		return WIRE_OP_UNWRAP;
	case KT_OP_WRAP:
		return WIRE_OP_WRAP;
	case KT_OP_COPP_SIGN:
		return WIRE_OP_COPP_SIGN;
	case KT_OP_COPP_OPEN:
		return WIRE_OP_COPP_OPEN;
	case KT_OP_PUBKEY_BLOB:
		return WIRE_OP_PUBKEY;
	case KT_OP_OPM_SIGN:
		return WIRE_OP_OPM_SIGN;
	case KT_OP_OPM_OPEN:
		return WIRE_OP_OPM_OPEN;
	case KT_OP_SESSION_MAC:
		return WIRE_OP_SESSION_MAC;
	case KT_OP_SESSION_VERIFY:
		return WIRE_OP_SESSION_VERIFY;
	}
	return 0;
}

size_t req_item(kt_conn *c, uint32_t id, const struct kt_item *it)
{
	switch (it->op) {
	case KT_OP_UNWRAP:
		return req_unwrap(c, id, it);
	case KT_OP_WRAP:
		return req_wrap(c, id, &it->in.wrap);
	case KT_OP_COPP_SIGN:
	case KT_OP_OPM_SIGN:
		return req_copp_sign(c, id, item_wire_op(it->op), &it->in.copp_sign);
	case KT_OP_COPP_OPEN:
	case KT_OP_OPM_OPEN:
		return req_copp_open(c, id, item_wire_op(it->op), it);
	case KT_OP_SESSION_MAC:
	case KT_OP_SESSION_VERIFY:
		return req_session(c, id, item_wire_op(it->op), it);
	case KT_OP_PUBKEY_BLOB:
		return req_pubkey(c, id, it->in.pubkey.name, KT_FMT_BLOB);
	}
	return arg_error(c, "unknown item operation");
}

size_t req_keygen(kt_conn *c, uint32_t id, const char *name, unsigned bits, uint64_t exponent)
{
	struct buf_writer w;

	if (!name_ok(name))
		return arg_error(c, "key name must be 1 to 64 bytes");
	begin(c, &w, WIRE_OP_KEYGEN, id);
	wire_put_str(&w, WIRE_T_NAME, name);
	if (bits != 0)
		wire_put_u32(&w, WIRE_T_BITS, bits);
	if (exponent != 0)
		wire_put_u64(&w, WIRE_T_EXPONENT, exponent);
	return finish(c, &w);
}

size_t req_import(kt_conn *c, uint32_t id, const char *name, const uint8_t *key, size_t len)
{
	struct buf_writer w;

	if (!name_ok(name))
		return arg_error(c, "key name must be 1 to 64 bytes");
	if (key == NULL || len == 0 || len > KT_PRIVATE_KEY_MAX)
		return arg_error(c, "private key must be 1 to 32768 bytes");
	begin(c, &w, WIRE_OP_IMPORT, id);
	wire_put_str(&w, WIRE_T_NAME, name);
	wire_put_bytes(&w, WIRE_T_PRIVATE_KEY, key, len);
	return finish(c, &w);
}
