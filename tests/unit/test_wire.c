/*
 * common/wire: the frame and field codec. Round trips for every field type,
 * the frame length limits, every way a body is refused (with the message
 * naming the field), the writer's overflow, the name tables, and random
 * bodies that must never be read outside their bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keytrans_status.h"
#include "wire.h"

/* ---- helpers ---- */

/* Checks the header of a finished frame and parses its fields into m. */
static void parse_frame(const uint8_t *frame, size_t len, uint8_t op, uint16_t status,
			uint32_t id, struct wire_fields *m)
{
	struct buf_reader r;
	struct wire_hdr h;
	char why[256] = "";

	buf_reader_init(&r, frame, len);
	assert_int_equal(wire_get_hdr(&r, &h), 0);
	assert_int_equal(r.off, WIRE_HDR_LEN);
	assert_int_equal(h.len, len - 4);
	assert_int_equal(wire_check_len(h.len), KT_OK);
	assert_int_equal(h.version, WIRE_VERSION);
	assert_int_equal(h.op, op);
	assert_int_equal(h.status, status);
	assert_int_equal(h.id, id);
	if (wire_parse_fields(frame + WIRE_HDR_LEN, len - WIRE_HDR_LEN, m, why, sizeof(why)) != 0)
		fail_msg("frame refused: %s", why);
}

/* Field bytes: tag, length, value. Returns the bytes written at out. */
static size_t field(uint8_t *out, uint16_t tag, uint16_t len, const void *value)
{
	out[0] = (uint8_t)(tag >> 8);
	out[1] = (uint8_t)tag;
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	if (len > 0)
		memcpy(out + 4, value, len);
	return WIRE_FIELD_HDR_LEN + (size_t)len;
}

typedef int parse_fn(const uint8_t *p, size_t len, struct wire_fields *out, char *why, size_t whylen);

/* Expects body to be refused by parse with exactly the message want. */
static void assert_refused_by(parse_fn *parse, const uint8_t *body, size_t len, const char *want)
{
	struct wire_fields m;
	char why[256];

	strcpy(why, "(unset)");
	assert_int_equal(parse(body, len, &m, why, sizeof(why)), -1);
	assert_string_equal(why, want);
}

static void assert_refused(const uint8_t *body, size_t len, const char *want)
{
	assert_refused_by(wire_parse_fields, body, len, want);
}

static void assert_accepted(const uint8_t *body, size_t len, struct wire_fields *m)
{
	char why[256] = "";

	if (wire_parse_fields(body, len, m, why, sizeof(why)) != 0)
		fail_msg("refused: %s", why);
}

/* ---- tag table, as the header declares it ---- */

struct tag_def {
	const char *name;
	unsigned tag;
	enum wire_type type;
	unsigned max;
};

static const struct tag_def tag_defs[] = {
#define TAG_DEF(name, tag, type, max, dir) { #name, tag, type, max },
	WIRE_TAG_LIST(TAG_DEF)
#undef TAG_DEF
};
#define NTAGS (sizeof(tag_defs) / sizeof(tag_defs[0]))

static const struct tag_def *tag_def(unsigned tag)
{
	for (size_t i = 0; i < NTAGS; i++)
		if (tag_defs[i].tag == tag)
			return &tag_defs[i];
	return NULL;
}

/* ---- frames ---- */

/* One small frame, byte for byte as docs/protocol.md draws it. */
static void test_frame_bytes(void **state)
{
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x15,         /* length: 8 + 13 */
		0x01, 0x04, 0x00, 0x0e,         /* version, op, status */
		0xde, 0xad, 0xbe, 0xef,         /* id */
		0x00, 0x03, 0x00, 0x01, 0x01,   /* PADDING = 1 */
		0x00, 0x01, 0x00, 0x04, 'k', 'x', '-', '1', /* NAME = "kx-1" */
	};
	uint8_t out[64];
	struct buf_writer w;

	(void)state;
	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_UNWRAP, KT_UNWRAP_FAILED, 0xdeadbeef);
	assert_int_equal(wire_put_u8(&w, WIRE_T_PADDING, WIRE_PAD_OAEP), 0);
	assert_int_equal(wire_put_str(&w, WIRE_T_NAME, "kx-1"), 0);
	assert_int_equal(wire_end(&w), 0);
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* A frame with no fields is 12 bytes, length 8. */
static void test_frame_empty(void **state)
{
	uint8_t out[WIRE_HDR_LEN];
	struct buf_writer w;
	struct wire_fields m;

	(void)state;
	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_INFO, 0, 0);
	assert_int_equal(wire_end(&w), 0);
	assert_int_equal(w.len, WIRE_HDR_LEN);
	parse_frame(out, w.len, WIRE_OP_INFO, 0, 0, &m);
	for (unsigned t = 0; t < WIRE_T_MAX; t++)
		assert_false(wire_has(&m, t));
}

/* Every scalar type, edge values, empty and full-length variable fields. */
static void test_roundtrip_scalars(void **state)
{
	uint8_t out[4096], blob[2060], got8;
	uint32_t got32;
	uint64_t got64;
	char s[2000];
	struct buf_writer w;
	struct wire_fields m;

	(void)state;
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7 + 3);
	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_WRAP, KT_SHUTTING_DOWN, 0xffffffffu);
	assert_int_equal(wire_put_u8(&w, WIRE_T_PADDING, 0xff), 0);
	assert_int_equal(wire_put_u8(&w, WIRE_T_FORMAT, 0), 0);
	assert_int_equal(wire_put_u32(&w, WIRE_T_ALG_ID, 0x0000660e), 0);
	assert_int_equal(wire_put_u32(&w, WIRE_T_KEY_BITS, 0xffffffffu), 0);
	assert_int_equal(wire_put_u32(&w, WIRE_T_STATUS_SEQ, 0), 0);
	assert_int_equal(wire_put_u64(&w, WIRE_T_UPTIME, UINT64_MAX), 0);
	assert_int_equal(wire_put_u64(&w, WIRE_T_EXPONENT, 0x0000000100000001ull), 0);
	assert_int_equal(wire_put_bytes(&w, WIRE_T_BLOB, blob, sizeof(blob)), 0);
	assert_int_equal(wire_put_bytes(&w, WIRE_T_SESSION_KEY, blob, 0), 0);
	assert_int_equal(wire_put_bytes(&w, WIRE_T_ID, NULL, 0), 0);
	assert_int_equal(wire_put_str(&w, WIRE_T_NAME, "exchange1"), 0);
	assert_int_equal(wire_put_str(&w, WIRE_T_LABEL, ""), 0);
	assert_int_equal(wire_put_str(&w, WIRE_T_MESSAGE, "\xc3\xa9t\xc3\xa9 UTF-8"), 0);
	assert_int_equal(wire_end(&w), 0);
	parse_frame(out, w.len, WIRE_OP_WRAP, KT_SHUTTING_DOWN, 0xffffffffu, &m);

	assert_int_equal(wire_get_u8(&m, WIRE_T_PADDING, &got8), 0);
	assert_int_equal(got8, 0xff);
	assert_int_equal(wire_get_u8(&m, WIRE_T_FORMAT, &got8), 0);
	assert_int_equal(got8, 0);
	assert_int_equal(wire_get_u32(&m, WIRE_T_ALG_ID, &got32), 0);
	assert_int_equal(got32, 0x660e);
	assert_int_equal(wire_get_u32(&m, WIRE_T_KEY_BITS, &got32), 0);
	assert_int_equal(got32, 0xffffffffu);
	assert_int_equal(wire_get_u32(&m, WIRE_T_STATUS_SEQ, &got32), 0);
	assert_int_equal(got32, 0);
	assert_int_equal(wire_get_u64(&m, WIRE_T_UPTIME, &got64), 0);
	assert_true(got64 == UINT64_MAX);
	assert_int_equal(wire_get_u64(&m, WIRE_T_EXPONENT, &got64), 0);
	assert_true(got64 == 0x0000000100000001ull);

	assert_true(wire_has(&m, WIRE_T_BLOB));
	assert_int_equal(m.f[WIRE_T_BLOB].len, sizeof(blob));
	assert_memory_equal(m.f[WIRE_T_BLOB].p, blob, sizeof(blob));
	/* Borrowed: points into the frame. */
	assert_true(m.f[WIRE_T_BLOB].p > out && m.f[WIRE_T_BLOB].p < out + w.len);
	assert_true(wire_has(&m, WIRE_T_SESSION_KEY));
	assert_int_equal(m.f[WIRE_T_SESSION_KEY].len, 0);
	assert_true(wire_has(&m, WIRE_T_ID));
	assert_int_equal(m.f[WIRE_T_ID].len, 0);

	assert_int_equal(wire_get_str(&m, WIRE_T_NAME, s, sizeof(s)), 0);
	assert_string_equal(s, "exchange1");
	strcpy(s, "junk");
	assert_int_equal(wire_get_str(&m, WIRE_T_LABEL, s, sizeof(s)), 0);
	assert_string_equal(s, "");
	assert_int_equal(wire_get_str(&m, WIRE_T_MESSAGE, s, sizeof(s)), 0);
	assert_string_equal(s, "\xc3\xa9t\xc3\xa9 UTF-8");

	/* Not sent: absent, and every getter says so. */
	assert_false(wire_has(&m, WIRE_T_RANDOM));
	assert_int_equal(wire_get_u32(&m, WIRE_T_COMMAND_SEQ, &got32), -1);
	assert_int_equal(wire_get_u64(&m, WIRE_T_BITS, &got64), -1);
	assert_int_equal(wire_get_u8(&m, WIRE_T_KEY_COUNT, &got8), -1);
	assert_int_equal(wire_get_str(&m, WIRE_T_VERSION, s, sizeof(s)), -1);

	/* A getter of the wrong width refuses rather than reading past the value. */
	assert_int_equal(wire_get_u32(&m, WIRE_T_PADDING, &got32), -1);
	assert_int_equal(wire_get_u64(&m, WIRE_T_ALG_ID, &got64), -1);
	assert_int_equal(wire_get_u8(&m, WIRE_T_UPTIME, &got8), -1);

	/* Tags outside the table. */
	assert_false(wire_has(&m, 0));
	assert_false(wire_has(&m, WIRE_T_MAX));
	assert_false(wire_has(&m, 0xffff));
	assert_int_equal(wire_get_u32(&m, 1000, &got32), -1);
}

/* The largest legal value of every variable-length tag round-trips. */
static void test_roundtrip_max_lengths(void **state)
{
	size_t cap = WIRE_FRAME_MAX;
	uint8_t *out = malloc(cap), *val = malloc(60000);
	char *s = malloc(2000);
	struct buf_writer w;
	struct wire_fields m;

	(void)state;
	assert_non_null(out);
	assert_non_null(val);
	assert_non_null(s);
	for (size_t i = 0; i < NTAGS; i++) {
		const struct tag_def *t = &tag_defs[i];

		if (t->type != WT_BYTES && t->type != WT_STR)
			continue;
		memset(val, t->type == WT_STR ? 'x' : 0, t->max);
		buf_writer_init(&w, out, cap);
		wire_begin(&w, WIRE_OP_PUBKEY, 0, (uint32_t)i);
		assert_int_equal(wire_put_bytes(&w, t->tag, val, t->max), 0);
		assert_int_equal(wire_end(&w), 0);
		assert_int_equal(w.len, WIRE_HDR_LEN + WIRE_FIELD_HDR_LEN + t->max);
		parse_frame(out, w.len, WIRE_OP_PUBKEY, 0, (uint32_t)i, &m);
		assert_int_equal(m.f[t->tag].len, t->max);
		assert_memory_equal(m.f[t->tag].p, val, t->max);
		if (t->type == WT_STR) {
			assert_int_equal(wire_get_str(&m, t->tag, s, t->max + 1), 0);
			assert_int_equal(strlen(s), t->max);
		}
	}
	free(out);
	free(val);
	free(s);
}

/* Groups: KEY_ENTRY repeats; each is itself a run of fields. */
static void test_roundtrip_groups(void **state)
{
	static const uint8_t id[2] = { 0x01, 0xab };
	uint8_t out[512];
	struct buf_writer w;
	struct wire_fields m, g;
	struct wire_field f;
	size_t at, off;
	char s[64];
	uint32_t bits;
	uint64_t e;
	int n;

	(void)state;
	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_KEYS, 0, 7);
	assert_int_equal(wire_put_u32(&w, WIRE_T_KEY_COUNT, 3), 0);
	for (unsigned k = 0; k < 3; k++) {
		char name[16];

		snprintf(name, sizeof(name), "key%u", k);
		at = wire_group_begin(&w, WIRE_T_KEY_ENTRY);
		assert_int_equal(wire_put_str(&w, WIRE_T_NAME, name), 0);
		if (k != 1)
			assert_int_equal(wire_put_str(&w, WIRE_T_LABEL, "kx"), 0);
		assert_int_equal(wire_put_bytes(&w, WIRE_T_ID, id, k), 0);
		assert_int_equal(wire_put_u32(&w, WIRE_T_BITS, 1024u << k), 0);
		assert_int_equal(wire_put_u64(&w, WIRE_T_EXPONENT, 65537), 0);
		assert_int_equal(wire_group_end(&w, at), 0);
	}
	/* An empty group is legal too. */
	at = wire_group_begin(&w, WIRE_T_KEY_ENTRY);
	assert_int_equal(wire_group_end(&w, at), 0);
	assert_int_equal(wire_put_str(&w, WIRE_T_TOKEN_LABEL, "keytrans"), 0);
	assert_int_equal(wire_end(&w), 0);

	parse_frame(out, w.len, WIRE_OP_KEYS, 0, 7, &m);
	assert_int_equal(wire_get_u32(&m, WIRE_T_KEY_COUNT, &bits), 0);
	assert_int_equal(bits, 3);
	assert_int_equal(wire_get_str(&m, WIRE_T_TOKEN_LABEL, s, sizeof(s)), 0);
	assert_string_equal(s, "keytrans");
	/* The fields table keeps the first occurrence. */
	assert_true(wire_has(&m, WIRE_T_KEY_ENTRY));
	assert_int_equal(wire_parse_fields(m.f[WIRE_T_KEY_ENTRY].p, m.f[WIRE_T_KEY_ENTRY].len,
					   &g, s, sizeof(s)), 0);
	assert_int_equal(wire_get_str(&g, WIRE_T_NAME, s, sizeof(s)), 0);
	assert_string_equal(s, "key0");

	off = 0;
	n = 0;
	while (wire_next_field(out + WIRE_HDR_LEN, w.len - WIRE_HDR_LEN, &off,
			       WIRE_T_KEY_ENTRY, &f) == 1) {
		char want[16];

		assert_true(f.p >= out + WIRE_HDR_LEN && f.p + f.len <= out + w.len);
		assert_true(off <= w.len - WIRE_HDR_LEN);
		if (n == 3) {
			assert_int_equal(f.len, 0);
			assert_int_equal(wire_parse_fields(f.p, f.len, &g, s, sizeof(s)), 0);
			assert_false(wire_has(&g, WIRE_T_NAME));
			n++;
			continue;
		}
		assert_int_equal(wire_parse_fields(f.p, f.len, &g, s, sizeof(s)), 0);
		snprintf(want, sizeof(want), "key%d", n);
		assert_int_equal(wire_get_str(&g, WIRE_T_NAME, s, sizeof(s)), 0);
		assert_string_equal(s, want);
		assert_int_equal(wire_has(&g, WIRE_T_LABEL), n != 1);
		assert_int_equal(g.f[WIRE_T_ID].len, n);
		assert_memory_equal(g.f[WIRE_T_ID].p, id, (size_t)n);
		assert_int_equal(wire_get_u32(&g, WIRE_T_BITS, &bits), 0);
		assert_int_equal(bits, 1024u << n);
		assert_int_equal(wire_get_u64(&g, WIRE_T_EXPONENT, &e), 0);
		assert_true(e == 65537);
		n++;
	}
	assert_int_equal(n, 4);
	/* At the end it keeps saying so. */
	assert_int_equal(wire_next_field(out + WIRE_HDR_LEN, w.len - WIRE_HDR_LEN, &off,
					 WIRE_T_KEY_ENTRY, &f), 0);
	assert_int_equal(off, w.len - WIRE_HDR_LEN);
}

static void test_next_field_errors(void **state)
{
	uint8_t body[64];
	struct wire_field f;
	size_t len = 0, off;

	(void)state;
	len += field(body + len, WIRE_T_KEY_ENTRY, 0, NULL);
	len += field(body + len, WIRE_T_NAME, 1, "a");
	off = 0;
	assert_int_equal(wire_next_field(body, len, &off, WIRE_T_KEY_ENTRY, &f), 1);
	assert_int_equal(off, 4);
	assert_int_equal(wire_next_field(body, len, &off, WIRE_T_KEY_ENTRY, &f), 0);
	assert_int_equal(off, len);
	/* Another tag can be iterated too. */
	off = 0;
	assert_int_equal(wire_next_field(body, len, &off, WIRE_T_NAME, &f), 1);
	assert_int_equal(f.len, 1);
	assert_int_equal(f.p[0], 'a');
	/* An offset beyond the body. */
	off = len + 1;
	assert_int_equal(wire_next_field(body, len, &off, WIRE_T_KEY_ENTRY, &f), -1);
	/* A truncated field after the groups. */
	body[len++] = 0x00;
	body[len++] = 0x14;
	body[len++] = 0x00;
	off = 0;
	assert_int_equal(wire_next_field(body, len, &off, WIRE_T_KEY_ENTRY, &f), 1);
	assert_int_equal(wire_next_field(body, len, &off, WIRE_T_KEY_ENTRY, &f), -1);
	/* A value running past the end. */
	len = field(body, WIRE_T_KEY_ENTRY, 10, "0123456789") - 1;
	off = 0;
	assert_int_equal(wire_next_field(body, len, &off, WIRE_T_KEY_ENTRY, &f), -1);
	/* Empty body. */
	off = 0;
	assert_int_equal(wire_next_field(body, 0, &off, WIRE_T_KEY_ENTRY, &f), 0);
}

/* ---- header and lengths ---- */

static void test_check_len(void **state)
{
	(void)state;
	assert_int_equal(wire_check_len(0), KT_BAD_FRAME);
	assert_int_equal(wire_check_len(7), KT_BAD_FRAME);
	assert_int_equal(wire_check_len(8), KT_OK);
	assert_int_equal(wire_check_len(9), KT_OK);
	assert_int_equal(wire_check_len(65532), KT_OK);
	assert_int_equal(wire_check_len(65533), KT_FRAME_TOO_LARGE);
	assert_int_equal(wire_check_len(65536), KT_FRAME_TOO_LARGE);
	assert_int_equal(wire_check_len(0x7fffffffu), KT_FRAME_TOO_LARGE);
	assert_int_equal(wire_check_len(0xffffffffu), KT_FRAME_TOO_LARGE);
}

static void test_get_hdr(void **state)
{
	static const uint8_t hdr[13] = {
		0xff, 0xff, 0xff, 0xff, 0x02, 0x09, 0xab, 0xcd, 0x00, 0x00, 0x00, 0x01, 0x55,
	};
	struct buf_reader r;
	struct wire_hdr h;

	(void)state;
	/* Eleven bytes: refused, nothing consumed. */
	buf_reader_init(&r, hdr, 11);
	assert_int_equal(wire_get_hdr(&r, &h), -1);
	assert_int_equal(r.off, 0);
	buf_reader_init(&r, hdr, 0);
	assert_int_equal(wire_get_hdr(&r, &h), -1);

	/* The header is read as it is; judging it is the caller's job. */
	buf_reader_init(&r, hdr, sizeof(hdr));
	assert_int_equal(wire_get_hdr(&r, &h), 0);
	assert_int_equal(h.len, 0xffffffffu);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.op, 9);
	assert_int_equal(h.status, 0xabcd);
	assert_int_equal(h.id, 1);
	assert_int_equal(buf_left(&r), 1);
	assert_int_equal(wire_check_len(h.len), KT_FRAME_TOO_LARGE);
}

/* ---- refusals ---- */

static void test_parse_truncated(void **state)
{
	uint8_t body[64];
	size_t len;

	(void)state;
	/* Header cut after 1, 2 and 3 bytes. */
	body[0] = 0x00;
	body[1] = WIRE_T_NAME;
	body[2] = 0x00;
	assert_refused(body, 1, "field header truncated at byte 0 of the body");
	assert_refused(body, 2, "field header truncated at byte 0 of the body");
	assert_refused(body, 3, "field header truncated at byte 0 of the body");
	/* After a good field: the offset is where the bad one starts. */
	len = field(body, WIRE_T_PADDING, 1, "\x01");
	body[len++] = 0x00;
	body[len++] = 0x01;
	assert_refused(body, len, "field header truncated at byte 5 of the body");

	/* Value shorter than announced: the field is named. */
	len = field(body, WIRE_T_NAME, 5, "abcde");
	assert_refused(body, len - 1, "field NAME truncated at byte 0 of the body");
	assert_refused(body, 4, "field NAME truncated at byte 0 of the body");
	len = field(body, WIRE_T_ALG_ID, 4, "\0\0\x66\x0e");
	len += field(body + len, WIRE_T_BLOB, 3, "xyz");
	assert_refused(body, len - 2, "field BLOB truncated at byte 8 of the body");
	/* An unknown tag with a truncated value. */
	len = field(body, 0xffff, 9, "123456789");
	assert_refused(body, 6, "field UNKNOWN (tag 65535) truncated at byte 0 of the body");

	/* An empty body is fine. */
	{
		struct wire_fields m;

		assert_accepted(body, 0, &m);
		assert_accepted(NULL, 0, &m);
	}
}

static void test_parse_unknown_tag(void **state)
{
	uint8_t body[64];
	size_t len;

	(void)state;
	len = field(body, 0, 1, "x");
	assert_refused(body, len, "unknown field tag 0");
	len = field(body, WIRE_T_MAX, 0, NULL);
	assert_refused(body, len, "unknown field tag 55");
	len = field(body, 56, 0, NULL);
	assert_refused(body, len, "unknown field tag 56");
	len = field(body, 0xffff, 2, "ab");
	assert_refused(body, len, "unknown field tag 65535");
	/* After good fields. */
	len = field(body, WIRE_T_NAME, 1, "a");
	len += field(body + len, 57, 0, NULL);
	assert_refused(body, len, "unknown field tag 57");
}

static void test_parse_duplicates(void **state)
{
	uint8_t body[256];
	size_t len;
	struct wire_fields m;

	(void)state;
	for (size_t i = 0; i < NTAGS; i++) {
		const struct tag_def *t = &tag_defs[i];
		unsigned n = t->type == WT_U8 ? 1 : t->type == WT_U32 ? 4 : t->type == WT_U64 ? 8 : 1;
		char want[64];

		len = field(body, (uint16_t)t->tag, (uint16_t)n, "AAAAAAAA");
		len += field(body + len, WIRE_T_NAME == t->tag ? WIRE_T_ID : WIRE_T_NAME, 1, "n");
		len += field(body + len, (uint16_t)t->tag, (uint16_t)n, "BBBBBBBB");
		if (t->type == WT_GROUP) {
			/* The group "AAAA..." of length 1 is not parsed here. */
			assert_accepted(body, len, &m);
			assert_int_equal(m.f[t->tag].p[0], 'A');
			continue;
		}
		snprintf(want, sizeof(want), "field %s given twice", t->name);
		assert_refused(body, len, want);
	}
	/* Even identical values are a duplicate. */
	len = field(body, WIRE_T_ALG_ID, 4, "\0\0\x66\x0e");
	len += field(body + len, WIRE_T_ALG_ID, 4, "\0\0\x66\x0e");
	assert_refused(body, len, "field ALG_ID given twice");
}

/* Each type's lengths: fixed sizes exactly, variable ones up to max. */
static void test_parse_lengths(void **state)
{
	uint8_t *body = calloc(1, 70000);
	struct wire_fields m;
	char want[128];

	(void)state;
	assert_non_null(body);
	memset(body + WIRE_FIELD_HDR_LEN, 'z', 65535);
	for (size_t i = 0; i < NTAGS; i++) {
		const struct tag_def *t = &tag_defs[i];
		unsigned good_lo, good_hi;

		switch (t->type) {
		case WT_U8:
			good_lo = good_hi = 1;
			break;
		case WT_U32:
			good_lo = good_hi = 4;
			break;
		case WT_U64:
			good_lo = good_hi = 8;
			break;
		default:
			good_lo = 0;
			good_hi = t->max;
			break;
		}
		assert_int_equal(t->max, t->type == WT_U8 ? 1 : t->type == WT_U32 ? 4 :
					 t->type == WT_U64 ? 8 : t->max);
		for (unsigned n = 0; n <= 10; n++) {
			unsigned lens[3] = { n, good_hi + n, good_hi > n ? good_hi - n : 0 };

			for (unsigned k = 0; k < 3; k++) {
				unsigned l = lens[k];
				int ok = l >= good_lo && l <= good_hi;

				if (l > 65535)
					continue;
				/* A group's value must parse as fields for the accepted case
				 * to mean anything; only the outer length matters here. */
				body[0] = (uint8_t)(t->tag >> 8);
				body[1] = (uint8_t)t->tag;
				body[2] = (uint8_t)(l >> 8);
				body[3] = (uint8_t)l;
				if (ok) {
					assert_accepted(body, WIRE_FIELD_HDR_LEN + l, &m);
					assert_true(wire_has(&m, t->tag));
					assert_int_equal(m.f[t->tag].len, l);
					assert_ptr_equal(m.f[t->tag].p, body + WIRE_FIELD_HDR_LEN);
				} else {
					snprintf(want, sizeof(want), "field %s has a bad length (%u)",
						 t->name, l);
					assert_refused(body, WIRE_FIELD_HDR_LEN + l, want);
				}
			}
		}
		/* The largest length a field header can hold. */
		if (good_hi < 65535) {
			body[2] = body[3] = 0xff;
			snprintf(want, sizeof(want), "field %s has a bad length (65535)", t->name);
			assert_refused(body, WIRE_FIELD_HDR_LEN + 65535, want);
		}
	}
	free(body);

	/* Spot checks with literal numbers, independent of the table above. */
	{
		uint8_t b[64];

		assert_refused(b, field(b, WIRE_T_PADDING, 0, NULL), "field PADDING has a bad length (0)");
		assert_refused(b, field(b, WIRE_T_PADDING, 2, "ab"), "field PADDING has a bad length (2)");
		assert_refused(b, field(b, WIRE_T_ALG_ID, 3, "abc"), "field ALG_ID has a bad length (3)");
		assert_refused(b, field(b, WIRE_T_ALG_ID, 5, "abcde"), "field ALG_ID has a bad length (5)");
		assert_refused(b, field(b, WIRE_T_UPTIME, 7, "abcdefg"), "field UPTIME has a bad length (7)");
		assert_refused(b, field(b, WIRE_T_UPTIME, 9, "abcdefghi"), "field UPTIME has a bad length (9)");
		assert_refused(b, field(b, WIRE_T_SESSION_KEY, 33, "0123456789abcdef0123456789abcdef!"),
			       "field SESSION_KEY has a bad length (33)");
		assert_refused(b, field(b, WIRE_T_RANDOM, 17, "0123456789abcdef!"),
			       "field RANDOM has a bad length (17)");
		assert_refused(b, field(b, WIRE_T_TOKEN_LABEL, 33, "0123456789abcdef0123456789abcdef!"),
			       "field TOKEN_LABEL has a bad length (33)");
	}
}

static void test_parse_nul_in_string(void **state)
{
	uint8_t body[64];
	struct wire_fields m;
	char s[16];

	(void)state;
	assert_refused(body, field(body, WIRE_T_NAME, 3, "a\0b"), "field NAME contains a NUL byte");
	assert_refused(body, field(body, WIRE_T_LABEL, 1, "\0"), "field LABEL contains a NUL byte");
	assert_refused(body, field(body, WIRE_T_MESSAGE, 2, "x\0"), "field MESSAGE contains a NUL byte");
	assert_refused(body, field(body, WIRE_T_VERSION, 2, "\0x"), "field VERSION contains a NUL byte");
	assert_refused(body, field(body, WIRE_T_TOKEN_LABEL, 2, "\0\0"),
		       "field TOKEN_LABEL contains a NUL byte");
	/* Bytes may hold NULs. */
	assert_accepted(body, field(body, WIRE_T_ID, 3, "a\0b"), &m);
	assert_int_equal(m.f[WIRE_T_ID].len, 3);
	assert_int_equal(m.f[WIRE_T_ID].p[1], 0);
	/* Other bytes (UTF-8, control characters) are text. */
	assert_accepted(body, field(body, WIRE_T_NAME, 3, "\x01\xff\n"), &m);
	assert_int_equal(wire_get_str(&m, WIRE_T_NAME, s, sizeof(s)), 0);
	assert_string_equal(s, "\x01\xff\n");
}

/* A request is read more strictly than a group inside an answer. */
static void assert_request_refused(const uint8_t *body, size_t len, const char *want)
{
	assert_refused_by(wire_parse_request, body, len, want);
}

/* The tags a request may carry, as docs/protocol.md's "in" column says (request or both). */
static int request_tag(unsigned tag)
{
	static const unsigned req[] = {
		WIRE_T_NAME, WIRE_T_BLOB, WIRE_T_PADDING, WIRE_T_ALG_ID, WIRE_T_SESSION_KEY,
		WIRE_T_PUBLIC_KEY, WIRE_T_FORMAT, WIRE_T_KEY_BITS, WIRE_T_RANDOM, WIRE_T_AES_KEY,
		WIRE_T_STATUS_SEQ, WIRE_T_COMMAND_SEQ, WIRE_T_SIGNATURE, WIRE_T_BITS, WIRE_T_EXPONENT,
		WIRE_T_FLAGS, WIRE_T_PRIVATE_KEY, WIRE_T_SESSION, WIRE_T_DATA, WIRE_T_OMAC, WIRE_T_KIND,
	};

	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
		if (req[i] == tag)
			return 1;
	return 0;
}

static void test_request_rules(void **state)
{
	uint8_t body[256];
	struct wire_fields m;
	char why[256] = "", want[80];
	size_t len;

	(void)state;
	/* Strings must be UTF-8: no stray, overlong, surrogate or too-large sequences. */
	assert_request_refused(body, field(body, WIRE_T_NAME, 2, "\xff\xfe"), "field NAME is not valid UTF-8");
	assert_request_refused(body, field(body, WIRE_T_NAME, 2, "\xc0\x80"), "field NAME is not valid UTF-8");
	assert_request_refused(body, field(body, WIRE_T_NAME, 3, "\xed\xa0\x80"),
			       "field NAME is not valid UTF-8");
	assert_request_refused(body, field(body, WIRE_T_NAME, 4, "\xf4\x90\x80\x80"),
			       "field NAME is not valid UTF-8");
	assert_request_refused(body, field(body, WIRE_T_NAME, 2, "a\xc3"), "field NAME is not valid UTF-8");
	assert_int_equal(wire_parse_request(body, field(body, WIRE_T_NAME, 7, "k\xc3\xa9y\xe2\x82\xac"),
					    &m, why, sizeof(why)), 0);
	/* Reserved FLAGS bits. */
	assert_request_refused(body, field(body, WIRE_T_FLAGS, 4, "\0\0\0\x04"),
			       "field FLAGS sets reserved bits (0x00000004)");
	assert_request_refused(body, field(body, WIRE_T_FLAGS, 4, "\x80\0\0\x01"),
			       "field FLAGS sets reserved bits (0x80000000)");
	assert_int_equal(wire_parse_request(body, field(body, WIRE_T_FLAGS, 4, "\0\0\0\x01"), &m, why,
					    sizeof(why)), 0);
	assert_int_equal(wire_parse_request(body, field(body, WIRE_T_FLAGS, 4, "\0\0\0\x03"), &m, why,
					    sizeof(why)), 0);
	/* Answer-only tags are refused; every request tag is refused when repeated. */
	for (size_t i = 0; i < NTAGS; i++) {
		const struct tag_def *t = &tag_defs[i];
		unsigned n = t->type == WT_U8 ? 1 : t->type == WT_U32 ? 4 : t->type == WT_U64 ? 8 : 1;
		const char *v1 = t->tag == WIRE_T_FLAGS ? "\0\0\0\0" : "AAAAAAAA";
		const char *v2 = t->tag == WIRE_T_FLAGS ? "\0\0\0\0" : "BBBBBBBB";

		len = field(body, (uint16_t)t->tag, (uint16_t)n, v1);
		if (!request_tag(t->tag)) {
			snprintf(want, sizeof(want), "field %s is only sent in answers", t->name);
			assert_request_refused(body, len, want);
			continue;
		}
		if (wire_parse_request(body, len, &m, why, sizeof(why)) != 0)
			fail_msg("%s refused: %s", t->name, why);
		len += field(body + len, (uint16_t)t->tag, (uint16_t)n, v2);
		snprintf(want, sizeof(want), "field %s given twice", t->name);
		assert_request_refused(body, len, want);
	}
	/* Unknown tags stay refused, as in groups. */
	assert_request_refused(body, field(body, 55, 1, "x"), "unknown field tag 55");
}

/* A short why buffer gets a truncated, still terminated message. */
static void test_parse_short_why(void **state)
{
	uint8_t body[16];
	struct wire_fields m;
	char why[8];

	(void)state;
	memset(why, 'x', sizeof(why));
	assert_int_equal(wire_parse_fields(body, field(body, 0, 0, NULL), &m, why, sizeof(why)), -1);
	assert_string_equal(why, "unknown");
}

static void test_get_str_capacity(void **state)
{
	uint8_t body[64];
	struct wire_fields m;
	char s[8];

	(void)state;
	assert_accepted(body, field(body, WIRE_T_NAME, 3, "abc"), &m);
	memset(s, 'x', sizeof(s));
	assert_int_equal(wire_get_str(&m, WIRE_T_NAME, s, 4), 0);
	assert_string_equal(s, "abc");
	memset(s, 'x', sizeof(s));
	assert_int_equal(wire_get_str(&m, WIRE_T_NAME, s, 3), -1);
	assert_int_equal(s[0], 'x');
	assert_int_equal(s[3], 'x');
	assert_int_equal(wire_get_str(&m, WIRE_T_NAME, s, 0), -1);
	assert_int_equal(wire_get_str(&m, WIRE_T_LABEL, s, sizeof(s)), -1);

	assert_accepted(body, field(body, WIRE_T_LABEL, 0, NULL), &m);
	assert_int_equal(wire_get_str(&m, WIRE_T_LABEL, s, 1), 0);
	assert_string_equal(s, "");
	assert_int_equal(wire_get_str(&m, WIRE_T_LABEL, s, 0), -1);
}

/* ---- writer ---- */

static void test_writer_overflow(void **state)
{
	uint8_t out[WIRE_HDR_LEN + 8], *big;
	struct buf_writer w;
	size_t at;

	(void)state;
	/* Not even room for the header. */
	buf_writer_init(&w, out, WIRE_HDR_LEN - 1);
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(w.err, 1);
	assert_int_equal(wire_end(&w), -1);

	/* Exactly full is fine. */
	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(wire_put_u32(&w, WIRE_T_KEY_COUNT, 1), 0);
	assert_int_equal(wire_end(&w), 0);
	assert_int_equal(w.len, sizeof(out));

	/* One byte more fails, and so does every later step. */
	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(wire_put_str(&w, WIRE_T_NAME, "abcde"), -1);
	assert_int_equal(w.err, 1);
	assert_int_equal(wire_put_u8(&w, WIRE_T_PADDING, 0), -1);
	assert_int_equal(wire_end(&w), -1);

	/* Each putter at a writer with room for the field header only. */
	buf_writer_init(&w, out, WIRE_HDR_LEN + 4);
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(wire_put_u8(&w, WIRE_T_FORMAT, 1), -1);
	assert_int_equal(wire_end(&w), -1);
	buf_writer_init(&w, out, WIRE_HDR_LEN + 4);
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(wire_put_u32(&w, WIRE_T_BITS, 1), -1);
	assert_int_equal(wire_end(&w), -1);
	buf_writer_init(&w, out, WIRE_HDR_LEN + 7);
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(wire_put_u64(&w, WIRE_T_UPTIME, 1), -1);
	assert_int_equal(wire_end(&w), -1);
	/* A failed field header: the u32 and u64 putters must not claim success. */
	buf_writer_init(&w, out, WIRE_HDR_LEN + 2);
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(wire_put_u32(&w, WIRE_T_BITS, 1), -1);
	buf_writer_init(&w, out, WIRE_HDR_LEN + 2);
	wire_begin(&w, WIRE_OP_INFO, 0, 1);
	assert_int_equal(wire_put_u64(&w, WIRE_T_UPTIME, 1), -1);

	/* A group that overflows. */
	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_KEYS, 0, 1);
	at = wire_group_begin(&w, WIRE_T_KEY_ENTRY);
	assert_int_equal(wire_put_str(&w, WIRE_T_NAME, "k"), -1);
	assert_int_equal(wire_group_end(&w, at), -1);
	assert_int_equal(wire_end(&w), -1);

	/* Values longer than a field can say: refused even with room. */
	big = calloc(1, 140000);
	assert_non_null(big);
	buf_writer_init(&w, big, 140000);
	wire_begin(&w, WIRE_OP_WRAP, 0, 1);
	assert_int_equal(wire_put_bytes(&w, WIRE_T_PUBLIC_KEY, big + 70000, 65536), -1);
	assert_int_equal(w.err, 1);
	assert_int_equal(w.len, WIRE_HDR_LEN);
	assert_int_equal(wire_end(&w), -1);
	/* 65535 is the most a field holds. */
	buf_writer_init(&w, big, 140000);
	wire_begin(&w, WIRE_OP_WRAP, 0, 1);
	assert_int_equal(wire_put_bytes(&w, WIRE_T_PUBLIC_KEY, big + 70000, 65535), 0);
	/* A group whose content grew past 65535. */
	buf_writer_init(&w, big, 140000);
	wire_begin(&w, WIRE_OP_KEYS, 0, 1);
	at = wire_group_begin(&w, WIRE_T_KEY_ENTRY);
	assert_int_equal(wire_put_bytes(&w, WIRE_T_PUBLIC_KEY, big + 70000, 60000), 0);
	assert_int_equal(wire_put_bytes(&w, WIRE_T_BLOB, big + 70000, 6000), 0);
	assert_int_equal(wire_group_end(&w, at), -1);
	assert_int_equal(w.err, 1);
	assert_int_equal(wire_end(&w), -1);
	free(big);
}

/* ---- names ---- */

static void test_status_names(void **state)
{
	struct st {
		const char *name;
		int code;
		const char *text;
	};
	static const struct st all[] = {
#define ST(name, code, desc) { #name, code, desc },
		KT_STATUS_LIST(ST)
		KT_LOCAL_STATUS_LIST(ST)
#undef ST
	};
	size_t n = sizeof(all) / sizeof(all[0]), wire_codes = 0;

	(void)state;
	assert_int_equal(n, 37);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(wire_status_name(all[i].code), all[i].name);
		assert_string_equal(wire_status_text(all[i].code), all[i].text);
		assert_string_not_equal(all[i].name, "UNKNOWN");
		if (all[i].code >= 0)
			wire_codes++;
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(all[i].code, all[j].code);
			assert_string_not_equal(all[i].name, all[j].name);
			assert_string_not_equal(all[i].text, all[j].text);
		}
	}
	assert_int_equal(wire_codes, 31);
	/* Known by value. */
	assert_string_equal(wire_status_name(KT_OK), "OK");
	assert_string_equal(wire_status_name(14), "UNWRAP_FAILED");
	assert_string_equal(wire_status_name(22), "SHUTTING_DOWN");
	assert_string_equal(wire_status_name(-1), "ERR_CONNECT");
	assert_string_equal(wire_status_name(-6), "ERR_TIMEOUT");
	assert_string_equal(wire_status_text(14), "decryption failed");
	assert_string_equal(wire_status_text(KT_BUSY), "daemon overloaded, try again");
	/* Unknown. */
	assert_string_equal(wire_status_name(23), "DENIED");
	assert_string_equal(wire_status_name(24), "TIMEOUT");
	assert_string_equal(wire_status_name(25), "HSM_UNAVAILABLE");
	assert_string_equal(wire_status_name(26), "NOT_SUPPORTED");
	assert_string_equal(wire_status_name(27), "OMAC_MISMATCH");
	assert_string_equal(wire_status_name(28), "UNKNOWN_SESSION");
	assert_string_equal(wire_status_name(29), "BAD_SEQUENCE");
	assert_string_equal(wire_status_name(30), "SESSION_LIMIT");
	assert_string_equal(wire_status_name(31), "UNKNOWN");
	assert_string_equal(wire_status_name(-7), "UNKNOWN");
	assert_string_equal(wire_status_name(0xffff), "UNKNOWN");
	assert_string_equal(wire_status_name(-2147483647 - 1), "UNKNOWN");
	assert_string_equal(wire_status_text(31), "unknown status");
	assert_string_equal(wire_status_text(-7), "unknown status");
	assert_string_equal(wire_status_text(65535), "unknown status");
}

static void test_op_and_tag_names(void **state)
{
	struct op {
		const char *str;
		unsigned code;
	};
	static const struct op ops[] = {
#define OP(name, code, str) { str, code },
		WIRE_OP_LIST(OP)
#undef OP
	};

	(void)state;
	assert_int_equal(sizeof(ops) / sizeof(ops[0]), 15);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		assert_string_equal(wire_op_name(ops[i].code), ops[i].str);
	assert_string_equal(wire_op_name(1), "info");
	assert_string_equal(wire_op_name(4), "unwrap");
	assert_string_equal(wire_op_name(6), "copp-sign");
	assert_string_equal(wire_op_name(7), "copp-open");
	assert_string_equal(wire_op_name(0), "unknown");
	assert_string_equal(wire_op_name(8), "stats");
	assert_string_equal(wire_op_name(9), "keygen");
	assert_string_equal(wire_op_name(10), "import");
	assert_string_equal(wire_op_name(11), "opm-sign");
	assert_string_equal(wire_op_name(12), "opm-open");
	assert_string_equal(wire_op_name(13), "session-mac");
	assert_string_equal(wire_op_name(14), "session-verify");
	assert_string_equal(wire_op_name(15), "session-close");
	assert_string_equal(wire_op_name(16), "unknown");
	assert_string_equal(wire_op_name(255), "unknown");
	assert_string_equal(wire_op_name(0xffffffffu), "unknown");

	assert_int_equal(NTAGS, 54);
	for (size_t i = 0; i < NTAGS; i++) {
		assert_int_equal(tag_defs[i].tag, i + 1);
		assert_string_equal(wire_tag_name(tag_defs[i].tag), tag_defs[i].name);
	}
	assert_string_equal(wire_tag_name(1), "NAME");
	assert_string_equal(wire_tag_name(20), "KEY_ENTRY");
	assert_string_equal(wire_tag_name(24), "EXPONENT");
	assert_string_equal(wire_tag_name(0), "UNKNOWN");
	assert_string_equal(wire_tag_name(25), "FLAGS");
	assert_string_equal(wire_tag_name(27), "MECHANISM");
	assert_string_equal(wire_tag_name(32), "LAST_ERROR");
	assert_string_equal(wire_tag_name(33), "OP_ENTRY");
	assert_string_equal(wire_tag_name(43), "QUEUED");
	assert_string_equal(wire_tag_name(44), "RECIPIENT_HITS");
	assert_string_equal(wire_tag_name(46), "RECIPIENTS");
	assert_string_equal(wire_tag_name(47), "SESSION");
	assert_string_equal(wire_tag_name(50), "PRIVATE_KEY");
	assert_string_equal(wire_tag_name(54), "SESSIONS_EXPIRED");
	assert_string_equal(wire_tag_name(55), "UNKNOWN");
	assert_string_equal(wire_tag_name(0xffff), "UNKNOWN");
	assert_string_equal(wire_tag_name(0xffffffffu), "UNKNOWN");
}

/* ---- random bodies ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	/* xorshift64*: fixed seed, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* Mostly well-formed fields, with random damage, so that many are accepted. */
static size_t plausible_body(uint8_t *p, size_t cap)
{
	size_t len = 0;
	unsigned nfields = rnd() % 6;

	for (unsigned i = 0; i < nfields; i++) {
		unsigned tag = rnd() % 27;
		const struct tag_def *t = tag_def(tag);
		unsigned n;

		if (t != NULL && rnd() % 4 != 0)
			n = t->type == WT_U8 ? 1 : t->type == WT_U32 ? 4 : t->type == WT_U64 ? 8 :
			    rnd() % (t->max < 40 ? t->max + 1 : 40);
		else
			n = rnd() % 12;
		if (len + 4 + n > cap)
			break;
		p[len++] = (uint8_t)(tag >> 8);
		p[len++] = (uint8_t)tag;
		p[len++] = (uint8_t)(n >> 8);
		p[len++] = (uint8_t)n;
		for (unsigned k = 0; k < n; k++)
			p[len++] = (uint8_t)('a' + rnd() % 26);
	}
	/* Sometimes damage one byte or cut the end. */
	if (len > 0 && rnd() % 3 == 0)
		p[rnd() % len] = (uint8_t)rnd();
	if (len > 0 && rnd() % 5 == 0)
		len -= rnd() % len;
	return len;
}

static void test_random_bodies(void **state)
{
	unsigned accepted = 0, refused = 0;

	(void)state;
	for (int i = 0; i < 2000; i++) {
		uint8_t tmp[320];
		size_t len;
		uint8_t *p;
		struct wire_fields m;
		struct wire_field f;
		char why[256];
		size_t off;

		if (i % 2 == 0) {
			len = rnd() % 300;
			for (size_t k = 0; k < len; k++)
				tmp[k] = (uint8_t)rnd();
		} else {
			len = plausible_body(tmp, sizeof(tmp));
		}
		/* Exactly len bytes on the heap, so any over-read shows under ASan. */
		p = malloc(len ? len : 1);
		assert_non_null(p);
		memcpy(p, tmp, len);
		why[0] = '\0';
		if (wire_parse_fields(p, len, &m, why, sizeof(why)) != 0) {
			assert_true(why[0] != '\0');
			assert_non_null(memchr(why, '\0', sizeof(why)));
			refused++;
			free(p);
			continue;
		}
		accepted++;
		assert_false(m.f[0].present);
		for (unsigned t = 1; t < WIRE_T_MAX; t++) {
			const struct tag_def *d = tag_def(t);

			if (!m.f[t].present)
				continue;
			assert_non_null(d);
			assert_true(m.f[t].p >= p + WIRE_FIELD_HDR_LEN);
			assert_true(m.f[t].p + m.f[t].len <= p + len);
			assert_true(m.f[t].len <= d->max);
			if (d->type == WT_U8 || d->type == WT_U32 || d->type == WT_U64)
				assert_int_equal(m.f[t].len, d->max);
			if (d->type == WT_STR)
				assert_null(memchr(m.f[t].p, 0, m.f[t].len));
		}
		off = 0;
		while (wire_next_field(p, len, &off, WIRE_T_KEY_ENTRY, &f) == 1) {
			assert_true(f.p >= p && f.p + f.len <= p + len);
			assert_true(off <= len);
		}
		assert_int_equal(off, len);
		free(p);
	}
	/* The generator must exercise both outcomes. */
	assert_true(accepted >= 200);
	assert_true(refused >= 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_bytes),
		cmocka_unit_test(test_frame_empty),
		cmocka_unit_test(test_roundtrip_scalars),
		cmocka_unit_test(test_roundtrip_max_lengths),
		cmocka_unit_test(test_roundtrip_groups),
		cmocka_unit_test(test_next_field_errors),
		cmocka_unit_test(test_check_len),
		cmocka_unit_test(test_get_hdr),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_unknown_tag),
		cmocka_unit_test(test_parse_duplicates),
		cmocka_unit_test(test_parse_lengths),
		cmocka_unit_test(test_parse_nul_in_string),
		cmocka_unit_test(test_parse_short_why),
		cmocka_unit_test(test_request_rules),
		cmocka_unit_test(test_get_str_capacity),
		cmocka_unit_test(test_writer_overflow),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_op_and_tag_names),
		cmocka_unit_test(test_random_bodies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
