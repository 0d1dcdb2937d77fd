/*
 * fuzz_privkey: privkey_parse (PEM, DER, PRIVATEKEYBLOB detection and
 * decoding, the key checks), then privkey_parts of an accepted key.
 *
 * Invariants: an accepted input is an RSA key of 1024 to 16384 bits whose
 * numbers all come out, with n of bits/8 bytes; an accepted PRIVATEKEYBLOB
 * has exactly the length its bitlen gives and the blob's modulus; a refused
 * input is KT_BAD_REQUEST or KT_KEY_SIZE, leaves no key behind and says why.
 */
#include <string.h>

#include "fuzz.h"
#include "keytrans_status.h"
#include "privatekeyblob.h"
#include "privkey.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_blob(const uint8_t *data, size_t size, const struct rsa_parts *parts)
{
	const struct rsa_num *n = &parts->num[RSA_N];
	uint32_t bitlen;

	FUZZ_CHECK(size >= PRIVATEKEYBLOB_HDR);
	bitlen = le32(data + 12);
	FUZZ_CHECK(size == privatekeyblob_len(bitlen));
	FUZZ_CHECK(n->len <= bitlen / 8);
	for (size_t i = 0; i < n->len; i++)
		FUZZ_CHECK(n->b[i] == data[PRIVATEKEYBLOB_HDR + n->len - 1 - i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = fuzz_dup(data, size);
	struct rsa_parts *parts = NULL;
	EVP_PKEY *key = (EVP_PKEY *)1;
	char why[256] = "";
	int st = privkey_parse(in, size, &key, why, sizeof(why));

	if (st != KT_OK) {
		FUZZ_CHECK((st == KT_BAD_REQUEST || st == KT_KEY_SIZE) && key == NULL);
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
		goto done;
	}
	FUZZ_CHECK(key != NULL && EVP_PKEY_is_a(key, "RSA"));
	FUZZ_CHECK(EVP_PKEY_get_bits(key) >= RSA_MIN_BITS && EVP_PKEY_get_bits(key) <= RSA_MAX_BITS);
	parts = privkey_parts(key);
	FUZZ_CHECK(parts != NULL && parts->bits == (unsigned)EVP_PKEY_get_bits(key));
	FUZZ_CHECK(parts->num[RSA_N].len == (parts->bits + 7) / 8);
	for (int i = 0; i < RSA_NPARTS; i++)
		FUZZ_CHECK(parts->num[i].len > 0 && parts->num[i].b[0] != 0);
	if (data[0] == PRIVATEKEYBLOB_TYPE)
		check_blob(data, size, parts);
done:
	privkey_parts_free(parts);
	EVP_PKEY_free(key == (EVP_PKEY *)1 ? NULL : key);
	free(in);
	return 0;
}
