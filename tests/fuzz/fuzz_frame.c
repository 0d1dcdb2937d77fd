/*
 * fuzz_frame: common/wire.c on bytes as they come off the socket (daemon and
 * client alike): the 12-byte header, the length check, the fields of the
 * body, every KEY_ENTRY group, the getters, and re-encoding what was parsed.
 *
 * Invariants: a parse that succeeds yields fields that lie inside the input,
 * of known tags, with their type's length, strings without NUL, the first
 * occurrence of each tag; the getters agree with the parsed lengths; and the
 * fields re-encoded with the writers parse back to the same fields.
 */
#include <string.h>

#include "fuzz.h"
#include "wire.h"

static const struct {
	const char *name;
	enum wire_type type;
	uint16_t max;
} tag_info[WIRE_T_MAX] = {
#define TAG_INFO(name, tag, type, max, dir) [tag] = { #name, type, max },
	WIRE_TAG_LIST(TAG_INFO)
#undef TAG_INFO
};

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void check_getters(const struct wire_fields *m, unsigned t)
{
	const struct wire_field *f = &m->f[t];
	char str[2048];
	uint8_t v8;
	uint32_t v32;
	uint64_t v64;
	int rc;

	rc = wire_get_u8(m, t, &v8);
	FUZZ_CHECK((rc == 0) == (f->present && f->len == 1));
	if (rc == 0)
		FUZZ_CHECK(v8 == f->p[0]);
	rc = wire_get_u32(m, t, &v32);
	FUZZ_CHECK((rc == 0) == (f->present && f->len == 4));
	if (rc == 0)
		FUZZ_CHECK(v32 == be(f->p, 4));
	rc = wire_get_u64(m, t, &v64);
	FUZZ_CHECK((rc == 0) == (f->present && f->len == 8));
	if (rc == 0)
		FUZZ_CHECK(v64 == be(f->p, 8));
	rc = wire_get_str(m, t, str, sizeof(str));
	FUZZ_CHECK((rc == 0) == (f->present && f->len < sizeof(str) &&
				 memchr(f->p, 0, f->len) == NULL));
	if (rc == 0)
		FUZZ_CHECK(memcmp(str, f->p, f->len) == 0 && str[f->len] == '\0');
	if (f->present)     /* no room for the NUL */
		FUZZ_CHECK(wire_get_str(m, t, str, f->len) == -1);
}

/* Checks a successfully parsed run of fields p[0..len). */
static void check_fields(const uint8_t *p, size_t len, const struct wire_fields *m)
{
	for (unsigned t = 0; t < WIRE_T_MAX; t++) {
		const struct wire_field *f = &m->f[t];
		struct wire_field first;
		size_t off = 0;

		check_getters(m, t);
		FUZZ_CHECK(wire_has(m, t) == !!f->present);
		if (!f->present)
			continue;
		FUZZ_CHECK(tag_info[t].name != NULL);
		FUZZ_CHECK(fuzz_inside(f->p, f->len, p, len));
		switch (tag_info[t].type) {
		case WT_U8:
			FUZZ_CHECK(f->len == 1);
			break;
		case WT_U32:
			FUZZ_CHECK(f->len == 4);
			break;
		case WT_U64:
			FUZZ_CHECK(f->len == 8);
			break;
		case WT_STR:
			FUZZ_CHECK(memchr(f->p, 0, f->len) == NULL);
			/* fall through */
		case WT_BYTES:
		case WT_GROUP:
			FUZZ_CHECK(f->len <= tag_info[t].max);
			break;
		}
		/* The field kept is the tag's first occurrence. */
		FUZZ_CHECK(wire_next_field(p, len, &off, t, &first) == 1);
		FUZZ_CHECK(first.p == f->p && first.len == f->len);
	}
	FUZZ_CHECK(!wire_has(m, WIRE_T_MAX) && !wire_has(m, 0xffff));
}

/* Every KEY_ENTRY group of a body that parsed; returns how many. */
static size_t check_groups(const uint8_t *p, size_t len)
{
	struct wire_field g;
	size_t off = 0, n = 0, prev = 0;
	int rc;

	while ((rc = wire_next_field(p, len, &off, WIRE_T_KEY_ENTRY, &g)) == 1) {
		struct wire_fields m;
		char why[256];

		FUZZ_CHECK(off > prev && off <= len);
		prev = off;
		FUZZ_CHECK(fuzz_inside(g.p, g.len, p, len));
		FUZZ_CHECK(g.p + g.len == p + off);
		if (wire_parse_fields(g.p, g.len, &m, why, sizeof(why)) == 0)
			check_fields(g.p, g.len, &m);
		else
			FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
		n++;
	}
	FUZZ_CHECK(rc == 0);    /* the body parsed, so the walk cannot fail */
	return n;
}

/* Writes the parsed fields (every KEY_ENTRY) into a frame, parses it back, compares. */
static void check_reencode(const uint8_t *body, size_t len, const struct wire_fields *m,
			   size_t groups)
{
	static uint8_t out[WIRE_FRAME_MAX];
	struct buf_writer w;
	struct buf_reader r;
	struct wire_fields back;
	struct wire_hdr h;
	struct wire_field g;
	size_t off = 0, n = 0;
	char why[256];

	buf_writer_init(&w, out, sizeof(out));
	wire_begin(&w, WIRE_OP_KEYS, KT_OK, 0x01020304);
	for (unsigned t = 0; t < WIRE_T_MAX; t++)
		if (m->f[t].present && t != WIRE_T_KEY_ENTRY)
			wire_put_bytes(&w, t, m->f[t].p, m->f[t].len);
	while (wire_next_field(body, len, &off, WIRE_T_KEY_ENTRY, &g) == 1) {
		size_t at = wire_group_begin(&w, WIRE_T_KEY_ENTRY);

		buf_put_bytes(&w, g.p, g.len);
		wire_group_end(&w, at);
	}
	if (wire_end(&w) != 0) {
		/* Only a body that the tag-ordered rewrite makes no longer can fail. */
		FUZZ_CHECK(WIRE_HDR_LEN + len > sizeof(out));
		return;
	}
	buf_reader_init(&r, out, w.len);
	FUZZ_CHECK(wire_get_hdr(&r, &h) == 0);
	FUZZ_CHECK(h.len == w.len - 4 && h.version == WIRE_VERSION && h.op == WIRE_OP_KEYS &&
		   h.status == KT_OK && h.id == 0x01020304);
	FUZZ_CHECK(wire_check_len(h.len) == KT_OK);
	FUZZ_CHECK(wire_parse_fields(out + WIRE_HDR_LEN, w.len - WIRE_HDR_LEN, &back, why,
				     sizeof(why)) == 0);
	for (unsigned t = 0; t < WIRE_T_MAX; t++) {
		FUZZ_CHECK(back.f[t].present == m->f[t].present);
		if (m->f[t].present)
			FUZZ_CHECK(back.f[t].len == m->f[t].len &&
				   memcmp(back.f[t].p, m->f[t].p, m->f[t].len) == 0);
	}
	off = 0;
	while (wire_next_field(out + WIRE_HDR_LEN, w.len - WIRE_HDR_LEN, &off, WIRE_T_KEY_ENTRY,
			       &g) == 1)
		n++;
	FUZZ_CHECK(n == groups);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_fields m;
	struct buf_reader r;
	struct wire_hdr h;
	char why[256];
	size_t body_len;
	uint8_t *body;
	int st;

	buf_reader_init(&r, data, size);
	if (wire_get_hdr(&r, &h) != 0) {
		FUZZ_CHECK(size < WIRE_HDR_LEN && r.off == 0);
		return 0;
	}
	FUZZ_CHECK(r.off == WIRE_HDR_LEN);
	FUZZ_CHECK(h.len == be(data, 4) && h.version == data[4] && h.op == data[5] &&
		   h.status == be(data + 6, 2) && h.id == be(data + 8, 4));
	FUZZ_CHECK(wire_op_name(h.op) != NULL && wire_status_name(h.status) != NULL &&
		   wire_status_text(h.status) != NULL && wire_tag_name(h.op) != NULL);
	st = wire_check_len(h.len);
	FUZZ_CHECK(st == (h.len < WIRE_HDR_LEN - 4 ? KT_BAD_FRAME :
			  h.len > WIRE_FRAME_MAX - 4 ? KT_FRAME_TOO_LARGE : KT_OK));
	/* The body as the reader cuts it; a short input stands for a frame still arriving. */
	body_len = size - WIRE_HDR_LEN;
	if (st == KT_OK && h.len - (WIRE_HDR_LEN - 4) < body_len)
		body_len = h.len - (WIRE_HDR_LEN - 4);
	body = fuzz_dup(data + WIRE_HDR_LEN, body_len);
	why[0] = '\0';
	/* A request is read more strictly: whatever it accepts, the plain reader accepts too. */
	if (wire_parse_request(body, body_len, &m, why, sizeof(why)) == 0) {
		FUZZ_CHECK(wire_parse_fields(body, body_len, &m, why, sizeof(why)) == 0);
		FUZZ_CHECK(check_groups(body, body_len) == 0);
	} else {
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
	}
	why[0] = '\0';
	if (wire_parse_fields(body, body_len, &m, why, sizeof(why)) == 0) {
		size_t groups;

		check_fields(body, body_len, &m);
		groups = check_groups(body, body_len);
		FUZZ_CHECK((groups > 0) == wire_has(&m, WIRE_T_KEY_ENTRY));
		check_reencode(body, body_len, &m, groups);
	} else {
		struct wire_field g;
		size_t off = 0;

		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
		/* The group walk must stay in bounds on a bad body too. */
		while (wire_next_field(body, body_len, &off, WIRE_T_KEY_ENTRY, &g) == 1)
			FUZZ_CHECK(fuzz_inside(g.p, g.len, body, body_len) && off <= body_len);
	}
	free(body);
	return 0;
}
