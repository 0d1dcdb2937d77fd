/*
 * RSAES-OAEP decoding (RFC 8017 7.1.2), empty label, MGF1 with the same hash:
 * SHA-1 (CryptoAPI's CRYPT_OAEP) or SHA-512 (OPM's session start).
 */
#include "pkcs1.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ct.h"

#define HASH_MAX 64
#define OAEP_EM_MAX 2048        /* 16384-bit modulus */

static const EVP_MD *oaep_md(enum oaep_hash h)
{
	return h == OAEP_SHA512 ? EVP_sha512() : EVP_sha1();
}

size_t oaep_hash_len(enum oaep_hash h)
{
	return h == OAEP_SHA512 ? 64 : 20;
}

/* XORs MGF1-md(seed) over out[0..n). */
static int mgf1_xor(const EVP_MD *md, size_t hlen, uint8_t *out, size_t n, const uint8_t *seed,
		    size_t seed_len)
{
	uint8_t in[OAEP_EM_MAX + 4], h[HASH_MAX];
	uint32_t counter = 0;

	if (seed_len > OAEP_EM_MAX)
		return -1;
	memcpy(in, seed, seed_len);
	for (size_t done = 0; done < n; counter++) {
		size_t take = n - done < hlen ? n - done : hlen;

		in[seed_len] = (uint8_t)(counter >> 24);
		in[seed_len + 1] = (uint8_t)(counter >> 16);
		in[seed_len + 2] = (uint8_t)(counter >> 8);
		in[seed_len + 3] = (uint8_t)counter;
		if (!EVP_Digest(in, seed_len + 4, h, NULL, md, NULL))
			return -1;
		for (size_t i = 0; i < take; i++)
			out[done + i] ^= h[i];
		done += take;
	}
	OPENSSL_cleanse(h, sizeof(h));
	OPENSSL_cleanse(in, seed_len + 4);
	return 0;
}

int oaep_unpad_hash(const uint8_t *em, size_t k, enum oaep_hash hash, size_t min_len,
		    size_t max_len, struct unpadded *out)
{
	const EVP_MD *md = oaep_md(hash);
	size_t hlen = oaep_hash_len(hash), db_len = k - hlen - 1;
	uint8_t seed[HASH_MAX], db[OAEP_EM_MAX], label_hash[HASH_MAX];
	unsigned good, found_one = 0, one_index = 0, mlen;
	int rc = -1;

	if (max_len > PKCS1_MSG_MAX || min_len > max_len || k > OAEP_EM_MAX ||
	    k < 2 * hlen + 2 + max_len)
		return -1;
	/* The hash of the empty label: public, the same for every ciphertext. */
	if (!EVP_Digest("", 0, label_hash, NULL, md, NULL))
		return -1;
	memcpy(seed, em + 1, hlen);
	memcpy(db, em + 1 + hlen, db_len);
	if (mgf1_xor(md, hlen, seed, hlen, db, db_len) != 0 ||
	    mgf1_xor(md, hlen, db, db_len, seed, hlen) != 0)
		goto done;
	good = ct_is_zero(em[0]) & ct_memeq(db, label_hash, hlen);
	for (size_t i = hlen; i < db_len; i++) {
		unsigned is_one = ct_eq(db[i], 1), is_zero = ct_is_zero(db[i]);

		one_index = ct_select(~found_one & is_one, (unsigned)i, one_index);
		/* Until the 0x01 separator every byte must be zero. */
		good &= found_one | is_one | is_zero;
		found_one |= is_one;
	}
	good &= found_one;
	mlen = (unsigned)db_len - one_index - 1;
	unpad_finish(db, db_len, good, mlen, min_len, max_len, out);
	rc = 0;
done:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(db, db_len);
	return rc;
}

int oaep_unpad(const uint8_t *em, size_t k, size_t min_len, size_t max_len, struct unpadded *out)
{
	return oaep_unpad_hash(em, k, OAEP_SHA1, min_len, max_len, out);
}
