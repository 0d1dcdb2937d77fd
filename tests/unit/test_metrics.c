/*
 * common/metrics: the fixed latency bounds, bucket selection, and the codec
 * of the stats answer's packed fields (round trips; truncated, oversized,
 * unordered and overflowing values refused).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "wire.h"

/* The value of the one field a writer holds (4-byte field header skipped). */
static const uint8_t *value(const struct buf_writer *w, size_t *len)
{
	*len = w->len - WIRE_FIELD_HDR_LEN;
	return w->p + WIRE_FIELD_HDR_LEN;
}

static void test_bounds_fixed(void **state)
{
	(void)state;
	assert_int_equal(metrics_bounds_us[0], 10);
	assert_int_equal(metrics_bounds_us[METRICS_BOUNDS - 1], 10000000);
	for (size_t i = 1; i < METRICS_BOUNDS; i++)
		assert_true(metrics_bounds_us[i] > metrics_bounds_us[i - 1]);
	/* The wire maxima hold the most a decoder accepts. */
	assert_true(METRICS_BOUNDS <= METRICS_BOUNDS_MAX);
}

static void test_bucket(void **state)
{
	(void)state;
	assert_int_equal(metrics_bucket(0), 0);
	assert_int_equal(metrics_bucket(10000), 0);            /* 10 µs: le="1e-05" includes it */
	assert_int_equal(metrics_bucket(10001), 1);
	assert_int_equal(metrics_bucket(20000), 1);
	assert_int_equal(metrics_bucket(999999), 6);           /* just under 1 ms */
	assert_int_equal(metrics_bucket(1000000), 6);
	assert_int_equal(metrics_bucket(10000000000ull), METRICS_BOUNDS - 1);
	assert_int_equal(metrics_bucket(10000000001ull), METRICS_BOUNDS);
	assert_int_equal(metrics_bucket(UINT64_MAX), METRICS_BOUNDS);
}

static void test_bounds_roundtrip(void **state)
{
	uint8_t buf[256];
	uint32_t got[METRICS_BOUNDS_MAX];
	struct buf_writer w;
	const uint8_t *p;
	size_t len, n = 0;

	(void)state;
	buf_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(metrics_put_bounds(&w, WIRE_T_LATENCY_BOUNDS, metrics_bounds_us,
					    METRICS_BOUNDS), 0);
	assert_int_equal(buf[1], WIRE_T_LATENCY_BOUNDS);
	p = value(&w, &len);
	assert_int_equal(len, METRICS_BOUNDS * 4);
	assert_int_equal(metrics_get_bounds(p, len, got, METRICS_BOUNDS_MAX, &n), 0);
	assert_int_equal(n, METRICS_BOUNDS);
	assert_memory_equal(got, metrics_bounds_us, sizeof(metrics_bounds_us));
	/* Truncated, empty, more than the caller holds. */
	assert_int_equal(metrics_get_bounds(p, len - 1, got, METRICS_BOUNDS_MAX, &n), -1);
	assert_int_equal(metrics_get_bounds(p, 0, got, METRICS_BOUNDS_MAX, &n), -1);
	assert_int_equal(metrics_get_bounds(p, len, got, METRICS_BOUNDS - 1, &n), -1);
}

static void test_bounds_order(void **state)
{
	static const uint8_t same[] = { 0, 0, 0, 10, 0, 0, 0, 10 };
	static const uint8_t down[] = { 0, 0, 0, 20, 0, 0, 0, 10 };
	static const uint8_t one[] = { 0, 0, 0, 0 };
	uint32_t got[4];
	size_t n;

	(void)state;
	assert_int_equal(metrics_get_bounds(same, sizeof(same), got, 4, &n), -1);
	assert_int_equal(metrics_get_bounds(down, sizeof(down), got, 4, &n), -1);
	assert_int_equal(metrics_get_bounds(one, sizeof(one), got, 4, &n), 0);
	assert_int_equal(n, 1);
}

static void test_u64s_roundtrip(void **state)
{
	uint64_t v[METRICS_BUCKETS], got[METRICS_BUCKETS];
	uint8_t buf[512];
	struct buf_writer w;
	const uint8_t *p;
	size_t len;

	(void)state;
	for (size_t i = 0; i < METRICS_BUCKETS; i++)
		v[i] = (uint64_t)i << 40 | i;
	v[METRICS_BUCKETS - 1] = UINT64_MAX;
	buf_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(metrics_put_u64s(&w, WIRE_T_LATENCY_BUCKETS, v, METRICS_BUCKETS), 0);
	p = value(&w, &len);
	assert_int_equal(metrics_get_u64s(p, len, got, METRICS_BUCKETS), 0);
	assert_memory_equal(got, v, sizeof(v));
	/* Exactly n values: one byte short, one value short, one value over. */
	assert_int_equal(metrics_get_u64s(p, len - 1, got, METRICS_BUCKETS), -1);
	assert_int_equal(metrics_get_u64s(p, len - 8, got, METRICS_BUCKETS), -1);
	assert_int_equal(metrics_get_u64s(p, len, got, METRICS_BUCKETS - 1), -1);
	/* The field fits its wire maximum. */
	assert_true(len <= 256);
}

static void test_counts_roundtrip(void **state)
{
	uint64_t by[30] = { 0 }, got[30], other, total;
	uint8_t buf[512];
	struct buf_writer w;
	const uint8_t *p;
	size_t len;

	(void)state;
	by[0] = 7;
	by[14] = 3;
	by[29] = 1ull << 40;
	buf_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(metrics_put_counts(&w, WIRE_T_STATUS_COUNTS, by, 30), 0);
	p = value(&w, &len);
	assert_int_equal(len, 3 * METRICS_STATUS_ENTRY);       /* zero counts are left out */
	assert_int_equal(metrics_get_counts(p, len, got, 30, &other, &total), 0);
	assert_memory_equal(got, by, sizeof(by));
	assert_true(other == 0 && total == 7 + 3 + (1ull << 40));
	/* Fewer slots: the statuses above go to other. */
	assert_int_equal(metrics_get_counts(p, len, got, 20, &other, &total), 0);
	assert_true(got[0] == 7 && got[14] == 3 && other == 1ull << 40);
	/* Nothing answered: an empty value. */
	memset(by, 0, sizeof(by));
	buf_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(metrics_put_counts(&w, WIRE_T_STATUS_COUNTS, by, 30), 0);
	p = value(&w, &len);
	assert_int_equal(len, 0);
	assert_int_equal(metrics_get_counts(p, len, got, 30, &other, &total), 0);
	assert_true(total == 0 && other == 0);
}

static void test_counts_refused(void **state)
{
	/* status 5 count 1, then status 5 again (not ascending) */
	static const uint8_t twice[] = { 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const uint8_t down[] = { 0, 6, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const uint8_t overflow[] = {
		0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
	};
	uint64_t got[8], other, total;

	(void)state;
	assert_int_equal(metrics_get_counts(twice, sizeof(twice), got, 8, &other, &total), -1);
	assert_int_equal(metrics_get_counts(down, sizeof(down), got, 8, &other, &total), -1);
	assert_int_equal(metrics_get_counts(overflow, sizeof(overflow), got, 8, &other, &total), -1);
	/* Truncated entries. */
	assert_int_equal(metrics_get_counts(twice, 9, got, 8, &other, &total), -1);
	assert_int_equal(metrics_get_counts(twice, 11, got, 8, &other, &total), -1);
	assert_int_equal(metrics_get_counts(twice, 10, got, 8, &other, &total), 0);
	assert_true(got[5] == 1 && total == 1);
}

/* A writer too small latches its error: nothing half-written is taken for a field. */
static void test_put_overflow(void **state)
{
	uint64_t v[METRICS_BUCKETS] = { 0 };
	uint8_t buf[40];
	struct buf_writer w;

	(void)state;
	buf_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(metrics_put_u64s(&w, WIRE_T_LATENCY_BUCKETS, v, METRICS_BUCKETS), -1);
	assert_true(w.err);
	buf_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(metrics_put_bounds(&w, WIRE_T_LATENCY_BOUNDS, metrics_bounds_us,
					    METRICS_BOUNDS), -1);
}

/* The packed fields fit the tag table's maxima, so wire_parse_* accepts what the daemon writes. */
static void test_fits_wire(void **state)
{
	uint8_t frame[4096];
	uint64_t by[64], b[METRICS_BUCKETS] = { 0 };
	struct buf_writer w;
	struct wire_fields m;
	char why[128];

	(void)state;
	for (size_t i = 0; i < 64; i++)
		by[i] = i + 1;
	buf_writer_init(&w, frame, sizeof(frame));
	metrics_put_bounds(&w, WIRE_T_LATENCY_BOUNDS, metrics_bounds_us, METRICS_BOUNDS);
	metrics_put_counts(&w, WIRE_T_STATUS_COUNTS, by, 64);
	metrics_put_u64s(&w, WIRE_T_LATENCY_BUCKETS, b, METRICS_BUCKETS);
	assert_false(w.err);
	assert_int_equal(wire_parse_answer(frame, w.len, &m, why, sizeof(why)), 0);
	assert_true(wire_has(&m, WIRE_T_LATENCY_BOUNDS) && wire_has(&m, WIRE_T_STATUS_COUNTS) &&
		    wire_has(&m, WIRE_T_LATENCY_BUCKETS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounds_fixed),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_bounds_roundtrip),
		cmocka_unit_test(test_bounds_order),
		cmocka_unit_test(test_u64s_roundtrip),
		cmocka_unit_test(test_counts_roundtrip),
		cmocka_unit_test(test_counts_refused),
		cmocka_unit_test(test_put_overflow),
		cmocka_unit_test(test_fits_wire),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
