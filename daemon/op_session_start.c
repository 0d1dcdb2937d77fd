/*
 * Session start, COPP and OPM: copp-sign / opm-sign (public pool) build the
 * driver's 256-byte array for its RSA-2048 key; copp-open / opm-open (HSM
 * pool) open one with an HSM key, and with SEAL keep its AES key in a
 * sealed session (sessions.h) instead of answering it. The two protocols
 * differ only in the padding and byte order (struct start_proto).
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
#include "opm.h"
#include "ops.h"
#include "peer.h"
#include "pkcs1.h"
#include "sessions.h"
#include "wire.h"
#include "worker.h"

#define START_SIG_LEN 256
#define START_MSG_LEN 40
_Static_assert(COPP_SIG_LEN == START_SIG_LEN && OPM_SIG_LEN == START_SIG_LEN, "one array size");
_Static_assert(COPP_MSG_LEN == START_MSG_LEN && OPM_MSG_LEN == START_MSG_LEN, "one message size");

struct start_proto {
	const char *name;
	enum session_proto session;
	enum rsa_padding pad;
	enum acl_op acl;
	start_sign_with_fn *sign_with;
	int (*ciphertext)(const uint8_t sig[START_SIG_LEN], const uint8_t *n,
			  uint8_t c[START_SIG_LEN], char *why, size_t whylen);
	void (*parse)(const uint8_t m[START_MSG_LEN], struct copp_params *p);
};

static const struct start_proto copp = {
	"COPP", SESSION_COPP, RSA_PAD_PKCS1, ACL_COPP_OPEN, copp_sign_with, copp_ciphertext, copp_parse,
};
static const struct start_proto opm = {
	"OPM", SESSION_OPM, RSA_PAD_OAEP_SHA512, ACL_OPM_OPEN, opm_sign_with, opm_ciphertext, opm_parse,
};

static const struct start_proto *proto_of(const struct job *j)
{
	return j->opcode == WIRE_OP_OPM_SIGN || j->opcode == WIRE_OP_OPM_OPEN ? &opm : &copp;
}

static int key_is_2048(struct job *j)
{
	if (j->key != NULL && j->key->k != START_SIG_LEN) {
		job_fail(j, KT_KEY_SIZE, "%s needs an RSA-2048 key; %s is %zu bits", proto_of(j)->name,
			 j->key->name, j->key->k * 8);
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
	const struct start_proto *pr = proto_of(j);
	uint8_t sig[START_SIG_LEN];
	struct recipient_use to;
	struct copp_params p;

	if (req_recipient(j, d, w, pr->pad, &to) != 0)
		return;
	if (fill_params(j, w, &p) == 0) {
		j->status = pr->sign_with(to.enc, to.k, &p, sig, j->msg, sizeof(j->msg));
		if (j->status == KT_OK) {
			wire_put_bytes(&j->reply, WIRE_T_SIGNATURE, sig, sizeof(sig));
			put_params(j, &p);
		}
	}
	OPENSSL_cleanse(&p, sizeof(p));
	req_recipient_done(d, &to);
}

static int ciphertext(struct job *j, uint8_t c[START_SIG_LEN])
{
	j->status = proto_of(j)->ciphertext(j->req.f[WIRE_T_SIGNATURE].p, j->key->n, c, j->msg,
					    sizeof(j->msg));
	return j->status == KT_OK ? 0 : -1;
}

static void open_check(struct job *j, struct daemon *d)
{
	const struct start_proto *pr = proto_of(j);
	uint8_t c[START_SIG_LEN];

	/* OAEP (OPM) failures are explicit and all alike: they tell nothing (req_explicit_failures). */
	if (req_key(j, d, pr->acl) != 0 || !key_is_2048(j) ||
	    req_explicit_failures(j, d, pr->pad != RSA_PAD_PKCS1) != 0)
		return;
	if (req_bytes(j, WIRE_T_SIGNATURE, START_SIG_LEN, 1) != 0 ||
	    req_bytes(j, WIRE_T_RANDOM, COPP_RANDOM_LEN, 0) != 0)
		return;
	ciphertext(j, c);
}

/* COPP's message after a raw decryption: PKCS#1 v1.5 unpadding, and implicit rejection. */
static int copp_unpad(struct job *j, struct worker *w, const uint8_t *em,
		      const uint8_t c[START_SIG_LEN], struct unpadded *out)
{
	struct unpadded synth;

	pkcs1_unpad(em, START_SIG_LEN, START_MSG_LEN, START_MSG_LEN, out);
	if (req_flags(j) & WIRE_FLAG_STRICT)
		return 0;
	if (ir_synthetic(worker_ir_mac(w), j->key->ir_key, c, START_SIG_LEN, START_MSG_LEN,
			 START_MSG_LEN, &synth) != 0) {
		job_fail(j, KT_INTERNAL, "cannot compute the implicit-rejection message");
		return -1;
	}
	ir_select(out, &synth, START_MSG_LEN);
	out->good = ~0u;
	OPENSSL_cleanse(&synth, sizeof(synth));
	return 0;
}

/* The 40-byte message, as unwrap does it: HSM, constant-time unpadding (COPP: implicit rejection). */
static int decrypt(struct job *j, struct worker *w, const uint8_t c[START_SIG_LEN],
		   struct unpadded *out)
{
	const struct start_proto *pr = proto_of(j);
	uint8_t em[START_SIG_LEN];
	size_t len;
	int rc = ops_private_decrypt(j, w, pr->pad, c, START_SIG_LEN, em, &len);

	out->good = 0;
	out->len = 0;
	if (rc <= 0)
		return rc;
	rc = 0;
	if (j->key->conf->mechanism == MECH_PKCS) {
		if (len == START_MSG_LEN) {
			memcpy(out->msg, em, START_MSG_LEN);
			out->len = START_MSG_LEN;
			out->good = ~0u;
		}
	} else if (pr->pad == RSA_PAD_PKCS1) {
		rc = copp_unpad(j, w, em, c, out);
	} else {
		oaep_unpad_hash(em, START_SIG_LEN, OAEP_SHA512, START_MSG_LEN, START_MSG_LEN, out);
	}
	OPENSSL_cleanse(em, sizeof(em));
	return rc;
}

/* SEAL: the AES key goes into a session of the caller's uid; the answer carries its handle. */
static void put_sealed(struct job *j, struct daemon *d, const struct copp_params *p)
{
	uint8_t handle[SESSION_HANDLE_LEN];

	j->status = sessions_open(&d->sessions, j->peer->uid, proto_of(j)->session, p, handle,
				  j->msg, sizeof(j->msg));
	if (j->status != KT_OK)
		return;
	wire_put_bytes(&j->reply, WIRE_T_SESSION, handle, sizeof(handle));
	wire_put_bytes(&j->reply, WIRE_T_RANDOM, p->random, sizeof(p->random));
	wire_put_u32(&j->reply, WIRE_T_STATUS_SEQ, p->status_seq);
	wire_put_u32(&j->reply, WIRE_T_COMMAND_SEQ, p->command_seq);
}

static void open_run(struct job *j, struct daemon *d, struct worker *w)
{
	const struct wire_field *expect = &j->req.f[WIRE_T_RANDOM];
	uint8_t c[START_SIG_LEN];
	struct copp_params p;
	struct unpadded out;

	if (ciphertext(j, c) != 0) {
		job_fail(j, KT_INTERNAL, "cannot parse the signature again");
		return;
	}
	if (decrypt(j, w, c, &out) != 0)
		return;
	if (!out.good) {
		job_fail(j, KT_UNWRAP_FAILED, "the %s array does not decrypt under key %s",
			 proto_of(j)->name, j->key->name);
	} else {
		proto_of(j)->parse(out.msg, &p);
		/* A synthetic message (implicit rejection) fails here like a wrong random number. */
		if (expect->present && CRYPTO_memcmp(expect->p, p.random, COPP_RANDOM_LEN) != 0)
			job_fail(j, KT_RANDOM_MISMATCH, "the %s array carries another random number",
				 proto_of(j)->name);
		else if (req_flags(j) & WIRE_FLAG_SEAL)
			put_sealed(j, d, &p);
		else
			put_params(j, &p);
		OPENSSL_cleanse(&p, sizeof(p));
	}
	OPENSSL_cleanse(&out, sizeof(out));
}

const struct op_def op_copp_sign = { WIRE_OP_COPP_SIGN, OP_PUBLIC, sign_check, sign_run };
const struct op_def op_copp_open = { WIRE_OP_COPP_OPEN, OP_PRIVATE, open_check, open_run };
const struct op_def op_opm_sign = { WIRE_OP_OPM_SIGN, OP_PUBLIC, sign_check, sign_run };
const struct op_def op_opm_open = { WIRE_OP_OPM_OPEN, OP_PRIVATE, open_check, open_run };
