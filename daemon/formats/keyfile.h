/*
 * Recipient public keys as applications hand them over: PUBLICKEYBLOB, CNG
 * BCRYPT_RSAPUBLIC_BLOB (cngblob.h), PEM or DER SubjectPublicKeyInfo (or PKCS#1 RSAPublicKey), PEM or DER X.509
 * certificate. The format is detected from the bytes.
 *
 * The common forms, strictly encoded, are read by our own code
 * (publickeyblob.c, pubkey_der.c, pem.c) and the key built from its numbers;
 * anything else goes to OpenSSL's decoders, as before, so that nothing they
 * accept is refused. Either way the same rules, statuses and sentences apply.
 */
#ifndef KT_KEYFILE_H
#define KT_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "pubkey_der.h"
#include "rsa_pub.h"

#define KEYFILE_E_MAX 8         /* longer exponents are left to OpenSSL */

/* An RSA public key's numbers, big-endian without leading zeros. */
struct keyfile_numbers {
	enum pubkey_form form;          /* what the bytes were */
	size_t n_len, e_len;
	uint8_t n[RSA_MAX_BYTES];       /* filled when n_len <= RSA_MAX_BYTES */
	uint8_t e[KEYFILE_E_MAX];
};

/*
 * Parses p into a new RSA public key of RSA_MIN_BITS..RSA_MAX_BITS. Returns
 * KT_OK, KT_BAD_PUBLIC_KEY or KT_KEY_SIZE, with a sentence in why.
 */
int keyfile_parse(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen);
/*
 * The quick reading alone, without OpenSSL: a DER key of pubkey_der.h's forms,
 * or one PEM block of it labelled PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE
 * with white space only around it. 0 with the numbers (not yet checked), or
 * -1 when p is none of those (a PUBLICKEYBLOB neither).
 */
int keyfile_numbers(const uint8_t *p, size_t len, struct keyfile_numbers *out);
/* keyfile_parse through OpenSSL's decoders only: its fallback, and what the tests compare it with. */
int keyfile_parse_openssl(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen);

#endif
