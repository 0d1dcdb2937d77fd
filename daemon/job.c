#include "job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "text.h"

/* One job per block of the locked heap's buddy allocator. */
_Static_assert(sizeof(struct job) <= 4096, "a job no longer fits a 4 KiB block");

void jobpool_init(struct jobpool *jp, size_t max_free)
{
	jp->free = NULL;
	jp->nfree = 0;
	jp->max_free = max_free;
}

static void reply_free(struct job *j)
{
	if (j->reply.p == j->reply_inline)
		return;
	if (j->reply_public)
		free(j->reply.p);
	else
		OPENSSL_secure_clear_free(j->reply.p, j->reply.cap);
}

static void job_free(struct job *j)
{
	if (j->frame != j->frame_inline)
		OPENSSL_secure_clear_free(j->frame, j->frame_len);
	reply_free(j);
	OPENSSL_secure_clear_free(j, sizeof(*j));
}

void jobpool_destroy(struct jobpool *jp)
{
	while (jp->free != NULL) {
		struct job *j = jp->free;

		jp->free = j->next;
		OPENSSL_secure_clear_free(j, sizeof(*j));
	}
	jp->nfree = 0;
}

struct job *job_new(struct jobpool *jp, size_t body_len)
{
	struct job *j = jp->free;

	if (j != NULL) {
		jp->free = j->next;
		jp->nfree--;
	} else if ((j = OPENSSL_secure_malloc(sizeof(*j))) == NULL) {
		return NULL;
	}
	memset(j, 0, offsetof(struct job, frame_inline));
	j->jp = jp;
	j->frame = body_len <= sizeof(j->frame_inline) ? j->frame_inline : OPENSSL_secure_malloc(body_len);
	j->frame_len = body_len;
	buf_writer_init(&j->reply, j->reply_inline, sizeof(j->reply_inline));
	if (j->frame == NULL) {
		OPENSSL_secure_clear_free(j, sizeof(*j));
		return NULL;
	}
	return j;
}

size_t job_size(const struct job *j)
{
	return sizeof(*j) + (j->frame != j->frame_inline ? j->frame_len : 0) +
	       (j->reply.p != j->reply_inline ? j->reply.cap : 0);
}

void job_release(struct job *j)
{
	struct jobpool *jp = j->jp;

	if (j->frame != j->frame_inline || j->reply.p != j->reply_inline || jp->nfree >= jp->max_free) {
		job_free(j);
		return;
	}
	OPENSSL_cleanse(j->frame, j->frame_len);
	OPENSSL_cleanse(j->reply.p, j->reply.len);
	OPENSSL_cleanse(j->msg, sizeof(j->msg));
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

int job_reply_big(struct job *j, enum reply_kind kind)
{
	uint8_t *p;

	if (j->reply.p != j->reply_inline)
		return 0;
	p = kind == REPLY_PUBLIC ? malloc(WIRE_FRAME_MAX) : OPENSSL_secure_malloc(WIRE_FRAME_MAX);
	if (p == NULL)
		return -1;
	j->reply_public = kind == REPLY_PUBLIC;
	memcpy(p, j->reply.p, j->reply.len);
	OPENSSL_cleanse(j->reply_inline, j->reply.len);
	j->reply.p = p;
	j->reply.cap = WIRE_FRAME_MAX;
	return 0;
}

int job_reply_room(struct job *j, size_t more, enum reply_kind kind)
{
	if (j->reply.cap - j->reply.len >= more)
		return 0;
	return job_reply_big(j, kind);
}

void job_reply_trim(struct job *j)
{
	uint8_t *p;

	if (j->reply.p == j->reply_inline || !j->reply_public || j->reply.len == j->reply.cap)
		return;
	p = realloc(j->reply.p, j->reply.len ? j->reply.len : 1);
	if (p == NULL)
		return;     /* keeps the larger block, charged as such */
	j->reply.p = p;
	j->reply.cap = j->reply.len;
}

void job_fail(struct job *j, int status, const char *fmt, ...)
{
	va_list ap;

	j->status = status;
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
}

/* Messages quote request and HSM text: it goes out escaped (valid UTF-8, nothing unprintable). */
static void write_error(struct job *j)
{
	char shown[4 * JOB_MSG_MAX];

	OPENSSL_cleanse(j->reply.p, j->reply.len);
	j->reply.len = 0;
	j->reply.err = 0;
	wire_begin(&j->reply, j->opcode, (uint16_t)j->status, j->id);
	if (j->msg[0] == '\0')
		snprintf(j->msg, sizeof(j->msg), "%s", wire_status_text(j->status));
	wire_put_str(&j->reply, WIRE_T_MESSAGE, text_escape(shown, sizeof(shown), j->msg, strlen(j->msg)));
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
