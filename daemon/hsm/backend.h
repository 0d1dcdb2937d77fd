/*
 * The HSMs the daemon uses ([hsm] / [hsm NAME] sections, all holding the same
 * keys) and their health. Workers lease the least busy HSM in service for one
 * operation. An HSM that reports a fault (a session, device, token or login
 * error), or whose call runs past hsm_call_timeout, is taken out of service at
 * once; the supervisor thread then waits until nobody uses it, tears its
 * libp11 context down completely and builds it again (load, find the token,
 * check it is initialised and opens a session, log in, find and compare the keys), with
 * exponential backoff, until it is back. libp11 0.4.12 never recovers on its
 * own: a full teardown is the only way back after an HSM reset.
 */
#ifndef KT_BACKEND_H
#define KT_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "config.h"
#include "hsm.h"

struct daemon;
struct event;
struct logger;
struct gen;
struct hsm;
struct key;
struct keytab;
struct worker;

/* What every HSM must hold: the configured keys, in order (the supervisor's own copy). */
struct backend_keys {
	struct key_conf *conf;          /* name, label, id, mechanism */
	EVP_PKEY **pub;                 /* their public halves, once one HSM has shown them */
	size_t n;
	unsigned long keyset;           /* struct gen's keyset */
};

/*
 * A worker's own session on one HSM for the raw RSA operation; valid while
 * built matches the HSM's (a rebuild ends every session of the old one).
 */
struct backend_session {
	unsigned long handle;
	unsigned long built;            /* 0: none */
};

struct backend {
	const struct hsm_conf *conf;
	struct logger *log;
	atomic_int up;                  /* in service */
	atomic_int users;               /* workers inside an operation on it */
	int serial;                     /* one PKCS#11 call at a time (set while it is built) */
	pthread_mutex_t call_mu;        /* held through each call when serial */
	pthread_mutex_t mu;             /* the fields below */
	struct hsm *hsm;                /* NULL while out of service */
	unsigned long built;            /* times built: workers' sessions belong to one build */
	EVP_PKEY **priv;                /* per key of spec; NULL while out of service */
	unsigned long *obj;             /* the keys' object handles, for hsm_decrypt */
	size_t npriv;
	const struct backend_keys *spec;    /* the key list priv follows */
	char last_error[256];
	unsigned long faults;           /* times taken out of service */
	int64_t down_since_us, retry_at_us;
	int64_t up_since_us;            /* back in service since (flapping: failed again soon) */
	int64_t backoff_ms;
};

struct backends {
	struct backend *b;
	size_t n;
	struct daemon *d;
	pthread_t supervisor;
	int running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
	_Atomic int64_t build_since_us;     /* the supervisor is rebuilding an HSM since (0: not) ... */
	struct backend *_Atomic building;   /* ... this one (backends_watch checks both) */
	struct backend_keys *spec;          /* supervisor (and open/close): the keys to find */
	struct gen *waiting;                /* supervisor: no HSM has filled this table yet */
	atomic_int announce;                /* the supervisor filled it: the loop tells */
	atomic_int paused;                  /* a reload rebuilds the HSMs: leases wait */
	pthread_cond_t resumed;             /* with mu */
	struct gen *reload_gen;             /* a reload asked for (with mu) ... */
	struct event *reload_done;          /* ... made active when it is done ... */
	int reload_rc;                      /* ... with 0 or -1 ... */
	char reload_err[1024];              /* ... and why */
};

/* Exit statuses of backends_open besides 0. */
#define BACKENDS_RETRY 1        /* nothing in service, but a restart may help */
#define BACKENDS_CONFIG 78      /* a configuration error: wrong PIN, missing or differing key */

/*
 * Logs into every HSM and builds g's key table from the first one in
 * service; the others must hold the same keys. HSMs that cannot be reached
 * yet start out of service and are retried; when none can, g waits
 * (gen_ready is 0) until the supervisor fills its table from the first HSM
 * that comes. 0, or BACKENDS_RETRY / BACKENDS_CONFIG with a sentence in err.
 */
int backends_open(struct backends *bs, struct daemon *d, struct gen *g, char *err,
		  size_t errlen);
/*
 * Loop thread: has the supervisor rebuild every HSM in service for g's keys
 * (a reload that changes the key list: new keys may have been put in the
 * token since libp11 listed them) and fill g's key table. Private-key work
 * waits meanwhile rather than fail. done is made active when it is over;
 * backends_reload_result then says how. -1 when a reload is already running.
 */
int backends_reload(struct backends *bs, struct gen *g, struct event *done);
/* 0 (g is in force for the HSMs) or -1 with why (the old keys stay). */
int backends_reload_result(struct backends *bs, char *why, size_t whylen);
/* Starts the supervisor thread (recovery, stuck calls). */
int backends_start(struct backends *bs);
/* Stops the supervisor (after a reload it is running, so leases no longer wait). */
void backends_stop(struct backends *bs);
/* Stops the supervisor and logs out of everything (the pools have stopped). */
void backends_close(struct backends *bs);
/* Why the first HSM out of service is out of it ("" when all are in service). */
void backends_why(struct backends *bs, char *buf, size_t len);
/* How many HSMs are in service. */
size_t backends_up(struct backends *bs);
/* 0 when private-key work would fail at once (nothing in service, no reload running). */
int backends_available(struct backends *bs);
/* 1 when an HSM call has been running longer than hsm_call_timeout (the watchdog stops). */
int backends_stuck(struct backends *bs);
/*
 * Run by the loop thread a few times a second (it never calls PKCS#11, so it
 * is never the one stuck): takes an HSM whose call runs past hsm_call_timeout
 * out of service, and restarts the daemon when a call or a rebuild has not
 * returned after three times the limit.
 */
void backends_watch(struct backends *bs);

/*
 * Worker side. The private operation on key k in an HSM in service: raw RSA
 * or, for rsa_mechanism = pkcs, PKCS#1 v1.5 or OAEP (pad)
 * decryption by the HSM; out receives k bytes (raw) or the message and
 * *out_len. After a fault the request is tried once more on another HSM in
 * service. Returns KT_OK, KT_HSM_UNAVAILABLE, KT_HSM_ERROR, or (pkcs only)
 * KT_UNWRAP_FAILED for a decryption failure, with a sentence in msg.
 */
int backend_decrypt(struct worker *w, const struct key *k, enum hsm_padding pad, const uint8_t *in,
		    size_t in_len, uint8_t *out, size_t *out_len, char *msg, size_t msglen);
/* n bytes from the random generator of an HSM in service; KT status as above. */
int backend_random(struct worker *w, uint8_t *out, size_t n, char *msg, size_t msglen);

/*
 * An administrative call (hsm_admin.c) on the HSM: fn(h, arg, ckr, msg,
 * msglen) returns 0, HSM_TAKEN or -1 with the PKCS#11 code. It is never
 * tried again elsewhere (it changes the token), and the hang watch gives it
 * extra_s seconds more than hsm_call_timeout (generating a key is slow).
 * KT_OK, KT_BAD_REQUEST (HSM_TAKEN), KT_HSM_UNAVAILABLE or KT_HSM_ERROR,
 * with a sentence in msg.
 */
typedef int backend_admin_fn(struct hsm *h, void *arg, unsigned long *ckr, char *msg, size_t msglen);
int backend_admin(struct worker *w, int64_t extra_s, backend_admin_fn *fn, void *arg, char *msg,
		  size_t msglen);

/* For info: one HSM's state, copied under its lock. */
struct backend_status {
	const char *name;
	const char *token;
	int up;
	int users;
	unsigned long faults;
	char last_error[256];
};
void backend_status(struct backend *b, struct backend_status *out);

#endif
