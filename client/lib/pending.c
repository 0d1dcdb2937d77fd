/* The table of requests sent and not yet collected, matched by request id. */
#include "internal.h"

#include <stdlib.h>

static int grow(kt_conn *c)
{
	size_t cap = c->cap ? c->cap * 2 : 32;
	struct pending *p;

	if (c->npend < c->cap)
		return 0;
	p = realloc(c->pend, cap * sizeof(*p));
	if (p == NULL)
		return -1;
	c->pend = p;
	c->cap = cap;
	return 0;
}

/* The new entry's request id, or 0 when out of memory. */
uint32_t pending_add(kt_conn *c, uint8_t op, struct kt_item *item)
{
	struct pending *p;

	if (grow(c) != 0)
		return 0;
	p = &c->pend[c->npend++];
	*p = (struct pending){ .id = c->next_id++, .op = op, .state = PEND_WAITING, .item = item };
	if (c->next_id == 0)
		c->next_id = 1;         /* 0 is never a request id */
	if (item != NULL)
		c->items++;
	return p->id;
}

struct pending *pending_find(kt_conn *c, uint32_t id)
{
	for (size_t i = 0; i < c->npend; i++)
		if (c->pend[i].id == id)
			return &c->pend[i];
	return NULL;
}

static int wanted(const struct pending *p, const struct want *w)
{
	uintptr_t it = (uintptr_t)p->item;

	if (w->id != 0)
		return p->id == w->id;
	return p->item != NULL && it >= w->lo && it < w->hi;
}

/* The earliest completed entry a wait is looking for. */
struct pending *pending_find_done(kt_conn *c, const struct want *w)
{
	struct pending *best = NULL;

	for (size_t i = 0; i < c->npend; i++) {
		struct pending *p = &c->pend[i];

		if (p->state == PEND_DONE && wanted(p, w) && (best == NULL || p->done_seq < best->done_seq))
			best = p;
	}
	return best;
}

/* Pointers into the table are invalid afterwards (the last entry moves). */
void pending_remove(kt_conn *c, struct pending *p)
{
	free(p->msg);
	if (p->item != NULL)
		c->items--;
	*p = c->pend[--c->npend];
}

void pending_abandon(kt_conn *c, struct pending *p, int status)
{
	if (p->item != NULL && p->state != PEND_DONE)
		p->item->status = status;
	if (p->state == PEND_DONE) {
		pending_remove(c, p);
		return;
	}
	if (p->item != NULL)
		c->items--;
	p->item = NULL;
	p->state = PEND_ABANDONED;
}

/* Items whose response has arrived keep it; the others get status. */
void pending_fail_all(kt_conn *c, int status)
{
	for (size_t i = 0; i < c->npend; i++) {
		struct pending *p = &c->pend[i];

		if (p->item != NULL && p->state == PEND_WAITING)
			p->item->status = status;
		free(p->msg);
	}
	c->npend = 0;
	c->items = 0;
}
