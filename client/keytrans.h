/*
 * libkeytrans: the client side of keytransd's Unix-socket protocol.
 *
 * One kt_conn is one connection; use one per thread (the library keeps no
 * global mutable state). Every call returns KT_OK (0), a status the daemon
 * sent (> 0, kt_errmsg() gives its MESSAGE) or a local KT_ERR_* (< 0).
 * The status codes are in keytrans_status.h, installed next to this file.
 */
#ifndef KEYTRANS_H
#define KEYTRANS_H

#include <stddef.h>
#include <stdint.h>

#include "keytrans_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kt_conn kt_conn;

#define KT_DEFAULT_SOCKET "/run/keytransd/keytransd.sock"
#define KT_DEFAULT_TIMEOUT_MS 30000

/* The library's version, "0.1.0". */
const char *kt_version(void);

kt_conn *kt_conn_new(void);
/* Closes the connection too. NULL is allowed. */
void kt_conn_free(kt_conn *c);
/* path NULL: $KEYTRANS_SOCKET, else KT_DEFAULT_SOCKET. Reconnecting closes first. */
int kt_connect(kt_conn *c, const char *path);
/* Closes the socket; requests still in flight are forgotten. No reconnecting after it. */
void kt_close(kt_conn *c);
/*
 * Limit for each call (kt_batch: for each wait); 0 or less = wait forever. A
 * call's retry (kt_set_reconnect) comes out of the same limit.
 */
void kt_set_timeout(kt_conn *c, int ms);
/*
 * On (the default): a call on a connection the daemon closed (it restarted,
 * or dropped an idle connection) first connects again to kt_connect's
 * socket; and a call that fails because the connection was lost (ERR_IO) or
 * the daemon is stopping (SHUTTING_DOWN) is sent once more on a new
 * connection, when no other request is in flight on c. Every operation but
 * kt_keygen and kt_import is idempotent (nothing on the daemon or in the HSM
 * changes), so a retry never does anything twice; those two are never sent
 * again (a lost answer does not say whether the key was made). kt_submit
 * never reconnects or retries.
 */
void kt_set_reconnect(kt_conn *c, int on);
/* Message of the last failed call on c: the daemon's MESSAGE or a local one. */
const char *kt_errmsg(const kt_conn *c);
/* "UNWRAP_FAILED", "ERR_CONNECT"...; "UNKNOWN" for codes not in the list. */
const char *kt_status_name(int status);
/* One-line description of a status. */
const char *kt_status_text(int status);

enum kt_padding { KT_PAD_PKCS1 = 0, KT_PAD_OAEP = 1 };
/*
 * OR'ed into kt_unwrap's padding (or given as kt_copp_open_ex's flags): a
 * PKCS#1 v1.5 decryption failure answers KT_UNWRAP_FAILED instead of the
 * implicit-rejection key. Only for callers whose success or failure never
 * reaches another party (see docs/security.md).
 */
#define KT_STRICT 0x100
enum kt_format { KT_FMT_BLOB = 0, KT_FMT_PEM = 1, KT_FMT_DER = 2, KT_FMT_CNG = 3 };

#define KT_KEY_MAX 32
#define KT_BLOB_MAX (20 + 2048)     /* a 16384-bit key's PUBLICKEYBLOB; SIMPLEBLOBs stop at 12 + 2048 */
#define KT_NAME_MAX 64

#define KT_HSMS_MAX 16

/* One HSM of the daemon's ([hsm] or [hsm NAME]). */
struct kt_hsm {
	char name[65];
	char token_label[33];
	char state[17];                     /* "up" or "down" */
	uint32_t in_flight;                 /* operations on it now */
	uint64_t faults;                    /* times taken out of service */
	char last_error[513];               /* "" when none */
};

struct kt_info {
	char version[65];
	char token_label[33];
	uint32_t key_count, worker_count;   /* key_count: the keys this peer may use */
	uint64_t uptime_s;
	char notice[1025];                  /* "" or what the operator should know */
	size_t nhsms;                       /* at most KT_HSMS_MAX are reported */
	struct kt_hsm hsms[KT_HSMS_MAX];
};

/*
 * kt_stats: the daemon's counters since it started. Latencies fall into
 * buckets with fixed upper bounds (bounds_us, the same for every operation);
 * buckets[i] counts the answers of at most bounds_us[i] microseconds and
 * above bounds_us[i - 1], buckets[nbounds] those above the last bound (not
 * cumulative). The buckets of an operation always add up to its count.
 */
#define KT_STATS_OPS_MAX 16         /* operations reported; more are left out */
#define KT_STATS_STATUSES 64        /* status codes counted one by one in by_status */
#define KT_STATS_BOUNDS_MAX 31
#define KT_STATS_POOLS_MAX 4

struct kt_op_stats {
	unsigned op;                        /* operation code; 0: requests with an unknown code */
	char name[16];                      /* "unwrap", ...; "unknown" for 0 and codes this library lacks */
	uint64_t count;                     /* answers, whatever their status */
	uint64_t by_status[KT_STATS_STATUSES];  /* answers per status code (KT_OK, KT_DENIED, ...) */
	uint64_t other_status;              /* answers with a status >= KT_STATS_STATUSES */
	uint64_t buckets[KT_STATS_BOUNDS_MAX + 1];  /* answers per latency bucket: nbounds + 1 used */
	uint64_t latency_sum_ns;            /* the latencies added up, in nanoseconds */
};

/* A worker pool: "hsm" (private-key work) or "public" (wrap, copp-sign). */
struct kt_pool_stats {
	char name[65];
	uint32_t workers;
	uint32_t queued;                    /* jobs waiting for a worker */
	uint32_t in_flight;                 /* jobs handed to the pool and not yet answered */
};

struct kt_stats {
	uint64_t uptime_s;
	uint32_t connections;               /* open now */
	uint64_t accepted, refused;         /* connections since the start; refused: over a limit */
	size_t nbounds;
	uint32_t bounds_us[KT_STATS_BOUNDS_MAX];    /* ascending */
	size_t nops;
	struct kt_op_stats ops[KT_STATS_OPS_MAX];
	size_t npools;
	struct kt_pool_stats pools[KT_STATS_POOLS_MAX];
	size_t nhsms;
	struct kt_hsm hsms[KT_HSMS_MAX];
};

/*
 * The daemon's cache of decoded recipient keys (wrap and copp-sign to a
 * PUBLIC_KEY): kt_stats_recipients reads it from the same answer as the rest.
 */
struct kt_recipient_stats {
	int present;                        /* 0: the daemon does not send these (then all 0) */
	uint64_t hits;                      /* requests whose key was found already decoded */
	uint64_t misses;                    /* requests whose key was decoded (cache full, off, or new) */
	uint32_t entries;                   /* keys in the cache now */
};

struct kt_key {
	char name[65];
	char label[257];        /* "" when the key has none */
	uint8_t id[255];
	size_t id_len;          /* 0 when the key has no CKA_ID */
	uint32_t bits;
	uint64_t exponent;
	char mechanism[9];      /* "raw" (implicit rejection) or "pkcs" */
};

struct kt_session_key {
	uint32_t alg_id;
	size_t len;
	uint8_t key[KT_KEY_MAX];
};

struct kt_wrap_args {
	uint32_t alg_id;
	const uint8_t *key;     /* NULL: the daemon generates the key */
	size_t key_len;
	unsigned gen_bits;      /* generated RC2/RC4 key length in bits; 0 = default */
	const char *to_key;     /* exactly one of to_key (HSM key name) */
	const uint8_t *to_pub;  /* and to_pub (PUBLICKEYBLOB, PEM/DER SPKI or X.509) */
	size_t to_pub_len;
	int padding;            /* enum kt_padding */
};

struct kt_wrapped {
	size_t blob_len;
	uint8_t blob[KT_BLOB_MAX];      /* SIMPLEBLOB */
	int generated;
	struct kt_session_key key;      /* filled always (given or generated) */
};

#define KT_COPP_AES_KEY 1u
#define KT_COPP_STATUS_SEQ 2u
#define KT_COPP_COMMAND_SEQ 4u

struct kt_copp_sign_args {
	const char *to_key;     /* exactly one of to_key / to_pub (RSA-2048) */
	const uint8_t *to_pub;
	size_t to_pub_len;
	uint8_t random[16];
	unsigned flags;         /* KT_COPP_*: which of the following are given */
	uint8_t aes_key[16];
	uint32_t status_seq, command_seq;
};

struct kt_copp {
	uint8_t signature[256]; /* kt_copp_sign only */
	uint8_t random[16];
	uint8_t aes_key[16];
	uint32_t status_seq, command_seq;
};

int kt_info(kt_conn *c, struct kt_info *out);
/* The daemon's counters, pools and HSMs (anyone who may call kt_info may call it). */
int kt_stats(kt_conn *c, struct kt_stats *out);
/* The same, and the recipient cache's counters from that answer (since libkeytrans 0.2). */
int kt_stats_recipients(kt_conn *c, struct kt_stats *out, struct kt_recipient_stats *rec);
/* *keys is freed with kt_free (NULL when *n is 0). */
int kt_keys(kt_conn *c, struct kt_key **keys, size_t *n);
/* *out is freed with kt_free; a NUL follows the len bytes (handy for PEM). */
int kt_pubkey(kt_conn *c, const char *name, int format, uint8_t **out, size_t *len);
void kt_free(void *p);
int kt_unwrap(kt_conn *c, const char *name, const uint8_t *blob, size_t blob_len, int padding,
	      struct kt_session_key *out);
int kt_wrap(kt_conn *c, const struct kt_wrap_args *a, struct kt_wrapped *out);
int kt_copp_sign(kt_conn *c, const struct kt_copp_sign_args *a, struct kt_copp *out);
/* expect_random: 16 bytes or NULL; a mismatch gives KT_RANDOM_MISMATCH. */
int kt_copp_open(kt_conn *c, const char *name, const uint8_t sig[256],
		 const uint8_t *expect_random, struct kt_copp *out);
/* The same with flags (KT_STRICT). */
int kt_copp_open_ex(kt_conn *c, const char *name, const uint8_t sig[256],
		    const uint8_t *expect_random, unsigned flags, struct kt_copp *out);

/*
 * OPM session start (since libkeytrans 0.3): the same parameters as COPP's,
 * RSAES-OAEP (SHA-512) under an RSA-2048 key, big-endian. kt_opm_sign takes
 * the recipient like kt_copp_sign (a COPP XML chain too); kt_opm_open ignores
 * KT_STRICT (an OPM array that does not decode is always KT_UNWRAP_FAILED).
 */
int kt_opm_sign(kt_conn *c, const struct kt_copp_sign_args *a, struct kt_copp *out);
int kt_opm_open(kt_conn *c, const char *name, const uint8_t sig[256],
		const uint8_t *expect_random, unsigned flags, struct kt_copp *out);

/*
 * Sealed sessions (since libkeytrans 0.3): with KT_SEAL the daemon keeps the
 * session's AES key and answers an opaque handle instead, which only the uid
 * that opened it may use, until kt_session_close, idle expiry or a reload.
 * None of these is sent again on a new connection (kt_set_reconnect): a
 * second open would make a second session, a second verify would find its
 * sequence number already used.
 */
#define KT_SEAL 0x2u            /* flags: keep the session's AES key in the daemon */
#define KT_SESSION_LEN 16
#define KT_OMAC_LEN 16
#define KT_SESSION_DATA_MAX 4096
enum kt_msg_kind { KT_KIND_NONE = 0, KT_KIND_STATUS = 1, KT_KIND_COMMAND = 2 };

struct kt_sealed {               /* a sealed copp-open / opm-open */
	uint8_t session[KT_SESSION_LEN];
	uint8_t random[16];
	uint32_t status_seq, command_seq;
};

struct kt_session_seq { uint32_t next_status_seq, next_command_seq; };

struct kt_session_stats { uint32_t open; uint64_t opened, expired; };

/* flags: KT_STRICT (KT_SEAL is implied). */
int kt_copp_open_sealed(kt_conn *c, const char *name, const uint8_t sig[256],
			const uint8_t *expect_random, unsigned flags, struct kt_sealed *out);
int kt_opm_open_sealed(kt_conn *c, const char *name, const uint8_t sig[256],
		       const uint8_t *expect_random, struct kt_sealed *out);
/* The OMAC-1 (AES-CMAC) of len bytes (at most KT_SESSION_DATA_MAX) under the session's key. */
int kt_session_mac(kt_conn *c, const uint8_t session[KT_SESSION_LEN], const uint8_t *data,
		   size_t len, uint8_t omac[KT_OMAC_LEN]);
/*
 * KT_OK when omac is data's OMAC-1 and, for kind KT_KIND_STATUS or
 * KT_KIND_COMMAND, data's sequence number is the session's next one (which
 * then advances); else KT_OMAC_MISMATCH or KT_BAD_SEQUENCE, nothing changed.
 * omac NULL only for a COPP status request; next (the numbers now expected) may be NULL.
 */
int kt_session_verify(kt_conn *c, const uint8_t session[KT_SESSION_LEN], const uint8_t *data,
		      size_t len, const uint8_t *omac, int kind, struct kt_session_seq *next);
/* Wipes the session's key in the daemon; the handle is unknown from then on. */
int kt_session_close(kt_conn *c, const uint8_t session[KT_SESSION_LEN]);
/*
 * kt_stats, and from the same answer the sealed sessions' counters and, unless rec
 * is NULL, the recipient cache's (since libkeytrans 0.3): one consistent snapshot.
 */
int kt_stats_sessions(kt_conn *c, struct kt_stats *out, struct kt_recipient_stats *rec,
		      struct kt_session_stats *sess);

/*
 * Administration ([daemon] admin peers only; the daemon answers KT_DENIED to
 * others): a new RSA key in the HSM, named name (its CKA_LABEL). The daemon
 * serves it once its [key NAME] section (label, id) is added to the
 * configuration and the daemon reloaded (SIGHUP) or restarted.
 */
#define KT_SPKI_MAX 2200        /* a 16384-bit key's DER SubjectPublicKeyInfo fits */
#define KT_PRIVATE_KEY_MAX 32768

struct kt_new_key {
	char name[65];
	char label[257];                    /* CKA_LABEL: the name */
	uint8_t id[255];                    /* CKA_ID, chosen by the daemon */
	size_t id_len;
	uint32_t bits;
	uint64_t exponent;
	size_t public_key_len;
	uint8_t public_key[KT_SPKI_MAX];    /* DER SubjectPublicKeyInfo */
};

/* Generates a key pair inside the HSM, never extractable. bits: 2048, 3072 or 4096 (0: 2048); exponent 0: 65537. */
int kt_keygen(kt_conn *c, const char *name, unsigned bits, uint64_t exponent,
	      struct kt_new_key *out);
/*
 * Imports an RSA private key: PEM PKCS#1 or PKCS#8 (unencrypted), DER
 * PKCS#8 or PKCS#1, or a CryptoAPI PRIVATEKEYBLOB (detected), at most
 * KT_PRIVATE_KEY_MAX bytes. The library wipes its copy of the bytes.
 */
int kt_import(kt_conn *c, const char *name, const uint8_t *key, size_t key_len,
	      struct kt_new_key *out);

/*
 * A COPP driver's XML certificate chain (CertificateCollection, leaf first;
 * docs/formats.md) to its key, done here rather than by the daemon: writes
 * the leaf's RSA key as a PUBLICKEYBLOB, to give kt_copp_sign as to_pub.
 * The leaf must hold a 2048-bit key and KeyUsage EncryptKey; the chain's
 * signatures are not checked. The XML is read without DTD, entities or
 * network, and may be at most KT_COPP_CERT_MAX bytes. Returns KT_OK,
 * KT_BAD_PUBLIC_KEY or KT_KEY_SIZE with a sentence in err (errlen bytes),
 * KT_ERR_ARG or KT_ERR_NOMEM.
 */
#define KT_COPP_CERT_MAX (64 * 1024)
#define KT_COPP_KEY_BLOB_LEN (20 + 256)
int kt_copp_cert_key(const uint8_t *xml, size_t len, uint8_t blob[KT_COPP_KEY_BLOB_LEN], char *err,
		     size_t errlen);
/*
 * 1 when p looks like XML: '<' first, after an optional UTF-8 BOM and white space.
 * kt_copp_sign does this test itself and reads such a to_pub with kt_copp_cert_key
 * (its errors are the call's).
 */
int kt_is_xml(const uint8_t *p, size_t len);

/*
 * Pipelining: submit requests without waiting, collect responses as they come
 * (matched by request id). An item, and the buffers its inputs point to, must
 * stay alive until kt_complete returns it or the connection is closed.
 */
enum kt_op_kind {
	KT_OP_UNWRAP,
	KT_OP_WRAP,
	KT_OP_COPP_SIGN,
	KT_OP_COPP_OPEN,
	KT_OP_PUBKEY_BLOB,      /* pubkey as PUBLICKEYBLOB into out.blob */
	KT_OP_OPM_SIGN,         /* in.copp_sign, out.copp */
	KT_OP_OPM_OPEN,         /* in.copp_open, out.copp (out.sealed with KT_SEAL) */
	KT_OP_SESSION_MAC,      /* in.session, the tag in out.blob (len KT_OMAC_LEN) */
	KT_OP_SESSION_VERIFY    /* in.session, out.seq */
};

struct kt_item {
	int op;                 /* enum kt_op_kind */
	union {
		struct {
			const char *name;
			const uint8_t *blob;
			size_t blob_len;
			int padding;            /* KT_PAD_*, optionally | KT_STRICT */
		} unwrap;
		struct kt_wrap_args wrap;
		struct kt_copp_sign_args copp_sign;
		struct {
			const char *name;
			const uint8_t *sig;             /* 256 bytes */
			const uint8_t *expect_random;   /* 16 bytes or NULL */
			unsigned flags;                 /* KT_STRICT, KT_SEAL */
		} copp_open;
		struct {
			const char *name;
		} pubkey;
		struct {
			const uint8_t *session;         /* KT_SESSION_LEN bytes */
			const uint8_t *data;
			size_t len;
			const uint8_t *omac;            /* verify: KT_OMAC_LEN bytes, or NULL */
			int kind;                       /* verify: enum kt_msg_kind */
		} session;
	} in;
	int status;             /* out: KT_OK or the daemon's / local code */
	union {
		struct kt_session_key unwrap;
		struct kt_wrapped wrap;
		struct kt_copp copp;
		struct {
			size_t len;
			uint8_t b[KT_BLOB_MAX];
		} blob;
		struct kt_sealed sealed;        /* copp-open, opm-open with KT_SEAL */
		struct kt_session_seq seq;      /* session-verify */
	} out;
	void *user;
};

/* Sends one request. KT_ERR_ARG (also in item->status) for bad inputs. */
int kt_submit(kt_conn *c, struct kt_item *item);
/*
 * Waits for the next response to a submitted item, fills that item and
 * points *done at it; returns the transport status (KT_OK even when the item
 * itself failed: see (*done)->status, and kt_errmsg for its message).
 * After a connection failure every item in flight gets the error as status.
 */
int kt_complete(kt_conn *c, struct kt_item **done);
/* Items submitted and not yet returned by kt_complete. */
size_t kt_in_flight(const kt_conn *c);
/*
 * Runs n items keeping up to depth (0 → 32) in flight; each item's status is
 * in items[i].status. Returns KT_OK unless the connection failed (or timed
 * out), in which case the unfinished items carry that status.
 */
int kt_batch(kt_conn *c, struct kt_item *items, size_t n, unsigned depth);

#ifdef __cplusplus
}
#endif

#endif
