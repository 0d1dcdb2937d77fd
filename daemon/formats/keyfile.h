/*
 * Recipient public keys as applications hand them over: PUBLICKEYBLOB,
 * PEM or DER SubjectPublicKeyInfo (or PKCS#1 RSAPublicKey), PEM or DER X.509
 * certificate. The format is detected from the bytes.
 */
#ifndef KT_KEYFILE_H
#define KT_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/*
 * Parses p into a new RSA public key of RSA_MIN_BITS..RSA_MAX_BITS. Returns
 * KT_OK, KT_BAD_PUBLIC_KEY or KT_KEY_SIZE, with a sentence in why.
 */
int keyfile_parse(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen);

#endif
