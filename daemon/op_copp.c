/*
 * copp-sign (public pool): build a COPP session-start signature for a
 * driver's RSA-2048 key. copp-open (HSM pool): open one with an HSM key.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "copp.h"
#include "daemon.h"
#include "backend.h"
#include "implicit.h"
#include "job.h"
#include "keytab.h"
#include "log.h"
#include "ops.h"
#include "pkcs1.h"
#include "wire.h"
#include "worker.h"

static int key_is_2048(struct job *j)
{
	if (j->key != NULL && j->key->k != COPP_SIG_LEN) {
		job_fail(j, KT_KEY_SIZE, "COPP needs an RSA-2048 key; %s is %zu bits", j->key->name,
			 j->key->k * 8);
		return 0;
	}
	return 1;
}

static void put_params(struct job *j, const struct copp_params *p)
{
	wire_put_bytes(&j->reply, WIRE_T_RANDOM, p->random, sizeof(p->random));
	wire_put_bytes(&j->reply, WIRE_T_AES_KEY, p->aes_key, sizeof(p->aes_key));
	wire_put_u32(&j->reply, WIRE_T_STATUS_SEQ, p->status_seq);
	wire_put_u32(&j->reply, WIRE_T_COMMAND_SEQ, p->command_seq);
}

static void sign_check(struct job *j, struct daemon *d)
{
	if (req_recipient_given(j, d) != 0 || !key_is_2048(j))
		return;
	if (req_bytes(j, WIRE_T_RANDOM, COPP_RANDOM_LEN, 1) == 0)
		req_bytes(j, WIRE_T_AES_KEY, COPP_AES_LEN, 0);
}

/* Fills what the request left out from the HSM's generator. */
static int fill_params(struct job *j, struct worker *w, struct copp_params *p)
{
	uint8_t rnd[COPP_AES_LEN + 8];
	struct buf_reader r;
	int rc = 0, complete = wire_has(&j->req, WIRE_T_AES_KEY) &&
		wire_has(&j->req, WIRE_T_STATUS_SEQ) && wire_has(&j->req, WIRE_T_COMMAND_SEQ);

	memcpy(p->random, j->req.f[WIRE_T_RANDOM].p, COPP_RANDOM_LEN);
	memset(rnd, 0, sizeof(rnd));
	if (!complete) {
		j->status = backend_random(w, rnd, sizeof(rnd), j->msg, sizeof(j->msg));
		rc = j->status == KT_OK ? 0 : -1;
	}
	buf_reader_init(&r, rnd, sizeof(rnd));
	buf_get_bytes(&r, p->aes_key, COPP_AES_LEN);
	buf_get_u32be(&r, &p->status_seq);
	buf_get_u32be(&r, &p->command_seq);
	if (wire_has(&j->req, WIRE_T_AES_KEY))
		memcpy(p->aes_key, j->req.f[WIRE_T_AES_KEY].p, COPP_AES_LEN);
	wire_get_u32(&j->req, WIRE_T_STATUS_SEQ, &p->status_seq);
	wire_get_u32(&j->req, WIRE_T_COMMAND_SEQ, &p->command_seq);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return rc;
}

static void sign_run(struct job *j, struct daemon *d, struct worker *w)
{
	uint8_t sig[COPP_SIG_LEN];
	struct recipient_use to;
	struct copp_params p;

	if (req_recipient(j, d, w, RSA_PAD_PKCS1, &to) != 0)
		return;
	if (fill_params(j, w, &p) == 0) {
		j->status = copp_sign_with(to.enc, to.k, &p, sig, j->msg, sizeof(j->msg));
		if (j->status == KT_OK) {
			wire_put_bytes(&j->reply, WIRE_T_SIGNATURE, sig, sizeof(sig));
			put_params(j, &p);
		}
	}
	OPENSSL_cleanse(&p, sizeof(p));
	req_recipient_done(d, &to);
}

static int ciphertext(struct job *j, uint8_t c[COPP_SIG_LEN])
{
	j->status = copp_ciphertext(j->req.f[WIRE_T_SIGNATURE].p, j->key->n, c, j->msg, sizeof(j->msg));
	return j->status == KT_OK ? 0 : -1;
}

static void open_check(struct job *j, struct daemon *d)
{
	uint8_t c[COPP_SIG_LEN];

	if (req_key(j, d, ACL_COPP_OPEN) != 0 || !key_is_2048(j) || req_explicit_failures(j, d, 0) != 0)
		return;
	if (req_bytes(j, WIRE_T_SIGNATURE, COPP_SIG_LEN, 1) != 0 ||
	    req_bytes(j, WIRE_T_RANDOM, COPP_RANDOM_LEN, 0) != 0)
		return;
	ciphertext(j, c);
}

/* The 40-byte message, as unwrap does it: HSM, constant-time unpadding, implicit rejection. */
static int decrypt(struct job *j, struct worker *w, const uint8_t c[COPP_SIG_LEN],
		   struct unpadded *out)
{
	uint8_t em[COPP_SIG_LEN];
	struct unpadded synth;
	size_t len;
	int rc = ops_private_decrypt(j, w, 0, c, COPP_SIG_LEN, em, &len);

	out->good = 0;
	out->len = 0;
	if (rc <= 0)
		return rc;
	if (j->key->conf->mechanism == MECH_PKCS) {
		if (len == COPP_MSG_LEN) {
			memcpy(out->msg, em, COPP_MSG_LEN);
			out->len = COPP_MSG_LEN;
			out->good = ~0u;
		}
		OPENSSL_cleanse(em, sizeof(em));
		return 0;
	}
	pkcs1_unpad(em, COPP_SIG_LEN, COPP_MSG_LEN, COPP_MSG_LEN, out);
	OPENSSL_cleanse(em, sizeof(em));
	if (!(req_flags(j) & WIRE_FLAG_STRICT)) {
		if (ir_synthetic(worker_ir_mac(w), j->key->ir_key, c, COPP_SIG_LEN, COPP_MSG_LEN,
				 COPP_MSG_LEN, &synth) != 0) {
			job_fail(j, KT_INTERNAL, "cannot compute the implicit-rejection message");
			return -1;
		}
		ir_select(out, &synth, COPP_MSG_LEN);
		out->good = ~0u;
		OPENSSL_cleanse(&synth, sizeof(synth));
	}
	return 0;
}

static void open_run(struct job *j, struct daemon *d, struct worker *w)
{
	const struct wire_field *expect = &j->req.f[WIRE_T_RANDOM];
	uint8_t c[COPP_SIG_LEN];
	struct copp_params p;
	struct unpadded out;

	(void)d;
	if (ciphertext(j, c) != 0) {
		job_fail(j, KT_INTERNAL, "cannot parse the signature again");
		return;
	}
	if (decrypt(j, w, c, &out) != 0)
		return;
	if (!out.good) {
		job_fail(j, KT_UNWRAP_FAILED, "the signature does not decrypt under key %s",
			 j->key->name);
	} else {
		copp_parse(out.msg, &p);
		/* A synthetic message (implicit rejection) fails here like a wrong random number. */
		if (expect->present && CRYPTO_memcmp(expect->p, p.random, COPP_RANDOM_LEN) != 0)
			job_fail(j, KT_RANDOM_MISMATCH, "the signature carries another random number");
		else
			put_params(j, &p);
		OPENSSL_cleanse(&p, sizeof(p));
	}
	OPENSSL_cleanse(&out, sizeof(out));
}

const struct op_def op_copp_sign = { WIRE_OP_COPP_SIGN, OP_PUBLIC, sign_check, sign_run };
const struct op_def op_copp_open = { WIRE_OP_COPP_OPEN, OP_PRIVATE, open_check, open_run };
