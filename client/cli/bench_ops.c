/*
 * keytrans bench: what each operation sends and how its answer is checked.
 * Every answer is checked against what was prepared, so that a fast wrong
 * answer counts as an error: unwraps of blobs the daemon wrapped from known
 * keys, COPP and OPM openings of signatures made from known parameters, the
 * structure of every wrap and signature, and a sealed session's OMACs
 * against the ones computed here with the AES key it was opened with.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "mac.h"

#define CALG_AES_128 0x660e

static const char *const op_names[B_OPS] = {
	[B_UNWRAP] = "unwrap", [B_UNWRAP_OAEP] = "unwrap-oaep", [B_WRAP] = "wrap",
	[B_WRAP_GENERATE] = "wrap-generate", [B_COPP_SIGN] = "copp-sign",
	[B_COPP_OPEN] = "copp-open", [B_PUBKEY] = "pubkey", [B_OPM_SIGN] = "opm-sign",
	[B_OPM_OPEN] = "opm-open", [B_SESSION_MAC] = "session-mac",
	[B_SESSION_VERIFY] = "session-verify",
};

const char *bench_op_name(enum bench_op op)
{
	return op_names[op];
}

int bench_op_parse(const char *name, enum bench_op *op)
{
	for (int i = 0; i < B_OPS; i++)
		if (strcasecmp(name, op_names[i]) == 0) {
			*op = (enum bench_op)i;
			return 0;
		}
	return -1;
}

static int padding_of(const struct bench_cfg *cfg)
{
	return cfg->op == B_UNWRAP_OAEP ? KT_PAD_OAEP : KT_PAD_PKCS1;
}

/* The recipient of request seq: the HSM key, the --to file, or one of its variants in turn. */
static void set_recipient(const struct bench_cfg *cfg, uint64_t seq, const char **to_key,
			  const uint8_t **to_pub, size_t *to_pub_len)
{
	*to_key = cfg->to_pub ? NULL : cfg->key;
	*to_pub = cfg->to_pub;
	*to_pub_len = cfg->to_pub_len;
	if (cfg->variants != NULL) {
		*to_pub = cfg->variants->p[seq % cfg->variants->n];
		*to_pub_len = cfg->variants->len[seq % cfg->variants->n];
	}
}

/* Wraps the prepared keys under the bench key: the blobs the unwrap bench sends. */
static int prepare_blobs(kt_conn *c, const struct bench_cfg *cfg, struct bench_fixture *fx)
{
	for (size_t i = 0; i < BENCH_CASES; i++) {
		struct kt_wrap_args a = { .alg_id = cfg->alg_id, .key = fx->keys[i].key,
					  .key_len = fx->keys[i].len, .to_key = cfg->key,
					  .padding = padding_of(cfg) };
		struct kt_wrapped w;
		int st = kt_wrap(c, &a, &w);

		if (st != KT_OK)
			return st;
		memcpy(fx->blobs[i], w.blob, w.blob_len);
		fx->blob_len[i] = w.blob_len;
	}
	fx->k = fx->blob_len[0] - 12;
	return KT_OK;
}

/* COPP signatures, or OPM parameter arrays, of random parameters for the bench key. */
static int prepare_signatures(kt_conn *c, const struct bench_cfg *cfg, struct bench_fixture *fx,
			      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct kt_copp_sign_args a = { .to_key = cfg->key };
		int st;

		RAND_bytes(a.random, sizeof(a.random));
		st = cfg->op == B_COPP_OPEN ? kt_copp_sign(c, &a, &fx->copp[i])
					    : kt_opm_sign(c, &a, &fx->copp[i]);
		if (st != KT_OK)
			return st;
	}
	return KT_OK;
}

/* AES-CMAC (OMAC-1): the answers the daemon's must equal. */
static int cmac(const uint8_t key[16], const uint8_t *p, size_t n, uint8_t tag[KT_OMAC_LEN])
{
	EVP_MAC_CTX *ctx = omac1_ctx_new();
	int ok = omac1(ctx, key, p, n, tag) == 0;

	EVP_MAC_CTX_free(ctx);
	return ok ? KT_OK : KT_ERR_NOMEM;
}

/*
 * A sealed OPM session on the bench key, and messages with their OMACs made
 * here from the AES key opm-sign chose (the caller of opm-sign knows it).
 */
static int prepare_session(kt_conn *c, const struct bench_cfg *cfg, struct bench_fixture *fx)
{
	struct kt_sealed s;
	int st = prepare_signatures(c, cfg, fx, 1);

	if (st == KT_OK)
		st = kt_opm_open_sealed(c, cfg->key, fx->copp[0].signature, fx->copp[0].random, &s);
	if (st != KT_OK)
		return st;
	fx->sealed = 1;
	memcpy(fx->session, s.session, sizeof(fx->session));
	fx->seq.next_status_seq = s.status_seq;
	fx->seq.next_command_seq = s.command_seq;
	RAND_bytes(&fx->data[0][0], sizeof(fx->data));
	for (size_t i = 0; i < BENCH_CASES && st == KT_OK; i++)
		st = cmac(fx->copp[0].aes_key, fx->data[i], BENCH_DATA, fx->omac[i]);
	OPENSSL_cleanse(fx->copp[0].aes_key, sizeof(fx->copp[0].aes_key));
	return st;
}

void bench_finish(kt_conn *c, struct bench_fixture *fx)
{
	if (fx->sealed)
		kt_session_close(c, fx->session);
	fx->sealed = 0;
}

/* The recipient's modulus length, from its PUBLICKEYBLOB (bitlen at offset 12). */
static int prepare_modulus(kt_conn *c, const struct bench_cfg *cfg, struct bench_fixture *fx)
{
	struct kt_item it = { .op = KT_OP_WRAP };
	struct kt_wrapped *w = &it.out.wrap;
	int st;

	/* One wrap tells the blob length, whatever form the recipient takes. */
	it.in.wrap.alg_id = cfg->alg_id;
	set_recipient(cfg, 0, &it.in.wrap.to_key, &it.in.wrap.to_pub, &it.in.wrap.to_pub_len);
	it.in.wrap.key = fx->keys[0].key;
	it.in.wrap.key_len = fx->keys[0].len;
	st = kt_wrap(c, &it.in.wrap, w);
	if (st == KT_OK)
		fx->k = w->blob_len - 12;
	return st;
}

int bench_prepare(kt_conn *c, const struct bench_cfg *cfg, struct bench_fixture *fx, char *err,
		  size_t errlen)
{
	size_t len = cfg->alg_id == CALG_AES_128 ? 16 : 32;
	int st = KT_OK;
	uint8_t *out;
	size_t n;

	for (size_t i = 0; i < BENCH_CASES; i++) {
		fx->keys[i].alg_id = cfg->alg_id;
		fx->keys[i].len = len;
		RAND_bytes(fx->keys[i].key, (int)len);
	}
	switch (cfg->op) {
	case B_UNWRAP:
	case B_UNWRAP_OAEP:
		st = prepare_blobs(c, cfg, fx);
		break;
	case B_COPP_OPEN:
	case B_OPM_OPEN:
		st = prepare_signatures(c, cfg, fx, BENCH_CASES);
		break;
	case B_SESSION_MAC:
	case B_SESSION_VERIFY:
		st = prepare_session(c, cfg, fx);
		break;
	case B_WRAP:
	case B_WRAP_GENERATE:
		st = prepare_modulus(c, cfg, fx);
		break;
	case B_COPP_SIGN:
	case B_OPM_SIGN:
		/* A COPP or OPM key is 2048-bit (the daemon refuses others); a driver's XML chain cannot be wrapped to. */
		fx->k = KT_COPP_KEY_BLOB_LEN - 20;
		break;
	case B_PUBKEY:
		st = kt_pubkey(c, cfg->key, KT_FMT_BLOB, &out, &n);
		if (st == KT_OK && n <= sizeof(fx->pubkey)) {
			memcpy(fx->pubkey, out, n);
			fx->pubkey_len = n;
		}
		if (st == KT_OK)
			kt_free(out);
		break;
	case B_OPS:
		break;
	}
	if (st != KT_OK)
		snprintf(err, errlen, "preparing the %s bench: %s", bench_op_name(cfg->op),
			 kt_errmsg(c));
	return st;
}

void bench_fill(const struct bench_cfg *cfg, const struct bench_fixture *fx, uint64_t seq,
		struct kt_item *it)
{
	size_t i = seq % BENCH_CASES;

	memset(&it->in, 0, sizeof(it->in));
	switch (cfg->op) {
	case B_UNWRAP:
	case B_UNWRAP_OAEP:
		it->op = KT_OP_UNWRAP;
		it->in.unwrap.name = cfg->key;
		it->in.unwrap.blob = fx->blobs[i];
		it->in.unwrap.blob_len = fx->blob_len[i];
		it->in.unwrap.padding = padding_of(cfg) | (cfg->strict ? KT_STRICT : 0);
		break;
	case B_WRAP:
	case B_WRAP_GENERATE:
		it->op = KT_OP_WRAP;
		it->in.wrap.alg_id = cfg->alg_id;
		set_recipient(cfg, seq, &it->in.wrap.to_key, &it->in.wrap.to_pub,
			      &it->in.wrap.to_pub_len);
		if (cfg->op == B_WRAP) {
			it->in.wrap.key = fx->keys[i].key;
			it->in.wrap.key_len = fx->keys[i].len;
		}
		break;
	case B_COPP_SIGN:
	case B_OPM_SIGN:
		it->op = cfg->op == B_COPP_SIGN ? KT_OP_COPP_SIGN : KT_OP_OPM_SIGN;
		set_recipient(cfg, seq, &it->in.copp_sign.to_key, &it->in.copp_sign.to_pub,
			      &it->in.copp_sign.to_pub_len);
		memcpy(it->in.copp_sign.random, fx->keys[i].key, sizeof(it->in.copp_sign.random));
		break;
	case B_COPP_OPEN:
	case B_OPM_OPEN:
		it->op = cfg->op == B_COPP_OPEN ? KT_OP_COPP_OPEN : KT_OP_OPM_OPEN;
		it->in.copp_open.name = cfg->key;
		it->in.copp_open.sig = fx->copp[i].signature;
		it->in.copp_open.expect_random = fx->copp[i].random;
		it->in.copp_open.flags = cfg->strict ? KT_STRICT : 0;
		break;
	case B_SESSION_MAC:
	case B_SESSION_VERIFY:
		/* KIND none: connections in parallel cannot keep one sequence in order. */
		it->op = cfg->op == B_SESSION_MAC ? KT_OP_SESSION_MAC : KT_OP_SESSION_VERIFY;
		it->in.session.session = fx->session;
		it->in.session.data = fx->data[i];
		it->in.session.len = BENCH_DATA;
		it->in.session.omac = cfg->op == B_SESSION_VERIFY ? fx->omac[i] : NULL;
		break;
	case B_PUBKEY:
	case B_OPS:
		it->op = KT_OP_PUBKEY_BLOB;
		it->in.pubkey.name = cfg->key;
		break;
	}
}

/* A SIMPLEBLOB for the bench's ALG_ID and recipient: header and length. */
static int blob_ok(const struct bench_cfg *cfg, const struct bench_fixture *fx,
		   const struct kt_wrapped *w)
{
	const uint8_t want[12] = { 0x01, 0x02, 0, 0, (uint8_t)cfg->alg_id, (uint8_t)(cfg->alg_id >> 8),
				   (uint8_t)(cfg->alg_id >> 16), (uint8_t)(cfg->alg_id >> 24),
				   0x00, 0xa4, 0, 0 };

	return w->blob_len == 12 + fx->k && memcmp(w->blob, want, sizeof(want)) == 0;
}

int bench_check(const struct bench_cfg *cfg, const struct bench_fixture *fx, uint64_t seq,
		const struct kt_item *it, char *why, size_t whylen)
{
	size_t i = seq % BENCH_CASES;
	const char *bad = NULL;

	switch (cfg->op) {
	case B_UNWRAP:
	case B_UNWRAP_OAEP:
		if (it->out.unwrap.len != fx->keys[i].len ||
		    memcmp(it->out.unwrap.key, fx->keys[i].key, fx->keys[i].len) != 0)
			bad = "unwrap returned another key than was wrapped";
		break;
	case B_WRAP:
	case B_WRAP_GENERATE:
		if (!blob_ok(cfg, fx, &it->out.wrap))
			bad = "wrap returned a malformed SIMPLEBLOB";
		else if (cfg->op == B_WRAP_GENERATE && it->out.wrap.key.len != fx->keys[0].len)
			bad = "wrap --generate returned a key of the wrong length";
		break;
	case B_COPP_SIGN:
	case B_OPM_SIGN:
		if (memcmp(it->out.copp.random, fx->keys[i].key, 16) != 0)
			bad = "the answer echoed another random number";
		break;
	case B_COPP_OPEN:
	case B_OPM_OPEN:
		if (memcmp(it->out.copp.aes_key, fx->copp[i].aes_key, 16) != 0 ||
		    it->out.copp.status_seq != fx->copp[i].status_seq ||
		    it->out.copp.command_seq != fx->copp[i].command_seq)
			bad = "the opening returned other parameters than were signed";
		break;
	case B_SESSION_MAC:
		if (it->out.blob.len != KT_OMAC_LEN ||
		    memcmp(it->out.blob.b, fx->omac[i], KT_OMAC_LEN) != 0)
			bad = "session-mac returned another OMAC than AES-CMAC gives";
		break;
	case B_SESSION_VERIFY:
		if (it->out.seq.next_status_seq != fx->seq.next_status_seq ||
		    it->out.seq.next_command_seq != fx->seq.next_command_seq)
			bad = "session-verify moved a sequence number with KIND none";
		break;
	case B_PUBKEY:
	case B_OPS:
		if (it->out.blob.len != fx->pubkey_len ||
		    memcmp(it->out.blob.b, fx->pubkey, fx->pubkey_len) != 0)
			bad = "pubkey returned another key";
		break;
	}
	if (bad == NULL)
		return 0;
	snprintf(why, whylen, "%s", bad);
	return -1;
}
