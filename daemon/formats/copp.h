/*
 * COPP session-start signature (docs/formats.md): 40 bytes
 * random | AES key | status seq | command seq, byte-reversed, PKCS#1 v1.5
 * encrypted under the driver's RSA-2048 key, and the result reversed.
 */
#ifndef KT_COPP_H
#define KT_COPP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "rsa_pub.h"

#define COPP_SIG_LEN 256
#define COPP_MSG_LEN 40
#define COPP_RANDOM_LEN 16
#define COPP_AES_LEN 16

struct copp_params {
	uint8_t random[COPP_RANDOM_LEN];
	uint8_t aes_key[COPP_AES_LEN];
	uint32_t status_seq;
	uint32_t command_seq;
};

/* M: the 40-byte message that gets encrypted (S reversed). */
void copp_message(const struct copp_params *p, uint8_t m[COPP_MSG_LEN]);
/* The inverse of copp_message. */
void copp_parse(const uint8_t m[COPP_MSG_LEN], struct copp_params *p);
/*
 * Builds the signature for the driver key pub (must be RSA-2048). Returns
 * KT_OK, KT_KEY_SIZE or KT_INTERNAL with a sentence in why.
 */
int copp_sign(EVP_PKEY *pub, const struct copp_params *p, uint8_t sig[COPP_SIG_LEN],
	      char *why, size_t whylen);
/* The same with a PKCS#1 v1.5 encryption context for the key and its size k. */
int copp_sign_with(EVP_PKEY_CTX *enc, size_t k, const struct copp_params *p,
		   uint8_t sig[COPP_SIG_LEN], char *why, size_t whylen);
/* A session start's sign_with (copp_sign_with, opm_sign_with). */
typedef int start_sign_with_fn(EVP_PKEY_CTX *enc, size_t k, const struct copp_params *p,
			       uint8_t sig[COPP_SIG_LEN], char *why, size_t whylen);
/* with() over an encryption context for pub and pad made for the call (copp_sign, opm_sign). */
int start_sign_pub(EVP_PKEY *pub, enum rsa_padding pad, start_sign_with_fn *with,
		   const struct copp_params *p, uint8_t sig[COPP_SIG_LEN], char *why, size_t whylen);
/*
 * Turns a signature into the big-endian ciphertext for the private operation
 * and checks it against the modulus n (256 bytes). KT_OK or KT_BLOB_RANGE.
 */
int copp_ciphertext(const uint8_t sig[COPP_SIG_LEN], const uint8_t *n, uint8_t c[COPP_SIG_LEN],
		    char *why, size_t whylen);

#endif
