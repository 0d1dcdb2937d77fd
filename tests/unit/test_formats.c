/*
 * The pure format code against every line of the CryptoAPI vectors, with the
 * RSA private operation done in software (raw, as the HSM does it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "alg.h"
#include "copp.h"
#include "implicit.h"
#include "keyfile.h"
#include "keytrans_status.h"
#include "pkcs1.h"
#include "publickeyblob.h"
#include "rsa_pub.h"
#include "simpleblob.h"
#include "vectors.h"

static const char *const key_names[] = { "rsa1024", "rsa2048", "rsa4096", "wine1024" };

/* The modulus of a key, big-endian, and its length. */
static size_t modulus(EVP_PKEY *k, uint8_t n[RSA_MAX_BYTES])
{
	uint64_t e;
	size_t len;

	assert_int_equal(rsa_pub_numbers(k, n, &len, &e), 0);
	return len;
}

/* Parse, raw-decrypt in software, unpad: what the daemon does around the HSM. */
static int unwrap_soft(EVP_PKEY *priv, const uint8_t *blob, size_t len, enum rsa_padding pad,
		       struct simpleblob *sb, struct unpadded *out, char *why, size_t whylen)
{
	uint8_t n[RSA_MAX_BYTES], em[RSA_MAX_BYTES];
	size_t k = modulus(priv, n);
	int st = simpleblob_parse(blob, len, n, k, sb, why, whylen);

	if (st != KT_OK)
		return st;
	vectors_rsa_raw(priv, sb->c, k, em);
	assert_int_equal(simpleblob_unpad(em, k, sb->alg, pad, out), 0);
	return KT_OK;
}

static enum rsa_padding padding_named(const char *s)
{
	if (strcmp(s, "oaep") == 0)
		return RSA_PAD_OAEP;
	assert_string_equal(s, "pkcs1");
	return RSA_PAD_PKCS1;
}

static void test_simpleblob_vectors(void **state)
{
	FILE *fp = vectors_open("simpleblob.txt");
	struct vline l;
	int lines = 0;

	(void)state;
	while (vectors_next(fp, &l)) {
		uint8_t blob[SIMPLEBLOB_MAX], key[64];
		struct simpleblob sb;
		struct unpadded out;
		char why[200];
		size_t blob_len, key_len;
		EVP_PKEY *priv;

		assert_int_equal(l.n, 5);
		priv = vectors_private_key(l.f[0]);
		key_len = vectors_unhex(l.f[3], key, sizeof(key));
		blob_len = vectors_unhex(l.f[4], blob, sizeof(blob));
		assert_int_equal(unwrap_soft(priv, blob, blob_len, padding_named(l.f[1]), &sb, &out,
					     why, sizeof(why)), KT_OK);
		assert_int_equal(sb.alg->id, strtoul(l.f[2], NULL, 16));
		assert_true(out.good);
		assert_int_equal(out.len, key_len);
		assert_memory_equal(out.msg, key, key_len);
		EVP_PKEY_free(priv);
		lines++;
	}
	fclose(fp);
	assert_int_equal(lines, 61);
}

static void test_publickeyblob_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
		char rel[128], why[200];
		EVP_PKEY *pub = vectors_public_key(key_names[i]), *back = NULL;
		uint8_t out[PUBLICKEYBLOB_MAX];
		size_t want_len, got;
		uint8_t *want;

		snprintf(rel, sizeof(rel), "keys/%s.pub.blob", key_names[i]);
		want = vectors_file(rel, &want_len);
		got = publickeyblob_encode(pub, out, sizeof(out));
		assert_int_equal(got, want_len);
		assert_memory_equal(out, want, want_len);
		assert_int_equal(publickeyblob_decode(want, want_len, &back, why, sizeof(why)), KT_OK);
		assert_int_equal(EVP_PKEY_eq(pub, back), 1);
		/* Too small a buffer is refused, never overrun. */
		assert_int_equal(publickeyblob_encode(pub, out, want_len - 1), 0);
		EVP_PKEY_free(back);
		EVP_PKEY_free(pub);
		free(want);
	}
}

static void test_publickeyblob_refusals(void **state)
{
	size_t len;
	uint8_t *good = vectors_file("keys/rsa2048.pub.blob", &len), bad[PUBLICKEYBLOB_MAX];
	/* offset, new byte: each breaks one rule of docs/formats.md */
	static const struct { size_t off; uint8_t v; } cases[] = {
		{ 0, 0x07 }, { 1, 0x03 }, { 2, 0x01 }, { 5, 0x66 }, { 8, 'X' },
		{ 12, 0x04 }, { 16, 0x02 }, { 16, 0x01 }, { 20, 0x00 },    /* even modulus */
	};
	char why[200];
	EVP_PKEY *k = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, good, len);
		bad[cases[i].off] = cases[i].v;
		if (cases[i].off == 16 && cases[i].v == 0x01) {
			bad[17] = bad[18] = bad[19] = 0;    /* exponent 1 */
		}
		assert_int_equal(publickeyblob_decode(bad, len, &k, why, sizeof(why)), KT_BAD_PUBLIC_KEY);
	}
	for (size_t cut = 0; cut < len; cut += 7)
		assert_int_equal(publickeyblob_decode(good, cut, &k, why, sizeof(why)), KT_BAD_PUBLIC_KEY);
	free(good);
}

static void test_copp_vectors(void **state)
{
	FILE *fp = vectors_open("copp.txt");
	struct vline l;
	int lines = 0;

	(void)state;
	while (vectors_next(fp, &l)) {
		uint8_t sig[COPP_SIG_LEN], c[COPP_SIG_LEN], em[COPP_SIG_LEN], n[RSA_MAX_BYTES];
		uint8_t random[16], aes[16];
		struct copp_params p;
		struct unpadded out;
		char why[200];
		EVP_PKEY *priv;

		assert_int_equal(l.n, 6);
		priv = vectors_private_key(l.f[0]);
		assert_int_equal(vectors_unhex(l.f[1], random, sizeof(random)), 16);
		assert_int_equal(vectors_unhex(l.f[2], aes, sizeof(aes)), 16);
		assert_int_equal(vectors_unhex(l.f[5], sig, sizeof(sig)), COPP_SIG_LEN);
		assert_int_equal(modulus(priv, n), COPP_SIG_LEN);
		assert_int_equal(copp_ciphertext(sig, n, c, why, sizeof(why)), KT_OK);
		vectors_rsa_raw(priv, c, COPP_SIG_LEN, em);
		assert_int_equal(pkcs1_unpad(em, COPP_SIG_LEN, COPP_MSG_LEN, COPP_MSG_LEN, &out), 0);
		assert_true(out.good);
		copp_parse(out.msg, &p);
		assert_memory_equal(p.random, random, 16);
		assert_memory_equal(p.aes_key, aes, 16);
		assert_int_equal(p.status_seq, strtoul(l.f[3], NULL, 10));
		assert_int_equal(p.command_seq, strtoul(l.f[4], NULL, 10));
		EVP_PKEY_free(priv);
		lines++;
	}
	fclose(fp);
	assert_int_equal(lines, 3);
}

static void test_copp_sign_roundtrip(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa2048"), *pub = vectors_public_key("rsa2048");
	EVP_PKEY *small = vectors_public_key("rsa1024");
	uint8_t sig[COPP_SIG_LEN], c[COPP_SIG_LEN], em[COPP_SIG_LEN], n[RSA_MAX_BYTES];
	struct copp_params p = { .status_seq = 0xfffffffe, .command_seq = 7 }, q;
	struct unpadded out;
	char why[200];

	(void)state;
	RAND_bytes(p.random, sizeof(p.random));
	RAND_bytes(p.aes_key, sizeof(p.aes_key));
	assert_int_equal(copp_sign(pub, &p, sig, why, sizeof(why)), KT_OK);
	modulus(priv, n);
	assert_int_equal(copp_ciphertext(sig, n, c, why, sizeof(why)), KT_OK);
	vectors_rsa_raw(priv, c, COPP_SIG_LEN, em);
	/* EM = 00 02 | 213 non-zero bytes | 00 | M */
	assert_int_equal(em[0], 0);
	assert_int_equal(em[1], 2);
	assert_null(memchr(em + 2, 0, 213));
	assert_int_equal(em[215], 0);
	assert_int_equal(pkcs1_unpad(em, COPP_SIG_LEN, COPP_MSG_LEN, COPP_MSG_LEN, &out), 0);
	assert_true(out.good);
	copp_parse(out.msg, &q);
	assert_memory_equal(&p, &q, sizeof(p));
	assert_int_equal(copp_sign(small, &p, sig, why, sizeof(why)), KT_KEY_SIZE);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(small);
}

static int expected_format_status(const char *name)
{
	static const struct { const char *name; int st; } map[] = {
		{ "bad_btype", KT_BLOB_TYPE }, { "bad_version", KT_BLOB_VERSION },
		{ "bad_reserved", KT_BLOB_RESERVED }, { "wrap_alg_sign", KT_BLOB_WRAP_ALG },
		{ "unknown_key_alg", KT_BLOB_ALG }, { "truncated", KT_BLOB_LENGTH },
		{ "trailing_byte", KT_BLOB_LENGTH }, { "header_only", KT_BLOB_LENGTH },
		{ "empty", KT_BLOB_LENGTH }, { "ciphertext_ge_modulus", KT_BLOB_RANGE },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, name) == 0)
			return map[i].st;
	fail_msg("negative vector %s has no expected status in this test", name);
	return -1;
}

static void test_negative_vectors(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa2048");
	FILE *fp = vectors_open("negative.txt");
	char whys[32][200];
	int formats = 0, decrypts = 0;
	struct vline l;

	(void)state;
	while (vectors_next(fp, &l)) {
		uint8_t blob[SIMPLEBLOB_MAX + 8];
		size_t len = vectors_unhex(l.f[2], blob, sizeof(blob));
		struct simpleblob sb;
		struct unpadded out;
		int st;

		assert_int_equal(l.n, 3);
		st = unwrap_soft(priv, blob, len, RSA_PAD_PKCS1, &sb, &out, whys[formats],
				 sizeof(whys[0]));
		if (strcmp(l.f[1], "format") == 0) {
			assert_int_equal(st, expected_format_status(l.f[0]));
			/* Each format case is explained in its own words. */
			for (int i = 0; i < formats; i++)
				assert_string_not_equal(whys[i], whys[formats]);
			formats++;
		} else {
			assert_string_equal(l.f[1], "decrypt");
			assert_int_equal(st, KT_OK);
			/* One outcome for every decrypt case: not good, length pinned. */
			assert_false(out.good);
			assert_int_equal(out.len, sb.alg->max_len);
			decrypts++;
		}
	}
	fclose(fp);
	EVP_PKEY_free(priv);
	assert_int_equal(formats, 10);
	assert_int_equal(decrypts, 8);
}

/* Independent check: OpenSSL's own decryption of the reversed ciphertext. */
static void openssl_decrypt(EVP_PKEY *priv, enum rsa_padding pad, const uint8_t *c, size_t k,
			    uint8_t *out, size_t *out_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);

	assert_true(EVP_PKEY_decrypt_init(ctx) > 0);
	if (pad == RSA_PAD_OAEP) {
		assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0);
		assert_true(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha1()) > 0);
	} else {
		assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0);
	}
	*out_len = RSA_MAX_BYTES;
	assert_true(EVP_PKEY_decrypt(ctx, out, out_len, c, k) > 0);
	EVP_PKEY_CTX_free(ctx);
}

static void test_wrap_roundtrip(void **state)
{
	size_t nalg;
	const struct alg_info *algs = alg_table(&nalg);

	(void)state;
	for (size_t ki = 0; ki < 3; ki++) {
		EVP_PKEY *priv = vectors_private_key(key_names[ki]);
		EVP_PKEY *pub = vectors_public_key(key_names[ki]);

		for (size_t ai = 0; ai < nalg; ai++) {
			for (int pad = RSA_PAD_PKCS1; pad <= RSA_PAD_OAEP; pad++) {
				const struct alg_info *a = &algs[ai];
				uint8_t key[32], blob[SIMPLEBLOB_MAX], plain[RSA_MAX_BYTES];
				struct simpleblob sb;
				struct unpadded out;
				size_t blob_len, plain_len;
				char why[200];

				for (size_t len = a->min_len; len <= a->max_len; len++) {
					RAND_bytes(key, (int)len);
					assert_int_equal(simpleblob_wrap(pub, a, key, len, pad, blob, &blob_len,
									 why, sizeof(why)), KT_OK);
					assert_int_equal(unwrap_soft(priv, blob, blob_len, pad, &sb, &out,
								     why, sizeof(why)), KT_OK);
					assert_true(out.good);
					assert_int_equal(out.len, len);
					assert_memory_equal(out.msg, key, len);
					openssl_decrypt(priv, pad, sb.c, sb.k, plain, &plain_len);
					assert_int_equal(plain_len, len);
					assert_memory_equal(plain, key, len);
				}
				/* One byte outside the table is refused. */
				assert_int_equal(simpleblob_wrap(pub, a, key, a->max_len + 1u, pad, blob,
								 &blob_len, why, sizeof(why)), KT_KEY_LENGTH);
				assert_int_equal(simpleblob_wrap(pub, a, key, a->min_len - 1u, pad, blob,
								 &blob_len, why, sizeof(why)), KT_KEY_LENGTH);
			}
		}
		EVP_PKEY_free(priv);
		EVP_PKEY_free(pub);
	}
}

/* Builds EM = 00 02 | ps_len non-zero bytes | 00 | msg, in a k-byte buffer. */
static void make_em(uint8_t *em, size_t k, size_t ps_len, const uint8_t *msg, size_t mlen)
{
	assert_int_equal(2 + ps_len + 1 + mlen, k);
	em[0] = 0;
	em[1] = 2;
	for (size_t i = 0; i < ps_len; i++)
		em[2 + i] = (uint8_t)(1 + i % 255);
	em[2 + ps_len] = 0;
	memcpy(em + 3 + ps_len, msg, mlen);
}

static void test_pkcs1_edges(void **state)
{
	uint8_t em[128], msg[32];
	struct unpadded out;
	const size_t k = sizeof(em);

	(void)state;
	memset(msg, 0xab, sizeof(msg));
	/* Every message length from 0 to 32 against window [16, 16] and [5, 16]. */
	for (size_t mlen = 0; mlen <= 32; mlen++) {
		make_em(em, k, k - 3 - mlen, msg, mlen);
		assert_int_equal(pkcs1_unpad(em, k, 16, 16, &out), 0);
		assert_int_equal(!!out.good, mlen == 16);
		assert_int_equal(pkcs1_unpad(em, k, 5, 16, &out), 0);
		assert_int_equal(!!out.good, mlen >= 5 && mlen <= 16);
		if (out.good) {
			assert_int_equal(out.len, mlen);
			assert_memory_equal(out.msg, msg, mlen);
		} else {
			assert_int_equal(out.len, 16);
		}
	}
	/*
	 * PS of exactly 8 bytes is the minimum; 7 is refused (with k >= max_len + 11,
	 * a short PS always means a message longer than max_len too).
	 */
	{
		uint8_t small[2 + 8 + 1 + 16];

		make_em(small, sizeof(small), 8, msg, 16);
		assert_int_equal(pkcs1_unpad(small, sizeof(small), 16, 16, &out), 0);
		assert_true(out.good);
		make_em(small, sizeof(small), 9, msg, 15);
		small[2 + 7] = 0;   /* separator after 7 bytes: message is 17 bytes, PS 7 */
		assert_int_equal(pkcs1_unpad(small, sizeof(small), 5, 16, &out), 0);
		assert_false(out.good);
	}
	/* Wrong first bytes, no separator, message of the right length ending the block. */
	make_em(em, k, k - 3 - 16, msg, 16);
	em[0] = 1;
	assert_int_equal(pkcs1_unpad(em, k, 16, 16, &out), 0);
	assert_false(out.good);
	make_em(em, k, k - 3 - 16, msg, 16);
	em[1] = 1;
	assert_int_equal(pkcs1_unpad(em, k, 16, 16, &out), 0);
	assert_false(out.good);
	memset(em, 0x55, k);
	em[0] = 0;
	em[1] = 2;
	assert_int_equal(pkcs1_unpad(em, k, 16, 16, &out), 0);
	assert_false(out.good);
	/* Separator as the last byte: an empty message. */
	make_em(em, k, k - 3, msg, 0);
	assert_int_equal(pkcs1_unpad(em, k, 0, 16, &out), 0);
	assert_true(out.good);
	assert_int_equal(out.len, 0);
	/* Public argument errors. */
	assert_int_equal(pkcs1_unpad(em, 20, 16, 16, &out), -1);
	assert_int_equal(pkcs1_unpad(em, k, 17, 16, &out), -1);
	assert_int_equal(pkcs1_unpad(em, k, 0, PKCS1_MSG_MAX + 1, &out), -1);
}

static void test_oaep_edges(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa1024"), *pub = vectors_public_key("rsa1024");
	uint8_t key[16], c[128], em[128], bad[128];
	struct unpadded out;

	(void)state;
	RAND_bytes(key, sizeof(key));
	assert_int_equal(rsa_pub_encrypt(pub, RSA_PAD_OAEP, key, sizeof(key), c, sizeof(c)), 0);
	vectors_rsa_raw(priv, c, sizeof(c), em);
	assert_int_equal(oaep_unpad(em, sizeof(em), 16, 16, &out), 0);
	assert_true(out.good);
	assert_memory_equal(out.msg, key, 16);
	/* Wrong length window, then every single-byte corruption of the encoded block. */
	assert_int_equal(oaep_unpad(em, sizeof(em), 24, 24, &out), 0);
	assert_false(out.good);
	assert_int_equal(out.len, 24);
	for (size_t i = 0; i < sizeof(em); i++) {
		memcpy(bad, em, sizeof(em));
		bad[i] ^= 0x01;
		assert_int_equal(oaep_unpad(bad, sizeof(bad), 16, 16, &out), 0);
		assert_false(out.good);
	}
	/* A PKCS#1 v1.5 block is not OAEP. */
	assert_int_equal(rsa_pub_encrypt(pub, RSA_PAD_PKCS1, key, sizeof(key), c, sizeof(c)), 0);
	vectors_rsa_raw(priv, c, sizeof(c), em);
	assert_int_equal(oaep_unpad(em, sizeof(em), 16, 16, &out), 0);
	assert_false(out.good);
	assert_int_equal(oaep_unpad(em, 60, 16, 32, &out), -1);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
}

static void check_keyfile(const char *rel, int want_status)
{
	EVP_PKEY *ref = vectors_public_key("rsa2048"), *got = NULL;
	size_t len;
	uint8_t *data = vectors_file(rel, &len);
	char why[200] = "";
	int st = keyfile_parse(data, len, &got, why, sizeof(why));

	if (st != want_status)
		fail_msg("%s: status %d (%s), expected %d", rel, st, why, want_status);
	if (st == KT_OK) {
		assert_int_equal(EVP_PKEY_eq(ref, got), 1);
		EVP_PKEY_free(got);
	} else {
		assert_true(strlen(why) > 0);
	}
	EVP_PKEY_free(ref);
	free(data);
}

static void test_keyfile_detection(void **state)
{
	(void)state;
	check_keyfile("keys/rsa2048.pub.blob", KT_OK);
	check_keyfile("keys/rsa2048.pub.pem", KT_OK);
	check_keyfile("../data/rsa2048.pub.der", KT_OK);
	check_keyfile("../data/rsa2048.rsapub.pem", KT_OK);
	check_keyfile("../data/rsa2048.crt.pem", KT_OK);
	check_keyfile("../data/rsa2048.crt.der", KT_OK);
	check_keyfile("../data/ec256.pub.pem", KT_BAD_PUBLIC_KEY);
	check_keyfile("../data/rsa512.pub.pem", KT_KEY_SIZE);
	check_keyfile("README.md", KT_BAD_PUBLIC_KEY);
	check_keyfile("keys/rsa2048.priv.blob", KT_BAD_PUBLIC_KEY);
}

/* OpenSSL decodes an even "modulus" that no wrap could use (found by fuzz_keyfile). */
static void test_keyfile_even_modulus(void **state)
{
	EVP_PKEY *ref = vectors_public_key("rsa2048"), *even, *got = NULL;
	uint8_t n[RSA_MAX_BYTES], e_be[8], der[1024];
	size_t k, len;
	uint64_t e;
	char why[200] = "";

	(void)state;
	assert_int_equal(rsa_pub_numbers(ref, n, &k, &e), 0);
	n[k - 1] &= 0xfe;
	for (size_t i = 0; i < 8; i++)
		e_be[i] = (uint8_t)(e >> (56 - 8 * i));
	even = rsa_pub_from_ne(n, k, e_be, sizeof(e_be));
	assert_non_null(even);
	len = rsa_pub_spki(even, 0, der, sizeof(der));
	assert_true(len > 0);
	assert_int_equal(keyfile_parse(der, len, &got, why, sizeof(why)), KT_BAD_PUBLIC_KEY);
	assert_null(got);
	EVP_PKEY_free(even);
	/* A good modulus with an exponent of 1, or an even one, is refused too. */
	n[k - 1] |= 1;
	for (uint8_t bad_e = 1; bad_e <= 4; bad_e += 3) {
		memset(e_be, 0, sizeof(e_be));
		e_be[7] = bad_e;
		even = rsa_pub_from_ne(n, k, e_be, sizeof(e_be));
		assert_non_null(even);
		len = rsa_pub_spki(even, 0, der, sizeof(der));
		assert_true(len > 0);
		assert_int_equal(keyfile_parse(der, len, &got, why, sizeof(why)), KT_BAD_PUBLIC_KEY);
		assert_non_null(strstr(why, "exponent"));
		EVP_PKEY_free(even);
	}
	EVP_PKEY_free(ref);
}

static void test_simpleblob_wrong_key(void **state)
{
	/* A blob for rsa1024 offered to rsa2048 fails on length, before any private work. */
	FILE *fp = vectors_open("simpleblob.txt");
	uint8_t n[RSA_MAX_BYTES], blob[SIMPLEBLOB_MAX];
	EVP_PKEY *k2048 = vectors_public_key("rsa2048");
	size_t k = modulus(k2048, n), len;
	struct simpleblob sb;
	struct vline l;
	char why[200];

	(void)state;
	assert_true(vectors_next(fp, &l));
	assert_string_equal(l.f[0], "rsa1024");
	len = vectors_unhex(l.f[4], blob, sizeof(blob));
	assert_int_equal(simpleblob_parse(blob, len, n, k, &sb, why, sizeof(why)), KT_BLOB_LENGTH);
	assert_non_null(strstr(why, "2048-bit"));
	fclose(fp);
	EVP_PKEY_free(k2048);
}

/*
 * The draft's derivation written out with OpenSSL's one-shot HMAC(), as an
 * independent reference: KDK = HMAC(key, c); message = PRF(KDK, "message"),
 * length from PRF(KDK, "length") by multiply-and-shift.
 */
static void reference_synthetic(const uint8_t key[IR_KEY_LEN], const uint8_t *c, size_t k,
				size_t min_len, size_t max_len, uint8_t *msg, size_t *len)
{
	uint8_t kdk[32], block[32], in[32], r[32];
	unsigned bl = 32;

	assert_non_null(HMAC(EVP_sha256(), key, IR_KEY_LEN, c, k, kdk, &bl));
	for (unsigned i = 0; i * 32 < max_len; i++) {
		size_t bits = max_len * 8;
		int n = snprintf((char *)in, sizeof(in), "%c%cmessage%c%c", (char)(i >> 8), (char)i,
				 (char)(bits >> 8), (char)bits);

		assert_int_equal(n, 11);
		assert_non_null(HMAC(EVP_sha256(), kdk, 32, in, 11, block, &bl));
		memcpy(msg + i * 32, block, max_len - i * 32 < 32 ? max_len - i * 32 : 32);
	}
	memcpy(in, "\0\0length\0\x20", 10);
	assert_non_null(HMAC(EVP_sha256(), kdk, 32, in, 10, r, &bl));
	*len = min_len + (size_t)((((uint64_t)r[0] << 24 | (uint64_t)r[1] << 16 | (uint64_t)r[2] << 8 |
				    r[3]) * (max_len - min_len + 1)) >> 32);
}

static void test_implicit_rejection(void **state)
{
	uint8_t key_a[IR_KEY_LEN], key_b[IR_KEY_LEN], c[256], want[64];
	struct unpadded s1, s2, real;
	unsigned seen[17] = { 0 };
	EVP_MAC_CTX *mac = ir_mac_new();
	size_t want_len = 0;

	(void)state;
	assert_non_null(mac);
	memset(key_a, 0x11, sizeof(key_a));
	memset(key_b, 0x22, sizeof(key_b));
	memset(c, 0x5a, sizeof(c));
	/* Deterministic in (secret, ciphertext); different for another secret or ciphertext. */
	assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 16, 16, &s1), 0);
	assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 16, 16, &s2), 0);
	assert_int_equal(s1.len, 16);
	assert_false(s1.good);
	assert_memory_equal(s1.msg, s2.msg, 16);
	assert_int_equal(ir_synthetic(mac, key_b, c, sizeof(c), 16, 16, &s2), 0);
	assert_memory_not_equal(s1.msg, s2.msg, 16);
	c[255] ^= 1;
	assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 16, 16, &s2), 0);
	assert_memory_not_equal(s1.msg, s2.msg, 16);
	/* Variable lengths (RC2/RC4) cover the whole 5..16 range, and only it. */
	for (unsigned i = 0; i < 2000; i++) {
		memcpy(c, &i, sizeof(i));
		assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 5, 16, &s1), 0);
		assert_in_range(s1.len, 5, 16);
		seen[s1.len]++;
	}
	for (unsigned len = 5; len <= 16; len++)
		assert_true(seen[len] > 100);   /* ~167 each if uniform */
	/* 40-byte COPP messages need two PRF blocks. */
	assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 40, 40, &s1), 0);
	assert_int_equal(s1.len, 40);
	/* Bad arguments. */
	assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 17, 16, &s1), -1);
	assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 0, PKCS1_MSG_MAX + 1, &s1), -1);
	/* Selection: a good decoding keeps its bytes and length, a bad one takes the synthetic. */
	assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 5, 16, &s1), 0);
	memset(&real, 0, sizeof(real));
	memset(real.msg, 0xab, 16);
	real.len = 7;
	real.good = ~0u;
	ir_select(&real, &s1, 16);
	assert_int_equal(real.len, 7);
	assert_int_equal(real.msg[0], 0xab);
	real.good = 0;
	real.len = 16;
	ir_select(&real, &s1, 16);
	assert_int_equal(real.len, s1.len);
	assert_memory_equal(real.msg, s1.msg, 16);
	/* The same bytes as the draft's derivation computed independently (one and two blocks). */
	for (size_t max = 16; max <= 40; max += 24) {
		for (unsigned i = 0; i < 50; i++) {
			memcpy(c, &i, sizeof(i));
			assert_int_equal(ir_synthetic(mac, key_a, c, sizeof(c), 5, max, &s1), 0);
			reference_synthetic(key_a, c, sizeof(c), 5, max, want, &want_len);
			assert_int_equal(s1.len, want_len);
			assert_memory_equal(s1.msg, want, max);
		}
	}
	EVP_MAC_CTX_free(mac);
}

/* Every decrypt vector, in the daemon's implicit path: a key of an allowed length, never an error. */
static void test_implicit_on_negative_vectors(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa2048");
	FILE *fp = vectors_open("negative.txt");
	EVP_MAC_CTX *mac = ir_mac_new();
	uint8_t ir_key[IR_KEY_LEN];
	struct vline l;
	int n = 0;

	(void)state;
	memset(ir_key, 7, sizeof(ir_key));
	while (vectors_next(fp, &l)) {
		uint8_t blob[SIMPLEBLOB_MAX + 8];
		size_t len = vectors_unhex(l.f[2], blob, sizeof(blob));
		struct unpadded out, synth;
		struct simpleblob sb;
		char why[200];

		if (strcmp(l.f[1], "decrypt") != 0)
			continue;
		assert_int_equal(unwrap_soft(priv, blob, len, RSA_PAD_PKCS1, &sb, &out, why, sizeof(why)),
				 KT_OK);
		assert_false(out.good);
		assert_int_equal(ir_synthetic(mac, ir_key, sb.c, sb.k, sb.alg->min_len,
					      sb.alg->max_len, &synth), 0);
		ir_select(&out, &synth, sb.alg->max_len);
		assert_true(alg_len_ok(sb.alg, out.len));
		assert_int_equal(out.len, synth.len);
		assert_memory_equal(out.msg, synth.msg, out.len);
		n++;
	}
	fclose(fp);
	EVP_PKEY_free(priv);
	EVP_MAC_CTX_free(mac);
	assert_int_equal(n, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simpleblob_vectors),
		cmocka_unit_test(test_publickeyblob_vectors),
		cmocka_unit_test(test_publickeyblob_refusals),
		cmocka_unit_test(test_copp_vectors),
		cmocka_unit_test(test_copp_sign_roundtrip),
		cmocka_unit_test(test_negative_vectors),
		cmocka_unit_test(test_wrap_roundtrip),
		cmocka_unit_test(test_pkcs1_edges),
		cmocka_unit_test(test_oaep_edges),
		cmocka_unit_test(test_keyfile_detection),
		cmocka_unit_test(test_keyfile_even_modulus),
		cmocka_unit_test(test_simpleblob_wrong_key),
		cmocka_unit_test(test_implicit_rejection),
		cmocka_unit_test(test_implicit_on_negative_vectors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
