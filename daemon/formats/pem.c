#include "pem.h"

#include <string.h>

#define PEM_BEGIN "-----BEGIN "
#define PEM_END "-----END "
#define PEM_DASHES "-----"

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int starts_with(const uint8_t *p, size_t len, const char *s)
{
	return len >= strlen(s) && memcmp(p, s, strlen(s)) == 0;
}

static size_t skip_space(const uint8_t *p, size_t len, size_t i)
{
	while (i < len && is_space(p[i]))
		i++;
	return i;
}

int pem_is(const uint8_t *p, size_t len)
{
	size_t i = skip_space(p, len, 0);

	return starts_with(p + i, len - i, PEM_BEGIN);
}

/* "-----END LABEL-----" at p, then only white space to the end. */
static int pem_end_ok(const struct pem *pem, const uint8_t *p, size_t len)
{
	size_t n = strlen(PEM_END), i;

	if (!starts_with(p, len, PEM_END) || len - n < pem->label_len ||
	    memcmp(p + n, pem->label, pem->label_len) != 0)
		return 0;
	i = n + pem->label_len;
	if (!starts_with(p + i, len - i, PEM_DASHES))
		return 0;
	return skip_space(p, len, i + strlen(PEM_DASHES)) == len;
}

int pem_split(const uint8_t *p, size_t len, struct pem *pem)
{
	size_t i = skip_space(p, len, 0) + strlen(PEM_BEGIN);
	const uint8_t *dashes, *end;
	size_t at;

	if (!pem_is(p, len))
		return -1;
	dashes = memmem(p + i, len - i, PEM_DASHES, strlen(PEM_DASHES));
	if (dashes == NULL)
		return -1;
	pem->label = p + i;
	pem->label_len = (size_t)(dashes - pem->label);
	at = (size_t)(dashes - p) + strlen(PEM_DASHES);
	while (at < len && (p[at] == ' ' || p[at] == '\t' || p[at] == '\r'))
		at++;
	if (at == len || p[at] != '\n' || memchr(pem->label, '\n', pem->label_len) != NULL)
		return -1;
	pem->body = p + at + 1;
	end = memmem(pem->body, len - at - 1, PEM_END, strlen(PEM_END));
	if (end == NULL || !pem_end_ok(pem, end, len - (size_t)(end - p)))
		return -1;
	pem->body_len = (size_t)(end - pem->body);
	return 0;
}

int pem_label_is(const struct pem *pem, const char *s)
{
	return pem->label_len == strlen(s) && memcmp(pem->label, s, pem->label_len) == 0;
}

int pem_on_lines(const uint8_t *p, const struct pem *pem)
{
	const uint8_t *begin = pem->label - strlen(PEM_BEGIN);

	return (begin == p || begin[-1] == '\n') &&
	       (pem->body_len == 0 || pem->body[pem->body_len - 1] == '\n');
}
