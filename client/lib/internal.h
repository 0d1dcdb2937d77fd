/* libkeytrans internals: the connection, its pending requests, the codec. */
#ifndef KT_CLIENT_INTERNAL_H
#define KT_CLIENT_INTERNAL_H

#include <stdint.h>
#include <time.h>

#include "alg.h"
#include "keytrans.h"
#include "wire.h"

_Static_assert(KT_KEY_MAX == ALG_KEY_MAX, "session key sizes differ");
/* The BLOB field (a SIMPLEBLOB) holds at most 12 + 2048 bytes. */
#define SIMPLEBLOB_MAX 2060
_Static_assert(KT_BLOB_MAX >= SIMPLEBLOB_MAX, "kt_item cannot hold a SIMPLEBLOB");
_Static_assert(KT_NAME_MAX == 64, "NAME field maximum differs");
_Static_assert(KT_PRIVATE_KEY_MAX == 32768, "PRIVATE_KEY field maximum differs");
_Static_assert(KT_SEAL == WIRE_FLAG_SEAL, "KT_SEAL is the protocol's SEAL flag");
_Static_assert((int)KT_KIND_STATUS == (int)WIRE_KIND_STATUS &&
	       (int)KT_KIND_COMMAND == (int)WIRE_KIND_COMMAND, "message kinds differ");
/* struct kt_item keeps its 0.2 size: the new members fit in the unions' old largest ones. */
_Static_assert(sizeof(((struct kt_item *)0)->in.session) <= sizeof(struct kt_wrap_args),
	       "kt_item's input union grew");
_Static_assert(sizeof(struct kt_sealed) <= sizeof(struct kt_wrapped) &&
	       sizeof(struct kt_session_seq) <= sizeof(struct kt_wrapped),
	       "kt_item's output union grew");
_Static_assert(KT_OMAC_LEN <= KT_BLOB_MAX, "kt_item cannot hold an OMAC");

#define KT_ERRMSG_MAX 1100

enum pend_state { PEND_WAITING, PEND_DONE, PEND_ABANDONED };

/* A request sent and not yet collected. */
struct pending {
	uint32_t id;
	uint8_t op;             /* enum wire_op */
	uint8_t state;          /* enum pend_state */
	uint64_t done_seq;      /* completion order, so kt_complete is FIFO */
	struct kt_item *item;   /* NULL: a synchronous call reads the frame itself */
	char *msg;              /* why the item failed (malloc'd), or NULL */
};

struct kt_conn {
	int fd;
	int timeout_ms;
	uint32_t next_id;
	uint64_t done_seq;
	struct pending *pend;
	size_t npend, cap;
	size_t items;           /* item entries in pend (kt_in_flight) */
	uint8_t *rx;            /* WIRE_FRAME_MAX bytes */
	size_t rx_off, rx_len;  /* unprocessed bytes are rx[rx_off..rx_len) */
	size_t held;            /* frame at rx_off lent to a synchronous call */
	uint8_t *tx;            /* WIRE_FRAME_MAX bytes */
	char path[108];         /* the socket of the last kt_connect ("": kt_close'd) */
	int reconnect;          /* kt_set_reconnect */
	int req_status;         /* why a req_* encoder failed when not KT_ERR_ARG (else 0) */
	/* The last COPP XML chain read here and its key: a caller signing for one driver
	 * sends the same chain every time, and libxml2 costs more than the RSA. */
	uint8_t *xml;
	size_t xml_len;
	uint8_t xml_key[KT_COPP_KEY_BLOB_LEN];
	char err[KT_ERRMSG_MAX];
};

/* A received frame, borrowed from the receive buffer. */
struct frame {
	struct wire_hdr h;
	const uint8_t *body;
	size_t body_len;
};

/* What a wait is for: request id (nonzero), else any item in [lo, hi). */
struct want {
	uint32_t id;
	uintptr_t lo, hi;
};

struct deadline {
	int forever;
	struct timespec end;
};

/* conn.c */
/* kt_copp_cert_key, remembering the last chain on c (the error, if any, in c->err). */
int conn_copp_cert_key(kt_conn *c, const uint8_t *xml, size_t len,
		       uint8_t blob[KT_COPP_KEY_BLOB_LEN]);

int conn_err(kt_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int conn_errno(kt_conn *c, int status, const char *what, int errnum);
/* Closes the socket and fails every pending item with status. */
int conn_fatal(kt_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int conn_fatal_errno(kt_conn *c, const char *what, int errnum);
/* Closes the socket, failing what is in flight; kt_connect's path is kept. */
void conn_drop(kt_conn *c);
/* Connects again to the last socket when the daemon closed the connection. */
int conn_ensure(kt_conn *c);
/* 1 when a call that failed with st may be sent once more on a new connection. */
int conn_may_retry(const kt_conn *c, int st);
/* Drops the connection and connects again to the same socket. */
int conn_reopen(kt_conn *c);
void wipe(void *p, size_t n);

/* deadline.c */
void deadline_start(struct deadline *d, int timeout_ms);
/* Milliseconds left for poll(): -1 forever, 0 when expired. */
int deadline_left(const struct deadline *d);

/* transport.c: socket I/O with the deadline. */
int conn_send(kt_conn *c, const uint8_t *p, size_t n, const struct deadline *dl);
/* Reads what arrives into the receive buffer (waits until something does). */
int conn_recv(kt_conn *c, const struct deadline *dl);
/* 1 and the next complete frame, 0 when more bytes are needed, or an error. */
int conn_peek_frame(kt_conn *c, const uint8_t **p, size_t *n);
/* Drops the frame at the front of the buffer, wiping it. */
void conn_drop_frame(kt_conn *c, size_t n);

/* pending.c */
/* The new request id, or 0 when out of memory. */
uint32_t pending_add(kt_conn *c, uint8_t op, struct kt_item *item);
struct pending *pending_find(kt_conn *c, uint32_t id);
struct pending *pending_find_done(kt_conn *c, const struct want *w);
void pending_remove(kt_conn *c, struct pending *p);
/* Marks an entry whose caller gave up: its response will be dropped. */
void pending_abandon(kt_conn *c, struct pending *p, int status);
void pending_fail_all(kt_conn *c, int status);

/* receive.c */
/* Processes frames until an entry matching w is done; *hit is that entry. */
int conn_wait(kt_conn *c, const struct want *w, const struct deadline *dl, struct pending **hit);
/* Processes every complete frame in the buffer (used while sending). */
int conn_drain(kt_conn *c);
/*
 * Sends the request encoded in c->tx (entry id, made with a NULL item) and
 * waits for its response; *f borrows the frame until conn_call_end.
 */
int conn_call(kt_conn *c, uint32_t id, size_t len, const struct deadline *dl, struct frame *f);
void conn_call_end(kt_conn *c, uint32_t id);
/* Copies a completed item's failure message into c->err, frees the entry. */
void conn_collect(kt_conn *c, struct pending *p);

/* batch.c: encodes and sends an item; *id is its request id. */
int item_submit(kt_conn *c, struct kt_item *it, const struct deadline *dl, uint32_t *id);

/* request.c: encode into c->tx; return the frame length, or 0 with c->err set. */
size_t req_simple(kt_conn *c, uint8_t op, uint32_t id);
size_t req_pubkey(kt_conn *c, uint32_t id, const char *name, int format);
size_t req_item(kt_conn *c, uint32_t id, const struct kt_item *it);
size_t req_keygen(kt_conn *c, uint32_t id, const char *name, unsigned bits, uint64_t exponent);
size_t req_import(kt_conn *c, uint32_t id, const char *name, const uint8_t *key, size_t len);
size_t req_session_close(kt_conn *c, uint32_t id, const uint8_t *session);
uint8_t item_wire_op(int kind);

/* response.c: decode OK responses; KT_OK or KT_ERR_PROTOCOL with why set. */
/* "malformed response: ..." into why; returns KT_ERR_PROTOCOL. */
int resp_bad(char *why, size_t wl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int resp_info(const struct wire_fields *m, struct kt_info *out, char *why, size_t wl);
int resp_hsms(const uint8_t *body, size_t len, struct kt_hsm *hsms, size_t *n, char *why,
	      size_t wl);
/* stats.c: the whole stats answer (m: its parsed fields, body: for the repeated groups). */
int resp_stats(const struct wire_fields *m, const uint8_t *body, size_t len, struct kt_stats *out,
	       char *why, size_t wl);
/* The recipient cache's counters of a stats answer: all three fields, or none (an older daemon). */
int resp_recipients(const struct wire_fields *m, struct kt_recipient_stats *out, char *why,
		    size_t wl);
/* The sealed sessions' counters of a stats answer: all three fields, or none (all 0). */
int resp_sessions(const struct wire_fields *m, struct kt_session_stats *out, char *why, size_t wl);
int resp_keys(const struct frame *f, struct kt_key **keys, size_t *n, char *why, size_t wl);
int resp_pubkey(const struct wire_fields *m, int format, const uint8_t **p, size_t *n,
		char *why, size_t wl);
int resp_item(const struct wire_fields *m, struct kt_item *it, char *why, size_t wl);
int resp_new_key(const struct wire_fields *m, const char *name, struct kt_new_key *out, char *why,
		 size_t wl);
/* The status and message of a response frame; fields parsed into m when OK. */
int resp_parse(const struct frame *f, uint8_t op, struct wire_fields *m, char *why, size_t wl);

#endif
