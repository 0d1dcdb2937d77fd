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
};

#define HSM_FATAL (-2)   /* retrying cannot help: no such module, wrong or locked PIN */

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

/* Finds the one RSA private key matching kc's label and/or id (and the token its uri names). */
int hsm_find_key(struct hsm *h, const struct key_conf *kc, struct hsm_key *out,
		 char *err, size_t errlen);
void hsm_key_release(struct hsm_key *k);

/* A context for raw RSA with priv (CKM_RSA_X_509); a worker keeps one per key. */
EVP_PKEY_CTX *hsm_raw_ctx_new(EVP_PKEY *priv);
/* The same for PKCS#1 v1.5 decryption in the HSM (CKM_RSA_PKCS). */
EVP_PKEY_CTX *hsm_pkcs_ctx_new(EVP_PKEY *priv);
/*
 * The raw RSA private operation on the k-byte big-endian value in. Returns 0,
 * or -1 with the PKCS#11 return value in *ckr (0 if none was reported).
 */
int hsm_rsa_raw(EVP_PKEY_CTX *ctx, const uint8_t *in, size_t k, uint8_t *out, unsigned long *ckr);
/*
 * PKCS#1 v1.5 decryption in the HSM: *out_len receives the message length
 * (out holds k bytes). 0, or -1 with *ckr; a bad padding is an error too.
 */
int hsm_rsa_pkcs(EVP_PKEY_CTX *ctx, const uint8_t *in, size_t k, uint8_t *out, size_t *out_len,
		 unsigned long *ckr);
/*
 * 1 when ckr means the HSM, its session or its login failed (rather than the
 * data): with CKM_RSA_PKCS only these may be told apart from bad padding.
 */
int hsm_ckr_is_fault(unsigned long ckr);
/* n bytes from the token's random generator. 0, or -1 with *ckr. */
int hsm_random(struct hsm *h, uint8_t *out, size_t n, unsigned long *ckr);
/* "CKR_DEVICE_ERROR" for logs. */
const char *hsm_ckr_name(unsigned long ckr);

#endif
