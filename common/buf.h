/*
 * The one bounds-checked reader and writer over bytes.
 *
 * Everything that parses untrusted bytes (frames, requests, blobs, key files)
 * goes through a buf_reader: every get checks the remaining length first and
 * returns -1 without moving or writing anything when it would run past the end.
 * A buf_writer writes into caller-provided storage of fixed capacity; a put
 * that does not fit returns -1 and latches the writer's error flag, so a
 * sequence of puts can be checked once at the end.
 */
#ifndef KT_BUF_H
#define KT_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
};

struct buf_writer {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err;
};

void buf_reader_init(struct buf_reader *r, const void *p, size_t len);
size_t buf_left(const struct buf_reader *r);
/* 0 when every byte has been consumed, -1 otherwise. */
int buf_expect_end(const struct buf_reader *r);

int buf_get_u8(struct buf_reader *r, uint8_t *v);
int buf_get_u16be(struct buf_reader *r, uint16_t *v);
int buf_get_u32be(struct buf_reader *r, uint32_t *v);
int buf_get_u64be(struct buf_reader *r, uint64_t *v);
int buf_get_u16le(struct buf_reader *r, uint16_t *v);
int buf_get_u32le(struct buf_reader *r, uint32_t *v);
int buf_get_bytes(struct buf_reader *r, void *dst, size_t n);
/* Copies n bytes in reverse order (CryptoAPI little-endian numbers). */
int buf_get_bytes_reversed(struct buf_reader *r, void *dst, size_t n);
/* Borrows n bytes without copying; *p stays valid as long as the input. */
int buf_get_ptr(struct buf_reader *r, const uint8_t **p, size_t n);
int buf_skip(struct buf_reader *r, size_t n);

void buf_writer_init(struct buf_writer *w, void *p, size_t cap);
int buf_put_u8(struct buf_writer *w, uint8_t v);
int buf_put_u16be(struct buf_writer *w, uint16_t v);
int buf_put_u32be(struct buf_writer *w, uint32_t v);
int buf_put_u64be(struct buf_writer *w, uint64_t v);
int buf_put_u16le(struct buf_writer *w, uint16_t v);
int buf_put_u32le(struct buf_writer *w, uint32_t v);
int buf_put_bytes(struct buf_writer *w, const void *src, size_t n);
int buf_put_bytes_reversed(struct buf_writer *w, const void *src, size_t n);
/* Overwrites 4 bytes already written at offset off (length fields). */
int buf_patch_u32be(struct buf_writer *w, size_t off, uint32_t v);
int buf_patch_u16be(struct buf_writer *w, size_t off, uint16_t v);

/* Reverses n bytes in place. */
void buf_reverse(uint8_t *p, size_t n);

#endif
