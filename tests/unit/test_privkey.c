/*
 * Private keys for import: the PRIVATEKEYBLOB parser against the CryptoAPI
 * vectors (every key, then truncated, lengthened and corrupted), the DER and
 * PEM decoding of privkey_parse (every form OpenSSL writes, then every
 * prefix, wrong tags, lengths and integers, trailing bytes, PEM armour
 * faults), the checks on the numbers, and that the numbers live in the
 * locked heap only, which every path gives back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keytrans_status.h"
#include "privatekeyblob.h"
#include "privkey.h"
#include "privkey_check.h"
#include "vectors.h"

#define SECURE_HEAP PRIVKEY_CHECK_HEAP
#define DER_MAX 20000

static const char *const key_names[] = { "rsa1024", "rsa2048", "rsa4096", "wine1024" };


/* ---- helpers ---- */

static void assert_accepted(const void *p, size_t n, const struct rsa_parts *want)
{
	size_t before = CRYPTO_secure_used();
	struct rsa_parts *got = NULL;
	char why[256] = "";

	if (privkey_check_parse(p, n, &got, why, sizeof(why)) != KT_OK)
		fail_msg("refused: %s", why);
	privkey_check_same(got, want);
	privkey_parts_free(got);
	assert_int_equal(CRYPTO_secure_used(), before);
}

static void assert_parse_refused(const void *p, size_t n, int status, const char *why_part)
{
	struct rsa_parts *k = (struct rsa_parts *)1;
	char why[256] = "";

	assert_int_equal(privkey_check_parse(p, n, &k, why, sizeof(why)), status);
	if (strstr(why, why_part) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", why, why_part);
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
	*out = malloc((size_t)n + 1);
	memcpy(*out, p, (size_t)n);
	BIO_free(bio);
	return (size_t)n;
}

/* ---- a DER writer for keys OpenSSL would not write ---- */

struct der {
	uint8_t b[DER_MAX];
	size_t len;
};

static void der_raw(struct der *d, const void *p, size_t n)
{
	assert_true(d->len + n <= sizeof(d->b));
	memcpy(d->b + d->len, p, n);
	d->len += n;
}

static void der_put(struct der *d, uint8_t tag, const void *p, size_t n)
{
	uint8_t h[4] = { tag };
	size_t hl = 2;

	if (n < 0x80) {
		h[1] = (uint8_t)n;
	} else if (n < 0x100) {
		h[1] = 0x81;
		h[2] = (uint8_t)n;
		hl = 3;
	} else {
		h[1] = 0x82;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hl = 4;
	}
	der_raw(d, h, hl);
	der_raw(d, p, n);
}

/* A non-negative INTEGER from big-endian bytes without leading zeros. */
static void der_uint(struct der *d, const uint8_t *b, size_t n)
{
	uint8_t *v = malloc(n + 1);

	v[0] = 0;
	memcpy(v + 1, b, n);
	if (n > 0 && (b[0] & 0x80))
		der_put(d, 0x02, v, n + 1);
	else
		der_put(d, 0x02, v + 1, n);
	free(v);
}

static void der_wrap(struct der *d, uint8_t tag, const struct der *in)
{
	der_put(d, tag, in->b, in->len);
}

/* RSAPrivateKey of k's numbers with version v, then extra (the elements' bytes) inside. */
static void pkcs1_of(struct der *out, const struct rsa_parts *k, uint8_t v, const struct der *extra)
{
	struct der *body = calloc(1, sizeof(*body));

	der_put(body, 0x02, &v, 1);
	for (int i = 0; i < RSA_NPARTS; i++)
		der_uint(body, k->num[i].b, k->num[i].len);
	if (extra != NULL)
		der_raw(body, extra->b, extra->len);
	out->len = 0;
	der_wrap(out, 0x30, body);
	free(body);
}

static const uint8_t rsa_oid[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
static const uint8_t null_params[] = { 0x05, 0x00 };

/* PrivateKeyInfo: version v, algorithm alg (the SEQUENCE's contents), key, then tail. */
static void pkcs8_of(struct der *out, uint8_t v, const struct der *alg, const struct der *key,
		     const struct der *tail)
{
	struct der *body = calloc(1, sizeof(*body));

	der_put(body, 0x02, &v, 1);
	der_wrap(body, 0x30, alg);
	der_wrap(body, 0x04, key);
	if (tail != NULL)
		der_raw(body, tail->b, tail->len);
	out->len = 0;
	der_wrap(out, 0x30, body);
	free(body);
}

static void rsa_alg(struct der *alg)
{
	alg->len = 0;
	der_raw(alg, rsa_oid, sizeof(rsa_oid));
	der_raw(alg, null_params, sizeof(null_params));
}

/* ---- PRIVATEKEYBLOB ---- */

static uint8_t *blob_of(const char *name, size_t *len)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "keys/%s.priv.blob", name);
	return vectors_file(rel, len);
}

/* The decoded numbers are the vector key's, through the blob parser and through privkey_parse. */
static void test_blob_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		EVP_PKEY *k = vectors_private_key(key_names[i]);
		struct rsa_parts *want = privkey_check_numbers(k), *got = calloc(1, sizeof(*got));
		char why[256] = "";
		size_t len;
		uint8_t *blob = blob_of(key_names[i], &len);

		assert_int_equal(len, privatekeyblob_len(want->bits));
		assert_int_equal(privatekeyblob_decode(blob, len, got, why, sizeof(why)), KT_OK);
		got->bits = want->bits;         /* privkey_parse's check sets it */
		privkey_check_same(got, want);
		assert_accepted(blob, len, want);
		free(blob);
		free(got);
		free(want);
		EVP_PKEY_free(k);
	}
}

static void assert_refused(const uint8_t *blob, size_t len, const char *why_part)
{
	struct rsa_parts *k = calloc(1, sizeof(*k));
	char why[256] = "";

	assert_int_equal(privatekeyblob_decode(blob, len, k, why, sizeof(why)), KT_BAD_REQUEST);
	if (strstr(why, why_part) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", why, why_part);
	/* privkey_parse takes it for a blob by its first byte. */
	if (blob[0] == PRIVATEKEYBLOB_TYPE)
		assert_parse_refused(blob, len, KT_BAD_REQUEST, why_part);
	free(k);
}

/* Every length but the right one, and every header field. */
static void test_blob_refusals(void **state)
{
	size_t len;
	uint8_t *blob = blob_of("rsa1024", &len), *longer = malloc(len + 1), *copy = malloc(len);

	(void)state;
	for (size_t n = 1; n < len; n++)
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
	size_t len;
	uint8_t *blob = blob_of("rsa2048", &len);

	(void)state;
	blob[PRIVATEKEYBLOB_HDR + 256 + 5] ^= 0x40;     /* a byte of p */
	assert_parse_refused(blob, len, KT_BAD_REQUEST, "do not make one RSA key");
	blob[PRIVATEKEYBLOB_HDR + 256 + 5] ^= 0x40;
	memset(blob + PRIVATEKEYBLOB_HDR + 256 + 4 * 128, 0, 128);     /* dQ = 0 */
	assert_parse_refused(blob, len, KT_BAD_REQUEST, "do not make one RSA key");
	free(blob);
}

/* ---- DER and PEM as OpenSSL writes them ---- */

static void test_parse_formats(void **state)
{
	static const char *const forms[] = { "pkcs8-pem", "pkcs1-pem", "pkcs8-der", "pkcs1-der" };

	(void)state;
	for (size_t k = 0; k < sizeof(key_names) / sizeof(key_names[0]); k++) {
		EVP_PKEY *key = vectors_private_key(key_names[k]);
		struct rsa_parts *want = privkey_check_numbers(key);

		for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
			uint8_t *p;
			size_t n = write_key(key, forms[i], &p);

			assert_accepted(p, n, want);
			if (forms[i][6] == 'd') {
				/* One byte more or less is no longer one key. */
				assert_parse_refused(p, n - 1, KT_BAD_REQUEST, "not an RSA private key");
				p[n] = 0;
				assert_parse_refused(p, n + 1, KT_BAD_REQUEST, "bytes follow");
			}
			free(p);
		}
		free(want);
		EVP_PKEY_free(key);
	}
}

/* The vector key file itself (PKCS#8 PEM), and the same text laid out otherwise. */
static void test_pem_layouts(void **state)
{
	EVP_PKEY *key = vectors_private_key("rsa2048");
	struct rsa_parts *want = privkey_check_numbers(key);
	size_t n, m = 0;
	uint8_t *pem = vectors_file("keys/rsa2048.pem", &n), *alt = malloc(2 * n + 16);

	(void)state;
	assert_accepted(pem, n, want);
	/* CRLF line ends, blank lines and spaces around, no final newline. */
	memcpy(alt, "\n  \r\n", 5);
	m = 5;
	for (size_t i = 0; i < n; i++) {
		if (pem[i] == '\n')
			alt[m++] = '\r';
		alt[m++] = pem[i];
	}
	assert_accepted(alt, m, want);
	assert_accepted(alt, m - 2, want);
	memcpy(alt + m, " \t\n\n", 4);
	assert_accepted(alt, m + 4, want);
	/* The body on one line (newlines inside it removed). */
	m = 0;
	for (size_t i = 0; i < n; i++)
		if (pem[i] != '\n' || (i + 1 < n && pem[i + 1] == '-') || (i > 0 && pem[i - 1] == '-'))
			alt[m++] = pem[i];
	assert_accepted(alt, m, want);
	free(alt);
	free(pem);
	free(want);
	EVP_PKEY_free(key);
}

/* ---- refusals ---- */

static void test_parse_refusals(void **state)
{
	static const char enc[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n"
				  "-----END ENCRYPTED PRIVATE KEY-----\n";
	static const char bad_pem[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	static const char proc[] = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
				   "DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
	static const char hdr[] = "-----BEGIN RSA PRIVATE KEY-----\nComment: x\n\nAAAA\n"
				  "-----END RSA PRIVATE KEY-----\n";
	static const char ec[] = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
	size_t n;
	uint8_t *pub = vectors_file("keys/rsa2048.pub.pem", &n);

	(void)state;
	assert_parse_refused("", 0, KT_BAD_REQUEST, "empty");
	assert_parse_refused("garbage!", 8, KT_BAD_REQUEST, "not an RSA private key");
	assert_parse_refused(enc, sizeof(enc) - 1, KT_BAD_REQUEST, "encrypted");
	assert_parse_refused(proc, sizeof(proc) - 1, KT_BAD_REQUEST, "encrypted");
	assert_parse_refused(hdr, sizeof(hdr) - 1, KT_BAD_REQUEST, "headers");
	assert_parse_refused(ec, sizeof(ec) - 1, KT_BAD_REQUEST, "not an RSA key");
	assert_parse_refused(bad_pem, sizeof(bad_pem) - 1, KT_BAD_REQUEST, "PEM private key");
	assert_parse_refused(pub, n, KT_BAD_REQUEST, "PEM private key");
	free(pub);
}

/* Copies pem with the first occurrence of from replaced by to. */
static size_t pem_edit(const uint8_t *pem, size_t n, const char *from, const char *to, uint8_t *out)
{
	const uint8_t *at = memmem(pem, n, from, strlen(from));
	size_t head;

	assert_non_null(at);
	head = (size_t)(at - pem);
	memcpy(out, pem, head);
	memcpy(out + head, to, strlen(to));
	memcpy(out + head + strlen(to), at + strlen(from), n - head - strlen(from));
	return n - strlen(from) + strlen(to);
}

/* Armour and base64 faults in the vector key's PEM. */
static void test_pem_refusals(void **state)
{
	static const struct { const char *from, *to, *why; } edits[] = {
		{ "-----END PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "BEGIN line, END" },
		{ "-----END PRIVATE KEY-----", "-----END PRIVATE KEY-----x", "BEGIN line, END" },
		{ "-----END PRIVATE KEY-----", "", "BEGIN line, END" },
		{ "-----BEGIN PRIVATE KEY-----\n", "-----BEGIN PRIVATE KEY-----", "BEGIN line, END" },
		{ "-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----", "BEGIN line" },
		{ "-----BEGIN PRIVATE KEY-----", "-----BEGIN PUBLIC KEY-----", "BEGIN line" },
		{ "\nMII", "\nMI!", "not base64" },
		{ "\nMII", "\nM=I", "not base64" },
		{ "\n-----END", "=\n-----END", "not base64" },
		{ "\n-----END", "AAAA\n-----END", "not base64" },     /* after the padding */
		{ "\n-----END", "A\n-----END", "not base64" },
	};
	size_t n;
	uint8_t *pem = vectors_file("keys/rsa2048.pem", &n), *alt = malloc(n + 64);

	(void)state;
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		size_t m = pem_edit(pem, n, edits[i].from, edits[i].to, alt);

		assert_parse_refused(alt, m, KT_BAD_REQUEST, edits[i].why);
	}
	/* Text before BEGIN: not taken for PEM at all. */
	memcpy(alt, "Bag Attributes\n", 15);
	memcpy(alt + 15, pem, n);
	assert_parse_refused(alt, n + 15, KT_BAD_REQUEST, "expected PEM");
	free(alt);
	free(pem);
}

/* Padding bits that are not 0, and padding in the middle. */
static void test_base64_strict(void **state)
{
	/* "MAMCAQA=" is SEQUENCE { INTEGER 0 }: well-formed base64, then a refused key. */
	static const char *const texts[][2] = {
		{ "MAMCAQA=", "lacks one of its numbers" },
		{ "MAMCAQB=", "not base64" },
		{ "MAMC AQA=", "lacks one of its numbers" },
		{ "MAMCAQA", "not base64" },
		{ "MAMCAQ==", "truncated" },
		{ "MAMCAR==", "not base64" },
		{ "MA==MAMC", "not base64" },
		{ "MAMCAQA==", "not base64" },
		{ "", "not base64" },
	};
	char pem[256];

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		int n = snprintf(pem, sizeof(pem), "-----BEGIN RSA PRIVATE KEY-----\n%s\n"
				 "-----END RSA PRIVATE KEY-----\n", texts[i][0]);

		assert_parse_refused(pem, (size_t)n, KT_BAD_REQUEST, texts[i][1]);
	}
}

/* Every prefix of each DER form is refused, and so is each byte changed to another tag. */
static void test_der_truncated(void **state)
{
	static const char *const forms[] = { "pkcs8-der", "pkcs1-der" };
	EVP_PKEY *key = vectors_private_key("rsa1024");

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		uint8_t *p;
		size_t n = write_key(key, forms[i], &p);

		for (size_t len = 1; len < n; len++)
			assert_parse_refused(p, len, KT_BAD_REQUEST, "not an RSA private key");
		free(p);
	}
	EVP_PKEY_free(key);
}

/* The writer above gives what OpenSSL gives, so the crafted keys below differ only as meant. */
static void test_der_writer(void **state)
{
	EVP_PKEY *key = vectors_private_key("rsa2048");
	struct rsa_parts *k = privkey_check_numbers(key);
	struct der *d = calloc(1, sizeof(*d)), *alg = calloc(1, sizeof(*alg)), *d8 = calloc(1, sizeof(*d8));
	uint8_t *p;
	size_t n = write_key(key, "pkcs1-der", &p);

	(void)state;
	pkcs1_of(d, k, 0, NULL);
	assert_int_equal(d->len, n);
	assert_memory_equal(d->b, p, n);
	free(p);
	n = write_key(key, "pkcs8-der", &p);
	rsa_alg(alg);
	pkcs8_of(d8, 0, alg, d, NULL);
	assert_int_equal(d8->len, n);
	assert_memory_equal(d8->b, p, n);
	free(p);
	free(d8);
	free(alg);
	free(d);
	free(k);
	EVP_PKEY_free(key);
}

/* Tags, lengths, versions and elements of RSAPrivateKey. */
static void test_der_pkcs1_refusals(void **state)
{
	EVP_PKEY *key = vectors_private_key("rsa2048");
	struct rsa_parts *k = privkey_check_numbers(key);
	struct der *d = calloc(1, sizeof(*d)), *x = calloc(1, sizeof(*x));
	size_t at;

	(void)state;
	pkcs1_of(d, k, 0, NULL);
	d->b[0] = 0x31;                                         /* SET, not SEQUENCE */
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "expected PEM");
	pkcs1_of(d, k, 0, NULL);
	d->b[4] = 0x03;                                         /* version: BIT STRING */
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "no version");
	d->b[4] = 0x02;
	at = 4 + 3;                                             /* n's tag */
	d->b[at] = 0x04;
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "lacks one of its numbers");
	pkcs1_of(d, k, 1, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "multi-prime");
	pkcs1_of(d, k, 2, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "version is not 0");
	der_put(x, 0x02, "\x01", 1);                            /* a tenth element */
	pkcs1_of(d, k, 0, x);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "more than its nine");
	/* Lengths: indefinite, three bytes, not minimal, past the end. */
	pkcs1_of(d, k, 0, NULL);
	d->b[1] = 0x80;
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "truncated");
	d->b[1] = 0x83;
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "truncated");
	pkcs1_of(d, k, 0, NULL);
	d->b[2]++;                                              /* one more than there is */
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "truncated");
	free(x);
	free(d);
	free(k);
	EVP_PKEY_free(key);
}

/* RSAPrivateKey with numbers[i] replaced by the INTEGER bytes given (tag, length, contents). */
static void pkcs1_with(struct der *out, const struct rsa_parts *k, int i, const void *integer,
		       size_t n)
{
	struct der *body = calloc(1, sizeof(*body));

	der_put(body, 0x02, "\x00", 1);
	for (int j = 0; j < RSA_NPARTS; j++) {
		if (j == i)
			der_raw(body, integer, n);
		else
			der_uint(body, k->num[j].b, k->num[j].len);
	}
	out->len = 0;
	der_wrap(out, 0x30, body);
	free(body);
}

/* INTEGERs: negative, zero, padded, empty, long-form lengths for short values, too long. */
static void test_der_integers(void **state)
{
	static const struct { const char *bytes; size_t n; const char *why; } bad[] = {
		{ "\x02\x01\x81", 3, "negative" },
		{ "\x02\x02\xff\x01", 4, "negative" },
		{ "\x02\x01\x00", 3, "zero" },
		{ "\x02\x02\x00\x00", 4, "superfluous leading zero" },
		{ "\x02\x02\x00\x03", 4, "superfluous leading zero" },
		{ "\x02\x00", 2, "empty" },
		{ "\x02\x81\x01\x03", 4, "lacks one of its numbers" },
		{ "\x02\x82\x00\x01\x03", 5, "lacks one of its numbers" },
	};
	EVP_PKEY *key = vectors_private_key("rsa2048");
	struct rsa_parts *k = privkey_check_numbers(key);
	struct der *d = calloc(1, sizeof(*d)), *big = calloc(1, sizeof(*big));
	uint8_t *ones = malloc(RSA_MAX_BYTES + 1);

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pkcs1_with(d, k, RSA_E, bad[i].bytes, bad[i].n);
		assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, bad[i].why);
	}
	memset(ones, 0x7f, RSA_MAX_BYTES + 1);
	der_uint(big, ones, RSA_MAX_BYTES + 1);
	pkcs1_with(d, k, RSA_D, big->b, big->len);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "longer than 16384 bits");
	pkcs1_with(d, k, RSA_N, big->b, big->len);
	assert_parse_refused(d->b, d->len, KT_KEY_SIZE, "16391-bit");
	free(ones);
	free(big);
	free(d);
	free(k);
	EVP_PKEY_free(key);
}

/* PrivateKeyInfo: version, algorithm, parameters, attributes (tolerated), anything more. */
static void test_der_pkcs8(void **state)
{
	static const uint8_t ec_oid[] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
	static const uint8_t attrs[] = { 0xa0, 0x03, 0x02, 0x01, 0x00 };
	static const uint8_t pubkey[] = { 0x81, 0x02, 0x00, 0x00 };
	EVP_PKEY *key = vectors_private_key("rsa2048");
	struct rsa_parts *k = privkey_check_numbers(key);
	struct der *inner = calloc(1, sizeof(*inner)), *alg = calloc(1, sizeof(*alg));
	struct der *d = calloc(1, sizeof(*d)), *tail = calloc(1, sizeof(*tail));

	(void)state;
	pkcs1_of(inner, k, 0, NULL);
	rsa_alg(alg);
	der_raw(tail, attrs, sizeof(attrs));
	pkcs8_of(d, 0, alg, inner, tail);
	assert_accepted(d->b, d->len, k);
	der_raw(tail, attrs, sizeof(attrs));                    /* attributes twice */
	pkcs8_of(d, 0, alg, inner, tail);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "more than its version");
	tail->len = 0;
	der_raw(tail, pubkey, sizeof(pubkey));                  /* OneAsymmetricKey's publicKey */
	pkcs8_of(d, 1, alg, inner, tail);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "PrivateKeyInfo version is not 0");
	pkcs8_of(d, 0, alg, inner, tail);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "more than its version");
	alg->len = 0;
	der_raw(alg, rsa_oid, sizeof(rsa_oid));                 /* no parameters */
	pkcs8_of(d, 0, alg, inner, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "parameters are not NULL");
	der_raw(alg, "\x02\x01\x00", 3);
	pkcs8_of(d, 0, alg, inner, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "parameters are not NULL");
	alg->len = 0;
	der_raw(alg, ec_oid, sizeof(ec_oid));
	der_raw(alg, null_params, sizeof(null_params));
	pkcs8_of(d, 0, alg, inner, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "not an RSA key");
	rsa_alg(alg);
	der_raw(inner, "\x00", 1);                              /* a byte after RSAPrivateKey */
	pkcs8_of(d, 0, alg, inner, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "bytes follow the RSAPrivateKey");
	free(tail);
	free(d);
	free(alg);
	free(inner);
	free(k);
	EVP_PKEY_free(key);
}

/* bad = k with qInv + p for qInv. */
static void qinv_plus_p(const struct rsa_parts *k, struct rsa_parts *bad)
{
	BIGNUM *a = BN_bin2bn(k->num[RSA_QINV].b, (int)k->num[RSA_QINV].len, NULL);
	BIGNUM *p = BN_bin2bn(k->num[RSA_P].b, (int)k->num[RSA_P].len, NULL);

	*bad = *k;
	assert_int_equal(BN_add(a, a, p), 1);
	bad->num[RSA_QINV].len = (size_t)BN_bn2bin(a, bad->num[RSA_QINV].b);
	BN_free(a);
	BN_free(p);
}

/* Each number changed in turn: the key is refused, and a bad exponent says so. */
static void test_inconsistent_numbers(void **state)
{
	EVP_PKEY *key = vectors_private_key("rsa2048");
	struct rsa_parts *k = privkey_check_numbers(key), *bad = malloc(sizeof(*bad));
	struct der *d = calloc(1, sizeof(*d));

	(void)state;
	for (int i = 0; i < RSA_NPARTS; i++) {
		*bad = *k;
		bad->num[i].b[bad->num[i].len - 1] ^= 0x02;     /* stays odd or even, and as long */
		pkcs1_of(d, bad, 0, NULL);
		assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "do not make one RSA key");
	}
	*bad = *k;                                      /* p and q swapped: dP and dQ no longer fit */
	bad->num[RSA_P] = k->num[RSA_Q];
	bad->num[RSA_Q] = k->num[RSA_P];
	pkcs1_of(d, bad, 0, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "do not make one RSA key");
	qinv_plus_p(k, bad);                            /* still q qInv = 1 mod p, but not below p */
	pkcs1_of(d, bad, 0, NULL);
	assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "do not make one RSA key");
	static const struct { const uint8_t b[9]; size_t len; } exps[] = {
		{ { 1 }, 1 }, { { 0x01, 0x00, 0x00 }, 3 }, { { 1, 0, 0, 0, 0, 0, 0, 0, 1 }, 9 },
	};
	for (size_t i = 0; i < sizeof(exps) / sizeof(exps[0]); i++) {
		*bad = *k;
		memcpy(bad->num[RSA_E].b, exps[i].b, exps[i].len);
		bad->num[RSA_E].len = exps[i].len;
		pkcs1_of(d, bad, 0, NULL);
		assert_parse_refused(d->b, d->len, KT_BAD_REQUEST, "public exponent");
	}
	free(d);
	free(bad);
	free(k);
	EVP_PKEY_free(key);
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

/* No locked memory left: BUSY, nothing taken. */
static void test_out_of_locked_memory(void **state)
{
	static void *held[4096];
	size_t nheld = 0;
	uint8_t *p;
	EVP_PKEY *key = vectors_private_key("rsa1024");
	size_t n = write_key(key, "pkcs1-der", &p);

	(void)state;
	for (size_t size = SECURE_HEAP; size >= 16; size /= 2)
		while (nheld < sizeof(held) / sizeof(held[0]) &&
		       (held[nheld] = OPENSSL_secure_malloc(size)) != NULL)
			nheld++;
	assert_parse_refused(p, n, KT_BUSY, "locked memory");
	while (nheld > 0)
		OPENSSL_secure_free(held[--nheld]);
	free(p);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blob_vectors),
		cmocka_unit_test(test_blob_refusals),
		cmocka_unit_test(test_blob_inconsistent),
		cmocka_unit_test(test_parse_formats),
		cmocka_unit_test(test_pem_layouts),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_pem_refusals),
		cmocka_unit_test(test_base64_strict),
		cmocka_unit_test(test_der_truncated),
		cmocka_unit_test(test_der_writer),
		cmocka_unit_test(test_der_pkcs1_refusals),
		cmocka_unit_test(test_der_integers),
		cmocka_unit_test(test_der_pkcs8),
		cmocka_unit_test(test_inconsistent_numbers),
		cmocka_unit_test(test_parse_key_size),
		cmocka_unit_test(test_out_of_locked_memory),
	};

	/* Before OpenSSL allocates anything: its ordinary heap is watched too. */
	if (privkey_check_setup() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
