/*
 * One request on its way through the daemon: decoded on the event-loop
 * thread, run there or on a worker, and its reply frame written into the job
 * itself. Jobs are recycled through a free list owned by the loop thread;
 * request and reply bytes are wiped when a job is released (they may hold
 * session keys).
 */
#ifndef KT_JOB_H
#define KT_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wire.h"

#define JOB_FRAME_INLINE 4096
#define JOB_REPLY_INLINE 4096
#define JOB_MSG_MAX 256

struct conn;
struct key;
struct op_def;

struct jobpool;

struct job {
	struct job *next;               /* queue and free-list link */
	struct jobpool *jp;             /* where it returns when released */
	struct conn *conn;
	const struct op_def *op;
	uint32_t id;
	uint8_t opcode;
	struct key *key;                /* the request's NAME, resolved; or NULL */
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
/* A job able to hold a request body of body_len bytes; NULL when out of memory. */
struct job *job_new(struct jobpool *jp, size_t body_len);
/* Wipes and recycles (or frees) the job; loop thread only. */
void job_release(struct job *j);

/* Starts the success reply: header with status OK; ops then add fields. */
void job_reply_begin(struct job *j);
/* Gives the reply a full-size frame buffer (for long listings). -1 out of memory. */
int job_reply_big(struct job *j);
/* Marks the job failed; the reply becomes an error frame carrying msg. */
__attribute__((format(printf, 3, 4)))
void job_fail(struct job *j, int status, const char *fmt, ...);
/* Completes the reply frame (error frame if failed). */
void job_finish(struct job *j);

#endif
