#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

#include "accounts.h"
#include "daemon.h"
#include "gen.h"
#include "job.h"
#include "log.h"
#include "ops.h"
#include "peer.h"
#include "stats.h"
#include "wire.h"
#include "worker.h"

struct conn {
	struct conn *prev, *next;       /* open connections */
	struct server *srv;
	struct bufferevent *bev;        /* NULL once closed */
	struct peer peer;               /* who connected (SO_PEERCRED at accept) */
	struct account *acct;           /* the peer uid's connections and memory */
	struct event *frame_timer;      /* a started frame must be complete in time */
	struct event *backlog_timer;    /* ends a PAUSE_BACKLOG (made on first use) */
	unsigned pending;               /* jobs on a worker; the conn lives until they return */
	unsigned hsm_pending;           /* of which on the HSM pool */
	struct conn *dead_next;         /* the graveyard: closed, waiting to be freed */
	int closing;                    /* close once the replies are written */
	int paused;                     /* reading stopped for back-pressure: PAUSE_* bits, why */
	unsigned denied_run;            /* answers DENIED in a row */
};

struct server {
	struct daemon *d;
	const struct limits *lim;
	struct evconnlistener *listener;
	int activated;                  /* the socket is systemd's: do not remove it */
	struct event *wake;             /* the reply queue's eventfd */
	struct event *resume;           /* memory came free: paused connections may read again */
	struct event *drain_timer;
	struct accounts *accounts;      /* the daemon's: jobs refer to them after we are gone */
	unsigned hsm_in_flight;         /* jobs on the HSM pool (see server_hsm_in_flight) */
	unsigned pub_in_flight;         /* jobs on the public pool */
	struct log_batch audit;         /* audit records of the replies delivered in one go */
	time_t refusal_logged_at;       /* refused connections: one log line a second */
	unsigned long refusals_unlogged;
	struct conn *conns;
	size_t nconns;                  /* open */
	size_t nzombies;                /* closed, not yet freed (jobs still out, or buried) */
	struct conn *graveyard;         /* closed connections no job refers to any more */
	struct event *reaper;           /* frees the graveyard once the callbacks have returned */
	int draining;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void conn_read(struct conn *c);

static void conn_unlink(struct conn *c)
{
	struct server *s = c->srv;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void maybe_finish_drain(struct server *s)
{
	if (s->draining && s->nconns == 0 && s->nzombies == 0)
		event_base_loopexit(s->d->base, NULL);
}

/*
 * A closed connection is freed once no job refers to it, and never under a
 * callback that may still use it: it goes to the graveyard, which the reaper
 * empties after the current callbacks have returned.
 */
static void conn_bury_if_done(struct conn *c)
{
	struct server *s = c->srv;

	if (c->bev != NULL || c->pending > 0 || c->dead_next != NULL || s->graveyard == c)
		return;
	c->dead_next = s->graveyard;
	s->graveyard = c;
	event_active(s->reaper, 0, 0);
}

static void free_graveyard(struct server *s)
{
	while (s->graveyard != NULL) {
		struct conn *c = s->graveyard;

		s->graveyard = c->dead_next;
		s->nzombies--;
		free(c);
	}
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	free_graveyard(s);
	maybe_finish_drain(s);
}

/*
 * Closing a socket with unread input makes the kernel reset the connection,
 * and the peer may then lose replies it has not read yet: read the rest away
 * first (bounded, never blocking).
 */
static void discard_unread(int fd)
{
	char sink[4096];

	for (int i = 0; i < 256; i++)
		if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
			break;
	OPENSSL_cleanse(sink, sizeof(sink));    /* request bytes: a WRAP's SESSION_KEY, say */
}

/*
 * Moves len bytes out of the input buffer into dst (NULL: drops them),
 * wiping libevent's copy on the way: a request may hold a session key or a
 * private key, whether it is served, refused or left unread at a close.
 */
static void take_bytes(struct evbuffer *in, uint8_t *dst, size_t len)
{
	while (len > 0) {
		struct evbuffer_iovec v;
		size_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < len ? v.iov_len : len;
		if (dst != NULL) {
			memcpy(dst, v.iov_base, n);
			dst += n;
		}
		OPENSSL_cleanse(v.iov_base, n);
		evbuffer_drain(in, n);
		len -= n;
	}
}

static void conn_close(struct conn *c)
{
	struct server *s = c->srv;

	if (c->bev == NULL)
		return;
	if (c->closing)
		discard_unread(bufferevent_getfd(c->bev));
	take_bytes(bufferevent_get_input(c->bev), NULL,
		   evbuffer_get_length(bufferevent_get_input(c->bev)));
	/* Replies still in the output buffer are released (and wiped) by its cleanup callbacks. */
	bufferevent_free(c->bev);
	c->bev = NULL;
	event_free(c->frame_timer);
	c->frame_timer = NULL;
	if (c->backlog_timer != NULL)
		event_free(c->backlog_timer);
	c->backlog_timer = NULL;
	conn_unlink(c);
	s->nconns--;
	c->acct->conns--;
	accounts_put(s->accounts, c->acct);
	s->nzombies++;
	conn_bury_if_done(c);
}

static size_t out_len(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Closes now if nothing is left to answer or write, else once it is. */
static void conn_close_when_done(struct conn *c)
{
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	if (c->pending == 0 && out_len(c) == 0)
		conn_close(c);
}

/* Bytes the peer has sent that the daemon has not read yet (in the socket). */
static int unread_in_socket(struct conn *c)
{
	int n = 0;

	return ioctl(bufferevent_getfd(c->bev), FIONREAD, &n) == 0 && n > 0;
}

/*
 * While the daemon stops, a connection is closed once its requests are
 * answered, its answers written and nothing more is waiting to be read (a
 * partial frame left in the input was never a request).
 */
static void drain_close_if_done(struct conn *c)
{
	if (!c->srv->draining || c->bev == NULL || c->closing || c->pending > 0 || out_len(c) > 0)
		return;
	if (c->paused || !unread_in_socket(c))
		conn_close_when_done(c);
}

/*
 * A job's memory is free again: refund the peer's account. This may run from
 * a buffer's cleanup after the connection is gone; it touches only the job
 * and the account.
 */
static void job_done(struct job *j)
{
	if (j->acct != NULL)
		account_refund(j->acct, j->charged);
	gen_release(j->gen);
	j->gen = NULL;
	job_release(j);
}

static void reply_written(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	job_done(arg);
}

/* The reply is built: what the job holds now (a long listing, say) is charged to its uid too. */
static void recharge(struct job *j)
{
	size_t now;

	job_reply_trim(j);
	now = job_size(j);
	if (j->acct != NULL && now > j->charged) {
		account_charge(j->acct, now - j->charged);
		j->charged = now;
	}
}

/*
 * An answer waiting in a connection's output, detached from its job so that
 * the job's block goes back to the pool at once: a client slow to read then
 * holds only its answers' bytes, charged to its uid, not a job each.
 */
struct sent {
	struct account *acct;
	size_t charged;
	int secret;                     /* locked heap, wiped when written or dropped */
	uint8_t data[];
};

static void sent_written(const void *data, size_t len, void *arg)
{
	struct sent *o = arg;

	(void)data;
	(void)len;
	if (o->acct != NULL)
		account_refund(o->acct, o->charged);
	if (o->secret)
		OPENSSL_secure_clear_free(o, o->charged);
	else
		free(o);
}

/* Only answers that can carry no secret may wait in the ordinary heap. */
static int reply_secret(const struct job *j)
{
	switch (j->opcode) {
	case WIRE_OP_INFO:
	case WIRE_OP_KEYS:
	case WIRE_OP_PUBKEY:
	case WIRE_OP_STATS:
	case WIRE_OP_KEYGEN:
	case WIRE_OP_IMPORT:
		return 0;
	default:
		return j->status == KT_OK;      /* an error answer holds only its message */
	}
}

/* The reply copied out of the job, or NULL when memory is short (the job then stays). */
static struct sent *sent_new(const struct job *j)
{
	size_t size = sizeof(struct sent) + j->reply.len;
	int secret = reply_secret(j);
	struct sent *o = secret ? OPENSSL_secure_malloc(size) : malloc(size);

	if (o == NULL)
		return NULL;
	o->acct = j->acct;
	o->secret = secret;
	o->charged = secret ? OPENSSL_secure_actual_size(o) : size;
	memcpy(o->data, j->reply.p, j->reply.len);
	if (o->acct != NULL)
		account_charge(o->acct, o->charged);
	return o;
}

/* Queues the reply on the connection's output; the job is released here or once it is written. */
static int queue_reply(struct conn *c, struct job *j)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct sent *o = sent_new(j);

	if (o == NULL) {
		recharge(j);
		return evbuffer_add_reference(out, j->reply.p, j->reply.len, reply_written, j);
	}
	if (evbuffer_add_reference(out, o->data, j->reply.len, sent_written, o) != 0) {
		sent_written(NULL, 0, o);
		return -1;
	}
	job_done(j);
	return 0;
}

/* The answer counts once it leaves the daemon's hands, whether or not the peer is still there. */
static void count_answer(struct server *s, const struct job *j)
{
	stats_answered(&s->d->stats, j->opcode, j->status, stats_elapsed_ns(&j->received));
}


/*
 * A connection whose requests keep being refused has nothing to do here but
 * fill the log and hold a connection slot: after this many in a row it is
 * closed (the refusals are answered first).
 */
#define DENIED_IN_A_ROW_MAX 32

static void note_refusal(struct conn *c, int status)
{
	if (status != KT_DENIED) {
		c->denied_run = 0;
		return;
	}
	if (++c->denied_run != DENIED_IN_A_ROW_MAX || c->bev == NULL || c->closing)
		return;
	log_warn(&c->srv->d->log, "uid %u: %d requests in a row refused; closing its connection",
		 (unsigned)c->peer.uid, DENIED_IN_A_ROW_MAX);
	conn_close_when_done(c);
}

static void send_reply(struct conn *c, struct job *j)
{
	int status = j->status;

	count_answer(c->srv, j);
	if (queue_reply(c, j) != 0) {
		job_done(j);
		conn_close(c);
		return;
	}
	note_refusal(c, status);
}

/* An error answered without a job (framing problems). */
static void send_error(struct conn *c, uint8_t op, uint32_t id, int status, const char *msg)
{
	uint8_t frame[512];
	struct buf_writer w;

	/* Answered in the callback that read the frame: no time to speak of. */
	stats_answered(&c->srv->d->stats, ops_find(op) != NULL ? op : 0, status, 0);
	buf_writer_init(&w, frame, sizeof(frame));
	wire_begin(&w, op, (uint16_t)status, id);
	wire_put_str(&w, WIRE_T_MESSAGE, msg);
	if (wire_end(&w) == 0)
		bufferevent_write(c->bev, frame, w.len);
}

/* Why a connection stopped reading; each cause has its own mark to resume at. */
enum {
	PAUSE_INFLIGHT = 1,     /* max_inflight requests on workers; resumes at half */
	PAUSE_OUTPUT = 2,       /* CONN_OUT_HIGH of answers unwritten; resumes at CONN_OUT_LOW */
	PAUSE_ACCOUNT = 4,      /* the uid's job memory share; resumes at 3/4 of it */
	PAUSE_BACKLOG = 8,      /* BACKLOG_CONN_HIGH HSM jobs out while the HSM's queue is long;
				   resumes at half of either, or after BACKLOG_PAUSE_MS */
};

/*
 * A connection with this many HSM operations out while REPLY_BATCH_QUEUED per
 * HSM worker wait in the queue, and nothing more in its socket, is not read
 * again until half of them are answered (or the queue is half as long, or
 * BACKLOG_PAUSE_MS have passed, for an HSM that answers nothing): its next
 * requests would only join a queue the HSM is far behind on, and reading them
 * one by one as they arrive costs the loop a wake-up each
 * (docs/performance.md); then those that came meanwhile are read together.
 */
#define BACKLOG_CONN_HIGH 8
#define BACKLOG_PAUSE_MS 50

static size_t hsm_waiting(const struct server *s)
{
	return atomic_load_explicit(&s->d->hsm_pool.queued, memory_order_relaxed);
}

static size_t hsm_long_queue(const struct server *s)
{
	return REPLY_BATCH_QUEUED * (size_t)s->d->hsm_pool.nworkers;
}

static int over_limits(const struct conn *c)
{
	return (c->pending >= (unsigned)c->srv->lim->max_inflight ? PAUSE_INFLIGHT : 0) |
	       (out_len(c) >= CONN_OUT_HIGH ? PAUSE_OUTPUT : 0) |
	       (account_over(c->acct) ? PAUSE_ACCOUNT : 0);
}

static void pause_for(struct conn *c, int why)
{
	if (c->paused == 0)
		bufferevent_disable(c->bev, EV_READ);
	c->paused |= why;
}

static void pause_if_needed(struct conn *c)
{
	int why = over_limits(c);

	if (why != 0)
		pause_for(c, why);
}

/* Only the causes that stopped the connection hold it back, each until its own low mark. */
static int still_held(const struct conn *c)
{
	return over_limits(c) != 0 ||
	       ((c->paused & PAUSE_INFLIGHT) && c->pending > (unsigned)c->srv->lim->max_inflight / 2) ||
	       ((c->paused & PAUSE_OUTPUT) && out_len(c) > CONN_OUT_LOW) ||
	       ((c->paused & PAUSE_ACCOUNT) && !account_relieved(c->acct)) ||
	       ((c->paused & PAUSE_BACKLOG) && c->hsm_pending > BACKLOG_CONN_HIGH / 2 &&
		hsm_waiting(c->srv) >= hsm_long_queue(c->srv) / 2);
}

static void resume_if_possible(struct conn *c)
{
	if (c->paused && !c->closing && !still_held(c)) {
		c->paused = 0;
		bufferevent_enable(c->bev, EV_READ);
		conn_read(c);   /* frames may already be buffered; no new data will announce them */
	}
}

static void on_backlog_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (c->bev == NULL || !(c->paused & PAUSE_BACKLOG))
		return;
	c->paused &= ~PAUSE_BACKLOG;
	if (c->paused == 0 && !c->closing) {
		bufferevent_enable(c->bev, EV_READ);
		conn_read(c);
	}
}

/*
 * After a read: stop reading for a while when the HSM is far behind (see
 * above), but only once the socket is empty: what the client has already sent
 * is taken in whole, so only its later requests wait in the socket.
 */
static void pause_for_backlog(struct conn *c)
{
	struct timeval tv = { 0, BACKLOG_PAUSE_MS * 1000 };

	/* Not while draining: then every connection is read to its end (server_drain). */
	if (c->bev == NULL || c->closing || c->paused || c->srv->draining ||
	    c->hsm_pending < BACKLOG_CONN_HIGH || hsm_waiting(c->srv) < hsm_long_queue(c->srv) ||
	    unread_in_socket(c))
		return;
	if (c->backlog_timer == NULL &&
	    (c->backlog_timer = evtimer_new(c->srv->d->base, on_backlog_timeout, c)) == NULL)
		return;         /* no timer, no pause: reading on costs time, not correctness */
	pause_for(c, PAUSE_BACKLOG);
	evtimer_add(c->backlog_timer, &tv);
}

static struct pool *pool_for(struct daemon *d, const struct op_def *op)
{
	return op->place == OP_PRIVATE ? &d->hsm_pool : &d->pub_pool;
}

/* Runs or queues one complete request whose header is h. */
static void dispatch(struct conn *c, const struct wire_hdr *h, const struct op_def *op)
{
	struct daemon *d = c->srv->d;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct job *j = job_new(&d->jobs, h->len - (WIRE_HDR_LEN - 4));

	if (j == NULL) {
		take_bytes(in, NULL, h->len + 4);
		send_error(c, h->op, h->id, KT_BUSY, "the memory for requests in flight is exhausted");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &j->received);
	evbuffer_drain(in, WIRE_HDR_LEN);
	take_bytes(in, j->frame, j->frame_len);
	j->conn = c;
	j->peer = &c->peer;
	j->op = op;
	j->id = h->id;
	j->opcode = h->op;
	j->acct = c->acct;
	j->gen = gen_hold(d->gen);
	j->charged = job_size(j);
	account_charge(c->acct, j->charged);
	if (h->status != 0)
		job_fail(j, KT_BAD_REQUEST, "a request's status must be 0, not %u", h->status);
	else
		ops_check(j, d);
	/* With no HSM in service a private operation fails at once rather than waiting. */
	if (j->status == KT_OK && op->place == OP_PRIVATE && !backends_available(&d->hsms))
		job_fail(j, KT_HSM_UNAVAILABLE, "no HSM is in service; try again later");
	if (j->status != KT_OK || op->place == OP_INLINE) {
		ops_run_inline(j, d);
		send_reply(c, j);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &j->queued);
	if (pool_submit(pool_for(d, op), j) != 0) {
		job_fail(j, KT_BUSY, "too many requests queued; try again");
		job_finish(j);
		send_reply(c, j);
		return;
	}
	c->pending++;
	if (op->place == OP_PRIVATE) {
		c->hsm_pending++;
		c->srv->hsm_in_flight++;
	} else
		c->srv->pub_in_flight++;
}

/*
 * The frame's length, judged as soon as its 4 bytes are here: a bad one is
 * answered at once (op and id 0: the rest of the header may never come) and
 * the connection closed, since the stream cannot be resynchronised. 0 when
 * the length is good, -1 otherwise.
 */
static int frame_length(struct conn *c, struct evbuffer *in, uint32_t *len)
{
	uint8_t raw[4];
	struct buf_reader r;
	int st;

	if (evbuffer_copyout(in, raw, sizeof(raw)) != (ssize_t)sizeof(raw))
		return -1;
	buf_reader_init(&r, raw, sizeof(raw));
	buf_get_u32be(&r, len);
	st = wire_check_len(*len);
	if (st == KT_OK)
		return 0;
	send_error(c, 0, 0, st, st == KT_FRAME_TOO_LARGE
		   ? "frame larger than 65536 bytes" : "frame length below the 12-byte header");
	conn_close_when_done(c);
	return -1;
}

/* Handles the frame at the front of the input; 0 to go on, -1 to stop reading. */
static int handle_frame(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	uint8_t hdr[WIRE_HDR_LEN];
	const struct op_def *op;
	struct buf_reader r;
	struct wire_hdr h;
	uint32_t len;

	if (frame_length(c, in, &len) != 0)
		return -1;
	if (evbuffer_get_length(in) < (size_t)len + 4) {
		bufferevent_setwatermark(c->bev, EV_READ, (size_t)len + 4, CONN_IN_HIGH);
		return -1;
	}
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_IN_HIGH);
	evbuffer_copyout(in, hdr, sizeof(hdr));
	buf_reader_init(&r, hdr, sizeof(hdr));
	wire_get_hdr(&r, &h);
	op = ops_find(h.op);
	if (h.version != WIRE_VERSION || op == NULL || c->srv->draining) {
		take_bytes(in, NULL, (size_t)h.len + 4);
		if (h.version != WIRE_VERSION)
			send_error(c, h.op, h.id, KT_BAD_VERSION, "protocol version 1 expected");
		else if (op == NULL)
			send_error(c, h.op, h.id, KT_UNKNOWN_OP, "unknown operation");
		else
			send_error(c, h.op, h.id, KT_SHUTTING_DOWN, "the daemon is shutting down");
		return 0;
	}
	/*
	 * The uid's share of the job memory is in use (maybe by its other connections):
	 * this connection waits too, before it takes any; else N connections of one uid
	 * would overdraw the share by N frames and could exhaust job_memory for everyone.
	 */
	if (account_over(c->acct)) {
		pause_for(c, PAUSE_ACCOUNT);
		return -1;
	}
	dispatch(c, &h, op);
	return 0;
}

/*
 * A frame that has started must be complete within request_timeout, however
 * slowly its bytes trickle in (slow-loris clients).
 */
static void arm_frame_timer(struct conn *c)
{
	struct timeval tv = { c->srv->lim->request_timeout, 0 };
	int partial = !c->closing && !c->paused &&
		      evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;

	if (partial && !evtimer_pending(c->frame_timer, NULL))
		evtimer_add(c->frame_timer, &tv);
	else if (!partial)
		evtimer_del(c->frame_timer);
}

static void conn_read(struct conn *c)
{
	while (c->bev != NULL && !c->closing && !c->paused &&
	       evbuffer_get_length(bufferevent_get_input(c->bev)) >= 4) {
		if (handle_frame(c) != 0)
			break;
		if (c->bev != NULL && !c->closing)
			pause_if_needed(c);
	}
	if (c->bev != NULL)
		arm_frame_timer(c);
}

static void on_frame_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	log_warn(&c->srv->d->log, "uid %u pid %d: no complete request in %ld s, closing",
		 (unsigned)c->peer.uid, (int)c->peer.pid, c->srv->lim->request_timeout);
	conn_close(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_read(arg);
	pause_for_backlog(arg);
	drain_close_if_done(arg);
}

/* After a reply went out or a job came back: close, or read again when below the limits. */
static void conn_progress(struct conn *c)
{
	if (c->bev != NULL && c->closing) {
		if (c->pending == 0 && out_len(c) == 0)
			conn_close(c);
	} else if (c->bev != NULL) {
		resume_if_possible(c);
		drain_close_if_done(c);
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_progress(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    (c->pending > 0 || out_len(c) > 0)) {
		/*
		 * Not idle: it waits for its answers, on a worker or not yet written (a slow
		 * reader is the write timeout's business). libevent disabled reading; turn it
		 * back on.
		 */
		bufferevent_enable(c->bev, EV_READ);
	} else if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* At end of input, answer what the peer asked, then close. */
		conn_close_when_done(c);
	} else {
		if (what & BEV_EVENT_TIMEOUT)
			log_warn(&c->srv->d->log, "uid %u pid %d: %s, closing", (unsigned)c->peer.uid,
				 (int)c->peer.pid, (what & BEV_EVENT_WRITING)
				 ? "replies not read in time" : "idle too long");
		conn_close(c);
	}
}

/*
 * Logs a refused connection, at most one line a second: a local user must not
 * be able to flood the log by connecting in a loop. The line says how many
 * were refused since the previous one.
 */
static void log_refusal(struct server *s, uid_t uid, const char *why, unsigned long n)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec == s->refusal_logged_at) {
		s->refusals_unlogged++;
		return;
	}
	log_warn(&s->d->log, "connection from uid %u refused: %s %lu open (%lu more refused since "
		 "the last such line)", (unsigned)uid, why, n, s->refusals_unlogged);
	s->refusal_logged_at = now.tv_sec;
	s->refusals_unlogged = 0;
}

/*
 * Tells a refused peer why, in one BUSY frame (op and id 0: it has sent no
 * request yet), before the connection is closed. The socket is new and its
 * buffer empty, so the short frame goes out whole or not at all.
 */
static void refuse(int fd, const char *why)
{
	uint8_t frame[256];
	struct buf_writer w;

	buf_writer_init(&w, frame, sizeof(frame));
	wire_begin(&w, 0, KT_BUSY, 0);
	wire_put_str(&w, WIRE_T_MESSAGE, why);
	if (wire_end(&w) == 0 && send(fd, frame, w.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return;     /* the peer is gone already: nothing to tell */
	discard_unread(fd);     /* so that the close does not reset the answer away */
}

/* Refuses a connection over a limit (answered BUSY, then closed); 0 when admitted. */
static int admit(struct server *s, int fd, const struct peer *p, struct account **acct)
{
	char why[160];

	if (s->nconns >= (size_t)s->lim->max_connections) {
		log_refusal(s, p->uid, "the daemon has", (unsigned long)s->nconns);
		snprintf(why, sizeof(why), "keytransd has %zu connections open, its limit "
			 "(max_connections); try again later", s->nconns);
		refuse(fd, why);
		return -1;
	}
	*acct = accounts_get(s->accounts, p->uid);
	if (*acct == NULL)
		return -1;
	if ((*acct)->conns >= (unsigned)s->lim->max_connections_per_uid) {
		log_refusal(s, p->uid, "it has", (*acct)->conns);
		snprintf(why, sizeof(why), "uid %u has %u connections open, its limit "
			 "(max_connections_per_uid); close some first", (unsigned)p->uid, (*acct)->conns);
		refuse(fd, why);
		accounts_put(s->accounts, *acct);
		return -1;
	}
	return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct server *s = arg;
	struct timeval idle = { s->lim->idle_timeout, 0 }, write = { s->lim->request_timeout, 0 };
	struct account *acct;
	struct conn *c = calloc(1, sizeof(*c));

	(void)l;
	(void)sa;
	(void)socklen;
	if (c == NULL || peer_identify(fd, &c->peer) != 0 || admit(s, fd, &c->peer, &acct) != 0) {
		s->d->stats.refused++;
		close(fd);
		free(c);
		return;
	}
	c->srv = s;
	c->acct = acct;
	c->bev = bufferevent_socket_new(s->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->frame_timer = evtimer_new(s->d->base, on_frame_timeout, c);
	if (c->bev == NULL || c->frame_timer == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->frame_timer != NULL)
			event_free(c->frame_timer);
		accounts_put(s->accounts, acct);
		free(c);
		s->d->stats.refused++;
		return;
	}
	s->d->stats.accepted++;
	acct->conns++;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_OUT_LOW, 0);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_IN_HIGH);
	bufferevent_set_timeouts(c->bev, &idle, &write);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct server *s = arg;

	(void)l;
	log_warn(&s->d->log, "accept failed: %s", strerror(errno));
}

static void deliver(struct job *j)
{
	struct conn *c = j->conn;

	c->pending--;
	ops_audit(j, c->srv->d, &c->srv->audit);
	if (j->op->place == OP_PRIVATE) {
		c->hsm_pending--;
		c->srv->hsm_in_flight--;
	} else {
		c->srv->pub_in_flight--;
	}
	if (c->bev == NULL) {
		count_answer(c->srv, j);
		job_done(j);
		conn_bury_if_done(c);
		return;
	}
	send_reply(c, j);
	conn_progress(c);
}

void server_flush_replies(struct server *s)
{
	struct job *j = replyq_take_all(&s->d->replies);

	while (j != NULL) {
		struct job *next = j->next;

		deliver(j);
		j = next;
	}
	log_flush(&s->d->log, &s->audit);
}

static void on_replies(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	server_flush_replies(arg);
}

static void wake_resume(void *arg)
{
	struct server *s = arg;

	event_active(s->resume, 0, 0);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct conn *c, *next;

	(void)fd;
	(void)what;
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;     /* resuming may close c, which unlinks it */
		resume_if_possible(c);
	}
}

/* The socket systemd passed: exactly one listening Unix stream socket. */
static int activated_socket(char *err, size_t errlen)
{
	int n = sd_listen_fds(1);

	if (n <= 0)
		return n == 0 ? -2 : -1;
	if (n != 1 || sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
		snprintf(err, errlen, "systemd passed %d sockets; expected one listening Unix stream socket",
			 n);
		return -1;
	}
	if (evutil_make_socket_nonblocking(SD_LISTEN_FDS_START) != 0) {
		snprintf(err, errlen, "cannot make the activated socket non-blocking");
		return -1;
	}
	return SD_LISTEN_FDS_START;
}

/* An existing socket file: refuse if a daemon answers on it, else remove it. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, live;

	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	if (live) {
		snprintf(err, errlen, "another daemon is listening on %s", path);
		return -1;
	}
	unlink(path);
	return 0;
}

static int listen_socket(const struct config *conf, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(conf->socket) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is longer than %zu bytes", conf->socket,
			 sizeof(sa.sun_path) - 1);
		return -1;
	}
	if (clear_stale(conf->socket, err, errlen) != 0)
		return -1;
	strcpy(sa.sun_path, conf->socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Nobody may connect before the configured mode is in place. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(conf->socket, conf->socket_mode) != 0 || listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", conf->socket, strerror(errno));
		umask(old);
		close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

int server_start(struct daemon *d, struct server **out, char *err, size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	int fd;

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->d = d;
	s->lim = &d->conf.limits;
	s->accounts = &d->accounts;
	s->accounts->budget = (size_t)s->lim->job_memory_per_uid * 1024;
	s->accounts->relief = wake_resume;
	s->accounts->arg = s;
	fd = activated_socket(err, errlen);
	s->activated = fd >= 0;
	if (fd == -2)
		fd = listen_socket(&d->conf, err, errlen);
	if (fd < 0) {
		free(s);
		return -1;
	}
	snprintf(s->path, sizeof(s->path), "%s", s->activated ? "(socket from systemd)" : d->conf.socket);
	/* Backlog 0: the socket already listens with SOMAXCONN; -1 would re-listen with 128. */
	s->listener = evconnlistener_new(d->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
					 0, fd);
	s->wake = event_new(d->base, d->replies.efd, EV_READ | EV_PERSIST, on_replies, s);
	s->resume = event_new(d->base, -1, 0, on_resume, s);
	s->reaper = event_new(d->base, -1, 0, on_reap, s);
	if (s->listener == NULL || s->wake == NULL || s->resume == NULL || s->reaper == NULL ||
	    event_add(s->wake, NULL) != 0) {
		snprintf(err, errlen, "cannot set up the event loop");
		if (s->listener == NULL)
			close(fd);
		server_free(s);
		return -1;
	}
	evconnlistener_set_error_cb(s->listener, on_accept_error);
	*out = s;
	return 0;
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	log_warn(&s->d->log, "drain timeout: %zu connections still busy, exiting", s->nconns + s->nzombies);
	event_base_loopexit(s->d->base, NULL);
}

int server_listen_fd(const struct server *s)
{
	return s->listener != NULL ? evconnlistener_get_fd(s->listener) : -1;
}

unsigned server_hsm_in_flight(const struct server *s)
{
	return s->hsm_in_flight;
}

unsigned server_in_flight(const struct server *s, const struct pool *p)
{
	return p == &s->d->hsm_pool ? s->hsm_in_flight : s->pub_in_flight;
}

size_t server_connections(const struct server *s)
{
	return s->nconns;
}

int server_activated(const struct server *s)
{
	return s->activated;
}

void server_drain(struct server *s)
{
	struct timeval tv = { DRAIN_TIMEOUT_S, 0 };
	struct conn *c, *next;

	if (s->draining)
		return;
	s->draining = 1;
	if (s->listener != NULL)
		evconnlistener_disable(s->listener);
	/*
	 * Every complete request a connection has sent is read and answered
	 * (SHUTTING_DOWN from now on), so that a request without an answer is one
	 * that was never read: the client can tell what to send again.
	 */
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->closing)
			continue;
		c->paused = 0;
		bufferevent_enable(c->bev, EV_READ);
		conn_read(c);
		if (c->bev != NULL)
			drain_close_if_done(c);
	}
	s->drain_timer = evtimer_new(s->d->base, on_drain_timeout, s);
	if (s->drain_timer != NULL)
		evtimer_add(s->drain_timer, &tv);
	maybe_finish_drain(s);
}

void server_free(struct server *s)
{
	if (s == NULL)
		return;
	while (s->conns != NULL)
		conn_close(s->conns);
	free_graveyard(s);
	if (s->nzombies > 0)
		log_warn(&s->d->log, "%zu connections still had requests on workers", s->nzombies);
	if (s->listener != NULL) {
		evconnlistener_free(s->listener);
		if (!s->activated)
			unlink(s->path);
	}
	if (s->wake != NULL)
		event_free(s->wake);
	if (s->resume != NULL)
		event_free(s->resume);
	if (s->reaper != NULL)
		event_free(s->reaper);
	s->accounts->relief = NULL;
	if (s->drain_timer != NULL)
		event_free(s->drain_timer);
	free(s);
}
