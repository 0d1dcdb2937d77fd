/*
 * A tiny JSON writer for the one object a command prints. Strings are
 * escaped (quotes, backslash, control characters as \u00XX); bytes that are
 * not valid UTF-8 become U+FFFD so the output always parses.
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;      /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f;      /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90;      /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f;      /* above U+10FFFF */
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

static void put_string(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (n > 0) {
		size_t len = utf8_seq(p, n);

		if (len == 0) {
			fputs("\\ufffd", f);
			len = 1;
		} else if (*p == '"' || *p == '\\') {
			fputc('\\', f);
			fputc(*p, f);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
		} else {
			fwrite(p, 1, len, f);
		}
		p += len;
		n -= len;
	}
	fputc('"', f);
}

static void member(struct json *j, const char *key)
{
	if (j->n[j->depth]++ > 0)
		fputs(", ", j->f);
	if (key != NULL) {
		put_string(j->f, key, strlen(key));
		fputs(": ", j->f);
	}
}

static void push(struct json *j, char open)
{
	fputc(open, j->f);
	if (j->depth + 1 < JSON_DEPTH)
		j->n[++j->depth] = 0;
}

static void pop(struct json *j, char close)
{
	fputc(close, j->f);
	if (j->depth > 0)
		j->depth--;
}

void json_begin(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->n[0] = 0;
	fputc('{', f);
}

void json_strn(struct json *j, const char *key, const char *s, size_t n)
{
	member(j, key);
	put_string(j->f, s, n);
}

void json_str(struct json *j, const char *key, const char *s)
{
	json_strn(j, key, s, strlen(s));
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void json_null(struct json *j, const char *key)
{
	member(j, key);
	fputs("null", j->f);
}

void json_bool(struct json *j, const char *key, int v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_f64(struct json *j, const char *key, double v)
{
	member(j, key);
	fprintf(j->f, "%.1f", v);
}

void json_hex(struct json *j, const char *key, const uint8_t *p, size_t n)
{
	member(j, key);
	fputc('"', j->f);
	io_print_hex(j->f, p, n);
	fputc('"', j->f);
}

void json_array_begin(struct json *j, const char *key)
{
	member(j, key);
	push(j, '[');
}

void json_array_end(struct json *j)
{
	pop(j, ']');
}

void json_object_begin(struct json *j, const char *key)
{
	member(j, key);
	push(j, '{');
}

void json_object_end(struct json *j)
{
	pop(j, '}');
}

int json_end(struct json *j)
{
	fputs("}\n", j->f);
	return fflush(j->f) == 0 && !ferror(j->f) ? 0 : -1;
}
