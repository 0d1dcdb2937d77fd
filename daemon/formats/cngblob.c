#include "cngblob.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>

#include "buf.h"
#include "keytrans_status.h"
#include "privkey.h"

/* The header: six u32 LE. */
struct cng_hdr {
	uint32_t magic, bits, cb_e, cb_n, cb_p, cb_q;
};

static const char name_public[] = "BCRYPT_RSAPUBLIC_BLOB";
static const char name_private[] = "BCRYPT_RSAPRIVATE_BLOB";
static const char name_full[] = "BCRYPT_RSAFULLPRIVATE_BLOB";

uint32_t cngblob_magic(const uint8_t *p, size_t len)
{
	struct buf_reader r;
	uint32_t magic;

	buf_reader_init(&r, p, len);
	if (buf_get_u32le(&r, &magic) != 0)
		return 0;
	return magic == CNG_RSA1_MAGIC || magic == CNG_RSA2_MAGIC || magic == CNG_RSA3_MAGIC ? magic
											     : 0;
}

static const char *blob_name(uint32_t magic)
{
	return magic == CNG_RSA1_MAGIC ? name_public : magic == CNG_RSA2_MAGIC ? name_private
									       : name_full;
}

__attribute__((format(printf, 5, 6)))
static int fail(char *why, size_t whylen, int status, const char *name, const char *fmt, ...)
{
	size_t used = (size_t)snprintf(why, whylen, "%s: ", name);
	va_list ap;

	va_start(ap, fmt);
	if (used < whylen)
		vsnprintf(why + used, whylen - used, fmt, ap);
	va_end(ap);
	return status;
}

/* 0, or -1 when fewer than CNGBLOB_HDR bytes. */
static int read_header(struct buf_reader *r, struct cng_hdr *h)
{
	return buf_get_u32le(r, &h->magic) || buf_get_u32le(r, &h->bits) ||
	       buf_get_u32le(r, &h->cb_e) || buf_get_u32le(r, &h->cb_n) ||
	       buf_get_u32le(r, &h->cb_p) || buf_get_u32le(r, &h->cb_q) ? -1 : 0;
}

/* The blob's length as its header has it; the counts were bounded by check_header. */
static size_t expected_len(const struct cng_hdr *h)
{
	size_t len = CNGBLOB_HDR + (size_t)h->cb_e + h->cb_n;

	if (h->magic == CNG_RSA2_MAGIC)
		len += (size_t)h->cb_p + h->cb_q;
	else if (h->magic == CNG_RSA3_MAGIC)
		len += 3 * (size_t)h->cb_p + 2 * (size_t)h->cb_q + h->cb_n;
	return len;
}

/*
 * The counts: a key size we take, a modulus of exactly (BitLength + 7) / 8
 * bytes (what BCryptExportKey writes), an exponent of 1 to 8 bytes, primes
 * no longer than the modulus (private blobs; public ones ignore cbPrime1 and
 * cbPrime2, as CNG does), and nothing missing or left over.
 */
static int check_header(const struct cng_hdr *h, size_t len, int bad, char *why, size_t whylen)
{
	const char *name = blob_name(h->magic);
	size_t want;

	if (h->bits < RSA_MIN_BITS || h->bits > RSA_MAX_BITS)
		return fail(why, whylen, KT_KEY_SIZE, name, "a %u-bit RSA key: %d to %d bits are "
			    "accepted", (unsigned)h->bits, RSA_MIN_BITS, RSA_MAX_BITS);
	if (h->cb_n != (h->bits + 7) / 8)
		return fail(why, whylen, bad, name, "cbModulus is %u, but a %u-bit modulus has %u "
			    "bytes", (unsigned)h->cb_n, (unsigned)h->bits, (unsigned)(h->bits + 7) / 8);
	if (h->cb_e == 0 || h->cb_e > CNGBLOB_E_MAX)
		return fail(why, whylen, bad, name, "cbPublicExp is %u: 1 to %d bytes are accepted",
			    (unsigned)h->cb_e, CNGBLOB_E_MAX);
	if (h->magic != CNG_RSA1_MAGIC && (h->cb_p == 0 || h->cb_q == 0 || h->cb_p > h->cb_n ||
					   h->cb_q > h->cb_n))
		return fail(why, whylen, bad, name, "cbPrime1 (%u) or cbPrime2 (%u) is 0 or longer "
			    "than the modulus", (unsigned)h->cb_p, (unsigned)h->cb_q);
	want = expected_len(h);
	if (len != want)
		return fail(why, whylen, bad, name, "%zu bytes, but its header gives it %zu (%s)",
			    len, want, len < want ? "truncated" : "bytes follow its numbers");
	return KT_OK;
}

/* The bits of a big-endian number (leading zero bytes allowed). */
static size_t bits_of(const uint8_t *b, size_t len)
{
	size_t i = 0, bits;

	while (i < len && b[i] == 0)
		i++;
	if (i == len)
		return 0;
	bits = (len - i) * 8;
	for (uint8_t c = b[i]; (c & 0x80) == 0; c = (uint8_t)(c << 1))
		bits--;
	return bits;
}

/* ---- BCRYPT_RSAPUBLIC_BLOB ---- */

size_t cngblob_public_encode(EVP_PKEY *pub, uint8_t *out, size_t cap)
{
	uint8_t n[RSA_MAX_BYTES], e[CNGBLOB_E_MAX];
	BIGNUM *bn_e = NULL;
	struct buf_writer w;
	uint64_t e64;
	size_t k, e_len = 0;
	int bits = EVP_PKEY_get_bits(pub);

	if (rsa_pub_numbers(pub, n, &k, &e64) != 0 || bits <= 0 ||
	    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &bn_e))
		return 0;
	if (BN_num_bytes(bn_e) <= (int)sizeof(e) && !BN_is_zero(bn_e))
		e_len = (size_t)BN_bn2bin(bn_e, e);
	BN_free(bn_e);
	if (e_len == 0)
		return 0;
	buf_writer_init(&w, out, cap);
	buf_put_u32le(&w, CNG_RSA1_MAGIC);
	buf_put_u32le(&w, (uint32_t)bits);
	buf_put_u32le(&w, (uint32_t)e_len);
	buf_put_u32le(&w, (uint32_t)k);
	buf_put_u32le(&w, 0);
	buf_put_u32le(&w, 0);
	buf_put_bytes(&w, e, e_len);
	buf_put_bytes(&w, n, k);
	return w.err ? 0 : w.len;
}

/* The value of a big-endian exponent of at most 8 bytes. */
static uint64_t value_of(const uint8_t *b, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++)
		v = v << 8 | b[i];
	return v;
}

/* The numbers after the header: their bits, parity, and the key. */
static int public_numbers(struct buf_reader *r, const struct cng_hdr *h, EVP_PKEY **out,
			  char *why, size_t whylen)
{
	uint8_t n[RSA_MAX_BYTES], e[CNGBLOB_E_MAX];
	size_t bits;
	uint64_t ev;

	/* check_header gave the exact length: the reads cannot fail, but are checked. */
	if (buf_get_bytes(r, e, h->cb_e) != 0 || buf_get_bytes(r, n, h->cb_n) != 0)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "truncated");
	bits = bits_of(n, h->cb_n);
	if (bits != h->bits)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "the modulus has %zu bits, "
			    "but BitLength is %u", bits, (unsigned)h->bits);
	if ((n[h->cb_n - 1] & 1) == 0)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "the modulus is even: not an "
			    "RSA modulus");
	ev = value_of(e, h->cb_e);
	if ((ev & 1) == 0 || ev == 1)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "the public exponent is "
			    "even or 1");
	*out = rsa_pub_from_ne(n, h->cb_n, e, h->cb_e);
	if (*out == NULL)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "not a valid RSA public key");
	return KT_OK;
}

int cngblob_public_decode(const uint8_t *blob, size_t len, EVP_PKEY **out, char *why,
			  size_t whylen)
{
	struct buf_reader r;
	struct cng_hdr h;
	int st;

	*out = NULL;
	buf_reader_init(&r, blob, len);
	if (read_header(&r, &h) != 0)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "shorter than its %d-byte "
			    "header", CNGBLOB_HDR);
	if (h.magic == CNG_RSA2_MAGIC || h.magic == CNG_RSA3_MAGIC)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "this is a %s (magic RSA%c), "
			    "a private key: give the public key (BCryptExportKey with "
			    "BCRYPT_RSAPUBLIC_BLOB)", blob_name(h.magic),
			    h.magic == CNG_RSA2_MAGIC ? '2' : '3');
	if (h.magic != CNG_RSA1_MAGIC)
		return fail(why, whylen, KT_BAD_PUBLIC_KEY, name_public, "magic is not \"RSA1\"");
	st = check_header(&h, len, KT_BAD_PUBLIC_KEY, why, whylen);
	if (st != KT_OK)
		return st;
	return public_numbers(&r, &h, out, why, whylen);
}

/* ---- BCRYPT_RSAPRIVATE_BLOB, BCRYPT_RSAFULLPRIVATE_BLOB ---- */

/* One number of n bytes, straight from the blob into its locked buffer. */
static int read_num(struct buf_reader *r, struct rsa_num *num, size_t n)
{
	if (n > sizeof(num->b) || buf_get_bytes(r, num->b, n) != 0)
		return -1;
	num->len = n;
	rsa_num_strip(num);
	return 0;
}

/* The numbers in the blob's order; a full blob's CRT values and d too. */
static int read_private(struct buf_reader *r, const struct cng_hdr *h, struct rsa_parts *k)
{
	if (read_num(r, &k->num[RSA_E], h->cb_e) || read_num(r, &k->num[RSA_N], h->cb_n) ||
	    read_num(r, &k->num[RSA_P], h->cb_p) || read_num(r, &k->num[RSA_Q], h->cb_q))
		return -1;
	if (h->magic == CNG_RSA3_MAGIC &&
	    (read_num(r, &k->num[RSA_DP], h->cb_p) || read_num(r, &k->num[RSA_DQ], h->cb_q) ||
	     read_num(r, &k->num[RSA_QINV], h->cb_p) || read_num(r, &k->num[RSA_D], h->cb_n)))
		return -1;
	return buf_expect_end(r);
}

/* A BIGNUM of the secure heap into its locked buffer. */
static int put_num(const BIGNUM *bn, struct rsa_num *num)
{
	int len = BN_num_bytes(bn);

	if (len <= 0 || (size_t)len > sizeof(num->b))
		return 0;
	num->len = (size_t)BN_bn2bin(bn, num->b);
	return 1;
}

/*
 * Whether a and m are coprime, asked before BN_mod_inverse: its failure
 * would queue an error, which OpenSSL allocates in the ordinary heap.
 */
static int coprime(const BIGNUM *a, const BIGNUM *m, BN_CTX *ctx)
{
	BIGNUM *g = BN_CTX_get(ctx);

	return g != NULL && BN_gcd(g, a, m, ctx) && BN_is_one(g);
}

/* l = lcm(p - 1, q - 1), p1 = p - 1, q1 = q - 1: 1, or 0 when p or q is below 2. */
static int carmichael(BIGNUM *l, BIGNUM *p1, BIGNUM *q1, const BIGNUM *p, const BIGNUM *q,
		      BN_CTX *ctx)
{
	BIGNUM *g = BN_CTX_get(ctx), *t = BN_CTX_get(ctx);

	return g != NULL && t != NULL && BN_sub(p1, p, BN_value_one()) && !BN_is_zero(p1) &&
	       BN_sub(q1, q, BN_value_one()) && !BN_is_zero(q1) && BN_gcd(g, p1, q1, ctx) &&
	       BN_mul(t, p1, q1, ctx) && BN_div(l, NULL, t, g, ctx);
}

/*
 * A private blob has no d and no CRT values: d = e^-1 mod lcm(p - 1, q - 1)
 * (the smallest d, as OpenSSL and FIPS 186 make it), dP = d mod (p - 1),
 * dQ = d mod (q - 1), qInv = q^-1 mod p. Every BIGNUM is in the secure heap
 * and flagged constant-time; the ctx clears them. 1, or 0 when the numbers
 * have no such values (e not invertible, p and q not coprime).
 */
static int compute_crt(struct rsa_parts *k, BN_CTX *ctx)
{
	BIGNUM *bn[RSA_NPARTS], *l, *p1, *q1;
	int ok = 1;

	for (int i = 0; i < RSA_NPARTS; i++)
		ok &= (bn[i] = BN_CTX_get(ctx)) != NULL;
	l = BN_CTX_get(ctx);
	p1 = BN_CTX_get(ctx);
	q1 = BN_CTX_get(ctx);
	if (!ok || q1 == NULL)
		return 0;
	for (int i = 0; i < RSA_NPARTS; i++)
		BN_set_flags(bn[i], BN_FLG_CONSTTIME);
	BN_set_flags(l, BN_FLG_CONSTTIME);
	BN_set_flags(p1, BN_FLG_CONSTTIME);
	BN_set_flags(q1, BN_FLG_CONSTTIME);
	return BN_bin2bn(k->num[RSA_E].b, (int)k->num[RSA_E].len, bn[RSA_E]) &&
	       BN_bin2bn(k->num[RSA_P].b, (int)k->num[RSA_P].len, bn[RSA_P]) &&
	       BN_bin2bn(k->num[RSA_Q].b, (int)k->num[RSA_Q].len, bn[RSA_Q]) &&
	       carmichael(l, p1, q1, bn[RSA_P], bn[RSA_Q], ctx) &&
	       coprime(bn[RSA_E], l, ctx) && BN_mod_inverse(bn[RSA_D], bn[RSA_E], l, ctx) &&
	       BN_mod(bn[RSA_DP], bn[RSA_D], p1, ctx) && BN_mod(bn[RSA_DQ], bn[RSA_D], q1, ctx) &&
	       coprime(bn[RSA_Q], bn[RSA_P], ctx) &&
	       BN_mod_inverse(bn[RSA_QINV], bn[RSA_Q], bn[RSA_P], ctx) &&
	       put_num(bn[RSA_D], &k->num[RSA_D]) && put_num(bn[RSA_DP], &k->num[RSA_DP]) &&
	       put_num(bn[RSA_DQ], &k->num[RSA_DQ]) && put_num(bn[RSA_QINV], &k->num[RSA_QINV]);
}

static int derive(struct rsa_parts *k, char *why, size_t whylen)
{
	BN_CTX *ctx = BN_CTX_secure_new();
	int ok;

	if (ctx == NULL)
		return fail(why, whylen, KT_BUSY, name_private, "out of locked memory for the key");
	BN_CTX_start(ctx);
	ok = compute_crt(k, ctx);
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	if (!ok)
		return fail(why, whylen, KT_BAD_REQUEST, name_private, "its primes and exponent do "
			    "not make an RSA key (no private exponent)");
	return KT_OK;
}

int cngblob_private_decode(const uint8_t *blob, size_t len, struct rsa_parts *parts, char *why,
			   size_t whylen)
{
	struct buf_reader r;
	struct cng_hdr h;
	uint64_t ev;
	size_t bits;
	int st;

	buf_reader_init(&r, blob, len);
	if (read_header(&r, &h) != 0)
		return fail(why, whylen, KT_BAD_REQUEST, "CNG RSA key blob", "shorter than its %d-byte "
			    "header", CNGBLOB_HDR);
	if (h.magic == CNG_RSA1_MAGIC)
		return fail(why, whylen, KT_BAD_REQUEST, name_public, "a public key: import needs "
			    "a BCRYPT_RSAPRIVATE_BLOB or BCRYPT_RSAFULLPRIVATE_BLOB");
	if (h.magic != CNG_RSA2_MAGIC && h.magic != CNG_RSA3_MAGIC)
		return fail(why, whylen, KT_BAD_REQUEST, "CNG RSA key blob", "magic is not \"RSA2\" "
			    "or \"RSA3\"");
	st = check_header(&h, len, KT_BAD_REQUEST, why, whylen);
	if (st != KT_OK)
		return st;
	if (read_private(&r, &h, parts) != 0)
		return fail(why, whylen, KT_BAD_REQUEST, blob_name(h.magic), "truncated");
	bits = parts->num[RSA_N].len > 0 ? bits_of(parts->num[RSA_N].b, parts->num[RSA_N].len) : 0;
	if (bits != h.bits)
		return fail(why, whylen, KT_BAD_REQUEST, blob_name(h.magic), "the modulus has %zu "
			    "bits, but BitLength is %u", bits, (unsigned)h.bits);
	if (h.magic == CNG_RSA3_MAGIC)
		return KT_OK;
	/* Said here, not as "no private exponent" below (privkey_parse checks RSA3's). */
	ev = value_of(parts->num[RSA_E].b, parts->num[RSA_E].len);
	if ((ev & 1) == 0 || ev == 1)
		return fail(why, whylen, KT_BAD_REQUEST, name_private, "the public exponent is even "
			    "or 1");
	return derive(parts, why, whylen);
}
