/*
 * Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c): invariant
 * checks that abort (libFuzzer records the input as a crash) and the vector
 * keys, loaded once from tests/vectors/keys.
 */
#ifndef KT_FUZZ_H
#define KT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "rsa_pub.h"

/* An invariant of the code under test: a violation is a finding. */
#define FUZZ_CHECK(cond) \
	do { \
		if (!(cond)) \
			fuzz_fail(__FILE__, __LINE__, #cond); \
	} while (0)

/*
 * Reports "FILE:LINE: invariant violated: EXPR" where sanitizer reports go
 * (stderr, or its duplicate under -close_fd_mask=2) and aborts.
 */
__attribute__((noreturn)) void fuzz_fail(const char *file, int line, const char *expr);

#define FUZZ_NKEYS 3

/* rsa1024, rsa2048, rsa4096 from the vectors: public half and numbers. */
struct fuzz_key {
	const char *name;
	EVP_PKEY *pub;
	uint8_t n[RSA_MAX_BYTES];       /* modulus, big-endian */
	size_t k;                       /* modulus bytes */
	uint64_t e;
};

/* Loads the keys once ($KT_VECTORS, else the source tree's tests/vectors); aborts on failure. */
const struct fuzz_key *fuzz_keys(void);

/* A malloc'd copy of n bytes, exactly n long, so that ASan sees any overread. */
uint8_t *fuzz_dup(const uint8_t *p, size_t n);

/* A little-endian u32, as the blobs hold them (for checks, not for parsing). */
static inline uint32_t fuzz_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The daemon's locked heap (1 MiB), for the targets that decode private keys. */
#define FUZZ_SECURE_HEAP (1 << 20)

/* 1 when [q, q + qn) lies inside [p, p + pn). */
static inline int fuzz_inside(const uint8_t *q, size_t qn, const uint8_t *p, size_t pn)
{
	return q >= p && qn <= pn && (size_t)(q - p) <= pn - qn;
}

#endif
