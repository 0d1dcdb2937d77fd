/* Pipelining: submit requests without waiting, collect them as they come. */
#include "internal.h"

#include <string.h>

#define DEFAULT_DEPTH 32

/* The given key is copied now so the caller's buffer may go after submission. */
static void keep_given_key(struct kt_item *it)
{
	const struct kt_wrap_args *a = &it->in.wrap;

	if (it->op != KT_OP_WRAP || a->key == NULL)
		return;
	it->out.wrap.key.alg_id = a->alg_id;
	it->out.wrap.key.len = a->key_len;
	memcpy(it->out.wrap.key.key, a->key, a->key_len);
}

static int drop_entry(kt_conn *c, uint32_t id, struct kt_item *it, int st)
{
	struct pending *p = pending_find(c, id);

	if (p != NULL)
		pending_remove(c, p);
	it->status = st;
	return st;
}

int item_submit(kt_conn *c, struct kt_item *it, const struct deadline *dl, uint32_t *id)
{
	uint8_t op = item_wire_op(it->op);
	size_t len;
	int st;

	if (op == 0)
		return it->status = conn_err(c, KT_ERR_ARG, "unknown item operation %d", it->op);
	if (c->fd < 0)
		return it->status = conn_err(c, KT_ERR_IO, "not connected to the daemon");
	*id = pending_add(c, op, it);
	if (*id == 0)
		return it->status = conn_err(c, KT_ERR_NOMEM, "out of memory");
	it->status = KT_ERR_IO;         /* until the response arrives */
	c->req_status = 0;
	len = req_item(c, *id, it);
	if (len == 0)
		return drop_entry(c, *id, it, c->req_status ? c->req_status : KT_ERR_ARG);
	keep_given_key(it);
	st = conn_send(c, c->tx, len, dl);
	wipe(c->tx, len);
	if (st != KT_OK)
		return drop_entry(c, *id, it, st);
	return KT_OK;
}

int kt_submit(kt_conn *c, struct kt_item *item)
{
	struct deadline dl;
	uint32_t id;

	if (c == NULL || item == NULL)
		return KT_ERR_ARG;
	deadline_start(&dl, c->timeout_ms);
	return item_submit(c, item, &dl, &id);
}

int kt_complete(kt_conn *c, struct kt_item **done)
{
	struct want w = { .lo = 0, .hi = UINTPTR_MAX };
	struct deadline dl;
	struct pending *p;
	int st;

	if (c == NULL || done == NULL)
		return KT_ERR_ARG;
	*done = NULL;
	if (c->items == 0)
		return conn_err(c, KT_ERR_ARG, "no request in flight");
	deadline_start(&dl, c->timeout_ms);
	st = conn_wait(c, &w, &dl, &p);
	if (st != KT_OK)
		return st;      /* on a timeout the items stay in flight */
	*done = p->item;
	conn_collect(c, p);
	return KT_OK;
}

size_t kt_in_flight(const kt_conn *c)
{
	return c != NULL ? c->items : 0;
}

/* The connection failed or timed out: nothing of this batch stays in flight. */
static int batch_fail(kt_conn *c, struct kt_item *items, size_t n, size_t next, int st)
{
	uintptr_t lo = (uintptr_t)items, hi = (uintptr_t)(items + n);
	char msg[KT_ERRMSG_MAX];

	memcpy(msg, c->err, sizeof(msg));
	for (size_t i = next; i < n; i++)
		items[i].status = st;
	for (size_t i = 0; i < c->npend;) {
		struct pending *p = &c->pend[i];
		size_t before = c->npend;

		if ((uintptr_t)p->item >= lo && (uintptr_t)p->item < hi)
			pending_abandon(c, p, st);
		if (c->npend == before)
			i++;    /* else the last entry moved into slot i */
	}
	memcpy(c->err, msg, sizeof(msg));
	return st;
}

/* Item-level refusals (bad arguments) do not stop the batch. */
static int item_level(int st)
{
	return st == KT_ERR_ARG || st == KT_ERR_NOMEM;
}

int kt_batch(kt_conn *c, struct kt_item *items, size_t n, unsigned depth)
{
	struct want w = { .lo = (uintptr_t)items, .hi = items != NULL ? (uintptr_t)(items + n) : 0 };
	size_t next = 0, running = 0;
	struct deadline dl;

	if (c == NULL || (items == NULL && n > 0))
		return KT_ERR_ARG;
	if (depth == 0)
		depth = DEFAULT_DEPTH;
	while (next < n || running > 0) {
		struct pending *p;
		uint32_t id;
		int st;

		while (next < n && running < depth) {
			deadline_start(&dl, c->timeout_ms);
			st = item_submit(c, &items[next], &dl, &id);
			next++;
			if (st == KT_OK)
				running++;
			else if (!item_level(st))
				return batch_fail(c, items, n, next, st);
		}
		if (running == 0)
			break;
		deadline_start(&dl, c->timeout_ms);
		st = conn_wait(c, &w, &dl, &p);
		if (st != KT_OK)
			return batch_fail(c, items, n, next, st);
		conn_collect(c, p);
		running--;
	}
	return KT_OK;
}
