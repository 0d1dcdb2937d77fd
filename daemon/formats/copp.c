#include "copp.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "keytrans_status.h"
#include "rsa_pub.h"

void copp_message(const struct copp_params *p, uint8_t m[COPP_MSG_LEN])
{
	struct buf_writer w;

	buf_writer_init(&w, m, COPP_MSG_LEN);
	buf_put_bytes(&w, p->random, COPP_RANDOM_LEN);
	buf_put_bytes(&w, p->aes_key, COPP_AES_LEN);
	buf_put_u32le(&w, p->status_seq);
	buf_put_u32le(&w, p->command_seq);
	buf_reverse(m, COPP_MSG_LEN);
}

void copp_parse(const uint8_t m[COPP_MSG_LEN], struct copp_params *p)
{
	uint8_t s[COPP_MSG_LEN];
	struct buf_reader r;

	memcpy(s, m, COPP_MSG_LEN);
	buf_reverse(s, COPP_MSG_LEN);   /* S = M reversed */
	buf_reader_init(&r, s, COPP_MSG_LEN);
	buf_get_bytes(&r, p->random, COPP_RANDOM_LEN);
	buf_get_bytes(&r, p->aes_key, COPP_AES_LEN);
	buf_get_u32le(&r, &p->status_seq);
	buf_get_u32le(&r, &p->command_seq);
	OPENSSL_cleanse(s, sizeof(s));
}

int copp_sign_with(EVP_PKEY_CTX *enc, size_t k, const struct copp_params *p,
		   uint8_t sig[COPP_SIG_LEN], char *why, size_t whylen)
{
	uint8_t m[COPP_MSG_LEN];
	int rc = KT_OK;

	if (k != COPP_SIG_LEN) {
		snprintf(why, whylen, "COPP needs an RSA-2048 driver key");
		return KT_KEY_SIZE;
	}
	copp_message(p, m);
	if (enc == NULL || rsa_pub_encrypt_with(enc, m, sizeof(m), sig, COPP_SIG_LEN) != 0) {
		snprintf(why, whylen, "RSA encryption failed");
		rc = KT_INTERNAL;
	}
	buf_reverse(sig, COPP_SIG_LEN);
	OPENSSL_cleanse(m, sizeof(m));
	return rc;
}

int start_sign_pub(EVP_PKEY *pub, enum rsa_padding pad, start_sign_with_fn *with,
		   const struct copp_params *p, uint8_t sig[COPP_SIG_LEN], char *why, size_t whylen)
{
	int rsa = EVP_PKEY_is_a(pub, "RSA");
	EVP_PKEY_CTX *enc = rsa ? rsa_pub_encrypt_ctx(pub, pad) : NULL;
	int st = with(enc, rsa ? ((size_t)EVP_PKEY_get_bits(pub) + 7) / 8 : 0, p, sig, why, whylen);

	EVP_PKEY_CTX_free(enc);
	return st;
}

int copp_sign(EVP_PKEY *pub, const struct copp_params *p, uint8_t sig[COPP_SIG_LEN],
	      char *why, size_t whylen)
{
	return start_sign_pub(pub, RSA_PAD_PKCS1, copp_sign_with, p, sig, why, whylen);
}

int copp_ciphertext(const uint8_t sig[COPP_SIG_LEN], const uint8_t *n, uint8_t c[COPP_SIG_LEN],
		    char *why, size_t whylen)
{
	struct buf_reader r;

	buf_reader_init(&r, sig, COPP_SIG_LEN);
	buf_get_bytes_reversed(&r, c, COPP_SIG_LEN);
	if (!rsa_below_modulus(c, n, COPP_SIG_LEN)) {
		snprintf(why, whylen, "COPP signature is not below the key's modulus");
		return KT_BLOB_RANGE;
	}
	return KT_OK;
}
