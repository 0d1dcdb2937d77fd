#include "text.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (at most left bytes), or 0 if none starts there. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
	uint8_t b = p[0];
	size_t n;
	uint32_t cp;

	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		n = 2, cp = b & 0x1f;
	else if (b >= 0xe0 && b <= 0xef)
		n = 3, cp = b & 0x0f;
	else if (b >= 0xf0 && b <= 0xf4)
		n = 4, cp = b & 0x07;
	else
		return 0;       /* a continuation byte, an overlong lead (c0, c1) or past U+10FFFF */
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);

		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

char *text_escape(char *dst, size_t cap, const void *src, size_t len)
{
	const uint8_t *p = src;
	size_t i = 0, o = 0;

	if (cap == 0)
		return dst;
	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);
		int plain = n > 1 || (n == 1 && p[i] >= 0x20 && p[i] != 0x7f && p[i] != '\\');
		size_t need = plain ? n : 4;

		if (o + need >= cap)
			break;
		if (plain)
			memcpy(dst + o, p + i, n);
		else
			snprintf(dst + o, 5, "\\x%02x", p[i]);
		o += need;
		i += plain ? n : 1;
	}
	dst[o] = '\0';
	return dst;
}
