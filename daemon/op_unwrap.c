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
#include "backend.h"
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

	if (req_key(j, d, ACL_UNWRAP) != 0 || req_padding(j, &pad) != 0 ||
	    req_explicit_failures(j, d, pad == RSA_PAD_OAEP) != 0)
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

/*
 * The private operation in an HSM, then the padding off. With the raw
 * mechanism the padding comes off here in constant time, and for PKCS#1 v1.5
 * without STRICT a failure is replaced by the synthetic key; with the pkcs
 * mechanism the HSM removes the padding (no implicit rejection). -1 when the
 * job failed (HSM unavailable or in error).
 */
static int decrypt(struct job *j, struct worker *w, const struct simpleblob *sb, enum rsa_padding pad,
		   struct unpadded *out)
{
	uint8_t em[RSA_MAX_BYTES];
	struct unpadded synth;
	size_t len;
	int rc = ops_private_decrypt(j, w, pad, sb->c, sb->k, em, &len);

	out->good = 0;
	out->len = 0;
	if (rc <= 0)
		return rc;
	if (j->key->conf->mechanism == MECH_PKCS) {
		if (alg_len_ok(sb->alg, len)) {
			memcpy(out->msg, em, len);
			out->len = len;
			out->good = ~0u;
		}
		OPENSSL_cleanse(em, len);
		return 0;
	}
	simpleblob_unpad(em, sb->k, sb->alg, pad, out);
	OPENSSL_cleanse(em, sb->k);
	if (pad == RSA_PAD_PKCS1 && !(req_flags(j) & WIRE_FLAG_STRICT)) {
		/* Always computed, so that success and failure cost the same. */
		if (ir_synthetic(worker_ir_mac(w), j->key->ir_key, sb->c, sb->k, sb->alg->min_len, sb->alg->max_len,
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

static void unwrap_run(struct job *j, struct daemon *d, struct worker *w)
{
	struct simpleblob sb;
	struct unpadded out;
	enum rsa_padding pad;

	(void)d;
	req_padding(j, &pad);
	if (parse_blob(j, &sb) != 0) {
		job_fail(j, KT_INTERNAL, "cannot parse the blob again");
		return;
	}
	if (decrypt(j, w, &sb, pad, &out) == 0) {
		if (out.good) {
			wire_put_u32(&j->reply, WIRE_T_ALG_ID, sb.alg->id);
			wire_put_bytes(&j->reply, WIRE_T_SESSION_KEY, out.msg, out.len);
		} else {
			/* One message for every cause: nothing here may depend on the decrypted bytes. */
			job_fail(j, KT_UNWRAP_FAILED, "the blob does not decrypt under key %s",
				 j->key->name);
		}
	}
	OPENSSL_cleanse(&out, sizeof(out));
}

const struct op_def op_unwrap = { WIRE_OP_UNWRAP, OP_PRIVATE, unwrap_check, unwrap_run };
