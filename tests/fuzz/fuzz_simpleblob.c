/*
 * fuzz_simpleblob: SIMPLEBLOB parsing against each vector key's modulus, and
 * the constant-time decoders (simpleblob_unpad, pkcs1_unpad, oaep_unpad) on
 * fuzzed raw RSA results, each compared with a plain, variable-time decoder
 * written here from RFC 8017.
 *
 * Byte 0 of the input selects the mode (byte % 3) and the key (byte / 3 % 3):
 *   0  the rest is a SIMPLEBLOB, parsed against rsa1024, rsa2048 and rsa4096;
 *   1  the rest is (min, max) in two bytes, then a raw RSA result:
 *      pkcs1_unpad/oaep_unpad with that (min, max) at the result's own
 *      length, then simpleblob_unpad at the key's length k (zero-filled or
 *      cut) for each ALG_ID and padding;
 *   2  the rest describes an encoding (ALG_ID, padding, message length, one
 *      byte to alter) that is built, altered or not, and decoded.
 *
 * Invariants: the status of a parse is the one the header rules give, in
 * protocol.md's order, and an accepted blob is exactly 12 + k bytes with the
 * reversed ciphertext below the modulus; the decoders refuse exactly the
 * argument errors pkcs1.h names, agree with the reference on success and on
 * the message, and return len <= max, == max when not good.
 */
#include <string.h>

#include <openssl/evp.h>

#include "alg.h"
#include "fuzz.h"
#include "keytrans_status.h"
#include "pkcs1.h"
#include "simpleblob.h"

#define SHA1_LEN 20
#define EM_MAX 2048

static const uint8_t lhash[SHA1_LEN] = {
	0xda, 0x39, 0xa3, 0xee, 0x5e, 0x6b, 0x4b, 0x0d, 0x32, 0x55,
	0xbf, 0xef, 0x95, 0x60, 0x18, 0x90, 0xaf, 0xd8, 0x07, 0x09,
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- reference decoders (RFC 8017 7.2.2 and 7.1.2, written for clarity) ---- */

static int ref_pkcs1(const uint8_t *em, size_t k, size_t min, size_t max, uint8_t *msg,
		     size_t *len)
{
	size_t i = 2;

	if (em[0] != 0x00 || em[1] != 0x02)
		return 0;
	while (i < k && em[i] != 0x00)
		i++;
	if (i == k || i - 2 < 8)
		return 0;
	*len = k - i - 1;
	if (*len < min || *len > max)
		return 0;
	memcpy(msg, em + i + 1, *len);
	return 1;
}

/* out = MGF1-SHA1(seed), n bytes. */
static void mgf1(uint8_t *out, size_t n, const uint8_t *seed, size_t seed_len)
{
	uint8_t in[EM_MAX + 4], md[SHA1_LEN];

	FUZZ_CHECK(seed_len <= EM_MAX);
	memcpy(in, seed, seed_len);
	for (uint32_t c = 0; (size_t)c * SHA1_LEN < n; c++) {
		size_t at = (size_t)c * SHA1_LEN, take = n - at < SHA1_LEN ? n - at : SHA1_LEN;

		in[seed_len] = (uint8_t)(c >> 24);
		in[seed_len + 1] = (uint8_t)(c >> 16);
		in[seed_len + 2] = (uint8_t)(c >> 8);
		in[seed_len + 3] = (uint8_t)c;
		FUZZ_CHECK(EVP_Digest(in, seed_len + 4, md, NULL, EVP_sha1(), NULL) == 1);
		memcpy(out + at, md, take);
	}
}

static int ref_oaep(const uint8_t *em, size_t k, size_t min, size_t max, uint8_t *msg,
		    size_t *len)
{
	uint8_t seed[SHA1_LEN], db[EM_MAX], mask[EM_MAX];
	size_t db_len = k - SHA1_LEN - 1, i;

	mgf1(mask, SHA1_LEN, em + 1 + SHA1_LEN, db_len);
	for (i = 0; i < SHA1_LEN; i++)
		seed[i] = em[1 + i] ^ mask[i];
	mgf1(mask, db_len, seed, SHA1_LEN);
	for (i = 0; i < db_len; i++)
		db[i] = em[1 + SHA1_LEN + i] ^ mask[i];
	if (em[0] != 0x00 || memcmp(db, lhash, SHA1_LEN) != 0)
		return 0;
	for (i = SHA1_LEN; i < db_len && db[i] == 0x00; i++)
		;
	if (i == db_len || db[i] != 0x01)
		return 0;
	*len = db_len - i - 1;
	if (*len < min || *len > max)
		return 0;
	memcpy(msg, db + i + 1, *len);
	return 1;
}

/* ---- comparisons ---- */

static void compare(const struct unpadded *out, int ref_good, const uint8_t *ref_msg,
		    size_t ref_len, size_t max)
{
	FUZZ_CHECK(out->good == 0u || out->good == ~0u);
	FUZZ_CHECK(out->len <= max);
	if (!out->good)
		FUZZ_CHECK(out->len == max);
	FUZZ_CHECK(!!out->good == !!ref_good);
	if (ref_good)
		FUZZ_CHECK(out->len == ref_len && memcmp(out->msg, ref_msg, ref_len) == 0);
}

static void check_pkcs1(const uint8_t *em, size_t k, size_t min, size_t max)
{
	struct unpadded out;
	uint8_t msg[EM_MAX];
	size_t len = 0;
	int rc = pkcs1_unpad(em, k, min, max, &out);
	int bad_args = max > PKCS1_MSG_MAX || min > max || k < max + 11;

	FUZZ_CHECK((rc == -1) == bad_args);
	if (rc == 0) {
		int good = ref_pkcs1(em, k, min, max, msg, &len);

		compare(&out, good, msg, len, max);
	}
}

static void check_oaep(const uint8_t *em, size_t k, size_t min, size_t max)
{
	struct unpadded out;
	uint8_t msg[EM_MAX];
	size_t len = 0;
	int rc = oaep_unpad(em, k, min, max, &out);
	int bad_args = max > PKCS1_MSG_MAX || min > max || k > EM_MAX || k < 2 * SHA1_LEN + 2 + max;

	FUZZ_CHECK((rc == -1) == bad_args);
	if (rc == 0) {
		int good = ref_oaep(em, k, min, max, msg, &len);

		compare(&out, good, msg, len, max);
	}
}

/* simpleblob_unpad for one ALG_ID and padding; em is k bytes. */
static void check_alg(const uint8_t *em, size_t k, const struct alg_info *a, enum rsa_padding pad,
		      int expect_good, const uint8_t *expect_msg, size_t expect_len)
{
	struct unpadded out;
	uint8_t msg[EM_MAX];
	size_t len = 0;
	int good, rc = simpleblob_unpad(em, k, a, pad, &out);

	FUZZ_CHECK(rc == 0);    /* every vector key holds every ALG_ID under both paddings */
	if (pad == RSA_PAD_OAEP)
		good = ref_oaep(em, k, a->min_len, a->max_len, msg, &len);
	else
		good = ref_pkcs1(em, k, a->min_len, a->max_len, msg, &len);
	compare(&out, good, msg, len, a->max_len);
	if (expect_good >= 0) {
		FUZZ_CHECK(!!out.good == expect_good);
		if (expect_good)
			FUZZ_CHECK(out.len == expect_len && memcmp(out.msg, expect_msg, expect_len) == 0);
	}
}

/* ---- the modes ---- */

/* The status the header rules give, in the order protocol.md lists them. */
static int expected_status(const uint8_t *b, size_t len, const struct fuzz_key *key)
{
	uint8_t c[RSA_MAX_BYTES];

	if (len != SIMPLEBLOB_HDR + key->k)
		return KT_BLOB_LENGTH;      /* first: a blob shorter than its header too */
	if (b[0] != 0x01)
		return KT_BLOB_TYPE;
	if (b[1] != 0x02)
		return KT_BLOB_VERSION;
	if (b[2] != 0 || b[3] != 0)
		return KT_BLOB_RESERVED;
	if (alg_by_id(le32(b + 4)) == NULL)
		return KT_BLOB_ALG;
	if (le32(b + 8) != CALG_RSA_KEYX)
		return KT_BLOB_WRAP_ALG;
	for (size_t i = 0; i < key->k; i++)
		c[i] = b[len - 1 - i];
	return memcmp(c, key->n, key->k) < 0 ? KT_OK : KT_BLOB_RANGE;
}

static void mode_parse(const uint8_t *b, size_t len)
{
	const struct fuzz_key *keys = fuzz_keys();

	for (size_t i = 0; i < FUZZ_NKEYS; i++) {
		struct simpleblob *sb = malloc(sizeof(*sb));
		char why[256] = "";
		int st;

		FUZZ_CHECK(sb != NULL);
		st = simpleblob_parse(b, len, keys[i].n, keys[i].k, sb, why, sizeof(why));
		FUZZ_CHECK(st == expected_status(b, len, &keys[i]));
		if (st == KT_OK) {
			FUZZ_CHECK(sb->k == keys[i].k && sb->alg == alg_by_id(le32(b + 4)));
			for (size_t j = 0; j < sb->k; j++)
				FUZZ_CHECK(sb->c[j] == b[len - 1 - j]);
		} else {
			FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
		}
		free(sb);
	}
}

/* [min][max] then the raw result. */
static void mode_raw(const uint8_t *p, size_t len, const struct fuzz_key *key)
{
	size_t ntab, min, max;
	const struct alg_info *tab = alg_table(&ntab);
	uint8_t *em;

	if (len < 2)
		return;
	min = p[0];
	max = p[1];
	p += 2;
	len -= 2;
	if (len > EM_MAX + 16)
		len = EM_MAX + 16;
	/* The decoders at the input's own length, with any (min, max). */
	em = fuzz_dup(p, len);
	check_pkcs1(em, len, min, max);
	check_oaep(em, len, min, max);
	free(em);
	/* simpleblob_unpad at the key's length (zero-filled), for each ALG_ID and padding. */
	em = calloc(1, key->k);
	FUZZ_CHECK(em != NULL);
	memcpy(em, p, len < key->k ? len : key->k);
	for (size_t i = 0; i < ntab; i++) {
		check_alg(em, key->k, &tab[i], RSA_PAD_PKCS1, -1, NULL, 0);
		check_alg(em, key->k, &tab[i], RSA_PAD_OAEP, -1, NULL, 0);
	}
	free(em);
}

/* Byte i of the filler (the rest of the input, cycled; a constant when empty). */
static uint8_t fill(const uint8_t *f, size_t n, size_t i)
{
	return n ? f[i % n] : (uint8_t)(0x5a + i);
}

/* [alg][padding][message length][position hi, lo][xor] then the filler. */
static void mode_build(const uint8_t *p, size_t len, const struct fuzz_key *key)
{
	uint8_t hdr[6] = { 0 }, msg[PKCS1_MSG_MAX + 8], *em;
	const struct alg_info *tab, *a;
	size_t ntab, k = key->k, mlen, pos;
	enum rsa_padding pad;
	const uint8_t *f;
	size_t fn;

	memcpy(hdr, p, len < sizeof(hdr) ? len : sizeof(hdr));
	f = len > sizeof(hdr) ? p + sizeof(hdr) : NULL;
	fn = len > sizeof(hdr) ? len - sizeof(hdr) : 0;
	tab = alg_table(&ntab);
	a = &tab[hdr[0] % ntab];
	pad = hdr[1] & 1 ? RSA_PAD_OAEP : RSA_PAD_PKCS1;
	mlen = hdr[2] % (PKCS1_MSG_MAX + 1);   /* may be outside the ALG_ID's range */
	pos = ((size_t)hdr[3] << 8 | hdr[4]) % k;
	for (size_t i = 0; i < mlen; i++)
		msg[i] = fill(f, fn, i);
	em = malloc(k);
	FUZZ_CHECK(em != NULL);
	if (pad == RSA_PAD_PKCS1) {
		em[0] = 0x00;
		em[1] = 0x02;
		for (size_t i = 2; i < k - mlen - 1; i++) {
			uint8_t b = fill(f, fn, mlen + i);

			em[i] = b ? b : 0xff;
		}
		em[k - mlen - 1] = 0x00;
		memcpy(em + k - mlen, msg, mlen);
	} else {
		uint8_t seed[SHA1_LEN], mask[EM_MAX], *db = em + 1 + SHA1_LEN;
		size_t db_len = k - SHA1_LEN - 1;

		for (size_t i = 0; i < SHA1_LEN; i++)
			seed[i] = fill(f, fn, mlen + i);
		memcpy(db, lhash, SHA1_LEN);
		memset(db + SHA1_LEN, 0, db_len - SHA1_LEN - mlen - 1);
		db[db_len - mlen - 1] = 0x01;
		memcpy(db + db_len - mlen, msg, mlen);
		mgf1(mask, db_len, seed, SHA1_LEN);
		for (size_t i = 0; i < db_len; i++)
			db[i] ^= mask[i];
		mgf1(mask, SHA1_LEN, db, db_len);
		for (size_t i = 0; i < SHA1_LEN; i++)
			em[1 + i] = seed[i] ^ mask[i];
		em[0] = 0x00;
	}
	em[pos] ^= hdr[5];
	check_alg(em, k, a, pad,
		  hdr[5] != 0 ? -1 : mlen >= a->min_len && mlen <= a->max_len, msg, mlen);
	/* The same bytes under the other padding (almost always bad). */
	check_alg(em, k, a, pad == RSA_PAD_OAEP ? RSA_PAD_PKCS1 : RSA_PAD_OAEP, -1, NULL, 0);
	free(em);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_key *keys = fuzz_keys();

	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		mode_parse(data + 1, size - 1);
		break;
	case 1:
		mode_raw(data + 1, size - 1, &keys[data[0] / 3 % FUZZ_NKEYS]);
		break;
	case 2:
		mode_build(data + 1, size - 1, &keys[data[0] / 3 % FUZZ_NKEYS]);
		break;
	}
	return 0;
}
