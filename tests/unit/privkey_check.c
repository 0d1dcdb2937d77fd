#include "privkey_check.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include "keytrans_status.h"

static const char *const ossl_names[RSA_NPARTS] = {
	[RSA_N] = OSSL_PKEY_PARAM_RSA_N, [RSA_E] = OSSL_PKEY_PARAM_RSA_E,
	[RSA_D] = OSSL_PKEY_PARAM_RSA_D, [RSA_P] = OSSL_PKEY_PARAM_RSA_FACTOR1,
	[RSA_Q] = OSSL_PKEY_PARAM_RSA_FACTOR2, [RSA_DP] = OSSL_PKEY_PARAM_RSA_EXPONENT1,
	[RSA_DQ] = OSSL_PKEY_PARAM_RSA_EXPONENT2, [RSA_QINV] = OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

static int watching;
static char stray[256];

static void note(const char *file, int line)
{
	if (watching && stray[0] == '\0' && (file == NULL || strstr(file, "bn_ctx.c") == NULL))
		snprintf(stray, sizeof(stray), "%s:%d", file ? file : "?", line);
}

static void *watch_malloc(size_t n, const char *file, int line)
{
	note(file, line);
	return malloc(n);
}

static void *watch_realloc(void *p, size_t n, const char *file, int line)
{
	note(file, line);
	return realloc(p, n);
}

static void watch_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

int privkey_check_setup(void)
{
	if (!CRYPTO_set_mem_functions(watch_malloc, watch_realloc, watch_free)) {
		fprintf(stderr, "cannot watch OpenSSL's allocations\n");
		return -1;
	}
	/* The daemon's arrangement: secrets go to a locked heap, which the tests watch. */
	if (CRYPTO_secure_malloc_init(PRIVKEY_CHECK_HEAP, 16) == 0) {
		fprintf(stderr, "cannot set up a locked heap\n");
		return -1;
	}
	return 0;
}

int privkey_check_parse(const void *p, size_t n, struct rsa_parts **out, char *why, size_t whylen)
{
	size_t before = CRYPTO_secure_used();
	int st;

	stray[0] = '\0';
	watching = 1;
	st = privkey_parse(p, n, out, why, whylen);
	watching = 0;
	if (stray[0] != '\0')
		fail_msg("OpenSSL allocated ordinary memory at %s", stray);
	if (st != KT_OK) {
		assert_null(*out);
		assert_int_equal(CRYPTO_secure_used(), before);
	} else {
		assert_true(CRYPTO_secure_allocated(*out));
	}
	return st;
}

void privkey_check_same(const struct rsa_parts *got, const struct rsa_parts *want)
{
	assert_int_equal(got->bits, want->bits);
	for (int i = 0; i < RSA_NPARTS; i++) {
		assert_int_equal(got->num[i].len, want->num[i].len);
		assert_memory_equal(got->num[i].b, want->num[i].b, want->num[i].len);
	}
}

struct rsa_parts *privkey_check_numbers(EVP_PKEY *k)
{
	struct rsa_parts *parts = calloc(1, sizeof(*parts));

	assert_non_null(parts);
	for (int i = 0; i < RSA_NPARTS; i++) {
		BIGNUM *bn = NULL;

		assert_int_equal(EVP_PKEY_get_bn_param(k, ossl_names[i], &bn), 1);
		parts->num[i].len = (size_t)BN_bn2bin(bn, parts->num[i].b);
		BN_clear_free(bn);
	}
	parts->bits = (unsigned)EVP_PKEY_get_bits(k);
	return parts;
}
