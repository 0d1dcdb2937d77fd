#include "simpleblob.h"

#include <stdio.h>

#include "buf.h"
#include "keytrans_status.h"

#define SIMPLEBLOB_TYPE 0x01
#define CUR_BLOB_VERSION 0x02

/* Header fields, in the order the checks report them. */
static int parse_header(struct buf_reader *r, struct simpleblob *out, char *why, size_t whylen)
{
	uint8_t type, version;
	uint16_t reserved;
	uint32_t alg_id, wrap_alg;

	buf_get_u8(r, &type);
	buf_get_u8(r, &version);
	buf_get_u16le(r, &reserved);
	buf_get_u32le(r, &alg_id);
	buf_get_u32le(r, &wrap_alg);
	if (type != SIMPLEBLOB_TYPE) {
		snprintf(why, whylen, "not a SIMPLEBLOB: bType is 0x%02x, expected 0x01", type);
		return KT_BLOB_TYPE;
	}
	if (version != CUR_BLOB_VERSION) {
		snprintf(why, whylen, "SIMPLEBLOB bVersion is %u, expected 2", version);
		return KT_BLOB_VERSION;
	}
	if (reserved != 0) {
		snprintf(why, whylen, "SIMPLEBLOB reserved field is 0x%04x, expected 0", reserved);
		return KT_BLOB_RESERVED;
	}
	out->alg = alg_by_id(alg_id);
	if (out->alg == NULL) {
		snprintf(why, whylen, "SIMPLEBLOB aiKeyAlg 0x%04x is not a supported session-key algorithm",
			 alg_id);
		return KT_BLOB_ALG;
	}
	if (wrap_alg != CALG_RSA_KEYX) {
		snprintf(why, whylen, "SIMPLEBLOB wrapping algorithm is 0x%04x, expected CALG_RSA_KEYX (0xa400)",
			 wrap_alg);
		return KT_BLOB_WRAP_ALG;
	}
	return KT_OK;
}

int simpleblob_parse(const uint8_t *blob, size_t len, const uint8_t *n, size_t k,
		     struct simpleblob *out, char *why, size_t whylen)
{
	struct buf_reader r;
	int st;

	/* The length first, then the header fields in order (docs/protocol.md, unwrap). */
	buf_reader_init(&r, blob, len);
	if (len < SIMPLEBLOB_HDR) {
		snprintf(why, whylen, "SIMPLEBLOB is %zu bytes, shorter than its 12-byte header", len);
		return KT_BLOB_LENGTH;
	}
	if (k > RSA_MAX_BYTES || len - SIMPLEBLOB_HDR != k) {
		snprintf(why, whylen, "SIMPLEBLOB is %zu bytes; a %zu-bit key needs exactly %zu",
			 len, k * 8, SIMPLEBLOB_HDR + k);
		return KT_BLOB_LENGTH;
	}
	st = parse_header(&r, out, why, whylen);
	if (st != KT_OK)
		return st;
	buf_get_bytes_reversed(&r, out->c, k);
	out->k = k;
	if (!rsa_below_modulus(out->c, n, k)) {
		snprintf(why, whylen, "SIMPLEBLOB ciphertext is not below the key's modulus");
		return KT_BLOB_RANGE;
	}
	return KT_OK;
}

int simpleblob_unpad(const uint8_t *em, size_t k, const struct alg_info *alg,
		     enum rsa_padding pad, struct unpadded *out)
{
	if (pad == RSA_PAD_OAEP)
		return oaep_unpad(em, k, alg->min_len, alg->max_len, out);
	return pkcs1_unpad(em, k, alg->min_len, alg->max_len, out);
}

int simpleblob_wrap_with(EVP_PKEY_CTX *enc, size_t k, const struct alg_info *alg,
			 const uint8_t *key, size_t key_len, enum rsa_padding pad, uint8_t *out,
			 size_t *out_len, char *why, size_t whylen)
{
	uint8_t c[RSA_MAX_BYTES];
	struct buf_writer w;

	if (!alg_len_ok(alg, key_len) && alg->min_len == alg->max_len) {
		snprintf(why, whylen, "%s keys are %u bytes, not %zu", alg->name, alg->max_len, key_len);
		return KT_KEY_LENGTH;
	}
	if (!alg_len_ok(alg, key_len)) {
		snprintf(why, whylen, "%s keys are %u to %u bytes, not %zu", alg->name,
			 alg->min_len, alg->max_len, key_len);
		return KT_KEY_LENGTH;
	}
	if (k < RSA_MIN_BITS / 8 || k > RSA_MAX_BYTES) {
		snprintf(why, whylen, "the recipient key must be RSA of %d to %d bits",
			 RSA_MIN_BITS, RSA_MAX_BITS);
		return KT_KEY_SIZE;
	}
	if (key_len > rsa_pad_capacity(pad, k)) {
		snprintf(why, whylen, "a %zu-bit key cannot hold a %zu-byte key with this padding",
			 k * 8, key_len);
		return KT_KEY_SIZE;
	}
	if (enc == NULL || rsa_pub_encrypt_with(enc, key, key_len, c, k) != 0) {
		snprintf(why, whylen, "RSA encryption failed");
		return KT_INTERNAL;
	}
	buf_writer_init(&w, out, SIMPLEBLOB_MAX);
	buf_put_u8(&w, SIMPLEBLOB_TYPE);
	buf_put_u8(&w, CUR_BLOB_VERSION);
	buf_put_u16le(&w, 0);
	buf_put_u32le(&w, alg->id);
	buf_put_u32le(&w, CALG_RSA_KEYX);
	buf_put_bytes_reversed(&w, c, k);
	*out_len = w.len;
	return w.err ? KT_INTERNAL : KT_OK;
}

int simpleblob_wrap(EVP_PKEY *pub, const struct alg_info *alg, const uint8_t *key, size_t key_len,
		    enum rsa_padding pad, uint8_t *out, size_t *out_len, char *why, size_t whylen)
{
	EVP_PKEY_CTX *enc = EVP_PKEY_is_a(pub, "RSA") ? rsa_pub_encrypt_ctx(pub, pad) : NULL;
	int bits = EVP_PKEY_is_a(pub, "RSA") ? EVP_PKEY_get_bits(pub) : 0;
	int st = simpleblob_wrap_with(enc, ((size_t)(bits > 0 ? bits : 0) + 7) / 8, alg, key, key_len,
				      pad, out, out_len, why, whylen);

	EVP_PKEY_CTX_free(enc);
	return st;
}
