/*
 * CryptoAPI session-key algorithms: ALG_ID, names and the key lengths a
 * SIMPLEBLOB or PLAINTEXTKEYBLOB may carry (docs/formats.md, the table).
 */
#ifndef KT_ALG_H
#define KT_ALG_H

#include <stddef.h>
#include <stdint.h>

#define CALG_RSA_KEYX 0x0000a400u
#define CALG_RSA_SIGN 0x00002400u
#define ALG_KEY_MAX 32          /* longest session key, bytes (AES-256) */

struct alg_info {
	uint32_t id;
	const char *name;       /* "CALG_AES_128" */
	uint8_t min_len;        /* key bytes */
	uint8_t max_len;
};

/* NULL when id is not a session-key algorithm the service handles. */
const struct alg_info *alg_by_id(uint32_t id);
/* Accepts "CALG_AES_128", "AES_128", "aes_128", "AES-128", "0x660e", "26126". */
const struct alg_info *alg_by_name(const char *name);
/* 1 when len bytes is an allowed key length for the algorithm. */
int alg_len_ok(const struct alg_info *a, size_t len);
/* The key length generated when the caller names none (the longest). */
size_t alg_default_len(const struct alg_info *a);
/* The table itself, for listings. */
const struct alg_info *alg_table(size_t *n);

#endif
