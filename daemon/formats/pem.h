/*
 * One PEM block (RFC 7468) with nothing but white space around it: its label
 * and its body, found in place. The body's base64 is the caller's to decode
 * (common/base64.c), into memory of its choosing.
 */
#ifndef KT_PEM_H
#define KT_PEM_H

#include <stddef.h>
#include <stdint.h>

struct pem {
	const uint8_t *label, *body;    /* borrowed from the input */
	size_t label_len, body_len;
};

/* 1 when p starts, after white space, with "-----BEGIN ". */
int pem_is(const uint8_t *p, size_t len);
/*
 * Splits the block: a BEGIN line, the body, an END line with the same label,
 * white space only before and after. 0, or -1 when it is not one such block.
 */
int pem_split(const uint8_t *p, size_t len, struct pem *pem);
int pem_label_is(const struct pem *pem, const char *s);
/* 1 when p's block (split from p) has its BEGIN and END markers each at the start of a line. */
int pem_on_lines(const uint8_t *p, const struct pem *pem);

#endif
