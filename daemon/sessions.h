/*
 * Sealed COPP/OPM sessions (docs/protocol.md, "Sealed sessions"): after a
 * copp-open or opm-open with SEAL the session's AES key stays here, in
 * locked memory, and the caller holds an opaque 16-byte handle. A session
 * belongs to the uid that opened it; it keeps the next status and command
 * sequence numbers it will accept. Opened by HSM workers, used on the loop
 * thread: one mutex guards the table. A handle is the session's slot number
 * (4 bytes) and 96 random bits: a lookup is one slot and one comparison.
 */
#ifndef KT_SESSIONS_H
#define KT_SESSIONS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sys/types.h>

#include <openssl/evp.h>

#include "copp.h"

#define SESSION_HANDLE_LEN 16
#define SESSION_STATUS_SEQ_AT 32        /* after the random number and the GUID */
#define SESSION_COMMAND_SEQ_AT 16       /* after the GUID */

enum session_proto { SESSION_COPP, SESSION_OPM };
/* The protocol's KIND values. */
enum session_kind { SESSION_KIND_NONE = 0, SESSION_KIND_STATUS = 1, SESSION_KIND_COMMAND = 2 };

struct session;

struct sessions {
	pthread_mutex_t mu;
	struct session **slot;          /* cap entries; NULL = free (each one in the locked heap) */
	size_t cap, n;
	size_t per_uid;
	time_t idle;                    /* s */
	uint64_t opened, expired;
	EVP_MAC_CTX *mac;               /* used under mu */
	int ready;
};

struct session_counts {
	uint32_t open;
	uint64_t opened, expired;
};

/* max 0: sealing is refused (SESSION_LIMIT). 0, or -1 out of memory / no CMAC. */
int sessions_init(struct sessions *ss, size_t max, size_t per_uid, time_t idle);
/* Wipes every session and frees the table. */
void sessions_free(struct sessions *ss);
/* Wipes every session (a reload, a restart); returns how many there were. */
size_t sessions_wipe(struct sessions *ss);
/* Wipes the sessions idle longer than the limit (the loop, now and then). */
void sessions_expire(struct sessions *ss);
void sessions_counts(struct sessions *ss, struct session_counts *out);

/*
 * A new session for uid with p's AES key and sequence numbers: KT_OK with
 * its handle, or KT_SESSION_LIMIT / KT_INTERNAL with a sentence in why.
 */
int sessions_open(struct sessions *ss, uid_t uid, enum session_proto proto,
		  const struct copp_params *p, uint8_t handle[SESSION_HANDLE_LEN], char *why,
		  size_t whylen);
/* OMAC-1 of data under the session's key: KT_OK, KT_UNKNOWN_SESSION or KT_INTERNAL. */
int sessions_mac(struct sessions *ss, uid_t uid, const uint8_t handle[SESSION_HANDLE_LEN],
		 const uint8_t *data, size_t len, uint8_t tag[16], char *why, size_t whylen);

/* What session-verify checks. omac is NULL for a COPP status request (it has none). */
struct session_check {
	const uint8_t *data;
	size_t len;
	const uint8_t *omac;
	enum session_kind kind;
};
/*
 * Checks the OMAC (constant time), then, for a kind, the message's sequence
 * number against the next expected one; only when both hold does that number
 * advance. KT_OK, KT_OMAC_MISMATCH, KT_BAD_SEQUENCE, KT_BAD_REQUEST,
 * KT_UNKNOWN_SESSION; *next_status / *next_command: the numbers expected next.
 */
int sessions_verify(struct sessions *ss, uid_t uid, const uint8_t handle[SESSION_HANDLE_LEN],
		    const struct session_check *c, uint32_t *next_status, uint32_t *next_command,
		    char *why, size_t whylen);
/* KT_OK (the key wiped) or KT_UNKNOWN_SESSION. */
int sessions_close(struct sessions *ss, uid_t uid, const uint8_t handle[SESSION_HANDLE_LEN],
		   char *why, size_t whylen);

#endif
