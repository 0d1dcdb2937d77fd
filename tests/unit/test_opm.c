/*
 * OPM session start (daemon/formats/opm.c, the SHA-512 OAEP decoder of
 * oaep.c) against vectors made by Python cryptography (tests/vectors/opm.txt,
 * opm-negative.txt) and against OpenSSL's own OAEP decryption; the private
 * operation is done raw in software, as the HSM does it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "keytrans_status.h"
#include "opm.h"
#include "pkcs1.h"
#include "rsa_pub.h"
#include "simpleblob.h"
#include "vectors.h"

#define OPM_LINES 8
#define NEG_DECRYPT 10
#define NEG_RANGE 2
#define NEG_FORMAT 3

static size_t modulus(EVP_PKEY *k, uint8_t n[RSA_MAX_BYTES])
{
	uint64_t e;
	size_t len;

	assert_int_equal(rsa_pub_numbers(k, n, &len, &e), 0);
	return len;
}

/* M as the issue describes it, built here byte by byte (not with opm_message). */
static void message_by_hand(const struct copp_params *p, uint8_t m[OPM_MSG_LEN])
{
	memcpy(m, p->random, 16);
	memcpy(m + 16, p->aes_key, 16);
	for (int i = 0; i < 4; i++) {
		m[32 + i] = (uint8_t)(p->status_seq >> (8 * i));
		m[36 + i] = (uint8_t)(p->command_seq >> (8 * i));
	}
}

/* What opm-open does around the HSM: range check, raw RSA, OAEP-SHA-512 decoding. */
static void open_soft(EVP_PKEY *priv, const uint8_t sig[OPM_SIG_LEN], struct unpadded *out)
{
	uint8_t n[RSA_MAX_BYTES], c[OPM_SIG_LEN], em[OPM_SIG_LEN];
	char why[200];

	assert_int_equal(modulus(priv, n), OPM_SIG_LEN);
	assert_int_equal(opm_ciphertext(sig, n, c, why, sizeof(why)), KT_OK);
	/* Big-endian as it is: nothing reversed, unlike COPP. */
	assert_memory_equal(c, sig, OPM_SIG_LEN);
	vectors_rsa_raw(priv, c, OPM_SIG_LEN, em);
	assert_int_equal(oaep_unpad_hash(em, OPM_SIG_LEN, OAEP_SHA512, OPM_MSG_LEN, OPM_MSG_LEN,
					 out), 0);
}

static void test_opm_vectors(void **state)
{
	FILE *fp = vectors_open("opm.txt");
	struct vline l;
	int lines = 0, edges = 0;

	(void)state;
	while (vectors_next(fp, &l)) {
		uint8_t sig[OPM_SIG_LEN], random[16], aes[16], m[OPM_MSG_LEN];
		struct copp_params p, want;
		struct unpadded out;
		EVP_PKEY *priv;

		assert_int_equal(l.n, 6);
		priv = vectors_private_key(l.f[0]);
		assert_int_equal(vectors_unhex(l.f[1], random, sizeof(random)), 16);
		assert_int_equal(vectors_unhex(l.f[2], aes, sizeof(aes)), 16);
		assert_int_equal(vectors_unhex(l.f[5], sig, sizeof(sig)), OPM_SIG_LEN);
		open_soft(priv, sig, &out);
		assert_true(out.good);
		assert_int_equal(out.len, OPM_MSG_LEN);
		opm_parse(out.msg, &p);
		assert_memory_equal(p.random, random, 16);
		assert_memory_equal(p.aes_key, aes, 16);
		assert_int_equal(p.status_seq, strtoul(l.f[3], NULL, 10));
		assert_int_equal(p.command_seq, strtoul(l.f[4], NULL, 10));
		/* The decoded bytes are the documented layout, and opm_message gives them back. */
		memcpy(&want, &p, sizeof(p));
		message_by_hand(&want, m);
		assert_memory_equal(out.msg, m, OPM_MSG_LEN);
		opm_message(&p, m);
		assert_memory_equal(out.msg, m, OPM_MSG_LEN);
		edges += p.status_seq == 0xffffffffu || p.command_seq == 0xffffffffu;
		EVP_PKEY_free(priv);
		lines++;
	}
	fclose(fp);
	assert_int_equal(lines, OPM_LINES);
	assert_true(edges > 0);
}

static void sign_and_check(EVP_PKEY *pub, EVP_PKEY *priv, const struct copp_params *p)
{
	uint8_t sig[OPM_SIG_LEN], again[OPM_SIG_LEN], m[OPM_SIG_LEN], want[OPM_MSG_LEN];
	EVP_PKEY_CTX *enc = rsa_pub_encrypt_ctx(pub, RSA_PAD_OAEP_SHA512);
	struct copp_params q;
	struct unpadded out;
	char why[200];

	message_by_hand(p, want);
	assert_int_equal(opm_sign(pub, p, sig, why, sizeof(why)), KT_OK);
	/* OpenSSL's own RSAES-OAEP (SHA-512, MGF1-SHA-512, no label) opens it to M. */
	assert_int_equal(vectors_oaep_decrypt(priv, EVP_sha512(), sig, OPM_SIG_LEN, m, sizeof(m)),
			 OPM_MSG_LEN);
	assert_memory_equal(m, want, OPM_MSG_LEN);
	/* ... and not as SHA-1 OAEP: the hash really is SHA-512. */
	assert_int_equal(vectors_oaep_decrypt(priv, EVP_sha1(), sig, OPM_SIG_LEN, m, sizeof(m)), -1);
	/* The project's decoder agrees. */
	open_soft(priv, sig, &out);
	assert_true(out.good);
	opm_parse(out.msg, &q);
	assert_memory_equal(&q, p, sizeof(q));
	/* The same through a reused context; OAEP is randomised, so the bytes differ. */
	assert_non_null(enc);
	assert_int_equal(opm_sign_with(enc, OPM_SIG_LEN, p, again, why, sizeof(why)), KT_OK);
	assert_memory_not_equal(again, sig, OPM_SIG_LEN);
	assert_int_equal(vectors_oaep_decrypt(priv, EVP_sha512(), again, OPM_SIG_LEN, m, sizeof(m)),
			 OPM_MSG_LEN);
	assert_memory_equal(m, want, OPM_MSG_LEN);
	EVP_PKEY_CTX_free(enc);
}

static void test_opm_sign_opened_by_openssl(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa2048"), *pub = vectors_public_key("rsa2048");
	static const uint32_t seqs[][2] = {
		{ 0, 0 }, { 1, 1 }, { 0xffffffffu, 0xffffffffu }, { 0x01020304u, 0xa0b0c0d0u },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		struct copp_params p = { .status_seq = seqs[i][0], .command_seq = seqs[i][1] };

		assert_int_equal(RAND_bytes(p.random, sizeof(p.random)), 1);
		assert_int_equal(RAND_bytes(p.aes_key, sizeof(p.aes_key)), 1);
		sign_and_check(pub, priv, &p);
	}
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
}

static void test_opm_sign_refusals(void **state)
{
	static const char *const others[] = { "rsa1024", "rsa4096", "wine1024" };
	struct copp_params p = { .status_seq = 1 };
	uint8_t sig[OPM_SIG_LEN];
	char why[200];

	(void)state;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		EVP_PKEY *pub = vectors_public_key(others[i]);

		why[0] = 0;
		assert_int_equal(opm_sign(pub, &p, sig, why, sizeof(why)), KT_KEY_SIZE);
		assert_non_null(strstr(why, "2048"));
		EVP_PKEY_free(pub);
	}
	/* No context: an internal failure, never a signature. */
	assert_int_equal(opm_sign_with(NULL, OPM_SIG_LEN, &p, sig, why, sizeof(why)), KT_INTERNAL);
}

static void test_opm_ciphertext_range(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa2048");
	uint8_t n[RSA_MAX_BYTES], sig[OPM_SIG_LEN], c[OPM_SIG_LEN];
	char why[200];

	(void)state;
	modulus(priv, n);
	memcpy(sig, n, OPM_SIG_LEN);
	why[0] = 0;
	assert_int_equal(opm_ciphertext(sig, n, c, why, sizeof(why)), KT_BLOB_RANGE);
	assert_true(why[0] != 0);
	sig[OPM_SIG_LEN - 1]--;     /* n - 1 (n is odd): the largest value allowed */
	assert_int_equal(opm_ciphertext(sig, n, c, why, sizeof(why)), KT_OK);
	assert_memory_equal(c, sig, OPM_SIG_LEN);
	EVP_PKEY_free(priv);
}

/*
 * The decrypt lines the project's decoders can open when told the parameters
 * the line was made with: proof that each one fails for the documented reason
 * only. kind 0: OAEP-SHA-1, 1: OAEP-SHA-512, 2: PKCS#1 v1.5; len: its message.
 */
static const struct {
	const char *name;
	int kind;
	size_t len;
} openable[] = {
	{ "oaep_sha1", 0, 40 }, { "message_39", 1, 39 }, { "message_41", 1, 41 },
	{ "message_0", 1, 0 }, { "pkcs1_v15", 2, 40 },
};

static void open_as_made(const char *name, const uint8_t *em)
{
	for (size_t i = 0; i < sizeof(openable) / sizeof(openable[0]); i++) {
		struct unpadded out;
		size_t len = openable[i].len;

		if (strcmp(openable[i].name, name) != 0)
			continue;
		if (openable[i].kind == 2)
			assert_int_equal(pkcs1_unpad(em, OPM_SIG_LEN, len, len, &out), 0);
		else
			assert_int_equal(oaep_unpad_hash(em, OPM_SIG_LEN, openable[i].kind ? OAEP_SHA512
							 : OAEP_SHA1, len, len, &out), 0);
		assert_true(out.good);
		assert_int_equal(out.len, len);
	}
}

static void negative_decrypt(EVP_PKEY *priv, const char *name, const uint8_t *sig)
{
	uint8_t n[RSA_MAX_BYTES], c[OPM_SIG_LEN], em[OPM_SIG_LEN], m[OPM_SIG_LEN];
	struct unpadded out;
	char why[200];
	long len;

	modulus(priv, n);
	assert_int_equal(opm_ciphertext(sig, n, c, why, sizeof(why)), KT_OK);
	vectors_rsa_raw(priv, c, OPM_SIG_LEN, em);
	/* One outcome for every such line: not good, the length pinned to 40. */
	assert_int_equal(oaep_unpad_hash(em, OPM_SIG_LEN, OAEP_SHA512, OPM_MSG_LEN, OPM_MSG_LEN,
					 &out), 0);
	assert_false(out.good);
	assert_int_equal(out.len, OPM_MSG_LEN);
	/* OpenSSL agrees that no 40-byte OPM message is in there. */
	len = vectors_oaep_decrypt(priv, EVP_sha512(), sig, OPM_SIG_LEN, m, sizeof(m));
	assert_true(len != OPM_MSG_LEN);
	open_as_made(name, em);
}

static void test_opm_negative_vectors(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa2048");
	FILE *fp = vectors_open("opm-negative.txt");
	int decrypts = 0, ranges = 0, formats = 0;
	struct vline l;

	(void)state;
	while (vectors_next(fp, &l)) {
		uint8_t sig[OPM_SIG_LEN + 8], n[RSA_MAX_BYTES], c[OPM_SIG_LEN];
		size_t len;
		char why[200];

		assert_int_equal(l.n, 3);
		len = vectors_unhex(l.f[2], sig, sizeof(sig));
		if (strcmp(l.f[1], "format") == 0) {
			/* Not 256 bytes: refused before anything else looks at it. */
			assert_true(len != OPM_SIG_LEN);
			formats++;
			continue;
		}
		assert_int_equal(len, OPM_SIG_LEN);
		if (strcmp(l.f[1], "range") == 0) {
			modulus(priv, n);
			assert_int_equal(opm_ciphertext(sig, n, c, why, sizeof(why)), KT_BLOB_RANGE);
			ranges++;
			continue;
		}
		assert_string_equal(l.f[1], "decrypt");
		negative_decrypt(priv, l.f[0], sig);
		decrypts++;
	}
	fclose(fp);
	EVP_PKEY_free(priv);
	assert_int_equal(decrypts, NEG_DECRYPT);
	assert_int_equal(ranges, NEG_RANGE);
	assert_int_equal(formats, NEG_FORMAT);
}

/* The SHA-1 decoder (CryptoAPI's CRYPT_OAEP) still opens every OAEP SIMPLEBLOB vector. */
static void test_oaep_sha1_vectors_still_pass(void **state)
{
	FILE *fp = vectors_open("simpleblob.txt");
	struct vline l;
	int lines = 0;

	(void)state;
	while (vectors_next(fp, &l)) {
		uint8_t blob[SIMPLEBLOB_MAX], key[64], n[RSA_MAX_BYTES], em[RSA_MAX_BYTES];
		struct simpleblob sb;
		struct unpadded out;
		size_t blob_len, key_len, k;
		char why[200];
		EVP_PKEY *priv;

		assert_int_equal(l.n, 5);
		if (strcmp(l.f[1], "oaep") != 0)
			continue;
		priv = vectors_private_key(l.f[0]);
		k = modulus(priv, n);
		key_len = vectors_unhex(l.f[3], key, sizeof(key));
		blob_len = vectors_unhex(l.f[4], blob, sizeof(blob));
		assert_int_equal(simpleblob_parse(blob, blob_len, n, k, &sb, why, sizeof(why)), KT_OK);
		vectors_rsa_raw(priv, sb.c, k, em);
		assert_int_equal(oaep_unpad_hash(em, k, OAEP_SHA1, sb.alg->min_len, sb.alg->max_len,
						 &out), 0);
		assert_true(out.good);
		assert_int_equal(out.len, key_len);
		assert_memory_equal(out.msg, key, key_len);
		/* The SHA-512 decoder refuses them: too small a key for it, or not good. */
		if (k < 2 * oaep_hash_len(OAEP_SHA512) + 2 + sb.alg->max_len) {
			assert_int_equal(oaep_unpad_hash(em, k, OAEP_SHA512, sb.alg->min_len,
							 sb.alg->max_len, &out), -1);
		} else {
			assert_int_equal(oaep_unpad_hash(em, k, OAEP_SHA512, sb.alg->min_len,
							 sb.alg->max_len, &out), 0);
			assert_false(out.good);
		}
		EVP_PKEY_free(priv);
		lines++;
	}
	fclose(fp);
	assert_int_equal(lines, 30);
}

static void test_oaep_hash_arguments(void **state)
{
	uint8_t em[OPM_SIG_LEN] = { 0 };
	struct unpadded out;

	(void)state;
	assert_int_equal(oaep_hash_len(OAEP_SHA1), 20);
	assert_int_equal(oaep_hash_len(OAEP_SHA512), 64);
	/* k >= 2 * 64 + 2 + max_len, public argument errors only. */
	assert_int_equal(oaep_unpad_hash(em, 170, OAEP_SHA512, 40, 40, &out), 0);
	assert_false(out.good);
	assert_int_equal(oaep_unpad_hash(em, 169, OAEP_SHA512, 40, 40, &out), -1);
	assert_int_equal(oaep_unpad_hash(em, 128, OAEP_SHA512, 16, 16, &out), -1);
	assert_int_equal(oaep_unpad_hash(em, OPM_SIG_LEN, OAEP_SHA512, 41, 40, &out), -1);
	assert_int_equal(oaep_unpad_hash(em, OPM_SIG_LEN, OAEP_SHA512, 0, PKCS1_MSG_MAX + 1, &out),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opm_vectors),
		cmocka_unit_test(test_opm_sign_opened_by_openssl),
		cmocka_unit_test(test_opm_sign_refusals),
		cmocka_unit_test(test_opm_ciphertext_range),
		cmocka_unit_test(test_opm_negative_vectors),
		cmocka_unit_test(test_oaep_sha1_vectors_still_pass),
		cmocka_unit_test(test_oaep_hash_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
