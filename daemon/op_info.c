/* info, keys, pubkey (PUBLICKEYBLOB, PEM, DER or CNG blob): answered on the loop thread from the key table. */
#include <time.h>

#include "daemon.h"
#include "gen.h"
#include "backend.h"
#include "cngblob.h"
#include "job.h"
#include "ops.h"
#include "publickeyblob.h"
#include "wire.h"

void req_no_fields(struct job *j, struct daemon *d)
{
	(void)d;
	for (unsigned t = 0; t < WIRE_T_MAX; t++)
		if (j->req.f[t].present) {
			job_fail(j, KT_BAD_REQUEST, "%s takes no field %s", wire_op_name(j->opcode),
				 wire_tag_name(t));
			return;
		}
}

/* Appends "HEAD a, b" for the visible keys that pick() chooses; "; " between parts. */
static size_t list_keys(struct job *j, struct daemon *d, int (*pick)(const struct key *),
			const char *head, char *out, size_t len, size_t used)
{
	int first = 1;

	for (size_t i = 0; i < gen_keys(j->gen)->n && used < len; i++) {
		const struct key *k = &gen_keys(j->gen)->keys[i];

		if (!pick(k) || !key_visible(d, k, j->peer))
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s%s%s", first && used ? "; " : "",
					 first ? head : ", ", k->name);
		first = 0;
	}
	return used;
}

static int no_ir(const struct key *k)
{
	return !k->has_ir;
}

static int exposed(const struct key *k)
{
	return k->exposed[0] != '\0';
}

/* What an operator should know about the visible keys: no implicit rejection, keys that can leave the HSM. */
static void put_notice(struct job *j, struct daemon *d)
{
	char notice[1024];
	size_t used = list_keys(j, d, no_ir, "implicit rejection is off (rsa_mechanism = pkcs) for: ",
				notice, sizeof(notice), 0);

	used = list_keys(j, d, exposed, "private key can leave the HSM (CKA_EXTRACTABLE or not "
			 "CKA_SENSITIVE) for: ", notice, sizeof(notice), used);
	if (used > 0)
		wire_put_text(&j->reply, WIRE_T_NOTICE, notice);
}

void put_hsm_entries(struct job *j, struct daemon *d)
{
	for (size_t i = 0; i < d->hsms.n; i++) {
		struct backend_status st;
		size_t at = wire_group_begin(&j->reply, WIRE_T_HSM_ENTRY);

		backend_status(&d->hsms.b[i], &st);
		wire_put_text(&j->reply, WIRE_T_NAME, st.name);
		wire_put_text(&j->reply, WIRE_T_TOKEN_LABEL, st.token);
		wire_put_str(&j->reply, WIRE_T_STATE, st.up ? "up" : "down");
		wire_put_u32(&j->reply, WIRE_T_IN_FLIGHT, (uint32_t)st.users);
		wire_put_u64(&j->reply, WIRE_T_FAULTS, st.faults);
		if (st.last_error[0] != '\0')
			wire_put_text(&j->reply, WIRE_T_LAST_ERROR, st.last_error);
		wire_group_end(&j->reply, at);
	}
}

static void info_run(struct job *j, struct daemon *d, struct worker *w)
{
	struct timespec now;
	uint32_t visible = 0;

	(void)w;
	for (size_t i = 0; i < gen_keys(j->gen)->n; i++)
		visible += (uint32_t)key_visible(d, &gen_keys(j->gen)->keys[i], j->peer);
	clock_gettime(CLOCK_MONOTONIC, &now);
	wire_put_str(&j->reply, WIRE_T_VERSION, KT_VERSION);
	wire_put_text(&j->reply, WIRE_T_TOKEN_LABEL, d->conf.hsms[0].token);
	wire_put_u32(&j->reply, WIRE_T_KEY_COUNT, visible);
	wire_put_u32(&j->reply, WIRE_T_WORKER_COUNT, (uint32_t)d->hsm_pool.nworkers);
	wire_put_u64(&j->reply, WIRE_T_UPTIME, (uint64_t)(now.tv_sec - d->started.tv_sec));
	put_notice(j, d);
	if (job_reply_big(j, REPLY_PUBLIC) == 0)
		put_hsm_entries(j, d);
}

static void keys_run(struct job *j, struct daemon *d, struct worker *w)
{
	(void)w;
	if (job_reply_big(j, REPLY_PUBLIC) != 0) {
		job_fail(j, KT_INTERNAL, "out of memory");
		return;
	}
	for (size_t i = 0; i < gen_keys(j->gen)->n; i++) {
		const struct key *k = &gen_keys(j->gen)->keys[i];
		size_t at;

		if (!key_visible(d, k, j->peer))
			continue;
		at = wire_group_begin(&j->reply, WIRE_T_KEY_ENTRY);
		wire_put_text(&j->reply, WIRE_T_NAME, k->name);
		if (k->label[0] != '\0')
			wire_put_text(&j->reply, WIRE_T_LABEL, k->label);
		if (k->id_len > 0)
			wire_put_bytes(&j->reply, WIRE_T_ID, k->id, k->id_len);
		wire_put_u32(&j->reply, WIRE_T_BITS, (uint32_t)(k->k * 8));
		wire_put_u64(&j->reply, WIRE_T_EXPONENT, k->e);
		wire_put_str(&j->reply, WIRE_T_MECHANISM, k->conf->mechanism == MECH_PKCS ? "pkcs" : "raw");
		if (k->exposed[0] != '\0')
			wire_put_text(&j->reply, WIRE_T_NOTICE, k->exposed);
		wire_group_end(&j->reply, at);
	}
}

static void pubkey_check(struct job *j, struct daemon *d)
{
	uint8_t fmt = WIRE_FMT_BLOB;

	if (req_key(j, d, ACL_PUBKEY) != 0)
		return;
	wire_get_u8(&j->req, WIRE_T_FORMAT, &fmt);
	if (fmt > WIRE_FMT_CNG)
		job_fail(j, KT_BAD_REQUEST, "FORMAT must be 0 (blob), 1 (PEM), 2 (DER) or 3 (CNG), "
			 "not %u", fmt);
}

static void pubkey_run(struct job *j, struct daemon *d, struct worker *w)
{
	uint8_t fmt = WIRE_FMT_BLOB, out[PUBLICKEYBLOB_MAX * 2];
	size_t n;

	(void)d;
	(void)w;
	wire_get_u8(&j->req, WIRE_T_FORMAT, &fmt);
	if (fmt == WIRE_FMT_BLOB)
		n = publickeyblob_encode(j->key->pub, out, sizeof(out));
	else if (fmt == WIRE_FMT_CNG)
		n = cngblob_public_encode(j->key->pub, out, sizeof(out));
	else
		n = rsa_pub_spki(j->key->pub, fmt == WIRE_FMT_PEM, out, sizeof(out));
	if (n == 0) {
		job_fail(j, KT_INTERNAL, "cannot encode the public key of %s", j->key->name);
		return;
	}
	if (job_reply_room(j, WIRE_FIELD_HDR_LEN + n, REPLY_PUBLIC) != 0) {
		job_fail(j, KT_BUSY, "out of locked memory for the reply");
		return;
	}
	wire_put_bytes(&j->reply, WIRE_T_PUBLIC_KEY, out, n);
}

const struct op_def op_info = { WIRE_OP_INFO, OP_INLINE, req_no_fields, info_run };
const struct op_def op_keys = { WIRE_OP_KEYS, OP_INLINE, req_no_fields, keys_run };
const struct op_def op_pubkey = { WIRE_OP_PUBKEY, OP_INLINE, pubkey_check, pubkey_run };
