/*
 * daemon/worker.c: the pools and the reply queue, with real threads and a
 * test operation in place of RSA. The test thread plays the event loop: it
 * waits on the queue's eventfd and takes the replies. Every reply must wake
 * it, however the bursts fall on the workers (a reply that waited for a batch
 * that never came was once left in the queue until the next request); a long
 * backlog's replies come in batches; a job that waited past request_timeout
 * is answered TIMEOUT without running; stopping a pool runs what is queued.
 */
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "daemon.h"
#include "job.h"
#include "keytrans_status.h"
#include "ops.h"
#include "worker.h"

#define LOOP_WAIT_MS 30000      /* far beyond any reply's time: no wake-up means none came */

struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
};

/* Work a job does: a few microseconds of it, differing from job to job. */
static void run_spin(struct job *j, struct daemon *d, struct worker *w)
{
	volatile unsigned x = 0;

	(void)d;
	(void)w;
	for (unsigned i = 0; i < (j->id % 7) * 200; i++)
		x += i;
	(void)x;
	if (j->id % 5 == 0)
		sched_yield();
}

static struct gate *the_gates;  /* run_gated's: job 1 waits at the first, the rest at the second */

/* Waits until the test opens its gate: a job that holds its worker. */
static void run_gated(struct job *j, struct daemon *d, struct worker *w)
{
	struct gate *g = &the_gates[j->id == 1 ? 0 : 1];

	(void)d;
	(void)w;
	pthread_mutex_lock(&g->mu);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static const struct op_def op_spin = { .code = 200, .place = OP_PUBLIC, .run = run_spin };
static const struct op_def op_gated = { .code = 201, .place = OP_PUBLIC, .run = run_gated };

struct fixture {
	struct daemon d;
	struct jobpool jobs;
	int nworkers;
};

static struct fixture *fixture_new(int nworkers, long request_timeout)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->d.log.dest = LOG_TO_STDERR;
	f->d.conf.limits.request_timeout = request_timeout;
	jobpool_init(&f->jobs, 64);
	assert_int_equal(replyq_init(&f->d.replies), 0);
	assert_int_equal(pool_start(&f->d.pub_pool, "public", nworkers, 1u << 16, &f->d.replies, &f->d), 0);
	assert_int_equal(f->d.pub_pool.nworkers, nworkers);
	f->nworkers = nworkers;
	return f;
}

static void fixture_free(struct fixture *f)
{
	pool_stop(&f->d.pub_pool);
	replyq_destroy(&f->d.replies);
	jobpool_destroy(&f->jobs);
	free(f);
}

static void submit(struct fixture *f, const struct op_def *op, uint32_t id)
{
	struct job *j = job_new(&f->jobs, 0);

	assert_non_null(j);
	j->op = op;
	j->id = id;
	j->status = KT_OK;
	clock_gettime(CLOCK_MONOTONIC, &j->queued);
	assert_int_equal(pool_submit(&f->d.pub_pool, j), 0);
}

/* 1 when the loop is woken within ms, 0 when not. */
static int woken(struct fixture *f, int ms)
{
	struct pollfd p = { .fd = f->d.replies.efd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* What the loop does on a wake-up: takes every reply; how many; statuses checked against want. */
static size_t take(struct fixture *f, int want_status)
{
	struct job *j = replyq_take_all(&f->d.replies);
	size_t n = 0;

	while (j != NULL) {
		struct job *next = j->next;

		assert_int_equal(j->status, want_status);
		job_release(j);
		j = next;
		n++;
	}
	return n;
}

static size_t queued_replies(struct replyq *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->len;
	pthread_mutex_unlock(&q->mu);
	return n;
}

/* Waits for n replies as the loop would: a wake-up, then everything queued. */
static void collect(struct fixture *f, size_t n, unsigned round)
{
	size_t got = 0;

	while (got < n) {
		if (!woken(f, LOOP_WAIT_MS))
			fail_msg("round %u: %zu of %zu replies came; the rest never woke the loop "
				 "(%zu queued unrung)", round, got, n, queued_replies(&f->d.replies));
		got += take(f, KT_OK);
	}
	assert_int_equal(got, n);
}

/*
 * Bursts of every size around the batching threshold (REPLY_BATCH_QUEUED per
 * worker), on more workers than cores so that they are preempted anywhere:
 * every burst's replies all reach the loop.
 */
static void test_every_reply_wakes_the_loop(void **state)
{
	struct fixture *f;
	uint32_t id = 1;

	(void)state;
	for (int nworkers = 1; nworkers <= 6; nworkers++) {
		f = fixture_new(nworkers, 60);
		for (unsigned round = 0; round < 4000; round++) {
			size_t burst = 1 + (round * 7) % (REPLY_BATCH_QUEUED * (size_t)nworkers * 3);

			for (size_t i = 0; i < burst; i++)
				submit(f, &op_spin, id++);
			collect(f, burst, round);
			/* Nothing more may come: no reply was counted twice, none is left over. */
			assert_int_equal(queued_replies(&f->d.replies), 0);
		}
		fixture_free(f);
	}
}

/*
 * Replies to a long backlog are gathered: the one worker's first reply, made
 * while the whole backlog waits, does not wake the loop on its own (the
 * worker is then held by the next job, so nothing else can ring); once the
 * worker goes on, every reply arrives.
 */
static void test_backlog_replies_come_in_batches(void **state)
{
	struct gate g[2] = { { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 },
			     { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 } };
	size_t backlog = REPLY_BATCH_QUEUED * 4;
	struct fixture *f = fixture_new(1, 60);

	(void)state;
	the_gates = g;
	for (uint32_t id = 1; id <= backlog + 1; id++)
		submit(f, &op_gated, id);
	gate_open(&g[0]);
	for (int ms = 0; queued_replies(&f->d.replies) == 0; ms++) {
		assert_true(ms < LOOP_WAIT_MS);
		poll(NULL, 0, 1);
	}
	assert_int_equal(queued_replies(&f->d.replies), 1);
	assert_false(woken(f, 0));
	gate_open(&g[1]);
	collect(f, backlog + 1, 0);
	fixture_free(f);
}

/* A job that waited longer than request_timeout is answered TIMEOUT and not run. */
static void test_expired_job_is_answered_timeout(void **state)
{
	struct gate g[2] = { { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1 },
			     { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1 } };
	struct fixture *f = fixture_new(1, 1);
	struct job *j = job_new(&f->jobs, 0);

	(void)state;
	the_gates = g;
	assert_non_null(j);
	j->op = &op_gated;
	j->id = 7;
	j->status = KT_OK;
	clock_gettime(CLOCK_MONOTONIC, &j->queued);
	j->queued.tv_sec -= 3;          /* queued three seconds ago */
	assert_int_equal(pool_submit(&f->d.pub_pool, j), 0);
	assert_true(woken(f, LOOP_WAIT_MS));
	j = replyq_take_all(&f->d.replies);
	assert_non_null(j);
	assert_null(j->next);
	assert_int_equal(j->status, KT_TIMEOUT);
	assert_int_equal(j->ran, 0);
	assert_non_null(strstr(j->msg, "waited more than 1 s"));
	job_release(j);
	fixture_free(f);
}

/* pool_stop runs every queued job before the threads end. */
static void test_stop_runs_what_is_queued(void **state)
{
	struct fixture *f = fixture_new(2, 60);

	(void)state;
	for (uint32_t id = 1; id <= 50; id++)
		submit(f, &op_spin, id);
	pool_stop(&f->d.pub_pool);
	assert_int_equal(take(f, KT_OK), 50);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_reply_wakes_the_loop),
		cmocka_unit_test(test_backlog_replies_come_in_batches),
		cmocka_unit_test(test_expired_job_is_answered_timeout),
		cmocka_unit_test(test_stop_runs_what_is_queued),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
