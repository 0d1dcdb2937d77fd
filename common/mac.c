#include "mac.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

EVP_MAC_CTX *mac_ctx_new(const char *alg, const char *param, const char *value)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, alg, NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	char v[32];
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(param, v, 0),
		OSSL_PARAM_construct_end(),
	};

	EVP_MAC_free(mac);      /* the context holds its own reference */
	if (ctx == NULL || strlen(value) >= sizeof(v)) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	memcpy(v, value, strlen(value) + 1);
	if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

EVP_MAC_CTX *omac1_ctx_new(void)
{
	return mac_ctx_new("CMAC", OSSL_MAC_PARAM_CIPHER, "AES-128-CBC");
}

int omac1(EVP_MAC_CTX *ctx, const uint8_t key[OMAC_KEY_LEN], const uint8_t *data, size_t len,
	  uint8_t tag[OMAC_TAG_LEN])
{
	static const uint8_t zero[OMAC_KEY_LEN];
	size_t out = 0;
	int ok = ctx != NULL && EVP_MAC_init(ctx, key, OMAC_KEY_LEN, NULL) == 1 &&
		 EVP_MAC_update(ctx, data, len) == 1 &&
		 EVP_MAC_final(ctx, tag, &out, OMAC_TAG_LEN) == 1 && out == OMAC_TAG_LEN;

	/* The context (ordinary heap) keeps the key's schedule, whose first round key is
	 * the key itself, and the subkeys: a zero key overwrites them. */
	if (ctx != NULL)
		EVP_MAC_init(ctx, zero, OMAC_KEY_LEN, NULL);
	return ok ? 0 : -1;
}
