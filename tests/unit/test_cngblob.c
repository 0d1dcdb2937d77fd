/*
 * CNG RSA key blobs (daemon/formats/cngblob.c): the blobs Wine's CNG exported
 * for the rsa2048 vector key (tests/vectors/keys/rsa2048.cng.*.blob) read as
 * the same key as its PEM and the public one written back byte for byte;
 * round trips of keys of several sizes and exponents; every truncation,
 * size, count and magic defect refused with its own sentence; inconsistent
 * private numbers refused; a private blob's d and CRT values computed in
 * the locked heap only, with nothing of the key in OpenSSL's ordinary heap.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>

#include "cngblob.h"
#include "keyfile.h"
#include "keytrans_status.h"
#include "privkey.h"
#include "privkey_check.h"
#include "vectors.h"

#define BLOB_MAX (CNGBLOB_HDR + 8 + 3 * RSA_MAX_BYTES)


/* Offsets of the header's fields. */
enum { OFF_MAGIC = 0, OFF_BITS = 4, OFF_CB_E = 8, OFF_CB_N = 12, OFF_CB_P = 16, OFF_CB_Q = 20 };

struct blob {
	uint8_t b[BLOB_MAX];
	size_t len;
};

/* ---- helpers ---- */

static uint32_t get32(const struct blob *b, size_t off)
{
	return (uint32_t)b->b[off] | (uint32_t)b->b[off + 1] << 8 | (uint32_t)b->b[off + 2] << 16 |
	       (uint32_t)b->b[off + 3] << 24;
}

static void set32(struct blob *b, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b->b[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void load(const char *rel, struct blob *out)
{
	uint8_t *p = vectors_file(rel, &out->len);

	assert_true(out->len <= sizeof(out->b));
	memcpy(out->b, p, out->len);
	free(p);
}

static void put_num(struct blob *b, const struct rsa_num *num, size_t width)
{
	assert_true(num->len <= width && b->len + width <= sizeof(b->b));
	memset(b->b + b->len, 0, width - num->len);
	memcpy(b->b + b->len + width - num->len, num->b, num->len);
	b->len += width;
}

/* The blob of magic for k, written here from the layout of docs/formats.md. */
static void build(const struct rsa_parts *k, uint32_t magic, struct blob *b)
{
	size_t cb_n = (k->bits + 7) / 8, cb_p = k->num[RSA_P].len, cb_q = k->num[RSA_Q].len;
	int pub = magic == CNG_RSA1_MAGIC;

	b->len = CNGBLOB_HDR;
	set32(b, OFF_MAGIC, magic);
	set32(b, OFF_BITS, k->bits);
	set32(b, OFF_CB_E, (uint32_t)k->num[RSA_E].len);
	set32(b, OFF_CB_N, (uint32_t)cb_n);
	set32(b, OFF_CB_P, pub ? 0 : (uint32_t)cb_p);
	set32(b, OFF_CB_Q, pub ? 0 : (uint32_t)cb_q);
	put_num(b, &k->num[RSA_E], k->num[RSA_E].len);
	put_num(b, &k->num[RSA_N], cb_n);
	if (pub)
		return;
	put_num(b, &k->num[RSA_P], cb_p);
	put_num(b, &k->num[RSA_Q], cb_q);
	if (magic == CNG_RSA2_MAGIC)
		return;
	put_num(b, &k->num[RSA_DP], cb_p);
	put_num(b, &k->num[RSA_DQ], cb_q);
	put_num(b, &k->num[RSA_QINV], cb_p);
	put_num(b, &k->num[RSA_D], cb_n);
}

/* privkey_parse, as the daemon's import runs it, watched (privkey_check.h). */
static int parse_private(const struct blob *b, struct rsa_parts **out, char *why, size_t whylen)
{
	uint8_t *copy = malloc(b->len ? b->len : 1);    /* exactly len bytes, for ASan */
	int st;

	memcpy(copy, b->b, b->len);
	st = privkey_check_parse(copy, b->len, out, why, whylen);
	free(copy);
	return st;
}

static void assert_private_accepted(const struct blob *b, const struct rsa_parts *want)
{
	struct rsa_parts *got = NULL;
	char why[256] = "";

	if (parse_private(b, &got, why, sizeof(why)) != KT_OK)
		fail_msg("refused: %s", why);
	privkey_check_same(got, want);
	privkey_parts_free(got);
}

static void assert_private_refused(const struct blob *b, int status, const char *why_part)
{
	struct rsa_parts *got = (struct rsa_parts *)1;
	char why[256] = "";
	int st = parse_private(b, &got, why, sizeof(why));

	if (st != status || strstr(why, why_part) == NULL)
		fail_msg("%zu-byte blob: status %d \"%s\", expected %d \"%s\"", b->len, st, why,
			 status, why_part);
}

/* keyfile_parse (the recipient path) and the OpenSSL-only path agree; the key when accepted. */
static int parse_public(const struct blob *b, EVP_PKEY **out, char *why, size_t whylen)
{
	uint8_t *copy = malloc(b->len ? b->len : 1);
	char why_b[256] = "";
	EVP_PKEY *other = NULL;
	int st, st_b;

	memcpy(copy, b->b, b->len);
	*out = NULL;
	st = keyfile_parse(copy, b->len, out, why, whylen);
	st_b = keyfile_parse_openssl(copy, b->len, &other, why_b, sizeof(why_b));
	free(copy);
	assert_int_equal(st, st_b);
	assert_string_equal(why, why_b);
	if (st == KT_OK)
		assert_int_equal(EVP_PKEY_eq(*out, other), 1);
	else
		assert_null(*out);
	EVP_PKEY_free(other);
	return st;
}

static void assert_public_refused(const struct blob *b, int status, const char *why_part)
{
	EVP_PKEY *k;
	char why[256] = "";
	int st = parse_public(b, &k, why, sizeof(why));

	if (st != status || strstr(why, why_part) == NULL)
		fail_msg("%zu-byte blob: status %d \"%s\", expected %d \"%s\"", b->len, st, why,
			 status, why_part);
}

static void assert_public_is(const struct blob *b, EVP_PKEY *want)
{
	EVP_PKEY *k;
	char why[256] = "";

	if (parse_public(b, &k, why, sizeof(why)) != KT_OK)
		fail_msg("refused: %s", why);
	assert_int_equal(EVP_PKEY_eq(k, want), 1);
	EVP_PKEY_free(k);
}

/* ---- the vectors Wine's CNG exported ---- */

static void test_vector_public(void **state)
{
	EVP_PKEY *pub = vectors_public_key("rsa2048");
	uint8_t out[CNGBLOB_PUBLIC_MAX];
	struct blob b;
	size_t n;

	(void)state;
	load("keys/rsa2048.cng.pub.blob", &b);
	assert_public_is(&b, pub);
	/* What `pubkey --format cng` answers is what CNG exported, byte for byte. */
	n = cngblob_public_encode(pub, out, sizeof(out));
	assert_int_equal(n, b.len);
	assert_memory_equal(out, b.b, n);
	/* One byte short of room: refused, nothing overrun. */
	assert_int_equal(cngblob_public_encode(pub, out, n - 1), 0);
	EVP_PKEY_free(pub);
}

static void test_vector_private(void **state)
{
	EVP_PKEY *priv = vectors_private_key("rsa2048");
	struct rsa_parts *want = privkey_check_numbers(priv);
	struct blob b, built;

	(void)state;
	load("keys/rsa2048.cng.priv.blob", &b);
	assert_int_equal(get32(&b, OFF_MAGIC), CNG_RSA2_MAGIC);
	assert_private_accepted(&b, want);          /* d and CRT computed: the PEM's */
	build(want, CNG_RSA2_MAGIC, &built);
	assert_int_equal(built.len, b.len);
	assert_memory_equal(built.b, b.b, b.len);
	load("keys/rsa2048.cng.full.blob", &b);
	assert_int_equal(get32(&b, OFF_MAGIC), CNG_RSA3_MAGIC);
	assert_private_accepted(&b, want);
	build(want, CNG_RSA3_MAGIC, &built);
	assert_int_equal(built.len, b.len);
	assert_memory_equal(built.b, b.b, b.len);
	free(want);
	EVP_PKEY_free(priv);
}

/* ---- round trips of other keys ---- */

static EVP_PKEY *generate(unsigned bits, unsigned e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *bn_e = BN_new();
	EVP_PKEY *k = NULL;

	assert_non_null(ctx);
	assert_true(BN_set_word(bn_e, e));
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits), 1);
	assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn_e), 1);
	assert_int_equal(EVP_PKEY_generate(ctx, &k), 1);
	BN_free(bn_e);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static BIGNUM *bn_of(const struct rsa_parts *k, enum rsa_part i)
{
	BIGNUM *bn = BN_bin2bn(k->num[i].b, (int)k->num[i].len, NULL);

	assert_non_null(bn);
	return bn;
}

static void set_num(struct rsa_parts *k, enum rsa_part i, const BIGNUM *bn)
{
	k->num[i].len = (size_t)BN_bn2bin(bn, k->num[i].b);
}

/*
 * The numbers a private blob must give: k's, but with d = e^-1 mod lcm(p - 1,
 * q - 1) and its CRT exponents (the key may have another d: e^-1 mod (p - 1)(q - 1)).
 */
static struct rsa_parts *with_smallest_d(const struct rsa_parts *k)
{
	struct rsa_parts *out = malloc(sizeof(*out));
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *p1 = bn_of(k, RSA_P), *q1 = bn_of(k, RSA_Q), *e = bn_of(k, RSA_E);
	BIGNUM *g = BN_new(), *l = BN_new(), *d = BN_new(), *t = BN_new();

	memcpy(out, k, sizeof(*out));
	assert_true(BN_sub_word(p1, 1) && BN_sub_word(q1, 1) && BN_gcd(g, p1, q1, ctx) &&
		    BN_mul(t, p1, q1, ctx) && BN_div(l, NULL, t, g, ctx) &&
		    BN_mod_inverse(d, e, l, ctx));
	set_num(out, RSA_D, d);
	assert_true(BN_mod(t, d, p1, ctx));
	set_num(out, RSA_DP, t);
	assert_true(BN_mod(t, d, q1, ctx));
	set_num(out, RSA_DQ, t);
	BN_free(p1);
	BN_free(q1);
	BN_free(e);
	BN_free(g);
	BN_free(l);
	BN_free(d);
	BN_free(t);
	BN_CTX_free(ctx);
	return out;
}

static void round_trip(EVP_PKEY *k)
{
	struct rsa_parts *want = privkey_check_numbers(k), *smallest = with_smallest_d(want);
	uint8_t out[CNGBLOB_PUBLIC_MAX];
	struct blob b;
	size_t n;

	build(want, CNG_RSA1_MAGIC, &b);
	n = cngblob_public_encode(k, out, sizeof(out));
	assert_int_equal(n, b.len);
	assert_memory_equal(out, b.b, n);
	assert_public_is(&b, k);
	build(want, CNG_RSA2_MAGIC, &b);
	assert_private_accepted(&b, smallest);
	build(want, CNG_RSA3_MAGIC, &b);
	assert_private_accepted(&b, want);
	free(smallest);
	free(want);
}

static void test_round_trips(void **state)
{
	static const struct {
		unsigned bits, e;
	} keys[] = { { 1024, 65537 }, { 1032, 3 }, { 1100, 17 }, { 2048, 0x10000001 } };

	(void)state;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		EVP_PKEY *k = generate(keys[i].bits, keys[i].e);

		round_trip(k);
		EVP_PKEY_free(k);
	}
	for (size_t i = 0; i < 3; i++) {
		static const char *const names[] = { "rsa1024", "rsa4096", "wine1024" };
		EVP_PKEY *k = vectors_private_key(names[i]);

		round_trip(k);
		EVP_PKEY_free(k);
	}
}

/* ---- defects ---- */

static void test_public_truncated(void **state)
{
	struct blob b, cut;

	(void)state;
	load("keys/rsa2048.cng.pub.blob", &b);
	for (size_t len = 0; len < b.len; len++) {
		memcpy(cut.b, b.b, len);
		cut.len = len;
		if (len < 4)
			assert_public_refused(&cut, KT_BAD_PUBLIC_KEY, "");    /* no magic: not CNG */
		else if (len < CNGBLOB_HDR)
			assert_public_refused(&cut, KT_BAD_PUBLIC_KEY,
					      "BCRYPT_RSAPUBLIC_BLOB: shorter than its 24-byte header");
		else
			assert_public_refused(&cut, KT_BAD_PUBLIC_KEY, "but its header gives it 283 "
					      "(truncated)");
	}
	b.b[b.len++] = 0;
	assert_public_refused(&b, KT_BAD_PUBLIC_KEY, "284 bytes, but its header gives it 283 "
			      "(bytes follow its numbers)");
}

/* The vector public blob with the header field at off set to v: refused, saying why_part. */
static void public_field(size_t off, uint32_t v, int status, const char *why_part)
{
	struct blob b;

	load("keys/rsa2048.cng.pub.blob", &b);
	set32(&b, off, v);
	assert_public_refused(&b, status, why_part);
}

static void test_public_header(void **state)
{
	EVP_PKEY *pub = vectors_public_key("rsa2048");
	struct blob b;

	(void)state;
	public_field(OFF_MAGIC, CNG_RSA2_MAGIC, KT_BAD_PUBLIC_KEY,
		     "this is a BCRYPT_RSAPRIVATE_BLOB (magic RSA2), a private key");
	public_field(OFF_MAGIC, CNG_RSA3_MAGIC, KT_BAD_PUBLIC_KEY,
		     "this is a BCRYPT_RSAFULLPRIVATE_BLOB (magic RSA3), a private key");
	public_field(OFF_BITS, 512, KT_KEY_SIZE, "a 512-bit RSA key: 1024 to 16384 bits");
	public_field(OFF_BITS, 16392, KT_KEY_SIZE, "a 16392-bit RSA key");
	public_field(OFF_BITS, 0, KT_KEY_SIZE, "a 0-bit RSA key");
	public_field(OFF_BITS, 2056, KT_BAD_PUBLIC_KEY,
		     "cbModulus is 256, but a 2056-bit modulus has 257 bytes");
	public_field(OFF_BITS, 2047, KT_BAD_PUBLIC_KEY,
		     "the modulus has 2048 bits, but BitLength is 2047");
	public_field(OFF_CB_N, 255, KT_BAD_PUBLIC_KEY,
		     "cbModulus is 255, but a 2048-bit modulus has 256 bytes");
	public_field(OFF_CB_N, 0xffffffffu, KT_BAD_PUBLIC_KEY, "cbModulus is 4294967295");
	public_field(OFF_CB_E, 0, KT_BAD_PUBLIC_KEY, "cbPublicExp is 0: 1 to 8 bytes");
	public_field(OFF_CB_E, 9, KT_BAD_PUBLIC_KEY, "cbPublicExp is 9: 1 to 8 bytes");
	public_field(OFF_CB_E, 0xffffffffu, KT_BAD_PUBLIC_KEY, "cbPublicExp is 4294967295");
	public_field(OFF_CB_E, 4, KT_BAD_PUBLIC_KEY, "(truncated)");
	/* Not CNG's magic at all: another format's detection, and its refusal. */
	load("keys/rsa2048.cng.pub.blob", &b);
	memcpy(b.b, "RSA0", 4);
	assert_public_refused(&b, KT_BAD_PUBLIC_KEY, "not a PUBLICKEYBLOB, a CNG "
			      "BCRYPT_RSAPUBLIC_BLOB");
	/* cbPrime1 and cbPrime2 of a public blob are ignored, as by CNG. */
	load("keys/rsa2048.cng.pub.blob", &b);
	set32(&b, OFF_CB_P, 128);
	set32(&b, OFF_CB_Q, 7);
	assert_public_is(&b, pub);
	EVP_PKEY_free(pub);
}

static void test_public_numbers(void **state)
{
	EVP_PKEY *pub = vectors_public_key("rsa2048");
	size_t mod = CNGBLOB_HDR + 3;
	struct blob b, longer;

	(void)state;
	load("keys/rsa2048.cng.pub.blob", &b);
	b.b[mod + 255] ^= 1;
	assert_public_refused(&b, KT_BAD_PUBLIC_KEY, "the modulus is even");
	load("keys/rsa2048.cng.pub.blob", &b);
	b.b[mod] = 0;           /* the top byte gone: fewer bits than BitLength */
	assert_public_refused(&b, KT_BAD_PUBLIC_KEY, "but BitLength is 2048");
	load("keys/rsa2048.cng.pub.blob", &b);
	b.b[CNGBLOB_HDR + 2] = 0;       /* 65536 */
	assert_public_refused(&b, KT_BAD_PUBLIC_KEY, "the public exponent is even or 1");
	memset(b.b + CNGBLOB_HDR, 0, 3);
	b.b[CNGBLOB_HDR + 2] = 1;
	assert_public_refused(&b, KT_BAD_PUBLIC_KEY, "the public exponent is even or 1");
	/* An exponent with leading zero bytes, 8 bytes long: the same key. */
	load("keys/rsa2048.cng.pub.blob", &b);
	memcpy(longer.b, b.b, CNGBLOB_HDR);
	set32(&longer, OFF_CB_E, 8);
	memset(longer.b + CNGBLOB_HDR, 0, 5);
	memcpy(longer.b + CNGBLOB_HDR + 5, b.b + CNGBLOB_HDR, b.len - CNGBLOB_HDR);
	longer.len = b.len + 5;
	assert_public_is(&longer, pub);
	EVP_PKEY_free(pub);
}

static void test_private_truncated(void **state)
{
	static const char *const files[] = { "keys/rsa2048.cng.priv.blob",
					     "keys/rsa2048.cng.full.blob" };
	struct blob b, cut;
	char want[64];

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		load(files[f], &b);
		for (size_t len = 0; len < b.len; len++) {
			memcpy(cut.b, b.b, len);
			cut.len = len;
			snprintf(want, sizeof(want), "but its header gives it %zu (truncated)", b.len);
			if (len == 0)
				assert_private_refused(&cut, KT_BAD_REQUEST, "the private key is empty");
			else if (len < 4)
				assert_private_refused(&cut, KT_BAD_REQUEST, "not an RSA private key");
			else if (len < CNGBLOB_HDR)
				assert_private_refused(&cut, KT_BAD_REQUEST,
						       "CNG RSA key blob: shorter than its 24-byte header");
			else
				assert_private_refused(&cut, KT_BAD_REQUEST, want);
		}
		b.b[b.len++] = 0;
		assert_private_refused(&b, KT_BAD_REQUEST, "(bytes follow its numbers)");
	}
}

static void private_field(const char *file, size_t off, uint32_t v, int status, const char *why)
{
	struct blob b;

	load(file, &b);
	set32(&b, off, v);
	assert_private_refused(&b, status, why);
}

static void test_private_header(void **state)
{
	static const char *const files[] = { "keys/rsa2048.cng.priv.blob",
					     "keys/rsa2048.cng.full.blob" };
	struct blob b;

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		const char *file = files[f];

		private_field(file, OFF_MAGIC, CNG_RSA1_MAGIC, KT_BAD_REQUEST,
			      "BCRYPT_RSAPUBLIC_BLOB: a public key: import needs a "
			      "BCRYPT_RSAPRIVATE_BLOB or BCRYPT_RSAFULLPRIVATE_BLOB");
		private_field(file, OFF_BITS, 1000, KT_KEY_SIZE, "a 1000-bit RSA key: 1024 to 16384");
		private_field(file, OFF_BITS, 2049, KT_BAD_REQUEST,
			      "cbModulus is 256, but a 2049-bit modulus has 257 bytes");
		private_field(file, OFF_BITS, 2041, KT_BAD_REQUEST,
			      "the modulus has 2048 bits, but BitLength is 2041");
		private_field(file, OFF_CB_E, 0, KT_BAD_REQUEST, "cbPublicExp is 0");
		private_field(file, OFF_CB_E, 9, KT_BAD_REQUEST, "cbPublicExp is 9");
		private_field(file, OFF_CB_N, 0x80000000u, KT_BAD_REQUEST, "cbModulus is 2147483648");
		private_field(file, OFF_CB_P, 0, KT_BAD_REQUEST, "cbPrime1 (0) or cbPrime2 (128) is 0");
		private_field(file, OFF_CB_Q, 0, KT_BAD_REQUEST, "cbPrime1 (128) or cbPrime2 (0) is 0");
		private_field(file, OFF_CB_P, 257, KT_BAD_REQUEST, "cbPrime1 (257) or cbPrime2 (128) "
			      "is 0 or longer than the modulus");
		private_field(file, OFF_CB_Q, 0xffffffffu, KT_BAD_REQUEST, "longer than the modulus");
		/* Counts that still fit but move the numbers: the length no longer matches. */
		private_field(file, OFF_CB_P, 129, KT_BAD_REQUEST, "(truncated)");
		private_field(file, OFF_CB_Q, 127, KT_BAD_REQUEST, "(bytes follow its numbers)");
	}
	load(files[0], &b);
	memcpy(b.b, "RSA4", 4);
	assert_private_refused(&b, KT_BAD_REQUEST, "not an RSA private key");
}

/* The blob with one number's lowest bit flipped: refused as not one key. */
static void flipped(const char *file, size_t at, const char *why)
{
	struct blob b;

	load(file, &b);
	b.b[at] ^= 1;
	assert_private_refused(&b, KT_BAD_REQUEST, why);
}

static void test_private_inconsistent(void **state)
{
	static const char full[] = "keys/rsa2048.cng.full.blob", priv[] = "keys/rsa2048.cng.priv.blob";
	const size_t e = CNGBLOB_HDR, n = e + 3, p = n + 256, q = p + 128, dp = q + 128,
		     dq = dp + 128, qinv = dq + 128, d = qinv + 128;
	const char *bad = "the private key's numbers do not make one RSA key";

	(void)state;
	/* The last byte of each number: n even, p even (p q != n), each CRT value and d off. */
	flipped(full, p - 1, bad);
	flipped(full, q - 1, bad);
	flipped(full, dp - 1, bad);
	flipped(full, dq - 1, bad);
	flipped(full, qinv - 1, bad);
	flipped(full, d - 1, bad);
	flipped(full, d + 255, bad);
	flipped(full, e + 2, "the public exponent is not odd");
	flipped(priv, p - 1, bad);
	flipped(priv, p + 127, "RSA key");
	flipped(priv, q + 127, "RSA key");
	flipped(priv, e + 2, "BCRYPT_RSAPRIVATE_BLOB: the public exponent is even or 1");
}

/* A private blob whose primes make no d: e shares a factor with p - 1. */
static void test_private_no_inverse(void **state)
{
	struct rsa_parts *k = calloc(1, sizeof(*k));
	struct blob b;

	(void)state;
	/* p = 7, q = 11: p - 1 = 6 is a multiple of e = 3; n = 77, padded to 1024 bits below. */
	k->bits = 1024;
	k->num[RSA_E].len = 1;
	k->num[RSA_E].b[0] = 3;
	k->num[RSA_N].len = 128;
	k->num[RSA_N].b[0] = 0x80;
	k->num[RSA_N].b[127] = 77;
	k->num[RSA_P].len = 1;
	k->num[RSA_P].b[0] = 7;
	k->num[RSA_Q].len = 1;
	k->num[RSA_Q].b[0] = 11;
	build(k, CNG_RSA2_MAGIC, &b);
	assert_private_refused(&b, KT_BAD_REQUEST, "do not make an RSA key (no private exponent)");
	k->num[RSA_P].b[0] = 1;         /* p - 1 = 0 */
	build(k, CNG_RSA2_MAGIC, &b);
	assert_private_refused(&b, KT_BAD_REQUEST, "no private exponent");
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_public),
		cmocka_unit_test(test_vector_private),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_public_truncated),
		cmocka_unit_test(test_public_header),
		cmocka_unit_test(test_public_numbers),
		cmocka_unit_test(test_private_truncated),
		cmocka_unit_test(test_private_header),
		cmocka_unit_test(test_private_inconsistent),
		cmocka_unit_test(test_private_no_inverse),
	};

	/* Before OpenSSL allocates anything: every allocation goes through the watch. */
	if (privkey_check_setup() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
