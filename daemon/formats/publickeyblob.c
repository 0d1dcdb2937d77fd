#include "publickeyblob.h"

#include <stdio.h>

#include "alg.h"
#include "buf.h"
#include "keytrans_status.h"

#define CUR_BLOB_VERSION 0x02
#define RSA1_MAGIC 0x31415352u  /* "RSA1" read as u32 LE */

size_t publickeyblob_encode(EVP_PKEY *pub, uint8_t *out, size_t cap)
{
	uint8_t n[RSA_MAX_BYTES];
	struct buf_writer w;
	uint64_t e;
	size_t k;

	if (rsa_pub_numbers(pub, n, &k, &e) != 0 || e > UINT32_MAX)
		return 0;
	buf_writer_init(&w, out, cap);
	buf_put_u8(&w, PUBLICKEYBLOB_TYPE);
	buf_put_u8(&w, CUR_BLOB_VERSION);
	buf_put_u16le(&w, 0);
	buf_put_u32le(&w, CALG_RSA_KEYX);
	buf_put_u32le(&w, RSA1_MAGIC);
	buf_put_u32le(&w, (uint32_t)(k * 8));
	buf_put_u32le(&w, (uint32_t)e);
	buf_put_bytes_reversed(&w, n, k);
	return w.err ? 0 : w.len;
}

static int fail(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "PUBLICKEYBLOB: %s", msg);
	return KT_BAD_PUBLIC_KEY;
}

int publickeyblob_decode(const uint8_t *blob, size_t len, EVP_PKEY **out, char *why, size_t whylen)
{
	uint8_t type, version, n[RSA_MAX_BYTES], e[4];
	uint16_t reserved;
	uint32_t alg, magic, bitlen, exp;
	struct buf_reader r;

	buf_reader_init(&r, blob, len);
	if (buf_get_u8(&r, &type) || buf_get_u8(&r, &version) || buf_get_u16le(&r, &reserved) ||
	    buf_get_u32le(&r, &alg) || buf_get_u32le(&r, &magic) || buf_get_u32le(&r, &bitlen) ||
	    buf_get_u32le(&r, &exp))
		return fail(why, whylen, "shorter than its 20-byte header");
	if (type != PUBLICKEYBLOB_TYPE || version != CUR_BLOB_VERSION || reserved != 0)
		return fail(why, whylen, "bad BLOBHEADER (expected bType 0x06, bVersion 2, reserved 0)");
	if (alg != CALG_RSA_KEYX && alg != CALG_RSA_SIGN)
		return fail(why, whylen, "aiKeyAlg is not CALG_RSA_KEYX or CALG_RSA_SIGN");
	if (magic != RSA1_MAGIC)
		return fail(why, whylen, "magic is not \"RSA1\"");
	if (bitlen == 0 || bitlen % 8 != 0 || bitlen > RSA_MAX_BITS)
		return fail(why, whylen, "bitlen is not a multiple of 8 between 8 and 16384");
	if ((exp & 1) == 0 || exp == 1)
		return fail(why, whylen, "public exponent is even or 1");
	if (buf_get_bytes_reversed(&r, n, bitlen / 8) != 0)
		return fail(why, whylen, "shorter than 20 + bitlen/8 bytes");
	/* OpenSSL makes a key of any n, even 0; an RSA modulus is odd. */
	if ((n[bitlen / 8 - 1] & 1) == 0)
		return fail(why, whylen, "modulus is even (or zero): not an RSA modulus");
	e[0] = (uint8_t)(exp >> 24);
	e[1] = (uint8_t)(exp >> 16);
	e[2] = (uint8_t)(exp >> 8);
	e[3] = (uint8_t)exp;
	*out = rsa_pub_from_ne(n, bitlen / 8, e, sizeof(e));
	if (*out == NULL)
		return fail(why, whylen, "not a valid RSA public key");
	return KT_OK;
}
