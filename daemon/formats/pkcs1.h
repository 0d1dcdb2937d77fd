/*
 * Constant-time removal of PKCS#1 v1.5 encryption padding (type 2) and of
 * OAEP (SHA-1 or SHA-512, MGF1 with it, empty label) from the result of a raw RSA private
 * operation. Both check the message length against [min_len, max_len] inside
 * the same constant-time computation, so that "bad padding" and "wrong key
 * length" are one outcome (docs/formats.md: no padding oracle).
 */
#ifndef KT_PKCS1_H
#define KT_PKCS1_H

#include <stddef.h>
#include <stdint.h>

#define PKCS1_MSG_MAX 64        /* longest message these decoders return */

struct unpadded {
	unsigned good;          /* all-ones when the padding and length were right */
	size_t len;             /* message length (meaningful when good) */
	uint8_t msg[PKCS1_MSG_MAX];
};

/*
 * em: the k-byte big-endian result of the raw RSA operation. min_len/max_len
 * are public (they follow from the ALG_ID); max_len <= PKCS1_MSG_MAX and
 * k >= max_len + 11. Returns -1 only for those public argument errors;
 * otherwise 0 with out->good saying whether decoding succeeded.
 */
int pkcs1_unpad(const uint8_t *em, size_t k, size_t min_len, size_t max_len, struct unpadded *out);
enum oaep_hash { OAEP_SHA1, OAEP_SHA512 };

/* The hash's output length: 20 or 64. */
size_t oaep_hash_len(enum oaep_hash h);
/* The same for OAEP with hash (and MGF1-hash); k must be at least 2*hLen + 2 + max_len. */
int oaep_unpad_hash(const uint8_t *em, size_t k, enum oaep_hash hash, size_t min_len,
		    size_t max_len, struct unpadded *out);
/* OAEP with SHA-1 (CryptoAPI's CRYPT_OAEP). */
int oaep_unpad(const uint8_t *em, size_t k, size_t min_len, size_t max_len, struct unpadded *out);

/*
 * Shared last step of both decoders: folds the length check into good and
 * copies the message (the last mlen bytes of src) out in constant time.
 */
void unpad_finish(const uint8_t *src, size_t src_len, unsigned good, unsigned mlen,
		  size_t min_len, size_t max_len, struct unpadded *out);

#endif
