/*
 * common/alg, common/hex and common/plaintextkeyblob: algorithm names and
 * key lengths, hex text, and the PLAINTEXTKEYBLOB the CLI exchanges.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alg.h"
#include "hex.h"
#include "plaintextkeyblob.h"
#include "text.h"

/* docs/formats.md, the session key table. */
struct alg_row {
	uint32_t id;
	const char *name;
	unsigned min, max;
};

static const struct alg_row rows[] = {
	{ 0x6602, "CALG_RC2", 5, 16 },
	{ 0x6801, "CALG_RC4", 5, 16 },
	{ 0x6601, "CALG_DES", 8, 8 },
	{ 0x6609, "CALG_3DES_112", 16, 16 },
	{ 0x6603, "CALG_3DES", 24, 24 },
	{ 0x660e, "CALG_AES_128", 16, 16 },
	{ 0x660f, "CALG_AES_192", 24, 24 },
	{ 0x6610, "CALG_AES_256", 32, 32 },
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* ---- alg ---- */

static void test_alg_table(void **state)
{
	size_t n = 0;
	const struct alg_info *t = alg_table(&n);

	(void)state;
	assert_int_equal(n, NROWS);
	for (size_t i = 0; i < NROWS; i++) {
		const struct alg_info *a = alg_by_id(rows[i].id);

		assert_non_null(a);
		assert_ptr_equal(a, &t[i]);
		assert_int_equal(a->id, rows[i].id);
		assert_string_equal(a->name, rows[i].name);
		assert_int_equal(a->min_len, rows[i].min);
		assert_int_equal(a->max_len, rows[i].max);
		assert_int_equal(alg_default_len(a), rows[i].max);
		assert_true(a->max_len <= ALG_KEY_MAX);
	}
	assert_null(alg_by_id(0));
	assert_null(alg_by_id(CALG_RSA_KEYX));
	assert_null(alg_by_id(CALG_RSA_SIGN));
	assert_null(alg_by_id(0x6611));
	assert_null(alg_by_id(0x1660e));
	assert_null(alg_by_id(0xffffffffu));
}

static void assert_alg_named(const char *spelling, uint32_t id)
{
	const struct alg_info *a = alg_by_name(spelling);

	if (a == NULL)
		fail_msg("\"%s\" was refused, expected 0x%x", spelling, (unsigned)id);
	if (a->id != id)
		fail_msg("\"%s\" gave 0x%x, expected 0x%x", spelling, (unsigned)a->id, (unsigned)id);
}

static void test_alg_by_name(void **state)
{
	(void)state;
	/* The spellings alg.h promises. */
	assert_alg_named("CALG_AES_128", 0x660e);
	assert_alg_named("AES_128", 0x660e);
	assert_alg_named("aes_128", 0x660e);
	assert_alg_named("AES-128", 0x660e);
	assert_alg_named("0x660e", 0x660e);
	assert_alg_named("0x660E", 0x660e);
	assert_alg_named("26126", 0x660e);
	assert_alg_named("calg_aes_128", 0x660e);
	assert_alg_named("CALG-AES-128", 0x660e);
	assert_alg_named("Calg_Aes-128", 0x660e);
	assert_alg_named("RC4", 0x6801);
	assert_alg_named("rc2", 0x6602);
	assert_alg_named("DES", 0x6601);
	assert_alg_named("CALG_3DES_112", 0x6609);
	assert_alg_named("CALG_3DES", 0x6603);
	assert_alg_named("AES_192", 0x660f);
	assert_alg_named("aes-256", 0x6610);
	/* Names starting with a digit, without the prefix, like every other name. */
	assert_alg_named("3DES_112", 0x6609);
	assert_alg_named("3des-112", 0x6609);
	assert_alg_named("3DES", 0x6603);
	/* Every table name, with and without its prefix, and every id in decimal and hex. */
	for (size_t i = 0; i < NROWS; i++) {
		char buf[32];

		assert_alg_named(rows[i].name, rows[i].id);
		assert_alg_named(rows[i].name + 5, rows[i].id);
		snprintf(buf, sizeof(buf), "%u", (unsigned)rows[i].id);
		assert_alg_named(buf, rows[i].id);
		snprintf(buf, sizeof(buf), "0x%x", (unsigned)rows[i].id);
		assert_alg_named(buf, rows[i].id);
		snprintf(buf, sizeof(buf), "0X%X", (unsigned)rows[i].id);
		assert_alg_named(buf, rows[i].id);
	}
}

static void test_alg_by_name_refused(void **state)
{
	static const char *const bad[] = {
		"AES", "AES_129", "AES_12", "AES_1280", "AES__128", "AES 128", "0x1234", "", "0x",
		"12abc", "CALG_", "CALG", "CALG_CALG_AES_128", "RC", "RC44", "_RC4", "RC4_",
		"RSA_KEYX", "CALG_RSA_KEYX", "41984", "0xa400", "0", "-26126", " 26126",
		"26126 ", "+26126", "0x660e0", "4294993422", "99999999999999999999999",
		"0x1660e", "AES_128\n",
	};

	(void)state;
	assert_null(alg_by_name(NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (alg_by_name(bad[i]) != NULL)
			fail_msg("\"%s\" was accepted as %s", bad[i], alg_by_name(bad[i])->name);
}

static void test_alg_len_ok(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS; i++) {
		const struct alg_info *a = alg_by_id(rows[i].id);

		assert_false(alg_len_ok(a, 0));
		assert_false(alg_len_ok(a, rows[i].min - 1));
		assert_true(alg_len_ok(a, rows[i].min));
		assert_true(alg_len_ok(a, rows[i].max));
		assert_false(alg_len_ok(a, rows[i].max + 1));
		assert_false(alg_len_ok(a, SIZE_MAX));
		/* Every length against the table. */
		for (size_t n = 0; n <= 40; n++)
			assert_int_equal(alg_len_ok(a, n), n >= rows[i].min && n <= rows[i].max);
	}
	/* The edges by name. */
	assert_false(alg_len_ok(alg_by_name("RC4"), 4));
	assert_true(alg_len_ok(alg_by_name("RC4"), 5));
	assert_true(alg_len_ok(alg_by_name("RC2"), 16));
	assert_false(alg_len_ok(alg_by_name("RC2"), 17));
	assert_false(alg_len_ok(alg_by_name("AES_256"), 31));
	assert_true(alg_len_ok(alg_by_name("AES_256"), 32));
	assert_false(alg_len_ok(alg_by_name("AES_256"), 33));
	assert_false(alg_len_ok(NULL, 16));
}

/* ---- hex ---- */

static void test_hex_encode(void **state)
{
	static const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff, 0x10, 0x9a };
	char out[2 * sizeof(in) + 2];

	(void)state;
	memset(out, 'x', sizeof(out));
	hex_encode(in, sizeof(in), out);
	assert_string_equal(out, "00017f80abcdefff109a");
	assert_int_equal(out[2 * sizeof(in) + 1], 'x');

	memset(out, 'x', sizeof(out));
	hex_encode(in, 0, out);
	assert_string_equal(out, "");
	assert_int_equal(out[1], 'x');

	hex_encode(in + 7, 1, out);
	assert_string_equal(out, "ff");
}

static void test_hex_decode(void **state)
{
	uint8_t out[8];

	(void)state;
	memset(out, 0xee, sizeof(out));
	assert_int_equal(hex_decode("00017f80", out, sizeof(out)), 4);
	assert_int_equal(out[0], 0x00);
	assert_int_equal(out[1], 0x01);
	assert_int_equal(out[2], 0x7f);
	assert_int_equal(out[3], 0x80);
	assert_int_equal(out[4], 0xee);

	/* Case, and the prefix. */
	assert_int_equal(hex_decode("ABCDEF", out, sizeof(out)), 3);
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[1], 0xcd);
	assert_int_equal(out[2], 0xef);
	assert_int_equal(hex_decode("aBcDeF", out, sizeof(out)), 3);
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[2], 0xef);
	assert_int_equal(hex_decode("0x1a2B", out, sizeof(out)), 2);
	assert_int_equal(out[0], 0x1a);
	assert_int_equal(out[1], 0x2b);
	assert_int_equal(hex_decode("0X1a2B", out, sizeof(out)), 2);
	assert_int_equal(out[0], 0x1a);
	/* "0x" is a prefix only at the start; "00" alone is a byte. */
	assert_int_equal(hex_decode("00", out, sizeof(out)), 1);
	assert_int_equal(out[0], 0);

	/* Empty. */
	assert_int_equal(hex_decode("", out, sizeof(out)), 0);
	assert_int_equal(hex_decode("0x", out, sizeof(out)), 0);
	assert_int_equal(hex_decode("", NULL, 0), 0);

	/* Odd length. */
	assert_int_equal(hex_decode("1", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("abc", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("0x1", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("0", out, sizeof(out)), -1);

	/* Bad digits, in either place of a byte, anywhere. */
	assert_int_equal(hex_decode("g0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("0g", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("00zz", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("0 11", out, sizeof(out)), -1);
	assert_int_equal(hex_decode(" 011", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("01:2", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("0x0x", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("x0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("@0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("G0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("/0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode(":0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("`0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("\xff" "0", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("-1", out, sizeof(out)), -1);
	assert_int_equal(hex_decode("0011\n", out, sizeof(out)), -1);

	/* Capacity. */
	assert_int_equal(hex_decode("0102030405060708", out, 8), 8);
	assert_int_equal(out[7], 0x08);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(hex_decode("0102030405060708", out, 7), -1);
	assert_int_equal(out[0], 0xee);
	assert_int_equal(hex_decode("0x0102", out, 1), -1);
	assert_int_equal(hex_decode("01", out, 0), -1);
	assert_int_equal(hex_decode("0x01", out, 1), 1);
}

static void test_hex_roundtrip(void **state)
{
	uint8_t in[256], back[256];
	char text[513];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(255 - i);
	for (size_t n = 0; n <= sizeof(in); n += 17) {
		hex_encode(in, n, text);
		assert_int_equal(strlen(text), 2 * n);
		assert_int_equal(hex_decode(text, back, n), (long)n);
		assert_memory_equal(back, in, n);
	}
}

/* ---- PLAINTEXTKEYBLOB ---- */

/* The bytes CryptExportKey(PLAINTEXTKEYBLOB) gives. */
static size_t reference_blob(uint32_t alg, const uint8_t *key, size_t n, uint8_t *out)
{
	out[0] = 0x08;
	out[1] = 0x02;
	out[2] = 0x00;
	out[3] = 0x00;
	out[4] = (uint8_t)alg;
	out[5] = (uint8_t)(alg >> 8);
	out[6] = (uint8_t)(alg >> 16);
	out[7] = (uint8_t)(alg >> 24);
	out[8] = (uint8_t)n;
	out[9] = (uint8_t)(n >> 8);
	out[10] = (uint8_t)(n >> 16);
	out[11] = (uint8_t)(n >> 24);
	memcpy(out + 12, key, n);
	return 12 + n;
}

static void test_ptkb_bytes(void **state)
{
	static const uint8_t key[16] = {
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	};
	static const uint8_t want[28] = {
		0x08, 0x02, 0x00, 0x00, 0x0e, 0x66, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	};
	uint8_t out[PLAINTEXTKEYBLOB_MAX + 4];

	(void)state;
	memset(out, 0xee, sizeof(out));
	assert_int_equal(ptkb_encode(0x660e, key, 16, out, sizeof(out)), 28);
	assert_memory_equal(out, want, 28);
	assert_int_equal(out[28], 0xee);
	assert_int_equal(PLAINTEXTKEYBLOB_HDR, 12);
	assert_int_equal(PLAINTEXTKEYBLOB_MAX, 44);
}

static void test_ptkb_roundtrip_all(void **state)
{
	uint8_t key[ALG_KEY_MAX + 8], out[PLAINTEXTKEYBLOB_MAX + 16], ref[PLAINTEXTKEYBLOB_MAX + 16];
	uint8_t got[ALG_KEY_MAX];
	unsigned tried = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0xa0 + i);
	for (size_t i = 0; i < NROWS; i++) {
		for (size_t n = 0; n <= ALG_KEY_MAX + 1; n++) {
			int ok = n >= rows[i].min && n <= rows[i].max;
			size_t len = ptkb_encode(rows[i].id, key, n, out, sizeof(out));
			uint32_t alg = 0;
			size_t klen = 999;

			if (!ok) {
				assert_int_equal(len, 0);
				continue;
			}
			tried++;
			assert_int_equal(len, PLAINTEXTKEYBLOB_HDR + n);
			assert_int_equal(reference_blob(rows[i].id, key, n, ref), len);
			assert_memory_equal(out, ref, len);
			memset(got, 0, sizeof(got));
			assert_int_equal(ptkb_decode(out, len, &alg, got, &klen), PTKB_OK);
			assert_int_equal(alg, rows[i].id);
			assert_int_equal(klen, n);
			assert_memory_equal(got, key, n);

			/* The exact capacity suffices; one byte less does not. */
			assert_int_equal(ptkb_encode(rows[i].id, key, n, out, len), len);
			assert_int_equal(ptkb_encode(rows[i].id, key, n, out, len - 1), 0);
			assert_int_equal(ptkb_encode(rows[i].id, key, n, NULL, 0), 0);
		}
	}
	/* RC2 and RC4: 12 lengths each; six single-length algorithms. */
	assert_int_equal(tried, 12 + 12 + 6);
	/* Unknown algorithm. */
	assert_int_equal(ptkb_encode(0x1234, key, 16, out, sizeof(out)), 0);
	assert_int_equal(ptkb_encode(CALG_RSA_KEYX, key, 16, out, sizeof(out)), 0);
}

/* Decodes a modified copy of a good AES-128 blob. */
static enum ptkb_error decode_modified(size_t at, uint8_t value, size_t len)
{
	uint8_t key[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	uint8_t blob[PLAINTEXTKEYBLOB_MAX + 8], got[ALG_KEY_MAX];
	uint32_t alg = 0xdeadbeef;
	size_t n = 999;
	enum ptkb_error e;

	assert_int_equal(ptkb_encode(0x660e, key, 16, blob, sizeof(blob)), 28);
	memset(blob + 28, 0, 8);
	if (at < sizeof(blob))
		blob[at] = value;
	e = ptkb_decode(blob, len, &alg, got, &n);
	if (e != PTKB_OK) {
		/* Outputs untouched on failure. */
		assert_int_equal(alg, 0xdeadbeef);
		assert_int_equal(n, 999);
	}
	return e;
}

static void test_ptkb_errors(void **state)
{
	uint8_t blob[PLAINTEXTKEYBLOB_MAX + 8], got[ALG_KEY_MAX];
	uint8_t key[32] = { 0 };
	uint32_t alg;
	size_t n;

	(void)state;
	assert_int_equal(decode_modified(99, 0, 28), PTKB_OK);
	/* bType */
	assert_int_equal(decode_modified(0, 0x01, 28), PTKB_TYPE);
	assert_int_equal(decode_modified(0, 0x07, 28), PTKB_TYPE);
	assert_int_equal(decode_modified(0, 0x09, 28), PTKB_TYPE);
	/* bVersion */
	assert_int_equal(decode_modified(1, 0x01, 28), PTKB_VERSION);
	assert_int_equal(decode_modified(1, 0x03, 28), PTKB_VERSION);
	/* reserved, either byte */
	assert_int_equal(decode_modified(2, 0x01, 28), PTKB_RESERVED);
	assert_int_equal(decode_modified(3, 0x80, 28), PTKB_RESERVED);
	/* aiKeyAlg: unknown, RSA, a byte beyond the low half */
	assert_int_equal(decode_modified(4, 0x0d, 28), PTKB_ALG);
	assert_int_equal(decode_modified(6, 0x01, 28), PTKB_ALG);
	assert_int_equal(decode_modified(7, 0x01, 28), PTKB_ALG);
	/* length field disagreeing with the bytes present */
	assert_int_equal(decode_modified(8, 0x0f, 28), PTKB_LENGTH);
	assert_int_equal(decode_modified(8, 0x11, 28), PTKB_LENGTH);
	assert_int_equal(decode_modified(11, 0x01, 28), PTKB_LENGTH);
	assert_int_equal(decode_modified(99, 0, 29), PTKB_LENGTH);
	/* Checks come in header order: type before version before ... */
	{
		uint8_t b[28];

		memset(b, 0xff, sizeof(b));
		assert_int_equal(ptkb_decode(b, sizeof(b), &alg, got, &n), PTKB_TYPE);
		b[0] = 0x08;
		assert_int_equal(ptkb_decode(b, sizeof(b), &alg, got, &n), PTKB_VERSION);
		b[1] = 0x02;
		assert_int_equal(ptkb_decode(b, sizeof(b), &alg, got, &n), PTKB_RESERVED);
		b[2] = b[3] = 0;
		assert_int_equal(ptkb_decode(b, sizeof(b), &alg, got, &n), PTKB_ALG);
		b[4] = 0x0e;
		b[5] = 0x66;
		b[6] = b[7] = 0;
		assert_int_equal(ptkb_decode(b, sizeof(b), &alg, got, &n), PTKB_LENGTH);
	}
	/* A consistent blob whose key length the algorithm does not allow. */
	assert_int_equal(reference_blob(0x660e, key, 15, blob), 27);
	assert_int_equal(ptkb_decode(blob, 27, &alg, got, &n), PTKB_KEY_LENGTH);
	assert_int_equal(reference_blob(0x6801, key, 4, blob), 16);
	assert_int_equal(ptkb_decode(blob, 16, &alg, got, &n), PTKB_KEY_LENGTH);
	assert_int_equal(reference_blob(0x6801, key, 17, blob), 29);
	assert_int_equal(ptkb_decode(blob, 29, &alg, got, &n), PTKB_KEY_LENGTH);
	assert_int_equal(reference_blob(0x6601, key, 0, blob), 12);
	assert_int_equal(ptkb_decode(blob, 12, &alg, got, &n), PTKB_KEY_LENGTH);
	/* A length field far larger than any key, the bytes not there. */
	reference_blob(0x660e, key, 16, blob);
	blob[8] = blob[9] = blob[10] = blob[11] = 0xff;
	assert_int_equal(ptkb_decode(blob, 28, &alg, got, &n), PTKB_LENGTH);
	/* NULL input is an empty one. */
	assert_int_equal(ptkb_decode(NULL, 0, &alg, got, &n), PTKB_LENGTH);
}

/* Every cut of a good blob of every algorithm is a length error. */
static void test_ptkb_truncated(void **state)
{
	uint8_t key[ALG_KEY_MAX], full[PLAINTEXTKEYBLOB_MAX], got[ALG_KEY_MAX];

	(void)state;
	memset(key, 0x5a, sizeof(key));
	for (size_t i = 0; i < NROWS; i++) {
		size_t len = ptkb_encode(rows[i].id, key, rows[i].max, full, sizeof(full));

		assert_int_equal(len, 12 + rows[i].max);
		for (size_t cut = 0; cut < len; cut++) {
			/* Exactly cut bytes on the heap: an over-read shows under ASan. */
			uint8_t *p = malloc(cut ? cut : 1);
			uint32_t alg = 0;
			size_t n = 0;

			assert_non_null(p);
			memcpy(p, full, cut);
			if (ptkb_decode(p, cut, &alg, got, &n) != PTKB_LENGTH)
				fail_msg("%s cut to %zu bytes: not PTKB_LENGTH", rows[i].name, cut);
			free(p);
		}
	}
}

static void test_ptkb_strerror(void **state)
{
	static const enum ptkb_error all[] = {
		PTKB_OK, PTKB_LENGTH, PTKB_TYPE, PTKB_VERSION, PTKB_RESERVED, PTKB_ALG,
		PTKB_KEY_LENGTH,
	};
	const size_t n = sizeof(all) / sizeof(all[0]);

	(void)state;
	assert_string_equal(ptkb_strerror(PTKB_OK), "valid");
	assert_non_null(strstr(ptkb_strerror(PTKB_TYPE), "0x08"));
	assert_non_null(strstr(ptkb_strerror(PTKB_VERSION), "bVersion"));
	assert_non_null(strstr(ptkb_strerror(PTKB_RESERVED), "reserved"));
	assert_non_null(strstr(ptkb_strerror(PTKB_ALG), "aiKeyAlg"));
	assert_non_null(strstr(ptkb_strerror(PTKB_KEY_LENGTH), "key length"));
	assert_non_null(strstr(ptkb_strerror(PTKB_LENGTH), "length"));
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(ptkb_strerror(all[i]), ptkb_strerror(all[j]));
	assert_string_equal(ptkb_strerror((enum ptkb_error)7), "invalid PLAINTEXTKEYBLOB");
}

/* ---- text.c: UTF-8 and escaping ---- */

static void test_utf8_valid(void **state)
{
	static const struct { const char *s; size_t n; int ok; } cases[] = {
		{ "", 0, 1 }, { "abc", 3, 1 }, { "\xc3\xa9", 2, 1 }, { "\xe2\x82\xac", 3, 1 },
		{ "\xf0\x9f\x94\x91", 4, 1 }, { "\xf4\x8f\xbf\xbf", 4, 1 }, { "\x7f", 1, 1 },
		{ "\x80", 1, 0 }, { "\xc0\xaf", 2, 0 }, { "\xc1\xbf", 2, 0 }, { "\xe0\x80\xaf", 3, 0 },
		{ "\xed\xa0\x80", 3, 0 }, { "\xed\xbf\xbf", 3, 0 }, { "\xf0\x80\x80\xaf", 4, 0 },
		{ "\xf4\x90\x80\x80", 4, 0 }, { "\xf5\x80\x80\x80", 4, 0 }, { "\xff", 1, 0 },
		{ "\xc3", 1, 0 }, { "\xe2\x82", 2, 0 }, { "a\xc3(", 3, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (utf8_valid((const uint8_t *)cases[i].s, cases[i].n) != cases[i].ok)
			fail_msg("case %zu: expected %d", i, cases[i].ok);
}

static void test_text_escape(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(text_escape(out, sizeof(out), "key", 3), "key");
	assert_string_equal(text_escape(out, sizeof(out), "a\nb\x1b[0m", 7), "a\\x0ab\\x1b[0m");
	assert_string_equal(text_escape(out, sizeof(out), "\xff\xfe", 2), "\\xff\\xfe");
	assert_string_equal(text_escape(out, sizeof(out), "back\\slash", 10), "back\\x5cslash");
	assert_string_equal(text_escape(out, sizeof(out), "cl\xc3\xa9\x7f", 5), "cl\xc3\xa9\\x7f");
	assert_int_equal(utf8_valid((const uint8_t *)out, strlen(out)), 1);
	/* Cut at a character boundary: never half an escape or half a UTF-8 sequence. */
	assert_string_equal(text_escape(out, 5, "ab\ncd", 5), "ab");
	assert_string_equal(text_escape(out, 4, "a\xc3\xa9" "b", 4), "a\xc3\xa9");
	assert_string_equal(text_escape(out, 3, "a\xc3\xa9" "b", 4), "a");
	assert_string_equal(text_escape(out, 1, "abc", 3), "");
	/* Random bytes always come out as valid UTF-8 with nothing below 0x20. */
	for (int round = 0; round < 2000; round++) {
		uint8_t in[24];
		char big[4 * sizeof(in) + 1];

		for (size_t i = 0; i < sizeof(in); i++)
			in[i] = (uint8_t)rand();
		text_escape(big, sizeof(big), in, sizeof(in));
		assert_int_equal(utf8_valid((const uint8_t *)big, strlen(big)), 1);
		for (size_t i = 0; big[i]; i++)
			assert_true((uint8_t)big[i] >= 0x20 && big[i] != 0x7f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alg_table),
		cmocka_unit_test(test_alg_by_name),
		cmocka_unit_test(test_alg_by_name_refused),
		cmocka_unit_test(test_alg_len_ok),
		cmocka_unit_test(test_hex_encode),
		cmocka_unit_test(test_hex_decode),
		cmocka_unit_test(test_hex_roundtrip),
		cmocka_unit_test(test_ptkb_bytes),
		cmocka_unit_test(test_ptkb_roundtrip_all),
		cmocka_unit_test(test_ptkb_errors),
		cmocka_unit_test(test_ptkb_truncated),
		cmocka_unit_test(test_ptkb_strerror),
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_text_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
