/*
 * wrap: session key (given, or drawn from the HSM's generator) + recipient
 * public key -> SIMPLEBLOB. Public-key work only: runs on the public pool.
 */
#include <openssl/crypto.h>

#include "alg.h"
#include "daemon.h"
#include "backend.h"
#include "job.h"
#include "keytab.h"
#include "log.h"
#include "ops.h"
#include "simpleblob.h"
#include "wire.h"
#include "worker.h"

/* The length of the key to generate: the algorithm's, or KEY_BITS for RC2/RC4. */
static int generated_len(struct job *j, const struct alg_info *a, size_t *len)
{
	uint32_t bits;

	*len = alg_default_len(a);
	if (wire_get_u32(&j->req, WIRE_T_KEY_BITS, &bits) != 0)
		return 0;
	if (a->min_len == a->max_len) {
		job_fail(j, KT_BAD_REQUEST, "KEY_BITS applies only to RC2 and RC4 keys");
		return -1;
	}
	if (bits % 8 != 0 || !alg_len_ok(a, bits / 8)) {
		job_fail(j, KT_KEY_LENGTH, "%s keys are %u to %u bits in steps of 8, not %u", a->name,
			 a->min_len * 8u, a->max_len * 8u, bits);
		return -1;
	}
	*len = bits / 8;
	return 0;
}

static const struct alg_info *req_alg(struct job *j)
{
	const struct alg_info *a;
	uint32_t id;

	if (wire_get_u32(&j->req, WIRE_T_ALG_ID, &id) != 0) {
		job_fail(j, KT_BAD_REQUEST, "wrap needs an ALG_ID");
		return NULL;
	}
	a = alg_by_id(id);
	if (a == NULL)
		job_fail(j, KT_BLOB_ALG, "ALG_ID 0x%04x is not a supported session-key algorithm", id);
	return a;
}

static void wrap_check(struct job *j, struct daemon *d)
{
	const struct wire_field *key = &j->req.f[WIRE_T_SESSION_KEY];
	const struct alg_info *a = req_alg(j);
	enum rsa_padding pad;
	size_t len;

	if (a == NULL || req_padding(j, &pad) != 0 || req_recipient_given(j, d) != 0)
		return;
	if (key->present) {
		if (wire_has(&j->req, WIRE_T_KEY_BITS))
			job_fail(j, KT_BAD_REQUEST, "KEY_BITS applies only to generated keys");
		else if (!alg_len_ok(a, key->len) && a->min_len == a->max_len)
			job_fail(j, KT_KEY_LENGTH, "%s keys are %u bytes, not %u", a->name,
				 a->max_len, key->len);
		else if (!alg_len_ok(a, key->len))
			job_fail(j, KT_KEY_LENGTH, "%s keys are %u to %u bytes, not %u", a->name,
				 a->min_len, a->max_len, key->len);
		return;
	}
	generated_len(j, a, &len);
}

static void wrap_run(struct job *j, struct daemon *d, struct worker *w)
{
	const struct wire_field *given = &j->req.f[WIRE_T_SESSION_KEY];
	const struct alg_info *a = req_alg(j);
	uint8_t gen[ALG_KEY_MAX], blob[SIMPLEBLOB_MAX];
	const uint8_t *key = given->p;
	size_t len = given->len, blob_len;
	struct recipient_use to;
	enum rsa_padding pad;

	req_padding(j, &pad);
	if (req_recipient(j, d, w, pad, &to) != 0)
		return;
	if (!given->present) {
		generated_len(j, a, &len);
		j->status = backend_random(w, gen, len, j->msg, sizeof(j->msg));
		if (j->status != KT_OK)
			goto done;
		key = gen;
	}
	j->status = simpleblob_wrap_with(to.enc, to.k, a, key, len, pad, blob, &blob_len, j->msg,
					 sizeof(j->msg));
	if (j->status != KT_OK)
		goto done;
	if (job_reply_room(j, 3 * WIRE_FIELD_HDR_LEN + 4 + blob_len + len, REPLY_SECRET) != 0) {
		job_fail(j, KT_BUSY, "out of locked memory for the reply");
		goto done;
	}
	wire_put_u32(&j->reply, WIRE_T_ALG_ID, a->id);
	wire_put_bytes(&j->reply, WIRE_T_BLOB, blob, blob_len);
	if (!given->present)
		wire_put_bytes(&j->reply, WIRE_T_SESSION_KEY, gen, len);
done:
	OPENSSL_cleanse(gen, sizeof(gen));
	req_recipient_done(d, &to);
}

const struct op_def op_wrap = { WIRE_OP_WRAP, OP_PUBLIC, wrap_check, wrap_run };
