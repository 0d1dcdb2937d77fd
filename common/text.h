/*
 * Text that crosses a trust boundary: the protocol's str fields must be
 * valid UTF-8, and text from a request or an HSM is escaped before it is
 * quoted back (in a MESSAGE, a log line) so that it cannot carry control
 * characters or broken UTF-8 to whoever reads it.
 */
#ifndef KT_TEXT_H
#define KT_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* 1 when p[0..len) is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
int utf8_valid(const uint8_t *p, size_t len);

/*
 * Writes src[0..len) into dst (cap bytes, always NUL-terminated when cap > 0)
 * with each byte below 0x20, 0x7f, '\\' and each byte not part of valid UTF-8
 * written as \xNN. Output that does not fit is cut at a character boundary.
 * Returns dst.
 */
char *text_escape(char *dst, size_t cap, const void *src, size_t len);

#endif
