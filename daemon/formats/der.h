/*
 * Strict DER (X.690 10.1), as far as the key formats here need it: one
 * element at a time through a buf_reader, definite lengths in their shortest
 * form, at most two length bytes (every input fits a 64 KiB frame).
 */
#ifndef KT_DER_H
#define KT_DER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define DER_INTEGER 0x02
#define DER_BIT_STRING 0x03
#define DER_OCTET_STRING 0x04
#define DER_NULL 0x05
#define DER_OID 0x06
#define DER_SEQUENCE 0x30
#define DER_CONTEXT_0 0xa0      /* [0] constructed: PKCS#8 attributes, X.509 version */

/* The next element, which must have this tag: its contents as a reader of their own. 0 or -1. */
int der_get(struct buf_reader *r, uint8_t tag, struct buf_reader *contents);
/* The next element's tag, not consumed; -1 at the end. */
int der_peek(const struct buf_reader *r, uint8_t *tag);
/*
 * A positive INTEGER in its shortest form: *p, *len borrow its magnitude
 * without the sign byte. Zero, negative and padded ones are refused (-1).
 */
int der_positive(struct buf_reader *r, const uint8_t **p, size_t *len);

#endif
