#include "wire.h"

#include <stdio.h>
#include <string.h>

#include "text.h"

struct tag_info {
	const char *name;
	enum wire_type type;
	uint16_t max;
	enum wire_dir dir;
};

static const struct tag_info tags[WIRE_T_MAX] = {
#define WIRE_TAG_INFO(name, tag, type, max, dir) [tag] = { #name, type, max, dir },
	WIRE_TAG_LIST(WIRE_TAG_INFO)
#undef WIRE_TAG_INFO
};

static const char *const op_names[WIRE_OP_MAX] = {
#define WIRE_OP_NAME(name, code, str) [code] = str,
	WIRE_OP_LIST(WIRE_OP_NAME)
#undef WIRE_OP_NAME
};

const char *wire_op_name(unsigned op)
{
	if (op < WIRE_OP_MAX && op_names[op])
		return op_names[op];
	return "unknown";
}

const char *wire_tag_name(unsigned tag)
{
	if (tag < WIRE_T_MAX && tags[tag].name)
		return tags[tag].name;
	return "UNKNOWN";
}

const char *wire_status_name(int status)
{
	switch (status) {
#define WIRE_STATUS_NAME(name, code, desc) case code: return #name;
	KT_STATUS_LIST(WIRE_STATUS_NAME)
	KT_LOCAL_STATUS_LIST(WIRE_STATUS_NAME)
#undef WIRE_STATUS_NAME
	}
	return "UNKNOWN";
}

const char *wire_status_text(int status)
{
	switch (status) {
#define WIRE_STATUS_TEXT(name, code, desc) case code: return desc;
	KT_STATUS_LIST(WIRE_STATUS_TEXT)
	KT_LOCAL_STATUS_LIST(WIRE_STATUS_TEXT)
#undef WIRE_STATUS_TEXT
	}
	return "unknown status";
}

int wire_get_hdr(struct buf_reader *r, struct wire_hdr *h)
{
	if (buf_left(r) < WIRE_HDR_LEN)
		return -1;
	buf_get_u32be(r, &h->len);
	buf_get_u8(r, &h->version);
	buf_get_u8(r, &h->op);
	buf_get_u16be(r, &h->status);
	buf_get_u32be(r, &h->id);
	return 0;
}

int wire_check_len(uint32_t len)
{
	if (len < WIRE_HDR_LEN - 4)
		return KT_BAD_FRAME;
	if (len > WIRE_FRAME_MAX - 4)
		return KT_FRAME_TOO_LARGE;
	return KT_OK;
}

static int length_fits(const struct tag_info *t, uint16_t len)
{
	switch (t->type) {
	case WT_U8:
		return len == 1;
	case WT_U32:
		return len == 4;
	case WT_U64:
		return len == 8;
	case WT_STR:
	case WT_BYTES:
	case WT_GROUP:
		return len <= t->max;
	}
	return 0;
}

static int str_ok(const uint8_t *p, uint16_t len)
{
	return memchr(p, 0, len) == NULL;
}

static int read_field(struct buf_reader *r, uint16_t *tag, struct wire_field *f)
{
	if (buf_get_u16be(r, tag) != 0 || buf_get_u16be(r, &f->len) != 0)
		return -1;
	if (buf_get_ptr(r, &f->p, f->len) != 0)
		return -1;
	f->present = 1;
	return 0;
}

/* How strictly a run of fields is read. */
enum parse_mode {
	PARSE_REQUEST,          /* a request: nothing unknown, answer-only or repeated */
	PARSE_GROUP,            /* a group inside an answer, as the daemon builds them */
	PARSE_ANSWER,           /* an answer: unknown tags skipped (a newer daemon) */
};

static void truncated(const uint8_t *p, size_t len, size_t at, char *why, size_t whylen)
{
	uint16_t tag = len - at >= 2 ? (uint16_t)(p[at] << 8 | p[at + 1]) : 0;

	if (len - at < WIRE_FIELD_HDR_LEN)
		snprintf(why, whylen, "field header truncated at byte %zu of the body", at);
	else if (tag < WIRE_T_MAX && tags[tag].name != NULL)
		snprintf(why, whylen, "field %s truncated at byte %zu of the body", tags[tag].name, at);
	else
		snprintf(why, whylen, "field UNKNOWN (tag %u) truncated at byte %zu of the body", tag, at);
}

/* The checks of one field's value; 0 or -1 with why set. */
static int value_ok(uint16_t tag, const struct wire_field *f, enum parse_mode mode, char *why,
		    size_t whylen)
{
	const struct tag_info *t = &tags[tag];
	uint32_t flags;

	if (!length_fits(t, f->len)) {
		snprintf(why, whylen, "field %s has a bad length (%u)", t->name, f->len);
		return -1;
	}
	if (t->type == WT_STR && !str_ok(f->p, f->len)) {
		snprintf(why, whylen, "field %s contains a NUL byte", t->name);
		return -1;
	}
	if (mode != PARSE_REQUEST)
		return 0;
	if (t->type == WT_STR && !utf8_valid(f->p, f->len)) {
		snprintf(why, whylen, "field %s is not valid UTF-8", t->name);
		return -1;
	}
	if (tag == WIRE_T_FLAGS) {
		flags = (uint32_t)f->p[0] << 24 | (uint32_t)f->p[1] << 16 | (uint32_t)f->p[2] << 8 | f->p[3];
		if (flags & ~WIRE_FLAGS_DEFINED) {
			snprintf(why, whylen, "field FLAGS sets reserved bits (0x%08x)",
				 flags & ~WIRE_FLAGS_DEFINED);
			return -1;
		}
	}
	return 0;
}

/* The checks of one field's tag in its message; 1 to skip it, 0 to keep it, -1 to refuse. */
static int tag_ok(uint16_t tag, const struct wire_fields *out, enum parse_mode mode, char *why,
		  size_t whylen)
{
	if (tag >= WIRE_T_MAX || tags[tag].name == NULL) {
		if (mode == PARSE_ANSWER)
			return 1;
		snprintf(why, whylen, "unknown field tag %u", tag);
		return -1;
	}
	if (mode == PARSE_REQUEST && !(tags[tag].dir & WD_REQUEST)) {
		snprintf(why, whylen, "field %s is only sent in answers", tags[tag].name);
		return -1;
	}
	if (out->f[tag].present && (mode == PARSE_REQUEST || tags[tag].type != WT_GROUP)) {
		snprintf(why, whylen, "field %s given twice", tags[tag].name);
		return -1;
	}
	return 0;
}

static int parse_fields(const uint8_t *p, size_t len, enum parse_mode mode, struct wire_fields *out,
			char *why, size_t whylen)
{
	struct buf_reader r;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, p, len);
	while (buf_left(&r) > 0) {
		struct wire_field f;
		uint16_t tag;
		size_t at = r.off;
		int t;

		if (read_field(&r, &tag, &f) != 0) {
			truncated(p, len, at, why, whylen);
			return -1;
		}
		t = tag_ok(tag, out, mode, why, whylen);
		if (t < 0 || (t == 0 && value_ok(tag, &f, mode, why, whylen) != 0))
			return -1;
		if (t == 0 && !out->f[tag].present)
			out->f[tag] = f;
	}
	return 0;
}

int wire_parse_request(const uint8_t *p, size_t len, struct wire_fields *out,
		       char *why, size_t whylen)
{
	return parse_fields(p, len, PARSE_REQUEST, out, why, whylen);
}

int wire_parse_fields(const uint8_t *p, size_t len, struct wire_fields *out,
		      char *why, size_t whylen)
{
	return parse_fields(p, len, PARSE_GROUP, out, why, whylen);
}

int wire_parse_answer(const uint8_t *p, size_t len, struct wire_fields *out,
		      char *why, size_t whylen)
{
	return parse_fields(p, len, PARSE_ANSWER, out, why, whylen);
}

int wire_next_field(const uint8_t *p, size_t len, size_t *off, unsigned tag,
		    struct wire_field *out)
{
	struct buf_reader r;

	if (*off > len)
		return -1;
	buf_reader_init(&r, p, len);
	r.off = *off;
	while (buf_left(&r) > 0) {
		uint16_t t;

		if (read_field(&r, &t, out) != 0)
			return -1;
		*off = r.off;
		if (t == tag)
			return 1;
	}
	return 0;
}

int wire_has(const struct wire_fields *m, unsigned tag)
{
	return tag < WIRE_T_MAX && m->f[tag].present;
}

static int get_number(const struct wire_fields *m, unsigned tag, size_t size, uint64_t *v)
{
	const struct wire_field *f;

	if (!wire_has(m, tag) || m->f[tag].len != size)
		return -1;
	f = &m->f[tag];
	*v = 0;
	for (size_t i = 0; i < size; i++)
		*v = *v << 8 | f->p[i];
	return 0;
}

int wire_get_u8(const struct wire_fields *m, unsigned tag, uint8_t *v)
{
	uint64_t x;

	if (get_number(m, tag, 1, &x) != 0)
		return -1;
	*v = (uint8_t)x;
	return 0;
}

int wire_get_u32(const struct wire_fields *m, unsigned tag, uint32_t *v)
{
	uint64_t x;

	if (get_number(m, tag, 4, &x) != 0)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

int wire_get_u64(const struct wire_fields *m, unsigned tag, uint64_t *v)
{
	return get_number(m, tag, 8, v);
}

int wire_get_str(const struct wire_fields *m, unsigned tag, char *dst, size_t cap)
{
	const struct wire_field *f;

	if (!wire_has(m, tag))
		return -1;
	f = &m->f[tag];
	if ((size_t)f->len + 1 > cap || memchr(f->p, 0, f->len) != NULL)
		return -1;
	memcpy(dst, f->p, f->len);
	dst[f->len] = '\0';
	return 0;
}

void wire_begin(struct buf_writer *w, uint8_t op, uint16_t status, uint32_t id)
{
	buf_put_u32be(w, 0);
	buf_put_u8(w, WIRE_VERSION);
	buf_put_u8(w, op);
	buf_put_u16be(w, status);
	buf_put_u32be(w, id);
}

static int put_field_hdr(struct buf_writer *w, unsigned tag, size_t n)
{
	if (n > UINT16_MAX) {
		w->err = 1;
		return -1;
	}
	buf_put_u16be(w, (uint16_t)tag);
	return buf_put_u16be(w, (uint16_t)n);
}

int wire_put_bytes(struct buf_writer *w, unsigned tag, const void *p, size_t n)
{
	if (put_field_hdr(w, tag, n) != 0)
		return -1;
	return buf_put_bytes(w, p, n);
}

int wire_put_text(struct buf_writer *w, unsigned tag, const char *s)
{
	char shown[4 * 1024 + 1];
	size_t max = tag < WIRE_T_MAX && tags[tag].type == WT_STR ? tags[tag].max : 0;

	text_escape(shown, max + 1 < sizeof(shown) ? max + 1 : sizeof(shown), s, strlen(s));
	return wire_put_str(w, tag, shown);
}

int wire_put_str(struct buf_writer *w, unsigned tag, const char *s)
{
	return wire_put_bytes(w, tag, s, strlen(s));
}

int wire_put_u8(struct buf_writer *w, unsigned tag, uint8_t v)
{
	return wire_put_bytes(w, tag, &v, 1);
}

int wire_put_u32(struct buf_writer *w, unsigned tag, uint32_t v)
{
	put_field_hdr(w, tag, 4);
	return buf_put_u32be(w, v);
}

int wire_put_u64(struct buf_writer *w, unsigned tag, uint64_t v)
{
	put_field_hdr(w, tag, 8);
	return buf_put_u64be(w, v);
}

size_t wire_group_begin(struct buf_writer *w, unsigned tag)
{
	size_t at = w->len;

	put_field_hdr(w, tag, 0);
	return at;
}

int wire_group_end(struct buf_writer *w, size_t at)
{
	size_t n;

	if (w->err)
		return -1;
	n = w->len - at - WIRE_FIELD_HDR_LEN;
	if (n > UINT16_MAX) {
		w->err = 1;
		return -1;
	}
	return buf_patch_u16be(w, at + 2, (uint16_t)n);
}

int wire_end(struct buf_writer *w)
{
	if (w->err || w->len < WIRE_HDR_LEN)
		return -1;
	return buf_patch_u32be(w, 0, (uint32_t)(w->len - 4));
}
