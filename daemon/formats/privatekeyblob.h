/*
 * PRIVATEKEYBLOB: an RSA private key as CryptExportKey(..., PRIVATEKEYBLOB, ...)
 * writes it: BLOBHEADER (bType 0x07) | "RSA2" | bitlen | pubexp, then
 * n[k] p[h] q[h] dP[h] dQ[h] qInv[h] d[k], little-endian, with k = bitlen/8
 * and h = bitlen/16 (rounded up). Read for `keytrans import`.
 */
#ifndef KT_PRIVATEKEYBLOB_H
#define KT_PRIVATEKEYBLOB_H

#include <stddef.h>
#include <stdint.h>

#define PRIVATEKEYBLOB_TYPE 0x07
#define PRIVATEKEYBLOB_HDR 20

struct rsa_parts;

/* The exact length of the blob of a bitlen-bit key. */
size_t privatekeyblob_len(uint32_t bitlen);
/*
 * Reads blob into parts (zeroed, in locked memory: privkey_parse gives it):
 * each number big-endian without leading zeros, the public exponent from
 * the header. Only the structure is checked here; privkey_parse checks that
 * the numbers make a key. KT_OK, or KT_BAD_REQUEST with a sentence in why.
 */
int privatekeyblob_decode(const uint8_t *blob, size_t len, struct rsa_parts *parts, char *why,
			  size_t whylen);

#endif
