/*
 * unwrap: SIMPLEBLOB + HSM key -> ALG_ID + session key. The structure is
 * checked on the loop thread (precise errors). With the raw mechanism the
 * HSM does the bare RSA operation and the padding comes off here in
 * constant time; a PKCS#1 v1.5 failure then yields the implicit-rejection key
 * (or, with the STRICT flag, UNWRAP_FAILED), and an OAEP failure
 * UNWRAP_FAILED: one answer for every cause, after the same work.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "daemon.h"
#include "hsm.h"
#include "implicit.h"
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

	if (req_key(j, d, ACL_UNWRAP) != 0 || req_padding(j, &pad) != 0)
		return;
	if (!wire_has(&j->req, WIRE_T_BLOB)) {
		job_fail(j, KT_BAD_REQUEST, "unwrap needs a BLOB");
		return;
	}
	if (pad == RSA_PAD_OAEP && j->key->conf->mechanism == MECH_PKCS) {
		job_fail(j, KT_BAD_REQUEST, "key %s has rsa_mechanism = pkcs: PKCS#1 v1.5 only",
			 j->key->name);
		return;
	}
	if (parse_blob(j, &sb) != 0)
		return;
	if (sb.alg->max_len > rsa_pad_capacity(pad, sb.k))
		job_fail(j, KT_KEY_SIZE, "a %zu-bit key cannot hold %s keys with this padding",
			 sb.k * 8, sb.alg->name);
}

static void hsm_failed(struct job *j, struct daemon *d, unsigned long ckr)
{
	log_err(&d->log, "%s with key %s: HSM error %s (0x%lx)", wire_op_name(j->opcode),
		j->key->name, hsm_ckr_name(ckr), ckr);
	job_fail(j, KT_HSM_ERROR, "the HSM failed the RSA operation (%s)", hsm_ckr_name(ckr));
}

/*
 * Raw mechanism: the bare RSA result, unpadded in constant time; for PKCS#1
 * v1.5 without STRICT a failure is replaced by the synthetic key. -1 when the
 * HSM failed (the job is failed then).
 */
static int decrypt_raw(struct job *j, struct daemon *d, EVP_PKEY_CTX *ctx,
		       const struct simpleblob *sb, enum rsa_padding pad, struct unpadded *out)
{
	uint8_t em[RSA_MAX_BYTES];
	struct unpadded synth;
	unsigned long ckr;
	int implicit = pad == RSA_PAD_PKCS1 && !(req_flags(j) & WIRE_FLAG_STRICT);

	if (hsm_rsa_raw(ctx, sb->c, sb->k, em, &ckr) != 0) {
		hsm_failed(j, d, ckr);
		return -1;
	}
	simpleblob_unpad(em, sb->k, sb->alg, pad, out);
	OPENSSL_cleanse(em, sb->k);
	if (implicit) {
		/* Always computed, so that success and failure cost the same. */
		if (ir_synthetic(j->key->ir_key, sb->c, sb->k, sb->alg->min_len, sb->alg->max_len,
				 &synth) != 0) {
			job_fail(j, KT_INTERNAL, "cannot compute the implicit-rejection key");
			return -1;
		}
		ir_select(out, &synth, sb->alg->max_len);
		out->good = ~0u;
		OPENSSL_cleanse(&synth, sizeof(synth));
	}
	return 0;
}

/* PKCS mechanism: the HSM removes the padding; only a fault is told apart. */
static int decrypt_pkcs(struct job *j, struct daemon *d, EVP_PKEY_CTX *ctx,
			const struct simpleblob *sb, struct unpadded *out)
{
	uint8_t m[RSA_MAX_BYTES];
	unsigned long ckr;
	size_t len;

	out->good = 0;
	out->len = 0;
	if (hsm_rsa_pkcs(ctx, sb->c, sb->k, m, &len, &ckr) != 0) {
		if (hsm_ckr_is_fault(ckr)) {
			hsm_failed(j, d, ckr);
			return -1;
		}
		return 0;
	}
	if (alg_len_ok(sb->alg, len)) {
		memcpy(out->msg, m, len);
		out->len = len;
		out->good = ~0u;
	}
	OPENSSL_cleanse(m, len);
	return 0;
}

static void unwrap_run(struct job *j, struct daemon *d, struct worker *w)
{
	struct simpleblob sb;
	struct unpadded out;
	enum rsa_padding pad;
	EVP_PKEY_CTX *ctx = worker_key_ctx(w, j->key);
	int rc;

	req_padding(j, &pad);
	if (ctx == NULL || parse_blob(j, &sb) != 0) {
		job_fail(j, KT_INTERNAL, "cannot set up the RSA operation");
		return;
	}
	if (j->key->conf->mechanism == MECH_PKCS)
		rc = decrypt_pkcs(j, d, ctx, &sb, &out);
	else
		rc = decrypt_raw(j, d, ctx, &sb, pad, &out);
	if (rc == 0 && out.good) {
		wire_put_u32(&j->reply, WIRE_T_ALG_ID, sb.alg->id);
		wire_put_bytes(&j->reply, WIRE_T_SESSION_KEY, out.msg, out.len);
	} else if (rc == 0) {
		/* One message for every cause: nothing here may depend on the decrypted bytes. */
		job_fail(j, KT_UNWRAP_FAILED, "the blob does not decrypt under key %s", j->key->name);
	}
	OPENSSL_cleanse(&out, sizeof(out));
}

const struct op_def op_unwrap = { WIRE_OP_UNWRAP, OP_PRIVATE, unwrap_check, unwrap_run };
