/*
 * keygen and import (HSM pool): put a new RSA key into the token, for the
 * operators in [daemon] admin. The key is not served until the operator adds
 * its [key NAME] section and restarts the daemon: the answer gives what that
 * section needs (label and id) and the public key. With several HSMs both are
 * refused: every HSM must hold every key (backend.c compares them), a
 * generated key cannot be copied out of its HSM, and an import that reached
 * only some of them would leave them differing.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "backend.h"
#include "daemon.h"
#include "gen.h"
#include "hsm_admin.h"
#include "job.h"
#include "keytab.h"
#include "log.h"
#include "ops.h"
#include "privkey.h"
#include "wire.h"

#define KEYGEN_BITS_DEFAULT 2048
#define KEYGEN_EXPONENT_DEFAULT 65537
/* Generating a 4096-bit key takes seconds, more on a slow HSM: the hang watch waits this much longer. */
#define KEYGEN_EXTRA_S 300
#define SPKI_MAX (RSA_MAX_BYTES + 64)

struct keygen_args {
	const char *label;
	unsigned bits;
	uint64_t e;
	struct hsm_new_key out;
};

struct import_args {
	const char *label;
	const struct rsa_parts *parts;
	struct hsm_new_key out;
};

/* The peer must be an administrator; a refusal is audited like any other. */
static int req_admin(struct job *j, struct daemon *d, const char *name)
{
	if (acl_allows(&j->gen->conf.admin, j->peer, d->uid))
		return 0;
	job_fail(j, KT_DENIED, "%s is an administrative operation ([daemon] admin): not allowed "
		 "for uid %u", wire_op_name(j->opcode), (unsigned)j->peer->uid);
	ops_audit_denied(j, d, name);
	return -1;
}

/* NAME becomes the CKA_LABEL and the [key NAME] section: it must suit both and be new. */
static int req_new_name(struct job *j, struct daemon *d, char *name, size_t cap)
{
	if (wire_get_str(&j->req, WIRE_T_NAME, name, cap) != 0)
		name[0] = '\0';
	if (req_admin(j, d, name[0] ? name : "-") != 0)
		return -1;
	if (!config_valid_name(name)) {
		job_fail(j, KT_BAD_REQUEST, "%s needs a NAME of 1 to 64 of A-Z a-z 0-9 _ . - "
			 "(it becomes the key's label and its [key NAME] section)", wire_op_name(j->opcode));
		return -1;
	}
	if (keytab_find(gen_keys(j->gen), name) != NULL) {
		job_fail(j, KT_BAD_REQUEST, "a key named \"%s\" is configured already", name);
		return -1;
	}
	if (d->hsms.n > 1) {
		job_fail(j, KT_BAD_REQUEST, "%s works with one HSM only, and %zu are configured: every "
			 "HSM must hold every key, and a key %s; put the key into each HSM with its own "
			 "tools", wire_op_name(j->opcode), d->hsms.n,
			 j->opcode == WIRE_OP_KEYGEN ? "generated inside one HSM cannot be copied to the others"
						     : "imported into some of them only would leave them differing");
		return -1;
	}
	return 0;
}

static void keygen_check(struct job *j, struct daemon *d)
{
	char name[CONFIG_NAME_MAX + 1];
	uint32_t bits = KEYGEN_BITS_DEFAULT;
	uint64_t e = KEYGEN_EXPONENT_DEFAULT;

	if (req_new_name(j, d, name, sizeof(name)) != 0)
		return;
	wire_get_u32(&j->req, WIRE_T_BITS, &bits);
	wire_get_u64(&j->req, WIRE_T_EXPONENT, &e);
	if (bits != 2048 && bits != 3072 && bits != 4096)
		job_fail(j, KT_KEY_SIZE, "BITS must be 2048, 3072 or 4096, not %lu", (unsigned long)bits);
	else if (e % 2 == 0 || e < 65537 || e > UINT32_MAX)
		job_fail(j, KT_BAD_REQUEST, "EXPONENT must be odd, from 65537 to 4294967295");
}

/* What keygen and import answer: the [key NAME] section's label and id, and the public key. */
static void put_new_key(struct job *j, const char *name, const struct hsm_new_key *k)
{
	uint8_t n[RSA_MAX_BYTES], spki[SPKI_MAX];
	uint64_t e;
	size_t len, bytes;

	if (rsa_pub_numbers(k->pub, n, &bytes, &e) != 0 ||
	    (len = rsa_pub_spki(k->pub, 0, spki, sizeof(spki))) == 0) {
		job_fail(j, KT_INTERNAL, "cannot encode the new key's public half");
		return;
	}
	if (job_reply_room(j, 4 * WIRE_FIELD_HDR_LEN + 2 * strlen(name) + HSM_ID_LEN + 12 + 4 + 8 + len,
			   REPLY_PUBLIC) != 0) {
		job_fail(j, KT_BUSY, "out of locked memory for the reply");
		return;
	}
	wire_put_str(&j->reply, WIRE_T_NAME, name);
	wire_put_str(&j->reply, WIRE_T_LABEL, name);
	wire_put_bytes(&j->reply, WIRE_T_ID, k->id, HSM_ID_LEN);
	wire_put_u32(&j->reply, WIRE_T_BITS, (uint32_t)(bytes * 8));
	wire_put_u64(&j->reply, WIRE_T_EXPONENT, e);
	wire_put_bytes(&j->reply, WIRE_T_PUBLIC_KEY, spki, len);
}

static int do_keygen(struct hsm *h, void *arg, unsigned long *ckr, char *msg, size_t msglen)
{
	struct keygen_args *a = arg;

	return hsm_generate_rsa(h, a->label, a->bits, a->e, &a->out, ckr, msg, msglen);
}

static void keygen_run(struct job *j, struct daemon *d, struct worker *w)
{
	char name[CONFIG_NAME_MAX + 1];
	struct keygen_args a = { .label = name, .bits = KEYGEN_BITS_DEFAULT,
				 .e = KEYGEN_EXPONENT_DEFAULT };
	uint32_t bits = KEYGEN_BITS_DEFAULT;

	(void)d;
	wire_get_str(&j->req, WIRE_T_NAME, name, sizeof(name));
	wire_get_u32(&j->req, WIRE_T_BITS, &bits);
	wire_get_u64(&j->req, WIRE_T_EXPONENT, &a.e);
	a.bits = bits;
	j->status = backend_admin(w, KEYGEN_EXTRA_S, do_keygen, &a, j->msg, sizeof(j->msg));
	if (j->status == KT_OK)
		put_new_key(j, name, &a.out);
	EVP_PKEY_free(a.out.pub);
}

static void import_check(struct job *j, struct daemon *d)
{
	char name[CONFIG_NAME_MAX + 1];

	if (req_new_name(j, d, name, sizeof(name)) == 0 && !wire_has(&j->req, WIRE_T_PRIVATE_KEY))
		job_fail(j, KT_BAD_REQUEST, "import needs a PRIVATE_KEY");
}

static int do_import(struct hsm *h, void *arg, unsigned long *ckr, char *msg, size_t msglen)
{
	struct import_args *a = arg;

	return hsm_import_rsa(h, a->label, a->parts, &a->out, ckr, msg, msglen);
}

/*
 * Parsed here, on the worker: decoding a key is too slow for the event loop.
 * The numbers live in locked memory only, from the request's bytes (the
 * job's frame) to the HSM's template, and are wiped on every path.
 */
static void import_run(struct job *j, struct daemon *d, struct worker *w)
{
	const struct wire_field *f = &j->req.f[WIRE_T_PRIVATE_KEY];
	char name[CONFIG_NAME_MAX + 1];
	struct import_args a = { .label = name };
	struct rsa_parts *parts = NULL;

	(void)d;
	wire_get_str(&j->req, WIRE_T_NAME, name, sizeof(name));
	j->status = privkey_parse(f->p, f->len, &parts, j->msg, sizeof(j->msg));
	/* The key's bytes are read: not left in the frame until the job ends. */
	OPENSSL_cleanse(j->frame + (f->p - j->frame), f->len);
	if (j->status == KT_OK) {
		a.parts = parts;
		j->status = backend_admin(w, 0, do_import, &a, j->msg, sizeof(j->msg));
	}
	privkey_parts_free(parts);
	if (j->status == KT_OK)
		put_new_key(j, name, &a.out);
	EVP_PKEY_free(a.out.pub);
}

const struct op_def op_keygen = { WIRE_OP_KEYGEN, OP_PRIVATE, keygen_check, keygen_run };
const struct op_def op_import = { WIRE_OP_IMPORT, OP_PRIVATE, import_check, import_run };
