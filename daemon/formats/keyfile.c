#include "keyfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/pem.h>

#include "base64.h"
#include "cngblob.h"
#include "keytrans_status.h"
#include "pem.h"
#include "publickeyblob.h"

/* ---- the rules, whichever way the key was read ---- */

static int size_refused(char *why, size_t whylen)
{
	snprintf(why, whylen, "RSA keys of %d to %d bits are accepted", RSA_MIN_BITS, RSA_MAX_BITS);
	return KT_KEY_SIZE;
}

/* k: the modulus bytes; e: -1 when it does not fit 64 bits (odd, as far as this goes). */
static int check_numbers(size_t k, int n_odd, uint64_t e, char *why, size_t whylen)
{
	if (k > RSA_MAX_BYTES || k * 8 < RSA_MIN_BITS)
		return size_refused(why, whylen);
	if (!n_odd) {
		/* OpenSSL decodes it, but cannot encrypt with it (wrap would fail as INTERNAL). */
		snprintf(why, whylen, "the modulus is even: not an RSA public key");
		return KT_BAD_PUBLIC_KEY;
	}
	if ((e & 1) == 0 || e == 1) {
		/* The same rule as for a PUBLICKEYBLOB (docs/formats.md). */
		snprintf(why, whylen, "the public exponent is even or 1: not an RSA public key");
		return KT_BAD_PUBLIC_KEY;
	}
	return KT_OK;
}

static int is_blob(const uint8_t *p, size_t len)
{
	return len >= 2 && p[0] == PUBLICKEYBLOB_TYPE && p[1] == 0x02;
}

/* ---- the quick reading ---- */

static int numbers_der(const uint8_t *p, size_t len, enum pubkey_form form,
		       struct keyfile_numbers *out)
{
	struct rsa_pub_ref ref;
	int found = pubkey_der_parse(p, len, form, &ref);

	if (found < 0 || ref.e_len > KEYFILE_E_MAX)
		return -1;
	out->form = (enum pubkey_form)found;
	out->n_len = ref.n_len;
	out->e_len = ref.e_len;
	if (ref.n_len <= RSA_MAX_BYTES)
		memcpy(out->n, ref.n, ref.n_len);
	memcpy(out->e, ref.e, ref.e_len);
	return 0;
}

static int pem_form(const struct pem *pem, enum pubkey_form *form)
{
	if (pem_label_is(pem, "PUBLIC KEY"))
		*form = PUBKEY_SPKI;
	else if (pem_label_is(pem, "RSA PUBLIC KEY"))
		*form = PUBKEY_RSA;
	else if (pem_label_is(pem, "CERTIFICATE"))
		*form = PUBKEY_CERT;
	else
		return -1;
	return 0;
}

/* The label says which structure the base64 holds. */
static int numbers_pem(const uint8_t *p, size_t len, struct keyfile_numbers *out)
{
	enum pubkey_form form;
	struct pem pem;
	size_t cap;
	uint8_t *der;
	long n;
	int rc = -1;

	/* OpenSSL's reader takes its markers only at the start of a line: so do we. */
	if (pem_split(p, len, &pem) != 0 || !pem_on_lines(p, &pem) || pem_form(&pem, &form) != 0)
		return -1;
	cap = pem.body_len / 4 * 3 + 3;
	der = malloc(cap);
	if (der == NULL)
		return -1;
	n = base64_decode((const char *)pem.body, pem.body_len, der, cap);
	if (n > 0)
		rc = numbers_der(der, (size_t)n, form, out);
	free(der);
	return rc;
}

int keyfile_numbers(const uint8_t *p, size_t len, struct keyfile_numbers *out)
{
	if (pem_is(p, len))
		return numbers_pem(p, len, out);
	return numbers_der(p, len, PUBKEY_ANY, out);
}

static int from_numbers(const struct keyfile_numbers *num, EVP_PKEY **out, char *why, size_t whylen)
{
	uint64_t e = 0;
	int st;

	for (size_t i = 0; i < num->e_len; i++)
		e = e << 8 | num->e[i];
	st = check_numbers(num->n_len, num->n_len <= RSA_MAX_BYTES && (num->n[num->n_len - 1] & 1), e,
			   why, whylen);
	if (st != KT_OK)
		return st;
	*out = rsa_pub_from_ne(num->n, num->n_len, num->e, num->e_len);
	if (*out == NULL) {
		snprintf(why, whylen, "cannot make an RSA key of these numbers");
		return KT_BAD_PUBLIC_KEY;
	}
	return KT_OK;
}

/* publickeyblob.c checks all but the size (its bitlen may exceed the modulus). */
static int from_blob(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen)
{
	int st = publickeyblob_decode(p, len, out, why, whylen);

	if (st == KT_OK && ((size_t)EVP_PKEY_get_bits(*out) + 7) / 8 * 8 < RSA_MIN_BITS) {
		EVP_PKEY_free(*out);
		*out = NULL;
		return size_refused(why, whylen);
	}
	return st;
}

int keyfile_parse(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen)
{
	struct keyfile_numbers num;

	if (is_blob(p, len))
		return from_blob(p, len, out, why, whylen);
	if (cngblob_magic(p, len) != 0)
		return cngblob_public_decode(p, len, out, why, whylen);
	if (keyfile_numbers(p, len, &num) == 0)
		return from_numbers(&num, out, why, whylen);
	return keyfile_parse_openssl(p, len, out, why, whylen);
}

/* ---- OpenSSL's decoders: every form they know, about 150 µs a call ---- */

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

/*
 * PEM wherever the marker is (text may precede it); DER when the bytes start
 * as a SEQUENCE, even if they hold the marker (a modulus may).
 */
static EVP_PKEY *detect(const uint8_t *p, size_t len, char *why, size_t whylen, int *st)
{
	EVP_PKEY *pkey = NULL;
	int pem = looks_pem(p, len), der = !pem || p[0] == 0x30;

	*st = KT_OK;
	if (is_blob(p, len)) {
		*st = publickeyblob_decode(p, len, &pkey, why, whylen);
		return pkey;
	}
	if (cngblob_magic(p, len) != 0) {
		*st = cngblob_public_decode(p, len, &pkey, why, whylen);
		return pkey;
	}
	if (pem)
		pkey = decode_pubkey(p, len, "PEM");
	if (pkey == NULL && der)
		pkey = decode_pubkey(p, len, "DER");
	if (pkey == NULL && pem)
		pkey = decode_cert(p, len, 1);
	if (pkey == NULL && der)
		pkey = decode_cert(p, len, 0);
	if (pkey == NULL) {
		snprintf(why, whylen, "not a PUBLICKEYBLOB, a CNG BCRYPT_RSAPUBLIC_BLOB, an RSA public key "
			 "(PEM/DER) or an X.509 certificate");
		*st = KT_BAD_PUBLIC_KEY;
	}
	return pkey;
}

int keyfile_parse_openssl(const uint8_t *p, size_t len, EVP_PKEY **out, char *why, size_t whylen)
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
	} else if (rsa_pub_numbers(pkey, n, &k, &e) != 0) {
		st = size_refused(why, whylen);
	} else {
		st = check_numbers(k, n[k - 1] & 1, e, why, whylen);
	}
	if (st != KT_OK) {
		EVP_PKEY_free(pkey);
		return st;
	}
	*out = pkey;
	return KT_OK;
}
