/*
 * The keytrans wire protocol: frame header, operation codes, field tags and
 * their encoding, shared by the daemon and libkeytrans. docs/protocol.md
 * describes exactly this file.
 *
 * Frame: u32 length | u8 version | u8 op | u16 status | u32 id | fields...
 * (all big-endian; length counts the bytes after itself).
 * Field: u16 tag | u16 length | value.
 */
#ifndef KT_WIRE_H
#define KT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "keytrans_status.h"

#define WIRE_VERSION 1
#define WIRE_HDR_LEN 12                 /* length field included */
#define WIRE_FRAME_MAX 65536            /* whole frame, length field included */
#define WIRE_FIELD_HDR_LEN 4

/* X(NAME, code, wire name) */
#define WIRE_OP_LIST(X) \
	X(INFO,      1, "info") \
	X(KEYS,      2, "keys") \
	X(PUBKEY,    3, "pubkey") \
	X(UNWRAP,    4, "unwrap") \
	X(WRAP,      5, "wrap") \
	X(COPP_SIGN, 6, "copp-sign") \
	X(COPP_OPEN, 7, "copp-open") \
	X(STATS,     8, "stats") \
	X(KEYGEN,    9, "keygen") \
	X(IMPORT,    10, "import") \
	X(OPM_SIGN,  11, "opm-sign") \
	X(OPM_OPEN,  12, "opm-open") \
	X(SESSION_MAC, 13, "session-mac") \
	X(SESSION_VERIFY, 14, "session-verify") \
	X(SESSION_CLOSE, 15, "session-close")

enum wire_op {
#define WIRE_OP_ENUM(name, code, str) WIRE_OP_##name = (code),
	WIRE_OP_LIST(WIRE_OP_ENUM)
#undef WIRE_OP_ENUM
	WIRE_OP_MAX = 16
};

enum wire_type { WT_U8, WT_U32, WT_U64, WT_BYTES, WT_STR, WT_GROUP };
/* Where a tag may appear: a request, an answer, or both. */
enum wire_dir { WD_REQUEST = 1, WD_ANSWER = 2, WD_BOTH = 3 };

/* X(NAME, tag, type, maximum length, where it may appear) */
#define WIRE_TAG_LIST(X) \
	X(NAME,         1,  WT_STR,   64, WD_BOTH) \
	X(BLOB,         2,  WT_BYTES, 2060, WD_BOTH) \
	X(PADDING,      3,  WT_U8,    1, WD_REQUEST) \
	X(ALG_ID,       4,  WT_U32,   4, WD_BOTH) \
	X(SESSION_KEY,  5,  WT_BYTES, 32, WD_BOTH) \
	X(PUBLIC_KEY,   6,  WT_BYTES, 60000, WD_BOTH) \
	X(FORMAT,       7,  WT_U8,    1, WD_REQUEST) \
	X(KEY_BITS,     8,  WT_U32,   4, WD_REQUEST) \
	X(RANDOM,       9,  WT_BYTES, 16, WD_BOTH) \
	X(AES_KEY,      10, WT_BYTES, 16, WD_BOTH) \
	X(STATUS_SEQ,   11, WT_U32,   4, WD_BOTH) \
	X(COMMAND_SEQ,  12, WT_U32,   4, WD_BOTH) \
	X(SIGNATURE,    13, WT_BYTES, 256, WD_BOTH) \
	X(MESSAGE,      14, WT_STR,   1024, WD_ANSWER) \
	X(VERSION,      15, WT_STR,   64, WD_ANSWER) \
	X(TOKEN_LABEL,  16, WT_STR,   32, WD_ANSWER) \
	X(KEY_COUNT,    17, WT_U32,   4, WD_ANSWER) \
	X(WORKER_COUNT, 18, WT_U32,   4, WD_ANSWER) \
	X(UPTIME,       19, WT_U64,   8, WD_ANSWER) \
	X(KEY_ENTRY,    20, WT_GROUP, 60000, WD_ANSWER) \
	X(LABEL,        21, WT_STR,   256, WD_ANSWER) \
	X(ID,           22, WT_BYTES, 255, WD_ANSWER) \
	X(BITS,         23, WT_U32,   4, WD_BOTH) \
	X(EXPONENT,     24, WT_U64,   8, WD_BOTH) \
	X(FLAGS,        25, WT_U32,   4, WD_REQUEST) \
	X(NOTICE,       26, WT_STR,   1024, WD_ANSWER) \
	X(MECHANISM,    27, WT_STR,   8, WD_ANSWER) \
	X(HSM_ENTRY,    28, WT_GROUP, 4096, WD_ANSWER) \
	X(STATE,        29, WT_STR,   16, WD_ANSWER) \
	X(IN_FLIGHT,    30, WT_U32,   4, WD_ANSWER) \
	X(FAULTS,       31, WT_U64,   8, WD_ANSWER) \
	X(LAST_ERROR,   32, WT_STR,   512, WD_ANSWER) \
	X(OP_ENTRY,     33, WT_GROUP, 2048, WD_ANSWER) \
	X(OP,           34, WT_U8,    1, WD_ANSWER) \
	X(STATUS_COUNTS, 35, WT_BYTES, 1000, WD_ANSWER) \
	X(LATENCY_BOUNDS, 36, WT_BYTES, 124, WD_ANSWER) \
	X(LATENCY_BUCKETS, 37, WT_BYTES, 256, WD_ANSWER) \
	X(LATENCY_SUM,  38, WT_U64,   8, WD_ANSWER) \
	X(CONNECTIONS,  39, WT_U32,   4, WD_ANSWER) \
	X(ACCEPTED,     40, WT_U64,   8, WD_ANSWER) \
	X(REFUSED,      41, WT_U64,   8, WD_ANSWER) \
	X(POOL_ENTRY,   42, WT_GROUP, 256, WD_ANSWER) \
	X(QUEUED,       43, WT_U32,   4, WD_ANSWER) \
	X(RECIPIENT_HITS, 44, WT_U64, 8, WD_ANSWER) \
	X(RECIPIENT_MISSES, 45, WT_U64, 8, WD_ANSWER) \
	X(RECIPIENTS,   46, WT_U32,   4, WD_ANSWER) \
	X(SESSION,      47, WT_BYTES, 16, WD_BOTH) \
	X(DATA,         48, WT_BYTES, 4096, WD_REQUEST) \
	X(OMAC,         49, WT_BYTES, 16, WD_BOTH) \
	X(PRIVATE_KEY,  50, WT_BYTES, 32768, WD_REQUEST) \
	X(KIND,         51, WT_U8,    1, WD_REQUEST) \
	X(SESSIONS,     52, WT_U32,   4, WD_ANSWER) \
	X(SESSIONS_OPENED, 53, WT_U64, 8, WD_ANSWER) \
	X(SESSIONS_EXPIRED, 54, WT_U64, 8, WD_ANSWER)

enum wire_tag {
#define WIRE_TAG_ENUM(name, tag, type, max, dir) WIRE_T_##name = (tag),
	WIRE_TAG_LIST(WIRE_TAG_ENUM)
#undef WIRE_TAG_ENUM
	WIRE_T_MAX = 55
};

/* FLAGS bits (unwrap, copp-open, opm-open); the others are reserved and refused. */
#define WIRE_FLAG_STRICT 0x1u   /* answer UNWRAP_FAILED instead of implicit rejection */
#define WIRE_FLAG_SEAL 0x2u     /* copp-open, opm-open: keep the AES key, answer a SESSION handle */
#define WIRE_FLAGS_DEFINED (WIRE_FLAG_STRICT | WIRE_FLAG_SEAL)

/* KIND (session-verify): which message's sequence number to check, if any. */
enum wire_kind { WIRE_KIND_NONE = 0, WIRE_KIND_STATUS = 1, WIRE_KIND_COMMAND = 2 };

enum wire_padding { WIRE_PAD_PKCS1 = 0, WIRE_PAD_OAEP = 1 };
enum wire_format { WIRE_FMT_BLOB = 0, WIRE_FMT_PEM = 1, WIRE_FMT_DER = 2, WIRE_FMT_CNG = 3 };

struct wire_hdr {
	uint32_t len;       /* bytes after the length field */
	uint8_t version;
	uint8_t op;
	uint16_t status;
	uint32_t id;
};

struct wire_field {
	const uint8_t *p;   /* borrowed from the frame */
	uint16_t len;
	uint8_t present;
};

/* The fields of one message (or one group), indexed by tag. */
struct wire_fields {
	struct wire_field f[WIRE_T_MAX];
};

const char *wire_op_name(unsigned op);
const char *wire_tag_name(unsigned tag);
/* "UNWRAP_FAILED" for KT_UNWRAP_FAILED; "UNKNOWN" for codes not in the list. */
const char *wire_status_name(int status);
const char *wire_status_text(int status);

/* Reads the 12-byte header. */
int wire_get_hdr(struct buf_reader *r, struct wire_hdr *h);
/* KT_OK, KT_BAD_FRAME (length too small) or KT_FRAME_TOO_LARGE. */
int wire_check_len(uint32_t len);

/*
 * Parses the fields of a request body (the bytes after the header): unknown
 * tags, tags only answers carry, any repeated tag, truncation, values whose
 * length does not suit the tag's type, str values that are not UTF-8 or hold
 * a NUL, and reserved FLAGS bits are refused; why receives a message naming
 * the field (escaped). Returns 0 or -1.
 */
int wire_parse_request(const uint8_t *p, size_t len, struct wire_fields *out,
		       char *why, size_t whylen);
/* The same for a group's value (answers' groups repeat only as a whole). */
int wire_parse_fields(const uint8_t *p, size_t len, struct wire_fields *out,
		      char *why, size_t whylen);
/* The same for what the daemon answers, except that unknown tags are skipped:
 * a newer daemon may add fields, and older clients must keep working. */
int wire_parse_answer(const uint8_t *p, size_t len, struct wire_fields *out,
		      char *why, size_t whylen);
/* Iterates repeated groups: *off starts at 0; returns 1 with the next
 * occurrence of tag, 0 at the end, -1 on a malformed body. */
int wire_next_field(const uint8_t *p, size_t len, size_t *off, unsigned tag,
		    struct wire_field *out);

/* Getters: 0 when the field is present (its length was checked at parse). */
int wire_get_u8(const struct wire_fields *m, unsigned tag, uint8_t *v);
int wire_get_u32(const struct wire_fields *m, unsigned tag, uint32_t *v);
int wire_get_u64(const struct wire_fields *m, unsigned tag, uint64_t *v);
/* Copies a string field into dst (NUL-terminated); -1 if absent or too long. */
int wire_get_str(const struct wire_fields *m, unsigned tag, char *dst, size_t cap);
int wire_has(const struct wire_fields *m, unsigned tag);

/* Writers: start a frame, add fields, then wire_end() fills in the length. */
void wire_begin(struct buf_writer *w, uint8_t op, uint16_t status, uint32_t id);
int wire_put_u8(struct buf_writer *w, unsigned tag, uint8_t v);
int wire_put_u32(struct buf_writer *w, unsigned tag, uint32_t v);
int wire_put_u64(struct buf_writer *w, unsigned tag, uint64_t v);
int wire_put_bytes(struct buf_writer *w, unsigned tag, const void *p, size_t n);
int wire_put_str(struct buf_writer *w, unsigned tag, const char *s);
/* A str of text from elsewhere (an HSM, a file): escaped (text.h) and cut to the tag's maximum. */
int wire_put_text(struct buf_writer *w, unsigned tag, const char *s);
/* A group is a field whose value is itself a run of fields. */
size_t wire_group_begin(struct buf_writer *w, unsigned tag);
int wire_group_end(struct buf_writer *w, size_t at);
/* 0, or -1 when something did not fit (the writer's error flag). */
int wire_end(struct buf_writer *w);

#endif
