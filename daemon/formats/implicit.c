#include "implicit.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ct.h"
#include "mac.h"

#define SHA256_LEN 32

EVP_MAC_CTX *ir_mac_new(void)
{
	return mac_ctx_new("HMAC", OSSL_MAC_PARAM_DIGEST, "SHA256");
}

/* HMAC-SHA256(key, in) into out, with the digest already chosen in mac. */
static int hmac(EVP_MAC_CTX *mac, const uint8_t *key, size_t key_len, const uint8_t *in,
		size_t in_len, uint8_t out[SHA256_LEN])
{
	size_t len = 0;

	return mac != NULL && EVP_MAC_init(mac, key, key_len, NULL) == 1 &&
	       EVP_MAC_update(mac, in, in_len) == 1 &&
	       EVP_MAC_final(mac, out, &len, SHA256_LEN) == 1 && len == SHA256_LEN ? 0 : -1;
}

/* PRF(kdk, label, bytes): HMAC-SHA256(kdk, i || label || bits) blocks, as in the draft. */
static int prf(EVP_MAC_CTX *mac, const uint8_t kdk[SHA256_LEN], const char *label, uint8_t *out,
	       size_t n)
{
	uint8_t in[2 + 16 + 2], block[SHA256_LEN];
	size_t label_len = strlen(label), bits = n * 8;

	if (label_len > 16 || bits > 0xffff)
		return -1;
	for (unsigned i = 0; n > 0; i++) {
		size_t take = n < SHA256_LEN ? n : SHA256_LEN;

		in[0] = (uint8_t)(i >> 8);
		in[1] = (uint8_t)i;
		memcpy(in + 2, label, label_len);
		in[2 + label_len] = (uint8_t)(bits >> 8);
		in[3 + label_len] = (uint8_t)bits;
		if (hmac(mac, kdk, SHA256_LEN, in, 4 + label_len, block) != 0)
			return -1;
		memcpy(out, block, take);
		out += take;
		n -= take;
	}
	OPENSSL_cleanse(block, sizeof(block));
	return 0;
}

int ir_synthetic(EVP_MAC_CTX *mac, const uint8_t ir_key[IR_KEY_LEN], const uint8_t *c, size_t k,
		 size_t min_len, size_t max_len, struct unpadded *out)
{
	uint8_t kdk[SHA256_LEN], r[4];
	uint64_t draw;
	int rc = -1;

	if (max_len > PKCS1_MSG_MAX || min_len > max_len)
		return -1;
	if (hmac(mac, ir_key, IR_KEY_LEN, c, k, kdk) != 0)
		goto done;
	if (prf(mac, kdk, "message", out->msg, max_len) != 0 ||
	    prf(mac, kdk, "length", r, sizeof(r)) != 0)
		goto done;
	/* A length in [min, max] by multiply-and-shift: no division on a secret value. */
	draw = (uint64_t)((uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3]);
	out->len = min_len + (size_t)((draw * (max_len - min_len + 1)) >> 32);
	out->good = 0;
	rc = 0;
done:
	OPENSSL_cleanse(kdk, sizeof(kdk));
	OPENSSL_cleanse(r, sizeof(r));
	return rc;
}

void ir_select(struct unpadded *out, const struct unpadded *synthetic, size_t max_len)
{
	unsigned good = out->good;

	for (size_t i = 0; i < max_len; i++)
		out->msg[i] = ct_select_u8(good, out->msg[i], synthetic->msg[i]);
	out->len = ct_select(good, (unsigned)out->len, (unsigned)synthetic->len);
}
