/*
 * Private keys for import: the PRIVATEKEYBLOB parser against the CryptoAPI
 * vectors (every key, then truncated, lengthened and corrupted), and the
 * format detection of privkey_parse (PEM PKCS#1 / PKCS#8, DER, blob, refusals).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keytrans_status.h"
#include "privatekeyblob.h"
#include "privkey.h"
#include "vectors.h"

static const char *const key_names[] = { "rsa1024", "rsa2048", "rsa4096", "wine1024" };

static uint8_t *blob_of(const char *name, size_t *len)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "keys/%s.priv.blob", name);
	return vectors_file(rel, len);
}

/* The decoded key is the vector key: same public and private numbers. */
static void test_blob_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		EVP_PKEY *want = vectors_private_key(key_names[i]), *got = NULL;
		struct rsa_parts *a, *b;
		char why[256] = "";
		size_t len;
		uint8_t *blob = blob_of(key_names[i], &len);

		assert_int_equal(len, privatekeyblob_len((uint32_t)EVP_PKEY_get_bits(want)));
		assert_int_equal(privatekeyblob_decode(blob, len, &got, why, sizeof(why)), KT_OK);
		assert_int_equal(EVP_PKEY_eq(want, got), 1);
		a = privkey_parts(want);
		b = privkey_parts(got);
		assert_non_null(a);
		assert_non_null(b);
		assert_memory_equal(a, b, sizeof(*a));
		privkey_parts_free(a);
		privkey_parts_free(b);
		EVP_PKEY_free(got);
		EVP_PKEY_free(want);
		free(blob);
	}
}

static void assert_refused(const uint8_t *blob, size_t len, const char *why_part)
{
	EVP_PKEY *k = (EVP_PKEY *)1;
	char why[256] = "";

	assert_int_equal(privatekeyblob_decode(blob, len, &k, why, sizeof(why)), KT_BAD_REQUEST);
	assert_null(k);
	if (strstr(why, why_part) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", why, why_part);
}

/* Every length but the right one, and every header field. */
static void test_blob_refusals(void **state)
{
	size_t len;
	uint8_t *blob = blob_of("rsa1024", &len), *longer = malloc(len + 1), *copy = malloc(len);

	(void)state;
	for (size_t n = 0; n < len; n++)
		assert_refused(blob, n, n < PRIVATEKEYBLOB_HDR ? "header" : "bytes, but");
	memcpy(longer, blob, len);
	longer[len] = 0;
	assert_refused(longer, len + 1, "bytes, but a 1024-bit key's blob has");
	static const struct { size_t off; uint8_t v; const char *why; } bad[] = {
		{ 0, 0x06, "bType" }, { 1, 0x03, "bVersion" }, { 2, 1, "reserved" },
		{ 5, 0x66, "aiKeyAlg" }, { 11, '1', "RSA2" }, { 12, 0x08, "bitlen" },
		{ 13, 0x02, "bitlen" }, { 14, 1, "bitlen" }, { 16, 0x00, "exponent" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(copy, blob, len);
		copy[bad[i].off] = bad[i].v;
		assert_refused(copy, len, bad[i].why);
	}
	/* An exponent of 1: odd, but no key. */
	memcpy(copy, blob, len);
	memcpy(copy + 16, "\x01\x00\x00\x00", 4);
	assert_refused(copy, len, "exponent");
	free(copy);
	free(longer);
	free(blob);
}

/* The structure is right but the numbers are not one key: privkey_parse refuses it. */
static void test_blob_inconsistent(void **state)
{
	char why[256] = "";
	EVP_PKEY *k = NULL;
	size_t len;
	uint8_t *blob = blob_of("rsa2048", &len);

	(void)state;
	blob[PRIVATEKEYBLOB_HDR + 256 + 5] ^= 0x40;     /* a byte of p */
	assert_int_equal(privkey_parse(blob, len, &k, why, sizeof(why)), KT_BAD_REQUEST);
	assert_null(k);
	assert_non_null(strstr(why, "do not make one RSA key"));
	free(blob);
}

/* The vector key written by OpenSSL in the form asked for. */
static size_t write_key(EVP_PKEY *k, const char *form, uint8_t **out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	const char *p;
	long n;

	if (strcmp(form, "pkcs8-pem") == 0)
		assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
	else if (strcmp(form, "pkcs1-pem") == 0)
		assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, k, NULL, NULL, 0, NULL,
								     NULL), 1);
	else if (strcmp(form, "pkcs8-der") == 0)
		assert_int_equal(i2d_PKCS8PrivateKey_bio(bio, k, NULL, NULL, 0, NULL, NULL), 1);
	else
		assert_true(i2d_PrivateKey_bio(bio, k) == 1);
	n = BIO_get_mem_data(bio, &p);
	*out = malloc((size_t)n);
	memcpy(*out, p, (size_t)n);
	BIO_free(bio);
	return (size_t)n;
}

static void test_parse_formats(void **state)
{
	static const char *const forms[] = { "pkcs8-pem", "pkcs1-pem", "pkcs8-der", "pkcs1-der" };
	EVP_PKEY *want = vectors_private_key("rsa2048");

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		EVP_PKEY *got = NULL;
		char why[256] = "";
		uint8_t *p;
		size_t n = write_key(want, forms[i], &p);

		assert_int_equal(privkey_parse(p, n, &got, why, sizeof(why)), KT_OK);
		assert_int_equal(EVP_PKEY_eq(want, got), 1);
		EVP_PKEY_free(got);
		/* One byte more or less is no longer one key. */
		if (forms[i][6] == 'd') {
			assert_int_equal(privkey_parse(p, n - 1, &got, why, sizeof(why)), KT_BAD_REQUEST);
			assert_null(got);
		}
		free(p);
	}
	EVP_PKEY_free(want);
}

static void assert_parse_refused(const void *p, size_t n, int status, const char *why_part)
{
	EVP_PKEY *k = NULL;
	char why[256] = "";

	assert_int_equal(privkey_parse(p, n, &k, why, sizeof(why)), status);
	assert_null(k);
	if (strstr(why, why_part) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", why, why_part);
}

static void test_parse_refusals(void **state)
{
	static const char enc[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n"
				  "-----END ENCRYPTED PRIVATE KEY-----\n";
	static const char bad_pem[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	size_t n;
	uint8_t *pub = vectors_file("keys/rsa2048.pub.pem", &n);

	(void)state;
	assert_parse_refused("", 0, KT_BAD_REQUEST, "empty");
	assert_parse_refused("garbage!", 8, KT_BAD_REQUEST, "not an RSA private key");
	assert_parse_refused(enc, sizeof(enc) - 1, KT_BAD_REQUEST, "encrypted");
	assert_parse_refused(bad_pem, sizeof(bad_pem) - 1, KT_BAD_REQUEST, "PEM private key");
	assert_parse_refused(pub, n, KT_BAD_REQUEST, "PEM private key");
	free(pub);
}

static void test_parse_key_size(void **state)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *small = NULL;
	uint8_t *p;
	size_t n;

	(void)state;
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 512), 1);
	assert_int_equal(EVP_PKEY_generate(ctx, &small), 1);
	n = write_key(small, "pkcs8-der", &p);
	assert_parse_refused(p, n, KT_KEY_SIZE, "512-bit");
	free(p);
	EVP_PKEY_free(small);
	EVP_PKEY_CTX_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_vectors),
		cmocka_unit_test(test_blob_refusals),
		cmocka_unit_test(test_blob_inconsistent),
		cmocka_unit_test(test_parse_formats),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_key_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
