/*
 * SIMPLEBLOB: a session key RSA-wrapped as CryptExportKey writes it
 * (docs/formats.md). Parsing checks only public structure; the private
 * operation happens elsewhere (the HSM), and simpleblob_unpad() then takes
 * the padding off in constant time.
 */
#ifndef KT_SIMPLEBLOB_H
#define KT_SIMPLEBLOB_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "alg.h"
#include "pkcs1.h"
#include "rsa_pub.h"

#define SIMPLEBLOB_HDR 12
#define SIMPLEBLOB_MAX (SIMPLEBLOB_HDR + RSA_MAX_BYTES)

struct simpleblob {
	const struct alg_info *alg;     /* the session key's algorithm */
	size_t k;                       /* modulus bytes */
	uint8_t c[RSA_MAX_BYTES];       /* ciphertext, big-endian (reversed from the blob) */
};

/*
 * Checks a blob against the unwrapping key (modulus n, k bytes big-endian),
 * in the documented order: exact length 12 + k, header fields, ciphertext
 * below the modulus. Returns KT_OK or the first failing KT_BLOB_* status,
 * with a sentence in why.
 */
int simpleblob_parse(const uint8_t *blob, size_t len, const uint8_t *n, size_t k,
		     struct simpleblob *out, char *why, size_t whylen);
/*
 * Removes the padding from em, the k-byte raw RSA result, and checks the key
 * length allowed for alg, all in constant time (out->good). -1 only when the
 * key is too small for the algorithm's keys under that padding (public).
 */
int simpleblob_unpad(const uint8_t *em, size_t k, const struct alg_info *alg,
		     enum rsa_padding pad, struct unpadded *out);
/*
 * Wraps key (its length checked against alg) for the public key pub.
 * Writes 12 + k bytes into out (capacity SIMPLEBLOB_MAX). Returns KT_OK,
 * KT_KEY_LENGTH, KT_KEY_SIZE or KT_INTERNAL, with a sentence in why.
 */
int simpleblob_wrap(EVP_PKEY *pub, const struct alg_info *alg, const uint8_t *key, size_t key_len,
		    enum rsa_padding pad, uint8_t *out, size_t *out_len, char *why, size_t whylen);
/* The same with an encryption context from rsa_pub_encrypt_ctx(pub, pad) and pub's size k. */
int simpleblob_wrap_with(EVP_PKEY_CTX *enc, size_t k, const struct alg_info *alg,
			 const uint8_t *key, size_t key_len, enum rsa_padding pad, uint8_t *out,
			 size_t *out_len, char *why, size_t whylen);

#endif
