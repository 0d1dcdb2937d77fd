#include "privatekeyblob.h"

#include <stdio.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "alg.h"
#include "buf.h"
#include "keytrans_status.h"
#include "rsa_pub.h"

#define CUR_BLOB_VERSION 0x02
#define RSA2_MAGIC 0x32415352u  /* "RSA2" read as u32 LE */

/* The numbers in the order the blob holds them, with their OpenSSL names. */
enum { P_N, P_P, P_Q, P_DP, P_DQ, P_QINV, P_D, P_E, NPARTS };
static const char *const part_names[NPARTS] = {
	[P_N] = OSSL_PKEY_PARAM_RSA_N, [P_P] = OSSL_PKEY_PARAM_RSA_FACTOR1,
	[P_Q] = OSSL_PKEY_PARAM_RSA_FACTOR2, [P_DP] = OSSL_PKEY_PARAM_RSA_EXPONENT1,
	[P_DQ] = OSSL_PKEY_PARAM_RSA_EXPONENT2, [P_QINV] = OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	[P_D] = OSSL_PKEY_PARAM_RSA_D, [P_E] = OSSL_PKEY_PARAM_RSA_E,
};

static int fail(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "PRIVATEKEYBLOB: %s", msg);
	return KT_BAD_REQUEST;
}

size_t privatekeyblob_len(uint32_t bitlen)
{
	size_t k = ((size_t)bitlen + 7) / 8, h = ((size_t)bitlen + 15) / 16;

	return PRIVATEKEYBLOB_HDR + 2 * k + 5 * h;
}

/* The header; *bitlen and *exp are what it says. KT_OK, or KT_BAD_REQUEST with why set. */
static int read_header(struct buf_reader *r, size_t len, uint32_t *bitlen, uint32_t *exp,
		       char *why, size_t whylen)
{
	uint8_t type, version;
	uint16_t reserved;
	uint32_t alg, magic;

	if (buf_get_u8(r, &type) || buf_get_u8(r, &version) || buf_get_u16le(r, &reserved) ||
	    buf_get_u32le(r, &alg) || buf_get_u32le(r, &magic) || buf_get_u32le(r, bitlen) ||
	    buf_get_u32le(r, exp))
		return fail(why, whylen, "shorter than its 20-byte header");
	if (type != PRIVATEKEYBLOB_TYPE || version != CUR_BLOB_VERSION || reserved != 0)
		return fail(why, whylen, "bad BLOBHEADER (expected bType 0x07, bVersion 2, reserved 0)");
	if (alg != CALG_RSA_KEYX && alg != CALG_RSA_SIGN)
		return fail(why, whylen, "aiKeyAlg is not CALG_RSA_KEYX or CALG_RSA_SIGN");
	if (magic != RSA2_MAGIC)
		return fail(why, whylen, "magic is not \"RSA2\"");
	if (*bitlen < RSA_MIN_BITS || *bitlen > RSA_MAX_BITS || *bitlen % 16 != 0)
		return fail(why, whylen, "bitlen is not a multiple of 16 from 1024 to 16384");
	if ((*exp & 1) == 0 || *exp == 1)
		return fail(why, whylen, "public exponent is even or 1");
	if (len != privatekeyblob_len(*bitlen)) {
		snprintf(why, whylen, "PRIVATEKEYBLOB: %zu bytes, but a %u-bit key's blob has %zu",
			 len, (unsigned)*bitlen, privatekeyblob_len(*bitlen));
		return KT_BAD_REQUEST;
	}
	return KT_OK;
}

/* Each number, little-endian as the blob has it, into locked memory. */
static int read_parts(struct buf_reader *r, uint32_t bitlen, uint32_t exp, BIGNUM *bn[NPARTS])
{
	size_t k = bitlen / 8, h = bitlen / 16;
	uint8_t e[4] = { (uint8_t)exp, (uint8_t)(exp >> 8), (uint8_t)(exp >> 16), (uint8_t)(exp >> 24) };

	for (int i = 0; i < NPARTS; i++) {
		size_t n = i == P_N || i == P_D ? k : i == P_E ? sizeof(e) : h;
		const uint8_t *p = e;

		bn[i] = BN_secure_new();
		if (bn[i] == NULL || (i != P_E && buf_get_ptr(r, &p, n) != 0) ||
		    BN_lebin2bn(p, (int)n, bn[i]) == NULL)
			return -1;
	}
	return buf_expect_end(r);
}

static EVP_PKEY *from_parts(BIGNUM *bn[NPARTS])
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int ok = bld != NULL;

	for (int i = 0; ok && i < NPARTS; i++)
		ok = OSSL_PARAM_BLD_push_BN(bld, part_names[i], bn[i]);
	if (ok)
		params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	/* The numbers are secure BIGNUMs: the builder put them in the secure heap, which this wipes. */
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

int privatekeyblob_decode(const uint8_t *blob, size_t len, EVP_PKEY **out, char *why,
			  size_t whylen)
{
	BIGNUM *bn[NPARTS] = { NULL };
	struct buf_reader r;
	uint32_t bitlen, exp;
	int st = KT_OK;

	*out = NULL;
	buf_reader_init(&r, blob, len);
	if (read_header(&r, len, &bitlen, &exp, why, whylen) != KT_OK)
		return KT_BAD_REQUEST;
	if (read_parts(&r, bitlen, exp, bn) != 0 || (*out = from_parts(bn)) == NULL)
		st = fail(why, whylen, "cannot make an RSA key of its numbers");
	for (int i = 0; i < NPARTS; i++)
		BN_clear_free(bn[i]);
	return st;
}
