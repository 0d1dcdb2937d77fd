/*
 * One request on its way through the daemon: decoded on the event-loop
 * thread, run there or on a worker, and its reply frame written into the job
 * itself. Jobs live in OpenSSL's locked heap (mlock'ed, kept out of core
 * dumps: they hold session keys), are recycled through a free list owned by
 * the loop thread, and are wiped when released.
 */
#ifndef KT_JOB_H
#define KT_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "wire.h"

#define JOB_FRAME_INLINE 1024   /* request bodies up to this need no second allocation */
#define JOB_REPLY_INLINE 1024
#define JOB_MSG_MAX 256

struct conn;
struct key;
struct op_def;
struct peer;
struct jobpool;
struct account;

struct job {
	struct job *next;               /* queue and free-list link */
	struct jobpool *jp;             /* where it returns when released */
	struct conn *conn;
	const struct peer *peer;        /* who asked (lives as long as the connection) */
	const struct op_def *op;
	uint32_t id;
	uint8_t opcode;
	uint8_t ran;                    /* the operation's run function was called */
	uint8_t reply_public;           /* the full-size reply is in the ordinary heap (no secret) */
	struct gen *gen;                /* keys and rules it is checked against (held) */
	struct key *key;                /* the request's NAME, resolved in gen; or NULL */
	struct timespec received;       /* when its frame was complete (CLOCK_MONOTONIC): latency */
	struct timespec queued;         /* when it went to a pool (CLOCK_MONOTONIC) */
	struct account *acct;           /* the peer's uid account ... */
	size_t charged;                 /* ... and the bytes counted against it */
	struct wire_fields req;         /* request fields, pointing into frame */
	uint8_t *frame;                 /* request body (after the header) */
	size_t frame_len;
	int status;                     /* KT_OK or the error to answer */
	char msg[JOB_MSG_MAX];
	struct buf_writer reply;
	uint8_t frame_inline[JOB_FRAME_INLINE];
	uint8_t reply_inline[JOB_REPLY_INLINE];
};

struct jobpool {
	struct job *free;
	size_t nfree;
	size_t max_free;
};

void jobpool_init(struct jobpool *jp, size_t max_free);
void jobpool_destroy(struct jobpool *jp);
/* A job able to hold a request body of body_len bytes; NULL when locked memory is exhausted. */
struct job *job_new(struct jobpool *jp, size_t body_len);
/* Wipes and recycles (or frees) the job; loop thread only. */
void job_release(struct job *j);
/* The memory the job holds, for per-peer budgets. */
size_t job_size(const struct job *j);

/* Starts the success reply: header with status OK; ops then add fields. */
void job_reply_begin(struct job *j);
/* What a full-size reply holds: only public data (ordinary heap), or a secret (locked heap). */
enum reply_kind { REPLY_PUBLIC, REPLY_SECRET };
/*
 * Gives the reply a full-size frame buffer (for long listings). A public one
 * lives in the ordinary heap: the locked heap (job_memory) is shared by every
 * uid and is kept for what must not be swapped. -1 out of memory.
 */
int job_reply_big(struct job *j, enum reply_kind kind);
/* Makes room for `more` reply bytes (going full-size if the inline buffer is short); -1 out of memory. */
int job_reply_room(struct job *j, size_t more, enum reply_kind kind);
/* A public full-size reply shrunk to its length, once complete (what it holds is then charged). */
void job_reply_trim(struct job *j);
/* Marks the job failed; the reply becomes an error frame carrying msg. */
__attribute__((format(printf, 3, 4)))
void job_fail(struct job *j, int status, const char *fmt, ...);
/* Completes the reply frame (error frame if failed). */
void job_finish(struct job *j);

#endif
