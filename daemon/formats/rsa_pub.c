#include "rsa_pub.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/rsa.h>

/* Through a parameter builder: numbers of any length. */
static EVP_PKEY *from_ne_built(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL), *bn_e = BN_bin2bn(e, (int)e_len, NULL);
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (bld == NULL || bn_n == NULL || bn_e == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
		goto done;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
done:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	return pkey;
}

/* A big-endian number in native byte order, as an OSSL_PARAM unsigned integer holds it. */
static void to_native(uint8_t *dst, const uint8_t *be, size_t len)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (size_t i = 0; i < len; i++)
		dst[i] = be[len - 1 - i];
#else
	memcpy(dst, be, len);
#endif
}

/*
 * Parameters on the stack rather than through a builder (no BIGNUMs, no
 * allocations): a recipient decoded for a request is built this way, about
 * 1.5 µs sooner. Numbers longer than any accepted key go the general way.
 */
EVP_PKEY *rsa_pub_from_ne(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len)
{
	uint8_t n_native[RSA_MAX_BYTES], e_native[RSA_MAX_BYTES];
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pkey = NULL;

	if (n_len > sizeof(n_native) || e_len > sizeof(e_native))
		return from_ne_built(n, n_len, e, e_len);
	to_native(n_native, n, n_len);
	to_native(e_native, e, e_len);
	params[0] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_N, n_native, n_len);
	params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_E, e_native, e_len);
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

int rsa_pub_numbers(EVP_PKEY *pub, uint8_t *n, size_t *k, uint64_t *e)
{
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	uint8_t eb[8];
	int rc = -1, bits;

	if (!EVP_PKEY_is_a(pub, "RSA") ||
	    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &bn_n) ||
	    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &bn_e))
		goto done;
	bits = BN_num_bits(bn_n);
	if (bits <= 0 || bits > RSA_MAX_BITS)
		goto done;
	*k = ((size_t)bits + 7) / 8;
	if (BN_bn2binpad(bn_n, n, (int)*k) < 0)
		goto done;
	*e = (uint64_t)-1;
	if (BN_bn2binpad(bn_e, eb, sizeof(eb)) == (int)sizeof(eb)) {
		*e = 0;
		for (size_t i = 0; i < sizeof(eb); i++)
			*e = *e << 8 | eb[i];
	}
	rc = 0;
done:
	BN_free(bn_n);
	BN_free(bn_e);
	return rc;
}

int rsa_below_modulus(const uint8_t *c, const uint8_t *n, size_t k)
{
	return memcmp(c, n, k) < 0;
}

size_t rsa_pad_capacity(enum rsa_padding pad, size_t k)
{
	size_t overhead = pad == RSA_PAD_OAEP ? 2 * 20 + 2 : pad == RSA_PAD_OAEP_SHA512 ? 2 * 64 + 2 : 11;

	return k > overhead ? k - overhead : 0;
}

EVP_PKEY_CTX *rsa_pub_encrypt_ctx(EVP_PKEY *pub, enum rsa_padding pad)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);

	if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) <= 0)
		goto fail;
	if (pad == RSA_PAD_OAEP || pad == RSA_PAD_OAEP_SHA512) {
		const EVP_MD *md = pad == RSA_PAD_OAEP ? EVP_sha1() : EVP_sha512();

		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) <= 0)
			goto fail;
	} else if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0) {
		goto fail;
	}
	return ctx;
fail:
	EVP_PKEY_CTX_free(ctx);
	return NULL;
}

int rsa_pub_encrypt_with(EVP_PKEY_CTX *ctx, const uint8_t *in, size_t in_len, uint8_t *out, size_t k)
{
	size_t out_len = k;

	return EVP_PKEY_encrypt(ctx, out, &out_len, in, in_len) > 0 && out_len == k ? 0 : -1;
}

int rsa_pub_encrypt(EVP_PKEY *pub, enum rsa_padding pad, const uint8_t *in, size_t in_len,
		    uint8_t *out, size_t k)
{
	EVP_PKEY_CTX *ctx = rsa_pub_encrypt_ctx(pub, pad);
	int rc = ctx != NULL ? rsa_pub_encrypt_with(ctx, in, in_len, out, k) : -1;

	EVP_PKEY_CTX_free(ctx);
	return rc;
}

size_t rsa_pub_spki(EVP_PKEY *pub, int pem, uint8_t *out, size_t cap)
{
	BIO *bio = BIO_new(BIO_s_mem());
	const char *data;
	long len;
	size_t n = 0;

	if (bio == NULL)
		return 0;
	if (pem ? PEM_write_bio_PUBKEY(bio, pub) : i2d_PUBKEY_bio(bio, pub)) {
		len = BIO_get_mem_data(bio, &data);
		if (len > 0 && (size_t)len <= cap) {
			memcpy(out, data, (size_t)len);
			n = (size_t)len;
		}
	}
	BIO_free(bio);
	return n;
}
