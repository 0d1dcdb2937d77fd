/*
 * Recipient keys given in requests (wrap and copp-sign with PUBLIC_KEY),
 * decoded once and kept for when the same bytes come again: at most max
 * entries, keyed by the SHA-256 of the bytes, the least recently used going
 * first. The public pool's workers share the table under one mutex, held
 * only to look up, link and unlink; decoding, encrypting and freeing happen
 * outside it. An entry in use is pinned (refs): one evicted meanwhile is
 * freed by its last user.
 *
 * An entry also keeps, per worker and padding, a ready encryption context,
 * as workers do for HSM keys (worker_enc_ctx): setting one up, with the
 * key's first use, costs about half as much as the encryption itself.
 * A key is public data: nothing here is secret, or wiped.
 */
#ifndef KT_RECIPIENTS_H
#define KT_RECIPIENTS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "rsa_pub.h"

#define RECIPIENT_DIGEST 32

struct recipient {
	uint8_t digest[RECIPIENT_DIGEST];   /* of the bytes it was decoded from */
	EVP_PKEY *pub;
	size_t k;                           /* modulus bytes */
	unsigned refs;                      /* users, + 1 while in the table (under the mutex) */
	struct recipient *chain;            /* its hash bucket */
	struct recipient *newer, *older;    /* order of use */
	size_t nctx;
	EVP_PKEY_CTX *ctx[];                /* [worker * RSA_PAD_COUNT + padding]: only that worker touches it */
};

struct recipients {
	int ready;                          /* recipients_init has run */
	pthread_mutex_t mu;
	struct recipient **buckets;         /* nbuckets, a power of two; NULL when max is 0 */
	size_t nbuckets;
	struct recipient *newest, *oldest;
	size_t n, max;
	int nworkers;
	EVP_MD *sha256;
	uint64_t hits, misses;
};

struct recipient_stats {
	uint64_t hits, misses;              /* PUBLIC_KEY requests found, and decoded */
	uint32_t entries;
};

/* A table of max entries (0: each key decoded for its request alone), for nworkers workers. 0 or -1. */
int recipients_init(struct recipients *c, size_t max, int nworkers);
/* Frees every entry: no worker may hold one any more. Harmless if recipients_init never ran. */
void recipients_free(struct recipients *c);
/*
 * The recipient decoded from p (keyfile.h's formats), pinned for the caller
 * until recipients_put. KT_OK, or keyfile_parse's refusal (or KT_INTERNAL
 * out of memory) with a sentence in why.
 */
int recipients_get(struct recipients *c, const uint8_t *p, size_t len, struct recipient **out,
		   char *why, size_t whylen);
void recipients_put(struct recipients *c, struct recipient *r);
/* Worker number worker's context for r with the padding (made on first use); NULL on failure. */
EVP_PKEY_CTX *recipient_enc_ctx(struct recipient *r, int worker, enum rsa_padding pad);
/* A snapshot of the counters. */
void recipients_stats(struct recipients *c, struct recipient_stats *out);

#endif
