/*
 * Everything that touches libp11 (PKCS#11): load the module, find the token by
 * label, log in, find keys, the raw RSA private operation, random bytes,
 * teardown. Nothing else includes libp11.h. Runs only on worker threads and
 * during start-up, never on the event-loop thread.
 */
#ifndef KT_HSM_H
#define KT_HSM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "config.h"

struct hsm;

/* A private key found in the token. */
struct hsm_key {
	EVP_PKEY *priv;                     /* operations run in the HSM */
	EVP_PKEY *pub;                      /* software copy of the public half */
	char label[CONFIG_LABEL_MAX + 1];   /* CKA_LABEL as the token has it */
	uint8_t id[CONFIG_ID_MAX];          /* CKA_ID */
	size_t id_len;
	unsigned long obj;                  /* its object handle, for hsm_decrypt */
	int sensitive, extractable;         /* CKA_SENSITIVE, CKA_EXTRACTABLE: 1, 0, -1 unknown */
};

#define HSM_FATAL (-2)   /* retrying cannot help: no such module, wrong or locked PIN, no such key */

/*
 * Loads module, finds the initialised token labelled token (and matching the
 * attrs a token URI gave) and logs in with pin. On failure returns -1 (perhaps
 * transient: the token may appear) or HSM_FATAL, with a sentence for the
 * operator in err.
 */
int hsm_open(const char *module, const char *token, const struct token_attrs *attrs,
	     const char *pin, struct hsm **out, char *err, size_t errlen);
void hsm_close(struct hsm *h);
const char *hsm_token_label(const struct hsm *h);
/* Why calls into this module must be serialised (quirks.c), or NULL when they need not be. */
const char *hsm_serialize_why(const struct hsm *h);

/* Finds the one RSA private key matching kc's label and/or id (and the token its uri names). */
int hsm_find_key(struct hsm *h, const struct key_conf *kc, struct hsm_key *out,
		 char *err, size_t errlen);
void hsm_key_release(struct hsm_key *k);
/* 1 with "CKA_EXTRACTABLE = TRUE" and/or "CKA_SENSITIVE = FALSE" in what when k can leave the HSM; else 0 and "". */
int hsm_key_exposed(const struct hsm_key *k, char *what, size_t len);

/* A context for raw RSA with priv (CKM_RSA_X_509); a worker keeps one per key. */
EVP_PKEY_CTX *hsm_raw_ctx_new(EVP_PKEY *priv);
/*
 * The raw RSA private operation on the k-byte big-endian value in. Returns 0,
 * or -1 with the PKCS#11 return value in *ckr (0 if none was reported).
 */
int hsm_rsa_raw(EVP_PKEY_CTX *ctx, const uint8_t *in, size_t k, uint8_t *out, unsigned long *ckr);

/*
 * A session of the caller's own on the token (logged in: PKCS#11 logs in per
 * application and slot), for hsm_raw_decrypt: a worker keeps one per HSM, so
 * the hot path is two PKCS#11 calls, without libp11's session pool and EVP
 * dispatch. 0, or -1 with *ckr.
 */
int hsm_session_open(struct hsm *h, unsigned long *session, unsigned long *ckr);
void hsm_session_close(struct hsm *h, unsigned long session);
/* The raw RSA private operation (CKM_RSA_X_509) on session; as hsm_rsa_raw. */
int hsm_raw_decrypt(struct hsm *h, unsigned long session, unsigned long obj, const uint8_t *in,
		    size_t k, uint8_t *out, unsigned long *ckr);

enum hsm_padding { HSM_PAD_PKCS1, HSM_PAD_OAEP, HSM_PAD_OAEP_SHA512 };
enum hsm_step { HSM_STEP_SESSION, HSM_STEP_INIT, HSM_STEP_DECRYPT };
/* Where a call failed, and with what. */
struct hsm_failure {
	enum hsm_step step;
	unsigned long ckr;
};
/*
 * Decryption with the HSM's own padding check (rsa_mechanism = pkcs):
 * CKM_RSA_PKCS, or CKM_RSA_PKCS_OAEP with SHA-1 (or SHA-512), MGF1 with it and no label,
 * with the key object obj, on a session opened for the call and closed after
 * it. out holds k bytes; *out_len receives the message length. 0, or -1 with
 * the step that failed and its code in why.
 */
int hsm_decrypt(struct hsm *h, unsigned long obj, enum hsm_padding pad, const uint8_t *in,
		size_t k, uint8_t *out, size_t *out_len, struct hsm_failure *why);
/* n bytes from the token's random generator. 0, or -1 with *ckr. */
int hsm_random(struct hsm *h, uint8_t *out, size_t n, unsigned long *ckr);

#endif
