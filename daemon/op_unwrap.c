/*
 * unwrap: SIMPLEBLOB + HSM key -> ALG_ID + session key. The structure is
 * checked on the loop thread (precise errors); the raw RSA operation runs in
 * the HSM and the padding comes off in constant time here, so that every
 * failure after the private operation is one and the same UNWRAP_FAILED.
 */
#include <openssl/crypto.h>

#include "daemon.h"
#include "hsm.h"
#include "job.h"
#include "keytab.h"
#include "log.h"
#include "ops.h"
#include "simpleblob.h"
#include "wire.h"
#include "worker.h"

/* Parses the request's blob against its key; the caller has resolved the key. */
static int parse_blob(struct job *j, struct simpleblob *sb)
{
	const struct wire_field *f = &j->req.f[WIRE_T_BLOB];

	j->status = simpleblob_parse(f->p, f->len, j->key->n, j->key->k, sb, j->msg, sizeof(j->msg));
	return j->status == KT_OK ? 0 : -1;
}

static void unwrap_check(struct job *j, struct daemon *d)
{
	struct simpleblob sb;
	enum rsa_padding pad;

	if (req_key(j, d) != 0 || req_padding(j, &pad) != 0)
		return;
	if (!wire_has(&j->req, WIRE_T_BLOB)) {
		job_fail(j, KT_BAD_REQUEST, "unwrap needs a BLOB");
		return;
	}
	if (parse_blob(j, &sb) != 0)
		return;
	if (sb.alg->max_len > rsa_pad_capacity(pad, sb.k))
		job_fail(j, KT_KEY_SIZE, "a %zu-bit key cannot hold %s keys with this padding",
			 sb.k * 8, sb.alg->name);
}

static void unwrap_run(struct job *j, struct daemon *d, struct worker *w)
{
	uint8_t em[RSA_MAX_BYTES];
	struct simpleblob sb;
	struct unpadded out;
	enum rsa_padding pad;
	unsigned long ckr;
	EVP_PKEY_CTX *ctx = worker_raw_ctx(w, j->key);

	req_padding(j, &pad);
	if (ctx == NULL || parse_blob(j, &sb) != 0) {
		job_fail(j, KT_INTERNAL, "cannot set up the RSA operation");
		return;
	}
	if (hsm_rsa_raw(ctx, sb.c, sb.k, em, &ckr) != 0) {
		log_err(&d->log, "unwrap with key %s: HSM error %s (0x%lx)", j->key->name,
			hsm_ckr_name(ckr), ckr);
		job_fail(j, KT_HSM_ERROR, "the HSM failed the RSA operation (%s)", hsm_ckr_name(ckr));
		return;
	}
	simpleblob_unpad(em, sb.k, sb.alg, pad, &out);
	OPENSSL_cleanse(em, sb.k);
	if (out.good) {
		wire_put_u32(&j->reply, WIRE_T_ALG_ID, sb.alg->id);
		wire_put_bytes(&j->reply, WIRE_T_SESSION_KEY, out.msg, out.len);
	} else {
		/* One message for every cause: nothing here may depend on the decrypted bytes. */
		job_fail(j, KT_UNWRAP_FAILED, "the blob does not decrypt under key %s", j->key->name);
	}
	OPENSSL_cleanse(&out, sizeof(out));
}

const struct op_def op_unwrap = { WIRE_OP_UNWRAP, OP_PRIVATE, unwrap_check, unwrap_run };
