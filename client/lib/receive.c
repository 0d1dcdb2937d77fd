/*
 * Matching responses to requests. Responses may come in any order (the
 * daemon runs requests on several workers): each frame is checked and handed
 * to the pending entry with its id. Items are decoded at once; a synchronous
 * call's frame stays in the receive buffer until that call has decoded it.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void deliver_item(struct pending *e, const struct frame *f)
{
	char why[KT_ERRMSG_MAX] = "";
	struct wire_fields m;
	int st = resp_parse(f, e->op, &m, why, sizeof(why));

	if (st == KT_OK)
		st = resp_item(&m, e->item, why, sizeof(why));
	e->item->status = st;
	if (st != KT_OK)
		e->msg = strdup(why);
}

static void frame_view(const uint8_t *p, size_t n, struct frame *f)
{
	struct buf_reader r;

	buf_reader_init(&r, p, n);
	wire_get_hdr(&r, &f->h);        /* n >= WIRE_HDR_LEN: wire_check_len passed */
	f->body = p + WIRE_HDR_LEN;
	f->body_len = n - WIRE_HDR_LEN;
}

/*
 * An answer to no request (op 0): the daemon refused the connection (BUSY
 * over a connection limit) or the stream (BAD_FRAME), and closes it. Every
 * call pending fails with that status and the daemon's message.
 */
static int connection_refused(kt_conn *c, const struct frame *f)
{
	struct wire_fields m;
	char why[128], msg[KT_ERRMSG_MAX] = "";

	if (wire_parse_answer(f->body, f->body_len, &m, why, sizeof(why)) != 0 ||
	    wire_get_str(&m, WIRE_T_MESSAGE, msg, sizeof(msg)) != 0)
		snprintf(msg, sizeof(msg), "%s", wire_status_text(f->h.status));
	return conn_fatal(c, f->h.status, "keytransd: %s", msg);
}

static int process_frame(kt_conn *c, const uint8_t *p, size_t n)
{
	struct frame f;
	struct pending *e;

	frame_view(p, n, &f);
	if (f.h.version != WIRE_VERSION)
		return conn_fatal(c, KT_ERR_PROTOCOL, "response has protocol version %u, expected %u",
				  f.h.version, WIRE_VERSION);
	if (f.h.op == 0 && f.h.status != KT_OK)
		return connection_refused(c, &f);
	e = pending_find(c, f.h.id);
	if (e == NULL || e->state == PEND_DONE)
		return conn_fatal(c, KT_ERR_PROTOCOL, "response (%s, status %s) to unknown request id %lu",
				  wire_op_name(f.h.op), wire_status_name(f.h.status),
				  (unsigned long)f.h.id);
	if (e->state == PEND_ABANDONED) {
		pending_remove(c, e);
		conn_drop_frame(c, n);
		return KT_OK;
	}
	e->state = PEND_DONE;
	e->done_seq = ++c->done_seq;
	if (e->item == NULL) {
		c->held = n;
		return KT_OK;
	}
	deliver_item(e, &f);
	conn_drop_frame(c, n);
	return KT_OK;
}

/* Stops early only at a frame lent to a synchronous call. */
int conn_drain(kt_conn *c)
{
	for (;;) {
		const uint8_t *p;
		size_t n;
		int r = conn_peek_frame(c, &p, &n);

		if (r <= 0)
			return r;
		r = process_frame(c, p, n);
		if (r != KT_OK || c->held > 0)
			return r;
	}
}

int conn_wait(kt_conn *c, const struct want *w, const struct deadline *dl, struct pending **hit)
{
	for (;;) {
		const uint8_t *p;
		size_t n;
		int r;

		*hit = pending_find_done(c, w);
		if (*hit != NULL)
			return KT_OK;
		r = conn_peek_frame(c, &p, &n);
		if (r > 0)
			r = process_frame(c, p, n);
		else if (r == 0)
			r = conn_recv(c, dl);
		if (r != KT_OK)
			return r;
	}
}

void conn_collect(kt_conn *c, struct pending *p)
{
	int st = p->item->status;

	if (st != KT_OK)
		conn_err(c, st, "%s", p->msg != NULL ? p->msg : wire_status_text(st));
	pending_remove(c, p);
}

int conn_call(kt_conn *c, uint32_t id, size_t len, const struct deadline *dl, struct frame *f)
{
	struct want w = { .id = id };
	struct pending *p;
	int st;

	st = conn_send(c, c->tx, len, dl);
	wipe(c->tx, len);
	if (st != KT_OK) {
		p = pending_find(c, id);
		if (p != NULL)
			pending_remove(c, p);   /* never sent, or the connection is gone */
		return st;
	}
	st = conn_wait(c, &w, dl, &p);
	if (st != KT_OK) {
		p = pending_find(c, id);
		if (p != NULL)
			pending_abandon(c, p, st);
		return st;
	}
	frame_view(c->rx + c->rx_off, c->held, f);
	return KT_OK;
}

void conn_call_end(kt_conn *c, uint32_t id)
{
	struct pending *p = pending_find(c, id);

	/* An abandoned entry stays, so its late answer is recognised and dropped. */
	if (p != NULL && p->state != PEND_ABANDONED)
		pending_remove(c, p);
	if (c->held > 0) {
		conn_drop_frame(c, c->held);
		c->held = 0;
	}
}
