/*
 * Worker pools and the reply queue. The event loop submits jobs to a pool's
 * bounded queue; a worker thread runs each one and pushes it onto the reply
 * queue, which wakes the loop (one eventfd write per drain of the queue, as
 * in memcached and Tor). Two pools keep public-key work from waiting behind
 * HSM work.
 *
 * A pool with a long backlog (REPLY_BATCH_QUEUED jobs waiting per worker) rings
 * only once a few replies are queued (twice its workers, plus one): its
 * requests wait many operations in the queue anyway, and each wake-up of the
 * loop costs it tens of microseconds of CPU that the workers need
 * (docs/performance.md).
 */
#ifndef KT_WORKER_H
#define KT_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "rsa_pub.h"

struct backend;
struct daemon;
struct job;
struct key;

struct replyq {
	pthread_mutex_t mu;
	struct job *head, *tail;
	size_t len;                     /* replies queued */
	int rung;                       /* efd written since the last drain */
	int efd;                        /* eventfd the loop watches */
};

#define REPLY_BATCH_QUEUED 8    /* jobs waiting per worker before a pool's replies are batched */

int replyq_init(struct replyq *q);
void replyq_destroy(struct replyq *q);
struct pool;

/*
 * Queues j's reply, done by a worker of pool from: rings at once unless from
 * has a long backlog, then once a batch of replies is queued (NULL: at once).
 */
void replyq_push(struct replyq *q, struct job *j, const struct pool *from);
/* Takes every queued reply (oldest first) and re-arms the wake-up. */
struct job *replyq_take_all(struct replyq *q);

#define WORKER_STACK (256 * 1024)

/* One thread's own state: nothing here is shared with other threads. */
struct worker {
	struct pool *pool;
	struct daemon *d;
	int index;
	pthread_t tid;
	void *stack;                    /* locked, not dumped */
	EVP_PKEY_CTX **ctx;             /* per key and padding: encryption contexts, made on first use */
	EVP_MAC_CTX *ir_mac;            /* implicit rejection's HMAC, made on first use */
	struct backend_session *sess;   /* per HSM: this worker's own session (backend.c) */
	size_t nctx;
	unsigned long ctx_keyset;       /* the key list they were made for (struct gen) */
	_Atomic int64_t call_since_us;  /* a PKCS#11 call in progress since (0: none) ... */
	struct backend *_Atomic call_on;    /* ... on this HSM (the supervisor watches both) */
	/*
	 * What the worker's CPU went to, logged when it ends (docs/performance.md):
	 * two reads of the thread's CPU clock per PKCS#11 call (system calls,
	 * about 1 us each here; sampling fewer calls made the figure too noisy).
	 */
	uint64_t jobs;
	int64_t call_cpu_ns;            /* in PKCS#11 calls */
	int64_t call_cpu_from;          /* thread CPU when the current call began */
};

/* This thread's CPU time so far, in ns. */
int64_t thread_cpu_ns(void);

#define WORKER_SPIN_US 200      /* a worker waits this long for work before sleeping */

struct pool {
	const char *name;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	size_t depth, max_depth;
	atomic_size_t queued;           /* depth, readable without the lock (spinning workers) */
	int sleepers;                   /* workers in pthread_cond_wait */
	atomic_int stopping;            /* read by spinning workers without the lock */
	struct worker *workers;
	int nworkers;
	size_t batch;                   /* replies gathered (reply_batch) ... */
	size_t batch_at;                /* ... when this many jobs wait */
	struct replyq *replies;
	struct daemon *d;
};

/* Starts n threads. 0, or -1 if no thread could be started. */
int pool_start(struct pool *p, const char *name, int n, size_t max_depth, struct replyq *rq,
	       struct daemon *d);
/* Queues a job; -1 at once when the queue is full (the caller answers BUSY). */
int pool_submit(struct pool *p, struct job *j);
/* Runs what is queued, then joins the threads. */
void pool_stop(struct pool *p);
size_t pool_depth(struct pool *p);

/* This worker's encryption context for key k's public half with the padding (likewise kept). */
EVP_PKEY_CTX *worker_enc_ctx(struct worker *w, const struct key *k, enum rsa_padding pad);
/* This worker's HMAC context for implicit rejection (ir_mac_new), or NULL if it cannot be made. */
EVP_MAC_CTX *worker_ir_mac(struct worker *w);

#endif
