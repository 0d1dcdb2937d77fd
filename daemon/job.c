#include "job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void jobpool_init(struct jobpool *jp, size_t max_free)
{
	jp->free = NULL;
	jp->nfree = 0;
	jp->max_free = max_free;
}

static void job_free(struct job *j)
{
	if (j->frame != j->frame_inline)
		free(j->frame);
	if (j->reply.p != j->reply_inline)
		free(j->reply.p);
	free(j);
}

void jobpool_destroy(struct jobpool *jp)
{
	while (jp->free != NULL) {
		struct job *j = jp->free;

		jp->free = j->next;
		free(j);
	}
	jp->nfree = 0;
}

struct job *job_new(struct jobpool *jp, size_t body_len)
{
	struct job *j = jp->free;

	if (j != NULL) {
		jp->free = j->next;
		jp->nfree--;
	} else if ((j = malloc(sizeof(*j))) == NULL) {
		return NULL;
	}
	j->next = NULL;
	j->jp = jp;
	j->conn = NULL;
	j->op = NULL;
	j->key = NULL;
	j->status = 0;
	j->msg[0] = '\0';
	j->frame = body_len <= sizeof(j->frame_inline) ? j->frame_inline : malloc(body_len);
	j->frame_len = body_len;
	buf_writer_init(&j->reply, j->reply_inline, sizeof(j->reply_inline));
	if (j->frame == NULL) {
		free(j);
		return NULL;
	}
	return j;
}

void job_release(struct job *j)
{
	struct jobpool *jp = j->jp;

	OPENSSL_cleanse(j->frame, j->frame_len);
	OPENSSL_cleanse(j->reply.p, j->reply.len);
	if (j->frame != j->frame_inline || j->reply.p != j->reply_inline || jp->nfree >= jp->max_free) {
		job_free(j);
		return;
	}
	j->next = jp->free;
	jp->free = j;
	jp->nfree++;
}

void job_reply_begin(struct job *j)
{
	j->reply.len = 0;
	j->reply.err = 0;
	wire_begin(&j->reply, j->opcode, KT_OK, j->id);
}

int job_reply_big(struct job *j)
{
	uint8_t *p;

	if (j->reply.p != j->reply_inline)
		return 0;
	p = malloc(WIRE_FRAME_MAX);
	if (p == NULL)
		return -1;
	memcpy(p, j->reply.p, j->reply.len);
	OPENSSL_cleanse(j->reply_inline, j->reply.len);
	j->reply.p = p;
	j->reply.cap = WIRE_FRAME_MAX;
	return 0;
}

void job_fail(struct job *j, int status, const char *fmt, ...)
{
	va_list ap;

	j->status = status;
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
}

static void write_error(struct job *j)
{
	OPENSSL_cleanse(j->reply.p, j->reply.len);
	j->reply.len = 0;
	j->reply.err = 0;
	wire_begin(&j->reply, j->opcode, (uint16_t)j->status, j->id);
	wire_put_str(&j->reply, WIRE_T_MESSAGE, j->msg[0] ? j->msg : wire_status_text(j->status));
	wire_end(&j->reply);
}

void job_finish(struct job *j)
{
	if (j->status == KT_OK && wire_end(&j->reply) == 0)
		return;
	if (j->status == KT_OK)
		job_fail(j, KT_INTERNAL, "reply does not fit in a frame");
	write_error(j);
}
