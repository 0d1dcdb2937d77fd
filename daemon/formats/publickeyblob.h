/*
 * PUBLICKEYBLOB: an RSA public key as CryptExportKey writes it
 * (BLOBHEADER | "RSA1" | bitlen | pubexp | modulus little-endian).
 */
#ifndef KT_PUBLICKEYBLOB_H
#define KT_PUBLICKEYBLOB_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "rsa_pub.h"

#define PUBLICKEYBLOB_HDR 20
#define PUBLICKEYBLOB_MAX (PUBLICKEYBLOB_HDR + RSA_MAX_BYTES)
#define PUBLICKEYBLOB_TYPE 0x06

/*
 * Writes the blob (aiKeyAlg CALG_RSA_KEYX, as CryptoAPI exports exchange keys)
 * into out (capacity cap). Returns its length, or 0 when the key is not RSA,
 * its exponent does not fit 32 bits, or out is too small.
 */
size_t publickeyblob_encode(EVP_PKEY *pub, uint8_t *out, size_t cap);
/*
 * Parses a blob into a new RSA public key. Returns KT_OK or
 * KT_BAD_PUBLIC_KEY with a sentence in why.
 */
int publickeyblob_decode(const uint8_t *blob, size_t len, EVP_PKEY **out, char *why, size_t whylen);

#endif
