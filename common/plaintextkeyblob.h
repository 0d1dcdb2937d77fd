/*
 * PLAINTEXTKEYBLOB: a session key in the clear as CryptExportKey writes it
 * (BLOBHEADER bType 0x08 | u32 LE key length | key bytes). The CLI reads and
 * writes it so that Windows code can import an unwrapped key.
 */
#ifndef KT_PLAINTEXTKEYBLOB_H
#define KT_PLAINTEXTKEYBLOB_H

#include <stddef.h>
#include <stdint.h>

#include "alg.h"

#define PLAINTEXTKEYBLOB_HDR 12
#define PLAINTEXTKEYBLOB_MAX (PLAINTEXTKEYBLOB_HDR + ALG_KEY_MAX)

enum ptkb_error {
	PTKB_OK = 0,
	PTKB_LENGTH,    /* shorter than the header, or length field disagrees */
	PTKB_TYPE,      /* bType is not 0x08 */
	PTKB_VERSION,   /* bVersion is not 0x02 */
	PTKB_RESERVED,  /* reserved is not 0 */
	PTKB_ALG,       /* aiKeyAlg is not a session-key algorithm */
	PTKB_KEY_LENGTH /* key length not allowed for the algorithm */
};

/* Writes the blob into out (capacity cap); returns its length or 0. */
size_t ptkb_encode(uint32_t alg_id, const uint8_t *key, size_t key_len, uint8_t *out, size_t cap);
/* Parses a blob; key receives up to ALG_KEY_MAX bytes. */
enum ptkb_error ptkb_decode(const uint8_t *blob, size_t len, uint32_t *alg_id,
			    uint8_t key[ALG_KEY_MAX], size_t *key_len);
const char *ptkb_strerror(enum ptkb_error e);

#endif
