/*
 * Creating keys in the token (keygen, import): a private RSA key and its
 * public half, with the same CKA_LABEL and a fresh CKA_ID, the private one
 * sensitive and never extractable. libp11 cannot create objects, so these
 * use the module's own functions on a session of their own (hsm_p11.h).
 * Worker threads only.
 */
#ifndef KT_HSM_ADMIN_H
#define KT_HSM_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "config.h"

struct hsm;
struct rsa_parts;

#define HSM_ID_LEN 8
#define HSM_TAKEN (-3)  /* the label or the id is in the token already (err says which) */
#define HSM_UNSUPPORTED (-4)    /* the module refuses the key's template (err says how) */

/* What was created. */
struct hsm_new_key {
	uint8_t id[HSM_ID_LEN];
	EVP_PKEY *pub;          /* a software copy of the public half; the caller frees it */
};

/*
 * Generates a bits-bit key pair with public exponent e inside the token.
 * 0, HSM_TAKEN, or -1 with the PKCS#11 code in *ckr; err says what failed.
 */
int hsm_generate_rsa(struct hsm *h, const char *label, unsigned bits, uint64_t e,
		     struct hsm_new_key *out, unsigned long *ckr, char *err, size_t errlen);
/*
 * Creates the private key of parts and its public half in the token; the
 * CKA_ID is the first 8 bytes of the SHA-1 of the modulus, so the same key
 * cannot go in twice. Returns as hsm_generate_rsa.
 */
int hsm_import_rsa(struct hsm *h, const char *label, const struct rsa_parts *parts,
		   struct hsm_new_key *out, unsigned long *ckr, char *err, size_t errlen);

#endif
