/* Base64 text (RFC 4648, standard alphabet) to bytes: XML certificates (client) and PEM keys (import). */
#ifndef KT_BASE64_H
#define KT_BASE64_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes len characters of base64 into out (which may be locked memory:
 * nothing else holds the bytes). White space (space, tab, CR, LF) anywhere
 * is skipped; everything else must be the alphabet, with '=' padding only at
 * the end, in groups of four, and the bits it leaves unused must be 0.
 * Returns the byte count, or -1 for bad text or more than cap bytes.
 */
long base64_decode(const char *text, size_t len, uint8_t *out, size_t cap);

#endif
