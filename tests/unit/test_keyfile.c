/*
 * The recipient-key formats read by our own code (keyfile.c's quick reading:
 * pubkey_der.c, pem.c) against OpenSSL's decoders: the same numbers for every
 * key file of the tests and for keys of 1024 to 4096 bits in every format,
 * malformed input left to the decoders, and the same status and sentence
 * from keyfile_parse as from the decoders alone, whatever the input.
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
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "keyfile.h"
#include "keytrans_status.h"
#include "publickeyblob.h"
#include "rsa_pub.h"
#include "vectors.h"

#define ENC_MAX 8192

/* An encoded key: the bytes and whether the quick reading must take them. */
struct enc {
	uint8_t b[ENC_MAX];
	size_t len;
};

/* The numbers of the key the quick reading found equal OpenSSL's numbers of its key. */
static void same_numbers(const struct keyfile_numbers *num, EVP_PKEY *pkey)
{
	uint8_t n[RSA_MAX_BYTES];
	uint64_t e, fast_e = 0;
	size_t k;

	assert_int_equal(rsa_pub_numbers(pkey, n, &k, &e), 0);
	assert_int_equal(num->n_len, k);
	assert_memory_equal(num->n, n, k);
	for (size_t i = 0; i < num->e_len; i++)
		fast_e = fast_e << 8 | num->e[i];
	assert_true(fast_e == e);
}

/*
 * keyfile_parse and the decoders alone agree on p: status, sentence, key.
 * fast: 1 when the quick reading must take p, 0 when it must leave it, -1
 * either. Returns the status.
 */
static int agree(const uint8_t *p, size_t len, int fast)
{
	struct keyfile_numbers num;
	uint8_t *copy = malloc(len ? len : 1);
	EVP_PKEY *a = NULL, *b = NULL;
	char why_a[256] = "", why_b[256] = "";
	int got_fast, st_a, st_b;

	memcpy(copy, p, len);           /* exactly len bytes, for ASan */
	got_fast = keyfile_numbers(copy, len, &num) == 0;
	if (fast >= 0 && got_fast != fast)
		fail_msg("quick reading %s %zu bytes starting %02x %02x", got_fast ? "took" : "left",
			 len, len ? p[0] : 0, len > 1 ? p[1] : 0);
	st_a = keyfile_parse(copy, len, &a, why_a, sizeof(why_a));
	st_b = keyfile_parse_openssl(copy, len, &b, why_b, sizeof(why_b));
	if (st_a != st_b || strcmp(why_a, why_b) != 0)
		fail_msg("%zu bytes: quick %d \"%s\", OpenSSL %d \"%s\"", len, st_a, why_a, st_b, why_b);
	if (st_a == KT_OK) {
		assert_int_equal(EVP_PKEY_eq(a, b), 1);
		if (got_fast)
			same_numbers(&num, b);
	} else {
		assert_null(a);
		assert_true(why_a[0] != '\0');
	}
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	free(copy);
	return st_a;
}

static void from_bio(BIO *bio, struct enc *out)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);

	assert_true(n > 0 && (size_t)n <= sizeof(out->b));
	memcpy(out->b, data, (size_t)n);
	out->len = (size_t)n;
	BIO_free(bio);
}

/* PKCS#1 RSAPublicKey ("type-specific"), DER or PEM. */
static void encode_pkcs1(EVP_PKEY *pkey, const char *type, struct enc *out)
{
	OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_PUBLIC_KEY, type,
							      "type-specific", NULL);
	BIO *bio = BIO_new(BIO_s_mem());

	assert_non_null(ctx);
	assert_int_equal(OSSL_ENCODER_to_bio(ctx, bio), 1);
	OSSL_ENCODER_CTX_free(ctx);
	from_bio(bio, out);
}

/* A certificate for pkey signed by the rsa2048 vector key: v1 or v3 with extensions. */
static X509 *make_cert(EVP_PKEY *pkey, int v3)
{
	EVP_PKEY *issuer = vectors_private_key("rsa2048");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	X509_EXTENSION *ext;

	assert_int_equal(X509_set_version(x, v3 ? 2 : 0), 1);
	ASN1_INTEGER_set_int64(X509_get_serialNumber(x), v3 ? 0x1234567890abLL : 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)"recipient", -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_int_equal(X509_set_pubkey(x, pkey), 1);
	if (v3) {
		ext = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "keyEncipherment");
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer, EVP_sha256()) > 0);
	EVP_PKEY_free(issuer);
	return x;
}

/* Each form of pkey the daemon takes, through both readers. */
static void every_form(EVP_PKEY *pkey, int want)
{
	struct enc *e = malloc(sizeof(*e));
	uint8_t *der = NULL;
	BIO *bio;
	X509 *x;
	int n;

	n = i2d_PUBKEY(pkey, &der);
	assert_true(n > 0);
	assert_int_equal(agree(der, (size_t)n, 1), want);
	OPENSSL_free(der);
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(bio, pkey);
	from_bio(bio, e);
	assert_int_equal(agree(e->b, e->len, 1), want);
	encode_pkcs1(pkey, "DER", e);
	assert_int_equal(agree(e->b, e->len, 1), want);
	encode_pkcs1(pkey, "PEM", e);
	assert_non_null(memmem(e->b, e->len, "RSA PUBLIC KEY", 14));
	assert_int_equal(agree(e->b, e->len, 1), want);
	for (int v3 = 0; v3 <= 1; v3++) {
		x = make_cert(pkey, v3);
		der = NULL;
		n = i2d_X509(x, &der);
		assert_true(n > 0);
		assert_int_equal(agree(der, (size_t)n, 1), want);
		OPENSSL_free(der);
		bio = BIO_new(BIO_s_mem());
		PEM_write_bio_X509(bio, x);
		from_bio(bio, e);
		assert_int_equal(agree(e->b, e->len, 1), want);
		X509_free(x);
	}
	e->len = publickeyblob_encode(pkey, e->b, sizeof(e->b));
	if (e->len > 0)
		assert_int_equal(agree(e->b, e->len, 0), want);
	free(e);
}

/* A public key of bits bits: a random odd modulus with its top bit set (nothing checks primality). */
static EVP_PKEY *random_key(unsigned bits, uint64_t e)
{
	uint8_t n[RSA_MAX_BYTES + 8], eb[8];
	size_t k = (bits + 7) / 8;
	EVP_PKEY *pkey;

	assert_int_equal(RAND_bytes(n, (int)k), 1);
	n[0] &= (uint8_t)(0xff >> (k * 8 - bits));
	n[0] |= (uint8_t)(0x80 >> (k * 8 - bits));
	n[k - 1] |= 1;
	for (int i = 0; i < 8; i++)
		eb[i] = (uint8_t)(e >> (56 - 8 * i));
	pkey = rsa_pub_from_ne(n, k, eb, sizeof(eb));
	assert_non_null(pkey);
	return pkey;
}

static void test_files(void **state)
{
	static const char *const quick[] = {
		"keys/rsa1024.pub.pem", "keys/rsa2048.pub.pem", "keys/rsa4096.pub.pem",
		"keys/wine1024.pub.pem", "../data/rsa2048.pub.der", "../data/rsa2048.rsapub.pem",
		"../data/rsa2048.crt.pem", "../data/rsa2048.crt.der",
	};
	static const char *const blobs[] = { "keys/rsa1024.pub.blob", "keys/rsa2048.pub.blob",
					     "keys/rsa4096.pub.blob", "keys/wine1024.pub.blob" };
	uint8_t *p;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(quick) / sizeof(quick[0]); i++) {
		p = vectors_file(quick[i], &len);
		assert_int_equal(agree(p, len, 1), KT_OK);
		free(p);
	}
	p = vectors_file("../data/rsa512.pub.pem", &len);
	assert_int_equal(agree(p, len, 1), KT_KEY_SIZE);
	free(p);
	/* Not RSA: left to the decoders, which say so. */
	p = vectors_file("../data/ec256.pub.pem", &len);
	assert_int_equal(agree(p, len, 0), KT_BAD_PUBLIC_KEY);
	free(p);
	for (size_t i = 0; i < sizeof(blobs) / sizeof(blobs[0]); i++) {
		p = vectors_file(blobs[i], &len);
		assert_int_equal(agree(p, len, 0), KT_OK);
		free(p);
	}
}

/* A PUBLICKEYBLOB whose modulus is shorter than its bitlen says: sized by the modulus. */
static void test_blob_short_modulus(void **state)
{
	size_t len;
	uint8_t *p = vectors_file("keys/rsa2048.pub.blob", &len);

	(void)state;
	p[len - 1] = 0;                                 /* the top byte (little-endian) */
	assert_int_equal(agree(p, len, 0), KT_OK);      /* 2040 bits */
	memset(p + len - 129, 0, 129);                  /* 1016 bits */
	assert_int_equal(agree(p, len, 0), KT_KEY_SIZE);
	free(p);
}

/* A PUBLICKEYBLOB read by publickeyblob.c gives the key OpenSSL's own MSBLOB decoder finds. */
static void test_blobs_match_openssl(void **state)
{
	static const char *const names[] = { "rsa1024", "rsa2048", "rsa4096", "wine1024" };
	char rel[64], why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		EVP_PKEY *ours = NULL, *theirs = NULL;
		OSSL_DECODER_CTX *d = OSSL_DECODER_CTX_new_for_pkey(&theirs, "MSBLOB", NULL, "RSA",
								    EVP_PKEY_PUBLIC_KEY, NULL, NULL);
		const uint8_t *q;
		size_t len, left;
		uint8_t *p;

		snprintf(rel, sizeof(rel), "keys/%s.pub.blob", names[i]);
		p = vectors_file(rel, &len);
		q = p;
		left = len;
		assert_int_equal(keyfile_parse(p, len, &ours, why, sizeof(why)), KT_OK);
		assert_int_equal(OSSL_DECODER_from_data(d, &q, &left), 1);
		assert_int_equal(EVP_PKEY_eq(ours, theirs), 1);
		OSSL_DECODER_CTX_free(d);
		EVP_PKEY_free(ours);
		EVP_PKEY_free(theirs);
		free(p);
	}
}

static void test_generated(void **state)
{
	static const unsigned bits[] = { 1024, 1025, 1535, 2048, 2049, 3072, 4095, 4096 };
	static const uint64_t exps[] = { 3, 65537, 0x100000001ull, 0xffffffffffffffffull };
	EVP_PKEY *pkey;

	(void)state;
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		for (size_t j = 0; j < sizeof(exps) / sizeof(exps[0]); j++) {
			pkey = random_key(bits[i], exps[j]);
			every_form(pkey, KT_OK);
			EVP_PKEY_free(pkey);
		}
	/* A key OpenSSL generated, primes and all. */
	pkey = EVP_RSA_gen(1024);
	assert_non_null(pkey);
	every_form(pkey, KT_OK);
	EVP_PKEY_free(pkey);
	/* Sizes and numbers refused the same way by both readers. */
	pkey = random_key(1016, 65537);
	every_form(pkey, KT_KEY_SIZE);
	EVP_PKEY_free(pkey);
	pkey = random_key(RSA_MAX_BITS + 8, 65537);
	every_form(pkey, KT_KEY_SIZE);
	EVP_PKEY_free(pkey);
	assert_int_equal(agree((const uint8_t *)"", 0, 0), KT_BAD_PUBLIC_KEY);
}

static void test_bad_numbers(void **state)
{
	uint8_t n[256], eb[8];
	EVP_PKEY *pkey;

	(void)state;
	RAND_bytes(n, sizeof(n));
	n[0] |= 0x80;
	n[255] &= 0xfe;                 /* even */
	memset(eb, 0, sizeof(eb));
	eb[5] = 1;
	eb[7] = 1;
	pkey = rsa_pub_from_ne(n, sizeof(n), eb, sizeof(eb));
	every_form(pkey, KT_BAD_PUBLIC_KEY);
	EVP_PKEY_free(pkey);
	n[255] |= 1;
	for (uint8_t e = 1; e <= 4; e += 3) {     /* 1, and an even one */
		memset(eb, 0, sizeof(eb));
		eb[7] = e;
		pkey = rsa_pub_from_ne(n, sizeof(n), eb, sizeof(eb));
		every_form(pkey, KT_BAD_PUBLIC_KEY);
		EVP_PKEY_free(pkey);
	}
}

/* ---- hand-made DER ---- */

static size_t tlv(uint8_t *out, uint8_t tag, const uint8_t *v, size_t len)
{
	size_t h = 0;

	out[h++] = tag;
	if (len < 0x80) {
		out[h++] = (uint8_t)len;
	} else if (len < 0x100) {
		out[h++] = 0x81;
		out[h++] = (uint8_t)len;
	} else {
		out[h++] = 0x82;
		out[h++] = (uint8_t)(len >> 8);
		out[h++] = (uint8_t)len;
	}
	memmove(out + h, v, len);
	return h + len;
}

/* RSAPublicKey of the two INTEGER contents given as they are (sign bytes included). */
static size_t pkcs1_of(uint8_t *out, const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen)
{
	uint8_t body[600];
	size_t len = tlv(body, 0x02, n, nlen);

	len += tlv(body + len, 0x02, e, elen);
	return tlv(out, 0x30, body, len);
}

/* SubjectPublicKeyInfo around an RSAPublicKey, with the algorithm's contents given. */
static size_t spki_of(uint8_t *out, const uint8_t *alg, size_t alg_len, uint8_t unused,
		      const uint8_t *key, size_t key_len)
{
	uint8_t body[700], bits[650];
	size_t len = tlv(body, 0x30, alg, alg_len);

	bits[0] = unused;
	memcpy(bits + 1, key, key_len);
	len += tlv(body + len, 0x03, bits, key_len + 1);
	return tlv(out, 0x30, body, len);
}

static const uint8_t rsa_oid_null[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
					0x01, 0x01, 0x05, 0x00 };

static void test_malformed_der(void **state)
{
	uint8_t n[257], e[] = { 0x01, 0x00, 0x01 }, key[600], der[800], alg[32];
	size_t klen, len;

	(void)state;
	RAND_bytes(n + 1, 256);
	n[0] = 0;
	n[1] |= 0x80;
	n[256] |= 1;
	klen = pkcs1_of(key, n, sizeof(n), e, sizeof(e));
	assert_int_equal(agree(key, klen, 1), KT_OK);
	len = spki_of(der, rsa_oid_null, sizeof(rsa_oid_null), 0, key, klen);
	assert_int_equal(agree(der, len, 1), KT_OK);
	/* rsaEncryption without its NULL (RFC 3279 wants it; some encoders leave it out). */
	len = spki_of(der, rsa_oid_null, sizeof(rsa_oid_null) - 2, 0, key, klen);
	agree(der, len, 1);
	/* Parameters other than NULL, a BIT STRING with unused bits, other algorithms. */
	memcpy(alg, rsa_oid_null, sizeof(rsa_oid_null));
	alg[11] = 0x04;                                  /* OCTET STRING {} */
	agree(der, spki_of(der, alg, sizeof(rsa_oid_null), 0, key, klen), 0);
	agree(der, spki_of(der, rsa_oid_null, sizeof(rsa_oid_null), 1, key, klen), 0);
	for (uint8_t last = 0; last < 16; last++) {
		alg[10] = last;                          /* 1.2.840.113549.1.1.x: PSS is 10 */
		alg[11] = 0x05;
		len = spki_of(der, alg, sizeof(rsa_oid_null), 0, key, klen);
		if (last != 1)
			assert_int_equal(agree(der, len, 0), KT_BAD_PUBLIC_KEY);
	}
	/* Non-minimal INTEGERs: a second zero byte, a zero before a small first byte, negative. */
	{
		uint8_t padded[258], e_pad[] = { 0x00, 0x01, 0x00, 0x01 }, zero[] = { 0x00 };

		padded[0] = 0;
		memcpy(padded + 1, n, sizeof(n));
		agree(key, pkcs1_of(key, padded, sizeof(padded), e, sizeof(e)), 0);
		agree(key, pkcs1_of(key, n, sizeof(n), e_pad, sizeof(e_pad)), 0);
		agree(key, pkcs1_of(key, n + 1, sizeof(n) - 1, e, sizeof(e)), 0);     /* negative */
		agree(key, pkcs1_of(key, n, sizeof(n), zero, sizeof(zero)), 0);
		agree(key, pkcs1_of(key, n, sizeof(n), e, 0), 0);                     /* empty */
	}
	/* A DER key whose modulus holds the PEM marker is still DER, for both readers. */
	memcpy(n + 100, "-----BEGIN ", 11);
	assert_int_equal(agree(key, pkcs1_of(key, n, sizeof(n), e, sizeof(e)), 1), KT_OK);
	assert_int_equal(agree(der, spki_of(der, rsa_oid_null, sizeof(rsa_oid_null), 0, key,
					    pkcs1_of(key, n, sizeof(n), e, sizeof(e))), 1), KT_OK);
	/* An exponent longer than 64 bits is left to the decoders. */
	{
		uint8_t e_long[9] = { 0x01, 0, 0, 0, 0, 0, 0, 0, 0x01 };

		agree(key, pkcs1_of(key, n, sizeof(n), e_long, sizeof(e_long)), 0);
	}
}

/*
 * Every truncation of p (len bytes): the quick reading takes those of end
 * bytes or more only. Both readers go over a spread of them (the decoders'
 * refusals cost about a millisecond each under the sanitizers).
 */
static void truncations(const uint8_t *p, size_t len, size_t end)
{
	struct keyfile_numbers num;

	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);

		memcpy(copy, p, cut);
		if ((keyfile_numbers(copy, cut, &num) == 0) != (cut >= end))
			fail_msg("quick reading of %zu of %zu bytes", cut, len);
		free(copy);
		if (cut % 16 == 0 || cut + 8 >= len || (cut + 8 >= end && cut <= end + 8))
			agree(p, cut, cut >= end);
	}
}

/* Every truncation, a wrong length, and trailing bytes of one DER key: all left to the decoders. */
static void broken_der(const uint8_t *p, size_t len)
{
	uint8_t *b = malloc(len + 4);

	truncations(p, len, len + 1);
	memcpy(b, p, len);
	b[len] = 0;
	agree(b, len + 1, 0);                           /* a trailing byte */
	b[3]++;                                         /* the outer length, one too many */
	agree(b, len + 1, 0);
	b[3] -= 2;                                      /* one too few */
	agree(b, len, 0);
	/* The same length in three bytes rather than two (0x83 00 hi lo): not the shortest form. */
	memcpy(b + 5, p + 4, len - 4);
	b[0] = 0x30;
	b[1] = 0x83;
	b[2] = 0;
	b[3] = p[2];
	b[4] = p[3];
	agree(b, len + 1, 0);
	/* Indefinite length (BER). */
	b[1] = 0x80;
	memcpy(b + 2, p + 4, len - 4);
	b[len - 2] = 0;
	b[len - 1] = 0;
	agree(b, len, 0);
	free(b);
}

static void test_truncated(void **state)
{
	static const char *const ders[] = { "../data/rsa2048.pub.der", "../data/rsa2048.crt.der" };
	EVP_PKEY *pkey = vectors_public_key("rsa2048");
	struct enc *e = malloc(sizeof(*e));
	uint8_t *p;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(ders) / sizeof(ders[0]); i++) {
		p = vectors_file(ders[i], &len);
		assert_int_equal(p[0], 0x30);
		assert_int_equal(p[1], 0x82);           /* broken_der's length edits need it */
		broken_der(p, len);
		free(p);
	}
	encode_pkcs1(pkey, "DER", e);
	broken_der(e->b, e->len);
	EVP_PKEY_free(pkey);
	free(e);
}

/* A PEM cut anywhere before its END line's last dash is not one block any more. */
static void test_truncated_pem(void **state)
{
	static const char *const pems[] = { "keys/rsa2048.pub.pem", "../data/rsa2048.rsapub.pem",
					    "../data/rsa2048.crt.pem" };

	(void)state;
	for (size_t i = 0; i < sizeof(pems) / sizeof(pems[0]); i++) {
		size_t len, end;
		uint8_t *p = vectors_file(pems[i], &len);

		for (end = len; end > 0 && p[end - 1] != '-'; end--)
			;
		truncations(p, len, end);
		free(p);
	}
}

/* p with every from replaced by to (one more word), through both readers: left to the decoders. */
static void relabel(const uint8_t *p, size_t len, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	uint8_t *out = malloc(2 * len + 64);

	for (size_t i = 0; i < len;) {
		if (len - i >= fl && memcmp(p + i, from, fl) == 0) {
			memcpy(out + n, to, tl);
			n += tl;
			i += fl;
		} else {
			out[n++] = p[i++];
		}
	}
	agree(out, n, 0);
	free(out);
}

/* PEM the quick reading leaves to the decoders: text around it, headers, another label, bad base64. */
static void test_pem_variants(void **state)
{
	size_t len;
	uint8_t *p = vectors_file("keys/rsa2048.pub.pem", &len), *b = malloc(len + 64);
	char *body;

	(void)state;
	memcpy(b, "Subject: x\n", 11);
	memcpy(b + 11, p, len);
	assert_int_equal(agree(b, len + 11, 0), KT_OK);             /* the decoders skip text */
	memcpy(b, " \r\n\n", 4);
	memcpy(b + 4, p, len);
	assert_int_equal(agree(b, len + 4, 1), KT_OK);              /* white space is fine */
	b[3] = '\t';
	agree(b, len + 4, 0);           /* but the decoders want the marker at a line's start */
	memcpy(b, p, len);
	memcpy(b + len, "junk\n", 5);
	agree(b, len + 5, 0);
	/* Headers (RFC 1421). */
	body = strchr((char *)b, '\n') + 1;
	memmove(body + 12, body, len - (size_t)(body - (char *)b));
	memcpy(body, "Comment: x\n\n", 12);
	agree(b, len + 12, 0);
	/* An unknown label, and the PKCS#1 label on an SPKI. */
	{
		size_t rlen;
		uint8_t *r = vectors_file("../data/rsa2048.rsapub.pem", &rlen);
		char *q;

		while ((q = memmem(r, rlen, "RSA PUBLIC", 10)) != NULL)
			memcpy(q, "XYZ PUBLIC", 10);
		agree(r, rlen, 0);
		free(r);
		relabel(p, len, "PUBLIC KEY-----", "RSA PUBLIC KEY-----");
	}
	/* A base64 character changed to one outside the alphabet. */
	memcpy(b, p, len);
	b[40] = '*';
	agree(b, len, 0);
	free(b);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_blobs_match_openssl),
		cmocka_unit_test(test_blob_short_modulus),
		cmocka_unit_test(test_generated),
		cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_malformed_der),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_truncated_pem),
		cmocka_unit_test(test_pem_variants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
