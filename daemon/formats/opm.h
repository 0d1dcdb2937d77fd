/*
 * OPM session start (IOPMVideoOutput::FinishInitialization, docs/formats.md):
 * the 40 bytes random | AES key | status seq (u32 LE) | command seq (u32 LE),
 * RSAES-OAEP encrypted with SHA-512 and MGF1-SHA-512, empty label, under the
 * driver's RSA-2048 key. Unlike COPP, nothing is reversed: the 256 bytes are
 * the big-endian ciphertext (CNG's convention).
 */
#ifndef KT_OPM_H
#define KT_OPM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "copp.h"

#define OPM_SIG_LEN 256
#define OPM_MSG_LEN 40

/* M: the 40-byte message that gets encrypted. */
void opm_message(const struct copp_params *p, uint8_t m[OPM_MSG_LEN]);
/* The inverse of opm_message. */
void opm_parse(const uint8_t m[OPM_MSG_LEN], struct copp_params *p);
/*
 * Encrypts with enc, an RSA-OAEP-SHA-512 encryption context for a key of k
 * bytes (rsa_pub_encrypt_ctx(RSA_PAD_OAEP_SHA512)). KT_OK, KT_KEY_SIZE (k is
 * not 256) or KT_INTERNAL, with a sentence in why.
 */
int opm_sign_with(EVP_PKEY_CTX *enc, size_t k, const struct copp_params *p,
		  uint8_t sig[OPM_SIG_LEN], char *why, size_t whylen);
/* The same for the public key pub. */
int opm_sign(EVP_PKEY *pub, const struct copp_params *p, uint8_t sig[OPM_SIG_LEN], char *why,
	     size_t whylen);
/*
 * The ciphertext for the private operation: the signature as it is, checked
 * against the modulus n (256 bytes). KT_OK or KT_BLOB_RANGE.
 */
int opm_ciphertext(const uint8_t sig[OPM_SIG_LEN], const uint8_t *n, uint8_t c[OPM_SIG_LEN],
		   char *why, size_t whylen);

#endif
