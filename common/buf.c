#include "buf.h"

#include <string.h>

void buf_reader_init(struct buf_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->off = 0;
}

size_t buf_left(const struct buf_reader *r)
{
	return r->len - r->off;
}

int buf_expect_end(const struct buf_reader *r)
{
	return buf_left(r) == 0 ? 0 : -1;
}

int buf_get_ptr(struct buf_reader *r, const uint8_t **p, size_t n)
{
	if (n > buf_left(r))
		return -1;
	*p = r->p + r->off;
	r->off += n;
	return 0;
}

int buf_skip(struct buf_reader *r, size_t n)
{
	const uint8_t *p;

	return buf_get_ptr(r, &p, n);
}

int buf_get_bytes(struct buf_reader *r, void *dst, size_t n)
{
	const uint8_t *p;

	if (buf_get_ptr(r, &p, n) != 0)
		return -1;
	if (n > 0)
		memcpy(dst, p, n);
	return 0;
}

int buf_get_bytes_reversed(struct buf_reader *r, void *dst, size_t n)
{
	const uint8_t *p;
	uint8_t *d = dst;

	if (buf_get_ptr(r, &p, n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		d[i] = p[n - 1 - i];
	return 0;
}

int buf_get_u8(struct buf_reader *r, uint8_t *v)
{
	const uint8_t *p;

	if (buf_get_ptr(r, &p, 1) != 0)
		return -1;
	*v = p[0];
	return 0;
}

int buf_get_u16be(struct buf_reader *r, uint16_t *v)
{
	const uint8_t *p;

	if (buf_get_ptr(r, &p, 2) != 0)
		return -1;
	*v = (uint16_t)((p[0] << 8) | p[1]);
	return 0;
}

int buf_get_u32be(struct buf_reader *r, uint32_t *v)
{
	const uint8_t *p;

	if (buf_get_ptr(r, &p, 4) != 0)
		return -1;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return 0;
}

int buf_get_u64be(struct buf_reader *r, uint64_t *v)
{
	uint32_t hi, lo;

	if (buf_left(r) < 8)
		return -1;
	buf_get_u32be(r, &hi);
	buf_get_u32be(r, &lo);
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

int buf_get_u16le(struct buf_reader *r, uint16_t *v)
{
	const uint8_t *p;

	if (buf_get_ptr(r, &p, 2) != 0)
		return -1;
	*v = (uint16_t)(p[0] | (p[1] << 8));
	return 0;
}

int buf_get_u32le(struct buf_reader *r, uint32_t *v)
{
	const uint8_t *p;

	if (buf_get_ptr(r, &p, 4) != 0)
		return -1;
	*v = (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
	return 0;
}

void buf_writer_init(struct buf_writer *w, void *p, size_t cap)
{
	w->p = p;
	w->cap = p ? cap : 0;
	w->len = 0;
	w->err = 0;
}

/* Reserves n bytes at the end; NULL (and the error latched) if they do not fit. */
static uint8_t *reserve(struct buf_writer *w, size_t n)
{
	uint8_t *at;

	if (w->err || n > w->cap - w->len) {
		w->err = 1;
		return NULL;
	}
	at = w->p + w->len;
	w->len += n;
	return at;
}

int buf_put_bytes(struct buf_writer *w, const void *src, size_t n)
{
	uint8_t *at = reserve(w, n);

	if (at == NULL)
		return -1;
	if (n > 0)
		memcpy(at, src, n);
	return 0;
}

int buf_put_bytes_reversed(struct buf_writer *w, const void *src, size_t n)
{
	const uint8_t *s = src;
	uint8_t *at = reserve(w, n);

	if (at == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		at[i] = s[n - 1 - i];
	return 0;
}

int buf_put_u8(struct buf_writer *w, uint8_t v)
{
	return buf_put_bytes(w, &v, 1);
}

int buf_put_u16be(struct buf_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return buf_put_bytes(w, b, sizeof(b));
}

int buf_put_u32be(struct buf_writer *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	return buf_put_bytes(w, b, sizeof(b));
}

int buf_put_u64be(struct buf_writer *w, uint64_t v)
{
	if (buf_put_u32be(w, (uint32_t)(v >> 32)) != 0)
		return -1;
	return buf_put_u32be(w, (uint32_t)v);
}

int buf_put_u16le(struct buf_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	return buf_put_bytes(w, b, sizeof(b));
}

int buf_put_u32le(struct buf_writer *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	return buf_put_bytes(w, b, sizeof(b));
}

int buf_patch_u32be(struct buf_writer *w, size_t off, uint32_t v)
{
	if (off > w->len || w->len - off < 4)
		return -1;
	w->p[off] = (uint8_t)(v >> 24);
	w->p[off + 1] = (uint8_t)(v >> 16);
	w->p[off + 2] = (uint8_t)(v >> 8);
	w->p[off + 3] = (uint8_t)v;
	return 0;
}

int buf_patch_u16be(struct buf_writer *w, size_t off, uint16_t v)
{
	if (off > w->len || w->len - off < 2)
		return -1;
	w->p[off] = (uint8_t)(v >> 8);
	w->p[off + 1] = (uint8_t)v;
	return 0;
}

void buf_reverse(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		uint8_t t = p[i];

		p[i] = p[n - 1 - i];
		p[n - 1 - i] = t;
	}
}
