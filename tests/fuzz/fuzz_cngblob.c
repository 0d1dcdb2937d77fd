/*
 * fuzz_cngblob: CNG RSA key blobs (cngblob.c), each input read both ways:
 * as a recipient (cngblob_public_decode, then cngblob_public_encode of the
 * key it made) and as a key to import (privkey_parse, which detects the
 * private blobs, on a locked heap as the daemon runs it).
 *
 * Invariants: an accepted public blob has magic RSA1, exactly 24 +
 * cbPublicExp + cbModulus bytes, a BitLength of 1024..16384 that the modulus
 * fills, an odd modulus; the key's numbers are the blob's; re-encoding gives
 * the blob itself when its exponent has no leading zero and its prime counts
 * are 0 (the canonical form), and always a blob that decodes to the same key.
 * An accepted private blob (RSA2/RSA3) is a key whose modulus is the blob's,
 * of BitLength bits, whose numbers come out without leading zeros, in the
 * locked heap. A refusal leaves no key behind and says why; the locked heap
 * is back where it was either way.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "cngblob.h"
#include "fuzz.h"
#include "keytrans_status.h"
#include "privkey.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(CRYPTO_secure_malloc_init(FUZZ_SECURE_HEAP, 16) != 0);
	return 0;
}

static void check_public(const uint8_t *data, size_t size, EVP_PKEY *pub)
{
	uint8_t n[RSA_MAX_BYTES], out[CNGBLOB_PUBLIC_MAX];
	uint32_t bits, cb_e, cb_n;
	EVP_PKEY *again = NULL;
	char why[256] = "";
	uint64_t e, blob_e = 0;
	size_t k, len;

	FUZZ_CHECK(size >= CNGBLOB_HDR && fuzz_le32(data) == CNG_RSA1_MAGIC);
	bits = fuzz_le32(data + 4);
	cb_e = fuzz_le32(data + 8);
	cb_n = fuzz_le32(data + 12);
	FUZZ_CHECK(bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS && cb_n == (bits + 7) / 8);
	FUZZ_CHECK(cb_e >= 1 && cb_e <= CNGBLOB_E_MAX && size == CNGBLOB_HDR + cb_e + cb_n);
	for (size_t i = 0; i < cb_e; i++)
		blob_e = blob_e << 8 | data[CNGBLOB_HDR + i];
	FUZZ_CHECK((blob_e & 1) && blob_e != 1);
	FUZZ_CHECK(rsa_pub_numbers(pub, n, &k, &e) == 0);
	FUZZ_CHECK(k == cb_n && EVP_PKEY_get_bits(pub) == (int)bits && e == blob_e);
	FUZZ_CHECK(memcmp(n, data + CNGBLOB_HDR + cb_e, k) == 0 && (n[k - 1] & 1));
	len = cngblob_public_encode(pub, out, sizeof(out));
	FUZZ_CHECK(len > CNGBLOB_HDR && len <= size);
	if (data[CNGBLOB_HDR] != 0 && fuzz_le32(data + 16) == 0 && fuzz_le32(data + 20) == 0)
		FUZZ_CHECK(len == size && memcmp(out, data, size) == 0);
	FUZZ_CHECK(cngblob_public_decode(out, len, &again, why, sizeof(why)) == KT_OK);
	FUZZ_CHECK(EVP_PKEY_eq(pub, again) == 1);
	FUZZ_CHECK(cngblob_public_encode(pub, out, len - 1) == 0);
	EVP_PKEY_free(again);
}

static void as_public(const uint8_t *data, size_t size)
{
	uint8_t *in = fuzz_dup(data, size);
	EVP_PKEY *pub = (EVP_PKEY *)1;
	char why[256] = "";
	int st = cngblob_public_decode(in, size, &pub, why, sizeof(why));

	if (st != KT_OK) {
		FUZZ_CHECK((st == KT_BAD_PUBLIC_KEY || st == KT_KEY_SIZE) && pub == NULL);
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
	} else {
		check_public(in, size, pub);
		EVP_PKEY_free(pub);
	}
	free(in);
}

static void check_private(const uint8_t *data, size_t size, const struct rsa_parts *parts)
{
	const struct rsa_num *n = &parts->num[RSA_N];
	uint32_t magic = fuzz_le32(data), cb_e, cb_n;

	FUZZ_CHECK(magic == CNG_RSA2_MAGIC || magic == CNG_RSA3_MAGIC);
	FUZZ_CHECK(CRYPTO_secure_allocated(parts) && parts->bits == fuzz_le32(data + 4));
	cb_e = fuzz_le32(data + 8);
	cb_n = fuzz_le32(data + 12);
	FUZZ_CHECK(cb_n == (parts->bits + 7) / 8 && n->len == cb_n && size > CNGBLOB_HDR + cb_e + cb_n);
	FUZZ_CHECK(memcmp(n->b, data + CNGBLOB_HDR + cb_e, cb_n) == 0);
	for (int i = 0; i < RSA_NPARTS; i++)
		FUZZ_CHECK(parts->num[i].len > 0 && parts->num[i].b[0] != 0);
}

static void as_private(const uint8_t *data, size_t size)
{
	size_t used = CRYPTO_secure_used();
	uint8_t *in = fuzz_dup(data, size);
	struct rsa_parts *parts = (struct rsa_parts *)1;
	char why[256] = "";
	int st = privkey_parse(in, size, &parts, why, sizeof(why));

	if (st != KT_OK) {
		FUZZ_CHECK((st == KT_BAD_REQUEST || st == KT_KEY_SIZE) && parts == NULL);
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
	} else if (cngblob_magic(in, size) != 0) {
		check_private(in, size, parts);
	}
	privkey_parts_free(parts);
	FUZZ_CHECK(CRYPTO_secure_used() == used);
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_public(data, size);
	as_private(data, size);
	return 0;
}
