/*
 * The table of keys the daemon serves: each configured [key NAME] with its
 * public numbers needed for checks and exports. Built at start-up or by a
 * reload (struct gen); read-only afterwards, so threads share it freely.
 */
#ifndef KT_KEYTAB_H
#define KT_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hsm.h"
#include "implicit.h"
#include "rsa_pub.h"

struct key {
	char name[CONFIG_NAME_MAX + 1];
	size_t index;                   /* position in the table (and in each HSM's key list) */
	unsigned long keyset;           /* the key list it belongs to (struct gen) */
	const struct key_conf *conf;    /* mechanism and access rules */
	EVP_PKEY *pub;                  /* the public half (software; every HSM holds the same) */
	char label[CONFIG_LABEL_MAX + 1];   /* CKA_LABEL as the token has it */
	uint8_t id[CONFIG_ID_MAX];      /* CKA_ID */
	size_t id_len;
	uint8_t n[RSA_MAX_BYTES];       /* modulus, big-endian */
	size_t k;                       /* modulus bytes */
	uint64_t e;
	char exposed[80];               /* "" or how the private key can leave the HSM */
	int has_ir;                     /* implicit rejection available (raw mechanism) */
	uint8_t ir_key[IR_KEY_LEN];     /* its secret: see ir_secret() */
};

/* Lives in OpenSSL's locked heap: it holds the implicit-rejection secrets. */
struct keytab {
	struct key *keys;
	size_t n;                       /* loaded */
	size_t cap;                     /* allocated */
};

#define KEYTAB_RETRY (-2)      /* the HSM failed: building again may pass */

/*
 * Builds the table from the keys one HSM holds (found[i] for c->keys[i]) and
 * derives each raw-mechanism key's implicit-rejection secret with that HSM;
 * -1 (a configuration error) or KEYTAB_RETRY, with err naming the key.
 */
int keytab_load(struct keytab *t, const struct config *c, unsigned long keyset,
		const struct hsm_key *found, char *err, size_t errlen);
/* A copy of src for c, which lists the same keys in the same order (rules may differ). */
int keytab_clone(struct keytab *dst, const struct keytab *src, const struct config *c);
/* 1 when the HSM key k holds is the same key as the table's (public halves compared). */
int keytab_same_key(const struct key *k, const struct hsm_key *hk);
void keytab_free(struct keytab *t);
/* NULL when no key has that name. */
struct key *keytab_find(const struct keytab *t, const char *name);

#endif
