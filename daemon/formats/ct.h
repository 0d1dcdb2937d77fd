/*
 * Constant-time helpers: masks are all-ones (true) or zero (false), and no
 * function branches on or indexes memory by its arguments. Used wherever a
 * value depends on the result of an RSA private operation.
 */
#ifndef KT_CT_H
#define KT_CT_H

#include <stddef.h>
#include <stdint.h>

/* Hides a value from the optimiser so that mask arithmetic is not turned into branches. */
static inline unsigned ct_barrier(unsigned a)
{
	__asm__("" : "+r"(a));
	return a;
}

static inline unsigned ct_msb(unsigned a)
{
	return 0u - (a >> (sizeof(a) * 8 - 1));
}

static inline unsigned ct_is_zero(unsigned a)
{
	return ct_msb(~a & (a - 1));
}

static inline unsigned ct_eq(unsigned a, unsigned b)
{
	return ct_is_zero(a ^ b);
}

static inline unsigned ct_lt(unsigned a, unsigned b)
{
	return ct_msb(a ^ ((a ^ b) | ((a - b) ^ b)));
}

static inline unsigned ct_ge(unsigned a, unsigned b)
{
	return ~ct_lt(a, b);
}

static inline unsigned ct_select(unsigned mask, unsigned a, unsigned b)
{
	mask = ct_barrier(mask);
	return (mask & a) | (~mask & b);
}

static inline uint8_t ct_select_u8(unsigned mask, uint8_t a, uint8_t b)
{
	return (uint8_t)ct_select(mask, a, b);
}

/* All-ones when the n bytes at a and b are equal. */
static inline unsigned ct_memeq(const uint8_t *a, const uint8_t *b, size_t n)
{
	unsigned diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned)(a[i] ^ b[i]);
	return ct_is_zero(diff);
}

/*
 * Moves the last len bytes of the window win[0..cap) to its front, for a
 * secret len <= cap, touching every byte of the window in the same order
 * whatever len is (a logarithmic barrel shift, as OpenSSL's unpadding does).
 */
static inline void ct_shift_to_front(uint8_t *win, size_t cap, unsigned len)
{
	unsigned shift = (unsigned)cap - len;

	for (size_t step = 1; step < cap; step <<= 1) {
		unsigned m = ct_is_zero(shift & (unsigned)step) ^ ~0u;

		for (size_t i = 0; i + step < cap; i++)
			win[i] = ct_select_u8(m, win[i + step], win[i]);
	}
}

#endif
