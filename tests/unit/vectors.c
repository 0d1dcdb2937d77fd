#include "vectors.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "hex.h"

static void path_of(char *out, size_t cap, const char *rel)
{
	const char *dir = getenv("KT_VECTORS");

	assert_non_null(dir);
	snprintf(out, cap, "%s/%s", dir, rel);
}

FILE *vectors_open(const char *name)
{
	char path[4096];
	FILE *fp;

	path_of(path, sizeof(path), name);
	fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	return fp;
}

int vectors_next(FILE *fp, struct vline *l)
{
	while (fgets(l->buf, sizeof(l->buf), fp) != NULL) {
		char *save = NULL, *tok;

		assert_non_null(strchr(l->buf, '\n'));  /* line fits the buffer */
		l->n = 0;
		for (tok = strtok_r(l->buf, " \t\r\n", &save); tok && l->n < VLINE_FIELDS;
		     tok = strtok_r(NULL, " \t\r\n", &save))
			l->f[l->n++] = tok;
		if (l->n > 0 && l->f[0][0] != '#')
			return 1;
	}
	return 0;
}

uint8_t *vectors_file(const char *rel, size_t *len)
{
	char path[4096];
	uint8_t *data;
	FILE *fp;
	long n;

	path_of(path, sizeof(path), rel);
	fp = fopen(path, "rb");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return data;
}

static EVP_PKEY *read_key(const char *name, const char *suffix, int private)
{
	char rel[256], path[4096];
	EVP_PKEY *k;
	FILE *fp;

	snprintf(rel, sizeof(rel), "keys/%s%s", name, suffix);
	path_of(path, sizeof(path), rel);
	fp = fopen(path, "r");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	k = private ? PEM_read_PrivateKey(fp, NULL, NULL, NULL) : PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(k);
	return k;
}

EVP_PKEY *vectors_private_key(const char *name)
{
	return read_key(name, ".pem", 1);
}

EVP_PKEY *vectors_public_key(const char *name)
{
	return read_key(name, ".pub.pem", 0);
}

size_t vectors_unhex(const char *hex, uint8_t *out, size_t cap)
{
	long n;

	if (strcmp(hex, "-") == 0)
		return 0;
	n = hex_decode(hex, out, cap);
	if (n < 0)
		fail_msg("bad hex in vector: %.40s", hex);
	return (size_t)n;
}

void vectors_rsa_raw(EVP_PKEY *priv, const uint8_t *c, size_t k, uint8_t *em)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
	size_t out_len = k;

	assert_non_null(ctx);
	assert_true(EVP_PKEY_decrypt_init(ctx) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) > 0);
	assert_true(EVP_PKEY_decrypt(ctx, em, &out_len, c, k) > 0);
	assert_int_equal(out_len, k);
	EVP_PKEY_CTX_free(ctx);
}

long vectors_oaep_decrypt(EVP_PKEY *priv, const EVP_MD *md, const uint8_t *c, size_t k,
			  uint8_t *out, size_t cap)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
	size_t out_len = cap;
	int ok;

	assert_non_null(ctx);
	assert_true(EVP_PKEY_decrypt_init(ctx) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0);
	ok = EVP_PKEY_decrypt(ctx, out, &out_len, c, k) > 0;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();      /* a refusal leaves its reason queued */
	return ok ? (long)out_len : -1;
}
