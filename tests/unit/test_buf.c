/*
 * common/buf: the bounds-checked reader and writer everything else parses
 * and builds with. Every get at its exact length, one byte short and at zero
 * length; a failed get moves nothing; the writer's error latch; patches.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static const uint8_t seq[8] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };

/* A reader over the first len bytes of seq, already advanced by skip bytes. */
static void reader_at(struct buf_reader *r, size_t len, size_t skip)
{
	buf_reader_init(r, seq, len);
	assert_int_equal(buf_skip(r, skip), 0);
	assert_int_equal(r->off, skip);
}

/* After a failed get: nothing consumed. */
static void assert_unmoved(const struct buf_reader *r, size_t off, size_t left)
{
	assert_int_equal(r->off, off);
	assert_int_equal(buf_left(r), left);
}

static void test_reader_init(void **state)
{
	struct buf_reader r;
	uint8_t v;

	(void)state;
	buf_reader_init(&r, seq, sizeof(seq));
	assert_ptr_equal(r.p, seq);
	assert_int_equal(buf_left(&r), 8);
	assert_int_equal(buf_expect_end(&r), -1);

	/* A NULL input is an empty one, whatever length is claimed. */
	buf_reader_init(&r, NULL, 100);
	assert_int_equal(buf_left(&r), 0);
	assert_int_equal(buf_expect_end(&r), 0);
	assert_int_equal(buf_get_u8(&r, &v), -1);

	buf_reader_init(&r, seq, 0);
	assert_int_equal(buf_left(&r), 0);
	assert_int_equal(buf_expect_end(&r), 0);
}

static void test_get_u8(void **state)
{
	struct buf_reader r;
	uint8_t v = 0xee;

	(void)state;
	reader_at(&r, 3, 2);
	assert_int_equal(buf_get_u8(&r, &v), 0);
	assert_int_equal(v, 0x03);
	assert_int_equal(buf_expect_end(&r), 0);

	v = 0xee;
	assert_int_equal(buf_get_u8(&r, &v), -1);
	assert_int_equal(v, 0xee);
	assert_unmoved(&r, 3, 0);
}

static void test_get_u16(void **state)
{
	struct buf_reader r;
	uint16_t v;

	(void)state;
	reader_at(&r, 3, 1);
	assert_int_equal(buf_get_u16be(&r, &v), 0);
	assert_int_equal(v, 0x0203);
	assert_int_equal(buf_expect_end(&r), 0);

	reader_at(&r, 3, 1);
	assert_int_equal(buf_get_u16le(&r, &v), 0);
	assert_int_equal(v, 0x0302);
	assert_int_equal(buf_expect_end(&r), 0);

	/* One byte short. */
	reader_at(&r, 3, 2);
	v = 0xeeee;
	assert_int_equal(buf_get_u16be(&r, &v), -1);
	assert_int_equal(buf_get_u16le(&r, &v), -1);
	assert_int_equal(v, 0xeeee);
	assert_unmoved(&r, 2, 1);

	/* Nothing left. */
	reader_at(&r, 3, 3);
	assert_int_equal(buf_get_u16be(&r, &v), -1);
	assert_int_equal(buf_get_u16le(&r, &v), -1);
	assert_unmoved(&r, 3, 0);
}

static void test_get_u32(void **state)
{
	struct buf_reader r;
	uint32_t v;

	(void)state;
	reader_at(&r, 6, 2);
	assert_int_equal(buf_get_u32be(&r, &v), 0);
	assert_int_equal(v, 0x03040506);
	assert_int_equal(buf_expect_end(&r), 0);

	reader_at(&r, 6, 2);
	assert_int_equal(buf_get_u32le(&r, &v), 0);
	assert_int_equal(v, 0x06050403);
	assert_int_equal(buf_expect_end(&r), 0);

	reader_at(&r, 6, 3);
	v = 0xeeeeeeee;
	assert_int_equal(buf_get_u32be(&r, &v), -1);
	assert_int_equal(buf_get_u32le(&r, &v), -1);
	assert_int_equal(v, 0xeeeeeeee);
	assert_unmoved(&r, 3, 3);

	reader_at(&r, 0, 0);
	assert_int_equal(buf_get_u32be(&r, &v), -1);
	assert_int_equal(buf_get_u32le(&r, &v), -1);
	assert_unmoved(&r, 0, 0);

	/* High bit set: no sign extension. */
	{
		static const uint8_t hi[4] = { 0xff, 0x00, 0x00, 0x80 };

		buf_reader_init(&r, hi, 4);
		assert_int_equal(buf_get_u32be(&r, &v), 0);
		assert_int_equal(v, 0xff000080u);
		buf_reader_init(&r, hi, 4);
		assert_int_equal(buf_get_u32le(&r, &v), 0);
		assert_int_equal(v, 0x800000ffu);
	}
}

static void test_get_u64(void **state)
{
	static const uint8_t hi[8] = { 0x80, 0, 0, 0, 0, 0, 0, 0xff };
	struct buf_reader r;
	uint64_t v;

	(void)state;
	reader_at(&r, 8, 0);
	assert_int_equal(buf_get_u64be(&r, &v), 0);
	assert_true(v == 0x0102030405060708ull);
	assert_int_equal(buf_expect_end(&r), 0);

	buf_reader_init(&r, hi, 8);
	assert_int_equal(buf_get_u64be(&r, &v), 0);
	assert_true(v == 0x80000000000000ffull);

	/* Seven bytes: the first half would fit, but nothing may be consumed. */
	reader_at(&r, 8, 1);
	v = 42;
	assert_int_equal(buf_get_u64be(&r, &v), -1);
	assert_true(v == 42);
	assert_unmoved(&r, 1, 7);

	reader_at(&r, 8, 8);
	assert_int_equal(buf_get_u64be(&r, &v), -1);
	assert_unmoved(&r, 8, 0);
}

static void test_get_bytes(void **state)
{
	struct buf_reader r;
	uint8_t out[8];

	(void)state;
	reader_at(&r, 8, 3);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(buf_get_bytes(&r, out, 5), 0);
	assert_memory_equal(out, seq + 3, 5);
	assert_int_equal(out[5], 0xee);
	assert_int_equal(buf_expect_end(&r), 0);

	reader_at(&r, 8, 4);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(buf_get_bytes(&r, out, 5), -1);
	assert_int_equal(out[0], 0xee);
	assert_unmoved(&r, 4, 4);

	/* Zero length succeeds anywhere, even at the end and with a NULL dst. */
	reader_at(&r, 8, 8);
	assert_int_equal(buf_get_bytes(&r, NULL, 0), 0);
	assert_unmoved(&r, 8, 0);
	assert_int_equal(buf_get_bytes(&r, out, 1), -1);

	/* A huge n must not wrap around the remaining-length check. */
	reader_at(&r, 8, 2);
	assert_int_equal(buf_get_bytes(&r, out, SIZE_MAX), -1);
	assert_int_equal(buf_get_bytes(&r, out, SIZE_MAX - 1), -1);
	assert_unmoved(&r, 2, 6);
}

static void test_get_bytes_reversed(void **state)
{
	static const uint8_t rev[5] = { 0x08, 0x07, 0x06, 0x05, 0x04 };
	struct buf_reader r;
	uint8_t out[8];

	(void)state;
	reader_at(&r, 8, 3);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(buf_get_bytes_reversed(&r, out, 5), 0);
	assert_memory_equal(out, rev, 5);
	assert_int_equal(out[5], 0xee);
	assert_int_equal(buf_expect_end(&r), 0);

	reader_at(&r, 8, 4);
	memset(out, 0xee, sizeof(out));
	assert_int_equal(buf_get_bytes_reversed(&r, out, 5), -1);
	assert_int_equal(out[0], 0xee);
	assert_unmoved(&r, 4, 4);

	reader_at(&r, 8, 8);
	assert_int_equal(buf_get_bytes_reversed(&r, out, 0), 0);
	assert_unmoved(&r, 8, 0);

	/* One byte reversed is itself. */
	reader_at(&r, 8, 0);
	assert_int_equal(buf_get_bytes_reversed(&r, out, 1), 0);
	assert_int_equal(out[0], 0x01);
}

static void test_get_ptr_and_skip(void **state)
{
	struct buf_reader r;
	const uint8_t *p = NULL;

	(void)state;
	reader_at(&r, 8, 2);
	assert_int_equal(buf_get_ptr(&r, &p, 6), 0);
	assert_ptr_equal(p, seq + 2);
	assert_int_equal(buf_expect_end(&r), 0);

	reader_at(&r, 8, 2);
	p = NULL;
	assert_int_equal(buf_get_ptr(&r, &p, 7), -1);
	assert_null(p);
	assert_unmoved(&r, 2, 6);

	reader_at(&r, 8, 8);
	assert_int_equal(buf_get_ptr(&r, &p, 0), 0);
	assert_ptr_equal(p, seq + 8);
	assert_unmoved(&r, 8, 0);

	reader_at(&r, 8, 0);
	assert_int_equal(buf_skip(&r, 8), 0);
	assert_unmoved(&r, 8, 0);
	reader_at(&r, 8, 5);
	assert_int_equal(buf_skip(&r, 4), -1);
	assert_unmoved(&r, 5, 3);
	assert_int_equal(buf_skip(&r, 0), 0);
	assert_int_equal(buf_skip(&r, SIZE_MAX), -1);
	assert_unmoved(&r, 5, 3);
}

/* Mixed reads in sequence, as a parser does them. */
static void test_get_sequence(void **state)
{
	static const uint8_t in[] = { 0x07, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01, 0xaa, 0xbb };
	struct buf_reader r;
	uint8_t a, tail[2];
	uint16_t b;
	uint32_t c;

	(void)state;
	buf_reader_init(&r, in, sizeof(in));
	assert_int_equal(buf_get_u8(&r, &a), 0);
	assert_int_equal(buf_get_u16le(&r, &b), 0);
	assert_int_equal(buf_get_u32le(&r, &c), 0);
	assert_int_equal(buf_get_bytes(&r, tail, 3), -1);
	assert_int_equal(buf_get_bytes(&r, tail, 2), 0);
	assert_int_equal(a, 7);
	assert_int_equal(b, 0x0102);
	assert_int_equal(c, 0x01020304);
	assert_int_equal(tail[0], 0xaa);
	assert_int_equal(tail[1], 0xbb);
	assert_int_equal(buf_expect_end(&r), 0);
}

static void test_writer_values(void **state)
{
	static const uint8_t want[] = {
		0xab,
		0x12, 0x34,
		0x34, 0x12,
		0xde, 0xad, 0xbe, 0xef,
		0xef, 0xbe, 0xad, 0xde,
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
		0x01, 0x02, 0x03,
		0x03, 0x02, 0x01,
	};
	static const uint8_t three[3] = { 1, 2, 3 };
	uint8_t out[64];
	struct buf_writer w;
	struct buf_reader r;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	uint8_t b[3];

	(void)state;
	memset(out, 0xee, sizeof(out));
	buf_writer_init(&w, out, sizeof(out));
	assert_int_equal(w.len, 0);
	assert_int_equal(w.err, 0);
	assert_int_equal(buf_put_u8(&w, 0xab), 0);
	assert_int_equal(buf_put_u16be(&w, 0x1234), 0);
	assert_int_equal(buf_put_u16le(&w, 0x1234), 0);
	assert_int_equal(buf_put_u32be(&w, 0xdeadbeef), 0);
	assert_int_equal(buf_put_u32le(&w, 0xdeadbeef), 0);
	assert_int_equal(buf_put_u64be(&w, 0x0123456789abcdefull), 0);
	assert_int_equal(buf_put_bytes(&w, three, 3), 0);
	assert_int_equal(buf_put_bytes_reversed(&w, three, 3), 0);
	assert_int_equal(buf_put_bytes(&w, NULL, 0), 0);
	assert_int_equal(buf_put_bytes_reversed(&w, NULL, 0), 0);
	assert_int_equal(w.err, 0);
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(out[sizeof(want)], 0xee);

	/* And back through the reader. */
	buf_reader_init(&r, out, w.len);
	assert_int_equal(buf_get_u8(&r, &u8), 0);
	assert_int_equal(u8, 0xab);
	assert_int_equal(buf_get_u16be(&r, &u16), 0);
	assert_int_equal(u16, 0x1234);
	assert_int_equal(buf_get_u16le(&r, &u16), 0);
	assert_int_equal(u16, 0x1234);
	assert_int_equal(buf_get_u32be(&r, &u32), 0);
	assert_int_equal(u32, 0xdeadbeef);
	assert_int_equal(buf_get_u32le(&r, &u32), 0);
	assert_int_equal(u32, 0xdeadbeef);
	assert_int_equal(buf_get_u64be(&r, &u64), 0);
	assert_true(u64 == 0x0123456789abcdefull);
	assert_int_equal(buf_get_bytes(&r, b, 3), 0);
	assert_memory_equal(b, three, 3);
	assert_int_equal(buf_get_bytes_reversed(&r, b, 3), 0);
	assert_memory_equal(b, three, 3);
	assert_int_equal(buf_expect_end(&r), 0);
}

/* Fills a writer of capacity cap exactly, then one more byte fails and latches. */
static void test_writer_exact_capacity(void **state)
{
	uint8_t out[16];
	struct buf_writer w;

	(void)state;
	memset(out, 0xee, sizeof(out));
	buf_writer_init(&w, out, 7);
	assert_int_equal(buf_put_u32le(&w, 0x04030201), 0);
	assert_int_equal(buf_put_u16be(&w, 0x0506), 0);
	assert_int_equal(buf_put_u8(&w, 0x07), 0);
	assert_int_equal(w.len, 7);
	assert_int_equal(w.err, 0);
	/* Zero bytes still fit in a full writer. */
	assert_int_equal(buf_put_bytes(&w, NULL, 0), 0);
	assert_int_equal(w.err, 0);
	assert_int_equal(buf_put_u8(&w, 0x08), -1);
	assert_int_equal(w.err, 1);
	assert_int_equal(w.len, 7);
	assert_memory_equal(out, seq, 7);
	assert_int_equal(out[7], 0xee);
}

/* Each kind of put one byte short: -1, err latched, nothing written. */
static void test_writer_one_short(void **state)
{
	uint8_t out[16];
	struct buf_writer w;
	static const uint8_t three[3] = { 1, 2, 3 };

	(void)state;
#define SHORT_PUT(cap, call)                                 \
	do {                                                 \
		memset(out, 0xee, sizeof(out));              \
		buf_writer_init(&w, out, (cap));             \
		assert_int_equal((call), -1);                \
		assert_int_equal(w.err, 1);                  \
		assert_int_equal(out[0], 0xee);              \
		assert_int_equal(w.len, 0);                  \
	} while (0)
	SHORT_PUT(0, buf_put_u8(&w, 1));
	SHORT_PUT(1, buf_put_u16be(&w, 1));
	SHORT_PUT(1, buf_put_u16le(&w, 1));
	SHORT_PUT(3, buf_put_u32be(&w, 1));
	SHORT_PUT(3, buf_put_u32le(&w, 1));
	SHORT_PUT(3, buf_put_u64be(&w, 1));
	SHORT_PUT(2, buf_put_bytes(&w, three, 3));
	SHORT_PUT(2, buf_put_bytes_reversed(&w, three, 3));
	SHORT_PUT(2, buf_put_bytes(&w, three, SIZE_MAX));
#undef SHORT_PUT

	/* u64 with room for only its first half: fails and latches. */
	buf_writer_init(&w, out, 7);
	assert_int_equal(buf_put_u64be(&w, 1), -1);
	assert_int_equal(w.err, 1);
	assert_true(w.len <= 7);
}

/* Once a put failed, every later put fails even if it would fit. */
static void test_writer_latch(void **state)
{
	uint8_t out[8];
	struct buf_writer w;

	(void)state;
	memset(out, 0xee, sizeof(out));
	buf_writer_init(&w, out, sizeof(out));
	assert_int_equal(buf_put_u32be(&w, 0x01020304), 0);
	assert_int_equal(buf_put_bytes(&w, seq, 5), -1);
	assert_int_equal(w.err, 1);
	assert_int_equal(w.len, 4);
	assert_int_equal(buf_put_u8(&w, 9), -1);
	assert_int_equal(buf_put_u16le(&w, 9), -1);
	assert_int_equal(buf_put_u32le(&w, 9), -1);
	assert_int_equal(buf_put_u64be(&w, 9), -1);
	assert_int_equal(buf_put_bytes(&w, NULL, 0), -1);
	assert_int_equal(buf_put_bytes_reversed(&w, seq, 1), -1);
	assert_int_equal(w.err, 1);
	assert_int_equal(w.len, 4);
	assert_int_equal(out[4], 0xee);

	/* A writer over NULL has no room at all. */
	buf_writer_init(&w, NULL, 100);
	assert_int_equal(w.cap, 0);
	assert_int_equal(buf_put_u8(&w, 1), -1);
	assert_int_equal(w.err, 1);

	/* init clears the latch. */
	buf_writer_init(&w, out, sizeof(out));
	assert_int_equal(w.err, 0);
	assert_int_equal(buf_put_u8(&w, 1), 0);
}

static void test_patch(void **state)
{
	uint8_t out[16];
	struct buf_writer w;

	(void)state;
	memset(out, 0xee, sizeof(out));
	buf_writer_init(&w, out, sizeof(out));
	assert_int_equal(buf_put_bytes(&w, seq, 6), 0);

	/* In range, including a patch ending exactly at len. */
	assert_int_equal(buf_patch_u32be(&w, 0, 0xa1a2a3a4), 0);
	assert_int_equal(buf_patch_u32be(&w, 2, 0xb1b2b3b4), 0);
	{
		static const uint8_t want[6] = { 0xa1, 0xa2, 0xb1, 0xb2, 0xb3, 0xb4 };

		assert_memory_equal(out, want, 6);
	}
	assert_int_equal(buf_patch_u16be(&w, 4, 0xc1c2), 0);
	assert_int_equal(out[4], 0xc1);
	assert_int_equal(out[5], 0xc2);
	assert_int_equal(buf_patch_u16be(&w, 0, 0xd1d2), 0);
	assert_int_equal(out[0], 0xd1);
	assert_int_equal(out[1], 0xd2);

	/* Out of range: past the written bytes (not the capacity), or off > len. */
	assert_int_equal(buf_patch_u32be(&w, 3, 0), -1);
	assert_int_equal(buf_patch_u32be(&w, 6, 0), -1);
	assert_int_equal(buf_patch_u32be(&w, 7, 0), -1);
	assert_int_equal(buf_patch_u32be(&w, SIZE_MAX, 0), -1);
	assert_int_equal(buf_patch_u32be(&w, SIZE_MAX - 2, 0), -1);
	assert_int_equal(buf_patch_u16be(&w, 5, 0), -1);
	assert_int_equal(buf_patch_u16be(&w, 6, 0), -1);
	assert_int_equal(buf_patch_u16be(&w, SIZE_MAX, 0), -1);
	assert_int_equal(buf_patch_u16be(&w, SIZE_MAX - 1, 0), -1);
	{
		static const uint8_t want[7] = { 0xd1, 0xd2, 0xb1, 0xb2, 0xc1, 0xc2, 0xee };

		assert_memory_equal(out, want, 7);
	}
	/* A failed patch neither latches nor changes the length. */
	assert_int_equal(w.err, 0);
	assert_int_equal(w.len, 6);

	/* Nothing written yet: nothing to patch. */
	buf_writer_init(&w, out, sizeof(out));
	assert_int_equal(buf_patch_u32be(&w, 0, 0), -1);
	assert_int_equal(buf_patch_u16be(&w, 0, 0), -1);
}

static void test_reverse(void **state)
{
	uint8_t b[8];

	(void)state;
	memcpy(b, seq, 8);
	buf_reverse(b, 8);
	{
		static const uint8_t want[8] = { 8, 7, 6, 5, 4, 3, 2, 1 };

		assert_memory_equal(b, want, 8);
	}
	memcpy(b, seq, 8);
	buf_reverse(b, 7);
	{
		static const uint8_t want[8] = { 7, 6, 5, 4, 3, 2, 1, 8 };

		assert_memory_equal(b, want, 8);
	}
	memcpy(b, seq, 8);
	buf_reverse(b, 2);
	assert_int_equal(b[0], 2);
	assert_int_equal(b[1], 1);
	assert_int_equal(b[2], 3);
	memcpy(b, seq, 8);
	buf_reverse(b, 1);
	assert_memory_equal(b, seq, 8);
	buf_reverse(b, 0);
	assert_memory_equal(b, seq, 8);
	buf_reverse(NULL, 0);

	/* Twice is the identity. */
	buf_reverse(b, 5);
	buf_reverse(b, 5);
	assert_memory_equal(b, seq, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_init),
		cmocka_unit_test(test_get_u8),
		cmocka_unit_test(test_get_u16),
		cmocka_unit_test(test_get_u32),
		cmocka_unit_test(test_get_u64),
		cmocka_unit_test(test_get_bytes),
		cmocka_unit_test(test_get_bytes_reversed),
		cmocka_unit_test(test_get_ptr_and_skip),
		cmocka_unit_test(test_get_sequence),
		cmocka_unit_test(test_writer_values),
		cmocka_unit_test(test_writer_exact_capacity),
		cmocka_unit_test(test_writer_one_short),
		cmocka_unit_test(test_writer_latch),
		cmocka_unit_test(test_patch),
		cmocka_unit_test(test_reverse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
