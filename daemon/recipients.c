#include "recipients.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyfile.h"
#include "keytrans_status.h"

int recipients_init(struct recipients *c, size_t max, int nworkers)
{
	memset(c, 0, sizeof(*c));
	c->max = max;
	c->nworkers = nworkers > 0 ? nworkers : 1;
	c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);    /* fetched once, not per request */
	if (c->sha256 == NULL)
		return -1;
	if (max > 0) {
		for (c->nbuckets = 1; c->nbuckets < max; c->nbuckets *= 2)
			;
		c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
		if (c->buckets == NULL) {
			EVP_MD_free(c->sha256);
			return -1;
		}
	}
	pthread_mutex_init(&c->mu, NULL);
	c->ready = 1;
	return 0;
}

static void entry_free(struct recipient *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nctx; i++)
		EVP_PKEY_CTX_free(r->ctx[i]);
	EVP_PKEY_free(r->pub);
	free(r);
}

void recipients_free(struct recipients *c)
{
	struct recipient *r, *older;

	if (!c->ready)
		return;
	for (r = c->newest; r != NULL; r = older) {
		older = r->older;
		entry_free(r);
	}
	free(c->buckets);
	EVP_MD_free(c->sha256);
	pthread_mutex_destroy(&c->mu);
	memset(c, 0, sizeof(*c));
}

static struct recipient **bucket(struct recipients *c, const uint8_t *digest)
{
	uint64_t h;

	memcpy(&h, digest, sizeof(h));
	return &c->buckets[h & (c->nbuckets - 1)];
}

static void unlink_use(struct recipients *c, struct recipient *r)
{
	if (r->newer != NULL)
		r->newer->older = r->older;
	else
		c->newest = r->older;
	if (r->older != NULL)
		r->older->newer = r->newer;
	else
		c->oldest = r->newer;
	r->newer = r->older = NULL;
}

static void link_newest(struct recipients *c, struct recipient *r)
{
	r->older = c->newest;
	r->newer = NULL;
	if (c->newest != NULL)
		c->newest->newer = r;
	c->newest = r;
	if (c->oldest == NULL)
		c->oldest = r;
}

/* Under the mutex: the entry for digest, pinned and made the newest; NULL if none. */
static struct recipient *find(struct recipients *c, const uint8_t *digest)
{
	struct recipient *r = *bucket(c, digest);

	while (r != NULL && memcmp(r->digest, digest, RECIPIENT_DIGEST) != 0)
		r = r->chain;
	if (r != NULL) {
		r->refs++;
		unlink_use(c, r);
		link_newest(c, r);
	}
	return r;
}

/* Under the mutex: takes the oldest entry out; returned when nobody uses it (to be freed). */
static struct recipient *evict_oldest(struct recipients *c)
{
	struct recipient *r = c->oldest, **at = bucket(c, r->digest);

	while (*at != r)
		at = &(*at)->chain;
	*at = r->chain;
	unlink_use(c, r);
	c->n--;
	return --r->refs == 0 ? r : NULL;
}

/*
 * Under the mutex: r joins the table, which then holds a reference. Returns
 * the entry evicted for it when nobody uses that one (to be freed), or NULL.
 */
static struct recipient *insert(struct recipients *c, struct recipient *r)
{
	struct recipient **at = bucket(c, r->digest);

	r->chain = *at;
	*at = r;
	r->refs++;
	link_newest(c, r);
	return ++c->n > c->max ? evict_oldest(c) : NULL;
}

static struct recipient *entry_new(struct recipients *c, EVP_PKEY *pub, const uint8_t *digest)
{
	size_t nctx = (size_t)c->nworkers * RSA_PAD_COUNT;
	struct recipient *r = calloc(1, sizeof(*r) + nctx * sizeof(r->ctx[0]));

	if (r == NULL)
		return NULL;
	memcpy(r->digest, digest, RECIPIENT_DIGEST);
	r->pub = pub;
	r->k = ((size_t)EVP_PKEY_get_bits(pub) + 7) / 8;
	r->refs = 1;
	r->nctx = nctx;
	return r;
}

/* Under the mutex, a look-up that counts: the pinned entry, or NULL (a miss). */
static struct recipient *lookup(struct recipients *c, const uint8_t *digest, int cached)
{
	struct recipient *r;

	pthread_mutex_lock(&c->mu);
	r = cached ? find(c, digest) : NULL;
	if (r != NULL)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->mu);
	return r;
}

/*
 * A freshly decoded entry into the table, unless another worker put the same
 * key there meanwhile: then that one, pinned, and fresh is freed.
 */
static struct recipient *keep(struct recipients *c, struct recipient *fresh)
{
	struct recipient *r, *evicted = NULL;

	pthread_mutex_lock(&c->mu);
	r = find(c, fresh->digest);
	if (r == NULL)
		evicted = insert(c, fresh);
	pthread_mutex_unlock(&c->mu);
	entry_free(evicted);
	if (r == NULL)
		return fresh;
	entry_free(fresh);
	return r;
}

int recipients_get(struct recipients *c, const uint8_t *p, size_t len, struct recipient **out,
		   char *why, size_t whylen)
{
	uint8_t digest[RECIPIENT_DIGEST] = { 0 };
	int cached = c->max > 0 && EVP_Digest(p, len, digest, NULL, c->sha256, NULL) == 1;
	struct recipient *r = lookup(c, digest, cached);
	EVP_PKEY *pub;
	int st;

	if (r != NULL) {
		*out = r;
		return KT_OK;
	}
	st = keyfile_parse(p, len, &pub, why, whylen);
	if (st != KT_OK)
		return st;
	r = entry_new(c, pub, digest);
	if (r == NULL) {
		EVP_PKEY_free(pub);
		snprintf(why, whylen, "out of memory for the recipient key");
		return KT_INTERNAL;
	}
	*out = cached ? keep(c, r) : r;
	return KT_OK;
}

void recipients_put(struct recipients *c, struct recipient *r)
{
	unsigned left;

	pthread_mutex_lock(&c->mu);
	left = --r->refs;
	pthread_mutex_unlock(&c->mu);
	if (left == 0)
		entry_free(r);
}

EVP_PKEY_CTX *recipient_enc_ctx(struct recipient *r, int worker, enum rsa_padding pad)
{
	size_t i = (size_t)worker * RSA_PAD_COUNT + (size_t)pad;

	if (worker < 0 || i >= r->nctx)
		return NULL;
	if (r->ctx[i] == NULL)
		r->ctx[i] = rsa_pub_encrypt_ctx(r->pub, pad);
	return r->ctx[i];
}

void recipients_stats(struct recipients *c, struct recipient_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!c->ready)
		return;
	pthread_mutex_lock(&c->mu);
	out->hits = c->hits;
	out->misses = c->misses;
	out->entries = (uint32_t)c->n;
	pthread_mutex_unlock(&c->mu);
}
