/* keytrans bench: latency percentiles. */
#include "bench.h"

#include <stdlib.h>

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The sample below which p percent of them lie (nearest rank). */
static uint32_t rank(const uint32_t *s, size_t n, unsigned p)
{
	size_t i = (n * p + 99) / 100;

	return n == 0 ? 0 : s[i == 0 ? 0 : i - 1];
}

void bench_stats(uint32_t *samples, size_t n, struct bench_stats *out)
{
	qsort(samples, n, sizeof(*samples), cmp_u32);
	out->n = n;
	out->p50 = rank(samples, n, 50);
	out->p90 = rank(samples, n, 90);
	out->p99 = rank(samples, n, 99);
	out->max = n ? samples[n - 1] : 0;
}
