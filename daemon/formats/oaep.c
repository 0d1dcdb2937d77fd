/* RSAES-OAEP decoding (RFC 8017 7.1.2) with SHA-1 and MGF1-SHA-1, empty label. */
#include "pkcs1.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ct.h"

#define SHA1_LEN 20
#define OAEP_EM_MAX 2048        /* 16384-bit modulus */

/* SHA-1 of the empty label. */
static const uint8_t empty_label_hash[SHA1_LEN] = {
	0xda, 0x39, 0xa3, 0xee, 0x5e, 0x6b, 0x4b, 0x0d, 0x32, 0x55,
	0xbf, 0xef, 0x95, 0x60, 0x18, 0x90, 0xaf, 0xd8, 0x07, 0x09,
};

/* XORs MGF1-SHA1(seed) over out[0..n). */
static int mgf1_xor(uint8_t *out, size_t n, const uint8_t *seed, size_t seed_len)
{
	uint8_t in[OAEP_EM_MAX + 4], md[SHA1_LEN];
	uint32_t counter = 0;

	if (seed_len > OAEP_EM_MAX)
		return -1;
	memcpy(in, seed, seed_len);
	for (size_t done = 0; done < n; counter++) {
		size_t take = n - done < SHA1_LEN ? n - done : SHA1_LEN;

		in[seed_len] = (uint8_t)(counter >> 24);
		in[seed_len + 1] = (uint8_t)(counter >> 16);
		in[seed_len + 2] = (uint8_t)(counter >> 8);
		in[seed_len + 3] = (uint8_t)counter;
		if (!EVP_Digest(in, seed_len + 4, md, NULL, EVP_sha1(), NULL))
			return -1;
		for (size_t i = 0; i < take; i++)
			out[done + i] ^= md[i];
		done += take;
	}
	OPENSSL_cleanse(md, sizeof(md));
	OPENSSL_cleanse(in, seed_len + 4);
	return 0;
}

int oaep_unpad(const uint8_t *em, size_t k, size_t min_len, size_t max_len, struct unpadded *out)
{
	uint8_t seed[SHA1_LEN], db[OAEP_EM_MAX];
	size_t db_len = k - SHA1_LEN - 1;
	unsigned good, found_one = 0, one_index = 0, mlen;
	int rc = -1;

	if (max_len > PKCS1_MSG_MAX || min_len > max_len || k > OAEP_EM_MAX ||
	    k < 2 * SHA1_LEN + 2 + max_len)
		return -1;
	memcpy(seed, em + 1, SHA1_LEN);
	memcpy(db, em + 1 + SHA1_LEN, db_len);
	if (mgf1_xor(seed, SHA1_LEN, db, db_len) != 0 || mgf1_xor(db, db_len, seed, SHA1_LEN) != 0)
		goto done;
	good = ct_is_zero(em[0]) & ct_memeq(db, empty_label_hash, SHA1_LEN);
	for (size_t i = SHA1_LEN; i < db_len; i++) {
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
