/*
 * The statistics of dudect (Reparaz, Balasch, Verbauwhede: "Dude, is my code
 * constant time?", DATE 2017; github.com/oreparaz/dudect), offline: Welch's
 * t-test between two classes of timings, on the raw samples, on samples
 * cropped at 100 percentiles of the pooled distribution (cropping removes the
 * long right tail that interrupts and cache misses add), and a second-order
 * test on the squared distance to the class mean. The largest |t| counts;
 * above 4.5 the two classes' timings differ.
 */
#ifndef KT_DUDECT_H
#define KT_DUDECT_H

#include <stddef.h>
#include <stdint.h>

#define DUDECT_PERCENTILES 100
#define DUDECT_TESTS (1 + DUDECT_PERCENTILES + 1)
#define DUDECT_THRESHOLD 4.5

struct dudect_result {
	double max_t;           /* signed t of the test with the largest |t| */
	int max_test;           /* 0 raw, 1..100 cropped, 101 second order */
	double max_crop;        /* that test's percentile (cropped tests), else 1 */
	size_t n[2];            /* samples per class */
	double mean[2];         /* raw means per class */
	int64_t median[2];      /* per class */
	/*
	 * 4.5 standard errors of the difference of means below the pooled median
	 * (dudect's 10th threshold): roughly the smallest shift of the bulk of
	 * the distribution this run could have seen.
	 */
	double resolution;
};

/*
 * t[i] is the timing of sample i, cls[i] its class (0 or 1). Returns 0, or
 * -1 when a class has fewer than two samples or memory runs out.
 */
int dudect_analyse(const int64_t *t, const uint8_t *cls, size_t n, struct dudect_result *r);
/* "raw", "crop@0.9375", "2nd-order": which test gave max_t (into buf). */
const char *dudect_test_name(const struct dudect_result *r, char *buf, size_t len);

#endif
