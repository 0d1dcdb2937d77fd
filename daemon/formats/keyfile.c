#include "keyfile.h"

#include <stdio.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/pem.h>

#include "keytrans_status.h"
#include "publickeyblob.h"
#include "rsa_pub.h"

static int looks_pem(const uint8_t *p, size_t len)
{
	static const char marker[] = "-----BEGIN ";

	return len >= sizeof(marker) - 1 && memmem(p, len, marker, sizeof(marker) - 1) != NULL;
}

/* A public key (SPKI or PKCS#1) in the given input type ("PEM" or "DER"). */
static EVP_PKEY *decode_pubkey(const uint8_t *p, size_t len, const char *type)
{
	EVP_PKEY *pkey = NULL;
	OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, type, NULL, "RSA",
							       EVP_PKEY_PUBLIC_KEY, NULL, NULL);

	if (dctx != NULL && !OSSL_DECODER_from_data(dctx, &p, &len))
		pkey = NULL;
	OSSL_DECODER_CTX_free(dctx);
	return pkey;
}

static EVP_PKEY *decode_cert(const uint8_t *p, size_t len, int pem)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;

	if (pem) {
		BIO *bio = BIO_new_mem_buf(p, (int)len);

		if (bio != NULL)
			x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
	} else {
		const uint8_t *q = p;

		x = d2i_X509(NULL, &q, (long)len);
		if (x != NULL && q != p + len) {
			X509_free(x);
			x = NULL;
		}
	}
	if (x != NULL)
		pkey = X509_get_pubkey(x);
	X509_free(x);
	return pkey;
}

static EVP_PKEY *detect(const uint8_t *p, size_t len, char *why, size_t whylen, int *st)
{
	EVP_PKEY *pkey = NULL;
	int pem = looks_pem(p, len);

	*st = KT_OK;
	if (len >= 2 && p[0] == PUBLICKEYBLOB_TYPE && p[1] == 0x02) {
		*st = publickeyblob_decode(p, len, &pkey, why, whylen);
		return pkey;
	}
	pkey = decode_pubkey(p, len, pem ? "PEM" : "DER");
	if (pkey == NULL)
		pkey = decode_cert(p, len, pem);
	if (pkey == NULL) {
		snprintf(why, whylen, "not a PUBLICKEYBLOB, an RSA public key (PEM/DER) or an X.509 certificate");
		*st = KT_BAD_PUBLIC_KEY;
	}
	return pkey;
}

int keyfile_parse(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen)
{
	uint8_t n[RSA_MAX_BYTES];
	EVP_PKEY *pkey;
	uint64_t e;
	size_t k;
	int st;

	pkey = detect(p, len, why, whylen, &st);
	ERR_clear_error();  /* failed attempts leave entries nobody will read */
	if (pkey == NULL)
		return st;
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		snprintf(why, whylen, "the public key is %s, not RSA", EVP_PKEY_get0_type_name(pkey));
		st = KT_BAD_PUBLIC_KEY;
	} else if (rsa_pub_numbers(pkey, n, &k, &e) != 0 || k * 8 < RSA_MIN_BITS) {
		snprintf(why, whylen, "RSA keys of %d to %d bits are accepted", RSA_MIN_BITS, RSA_MAX_BITS);
		st = KT_KEY_SIZE;
	} else if ((n[k - 1] & 1) == 0) {
		/* OpenSSL decodes it, but cannot encrypt with it (wrap would fail as INTERNAL). */
		snprintf(why, whylen, "the modulus is even: not an RSA public key");
		st = KT_BAD_PUBLIC_KEY;
	} else if ((e & 1) == 0 || e == 1) {
		/* The same rule as for a PUBLICKEYBLOB (docs/formats.md). */
		snprintf(why, whylen, "the public exponent is even or 1: not an RSA public key");
		st = KT_BAD_PUBLIC_KEY;
	}
	if (st != KT_OK) {
		EVP_PKEY_free(pkey);
		return st;
	}
	*out = pkey;
	return KT_OK;
}
