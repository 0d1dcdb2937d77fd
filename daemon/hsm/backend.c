#include "backend.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <p11-kit/pkcs11.h>

#include <systemd/sd-daemon.h>

#include "ckr.h"
#include "daemon.h"
#include "gen.h"
#include "hsm.h"
#include "hsm_admin.h"
#include "keytab.h"
#include "log.h"
#include "pin.h"
#include "wire.h"
#include "worker.h"

#define FIRST_BACKOFF_MS 250
#define SUPERVISE_EVERY_MS 100
/* An HSM that fails again within this long of its return is rebuilt after the backoff. */
#define STABLE_US (30 * 1000000LL)

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* "[hsm]" or "[hsm NAME]", for messages. */
static const char *section(const struct backend *b, char *buf, size_t len)
{
	if (strcmp(b->conf->name, "hsm") == 0)
		snprintf(buf, len, "[hsm]");
	else
		snprintf(buf, len, "[hsm %s]", b->conf->name);
	return buf;
}

/* Frees the libp11 context and the keys; nobody may be using them. */
static void teardown(struct backend *b)
{
	struct hsm *h;
	EVP_PKEY **priv;
	unsigned long *obj;
	size_t n;

	pthread_mutex_lock(&b->mu);
	h = b->hsm;
	priv = b->priv;
	obj = b->obj;
	n = b->npriv;
	b->hsm = NULL;
	b->priv = NULL;
	b->obj = NULL;
	b->npriv = 0;
	b->spec = NULL;
	pthread_mutex_unlock(&b->mu);
	for (size_t i = 0; i < n; i++)
		EVP_PKEY_free(priv[i]);
	free(priv);
	free(obj);
	hsm_close(h);
}

/* The key list of a configuration, for the supervisor; NULL out of memory. */
static struct backend_keys *spec_new(const struct config *c, unsigned long keyset)
{
	struct backend_keys *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return NULL;
	k->n = c->nkeys;
	k->keyset = keyset;
	k->conf = calloc(k->n ? k->n : 1, sizeof(*k->conf));
	k->pub = calloc(k->n ? k->n : 1, sizeof(*k->pub));
	if (k->conf == NULL || k->pub == NULL) {
		free(k->conf);
		free(k->pub);
		free(k);
		return NULL;
	}
	for (size_t i = 0; i < k->n; i++)
		k->conf[i] = c->keys[i];
	return k;
}

static void spec_free(struct backend_keys *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->n; i++)
		EVP_PKEY_free(k->pub[i]);
	free(k->pub);
	free(k->conf);
	free(k);
}

/*
 * A key that may leave the HSM (CKA_EXTRACTABLE = TRUE or CKA_SENSITIVE =
 * FALSE): refused where require_sensitive = yes (the key's, else its
 * [hsm]'s), else a warning. -1 when refused.
 */
static int check_hygiene(struct backend *b, const struct key_conf *kc, const struct hsm_key *hk,
			 char *err, size_t errlen)
{
	char sec[CONFIG_NAME_MAX + 8], what[80];
	int required = kc->require_sensitive >= 0 ? kc->require_sensitive : b->conf->require_sensitive;

	if (hsm_key_exposed(hk, what, sizeof(what)) == 0)
		return 0;
	if (required) {
		snprintf(err, errlen, "%s [key %s]: the private key can leave the HSM (%s) and "
			 "require_sensitive = yes", section(b, sec, sizeof(sec)), kc->name, what);
		return -1;
	}
	log_warn(b->log, "%s [key %s]: the private key can leave the HSM (%s); "
		 "require_sensitive = yes would refuse it", section(b, sec, sizeof(sec)), kc->name, what);
	return 0;
}

/*
 * Finds every key of spec in h: priv[i] and obj[i]. The first HSM to show a
 * key sets its public half (found[i], when asked, keeps the rest); the
 * others must hold the same. 0, BACKENDS_CONFIG (a key missing, differing or
 * refused) or BACKENDS_RETRY (the HSM failed while listing).
 */
static int find_keys(struct backend *b, struct hsm *h, struct backend_keys *spec, EVP_PKEY **priv,
		     unsigned long *obj, struct hsm_key *found, char *err, size_t errlen)
{
	char sec[CONFIG_NAME_MAX + 8], why[512];

	for (size_t i = 0; i < spec->n; i++) {
		struct hsm_key hk;
		int rc = hsm_find_key(h, &spec->conf[i], &hk, why, sizeof(why));

		if (rc != 0) {
			snprintf(err, errlen, "%s %s", section(b, sec, sizeof(sec)), why);
			return rc == HSM_FATAL ? BACKENDS_CONFIG : BACKENDS_RETRY;
		}
		if (spec->pub[i] != NULL && EVP_PKEY_eq(spec->pub[i], hk.pub) != 1) {
			snprintf(err, errlen, "%s [key %s]: not the same key as in the other HSMs",
				 section(b, sec, sizeof(sec)), spec->conf[i].name);
			hsm_key_release(&hk);
			return BACKENDS_CONFIG;
		}
		if (check_hygiene(b, &spec->conf[i], &hk, err, errlen) != 0) {
			hsm_key_release(&hk);
			return BACKENDS_CONFIG;
		}
		if (spec->pub[i] == NULL && EVP_PKEY_up_ref(hk.pub) == 1)
			spec->pub[i] = hk.pub;
		priv[i] = hk.priv;
		obj[i] = hk.obj;
		hk.priv = NULL;
		if (found != NULL) {
			found[i] = hk;      /* the caller releases the public half ... */
			found[i].priv = priv[i];    /* ... and only borrows the private one */
		} else {
			hsm_key_release(&hk);
		}
	}
	return 0;
}

/* Frees what find_keys kept of a failed build. */
static void drop_keys(EVP_PKEY **priv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		EVP_PKEY_free(priv[i]);
	free(priv);
}

/*
 * Logs in and finds the keys of spec. 0 (in service), BACKENDS_RETRY or
 * BACKENDS_CONFIG. On a failure spec keeps no public half of this HSM's
 * unless it was the first to show it (the caller decides what a failure means).
 */
/* Whether calls into b's module must go one at a time: its [hsm] says, or quirks.c knows. */
static void set_serial(struct backend *b, struct hsm *h)
{
	char sec[CONFIG_NAME_MAX + 8];
	const char *why = hsm_serialize_why(h);

	b->serial = b->conf->serialize == SERIALIZE_YES ||
		    (b->conf->serialize == SERIALIZE_AUTO && why != NULL);
	if (b->conf->serialize == SERIALIZE_AUTO && why != NULL)
		log_info(b->log, "%s %s (serialize = no would allow concurrent calls)",
			 section(b, sec, sizeof(sec)), why);
}

static int build(struct backend *b, struct backend_keys *spec, struct hsm_key *found, char *err,
		 size_t errlen)
{
	char sec[CONFIG_NAME_MAX + 8], why[512];
	EVP_PKEY **priv = calloc(spec->n ? spec->n : 1, sizeof(*priv));
	unsigned long *obj = calloc(spec->n ? spec->n : 1, sizeof(*obj));
	struct hsm *h = NULL;
	char *pin;
	int rc;

	pin = pin_read(b->conf, why, sizeof(why));
	if (priv == NULL || obj == NULL || pin == NULL) {
		snprintf(err, errlen, "%s %s", section(b, sec, sizeof(sec)), pin ? "out of memory" : why);
		free(priv);
		free(obj);
		pin_free(pin);
		return BACKENDS_CONFIG;
	}
	rc = hsm_open(b->conf->module, b->conf->token, &b->conf->token_attrs, pin, &h, why,
		      sizeof(why));
	pin_free(pin);
	if (rc != 0) {
		snprintf(err, errlen, "%s %s", section(b, sec, sizeof(sec)), why);
		free(priv);
		free(obj);
		return rc == HSM_FATAL ? BACKENDS_CONFIG : BACKENDS_RETRY;
	}
	set_serial(b, h);
	rc = find_keys(b, h, spec, priv, obj, found, err, errlen);
	if (rc != 0) {
		drop_keys(priv, spec->n);
		free(obj);
		hsm_close(h);
		return rc;
	}
	pthread_mutex_lock(&b->mu);
	b->hsm = h;
	b->built++;
	b->priv = priv;
	b->obj = obj;
	b->npriv = spec->n;
	b->spec = spec;
	b->up_since_us = now_us();
	pthread_mutex_unlock(&b->mu);
	atomic_store(&b->up, 1);
	return 0;
}

static void note_down(struct backend *b, const char *why, int64_t retry_in_ms)
{
	int64_t now = now_us();
	/* Cut to fit on purpose (wire_put_text escapes a UTF-8 sequence cut short). */
	size_t n = strnlen(why, sizeof(b->last_error) - 1);

	pthread_mutex_lock(&b->mu);
	memcpy(b->last_error, why, n);
	b->last_error[n] = '\0';
	if (b->down_since_us == 0)
		b->down_since_us = now;
	b->retry_at_us = now + retry_in_ms * 1000;
	pthread_mutex_unlock(&b->mu);
}

/* Releases the public halves of a first build's found keys. */
static void found_free(struct hsm_key *found, size_t n)
{
	for (size_t i = 0; i < n; i++)
		EVP_PKEY_free(found[i].pub);
	free(found);
}

/*
 * Builds b for spec; the first HSM built (no table yet in g) also fills g's
 * key table, deriving its secrets with that HSM. 0 or BACKENDS_*.
 */
static int build_for(struct backend *b, struct backend_keys *spec, struct gen *g, int *have_table,
		     char *err, size_t errlen)
{
	struct hsm_key *found = NULL;
	int rc;

	if (!*have_table && (found = calloc(spec->n ? spec->n : 1, sizeof(*found))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return BACKENDS_RETRY;
	}
	rc = build(b, spec, found, err, errlen);
	if (rc == 0 && found != NULL) {
		rc = keytab_load(&g->keys, &g->conf, spec->keyset, found, err, errlen);
		if (rc == 0) {
			*have_table = 1;
			atomic_store(&g->ready, 1);
		} else {
			rc = rc == KEYTAB_RETRY ? BACKENDS_RETRY : BACKENDS_CONFIG;
		}
	}
	found_free(found, found != NULL ? spec->n : 0);
	if (rc != 0 && atomic_exchange(&b->up, 0))
		teardown(b);        /* built, but the table could not be filled with it */
	return rc;
}

int backends_open(struct backends *bs, struct daemon *d, struct gen *g, char *err,
		  size_t errlen)
{
	const struct config *c = &d->conf;
	int have_table = 0, rc;

	memset(bs, 0, sizeof(*bs));
	pthread_mutex_init(&bs->mu, NULL);
	pthread_cond_init(&bs->cv, NULL);
	pthread_cond_init(&bs->resumed, NULL);
	bs->d = d;
	bs->b = calloc(c->nhsms, sizeof(*bs->b));
	bs->spec = spec_new(&g->conf, g->keyset);
	if (bs->b == NULL || bs->spec == NULL) {
		snprintf(err, errlen, "out of memory");
		return BACKENDS_RETRY;
	}
	for (size_t i = 0; i < c->nhsms; i++) {
		struct backend *b = &bs->b[i];
		char why[1024];

		b->conf = &c->hsms[i];
		b->log = &d->log;
		b->backoff_ms = FIRST_BACKOFF_MS;
		pthread_mutex_init(&b->mu, NULL);
		pthread_mutex_init(&b->call_mu, NULL);
		bs->n = i + 1;      /* counted before it opens anything: backends_close closes it */
		rc = build_for(b, bs->spec, g, &have_table, why, sizeof(why));
		if (rc == BACKENDS_CONFIG) {
			snprintf(err, errlen, "%s", why);
			return rc;
		}
		if (rc != 0) {
			/* Not reachable yet: out of service, retried by the supervisor. */
			log_warn(&d->log, "%s; will retry", why);
			snprintf(err, errlen, "%s", why);
			note_down(b, why, FIRST_BACKOFF_MS);
		}
	}
	if (!have_table) {
		/* Serve anyway (HSM_UNAVAILABLE meanwhile): the supervisor fills g's table later. */
		bs->waiting = g;
		log_warn(&d->log, "no HSM in service yet: waiting for one (%s)", err);
	}
	return 0;
}

void backend_status(struct backend *b, struct backend_status *out)
{
	out->name = b->conf->name;
	out->token = b->conf->token;
	out->up = atomic_load(&b->up);
	out->users = atomic_load(&b->users);
	pthread_mutex_lock(&b->mu);
	out->faults = b->faults;
	snprintf(out->last_error, sizeof(out->last_error), "%s", b->last_error);
	pthread_mutex_unlock(&b->mu);
}

void backends_why(struct backends *bs, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < bs->n && buf[0] == '\0'; i++) {
		pthread_mutex_lock(&bs->b[i].mu);
		if (!atomic_load(&bs->b[i].up))
			snprintf(buf, len, "%s", bs->b[i].last_error);
		pthread_mutex_unlock(&bs->b[i].mu);
	}
}

size_t backends_up(struct backends *bs)
{
	size_t n = 0;

	for (size_t i = 0; i < bs->n; i++)
		n += (size_t)atomic_load(&bs->b[i].up);
	return n;
}

/* Twice as long, at most hsm_retry_max. */
static int64_t next_backoff(const struct backends *bs, int64_t ms)
{
	int64_t max = bs->d->conf.limits.hsm_retry_max * 1000;

	return ms * 2 > max ? max : ms * 2;
}

int backends_available(struct backends *bs)
{
	return atomic_load(&bs->paused) || backends_up(bs) > 0;
}

static void wake_supervisor(struct backends *bs)
{
	pthread_mutex_lock(&bs->mu);
	pthread_cond_signal(&bs->cv);
	pthread_mutex_unlock(&bs->mu);
}

/* Takes b out of service (once) and has the supervisor rebuild it. */
static void backend_fail(struct backends *bs, struct backend *b, const char *why)
{
	char sec[CONFIG_NAME_MAX + 8];

	int64_t wait_ms = 0;

	if (!atomic_exchange(&b->up, 0))
		return;
	pthread_mutex_lock(&b->mu);
	b->faults++;
	/* Rebuilt at once, unless it is failing again soon after its return. */
	if (now_us() - b->up_since_us < STABLE_US) {
		wait_ms = b->backoff_ms;
		b->backoff_ms = next_backoff(bs, b->backoff_ms);
	} else {
		b->backoff_ms = FIRST_BACKOFF_MS;
	}
	pthread_mutex_unlock(&b->mu);
	note_down(b, why, wait_ms);
	log_err(&bs->d->log, "%s out of service: %s", section(b, sec, sizeof(sec)), why);
	wake_supervisor(bs);
}

/*
 * Leases the least busy HSM in service other than avoid: its users count
 * holds it in service until the caller is done (the supervisor rebuilds an
 * HSM only once it is out of service and nobody uses it).
 */
static struct backend *pick(struct backends *bs, const struct backend *avoid)
{
	for (size_t tries = 0; tries <= bs->n; tries++) {
		struct backend *best = NULL;
		int best_users = INT_MAX;

		for (size_t i = 0; i < bs->n; i++) {
			struct backend *b = &bs->b[i];
			int users = atomic_load(&b->users);

			if (b != avoid && atomic_load(&b->up) && users < best_users) {
				best = b;
				best_users = users;
			}
		}
		if (best == NULL)
			return NULL;
		atomic_fetch_add(&best->users, 1);
		if (atomic_load(&best->up))
			return best;
		atomic_fetch_sub(&best->users, 1);
	}
	return NULL;
}

/* While a reload rebuilds the HSMs, waits for it (at most hsm_call_timeout). */
static int wait_resumed(struct backends *bs)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += bs->d->conf.limits.hsm_call_timeout;
	pthread_mutex_lock(&bs->mu);
	while (atomic_load(&bs->paused) &&
	       pthread_cond_timedwait(&bs->resumed, &bs->mu, &until) == 0)
		;
	pthread_mutex_unlock(&bs->mu);
	return !atomic_load(&bs->paused);
}

static struct backend *lease(struct backends *bs, const struct backend *avoid)
{
	struct backend *b = pick(bs, avoid);

	if (b == NULL && atomic_load(&bs->paused) && wait_resumed(bs))
		b = pick(bs, avoid);
	return b;
}

static void release(struct backend *b)
{
	atomic_fetch_sub(&b->users, 1);
}

/* The time waited for a serialised module is not counted as a call that hangs. */
static void call_begin(struct worker *w, struct backend *b)
{
	if (b->serial)
		pthread_mutex_lock(&b->call_mu);
	atomic_store(&w->call_on, b);
	atomic_store(&w->call_since_us, now_us());
	w->call_cpu_from = thread_cpu_ns();
}

static void call_end(struct worker *w)
{
	struct backend *b = atomic_load(&w->call_on);

	w->call_cpu_ns += thread_cpu_ns() - w->call_cpu_from;
	atomic_store(&w->call_since_us, 0);
	if (b->serial)
		pthread_mutex_unlock(&b->call_mu);
}

static int unavailable(struct backends *bs, char *msg, size_t msglen)
{
	if (bs->n == 1)
		snprintf(msg, msglen, "the HSM is out of service (%s); try again later",
			 bs->b[0].last_error);
	else
		snprintf(msg, msglen, "no HSM is in service; try again later");
	return KT_HSM_UNAVAILABLE;
}

static void fault(struct backends *bs, struct backend *b, const char *what, unsigned long ckr)
{
	char why[200], rv[64];

	snprintf(why, sizeof(why), "%s failed with %s", what, ckr_describe(ckr, rv, sizeof(rv)));
	backend_fail(bs, b, why);
}

/*
 * Where b keeps k: its index, unless a reload changed the key list since
 * k's request was checked; then the key of the same name and public half,
 * or -1 when the reload removed or changed it.
 */
static int slot_of(const struct backend *b, const struct key *k)
{
	const struct backend_keys *s = b->spec;

	if (k->keyset == s->keyset)
		return (int)k->index;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->conf[i].name, k->name) == 0 && s->conf[i].mechanism == k->conf->mechanism &&
		    EVP_PKEY_eq(s->pub[i], k->pub) == 1)
			return (int)i;
	return -1;
}

/*
 * Is the HSM sound after C_Decrypt refused a ciphertext with a code that may
 * mean either bad data or a fault (SoftHSM answers a bad PKCS#1 padding with
 * CKR_GENERAL_ERROR, tpm2-pkcs11 a lost TPM context the same way)? It is if it
 * decrypts a ciphertext made here with the key's public half. 1 when sound.
 */
static int sound(struct backend *b, int slot, EVP_PKEY *pub, enum hsm_padding pad)
{
	static const uint8_t probe[16] = "keytrans probe";
	uint8_t c[RSA_MAX_BYTES], m[RSA_MAX_BYTES];
	size_t clen = sizeof(c), mlen = 0;
	struct hsm_failure why;
	enum rsa_padding rp = pad == HSM_PAD_OAEP ? RSA_PAD_OAEP
			    : pad == HSM_PAD_OAEP_SHA512 ? RSA_PAD_OAEP_SHA512 : RSA_PAD_PKCS1;
	EVP_PKEY_CTX *ctx = rsa_pub_encrypt_ctx(pub, rp);
	int ok = ctx != NULL && EVP_PKEY_encrypt(ctx, c, &clen, probe, sizeof(probe)) > 0;

	EVP_PKEY_CTX_free(ctx);
	ok = ok && hsm_decrypt(b->hsm, b->obj[slot], pad, c, clen, m, &mlen, &why) == 0 &&
	     mlen == sizeof(probe) && memcmp(m, probe, mlen) == 0;
	OPENSSL_cleanse(m, sizeof(m));
	return ok;
}

enum outcome { DONE, FAULT, DATA, REFUSED };

/*
 * rsa_mechanism = pkcs: the HSM removes the padding. A refused ciphertext
 * is bad data when the code says so, or when the HSM proves sound right
 * after; a refused mechanism is the configuration's problem; anything else
 * is a fault. Each call has a session of its own, so a failure cannot leave
 * an operation active for the next request.
 */
static enum outcome decrypt_pkcs(struct backend *b, int slot, const struct key *k,
				 enum hsm_padding pad, const uint8_t *in, size_t in_len, uint8_t *out,
				 size_t *out_len, unsigned long *ckr)
{
	struct hsm_failure why;

	if (hsm_decrypt(b->hsm, b->obj[slot], pad, in, in_len, out, out_len, &why) == 0)
		return DONE;
	*ckr = why.ckr;
	/* OAEP's parameters are ours and fixed: a module that calls them bad (SoftHSM 2.6
	 * knows only SHA-1) refuses the mechanism, as it would every time. */
	if (why.step == HSM_STEP_INIT &&
	    (ckr_is_refusal(why.ckr) || (pad != HSM_PAD_PKCS1 && why.ckr == CKR_ARGUMENTS_BAD)))
		return REFUSED;
	if (why.step == HSM_STEP_DECRYPT &&
	    (ckr_is_data_error(why.ckr) || sound(b, slot, k->pub, pad)))
		return DATA;
	return FAULT;
}

/*
 * The worker's session on b (the lease keeps b built meanwhile), opened on
 * first use and after a rebuild; NULL with *ckr when it cannot be opened.
 */
static struct backend_session *worker_session(struct backends *bs, struct worker *w,
					      struct backend *b, unsigned long *ckr)
{
	struct backend_session *s;

	if (w->sess == NULL && (w->sess = calloc(bs->n, sizeof(*w->sess))) == NULL)
		return NULL;
	s = &w->sess[b - bs->b];
	if (s->built == b->built)
		return s;
	s->built = 0;   /* a handle of an earlier build is gone with it: never closed here */
	if (hsm_session_open(b->hsm, &s->handle, ckr) != 0)
		return NULL;
	s->built = b->built;
	return s;
}

/* The raw mechanism cannot fail on any input below the modulus: every failure is a fault. */
static enum outcome decrypt_raw(struct backends *bs, struct worker *w, struct backend *b, int slot,
				const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len,
				unsigned long *ckr)
{
	struct backend_session *s = worker_session(bs, w, b, ckr);

	*out_len = in_len;
	if (s == NULL)
		return FAULT;
	if (hsm_raw_decrypt(b->hsm, s->handle, b->obj[slot], in, in_len, out, ckr) == 0)
		return DONE;
	/* Nothing may be left active on it: the next call starts on a new session. */
	hsm_session_close(b->hsm, s->handle);
	s->built = 0;
	return FAULT;
}

/* The mechanism's name, for messages. */
static const char *pad_mechanism(enum hsm_padding pad)
{
	return pad == HSM_PAD_PKCS1 ? "CKM_RSA_PKCS"
	       : pad == HSM_PAD_OAEP ? "CKM_RSA_PKCS_OAEP (SHA-1)" : "CKM_RSA_PKCS_OAEP (SHA-512)";
}

int backend_decrypt(struct worker *w, const struct key *k, enum hsm_padding pad, const uint8_t *in,
		    size_t in_len, uint8_t *out, size_t *out_len, char *msg, size_t msglen)
{
	struct backends *bs = &w->d->hsms;
	int pkcs = k->conf->mechanism == MECH_PKCS;
	const struct backend *avoid = NULL;
	char rv[64];

	/* Tried once more on another HSM after a fault: the operation has no side effect. */
	for (int attempt = 0; attempt < 2; attempt++) {
		struct backend *b = lease(bs, avoid);
		unsigned long ckr = 0;
		enum outcome o;
		int slot;

		if (b == NULL)
			return unavailable(bs, msg, msglen);
		if ((slot = slot_of(b, k)) < 0) {
			release(b);
			snprintf(msg, msglen, "key \"%s\" was removed or changed by a configuration reload",
				 k->name);
			return KT_UNKNOWN_KEY;
		}
		call_begin(w, b);
		o = pkcs ? decrypt_pkcs(b, slot, k, pad, in, in_len, out, out_len, &ckr)
			 : decrypt_raw(bs, w, b, slot, in, in_len, out, out_len, &ckr);
		call_end(w);
		release(b);
		switch (o) {
		case DONE:
			return KT_OK;
		case DATA:
			return KT_UNWRAP_FAILED;
		case REFUSED:
			log_err(&w->d->log, "[hsm %s] key %s: the HSM refuses %s: %s", b->conf->name,
				k->name, pad_mechanism(pad), ckr_describe(ckr, rv, sizeof(rv)));
			snprintf(msg, msglen, "the HSM refuses %s for key %s (%s)", pad_mechanism(pad),
				 k->name, ckr_name(ckr));
			return KT_HSM_ERROR;
		case FAULT:
			fault(bs, b, "the RSA operation", ckr);
			avoid = b;
			break;
		}
	}
	return unavailable(bs, msg, msglen);
}

int backend_random(struct worker *w, uint8_t *out, size_t n, char *msg, size_t msglen)
{
	struct backends *bs = &w->d->hsms;
	const struct backend *avoid = NULL;

	for (int attempt = 0; attempt < 2; attempt++) {
		struct backend *b = lease(bs, avoid);
		unsigned long ckr = 0;
		int rc;

		if (b == NULL)
			return unavailable(bs, msg, msglen);
		call_begin(w, b);
		rc = hsm_random(b->hsm, out, n, &ckr);
		call_end(w);
		release(b);
		if (rc == 0)
			return KT_OK;
		/* A token without a generator says so; any other failure is the HSM's. */
		if (ckr != CKR_RANDOM_NO_RNG && ckr != CKR_FUNCTION_NOT_SUPPORTED) {
			fault(bs, b, "the random generator", ckr);
			avoid = b;
			continue;
		}
		snprintf(msg, msglen, "the HSM has no random generator (%s)", ckr_name(ckr));
		return KT_HSM_ERROR;
	}
	return unavailable(bs, msg, msglen);
}

int backend_admin(struct worker *w, int64_t extra_s, backend_admin_fn *fn, void *arg, char *msg,
		  size_t msglen)
{
	struct backends *bs = &w->d->hsms;
	struct backend *b = lease(bs, NULL);
	unsigned long ckr = 0;
	int rc;

	if (b == NULL)
		return unavailable(bs, msg, msglen);
	call_begin(w, b);
	/* A start in the future: the watch sees the call as stuck extra_s seconds later. */
	atomic_store(&w->call_since_us, now_us() + extra_s * 1000000);
	rc = fn(b->hsm, arg, &ckr, msg, msglen);
	call_end(w);
	release(b);
	if (rc == 0)
		return KT_OK;
	if (rc == HSM_TAKEN)
		return KT_BAD_REQUEST;
	/*
	 * Never a reason to take the HSM out of service: a module refusing a
	 * template or a session state says nothing of its health, and a real
	 * fault shows in the next private-key operation.
	 */
	log_err(&w->d->log, "[hsm %s]: %s", b->conf->name, msg);
	return rc == HSM_UNSUPPORTED ? KT_NOT_SUPPORTED : KT_HSM_ERROR;
}

/* The oldest PKCS#11 call in progress among the pool's workers. */
static void oldest_call(struct pool *p, int64_t *since, struct backend **on)
{
	for (int i = 0; i < p->nworkers; i++) {
		int64_t s = atomic_load(&p->workers[i].call_since_us);

		if (s != 0 && (*since == 0 || s < *since)) {
			*since = s;
			*on = atomic_load(&p->workers[i].call_on);
		}
	}
}

/* How long the oldest PKCS#11 call (or rebuild) has been running, and on which HSM. */
static int64_t stuck_for_us(struct backends *bs, struct backend **on, int *rebuilding)
{
	int64_t since = 0, built = atomic_load(&bs->build_since_us);

	*on = NULL;
	oldest_call(&bs->d->hsm_pool, &since, on);
	oldest_call(&bs->d->pub_pool, &since, on);
	*rebuilding = built != 0 && (since == 0 || built < since);
	if (*rebuilding) {
		since = built;
		*on = atomic_load(&bs->building);
	}
	return since == 0 ? 0 : now_us() - since;
}

int backends_stuck(struct backends *bs)
{
	struct backend *on;
	int rebuilding;

	return stuck_for_us(bs, &on, &rebuilding) > bs->d->conf.limits.hsm_call_timeout * 1000000;
}

/*
 * A call that does not return: its HSM goes out of service at once. Neither
 * it nor a rebuild hanging inside libp11 can be cancelled, and the context
 * cannot be torn down under it: after three times the limit the process
 * restarts itself, keeping its socket (systemd's watchdog would do it too:
 * the loop stops its pings, see main.c).
 */
void backends_watch(struct backends *bs)
{
	if (atomic_exchange(&bs->announce, 0)) {
		log_info(&bs->d->log, "serving %zu key%s: the first HSM came into service",
			 bs->d->gen->keys.n, bs->d->gen->keys.n == 1 ? "" : "s");
		sd_notifyf(0, "STATUS=serving %zu key%s", bs->d->gen->keys.n,
			   bs->d->gen->keys.n == 1 ? "" : "s");
	}
	int64_t limit = bs->d->conf.limits.hsm_call_timeout * 1000000;
	struct backend *on;
	int rebuilding;
	int64_t stuck = stuck_for_us(bs, &on, &rebuilding);
	char why[160];

	if (stuck <= limit || on == NULL)
		return;
	snprintf(why, sizeof(why), "%s has not returned for %lld s",
		 rebuilding ? "reconnecting" : "a PKCS#11 call", (long long)(stuck / 1000000));
	if (rebuilding)
		note_down(on, why, 0);
	else
		backend_fail(bs, on, why);
	if (stuck > 3 * limit) {
		log_err(&bs->d->log, "%s: restarting", why);
		daemon_restart(bs->d);
	}
}

/*
 * Builds b again for the keys in force; while the daemon waits for its first
 * HSM, this also fills the waiting generation's key table.
 */
static int rebuild(struct backends *bs, struct backend *b, char *err, size_t errlen)
{
	int have_table = 0, rc;

	if (bs->waiting == NULL)
		return build(b, bs->spec, NULL, err, errlen);
	rc = build_for(b, bs->spec, bs->waiting, &have_table, err, errlen);
	if (rc == 0) {
		bs->waiting = NULL;
		atomic_store(&bs->announce, 1);     /* the loop says it is serving now */
	} else {
		sd_notifyf(0, "STATUS=waiting for an HSM: %s", err);
	}
	return rc;
}

/* Brings b back: tear down, build again; on failure wait twice as long next time. */
static void recover(struct backends *bs, struct backend *b)
{
	char err[1024], sec[CONFIG_NAME_MAX + 8];
	int64_t down_ms, backoff;
	int rc;

	teardown(b);
	atomic_store(&bs->building, b);
	atomic_store(&bs->build_since_us, now_us());
	rc = rebuild(bs, b, err, sizeof(err));
	atomic_store(&bs->build_since_us, 0);
	if (rc == 0) {
		pthread_mutex_lock(&b->mu);
		down_ms = (now_us() - b->down_since_us) / 1000;
		b->down_since_us = 0;
		pthread_mutex_unlock(&b->mu);
		log_info(&bs->d->log, "%s back in service after %lld ms", section(b, sec, sizeof(sec)),
			 (long long)down_ms);
		return;
	}
	pthread_mutex_lock(&b->mu);
	backoff = b->backoff_ms;
	b->backoff_ms = next_backoff(bs, backoff);
	pthread_mutex_unlock(&b->mu);
	note_down(b, err, backoff);
	log_warn(&bs->d->log, "%s still out of service: %s; next attempt in %lld ms",
		 section(b, sec, sizeof(sec)), err, (long long)backoff);
}

static int due(struct backend *b)
{
	int64_t at;

	pthread_mutex_lock(&b->mu);
	at = b->retry_at_us;
	pthread_mutex_unlock(&b->mu);
	return now_us() >= at;
}

/* Takes every HSM out of service for a reload (was_up: which were in it) once idle. */
static int pause_all(struct backends *bs, int *was_up, char *err, size_t errlen)
{
	int64_t deadline = now_us() + bs->d->conf.limits.hsm_call_timeout * 1000000;
	int busy = 1;

	atomic_store(&bs->paused, 1);
	for (size_t i = 0; i < bs->n; i++)
		was_up[i] = atomic_exchange(&bs->b[i].up, 0);
	while (busy && now_us() < deadline) {
		busy = 0;
		for (size_t i = 0; i < bs->n; i++)
			busy |= atomic_load(&bs->b[i].users) > 0;
		if (busy)
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	if (!busy)
		return 0;
	for (size_t i = 0; i < bs->n; i++)
		if (was_up[i])
			atomic_store(&bs->b[i].up, 1);
	snprintf(err, errlen, "an HSM call did not return within %ld s",
		 bs->d->conf.limits.hsm_call_timeout);
	return -1;
}

static void resume_all(struct backends *bs)
{
	pthread_mutex_lock(&bs->mu);
	atomic_store(&bs->paused, 0);
	pthread_cond_broadcast(&bs->resumed);
	pthread_mutex_unlock(&bs->mu);
}

/*
 * Rebuilds the HSMs that were in service for spec (filling g's table, when
 * given, from the first). -1 with err when spec cannot be served: a key is
 * missing or differs, or no HSM could be reached to look the keys up.
 * An HSM that cannot be reached stays out of service and is retried.
 */
static int rebuild_all(struct backends *bs, const int *was_up, struct backend_keys *spec,
		       struct gen *g, char *err, size_t errlen)
{
	int have_table = g == NULL;
	char why[1024];

	for (size_t i = 0; i < bs->n; i++) {
		struct backend *b = &bs->b[i];
		int rc;

		if (!was_up[i])
			continue;
		teardown(b);
		atomic_store(&bs->building, b);
		atomic_store(&bs->build_since_us, now_us());
		rc = g != NULL ? build_for(b, spec, g, &have_table, why, sizeof(why))
			       : build(b, spec, NULL, why, sizeof(why));
		atomic_store(&bs->build_since_us, 0);
		if (rc == BACKENDS_CONFIG && g != NULL) {
			snprintf(err, errlen, "%s", why);
			return -1;
		}
		if (rc != 0) {
			note_down(b, why, FIRST_BACKOFF_MS);
			log_warn(&bs->d->log, "%s; will retry", why);
		}
	}
	if (have_table)
		return 0;
	snprintf(err, errlen, "no HSM in service to find the keys in");
	return -1;
}

/* A reload that changes the key list: every HSM in service is rebuilt for it, or none. */
static void reload(struct backends *bs, struct gen *g)
{
	struct backend_keys *spec = spec_new(&g->conf, g->keyset), *old = bs->spec;
	int *was_up = calloc(bs->n ? bs->n : 1, sizeof(*was_up));
	char err[1024] = "out of memory", rb[1024];
	int rc = -1;

	if (spec != NULL && was_up != NULL && pause_all(bs, was_up, err, sizeof(err)) == 0) {
		rc = rebuild_all(bs, was_up, spec, g, err, sizeof(err));
		if (rc == 0) {
			bs->spec = spec;
			spec = old;
		} else {
			keytab_free(&g->keys);
			rebuild_all(bs, was_up, old, NULL, rb, sizeof(rb));     /* back to the old keys */
		}
		resume_all(bs);
	}
	spec_free(spec);
	free(was_up);
	pthread_mutex_lock(&bs->mu);
	bs->reload_rc = rc;
	snprintf(bs->reload_err, sizeof(bs->reload_err), "%s", rc == 0 ? "" : err);
	bs->reload_gen = NULL;
	pthread_mutex_unlock(&bs->mu);
	event_active(bs->reload_done, 0, 0);
}

int backends_reload(struct backends *bs, struct gen *g, struct event *done)
{
	int busy;

	pthread_mutex_lock(&bs->mu);
	busy = bs->reload_gen != NULL;
	if (!busy) {
		bs->reload_gen = g;
		bs->reload_done = done;
		pthread_cond_signal(&bs->cv);
	}
	pthread_mutex_unlock(&bs->mu);
	return busy ? -1 : 0;
}

int backends_reload_result(struct backends *bs, char *why, size_t whylen)
{
	int rc;

	pthread_mutex_lock(&bs->mu);
	rc = bs->reload_rc;
	snprintf(why, whylen, "%s", bs->reload_err);
	pthread_mutex_unlock(&bs->mu);
	return rc;
}

static void *supervise(void *arg)
{
	struct backends *bs = arg;

	for (;;) {
		struct timespec until;
		struct gen *g;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += SUPERVISE_EVERY_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&bs->mu);
		if (!bs->stopping && bs->reload_gen == NULL)
			pthread_cond_timedwait(&bs->cv, &bs->mu, &until);
		if (bs->stopping) {
			pthread_mutex_unlock(&bs->mu);
			break;
		}
		g = bs->reload_gen;
		pthread_mutex_unlock(&bs->mu);
		if (g != NULL)
			reload(bs, g);
		for (size_t i = 0; i < bs->n; i++) {
			struct backend *b = &bs->b[i];

			if (!atomic_load(&b->up) && atomic_load(&b->users) == 0 && due(b))
				recover(bs, b);
		}
	}
	return NULL;
}

int backends_start(struct backends *bs)
{
	if (pthread_create(&bs->supervisor, NULL, supervise, bs) != 0)
		return -1;
	pthread_setname_np(bs->supervisor, "kt-supervisor");
	bs->running = 1;
	return 0;
}

void backends_stop(struct backends *bs)
{
	if (!bs->running)
		return;
	pthread_mutex_lock(&bs->mu);
	bs->stopping = 1;
	pthread_cond_signal(&bs->cv);
	pthread_mutex_unlock(&bs->mu);
	pthread_join(bs->supervisor, NULL);
	bs->running = 0;
}

void backends_close(struct backends *bs)
{
	backends_stop(bs);
	for (size_t i = 0; i < bs->n; i++) {
		teardown(&bs->b[i]);
		pthread_mutex_destroy(&bs->b[i].mu);
		pthread_mutex_destroy(&bs->b[i].call_mu);
	}
	free(bs->b);
	bs->b = NULL;
	bs->n = 0;
	spec_free(bs->spec);
	bs->spec = NULL;
	if (bs->d != NULL) {
		pthread_mutex_destroy(&bs->mu);
		pthread_cond_destroy(&bs->cv);
		pthread_cond_destroy(&bs->resumed);
	}
}
