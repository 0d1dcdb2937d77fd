/*
 * OMAC-1 (daemon/formats/omac.c) against RFC 4493's examples and tags made by
 * Python cryptography (tests/vectors/omac.txt), and against the RFC's
 * algorithm written out here over single AES blocks, for every length around
 * the block edges; one context serves every key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "mac.h"
#include "vectors.h"

#define OMAC_LINES 26
#define DATA_MAX 4096

struct omac_line {
	uint8_t key[OMAC_KEY_LEN], tag[OMAC_TAG_LEN];
	uint8_t data[DATA_MAX];
	size_t len;
};

/* All of omac.txt; the count in *n. */
static struct omac_line *read_lines(int *n)
{
	struct omac_line *lines = calloc(64, sizeof(*lines));
	FILE *fp = vectors_open("omac.txt");
	struct vline l;

	assert_non_null(lines);
	*n = 0;
	while (vectors_next(fp, &l)) {
		struct omac_line *o = &lines[*n];

		assert_true(*n < 64);
		assert_int_equal(l.n, 3);
		assert_int_equal(vectors_unhex(l.f[0], o->key, sizeof(o->key)), OMAC_KEY_LEN);
		o->len = vectors_unhex(l.f[1], o->data, sizeof(o->data));
		assert_int_equal(vectors_unhex(l.f[2], o->tag, sizeof(o->tag)), OMAC_TAG_LEN);
		(*n)++;
	}
	fclose(fp);
	return lines;
}

static void test_omac_vectors(void **state)
{
	EVP_MAC_CTX *ctx = omac1_ctx_new();
	static const size_t rfc_lengths[] = { 0, 16, 40, 64 };
	uint8_t tag[OMAC_TAG_LEN];
	int n;
	struct omac_line *lines = read_lines(&n);

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(n, OMAC_LINES);
	/* The first four lines are RFC 4493's examples 1-4 under its one key. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(lines[i].len, rfc_lengths[i]);
		assert_memory_equal(lines[i].key, lines[0].key, OMAC_KEY_LEN);
	}
	/* One context, a different key on almost every line. */
	for (int i = 0; i < n; i++) {
		memset(tag, 0, sizeof(tag));
		assert_int_equal(omac1(ctx, lines[i].key, lines[i].data, lines[i].len, tag), 0);
		assert_memory_equal(tag, lines[i].tag, OMAC_TAG_LEN);
	}
	EVP_MAC_CTX_free(ctx);
	free(lines);
}

/* Contexts reused in any order, across keys, give what a fresh context gives. */
static void test_omac_context_reuse(void **state)
{
	EVP_MAC_CTX *a = omac1_ctx_new(), *b = omac1_ctx_new();
	uint8_t tag[OMAC_TAG_LEN];
	int n;
	struct omac_line *lines = read_lines(&n);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	for (int round = 0; round < 3; round++) {
		for (int i = n - 1; i >= 0; i--) {
			EVP_MAC_CTX *ctx = (i + round) % 2 ? a : b;

			assert_int_equal(omac1(ctx, lines[i].key, lines[i].data, lines[i].len, tag), 0);
			assert_memory_equal(tag, lines[i].tag, OMAC_TAG_LEN);
		}
	}
	/* The same data under two keys: the key of the call counts, not the previous one. */
	assert_int_equal(omac1(a, lines[5].key, lines[4].data, lines[4].len, tag), 0);
	assert_memory_not_equal(tag, lines[4].tag, OMAC_TAG_LEN);
	assert_int_equal(omac1(a, lines[4].key, lines[4].data, lines[4].len, tag), 0);
	assert_memory_equal(tag, lines[4].tag, OMAC_TAG_LEN);
	/* No context: an error, never a tag. */
	assert_int_equal(omac1(NULL, lines[0].key, lines[0].data, lines[0].len, tag), -1);
	EVP_MAC_CTX_free(a);
	EVP_MAC_CTX_free(b);
	free(lines);
}

/* One AES-128 block encryption (the cipher CMAC is built on). */
static void aes_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0;

	assert_non_null(c);
	assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, key, NULL), 1);
	assert_int_equal(EVP_CIPHER_CTX_set_padding(c, 0), 1);
	assert_int_equal(EVP_EncryptUpdate(c, out, &len, in, 16), 1);
	assert_int_equal(len, 16);
	EVP_CIPHER_CTX_free(c);
}

/* RFC 4493 2.3: doubling in GF(2^128), Rb = 0x87. */
static void dbl(const uint8_t in[16], uint8_t out[16])
{
	uint8_t carry = in[0] >> 7;

	for (int i = 0; i < 15; i++)
		out[i] = (uint8_t)(in[i] << 1 | in[i + 1] >> 7);
	out[15] = (uint8_t)(in[15] << 1);
	if (carry)
		out[15] ^= 0x87;
}

/* RFC 4493 2.4, as written there. */
static void cmac_reference(const uint8_t key[16], const uint8_t *m, size_t len, uint8_t t[16])
{
	uint8_t zero[16] = { 0 }, l[16], k1[16], k2[16], x[16] = { 0 }, last[16], y[16];
	size_t blocks = len == 0 ? 1 : (len + 15) / 16;
	int complete = len > 0 && len % 16 == 0;

	aes_block(key, zero, l);
	dbl(l, k1);
	dbl(k1, k2);
	memset(last, 0, sizeof(last));
	if (complete) {
		for (int i = 0; i < 16; i++)
			last[i] = m[16 * (blocks - 1) + i] ^ k1[i];
	} else {
		size_t rest = len - 16 * (blocks - 1);

		memcpy(last, m + 16 * (blocks - 1), rest);
		last[rest] = 0x80;
		for (int i = 0; i < 16; i++)
			last[i] ^= k2[i];
	}
	for (size_t b = 0; b + 1 < blocks; b++) {
		for (int i = 0; i < 16; i++)
			y[i] = x[i] ^ m[16 * b + i];
		aes_block(key, y, x);
	}
	for (int i = 0; i < 16; i++)
		y[i] = x[i] ^ last[i];
	aes_block(key, y, t);
}

static void test_omac_against_rfc_algorithm(void **state)
{
	EVP_MAC_CTX *ctx = omac1_ctx_new();
	uint8_t key[16], tag[16], want[16];
	uint8_t *data = malloc(DATA_MAX);
	int n;
	struct omac_line *lines = read_lines(&n);

	(void)state;
	assert_non_null(ctx);
	assert_non_null(data);
	/* The reference itself is right: it gives every tag of the file. */
	for (int i = 0; i < n; i++) {
		cmac_reference(lines[i].key, lines[i].data, lines[i].len, want);
		assert_memory_equal(want, lines[i].tag, 16);
	}
	assert_int_equal(RAND_bytes(data, DATA_MAX), 1);
	for (size_t len = 0; len <= 200; len++) {
		assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
		cmac_reference(key, data, len, want);
		assert_int_equal(omac1(ctx, key, data, len, tag), 0);
		assert_memory_equal(tag, want, 16);
	}
	cmac_reference(key, data, DATA_MAX, want);
	assert_int_equal(omac1(ctx, key, data, DATA_MAX, tag), 0);
	assert_memory_equal(tag, want, 16);
	/* Empty data with no buffer at all, as an empty DATA field may come. */
	cmac_reference(key, data, 0, want);
	assert_int_equal(omac1(ctx, key, NULL, 0, tag), 0);
	assert_memory_equal(tag, want, 16);
	EVP_MAC_CTX_free(ctx);
	free(data);
	free(lines);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_omac_vectors),
		cmocka_unit_test(test_omac_context_reuse),
		cmocka_unit_test(test_omac_against_rfc_algorithm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
