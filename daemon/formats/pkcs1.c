#include "pkcs1.h"

#include <string.h>

#include <openssl/crypto.h>

#include "ct.h"

#define PKCS1_MIN_PS 8

void unpad_finish(const uint8_t *src, size_t src_len, unsigned good, unsigned mlen,
		  size_t min_len, size_t max_len, struct unpadded *out)
{
	good &= ct_ge(mlen, (unsigned)min_len) & ct_ge((unsigned)max_len, mlen);
	/* On failure the length is pinned to max_len so that nothing downstream varies. */
	mlen = ct_select(good, mlen, (unsigned)max_len);
	memcpy(out->msg, src + src_len - max_len, max_len);
	ct_shift_to_front(out->msg, max_len, mlen);
	out->good = good;
	out->len = mlen;
}

int pkcs1_unpad(const uint8_t *em, size_t k, size_t min_len, size_t max_len, struct unpadded *out)
{
	unsigned good, found_zero = 0, zero_index = 0, mlen;

	if (max_len > PKCS1_MSG_MAX || min_len > max_len || k < max_len + 3 + PKCS1_MIN_PS)
		return -1;
	good = ct_is_zero(em[0]) & ct_eq(em[1], 2);
	for (size_t i = 2; i < k; i++) {
		unsigned is_zero = ct_is_zero(em[i]);

		zero_index = ct_select(~found_zero & is_zero, (unsigned)i, zero_index);
		found_zero |= is_zero;
	}
	good &= found_zero;
	/* The separator must follow at least eight bytes of padding string. */
	good &= ct_ge(zero_index, 2 + PKCS1_MIN_PS);
	mlen = (unsigned)k - zero_index - 1;
	unpad_finish(em, k, good, mlen, min_len, max_len, out);
	return 0;
}
