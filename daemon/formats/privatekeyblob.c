#include "privatekeyblob.h"

#include <stdio.h>
#include <string.h>

#include "alg.h"
#include "buf.h"
#include "keytrans_status.h"
#include "privkey.h"

#define CUR_BLOB_VERSION 0x02
#define RSA2_MAGIC 0x32415352u  /* "RSA2" read as u32 LE */

/* The numbers in the order the blob holds them (the public exponent is in the header). */
static const enum rsa_part blob_order[] = { RSA_N, RSA_P, RSA_Q, RSA_DP, RSA_DQ, RSA_QINV, RSA_D };

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

/* Each number, reversed from the blob's little-endian straight into its locked buffer. */
static int read_parts(struct buf_reader *r, uint32_t bitlen, uint32_t exp, struct rsa_parts *parts)
{
	size_t k = bitlen / 8, h = bitlen / 16;
	struct rsa_num *e = &parts->num[RSA_E];

	for (size_t i = 0; i < sizeof(blob_order) / sizeof(blob_order[0]); i++) {
		struct rsa_num *num = &parts->num[blob_order[i]];
		size_t n = blob_order[i] == RSA_N || blob_order[i] == RSA_D ? k : h;

		if (buf_get_bytes_reversed(r, num->b, n) != 0)
			return -1;
		num->len = n;
		rsa_num_strip(num);
	}
	for (int i = 0; i < 4; i++)
		e->b[i] = (uint8_t)(exp >> (24 - 8 * i));
	e->len = 4;
	rsa_num_strip(e);
	return buf_expect_end(r);
}

int privatekeyblob_decode(const uint8_t *blob, size_t len, struct rsa_parts *parts, char *why,
			  size_t whylen)
{
	struct buf_reader r;
	uint32_t bitlen, exp;

	buf_reader_init(&r, blob, len);
	if (read_header(&r, len, &bitlen, &exp, why, whylen) != KT_OK)
		return KT_BAD_REQUEST;
	/* read_header checked the length: this cannot fail, but a reader says so if it does. */
	if (read_parts(&r, bitlen, exp, parts) != 0)
		return fail(why, whylen, "its numbers do not fit its length");
	return KT_OK;
}
