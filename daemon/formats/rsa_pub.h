/*
 * RSA public-key helpers over OpenSSL: build a key from its numbers, read
 * them back, encrypt with PKCS#1 v1.5 or OAEP padding. Pure computation, no
 * HSM: this is all the public-key work (wrap, copp-sign) needs.
 */
#ifndef KT_RSA_PUB_H
#define KT_RSA_PUB_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define RSA_MIN_BITS 1024
#define RSA_MAX_BITS 16384
#define RSA_MAX_BYTES (RSA_MAX_BITS / 8)

/*
 * PKCS1 and OAEP have the protocol's PADDING values; OAEP_SHA512 (OPM's
 * session start) is chosen by the operation, never by a PADDING field.
 */
enum rsa_padding { RSA_PAD_PKCS1 = 0, RSA_PAD_OAEP = 1, RSA_PAD_OAEP_SHA512 = 2 };
#define RSA_PAD_COUNT 3

/* A new RSA public key from big-endian n and e; NULL on failure. */
EVP_PKEY *rsa_pub_from_ne(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len);
/*
 * Reads the modulus as exactly *k bytes big-endian (k = ceil(bits / 8)) into
 * n (capacity RSA_MAX_BYTES) and the public exponent into *e (-1 if it does
 * not fit 64 bits). Returns 0, or -1 for a key that is not RSA or too large.
 */
int rsa_pub_numbers(EVP_PKEY *pub, uint8_t *n, size_t *k, uint64_t *e);
/* 1 when the big-endian k-byte value c is below the modulus n. */
int rsa_below_modulus(const uint8_t *c, const uint8_t *n, size_t k);
/* Encrypts in with the padding; out receives k bytes big-endian. 0 or -1. */
int rsa_pub_encrypt(EVP_PKEY *pub, enum rsa_padding pad, const uint8_t *in, size_t in_len,
		    uint8_t *out, size_t k);
/*
 * The same in two steps, for callers that encrypt often to one key: a context
 * set up for the padding (setting one up costs more than a 2048-bit public
 * operation), then any number of encryptions with it. NULL on failure.
 */
EVP_PKEY_CTX *rsa_pub_encrypt_ctx(EVP_PKEY *pub, enum rsa_padding pad);
int rsa_pub_encrypt_with(EVP_PKEY_CTX *ctx, const uint8_t *in, size_t in_len, uint8_t *out, size_t k);
/* The SubjectPublicKeyInfo, DER or PEM, into out; its length, or 0 if it does not fit. */
size_t rsa_pub_spki(EVP_PKEY *pub, int pem, uint8_t *out, size_t cap);
/* The longest message the padding leaves room for with a k-byte modulus. */
size_t rsa_pad_capacity(enum rsa_padding pad, size_t k);

#endif
