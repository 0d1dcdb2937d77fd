/*
 * CNG RSA key blobs (BCRYPT_RSAKEY_BLOB), as BCryptExportKey writes them and
 * BCryptImportKeyPair reads them: a header of six u32 LE (Magic "RSA1",
 * "RSA2" or "RSA3", BitLength, cbPublicExp, cbModulus, cbPrime1, cbPrime2),
 * then big-endian PublicExponent and Modulus; private blobs (RSA2) add
 * Prime1 and Prime2, full private blobs (RSA3) also Exponent1, Exponent2,
 * Coefficient and PrivateExponent. docs/formats.md has the layout and rules.
 *
 * BCRYPT_RSAPUBLIC_BLOB is read as a recipient key and written by `pubkey
 * --format cng`; the private blobs are read for `keytrans import`, into the
 * locked memory of privkey.h (never an EVP_PKEY: OpenSSL would copy the
 * numbers into the ordinary heap).
 */
#ifndef KT_CNGBLOB_H
#define KT_CNGBLOB_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "rsa_pub.h"

#define CNGBLOB_HDR 24
#define CNGBLOB_E_MAX 8                 /* exponents up to 2^64 - 1, as elsewhere */
#define CNGBLOB_PUBLIC_MAX (CNGBLOB_HDR + CNGBLOB_E_MAX + RSA_MAX_BYTES)

/* The magics, "RSA1" "RSA2" "RSA3" read as u32 LE. */
#define CNG_RSA1_MAGIC 0x31415352u      /* BCRYPT_RSAPUBLIC_MAGIC */
#define CNG_RSA2_MAGIC 0x32415352u      /* BCRYPT_RSAPRIVATE_MAGIC */
#define CNG_RSA3_MAGIC 0x33415352u      /* BCRYPT_RSAFULLPRIVATE_MAGIC */

struct rsa_parts;

/* The blob's magic when p starts with one of the three (0 otherwise): the format's detection. */
uint32_t cngblob_magic(const uint8_t *p, size_t len);
/*
 * Writes pub's BCRYPT_RSAPUBLIC_BLOB into out (capacity cap), as
 * BCryptExportKey does: the exponent without leading zero bytes, the modulus
 * in exactly (BitLength + 7) / 8 bytes, cbPrime1 = cbPrime2 = 0. Returns its
 * length, or 0 when the key is not RSA, its exponent is longer than 64 bits,
 * or out is too small.
 */
size_t cngblob_public_encode(EVP_PKEY *pub, uint8_t *out, size_t cap);
/*
 * Parses a BCRYPT_RSAPUBLIC_BLOB into a new RSA public key of
 * RSA_MIN_BITS..RSA_MAX_BITS. KT_OK, KT_BAD_PUBLIC_KEY or KT_KEY_SIZE, with a
 * sentence in why.
 */
int cngblob_public_decode(const uint8_t *blob, size_t len, EVP_PKEY **out, char *why,
			  size_t whylen);
/*
 * Reads a BCRYPT_RSAPRIVATE_BLOB or BCRYPT_RSAFULLPRIVATE_BLOB into parts
 * (zeroed, in locked memory: privkey_parse gives it), each number big-endian
 * without leading zeros. For a private blob d, dP, dQ and qInv are computed
 * (d = e^-1 mod lcm(p - 1, q - 1), in the secure heap). The structure is
 * checked here, privkey_parse checks that the numbers make one key. KT_OK,
 * KT_BAD_REQUEST, KT_KEY_SIZE or KT_BUSY, with a sentence in why.
 */
int cngblob_private_decode(const uint8_t *blob, size_t len, struct rsa_parts *parts, char *why,
			   size_t whylen);

#endif
