/*
 * The operation table: for each protocol operation, where it runs and the
 * two functions that handle it. Adding an operation = one op_def and a row
 * in ops.c.
 */
#ifndef KT_OPS_H
#define KT_OPS_H

#include <stdint.h>

#include "acl.h"
#include "rsa_pub.h"

struct daemon;
struct log_batch;
struct job;
struct key;
struct peer;
struct worker;

enum op_place {
	OP_INLINE,      /* cheap, no HSM: answered on the loop thread */
	OP_PUBLIC,      /* public-key work (may draw HSM random bytes): public pool */
	OP_PRIVATE,     /* an HSM private-key operation: HSM pool */
};

struct op_def {
	uint8_t code;
	enum op_place place;
	/*
	 * Loop thread: checks the request's fields and everything that depends
	 * only on public data, answering at once (job_fail) what it can.
	 */
	void (*check)(struct job *j, struct daemon *d);
	/* Where place says (w is NULL inline): the work; adds the reply fields. */
	void (*run)(struct job *j, struct daemon *d, struct worker *w);
};

extern const struct op_def op_info, op_keys, op_pubkey, op_unwrap, op_wrap, op_copp_sign,
	op_copp_open, op_stats, op_keygen, op_import, op_opm_sign, op_opm_open, op_session_mac,
	op_session_verify, op_session_close;

/* NULL for an unknown operation code. */
const struct op_def *ops_find(uint8_t code);
/* Loop thread: parses the job's fields, resolves NAME, runs the op's check. */
void ops_check(struct job *j, struct daemon *d);
/* Runs a checked job and completes its reply frame (worker or loop thread). */
void ops_run(struct job *j, struct worker *w);
void ops_run_inline(struct job *j, struct daemon *d);
/*
 * Loop thread, when the reply goes out: the audit record of a private-key
 * operation that ran (the write happens off the workers, which only do HSM work).
 */
void ops_audit(const struct job *j, struct daemon *d, struct log_batch *b);

/*
 * Request helpers shared by the operations (they fail the job and return -1).
 * req_key resolves NAME and applies the key's rule for op: a key the peer may
 * not use that way is DENIED; so is a name no key has, unless the peer may
 * see every key (then it is UNKNOWN_KEY), so that nobody learns which keys
 * exist beyond those they may use.
 */
int req_key(struct job *j, struct daemon *d, enum acl_op op);
int req_padding(struct job *j, enum rsa_padding *pad);
/* Exactly one of NAME (allow_wrap) and PUBLIC_KEY ([daemon] allow_public_ops). */
int req_recipient_given(struct job *j, struct daemon *d);
/* The request's FLAGS (0 when absent). */
uint32_t req_flags(const struct job *j);
/* The audit record of a refusal, at most ACCOUNT_AUDIT_PER_SECOND a second per uid (the rest counted). */
void ops_audit_denied(struct job *j, struct daemon *d, const char *what);
/* Writes the counts of refusals not written one by one (the loop, a few times a second). */
void ops_audit_flush(struct daemon *d);
/* DENIED (audited) unless the peer may see explicit decryption failures of j->key; 0 or -1. */
int req_explicit_failures(struct job *j, struct daemon *d, int oaep);
/* Worker side, wrap and copp-sign: the recipient, ready to encrypt to. */
struct recipient_use {
	EVP_PKEY_CTX *enc;              /* this worker's context for the padding */
	size_t k;                       /* modulus bytes */
	struct recipient *given;        /* PUBLIC_KEY's decoded key (recipients.h), or NULL */
};
/*
 * The HSM key's public half, or the PUBLIC_KEY decoded (or found again in
 * the daemon's cache of them). 0, or -1 with the job failed; a 0 is to be
 * followed by req_recipient_done.
 */
int req_recipient(struct job *j, struct daemon *d, struct worker *w, enum rsa_padding pad,
		  struct recipient_use *u);
void req_recipient_done(struct daemon *d, struct recipient_use *u);
int req_bytes(struct job *j, unsigned tag, size_t len, int required);
/* check for info, keys and stats: the request may carry no field at all. */
void req_no_fields(struct job *j, struct daemon *d);
/*
 * info and stats: an HSM_ENTRY per HSM (name, token, in service or not,
 * operations in flight, faults, last error). The reply must be full-size.
 */
void put_hsm_entries(struct job *j, struct daemon *d);

/* 1 when the peer may use the key for at least one operation (it is listed to them). */
int key_visible(const struct daemon *d, const struct key *k, const struct peer *p);
/*
 * Worker side, unwrap and copp-open: the HSM's private operation on j's key
 * over c. 1 with the result in em (*len bytes); 0 when the HSM refused the
 * padding (rsa_mechanism = pkcs); -1 when the job failed (status and message
 * set: HSM unavailable or in error).
 */
int ops_private_decrypt(struct job *j, struct worker *w, enum rsa_padding pad, const uint8_t *c,
			size_t clen, uint8_t *em, size_t *len);

#endif
