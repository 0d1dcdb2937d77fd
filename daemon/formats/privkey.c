#include "privkey.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "base64.h"
#include "buf.h"
#include "cngblob.h"
#include "der.h"
#include "keytrans_status.h"
#include "pem.h"
#include "privatekeyblob.h"

/* PKCS#1 version 1 is the multi-prime form (RFC 8017 A.1.2). */
#define PKCS1_MULTI_PRIME 1
#define EXPONENT_MAX_BYTES 8

/* 1.2.840.113549.1.1.1, rsaEncryption (RFC 8017 A.1). */
static const uint8_t rsa_encryption[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };

/* Where a refusal's sentence goes, and how a malformed structure is named in it. */
struct why {
	char *s;
	size_t len;
	const char *form;
};

static const char form_der[] = "not an RSA private key (DER PKCS#1 or PKCS#8)";
static const char form_pem[] = "not a PEM private key (PKCS#1 or PKCS#8) that can be read";
static const char not_consistent[] = "the private key's numbers do not make one RSA key";

__attribute__((format(printf, 3, 4)))
static int fail(struct why *w, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->s, w->len, fmt, ap);
	va_end(ap);
	return status;
}

/* A structure that is not what it should be: the sentence names the form and the fault. */
static int malformed(struct why *w, const char *what)
{
	return fail(w, KT_BAD_REQUEST, "%s: %s", w->form, what);
}

/* The bits of a big-endian number whose first byte is not zero. */
static size_t bits_of(const uint8_t *b, size_t len)
{
	size_t bits = len * 8;

	for (uint8_t c = b[0]; (c & 0x80) == 0 && bits > 0; c = (uint8_t)(c << 1))
		bits--;
	return bits;
}

/* ---- DER: exactly the two structures' elements (der.h) ---- */

/* A version: an INTEGER of one byte, 0 to 127. */
static int der_version(struct buf_reader *r, unsigned *v)
{
	struct buf_reader c;
	uint8_t b;

	if (der_get(r, DER_INTEGER, &c) != 0 || buf_get_u8(&c, &b) != 0 ||
	    buf_expect_end(&c) != 0 || b >= 0x80)
		return -1;
	*v = b;
	return 0;
}

/*
 * A positive INTEGER into num, without its sign byte. Read from the
 * request's (or the decoded PEM's) locked bytes straight into locked
 * memory. A modulus too long is KT_KEY_SIZE.
 */
static int der_number(struct buf_reader *r, struct rsa_num *num, int modulus, struct why *w)
{
	struct buf_reader c;
	const uint8_t *p;
	size_t len;

	if (der_get(r, DER_INTEGER, &c) != 0)
		return malformed(w, "RSAPrivateKey lacks one of its numbers (an INTEGER)");
	len = buf_left(&c);
	if (len == 0 || buf_get_ptr(&c, &p, len) != 0)
		return malformed(w, "an INTEGER is empty");
	if (p[0] & 0x80)
		return malformed(w, "a number is negative");
	if (len > 1 && p[0] == 0) {
		if ((p[1] & 0x80) == 0)
			return malformed(w, "an INTEGER has a superfluous leading zero byte");
		p++;
		len--;
	}
	if (p[0] == 0)
		return malformed(w, "a number is zero");
	if (len > RSA_MAX_BYTES && modulus)
		return fail(w, KT_KEY_SIZE, "a %zu-bit RSA key: %d to %d bits are accepted",
			    bits_of(p, len), RSA_MIN_BITS, RSA_MAX_BITS);
	if (len > RSA_MAX_BYTES)
		return malformed(w, "a number is longer than 16384 bits");
	memcpy(num->b, p, len);
	num->len = len;
	return KT_OK;
}

/* RSAPrivateKey (RFC 8017 A.1.2): SEQUENCE { 0, n, e, d, p, q, dP, dQ, qInv }, all of r. */
static int pkcs1_key(struct buf_reader *r, struct rsa_parts *parts, struct why *w)
{
	struct buf_reader seq;
	unsigned version;
	int st;

	if (der_get(r, DER_SEQUENCE, &seq) != 0)
		return malformed(w, "no RSAPrivateKey SEQUENCE, or a truncated one");
	if (buf_expect_end(r) != 0)
		return malformed(w, "bytes follow the RSAPrivateKey");
	if (der_version(&seq, &version) != 0)
		return malformed(w, "RSAPrivateKey has no version");
	if (version == PKCS1_MULTI_PRIME)
		return fail(w, KT_BAD_REQUEST, "multi-prime RSA keys are not accepted");
	if (version != 0)
		return malformed(w, "RSAPrivateKey version is not 0");
	for (int i = 0; i < RSA_NPARTS; i++)
		if ((st = der_number(&seq, &parts->num[i], i == RSA_N, w)) != KT_OK)
			return st;
	if (buf_expect_end(&seq) != 0)
		return malformed(w, "RSAPrivateKey has more than its nine elements");
	return KT_OK;
}

/* AlgorithmIdentifier { rsaEncryption, NULL } (RFC 8017 A.1). */
static int pkcs8_algorithm(struct buf_reader *seq, struct why *w)
{
	struct buf_reader alg, oid, params;
	const uint8_t *o;

	if (der_get(seq, DER_SEQUENCE, &alg) != 0 || der_get(&alg, DER_OID, &oid) != 0)
		return malformed(w, "PrivateKeyInfo has no AlgorithmIdentifier");
	if (buf_left(&oid) != sizeof(rsa_encryption) ||
	    buf_get_ptr(&oid, &o, sizeof(rsa_encryption)) != 0 ||
	    memcmp(o, rsa_encryption, sizeof(rsa_encryption)) != 0)
		return fail(w, KT_BAD_REQUEST, "the private key is not an RSA key (its PKCS#8 "
			    "algorithm is not rsaEncryption)");
	if (der_get(&alg, DER_NULL, &params) != 0 || buf_left(&params) != 0 ||
	    buf_expect_end(&alg) != 0)
		return malformed(w, "the rsaEncryption parameters are not NULL");
	return KT_OK;
}

/*
 * PrivateKeyInfo (RFC 5208): SEQUENCE { 0, AlgorithmIdentifier, OCTET
 * STRING { RSAPrivateKey }, [0] attributes OPTIONAL }, all of r. The
 * attributes (a friendly name, a key usage that some tools add) are
 * tolerated and ignored: only their framing is checked. Version 1
 * (OneAsymmetricKey, RFC 5958, with the public key) is refused.
 */
static int pkcs8_key(struct buf_reader *r, struct rsa_parts *parts, struct why *w)
{
	struct buf_reader seq, key, attrs;
	unsigned version;
	int st;

	if (der_get(r, DER_SEQUENCE, &seq) != 0)
		return malformed(w, "no PrivateKeyInfo SEQUENCE, or a truncated one");
	if (buf_expect_end(r) != 0)
		return malformed(w, "bytes follow the PrivateKeyInfo");
	if (der_version(&seq, &version) != 0 || version != 0)
		return malformed(w, "PrivateKeyInfo version is not 0");
	if ((st = pkcs8_algorithm(&seq, w)) != KT_OK)
		return st;
	if (der_get(&seq, DER_OCTET_STRING, &key) != 0)
		return malformed(w, "PrivateKeyInfo has no privateKey OCTET STRING");
	if ((buf_left(&seq) > 0 && der_get(&seq, DER_CONTEXT_0, &attrs) != 0) ||
	    buf_expect_end(&seq) != 0)
		return malformed(w, "PrivateKeyInfo has more than its version, algorithm, key and "
				 "attributes");
	return pkcs1_key(&key, parts, w);
}

/* What follows the outer SEQUENCE's version: a SEQUENCE (AlgorithmIdentifier) in PKCS#8. */
static int looks_pkcs8(const struct buf_reader *r)
{
	struct buf_reader t = *r, seq;
	unsigned version;
	uint8_t tag;

	return der_get(&t, DER_SEQUENCE, &seq) == 0 && der_version(&seq, &version) == 0 &&
	       buf_get_u8(&seq, &tag) == 0 && tag == DER_SEQUENCE;
}

static int der_key(const uint8_t *p, size_t len, struct rsa_parts *parts, struct why *w)
{
	struct buf_reader r;

	buf_reader_init(&r, p, len);
	return looks_pkcs8(&r) ? pkcs8_key(&r, parts, w) : pkcs1_key(&r, parts, w);
}

/* ---- PEM: one block, its base64 decoded into locked memory ---- */

/*
 * The label says which structure. Headers (RFC 1421, "Proc-Type: 4,ENCRYPTED")
 * come only with encryption; base64 has no ':', so any ':' starts one.
 */
static int pem_kind(const struct pem *pem, struct why *w)
{
	int headers = memchr(pem->body, ':', pem->body_len) != NULL;

	if (pem_label_is(pem, "ENCRYPTED PRIVATE KEY") ||
	    (headers && memmem(pem->body, pem->body_len, "ENCRYPTED", strlen("ENCRYPTED")) != NULL))
		return fail(w, KT_BAD_REQUEST, "the PEM private key is encrypted; decrypt it first "
			    "(openssl pkey -in KEY -out PLAIN.pem)");
	if (pem_label_is(pem, "EC PRIVATE KEY") || pem_label_is(pem, "DSA PRIVATE KEY"))
		return fail(w, KT_BAD_REQUEST, "the private key is not an RSA key");
	if (!pem_label_is(pem, "PRIVATE KEY") && !pem_label_is(pem, "RSA PRIVATE KEY"))
		return malformed(w, "its label is neither PRIVATE KEY nor RSA PRIVATE KEY");
	if (headers)
		return malformed(w, "it has headers");
	return KT_OK;
}

/* The base64 in a locked buffer, wiped and freed before returning, whatever the outcome. */
static int pem_key(const uint8_t *p, size_t len, struct rsa_parts *parts, struct why *w)
{
	struct pem pem;
	struct buf_reader r;
	size_t cap;
	uint8_t *buf;
	long n;
	int st;

	w->form = form_pem;
	if (pem_split(p, len, &pem) != 0)
		return malformed(w, "no BEGIN line, END line and white space only around them");
	if ((st = pem_kind(&pem, w)) != KT_OK)
		return st;
	cap = pem.body_len / 4 * 3 + 3;
	if ((buf = OPENSSL_secure_malloc(cap)) == NULL)
		return fail(w, KT_BUSY, "out of locked memory for the key");
	n = base64_decode((const char *)pem.body, pem.body_len, buf, cap);
	if (n <= 0) {
		st = malformed(w, "its body is not base64");
	} else {
		buf_reader_init(&r, buf, (size_t)n);
		st = pem_label_is(&pem, "PRIVATE KEY") ? pkcs8_key(&r, parts, w)
						       : pkcs1_key(&r, parts, w);
	}
	OPENSSL_secure_clear_free(buf, cap);
	return st;
}

/* ---- the numbers: one key of an accepted size ---- */

/* The numbers as BIGNUMs of the secure heap: ctx is a secure one. */
static int to_bignums(const struct rsa_parts *k, BN_CTX *ctx, BIGNUM *bn[RSA_NPARTS])
{
	for (int i = 0; i < RSA_NPARTS; i++)
		if ((bn[i] = BN_CTX_get(ctx)) == NULL ||
		    BN_bin2bn(k->num[i].b, (int)k->num[i].len, bn[i]) == NULL)
			return -1;
	return 0;
}

/* For f = p or q and its exponent x = dP or dQ: x = d mod (f - 1) and e x = 1 mod (f - 1). */
static int crt_ok(BIGNUM *const bn[RSA_NPARTS], int f, int x, BN_CTX *ctx, BIGNUM *t, BIGNUM *m)
{
	return BN_sub(m, bn[f], BN_value_one()) && !BN_is_zero(m) && BN_mod(t, bn[RSA_D], m, ctx) &&
	       BN_cmp(t, bn[x]) == 0 && BN_mod_mul(t, bn[RSA_E], bn[x], m, ctx) && BN_is_one(t);
}

/*
 * RFC 8017 3.2: n = p q; d, e below n; dP = d mod (p - 1), dQ = d mod (q -
 * 1) and e d = 1 modulo both (so modulo their lcm); qInv below p and q qInv
 * = 1 mod p. Primality is not tested: the operator's own key, and a test
 * would put copies of p and q in Montgomery contexts of the ordinary heap.
 * Every BIGNUM here, temporaries included, comes from the secure ctx.
 */
static int consistent(const struct rsa_parts *k)
{
	BN_CTX *ctx = BN_CTX_secure_new();
	BIGNUM *bn[RSA_NPARTS], *t, *m;
	int ok = 0;

	if (ctx == NULL)
		return 0;
	BN_CTX_start(ctx);
	t = BN_CTX_get(ctx);
	m = BN_CTX_get(ctx);
	if (t != NULL && m != NULL && to_bignums(k, ctx, bn) == 0)
		ok = BN_mul(t, bn[RSA_P], bn[RSA_Q], ctx) && BN_cmp(t, bn[RSA_N]) == 0 &&
		     BN_cmp(bn[RSA_D], bn[RSA_N]) < 0 && BN_cmp(bn[RSA_E], bn[RSA_N]) < 0 &&
		     crt_ok(bn, RSA_P, RSA_DP, ctx, t, m) && crt_ok(bn, RSA_Q, RSA_DQ, ctx, t, m) &&
		     BN_cmp(bn[RSA_QINV], bn[RSA_P]) < 0 &&
		     BN_mod_mul(t, bn[RSA_Q], bn[RSA_QINV], bn[RSA_P], ctx) && BN_is_one(t);
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);       /* clears every BIGNUM it handed out */
	return ok;
}

/* Odd, 3 to 2^64 - 1: what PKCS#11 modules and the protocol's EXPONENT take. */
static int exponent_ok(const struct rsa_num *e)
{
	return e->len <= EXPONENT_MAX_BYTES && (e->b[e->len - 1] & 1) &&
	       (e->len > 1 || e->b[0] > 1);
}

static int check(struct rsa_parts *k, struct why *w)
{
	for (int i = 0; i < RSA_NPARTS; i++)
		if (k->num[i].len == 0)
			return fail(w, KT_BAD_REQUEST, "%s (one is zero)", not_consistent);
	k->bits = (unsigned)bits_of(k->num[RSA_N].b, k->num[RSA_N].len);
	if (k->bits < RSA_MIN_BITS || k->bits > RSA_MAX_BITS)
		return fail(w, KT_KEY_SIZE, "a %u-bit RSA key: %d to %d bits are accepted", k->bits,
			    RSA_MIN_BITS, RSA_MAX_BITS);
	if (!exponent_ok(&k->num[RSA_E]))
		return fail(w, KT_BAD_REQUEST, "the public exponent is not odd from 3 to 2^64 - 1");
	if (!consistent(k))
		return fail(w, KT_BAD_REQUEST, "%s", not_consistent);
	return KT_OK;
}

/* Detects the format and decodes; the numbers are not checked yet. */
static int decode(const uint8_t *p, size_t len, struct rsa_parts *parts, struct why *w)
{
	if (len == 0)
		return fail(w, KT_BAD_REQUEST, "the private key is empty");
	if (p[0] == PRIVATEKEYBLOB_TYPE)
		return privatekeyblob_decode(p, len, parts, w->s, w->len);
	if (cngblob_magic(p, len) != 0)
		return cngblob_private_decode(p, len, parts, w->s, w->len);
	if (p[0] == DER_SEQUENCE)
		return der_key(p, len, parts, w);
	if (pem_is(p, len))
		return pem_key(p, len, parts, w);
	return fail(w, KT_BAD_REQUEST, "not an RSA private key: expected PEM (PKCS#1 or PKCS#8, "
		    "unencrypted), DER PKCS#1 or PKCS#8, a PRIVATEKEYBLOB, or a CNG "
		    "BCRYPT_RSAPRIVATE_BLOB or BCRYPT_RSAFULLPRIVATE_BLOB");
}

int privkey_parse(const uint8_t *p, size_t len, struct rsa_parts **out, char *why, size_t whylen)
{
	struct why w = { why, whylen, form_der };
	struct rsa_parts *parts = OPENSSL_secure_zalloc(sizeof(*parts));
	int st;

	*out = NULL;
	if (parts == NULL)
		return fail(&w, KT_BUSY, "out of locked memory for the key");
	st = decode(p, len, parts, &w);
	if (st == KT_OK)
		st = check(parts, &w);
	/* A BIGNUM failure may have queued errors on this thread: nothing to keep. */
	ERR_clear_error();
	if (st != KT_OK) {
		privkey_parts_free(parts);
		return st;
	}
	*out = parts;
	return KT_OK;
}

void privkey_parts_free(struct rsa_parts *parts)
{
	if (parts != NULL)
		OPENSSL_secure_clear_free(parts, sizeof(*parts));
}

void rsa_num_strip(struct rsa_num *num)
{
	size_t skip = 0;

	while (skip < num->len && num->b[skip] == 0)
		skip++;
	memmove(num->b, num->b + skip, num->len - skip);
	memset(num->b + num->len - skip, 0, skip);
	num->len -= skip;
}
