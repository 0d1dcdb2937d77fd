/*
 * daemon/recipients.c: the cache of decoded recipient keys. Hits and misses
 * counted, the bound kept, the least recently used evicted, an entry evicted
 * while in use still usable and freed by its last user (ASan's leak check
 * sees the rest), the cache off, refusals not kept, and two threads at it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "keytrans_status.h"
#include "recipients.h"
#include "rsa_pub.h"

#define NKEYS 24

struct der {
	uint8_t *p;
	size_t len;
};

static struct der keys[NKEYS];

/* DER SubjectPublicKeyInfo of a 1024-bit key with a random odd modulus. */
static struct der random_spki(void)
{
	uint8_t n[128], e[] = { 1, 0, 1 };
	struct der d = { NULL, 0 };
	EVP_PKEY *pkey;
	int len;

	RAND_bytes(n, sizeof(n));
	n[0] |= 0x80;
	n[127] |= 1;
	pkey = rsa_pub_from_ne(n, sizeof(n), e, sizeof(e));
	assert_non_null(pkey);
	len = i2d_PUBKEY(pkey, &d.p);
	assert_true(len > 0);
	d.len = (size_t)len;
	EVP_PKEY_free(pkey);
	return d;
}

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < NKEYS; i++)
		keys[i] = random_spki();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NKEYS; i++)
		OPENSSL_free(keys[i].p);
	return 0;
}

static struct recipient *get(struct recipients *c, int i)
{
	struct recipient *r = NULL;
	char why[256];

	assert_int_equal(recipients_get(c, keys[i].p, keys[i].len, &r, why, sizeof(why)), KT_OK);
	assert_non_null(r);
	assert_int_equal(r->k, 128);
	return r;
}

static void expect(struct recipients *c, uint64_t hits, uint64_t misses, uint32_t entries)
{
	struct recipient_stats s;

	recipients_stats(c, &s);
	assert_int_equal(s.hits, hits);
	assert_int_equal(s.misses, misses);
	assert_int_equal(s.entries, entries);
}

/* An encryption with worker w's context of r: 128 bytes out. */
static void encrypt_with(struct recipient *r, int w, enum rsa_padding pad)
{
	EVP_PKEY_CTX *ctx = recipient_enc_ctx(r, w, pad);
	uint8_t in[16] = { 1 }, out[128];

	assert_non_null(ctx);
	assert_ptr_equal(recipient_enc_ctx(r, w, pad), ctx);    /* kept */
	assert_int_equal(rsa_pub_encrypt_with(ctx, in, sizeof(in), out, sizeof(out)), 0);
}

static void test_hits_and_misses(void **state)
{
	struct recipients c;
	struct recipient *a, *b;

	(void)state;
	assert_int_equal(recipients_init(&c, 4, 2), 0);
	a = get(&c, 0);
	expect(&c, 0, 1, 1);
	encrypt_with(a, 0, RSA_PAD_PKCS1);
	encrypt_with(a, 1, RSA_PAD_OAEP);
	b = get(&c, 0);
	assert_ptr_equal(a, b);
	expect(&c, 1, 1, 1);
	recipients_put(&c, a);
	recipients_put(&c, b);
	/* The same bytes later: still there. */
	recipients_put(&c, get(&c, 0));
	expect(&c, 2, 1, 1);
	/* Another worker number than the cache was made for gets no context. */
	a = get(&c, 1);
	assert_null(recipient_enc_ctx(a, 2, RSA_PAD_PKCS1));
	assert_null(recipient_enc_ctx(a, -1, RSA_PAD_PKCS1));
	recipients_put(&c, a);
	expect(&c, 2, 2, 2);
	recipients_free(&c);
	recipients_free(&c);    /* harmless twice, and never initialised */
}

static void test_bound_and_order(void **state)
{
	struct recipients c;

	(void)state;
	assert_int_equal(recipients_init(&c, 4, 1), 0);
	for (int i = 0; i < 4; i++)
		recipients_put(&c, get(&c, i));
	expect(&c, 0, 4, 4);
	recipients_put(&c, get(&c, 0));           /* 0 is now the most recently used */
	recipients_put(&c, get(&c, 4));           /* evicts 1, the least recently used */
	expect(&c, 1, 5, 4);
	recipients_put(&c, get(&c, 0));
	recipients_put(&c, get(&c, 2));
	recipients_put(&c, get(&c, 3));
	recipients_put(&c, get(&c, 4));
	expect(&c, 5, 5, 4);
	recipients_put(&c, get(&c, 1));           /* gone: a miss, evicting 0 */
	expect(&c, 5, 6, 4);
	recipients_put(&c, get(&c, 0));
	expect(&c, 5, 7, 4);
	for (int i = 5; i < NKEYS; i++) {
		recipients_put(&c, get(&c, i));
		expect(&c, 5, 7 + (uint64_t)(i - 4), 4);
	}
	recipients_free(&c);
}

/* An entry evicted while a worker holds it stays usable until put back, then is freed. */
static void test_evicted_in_use(void **state)
{
	struct recipients c;
	struct recipient *held;

	(void)state;
	assert_int_equal(recipients_init(&c, 2, 1), 0);
	held = get(&c, 0);
	encrypt_with(held, 0, RSA_PAD_PKCS1);
	recipients_put(&c, get(&c, 1));
	recipients_put(&c, get(&c, 2));           /* evicts 0, which is held */
	expect(&c, 0, 3, 2);
	encrypt_with(held, 0, RSA_PAD_OAEP);
	recipients_put(&c, held);
	recipients_put(&c, get(&c, 0));           /* decoded again */
	expect(&c, 0, 4, 2);
	recipients_free(&c);
}

static void test_off(void **state)
{
	struct recipients c;
	struct recipient *a, *b;

	(void)state;
	assert_int_equal(recipients_init(&c, 0, 1), 0);
	a = get(&c, 0);
	b = get(&c, 0);
	assert_ptr_not_equal(a, b);
	encrypt_with(a, 0, RSA_PAD_PKCS1);
	recipients_put(&c, a);
	recipients_put(&c, b);
	expect(&c, 0, 2, 0);
	recipients_free(&c);
}

static void test_refusals_not_kept(void **state)
{
	static const uint8_t junk[] = "not a key";
	struct recipients c;
	struct recipient *r = NULL;
	char why[256] = "";

	(void)state;
	assert_int_equal(recipients_init(&c, 4, 1), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(recipients_get(&c, junk, sizeof(junk), &r, why, sizeof(why)),
				 KT_BAD_PUBLIC_KEY);
		assert_true(why[0] != '\0');
	}
	expect(&c, 0, 2, 0);
	recipients_free(&c);
}

struct hammer {
	struct recipients *c;
	int worker;
	unsigned seed;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	char why[256];

	for (int i = 0; i < 3000; i++) {
		int k = (int)(rand_r(&h->seed) % NKEYS);
		struct recipient *r = NULL;
		EVP_PKEY_CTX *ctx;

		if (recipients_get(h->c, keys[k].p, keys[k].len, &r, why, sizeof(why)) != KT_OK)
			abort();
		ctx = recipient_enc_ctx(r, h->worker, (enum rsa_padding)(i & 1));
		if (ctx == NULL || r->k != 128)
			abort();
		recipients_put(h->c, r);
	}
	return NULL;
}

/* Two workers on a cache smaller than their keys: every look-up counted, the bound kept. */
static void test_two_workers(void **state)
{
	struct recipients c;
	struct hammer h[2] = { { &c, 0, 1 }, { &c, 1, 2 } };
	pthread_t t[2];
	struct recipient_stats s;

	(void)state;
	assert_int_equal(recipients_init(&c, 8, 2), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	recipients_stats(&c, &s);
	assert_int_equal(s.hits + s.misses, 6000);
	assert_true(s.entries == 8);
	assert_true(s.hits > 0 && s.misses >= NKEYS);
	recipients_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hits_and_misses),
		cmocka_unit_test(test_bound_and_order),
		cmocka_unit_test(test_evicted_in_use),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_refusals_not_kept),
		cmocka_unit_test(test_two_workers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
