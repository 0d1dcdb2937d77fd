/*
 * Test helper: privkey_parse as the daemon's import runs it, watched. While it
 * runs, OpenSSL may allocate nothing in the ordinary heap but a BN_CTX's own
 * structures (headers, no digits): any other allocation would be a number of
 * the key, or part of one, outside the locked heap. For test_privkey.c and
 * test_cngblob.c.
 */
#ifndef KT_TEST_PRIVKEY_CHECK_H
#define KT_TEST_PRIVKEY_CHECK_H

#include <stddef.h>

#include <openssl/evp.h>

#include "privkey.h"

#define PRIVKEY_CHECK_HEAP (1 << 20)

/*
 * Before OpenSSL allocates anything: watches its allocations and sets up the
 * daemon's locked heap. 0, or -1 with a message on stderr.
 */
int privkey_check_setup(void);
/*
 * privkey_parse(p, n): fails the test on an ordinary-heap allocation; a
 * refusal must leave no key and the locked heap where it was, an accepted
 * key must be in the locked heap.
 */
int privkey_check_parse(const void *p, size_t n, struct rsa_parts **out, char *why, size_t whylen);
/* OpenSSL's view of k's numbers (calloc'd): what the parsers must find. */
struct rsa_parts *privkey_check_numbers(EVP_PKEY *k);
/* The same numbers, one by one. */
void privkey_check_same(const struct rsa_parts *got, const struct rsa_parts *want);

#endif
