#include "privkey.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keytrans_status.h"
#include "privatekeyblob.h"

#define PEM_BEGIN "-----BEGIN "

static const char *const part_names[RSA_NPARTS] = {
	[RSA_N] = OSSL_PKEY_PARAM_RSA_N, [RSA_E] = OSSL_PKEY_PARAM_RSA_E,
	[RSA_D] = OSSL_PKEY_PARAM_RSA_D, [RSA_P] = OSSL_PKEY_PARAM_RSA_FACTOR1,
	[RSA_Q] = OSSL_PKEY_PARAM_RSA_FACTOR2, [RSA_DP] = OSSL_PKEY_PARAM_RSA_EXPONENT1,
	[RSA_DQ] = OSSL_PKEY_PARAM_RSA_EXPONENT2, [RSA_QINV] = OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

static int fail(char *why, size_t whylen, int status, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return status;
}

/* A daemon has nobody to ask for a passphrase: encrypted keys are refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int contains(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(p + i, s, n) == 0)
			return 1;
	return 0;
}

static int is_pem(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	return len - i >= strlen(PEM_BEGIN) && memcmp(p + i, PEM_BEGIN, strlen(PEM_BEGIN)) == 0;
}

static EVP_PKEY *read_pem(const uint8_t *p, size_t len)
{
	BIO *bio = BIO_new_mem_buf(p, (int)len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;

	BIO_free(bio);
	return key;
}

static EVP_PKEY *read_der(const uint8_t *p, size_t len)
{
	const unsigned char *q = p;
	EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &q, (long)len);

	/* Trailing bytes mean it was not one key after all. */
	if (key != NULL && q != p + len) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	return key;
}

/* Detects the format and decodes; the key is not checked yet. */
static int decode(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen)
{
	if (len == 0)
		return fail(why, whylen, KT_BAD_REQUEST, "the private key is empty");
	if (p[0] == PRIVATEKEYBLOB_TYPE)
		return privatekeyblob_decode(p, len, out, why, whylen);
	if (is_pem(p, len)) {
		if (contains(p, len, "ENCRYPTED"))
			return fail(why, whylen, KT_BAD_REQUEST, "the PEM private key is encrypted; "
				    "decrypt it first (openssl pkey -in KEY -out PLAIN.pem)");
		*out = read_pem(p, len);
		if (*out == NULL)
			return fail(why, whylen, KT_BAD_REQUEST,
				    "not a PEM private key (PKCS#1 or PKCS#8) that can be read");
		return KT_OK;
	}
	*out = read_der(p, len);
	if (*out == NULL)
		return fail(why, whylen, KT_BAD_REQUEST, "not an RSA private key: expected PEM "
			    "(PKCS#1 or PKCS#8, unencrypted), DER PKCS#8 or a PRIVATEKEYBLOB");
	return KT_OK;
}

/* RSA, two primes, a usable size, numbers that make one key. */
static int check(EVP_PKEY *key, char *why, size_t whylen)
{
	BIGNUM *third = NULL;
	EVP_PKEY_CTX *ctx;
	int bits = EVP_PKEY_get_bits(key), ok;

	if (!EVP_PKEY_is_a(key, "RSA"))
		return fail(why, whylen, KT_BAD_REQUEST, "the private key is not an RSA key");
	if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
		snprintf(why, whylen, "a %d-bit RSA key: 1024 to 16384 bits are accepted", bits);
		return KT_KEY_SIZE;
	}
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR3, &third)) {
		BN_clear_free(third);
		return fail(why, whylen, KT_BAD_REQUEST, "multi-prime RSA keys are not accepted");
	}
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	ok = ctx != NULL && EVP_PKEY_pairwise_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		return fail(why, whylen, KT_BAD_REQUEST,
			    "the private key's numbers do not make one RSA key");
	return KT_OK;
}

int privkey_parse(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen)
{
	int st;

	*out = NULL;
	st = decode(p, len, out, why, whylen);
	if (st == KT_OK)
		st = check(*out, why, whylen);
	/* OpenSSL's queue may name the parts it failed on: nothing to keep. */
	ERR_clear_error();
	if (st != KT_OK) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	return st;
}

struct rsa_parts *privkey_parts(EVP_PKEY *key)
{
	struct rsa_parts *parts = OPENSSL_secure_zalloc(sizeof(*parts));
	int ok = parts != NULL;

	for (int i = 0; ok && i < RSA_NPARTS; i++) {
		BIGNUM *bn = NULL;
		int n;

		ok = EVP_PKEY_get_bn_param(key, part_names[i], &bn) && (n = BN_num_bytes(bn)) > 0 &&
		     (size_t)n <= sizeof(parts->num[i].b) && BN_bn2bin(bn, parts->num[i].b) == n;
		if (ok)
			parts->num[i].len = (size_t)n;
		BN_clear_free(bn);
	}
	if (!ok) {
		privkey_parts_free(parts);
		return NULL;
	}
	parts->bits = (unsigned)EVP_PKEY_get_bits(key);
	return parts;
}

void privkey_parts_free(struct rsa_parts *parts)
{
	if (parts != NULL)
		OPENSSL_secure_clear_free(parts, sizeof(*parts));
}
