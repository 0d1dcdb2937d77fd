/*
 * keytrans bench --to FILE --distinct-recipients N: N recipients in FILE's
 * format, made from FILE's key by changing a few bytes in the middle of its
 * modulus (found in the DER, reversed in a PUBLICKEYBLOB, big-endian in a
 * CNG BCRYPT_RSAPUBLIC_BLOB), so that each
 * is another key to the daemon at no key-generation cost. The length, the
 * top bits and the odd last byte stay; nothing checks that n is a product of
 * two primes, nor a certificate's signature. PEM keeps its label and headers;
 * a COPP XML chain has four base64 digits of its leaf's Modulus changed.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define BLOB_HDR 20             /* PUBLICKEYBLOB: BLOBHEADER, "RSA1", bitlen, pubexp */
#define CNG_HDR 24              /* BCRYPT_RSAKEY_BLOB: magic, bits, cbPublicExp, cbModulus, 2 x 0 */
#define MIN_MODULUS 16          /* bytes: room for the changed ones away from both ends */

/* Where the modulus lies in the encoded key: offset and length. */
struct spot {
	size_t at, len;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int is_blob(const uint8_t *p, size_t len)
{
	return len >= BLOB_HDR && p[0] == 0x06 && p[1] == 0x02;
}

static int blob_spot(const uint8_t *p, size_t len, struct spot *s)
{
	uint32_t bits = le32(p + 12);

	s->at = BLOB_HDR;
	s->len = bits / 8;
	return s->len >= MIN_MODULUS && s->len <= len - BLOB_HDR ? 0 : -1;
}

static int is_cng(const uint8_t *p, size_t len)
{
	return len >= CNG_HDR && memcmp(p, "RSA1", 4) == 0;
}

/* The modulus follows the exponent (cbPublicExp bytes) after the header. */
static int cng_spot(const uint8_t *p, size_t len, struct spot *s)
{
	uint32_t exp = le32(p + 8), mod = le32(p + 12);

	s->at = CNG_HDR + (size_t)exp;
	s->len = mod;
	return s->len >= MIN_MODULUS && exp <= len - CNG_HDR && s->len <= len - s->at ? 0 : -1;
}

/* The key of DER bytes: SubjectPublicKeyInfo, RSAPublicKey or certificate. */
static EVP_PKEY *der_key(const uint8_t *der, size_t len)
{
	EVP_PKEY *pkey = NULL;
	const uint8_t *p = der;
	size_t left = len;
	OSSL_DECODER_CTX *d = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", NULL, "RSA",
							    EVP_PKEY_PUBLIC_KEY, NULL, NULL);
	X509 *x;

	if (d != NULL && !OSSL_DECODER_from_data(d, &p, &left))
		pkey = NULL;
	OSSL_DECODER_CTX_free(d);
	if (pkey != NULL)
		return pkey;
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	if (x != NULL)
		pkey = X509_get_pubkey(x);
	X509_free(x);
	return pkey;
}

/* The big-endian modulus found among the DER bytes. */
static int der_spot(const uint8_t *der, size_t len, struct spot *s)
{
	EVP_PKEY *pkey = der_key(der, len);
	BIGNUM *n = NULL;
	uint8_t *nb = NULL;
	const uint8_t *at = NULL;
	int nlen = 0;

	if (pkey != NULL && EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n))
		nlen = BN_num_bytes(n);
	if (nlen >= MIN_MODULUS && (nb = malloc((size_t)nlen)) != NULL) {
		BN_bn2bin(n, nb);
		at = memmem(der, len, nb, (size_t)nlen);
	}
	free(nb);
	BN_free(n);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	if (at == NULL)
		return -1;
	s->at = (size_t)(at - der);
	s->len = (size_t)nlen;
	return 0;
}

/* Variant i: four bytes in the middle of the modulus changed by i + 1 (none is FILE's own key). */
static void vary(uint8_t *enc, const struct spot *s, size_t i)
{
	uint8_t *mid = enc + s->at + s->len / 2 - 2;
	uint32_t v = (uint32_t)i + 1;

	for (int b = 0; b < 4; b++)
		mid[b] ^= (uint8_t)(v >> (8 * b));
}

static int add(struct bench_recipients *r, const uint8_t *p, size_t len)
{
	uint8_t *copy = malloc(len);

	if (copy == NULL)
		return -1;
	memcpy(copy, p, len);
	r->p[r->n] = copy;
	r->len[r->n++] = len;
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_digit(uint8_t c)
{
	return c != '\0' && strchr(b64, c) != NULL;
}

/*
 * Where the leaf's modulus digits are: the text after the first "Modulus>" (the
 * leaf comes first; any namespace prefix) up to the next '<'. Four digits from
 * its middle, in pos.
 */
static int xml_spot(const uint8_t *file, size_t len, size_t pos[4])
{
	const uint8_t *m = memmem(file, len, "Modulus>", 8), *end;
	size_t digits = 0, seen = 0, k = 0;

	if (m == NULL)
		return -1;
	m += 8;
	end = memchr(m, '<', len - (size_t)(m - file));
	if (end == NULL)
		return -1;
	for (const uint8_t *p = m; p < end; p++)
		digits += (size_t)b64_digit(*p);
	for (const uint8_t *p = m; p < end && k < 4 && digits >= MIN_MODULUS; p++) {
		if (b64_digit(*p) && seen++ >= digits / 2)
			pos[k++] = (size_t)(p - file);
	}
	return k == 4 ? 0 : -1;
}

/* Variant i of an XML chain: 24 bits of the modulus changed by i + 1, in base64. */
static int make_xml(const uint8_t *file, size_t len, struct bench_recipients *r, size_t n)
{
	size_t pos[4];
	uint8_t *enc;
	int rc;

	if (xml_spot(file, len, pos) != 0 || (enc = malloc(len)) == NULL)
		return -1;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint32_t v = (uint32_t)i + 1;

		memcpy(enc, file, len);
		for (int b = 0; b < 4; b++) {
			size_t d = (size_t)(strchr(b64, enc[pos[b]]) - b64);

			enc[pos[b]] = (uint8_t)b64[d ^ ((v >> (6 * b)) & 63)];
		}
		rc = add(r, enc, len);
	}
	free(enc);
	return rc;
}

/* Binary forms: the bytes themselves, varied in place. */
static int make_binary(const uint8_t *file, size_t len, const struct spot *s,
		       struct bench_recipients *r, size_t n)
{
	uint8_t *enc = malloc(len);
	int rc = enc != NULL ? 0 : -1;

	for (size_t i = 0; i < n && rc == 0; i++) {
		memcpy(enc, file, len);
		vary(enc, s, i);
		rc = add(r, enc, len);
	}
	free(enc);
	return rc;
}

/* One PEM variant: the DER varied, armoured again with the file's label and headers. */
static int add_pem(struct bench_recipients *r, const char *label, const char *header,
		   const uint8_t *der, long der_len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *text;
	long len;
	int rc = -1;

	if (bio != NULL && PEM_write_bio(bio, label, header, der, der_len) > 0) {
		len = BIO_get_mem_data(bio, &text);
		rc = len > 0 ? add(r, (const uint8_t *)text, (size_t)len) : -1;
	}
	BIO_free(bio);
	return rc;
}

static int make_pem(const uint8_t *file, size_t len, struct bench_recipients *r, size_t n)
{
	BIO *bio = BIO_new_mem_buf(file, (int)len);
	char *label = NULL, *header = NULL;
	uint8_t *der = NULL, *enc = NULL;
	long der_len = 0;
	struct spot s;
	int rc = -1;

	if (bio != NULL && PEM_read_bio(bio, &label, &header, &der, &der_len) > 0 &&
	    der_spot(der, (size_t)der_len, &s) == 0 && (enc = malloc((size_t)der_len)) != NULL)
		rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		memcpy(enc, der, (size_t)der_len);
		vary(enc, &s, i);
		rc = add_pem(r, label, header, enc, der_len);
	}
	free(enc);
	OPENSSL_free(label);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

int bench_recipients_make(const uint8_t *file, size_t len, size_t n, struct bench_recipients *r)
{
	static const char begin[] = "-----BEGIN ";
	struct spot s;
	int rc;

	memset(r, 0, sizeof(*r));
	r->p = calloc(n, sizeof(*r->p));
	r->len = calloc(n, sizeof(*r->len));
	if (r->p == NULL || r->len == NULL)
		rc = -1;
	else if (kt_is_xml(file, len))
		rc = make_xml(file, len, r, n);
	else if (is_blob(file, len))
		rc = blob_spot(file, len, &s) == 0 ? make_binary(file, len, &s, r, n) : -1;
	else if (is_cng(file, len))
		rc = cng_spot(file, len, &s) == 0 ? make_binary(file, len, &s, r, n) : -1;
	else if (memmem(file, len, begin, sizeof(begin) - 1) != NULL)
		rc = make_pem(file, len, r, n);
	else
		rc = der_spot(file, len, &s) == 0 ? make_binary(file, len, &s, r, n) : -1;
	if (rc != 0)
		bench_recipients_free(r);
	return rc;
}

void bench_recipients_free(struct bench_recipients *r)
{
	for (size_t i = 0; r->p != NULL && i < r->n; i++)
		free(r->p[i]);
	free(r->p);
	free(r->len);
	memset(r, 0, sizeof(*r));
}
