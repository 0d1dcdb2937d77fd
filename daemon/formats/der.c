#include "der.h"

/* A length after its first byte: short form, or one or two bytes. */
static int der_length(struct buf_reader *r, uint8_t first, size_t *len)
{
	uint8_t b;

	if (first < 0x80) {
		*len = first;
		return 0;
	}
	if (first != 0x81 && first != 0x82)      /* indefinite (0x80), or longer than a frame */
		return -1;
	*len = 0;
	for (int i = 0; i < (first & 0x7f); i++) {
		if (buf_get_u8(r, &b) != 0 || (i == 0 && b == 0))
			return -1;
		*len = *len << 8 | b;
	}
	return *len < 0x80 ? -1 : 0;     /* the short form would have done */
}

int der_get(struct buf_reader *r, uint8_t tag, struct buf_reader *contents)
{
	const uint8_t *p;
	uint8_t t, first;
	size_t len;

	if (buf_get_u8(r, &t) != 0 || t != tag || buf_get_u8(r, &first) != 0 ||
	    der_length(r, first, &len) != 0 || buf_get_ptr(r, &p, len) != 0)
		return -1;
	buf_reader_init(contents, p, len);
	return 0;
}

int der_peek(const struct buf_reader *r, uint8_t *tag)
{
	struct buf_reader t = *r;

	return buf_get_u8(&t, tag);
}

int der_positive(struct buf_reader *r, const uint8_t **p, size_t *len)
{
	struct buf_reader c;

	if (der_get(r, DER_INTEGER, &c) != 0 || buf_left(&c) == 0)
		return -1;
	*len = buf_left(&c);
	buf_get_ptr(&c, p, *len);
	if ((*p)[0] & 0x80)
		return -1;
	if ((*p)[0] == 0) {
		/* A zero byte only to keep the sign of what follows. */
		if (*len == 1 || ((*p)[1] & 0x80) == 0)
			return -1;
		(*p)++;
		(*len)--;
	}
	return 0;
}
