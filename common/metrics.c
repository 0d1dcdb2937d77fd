#include "metrics.h"

#include <string.h>

#include "wire.h"

const uint32_t metrics_bounds_us[METRICS_BOUNDS] = {
	10, 20, 50, 100, 200, 500,
	1000, 2000, 5000, 10000, 20000, 50000,
	100000, 200000, 500000, 1000000, 2000000, 5000000,
	10000000,
};

unsigned metrics_bucket(uint64_t ns)
{
	unsigned i = 0;

	/* 19 compares at most, on the loop thread per reply: cheaper than a division. */
	while (i < METRICS_BOUNDS && ns > (uint64_t)metrics_bounds_us[i] * 1000)
		i++;
	return i;
}

/* A bytes field whose length is patched once its values are written, as a group's is. */
static size_t begin(struct buf_writer *w, unsigned tag)
{
	return wire_group_begin(w, tag);
}

int metrics_put_bounds(struct buf_writer *w, unsigned tag, const uint32_t *us, size_t n)
{
	size_t at = begin(w, tag);

	for (size_t i = 0; i < n; i++)
		buf_put_u32be(w, us[i]);
	return wire_group_end(w, at);
}

int metrics_put_u64s(struct buf_writer *w, unsigned tag, const uint64_t *v, size_t n)
{
	size_t at = begin(w, tag);

	for (size_t i = 0; i < n; i++)
		buf_put_u64be(w, v[i]);
	return wire_group_end(w, at);
}

int metrics_put_counts(struct buf_writer *w, unsigned tag, const uint64_t *by_status, size_t n)
{
	size_t at = begin(w, tag);

	for (size_t i = 0; i < n && i <= UINT16_MAX; i++) {
		if (by_status[i] == 0)
			continue;
		buf_put_u16be(w, (uint16_t)i);
		buf_put_u64be(w, by_status[i]);
	}
	return wire_group_end(w, at);
}

int metrics_get_bounds(const uint8_t *p, size_t len, uint32_t *us, size_t cap, size_t *n)
{
	struct buf_reader r;

	if (len == 0 || len % 4 != 0 || len / 4 > cap)
		return -1;
	buf_reader_init(&r, p, len);
	for (*n = 0; buf_left(&r) > 0; ++*n) {
		buf_get_u32be(&r, &us[*n]);
		if (*n > 0 && us[*n] <= us[*n - 1])
			return -1;
	}
	return 0;
}

int metrics_get_u64s(const uint8_t *p, size_t len, uint64_t *v, size_t n)
{
	struct buf_reader r;

	if (len != n * 8)
		return -1;
	buf_reader_init(&r, p, len);
	for (size_t i = 0; i < n; i++)
		buf_get_u64be(&r, &v[i]);
	return 0;
}

int metrics_get_counts(const uint8_t *p, size_t len, uint64_t *by_status, size_t slots,
		       uint64_t *other, uint64_t *total)
{
	struct buf_reader r;
	long prev = -1;

	memset(by_status, 0, slots * sizeof(*by_status));
	*other = *total = 0;
	if (len % METRICS_STATUS_ENTRY != 0)
		return -1;
	buf_reader_init(&r, p, len);
	while (buf_left(&r) > 0) {
		uint16_t status;
		uint64_t count;

		buf_get_u16be(&r, &status);
		buf_get_u64be(&r, &count);
		if ((long)status <= prev || __builtin_add_overflow(*total, count, total))
			return -1;
		prev = status;
		if (status < slots)
			by_status[status] = count;
		else
			*other += count;    /* cannot overflow: *total did not */
	}
	return 0;
}
