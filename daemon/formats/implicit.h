/*
 * Implicit rejection (the IRTF CFRG RSA guidance draft, as OpenSSL 3.2 does
 * for PKCS#1 v1.5): when decryption fails, answer with a synthetic message
 * derived from the ciphertext and a secret, so that success and failure look
 * alike. The secret here is per key and rooted in the HSM (see keytab.c);
 * it stands where the draft uses the private exponent.
 */
#ifndef KT_IMPLICIT_H
#define KT_IMPLICIT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "pkcs1.h"

#define IR_KEY_LEN 32

/*
 * An HMAC-SHA256 context for ir_synthetic, made once per thread: OpenSSL 3's
 * one-shot HMAC() looks the algorithms up in the provider on every call,
 * which cost more than the HMACs themselves (docs/performance.md). NULL when
 * OpenSSL has no HMAC; free with EVP_MAC_CTX_free.
 */
EVP_MAC_CTX *ir_mac_new(void);

/*
 * The synthetic message for ciphertext c (k bytes): its length is drawn from
 * [min_len, max_len], its bytes (max_len of them) are pseudo-random, both
 * functions of (ir_key, c) only; mac is the calling thread's ir_mac_new(). 0,
 * or -1 if HMAC fails.
 */
int ir_synthetic(EVP_MAC_CTX *mac, const uint8_t ir_key[IR_KEY_LEN], const uint8_t *c, size_t k,
		 size_t min_len, size_t max_len, struct unpadded *out);
/*
 * Replaces a failed decoding by the synthetic message in constant time:
 * afterwards out->len and out->msg are the real ones when out->good, else the
 * synthetic ones; out->good is left as it was (for strict callers only).
 */
void ir_select(struct unpadded *out, const struct unpadded *synthetic, size_t max_len);

#endif
