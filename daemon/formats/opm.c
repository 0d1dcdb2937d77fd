#include "opm.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "keytrans_status.h"
#include "rsa_pub.h"

void opm_message(const struct copp_params *p, uint8_t m[OPM_MSG_LEN])
{
	struct buf_writer w;

	buf_writer_init(&w, m, OPM_MSG_LEN);
	buf_put_bytes(&w, p->random, COPP_RANDOM_LEN);
	buf_put_bytes(&w, p->aes_key, COPP_AES_LEN);
	buf_put_u32le(&w, p->status_seq);
	buf_put_u32le(&w, p->command_seq);
}

void opm_parse(const uint8_t m[OPM_MSG_LEN], struct copp_params *p)
{
	struct buf_reader r;

	buf_reader_init(&r, m, OPM_MSG_LEN);
	buf_get_bytes(&r, p->random, COPP_RANDOM_LEN);
	buf_get_bytes(&r, p->aes_key, COPP_AES_LEN);
	buf_get_u32le(&r, &p->status_seq);
	buf_get_u32le(&r, &p->command_seq);
}

int opm_sign_with(EVP_PKEY_CTX *enc, size_t k, const struct copp_params *p,
		  uint8_t sig[OPM_SIG_LEN], char *why, size_t whylen)
{
	uint8_t m[OPM_MSG_LEN];
	int rc = KT_OK;

	if (k != OPM_SIG_LEN) {
		snprintf(why, whylen, "OPM needs an RSA-2048 driver key (its array is 256 bytes)");
		return KT_KEY_SIZE;
	}
	opm_message(p, m);
	if (enc == NULL || rsa_pub_encrypt_with(enc, m, sizeof(m), sig, OPM_SIG_LEN) != 0) {
		snprintf(why, whylen, "RSA-OAEP (SHA-512) encryption failed");
		rc = KT_INTERNAL;
	}
	OPENSSL_cleanse(m, sizeof(m));
	return rc;
}

int opm_sign(EVP_PKEY *pub, const struct copp_params *p, uint8_t sig[OPM_SIG_LEN], char *why,
	     size_t whylen)
{
	return start_sign_pub(pub, RSA_PAD_OAEP_SHA512, opm_sign_with, p, sig, why, whylen);
}

int opm_ciphertext(const uint8_t sig[OPM_SIG_LEN], const uint8_t *n, uint8_t c[OPM_SIG_LEN],
		   char *why, size_t whylen)
{
	struct buf_reader r;

	buf_reader_init(&r, sig, OPM_SIG_LEN);
	buf_get_bytes(&r, c, OPM_SIG_LEN);
	if (!rsa_below_modulus(c, n, OPM_SIG_LEN)) {
		snprintf(why, whylen, "OPM initialization parameters are not below the key's modulus");
		return KT_BLOB_RANGE;
	}
	return KT_OK;
}
