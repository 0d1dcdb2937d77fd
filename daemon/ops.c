#include "ops.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "accounts.h"
#include "backend.h"
#include "acl.h"
#include "daemon.h"
#include "gen.h"
#include "job.h"
#include "keytab.h"
#include "log.h"
#include "peer.h"
#include "recipients.h"
#include "wire.h"
#include "worker.h"

static const struct op_def *const table[WIRE_OP_MAX] = {
	[WIRE_OP_INFO] = &op_info,
	[WIRE_OP_KEYS] = &op_keys,
	[WIRE_OP_PUBKEY] = &op_pubkey,
	[WIRE_OP_UNWRAP] = &op_unwrap,
	[WIRE_OP_WRAP] = &op_wrap,
	[WIRE_OP_COPP_SIGN] = &op_copp_sign,
	[WIRE_OP_COPP_OPEN] = &op_copp_open,
	[WIRE_OP_STATS] = &op_stats,
	[WIRE_OP_KEYGEN] = &op_keygen,
	[WIRE_OP_IMPORT] = &op_import,
	[WIRE_OP_OPM_SIGN] = &op_opm_sign,
	[WIRE_OP_OPM_OPEN] = &op_opm_open,
	[WIRE_OP_SESSION_MAC] = &op_session_mac,
	[WIRE_OP_SESSION_VERIFY] = &op_session_verify,
	[WIRE_OP_SESSION_CLOSE] = &op_session_close,
};

const struct op_def *ops_find(uint8_t code)
{
	return code < WIRE_OP_MAX ? table[code] : NULL;
}

void ops_check(struct job *j, struct daemon *d)
{
	if (wire_parse_request(j->frame, j->frame_len, &j->req, j->msg, sizeof(j->msg)) != 0) {
		j->status = KT_BAD_REQUEST;
		return;
	}
	if ((req_flags(j) & WIRE_FLAG_SEAL) && j->opcode != WIRE_OP_COPP_OPEN &&
	    j->opcode != WIRE_OP_OPM_OPEN) {
		job_fail(j, KT_BAD_REQUEST, "FLAGS SEAL (0x2) is for copp-open and opm-open, not %s",
			 wire_op_name(j->opcode));
		return;
	}
	j->op->check(j, d);
}

static void run(struct job *j, struct daemon *d, struct worker *w)
{
	if (j->status == KT_OK) {
		job_reply_begin(j);
		j->op->run(j, d, w);
		j->ran = 1;
	}
	job_finish(j);
}

/* The key the record names: the request's resolved key, or the new key's NAME (keygen, import). */
static const char *audit_key(const struct job *j, char *buf, size_t cap)
{
	if (j->key != NULL)
		return j->key->name;
	if (wire_get_str(&j->req, WIRE_T_NAME, buf, cap) != 0)
		snprintf(buf, cap, "-");
	return buf;
}

/* What the request asked for, for the audit record: "-", or some of "strict", "oaep", "seal". */
static const char *audit_mode(const struct job *j)
{
	static const char *const modes[] = { "-", "strict", "oaep", "strict,oaep",
					     "seal", "strict,seal", "oaep,seal", "strict,oaep,seal" };
	uint8_t pad = WIRE_PAD_PKCS1;
	uint32_t flags = req_flags(j);

	wire_get_u8(&j->req, WIRE_T_PADDING, &pad);
	return modes[((flags & WIRE_FLAG_STRICT) ? 1 : 0) + (pad == WIRE_PAD_OAEP ? 2 : 0) +
		     ((flags & WIRE_FLAG_SEAL) ? 4 : 0)];
}

void ops_audit(const struct job *j, struct daemon *d, struct log_batch *b)
{
	char name[CONFIG_NAME_MAX + 1];
	struct audit a = { wire_op_name(j->opcode), NULL, audit_mode(j), wire_status_name(j->status) };

	/* With implicit rejection the outcome is OK either way: the log cannot tell either. */
	if (j->ran && j->op->place == OP_PRIVATE) {
		a.key = audit_key(j, name, sizeof(name));
		log_audit_batched(&d->log, b, j->peer, &a);
	}
}

void ops_run(struct job *j, struct worker *w)
{
	run(j, w->d, w);
}

void ops_run_inline(struct job *j, struct daemon *d)
{
	run(j, d, NULL);
}

int key_visible(const struct daemon *d, const struct key *k, const struct peer *p)
{
	for (unsigned op = 0; op < ACL_OPS; op++)
		if (acl_allows(&k->conf->allow[op], p, d->uid))
			return 1;
	return 0;
}

static int sees_every_key(const struct daemon *d, const struct keytab *t, const struct peer *p)
{
	for (size_t i = 0; i < t->n; i++)
		if (!key_visible(d, &t->keys[i], p))
			return 0;
	return 1;
}

static void report_unlogged(uid_t uid, unsigned long n, void *arg)
{
	struct daemon *d = arg;

	log_warn(&d->log, "audit: uid %u had %lu more requests refused, not written one by one "
		 "(at most %d a second are)", (unsigned)uid, n, ACCOUNT_AUDIT_PER_SECOND);
}

void ops_audit_flush(struct daemon *d)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	accounts_audit_flush(&d->accounts, now.tv_sec, report_unlogged, d);
}

void ops_audit_denied(struct job *j, struct daemon *d, const char *what)
{
	struct timespec now;
	unsigned long dropped = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (j->acct != NULL && !account_audit_allowed(j->acct, now.tv_sec, &dropped))
		return;
	if (dropped > 0)
		report_unlogged(j->peer->uid, dropped, d);
	log_audit(&d->log, j->peer, &(struct audit){ wire_op_name(j->opcode), what, audit_mode(j),
						     "DENIED" });
}

static int deny(struct job *j, struct daemon *d, const char *what)
{
	job_fail(j, KT_DENIED, "%s with key \"%s\" is not allowed for uid %u", wire_op_name(j->opcode),
		 what, (unsigned)j->peer->uid);
	ops_audit_denied(j, d, what);
	return -1;
}

int req_key(struct job *j, struct daemon *d, enum acl_op op)
{
	char name[CONFIG_NAME_MAX + 1];
	struct key *k;

	if (!wire_has(&j->req, WIRE_T_NAME)) {
		job_fail(j, KT_BAD_REQUEST, "%s needs a key NAME", wire_op_name(j->opcode));
		return -1;
	}
	/* NAME's length was bounded (64) and checked for NUL bytes when the fields were parsed. */
	wire_get_str(&j->req, WIRE_T_NAME, name, sizeof(name));
	if (!gen_ready(j->gen)) {
		char why[256];

		backends_why(&d->hsms, why, sizeof(why));
		job_fail(j, KT_HSM_UNAVAILABLE, "no HSM has been in service since keytransd started, "
			 "so its keys are not known yet (%s); try again later", why);
		return -1;
	}
	k = keytab_find(gen_keys(j->gen), name);
	if (k == NULL && sees_every_key(d, gen_keys(j->gen), j->peer)) {
		job_fail(j, KT_UNKNOWN_KEY, "no key named \"%s\"", name);
		return -1;
	}
	/* A missing key and a forbidden one get the same answer. */
	if (k == NULL || !acl_allows(&k->conf->allow[op], j->peer, d->uid))
		return deny(j, d, name);
	j->key = k;
	return 0;
}

/*
 * An answer that tells a bad PKCS#1 ciphertext apart (STRICT, or a key whose
 * HSM removes the padding) makes the operation an oracle on every ciphertext
 * of the key: a peer allowed only copp-open could probe unwrap blobs sent as
 * COPP signatures (Bleichenbacher), and one allowed only unwrap could probe
 * COPP signatures. So explicit failures are for peers that hold both
 * private-key permissions on the key; OAEP (all-or-nothing, constant time)
 * tells nothing about PKCS#1 ciphertexts. docs/security.md has the reasoning.
 */
int req_explicit_failures(struct job *j, struct daemon *d, int oaep)
{
	const struct key *k = j->key;
	int explicit = !oaep && ((req_flags(j) & WIRE_FLAG_STRICT) || k->conf->mechanism == MECH_PKCS);

	if (!explicit || (acl_allows(&k->conf->allow[ACL_UNWRAP], j->peer, d->uid) &&
			  acl_allows(&k->conf->allow[ACL_COPP_OPEN], j->peer, d->uid)))
		return 0;
	job_fail(j, KT_DENIED, "%s with key \"%s\" %s needs both allow_unwrap and allow_copp_open "
		 "for uid %u: its failures would tell about the other operation's ciphertexts",
		 wire_op_name(j->opcode), k->name,
		 k->conf->mechanism == MECH_PKCS ? "(rsa_mechanism = pkcs)" : "with STRICT",
		 (unsigned)j->peer->uid);
	ops_audit_denied(j, d, k->name);
	return -1;
}

int req_padding(struct job *j, enum rsa_padding *pad)
{
	uint8_t v = WIRE_PAD_PKCS1;

	if (wire_has(&j->req, WIRE_T_PADDING))
		wire_get_u8(&j->req, WIRE_T_PADDING, &v);
	if (v != WIRE_PAD_PKCS1 && v != WIRE_PAD_OAEP) {
		job_fail(j, KT_BAD_REQUEST, "PADDING must be 0 (PKCS#1 v1.5) or 1 (OAEP), not %u", v);
		return -1;
	}
	*pad = v == WIRE_PAD_OAEP ? RSA_PAD_OAEP : RSA_PAD_PKCS1;
	return 0;
}

int req_recipient_given(struct job *j, struct daemon *d)
{
	int by_name = wire_has(&j->req, WIRE_T_NAME), by_key = wire_has(&j->req, WIRE_T_PUBLIC_KEY);

	if (by_name == by_key) {
		job_fail(j, KT_BAD_REQUEST, "%s needs exactly one recipient: NAME or PUBLIC_KEY",
			 wire_op_name(j->opcode));
		return -1;
	}
	if (by_name)
		return req_key(j, d, ACL_WRAP);
	if (!acl_allows(&j->gen->conf.allow_public_ops, j->peer, d->uid)) {
		job_fail(j, KT_DENIED, "%s to a public key is not allowed for uid %u",
			 wire_op_name(j->opcode), (unsigned)j->peer->uid);
		ops_audit_denied(j, d, "(public key)");
		return -1;
	}
	return 0;
}

uint32_t req_flags(const struct job *j)
{
	uint32_t flags = 0;

	wire_get_u32(&j->req, WIRE_T_FLAGS, &flags);
	return flags;
}

int req_recipient(struct job *j, struct daemon *d, struct worker *w, enum rsa_padding pad,
		  struct recipient_use *u)
{
	const struct wire_field *f = &j->req.f[WIRE_T_PUBLIC_KEY];
	int st;

	u->given = NULL;
	if (j->key != NULL) {
		u->enc = worker_enc_ctx(w, j->key, pad);
		u->k = j->key->k;
		return 0;
	}
	st = recipients_get(&d->recipients, f->p, f->len, &u->given, j->msg, sizeof(j->msg));
	if (st != KT_OK) {
		j->status = st;
		return -1;
	}
	u->enc = recipient_enc_ctx(u->given, w->index, pad);
	u->k = u->given->k;
	return 0;
}

void req_recipient_done(struct daemon *d, struct recipient_use *u)
{
	if (u->given != NULL)
		recipients_put(&d->recipients, u->given);
	u->given = NULL;
}

int req_bytes(struct job *j, unsigned tag, size_t len, int required)
{
	const struct wire_field *f = &j->req.f[tag];

	if (!f->present && !required)
		return 0;
	if (!f->present || f->len != len) {
		job_fail(j, KT_BAD_REQUEST, "%s must be %zu bytes", wire_tag_name(tag), len);
		return -1;
	}
	return 0;
}

int ops_private_decrypt(struct job *j, struct worker *w, enum rsa_padding pad, const uint8_t *c,
			size_t clen, uint8_t *em, size_t *len)
{
	enum hsm_padding hp = pad == RSA_PAD_OAEP ? HSM_PAD_OAEP
			    : pad == RSA_PAD_OAEP_SHA512 ? HSM_PAD_OAEP_SHA512 : HSM_PAD_PKCS1;
	int st = backend_decrypt(w, j->key, hp, c, clen, em, len, j->msg, sizeof(j->msg));

	if (st == KT_UNWRAP_FAILED)
		return 0;
	if (st != KT_OK) {
		j->status = st;
		return -1;
	}
	return 1;
}
