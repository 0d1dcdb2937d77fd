/* keytrans bench: a closed-loop load generator (shared declarations). */
#ifndef KT_BENCH_H
#define KT_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "keytrans.h"

enum bench_op { B_UNWRAP, B_UNWRAP_OAEP, B_WRAP, B_WRAP_GENERATE, B_COPP_SIGN, B_COPP_OPEN,
		B_PUBKEY, B_OPM_SIGN, B_OPM_OPEN, B_SESSION_MAC, B_SESSION_VERIFY, B_OPS };

#define BENCH_CASES 64          /* distinct prepared requests, used round robin */
#define BENCH_DATA 64           /* bytes of each session-mac / session-verify message */

#define BENCH_RECIPIENTS_MAX 100000

/* --distinct-recipients: forms of --to's key, each another recipient to the daemon. */
struct bench_recipients {
	uint8_t **p;
	size_t *len;
	size_t n;
};

struct bench_cfg {
	enum bench_op op;
	const char *key;            /* --key NAME: an HSM key */
	const uint8_t *to_pub;      /* --to KEYFILE: a public key (wrap, copp-sign) */
	size_t to_pub_len;
	const struct bench_recipients *variants;   /* or, cycled through, these (NULL: none) */
	uint32_t alg_id;            /* --alg, default CALG_AES_128 */
	int strict;                 /* --strict: unwrap and copp-open with KT_STRICT */
	unsigned conns, depth;
	double duration;            /* seconds, when requests == 0 */
	uint64_t requests;
	const char *socket;
};

/* Inputs prepared once, and the answers each of them must get. Read-only while running. */
struct bench_fixture {
	size_t k;                                   /* recipient modulus bytes */
	struct kt_session_key keys[BENCH_CASES];    /* session keys (wrap input, unwrap answer) */
	uint8_t blobs[BENCH_CASES][KT_BLOB_MAX];    /* SIMPLEBLOBs to unwrap */
	size_t blob_len[BENCH_CASES];
	struct kt_copp copp[BENCH_CASES];           /* COPP parameters and signatures */
	uint8_t pubkey[KT_BLOB_MAX];                /* pubkey's expected answer */
	size_t pubkey_len;
	int sealed;                                 /* session is open (closed by bench_finish) */
	uint8_t session[KT_SESSION_LEN];            /* session-mac, session-verify: a sealed session */
	struct kt_session_seq seq;                  /* its numbers, which KIND none never moves */
	uint8_t data[BENCH_CASES][BENCH_DATA];      /* messages */
	uint8_t omac[BENCH_CASES][KT_OMAC_LEN];     /* their OMAC-1, computed here */
};

const char *bench_op_name(enum bench_op op);
int bench_op_parse(const char *name, enum bench_op *op);
/* Prepares the fixture through the daemon (wraps, signs); KT status, message in err. */
int bench_prepare(kt_conn *c, const struct bench_cfg *cfg, struct bench_fixture *fx, char *err,
		  size_t errlen);
/* Closes what bench_prepare opened in the daemon (the sealed session). */
void bench_finish(kt_conn *c, struct bench_fixture *fx);
/* Sets up item for request number seq. */
void bench_fill(const struct bench_cfg *cfg, const struct bench_fixture *fx, uint64_t seq,
		struct kt_item *it);
/* 0 when the answer to request seq is right, else -1 with a reason. */
int bench_check(const struct bench_cfg *cfg, const struct bench_fixture *fx, uint64_t seq,
		const struct kt_item *it, char *why, size_t whylen);

/*
 * n recipients like file (PUBLICKEYBLOB, PEM or DER key or certificate, COPP XML chain) but
 * each with another modulus of the same length. 0, or -1 when file's modulus
 * cannot be found.
 */
int bench_recipients_make(const uint8_t *file, size_t len, size_t n, struct bench_recipients *r);
void bench_recipients_free(struct bench_recipients *r);

/* Latency statistics over all samples (microseconds). */
struct bench_stats {
	uint64_t n;
	uint32_t p50, p90, p99, max;
};
/* Sorts samples in place. */
void bench_stats(uint32_t *samples, size_t n, struct bench_stats *out);

#endif
