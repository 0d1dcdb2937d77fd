/*
 * RSA private keys handed over for import: PEM PKCS#1 or PKCS#8
 * (unencrypted), DER PKCS#8 or PKCS#1, or a CryptoAPI PRIVATEKEYBLOB. The
 * format is detected from the bytes. The numbers come out big-endian, the
 * way PKCS#11 takes them, in locked memory that privkey_parts_free wipes.
 */
#ifndef KT_PRIVKEY_H
#define KT_PRIVKEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "rsa_pub.h"

/* One big-endian number, without leading zero bytes. */
struct rsa_num {
	size_t len;
	uint8_t b[RSA_MAX_BYTES];
};

enum rsa_part { RSA_N, RSA_E, RSA_D, RSA_P, RSA_Q, RSA_DP, RSA_DQ, RSA_QINV, RSA_NPARTS };

struct rsa_parts {
	unsigned bits;
	struct rsa_num num[RSA_NPARTS];
};

/*
 * Parses p into a new RSA private key of RSA_MIN_BITS..RSA_MAX_BITS bits,
 * two primes, whose numbers agree with each other. KT_OK, KT_BAD_REQUEST
 * (not a key this accepts) or KT_KEY_SIZE, with a sentence in why.
 */
int privkey_parse(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen);
/* The key's numbers (NULL when out of locked memory or the key lacks one). */
struct rsa_parts *privkey_parts(EVP_PKEY *key);
void privkey_parts_free(struct rsa_parts *parts);

#endif
