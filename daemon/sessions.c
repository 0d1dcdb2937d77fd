#include "sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "buf.h"
#include "keytrans_status.h"
#include "mac.h"

struct session {
	uint8_t handle[SESSION_HANDLE_LEN];
	uint8_t key[OMAC_KEY_LEN];
	uid_t uid;
	enum session_proto proto;
	uint32_t next_status, next_command;
	time_t used;                    /* CLOCK_MONOTONIC seconds */
};

static time_t now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

int sessions_init(struct sessions *ss, size_t max, size_t per_uid, time_t idle)
{
	memset(ss, 0, sizeof(*ss));
	ss->cap = max;
	ss->per_uid = per_uid;
	ss->idle = idle;
	if ((max > 0 && (ss->slot = calloc(max, sizeof(*ss->slot))) == NULL) ||
	    (ss->mac = omac1_ctx_new()) == NULL) {
		free(ss->slot);
		return -1;
	}
	pthread_mutex_init(&ss->mu, NULL);
	ss->ready = 1;
	return 0;
}

/* Under mu. */
static void drop(struct sessions *ss, size_t i)
{
	OPENSSL_secure_clear_free(ss->slot[i], sizeof(struct session));
	ss->slot[i] = NULL;
	ss->n--;
}

size_t sessions_wipe(struct sessions *ss)
{
	size_t had;

	if (!ss->ready)
		return 0;
	pthread_mutex_lock(&ss->mu);
	had = ss->n;
	for (size_t i = 0; i < ss->cap; i++)
		if (ss->slot[i] != NULL)
			drop(ss, i);
	pthread_mutex_unlock(&ss->mu);
	return had;
}

void sessions_free(struct sessions *ss)
{
	if (!ss->ready)
		return;
	sessions_wipe(ss);
	EVP_MAC_CTX_free(ss->mac);
	free(ss->slot);
	pthread_mutex_destroy(&ss->mu);
	ss->ready = 0;
}

/* Under mu: 1 when slot i was idle too long (it is then wiped). */
static int expired(struct sessions *ss, size_t i, time_t now)
{
	if (now - ss->slot[i]->used <= ss->idle)
		return 0;
	drop(ss, i);
	ss->expired++;
	return 1;
}

void sessions_expire(struct sessions *ss)
{
	time_t now = now_s();

	if (!ss->ready)
		return;
	pthread_mutex_lock(&ss->mu);
	for (size_t i = 0; i < ss->cap && ss->n > 0; i++)
		if (ss->slot[i] != NULL)
			expired(ss, i, now);
	pthread_mutex_unlock(&ss->mu);
}

void sessions_counts(struct sessions *ss, struct session_counts *out)
{
	memset(out, 0, sizeof(*out));
	if (!ss->ready)
		return;
	pthread_mutex_lock(&ss->mu);
	out->open = (uint32_t)ss->n;
	out->opened = ss->opened;
	out->expired = ss->expired;
	pthread_mutex_unlock(&ss->mu);
}

/* Under mu: a free slot for uid, or a sentence in why. */
static int free_slot(struct sessions *ss, uid_t uid, size_t *at, char *why, size_t whylen)
{
	size_t mine = 0, free_at = ss->cap;
	time_t now = now_s();

	if (ss->cap == 0) {
		snprintf(why, whylen, "sealed sessions are off here (max_sessions = 0)");
		return -1;
	}
	for (size_t i = 0; i < ss->cap; i++) {
		if (ss->slot[i] != NULL && expired(ss, i, now) == 0) {
			mine += ss->slot[i]->uid == uid;
			continue;
		}
		if (free_at == ss->cap)
			free_at = i;
	}
	if (mine >= ss->per_uid) {
		snprintf(why, whylen, "uid %u has %zu sealed sessions open (max_sessions_per_uid): "
			 "close one first", (unsigned)uid, mine);
		return -1;
	}
	if (free_at == ss->cap) {
		snprintf(why, whylen, "%zu sealed sessions are open (max_sessions)", ss->cap);
		return -1;
	}
	*at = free_at;
	return 0;
}

int sessions_open(struct sessions *ss, uid_t uid, enum session_proto proto,
		  const struct copp_params *p, uint8_t handle[SESSION_HANDLE_LEN], char *why,
		  size_t whylen)
{
	struct session *s;
	size_t at;
	int st = KT_SESSION_LIMIT;

	pthread_mutex_lock(&ss->mu);
	if (free_slot(ss, uid, &at, why, whylen) != 0)
		goto done;
	st = KT_INTERNAL;
	if ((s = OPENSSL_secure_zalloc(sizeof(*s))) == NULL) {
		snprintf(why, whylen, "no locked memory left for a session (job_memory)");
		goto done;
	}
	/* The slot's index, then 96 random bits: found at once, guessed never. */
	s->handle[0] = (uint8_t)(at >> 24);
	s->handle[1] = (uint8_t)(at >> 16);
	s->handle[2] = (uint8_t)(at >> 8);
	s->handle[3] = (uint8_t)at;
	if (RAND_bytes(s->handle + 4, SESSION_HANDLE_LEN - 4) != 1) {
		OPENSSL_secure_clear_free(s, sizeof(*s));
		snprintf(why, whylen, "no random bytes for a session handle");
		goto done;
	}
	memcpy(s->key, p->aes_key, OMAC_KEY_LEN);
	s->uid = uid;
	s->proto = proto;
	s->next_status = p->status_seq;
	s->next_command = p->command_seq;
	s->used = now_s();
	memcpy(handle, s->handle, SESSION_HANDLE_LEN);
	ss->slot[at] = s;
	ss->n++;
	ss->opened++;
	st = KT_OK;
done:
	pthread_mutex_unlock(&ss->mu);
	return st;
}

/*
 * Under mu: uid's live session with that handle, or NULL with why. Another
 * uid's session is answered as if there were none: nobody learns of it.
 */
static struct session *find(struct sessions *ss, uid_t uid, const uint8_t *handle, char *why,
			    size_t whylen, size_t *index)
{
	size_t i = (size_t)handle[0] << 24 | (size_t)handle[1] << 16 | (size_t)handle[2] << 8 | handle[3];
	struct session *s = i < ss->cap ? ss->slot[i] : NULL;
	time_t now = now_s();

	if (s != NULL && s->uid == uid && CRYPTO_memcmp(s->handle, handle, SESSION_HANDLE_LEN) == 0 &&
	    !expired(ss, i, now)) {
		s->used = now;
		*index = i;
		return s;
	}
	snprintf(why, whylen, "no sealed session with that handle for uid %u (closed, expired, "
		 "wiped by a reload or restart, or opened by another user)", (unsigned)uid);
	return NULL;
}

int sessions_mac(struct sessions *ss, uid_t uid, const uint8_t handle[SESSION_HANDLE_LEN],
		 const uint8_t *data, size_t len, uint8_t tag[16], char *why, size_t whylen)
{
	struct session *s;
	size_t i;
	int st = KT_UNKNOWN_SESSION;

	pthread_mutex_lock(&ss->mu);
	if ((s = find(ss, uid, handle, why, whylen, &i)) != NULL) {
		st = omac1(ss->mac, s->key, data, len, tag) == 0 ? KT_OK : KT_INTERNAL;
		if (st != KT_OK)
			snprintf(why, whylen, "AES-CMAC failed");
	}
	pthread_mutex_unlock(&ss->mu);
	return st;
}

/* KT_OK when c's OMAC field is what this session's protocol and the kind call for. */
static int omac_expected(const struct session *s, const struct session_check *c, char *why,
			 size_t whylen)
{
	int none = s->proto == SESSION_COPP && c->kind == SESSION_KIND_STATUS;

	if (none && c->omac != NULL) {
		snprintf(why, whylen, "a COPP status request (DXVA_COPPStatusInput) has no OMAC: "
			 "send none");
		return KT_BAD_REQUEST;
	}
	if (!none && c->omac == NULL) {
		snprintf(why, whylen, "OMAC is required");
		return KT_BAD_REQUEST;
	}
	return KT_OK;
}

/* Reads the message's sequence number for the kind into *seq. */
static int message_seq(const struct session_check *c, uint32_t *seq, char *why, size_t whylen)
{
	size_t at = c->kind == SESSION_KIND_STATUS ? SESSION_STATUS_SEQ_AT : SESSION_COMMAND_SEQ_AT;
	struct buf_reader r;

	buf_reader_init(&r, c->data, c->len);
	if (buf_skip(&r, at) != 0 || buf_get_u32le(&r, seq) != 0) {
		snprintf(why, whylen, "DATA is %zu bytes: a %s message has its sequence number at "
			 "bytes %zu-%zu", c->len, c->kind == SESSION_KIND_STATUS ? "status" : "command",
			 at, at + 3);
		return KT_BAD_REQUEST;
	}
	return KT_OK;
}

static int check_omac(struct sessions *ss, const struct session *s, const struct session_check *c,
		      char *why, size_t whylen)
{
	uint8_t tag[OMAC_TAG_LEN];
	int st;

	if (c->omac == NULL)
		return KT_OK;
	if (omac1(ss->mac, s->key, c->data, c->len, tag) != 0) {
		snprintf(why, whylen, "AES-CMAC failed");
		return KT_INTERNAL;
	}
	st = CRYPTO_memcmp(tag, c->omac, OMAC_TAG_LEN) == 0 ? KT_OK : KT_OMAC_MISMATCH;
	OPENSSL_cleanse(tag, sizeof(tag));
	if (st != KT_OK)
		snprintf(why, whylen, "the OMAC does not match the data");
	return st;
}

/* The sequence rule: the expected number, then it advances by one (mod 2^32). */
static int check_seq(struct session *s, const struct session_check *c, char *why, size_t whylen)
{
	uint32_t *next = c->kind == SESSION_KIND_STATUS ? &s->next_status : &s->next_command;
	uint32_t seq;
	int st;

	if (c->kind == SESSION_KIND_NONE)
		return KT_OK;
	if ((st = message_seq(c, &seq, why, whylen)) != KT_OK)
		return st;
	if (seq != *next) {
		snprintf(why, whylen, "%s sequence number %u %s: %u expected",
			 c->kind == SESSION_KIND_STATUS ? "status" : "command", seq,
			 seq - *next > 0x7fffffffu ? "replayed" : "skips ahead", *next);
		return KT_BAD_SEQUENCE;
	}
	(*next)++;
	return KT_OK;
}

int sessions_verify(struct sessions *ss, uid_t uid, const uint8_t handle[SESSION_HANDLE_LEN],
		    const struct session_check *c, uint32_t *next_status, uint32_t *next_command,
		    char *why, size_t whylen)
{
	struct session *s;
	size_t i;
	int st = KT_UNKNOWN_SESSION;

	pthread_mutex_lock(&ss->mu);
	if ((s = find(ss, uid, handle, why, whylen, &i)) != NULL) {
		st = omac_expected(s, c, why, whylen);
		if (st == KT_OK)
			st = check_omac(ss, s, c, why, whylen);
		/* An unauthenticated message tells nothing about the numbers and moves none. */
		if (st == KT_OK)
			st = check_seq(s, c, why, whylen);
		*next_status = s->next_status;
		*next_command = s->next_command;
	}
	pthread_mutex_unlock(&ss->mu);
	return st;
}

int sessions_close(struct sessions *ss, uid_t uid, const uint8_t handle[SESSION_HANDLE_LEN],
		   char *why, size_t whylen)
{
	size_t i;
	int st = KT_UNKNOWN_SESSION;

	pthread_mutex_lock(&ss->mu);
	if (find(ss, uid, handle, why, whylen, &i) != NULL) {
		drop(ss, i);
		st = KT_OK;
	}
	pthread_mutex_unlock(&ss->mu);
	return st;
}
