#include "dudect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A cropped test counts only with this many samples in each class: below it
 * the statistic is too far from normal for the 4.5 threshold to mean much.
 */
#define MIN_PER_CLASS 500
#define SECOND_ORDER (DUDECT_TESTS - 1)
#define MEDIAN_CROP 9           /* p = 1 - 0.5^(10 * 10 / 100) = 0.5 */

struct welch {
	double n[2], mean[2], m2[2];
};

/* Welford's online update: stays accurate over millions of samples. */
static void welch_push(struct welch *w, double x, int c)
{
	double d;

	w->n[c] += 1;
	d = x - w->mean[c];
	w->mean[c] += d / w->n[c];
	w->m2[c] += d * (x - w->mean[c]);
}

static double welch_se(const struct welch *w)
{
	return sqrt(w->m2[0] / (w->n[0] - 1) / w->n[0] + w->m2[1] / (w->n[1] - 1) / w->n[1]);
}

static double welch_t(const struct welch *w)
{
	double se = welch_se(w), d = w->mean[0] - w->mean[1];

	/* Zero variance in both classes: any difference of means is certain. */
	if (se == 0)
		return d == 0 ? 0 : copysign(HUGE_VAL, d);
	return d / se;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * dudect's thresholds: the pooled distribution's percentiles
 * p_i = 1 - 0.5^(10 (i + 1) / 100), dense in the tail where noise lives.
 */
static int percentiles(const int64_t *t, size_t n, int64_t *pct, double *p)
{
	int64_t *s = malloc(n * sizeof(*s));

	if (s == NULL)
		return -1;
	memcpy(s, t, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_i64);
	for (int i = 0; i < DUDECT_PERCENTILES; i++) {
		p[i] = 1 - pow(0.5, 10 * (double)(i + 1) / DUDECT_PERCENTILES);
		pct[i] = s[(size_t)((double)n * p[i])];
	}
	free(s);
	return 0;
}

/* First order: every sample, and each sample below each threshold (ascending). */
static void push_first_order(struct welch *w, const int64_t *t, const uint8_t *cls, size_t n,
			     const int64_t *pct)
{
	for (size_t i = 0; i < n; i++) {
		double x = (double)t[i];

		if (t[i] < 0)
			continue;       /* the counter went backwards (migration): no sample */
		welch_push(&w[0], x, cls[i]);
		for (int j = DUDECT_PERCENTILES - 1; j >= 0 && t[i] < pct[j]; j--)
			welch_push(&w[1 + j], x, cls[i]);
	}
}

/* Second order: the squared distance to the class mean compares the spreads. */
static void push_second_order(struct welch *w, const int64_t *t, const uint8_t *cls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double d;

		if (t[i] < 0)
			continue;
		d = (double)t[i] - w[0].mean[cls[i]];
		welch_push(&w[SECOND_ORDER], d * d, cls[i]);
	}
}

/* The median of each class (the raw means follow the rare huge outliers). */
static int medians(const int64_t *t, const uint8_t *cls, size_t n, int64_t median[2])
{
	int64_t *s = malloc(n * sizeof(*s));

	if (s == NULL)
		return -1;
	for (int c = 0; c < 2; c++) {
		size_t m = 0;

		for (size_t i = 0; i < n; i++)
			if (cls[i] == c)
				s[m++] = t[i];
		qsort(s, m, sizeof(*s), cmp_i64);
		median[c] = m ? s[m / 2] : 0;
	}
	free(s);
	return 0;
}

static int test_counts(const struct welch *w, int i)
{
	double min = i == 0 || i == SECOND_ORDER ? 2 : MIN_PER_CLASS;

	return w[i].n[0] >= min && w[i].n[1] >= min;
}

int dudect_analyse(const int64_t *t, const uint8_t *cls, size_t n, struct dudect_result *r)
{
	struct welch *w = calloc(DUDECT_TESTS, sizeof(*w));
	int64_t pct[DUDECT_PERCENTILES];
	double p[DUDECT_PERCENTILES];

	if (w == NULL || n == 0 || percentiles(t, n, pct, p) != 0) {
		free(w);
		return -1;
	}
	push_first_order(w, t, cls, n, pct);
	push_second_order(w, t, cls, n);
	if (!test_counts(w, 0)) {
		free(w);
		return -1;
	}
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < DUDECT_TESTS; i++) {
		double ti = welch_t(&w[i]);

		if (test_counts(w, i) && fabs(ti) > fabs(r->max_t)) {
			r->max_t = ti;
			r->max_test = i;
		}
	}
	r->max_crop = r->max_test >= 1 && r->max_test <= DUDECT_PERCENTILES ? p[r->max_test - 1] : 1;
	for (int c = 0; c < 2; c++) {
		r->n[c] = (size_t)w[0].n[c];
		r->mean[c] = w[0].mean[c];
	}
	r->resolution = DUDECT_THRESHOLD * welch_se(&w[1 + MEDIAN_CROP]);
	free(w);
	return medians(t, cls, n, r->median);
}

const char *dudect_test_name(const struct dudect_result *r, char *buf, size_t len)
{
	if (r->max_test == 0)
		snprintf(buf, len, "raw");
	else if (r->max_test == SECOND_ORDER)
		snprintf(buf, len, "2nd-order");
	else
		snprintf(buf, len, "crop@%.3f", r->max_crop);
	return buf;
}
