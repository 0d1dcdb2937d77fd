#include "base64.h"

#include <string.h>

#include "buf.h"

#define PAD 64          /* sextet() for '=' */
#define SKIP 65         /* sextet() for white space */
#define BAD 66

static int sextet(uint8_t ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	if (ch == '=')
		return PAD;
	if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
		return SKIP;
	return BAD;
}

/* The next four significant characters; 0 at a clean end of text, 1 for a group, -1 if bad. */
static int next_group_spaced(struct buf_reader *r, int q[4])
{
	int n = 0;
	uint8_t ch;

	while (n < 4 && buf_get_u8(r, &ch) == 0) {
		int v = sextet(ch);

		if (v == BAD)
			return -1;
		if (v != SKIP)
			q[n++] = v;
	}
	if (n == 0)
		return 0;
	return n == 4 ? 1 : -1;
}

/* The same; most groups are four characters in a row, taken in one read. */
static int next_group(struct buf_reader *r, int q[4])
{
	struct buf_reader ahead = *r;
	const uint8_t *p;

	if (buf_get_ptr(&ahead, &p, 4) == 0 && (q[0] = sextet(p[0])) <= PAD &&
	    (q[1] = sextet(p[1])) <= PAD && (q[2] = sextet(p[2])) <= PAD &&
	    (q[3] = sextet(p[3])) <= PAD) {
		*r = ahead;
		return 1;
	}
	return next_group_spaced(r, q);
}

/*
 * Bytes a group holds (1..3), or -1: padding only at the group's tail, "xx==" or
 * "xxx=", and the bits the padding leaves unused 0 (canonical text, RFC 4648 3.5:
 * one byte string has one encoding).
 */
static int group_bytes(const int q[4])
{
	if (q[0] == PAD || q[1] == PAD)
		return -1;
	if (q[2] == PAD)
		return q[3] == PAD && (q[1] & 0xf) == 0 ? 1 : -1;
	if (q[3] == PAD)
		return (q[2] & 0x3) == 0 ? 2 : -1;
	return 3;
}

/* The group's n bytes through b, which the caller wipes once at the end. */
static int put_group(struct buf_writer *w, const int q[4], int n, uint8_t b[3])
{
	uint32_t v = (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12;

	if (n > 1)
		v |= (uint32_t)q[2] << 6;
	if (n > 2)
		v |= (uint32_t)q[3];
	b[0] = (uint8_t)(v >> 16);
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)v;
	return buf_put_bytes(w, b, (size_t)n);
}

static long decode(struct buf_reader *r, struct buf_writer *w, int q[4], uint8_t b[3])
{
	int got, n = 3;

	while ((got = next_group(r, q)) == 1) {
		if (n < 3)
			return -1;      /* a padded group was not the last */
		n = group_bytes(q);
		if (n < 0 || put_group(w, q, n, b) != 0)
			return -1;
	}
	return got == 0 ? (long)w->len : -1;
}

long base64_decode(const char *text, size_t len, uint8_t *out, size_t cap)
{
	struct buf_reader r;
	struct buf_writer w;
	int q[4] = { 0 };
	uint8_t b[3] = { 0 };
	long n;

	buf_reader_init(&r, text, len);
	buf_writer_init(&w, out, cap);
	n = decode(&r, &w, q, b);
	/* The last group of a private key's text, as characters and as bytes. */
	explicit_bzero(q, sizeof(q));
	explicit_bzero(b, sizeof(b));
	return n;
}
