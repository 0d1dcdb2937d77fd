/*
 * fuzz_privkey: privkey_parse (PEM, DER, PRIVATEKEYBLOB detection and
 * decoding, the checks on the numbers) on a locked heap, as the daemon
 * runs it.
 *
 * Invariants: an accepted input is an RSA key of 1024 to 16384 bits whose
 * numbers all come out without leading zeros, with n of bits/8 bytes
 * (rounded up), in the locked heap; an accepted PRIVATEKEYBLOB has exactly
 * the length its bitlen gives and the blob's modulus; an accepted DER or
 * PEM key that OpenSSL's decoder also reads has the same numbers there; a
 * refused input is KT_BAD_REQUEST or KT_KEY_SIZE, leaves no key behind and
 * says why; either way the locked heap is back where it was.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fuzz.h"
#include "keytrans_status.h"
#include "privatekeyblob.h"
#include "privkey.h"

static const char *const ossl_names[RSA_NPARTS] = {
	[RSA_N] = OSSL_PKEY_PARAM_RSA_N, [RSA_E] = OSSL_PKEY_PARAM_RSA_E,
	[RSA_D] = OSSL_PKEY_PARAM_RSA_D, [RSA_P] = OSSL_PKEY_PARAM_RSA_FACTOR1,
	[RSA_Q] = OSSL_PKEY_PARAM_RSA_FACTOR2, [RSA_DP] = OSSL_PKEY_PARAM_RSA_EXPONENT1,
	[RSA_DQ] = OSSL_PKEY_PARAM_RSA_EXPONENT2, [RSA_QINV] = OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	FUZZ_CHECK(CRYPTO_secure_malloc_init(FUZZ_SECURE_HEAP, 16) != 0);
	return 0;
}

static void check_blob(const uint8_t *data, size_t size, const struct rsa_parts *parts)
{
	const struct rsa_num *n = &parts->num[RSA_N];
	uint32_t bitlen;

	FUZZ_CHECK(size >= PRIVATEKEYBLOB_HDR);
	bitlen = fuzz_le32(data + 12);
	FUZZ_CHECK(size == privatekeyblob_len(bitlen));
	FUZZ_CHECK(n->len <= bitlen / 8);
	for (size_t i = 0; i < n->len; i++)
		FUZZ_CHECK(n->b[i] == data[PRIVATEKEYBLOB_HDR + n->len - 1 - i]);
}

/* OpenSSL's decoder on the same bytes (DER, or PEM), NULL where it refuses them. */
static EVP_PKEY *openssl_read(const uint8_t *data, size_t size)
{
	const unsigned char *q = data;
	EVP_PKEY *key;
	BIO *bio;

	if (data[0] == 0x30)
		return d2i_AutoPrivateKey(NULL, &q, (long)size);
	bio = BIO_new_mem_buf(data, (int)size);
	key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return key;
}

/* Where both accept a DER or PEM key, they find the same numbers. */
static void check_same_as_openssl(const uint8_t *data, size_t size, const struct rsa_parts *parts)
{
	EVP_PKEY *key = openssl_read(data, size);

	if (key == NULL || !EVP_PKEY_is_a(key, "RSA")) {
		EVP_PKEY_free(key);
		ERR_clear_error();
		return;
	}
	for (int i = 0; i < RSA_NPARTS; i++) {
		BIGNUM *want = NULL, *got = BN_bin2bn(parts->num[i].b, (int)parts->num[i].len, NULL);

		FUZZ_CHECK(EVP_PKEY_get_bn_param(key, ossl_names[i], &want) == 1 && got != NULL);
		FUZZ_CHECK(BN_cmp(want, got) == 0);
		BN_clear_free(want);
		BN_clear_free(got);
	}
	EVP_PKEY_free(key);
	ERR_clear_error();
}

static void check_accepted(const uint8_t *data, size_t size, const struct rsa_parts *parts)
{
	FUZZ_CHECK(parts != NULL && CRYPTO_secure_allocated(parts));
	FUZZ_CHECK(parts->bits >= RSA_MIN_BITS && parts->bits <= RSA_MAX_BITS);
	FUZZ_CHECK(parts->num[RSA_N].len == (parts->bits + 7) / 8);
	for (int i = 0; i < RSA_NPARTS; i++)
		FUZZ_CHECK(parts->num[i].len > 0 && parts->num[i].b[0] != 0);
	if (data[0] == PRIVATEKEYBLOB_TYPE)
		check_blob(data, size, parts);
	else
		check_same_as_openssl(data, size, parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t used = CRYPTO_secure_used();
	uint8_t *in = fuzz_dup(data, size);
	struct rsa_parts *parts = (struct rsa_parts *)1;
	char why[256] = "";
	int st = privkey_parse(in, size, &parts, why, sizeof(why));

	if (st != KT_OK) {
		FUZZ_CHECK((st == KT_BAD_REQUEST || st == KT_KEY_SIZE) && parts == NULL);
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
	} else {
		check_accepted(in, size, parts);
	}
	privkey_parts_free(parts);
	FUZZ_CHECK(CRYPTO_secure_used() == used);
	free(in);
	return 0;
}
