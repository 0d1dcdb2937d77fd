/*
 * Keyed MACs over OpenSSL's EVP_MAC: a context made once per thread and reused
 * per call (fetching the algorithm costs more than the MAC of a short
 * message), and OMAC-1 (AES-CMAC, RFC 4493) with a 128-bit key, the MAC of
 * COPP's and OPM's session messages. For the daemon and the CLI's bench.
 */
#ifndef KT_MAC_H
#define KT_MAC_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define OMAC_KEY_LEN 16
#define OMAC_TAG_LEN 16

/*
 * A context for the MAC algorithm alg ("HMAC", "CMAC") with one string
 * parameter set (e.g. OSSL_MAC_PARAM_DIGEST "SHA256"); NULL on failure.
 */
EVP_MAC_CTX *mac_ctx_new(const char *alg, const char *param, const char *value);
/* A context for omac1(); NULL when OpenSSL has no CMAC / AES-128-CBC. */
EVP_MAC_CTX *omac1_ctx_new(void);
/* tag = OMAC-1(key, data[0..len)), leaving no trace of the key in ctx. 0 or -1. */
int omac1(EVP_MAC_CTX *ctx, const uint8_t key[OMAC_KEY_LEN], const uint8_t *data, size_t len,
	  uint8_t tag[OMAC_TAG_LEN]);

#endif
