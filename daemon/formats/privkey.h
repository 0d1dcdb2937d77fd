/*
 * RSA private keys handed over for import: PEM PKCS#1 or PKCS#8
 * (unencrypted), DER PKCS#1 or PKCS#8, a CryptoAPI PRIVATEKEYBLOB, or a CNG
 * BCRYPT_RSAPRIVATE_BLOB or BCRYPT_RSAFULLPRIVATE_BLOB (cngblob.h). The
 * format is detected from the bytes. The numbers come out big-endian, the
 * way PKCS#11 takes them, in locked memory that privkey_parts_free wipes.
 *
 * The decoding is our own, not OpenSSL's: its decoders and key checks leave
 * copies of the numbers in the ordinary heap (unlocked, freed unwiped).
 * Everything here that holds a secret, the base64-decoded DER of a PEM key
 * and the BIGNUMs of the checks included, is in OpenSSL's secure heap and is
 * wiped on every path.
 */
#ifndef KT_PRIVKEY_H
#define KT_PRIVKEY_H

#include <stddef.h>
#include <stdint.h>

#include "rsa_pub.h"

/* One big-endian number, without leading zero bytes. */
struct rsa_num {
	size_t len;
	uint8_t b[RSA_MAX_BYTES];
};

/* In the order of RFC 8017's RSAPrivateKey. */
enum rsa_part { RSA_N, RSA_E, RSA_D, RSA_P, RSA_Q, RSA_DP, RSA_DQ, RSA_QINV, RSA_NPARTS };

struct rsa_parts {
	unsigned bits;          /* of the modulus */
	struct rsa_num num[RSA_NPARTS];
};

/*
 * Parses p (len bytes) into the numbers of an RSA private key of
 * RSA_MIN_BITS..RSA_MAX_BITS bits, two factors, whose numbers agree with
 * each other (primality is not tested), in locked memory (*out; NULL on
 * failure). KT_OK, KT_BAD_REQUEST (not a key this accepts), KT_KEY_SIZE, or
 * KT_BUSY (out of locked memory), with a sentence in why that names no number.
 */
int privkey_parse(const uint8_t *p, size_t len, struct rsa_parts **out, char *why, size_t whylen);
/* Wipes and frees parts (NULL is fine). */
void privkey_parts_free(struct rsa_parts *parts);
/* Drops num's leading zero bytes, in place: the number stays in its locked buffer. */
void rsa_num_strip(struct rsa_num *num);

#endif
