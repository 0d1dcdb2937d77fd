#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon.h"
#include "job.h"
#include "implicit.h"
#include "keytab.h"
#include "log.h"
#include "ops.h"

int replyq_init(struct replyq *q)
{
	q->head = q->tail = NULL;
	q->len = 0;
	q->rung = 0;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return -1;
	pthread_mutex_init(&q->mu, NULL);
	return 0;
}

void replyq_destroy(struct replyq *q)
{
	if (q->efd >= 0)
		close(q->efd);
	q->efd = -1;
	pthread_mutex_destroy(&q->mu);
}

/*
 * How many replies to gather before waking the loop: 0 (at once) unless the
 * pool has REPLY_BATCH_QUEUED jobs waiting per worker, whose own replies then
 * bring the rest (the batch adds at most about two operations' time to a
 * request that waited eight).
 */
static size_t reply_batch(const struct pool *p)
{
	size_t waiting = atomic_load_explicit(&p->queued, memory_order_acquire);

	return waiting >= p->batch_at ? p->batch : 0;
}

/*
 * The backlog is read under the queue's lock. A push that saw a long backlog
 * and did not ring then comes, in the queue's order, before the pushes of the
 * backlog's own jobs, the last of which sees the pool empty and rings. Read
 * before the lock, a worker preempted between the two could push after that
 * last ring, and its reply waited for the next request's wake-up (a wrap went
 * unanswered for 120 s on a loaded machine).
 */
void replyq_push(struct replyq *q, struct job *j, const struct pool *from)
{
	uint64_t one = 1;
	size_t batch;
	int ring;

	j->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->len++;
	batch = from != NULL ? reply_batch(from) : 0;
	/* The loop drains the whole queue per wake-up: one ring per drain is enough. */
	ring = !q->rung && q->len >= (batch > 0 ? batch : 1);
	if (ring)
		q->rung = 1;
	pthread_mutex_unlock(&q->mu);
	if (ring && write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		abort();
}

struct job *replyq_take_all(struct replyq *q)
{
	uint64_t count;
	struct job *all;

	pthread_mutex_lock(&q->mu);
	all = q->head;
	q->head = q->tail = NULL;
	q->len = 0;
	q->rung = 0;
	/* Cleared under the lock, so a push after this point rings again. */
	if (read(q->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		abort();
	pthread_mutex_unlock(&q->mu);
	return all;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Waits a little for work before sleeping: waking a sleeping thread on another
 * core costs tens of microseconds (about 20 µs a wake-up on the reference
 * machine, docs/performance.md), more than a request's whole overhead. Under
 * load the queue is never empty and this does not run.
 */
static void spin_for_work(struct pool *p)
{
	int64_t until = now_us() + WORKER_SPIN_US;

	/* Yielding, so that a spinning worker never holds up a thread with work (the loop's). */
	while (atomic_load_explicit(&p->queued, memory_order_acquire) == 0 && !p->stopping &&
	       now_us() < until)
		sched_yield();
}

static struct job *next_job(struct pool *p)
{
	struct job *j;

	spin_for_work(p);
	pthread_mutex_lock(&p->mu);
	while (p->head == NULL && !p->stopping) {
		p->sleepers++;
		pthread_cond_wait(&p->cv, &p->mu);
		p->sleepers--;
	}
	j = p->head;
	if (j != NULL) {
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->depth--;
		atomic_store_explicit(&p->queued, p->depth, memory_order_release);
	}
	pthread_mutex_unlock(&p->mu);
	return j;
}

static void worker_cleanup(struct worker *w)
{
	for (size_t i = 0; i < w->nctx; i++)
		EVP_PKEY_CTX_free(w->ctx[i]);
	free(w->ctx);
	w->ctx = NULL;
	w->nctx = 0;
}

/* A job that waited longer than request_timeout is answered TIMEOUT, not run. */
static int expired(const struct job *j, long timeout_s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - j->queued.tv_sec > timeout_s ||
	       (now.tv_sec - j->queued.tv_sec == timeout_s && now.tv_nsec > j->queued.tv_nsec);
}

/* "kt-hsm-0", "kt-public-1": top(1), perf and scripts/bench tell the threads apart. */
static void name_thread(pthread_t t, const char *pool, int i)
{
	char name[16];      /* the kernel's limit, NUL included */

	snprintf(name, sizeof(name), "kt-%.6s-%d", pool, i % 1000);
	pthread_setname_np(t, name);
}

int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * How much of the worker's CPU the HSM's calls took and how much the daemon's
 * own work around them: the share docs/performance.md holds to 5 %.
 */
static void log_cpu(const struct worker *w)
{
	double all = (double)thread_cpu_ns(), in_calls = (double)w->call_cpu_ns;

	if (w->jobs == 0)
		return;
	log_info(&w->d->log, "%s worker %d: %llu operations, %.3f s CPU, %.3f s of it in PKCS#11 calls "
		 "(%.1f us per operation outside them)", w->pool->name, w->index,
		 (unsigned long long)w->jobs, all / 1e9, in_calls / 1e9,
		 (all - in_calls) / 1e3 / (double)w->jobs);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	long timeout = w->d->conf.limits.request_timeout;
	struct job *j;

	while ((j = next_job(w->pool)) != NULL) {
		if (j->status == KT_OK && expired(j, timeout))
			job_fail(j, KT_TIMEOUT, "the request waited more than %ld s for a worker", timeout);
		ops_run(j, w);
		w->jobs++;
		replyq_push(w->pool->replies, j, w->pool);
	}
	log_cpu(w);
	worker_cleanup(w);
	EVP_MAC_CTX_free(w->ir_mac);    /* holds the last key it was given: freed, and so wiped */
	w->ir_mac = NULL;
	free(w->sess);  /* the sessions themselves end with their HSM's C_Finalize */
	w->sess = NULL;
	return NULL;
}

/*
 * Worker stacks hold session keys and RSA results for a moment: give each
 * thread a stack that is locked in memory and left out of core dumps.
 */
static void *secret_stack(struct pool *p)
{
	void *s = mmap(NULL, WORKER_STACK, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

	if (s == MAP_FAILED)
		return NULL;
	madvise(s, WORKER_STACK, MADV_DONTDUMP);
	if (mlock(s, WORKER_STACK) != 0)
		log_warn(&p->d->log, "%s pool: cannot lock a worker stack in memory: %s", p->name,
			 strerror(errno));
	return s;
}

int pool_start(struct pool *p, const char *name, int n, size_t max_depth, struct replyq *rq,
	       struct daemon *d)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->max_depth = max_depth;
	p->replies = rq;
	p->d = d;
	/* Set before any worker reads them. */
	p->batch = 2 * (size_t)n + 1;
	p->batch_at = REPLY_BATCH_QUEUED * (size_t)n;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->workers = calloc((size_t)n, sizeof(*p->workers));
	if (p->workers == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		struct worker *w = &p->workers[p->nworkers];
		pthread_attr_t attr;
		int rc = -1;

		w->pool = p;
		w->d = d;
		w->index = i;
		w->stack = secret_stack(p);
		if (w->stack != NULL && pthread_attr_init(&attr) == 0) {
			if (pthread_attr_setstack(&attr, w->stack, WORKER_STACK) == 0)
				rc = pthread_create(&w->tid, &attr, worker_main, w);
			pthread_attr_destroy(&attr);
		}
		if (rc == 0)
			name_thread(w->tid, name, i);
		if (rc != 0) {
			log_err(&d->log, "%s pool: cannot start worker %d", name, i);
			if (w->stack != NULL)
				munmap(w->stack, WORKER_STACK);
			break;
		}
		p->nworkers++;
	}
	return p->nworkers > 0 ? 0 : -1;
}

int pool_submit(struct pool *p, struct job *j)
{
	int rc = -1;

	j->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (!p->stopping && p->depth < p->max_depth) {
		if (p->tail != NULL)
			p->tail->next = j;
		else
			p->head = j;
		p->tail = j;
		p->depth++;
		atomic_store_explicit(&p->queued, p->depth, memory_order_release);
		rc = 0;
		/* A spinning worker sees the job without a wake-up (and its system call). */
		if (p->sleepers > 0)
			pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

size_t pool_depth(struct pool *p)
{
	size_t depth;

	pthread_mutex_lock(&p->mu);
	depth = p->depth;
	pthread_mutex_unlock(&p->mu);
	return depth;
}

void pool_stop(struct pool *p)
{
	if (p->workers == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nworkers; i++) {
		pthread_join(p->workers[i].tid, NULL);
		/* The stack may still hold secrets from the last job. */
		explicit_bzero(p->workers[i].stack, WORKER_STACK);
		munmap(p->workers[i].stack, WORKER_STACK);
	}
	free(p->workers);
	p->workers = NULL;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}

/*
 * Each key has an encryption context per padding (decryption runs in
 * the HSMs). A reload that changes the key list (a new keyset) renumbers the
 * keys, so the cache starts again; its size follows the largest index seen.
 */
EVP_PKEY_CTX *worker_enc_ctx(struct worker *w, const struct key *k, enum rsa_padding pad)
{
	size_t i = k->index * RSA_PAD_COUNT + (size_t)pad;

	if (w->ctx != NULL && w->ctx_keyset != k->keyset)
		worker_cleanup(w);
	if (i >= w->nctx) {
		size_t n = i + RSA_PAD_COUNT > 16 ? i + RSA_PAD_COUNT : 16;
		EVP_PKEY_CTX **ctx = realloc(w->ctx, n * sizeof(*ctx));

		if (ctx == NULL)
			return NULL;
		memset(ctx + w->nctx, 0, (n - w->nctx) * sizeof(*ctx));
		w->ctx = ctx;
		w->nctx = n;
	}
	w->ctx_keyset = k->keyset;
	if (w->ctx[i] == NULL)
		w->ctx[i] = rsa_pub_encrypt_ctx(k->pub, pad);
	return w->ctx[i];
}

EVP_MAC_CTX *worker_ir_mac(struct worker *w)
{
	if (w->ir_mac == NULL)
		w->ir_mac = ir_mac_new();
	return w->ir_mac;
}
