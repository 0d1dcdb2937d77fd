/* Hex text <-> bytes, lowercase out, strict in. */
#ifndef KT_HEX_H
#define KT_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*n lowercase hex digits and a NUL into out (capacity 2*n+1). */
void hex_encode(const uint8_t *p, size_t n, char *out);
/*
 * Decodes hex text (upper or lower case, an optional "0x" prefix, no other
 * characters) into out. Returns the byte count, or -1 on odd length, a bad
 * digit, or more than cap bytes.
 */
long hex_decode(const char *text, uint8_t *out, size_t cap);

#endif
