#include "keytab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ckr.h"

#define IR_LABEL "keytrans implicit rejection v1"

/*
 * The implicit-rejection secret of a key: SHA-256 of the raw RSA private
 * operation on a fixed value derived from the modulus. Only the HSM can
 * compute it, it never changes for a key (same answer after a restart or on
 * another host with the same key), and it is different for every key: the
 * role the private exponent plays in the CFRG draft.
 */
static int ir_secret(struct key *k, EVP_PKEY *priv, char *err, size_t errlen)
{
	char rv[64];
	uint8_t *m = OPENSSL_secure_zalloc(2 * RSA_MAX_BYTES), *s;
	EVP_PKEY_CTX *ctx = hsm_raw_ctx_new(priv);
	unsigned long ckr = 0;
	unsigned char block[32];
	int rc = -1;

	if (m == NULL || ctx == NULL)
		goto done;
	s = m + RSA_MAX_BYTES;
	/* m = SHA-256(label | n | counter) blocks, top byte 0 so that m < n. */
	for (uint32_t i = 0; 32 * i < k->k; i++) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		uint8_t ctr[4] = { (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
		int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
			 EVP_DigestUpdate(md, IR_LABEL, strlen(IR_LABEL)) &&
			 EVP_DigestUpdate(md, k->n, k->k) && EVP_DigestUpdate(md, ctr, sizeof(ctr)) &&
			 EVP_DigestFinal_ex(md, block, NULL);

		EVP_MD_CTX_free(md);
		if (!ok)
			goto done;
		memcpy(m + 32 * i, block, k->k - 32 * i < 32 ? k->k - 32 * i : 32);
	}
	m[0] = 0;
	if (hsm_rsa_raw(ctx, m, k->k, s, &ckr) != 0) {
		/* Only a refusal of the mechanism is about the configuration; the rest may pass. */
		if (ckr_is_refusal(ckr))
			snprintf(err, errlen, "[key %s]: the HSM refuses raw RSA (%s): set rsa_mechanism = "
				 "pkcs for this key", k->name, ckr_describe(ckr, rv, sizeof(rv)));
		else
			snprintf(err, errlen, "[key %s]: deriving the implicit-rejection secret failed: %s%s",
				 k->name, ckr_describe(ckr, rv, sizeof(rv)),
				 ckr_is_resource(ckr) ? ", a resource error in the HSM" : "");
		rc = ckr_is_refusal(ckr) ? -1 : KEYTAB_RETRY;
		goto done;
	}
	if (EVP_Digest(s, k->k, k->ir_key, NULL, EVP_sha256(), NULL) != 1)
		goto done;
	k->has_ir = 1;
	rc = 0;
done:
	if (rc == -1 && !ckr_is_refusal(ckr))
		snprintf(err, errlen, "[key %s]: cannot derive the implicit-rejection secret", k->name);
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_secure_clear_free(m, 2 * RSA_MAX_BYTES);
	return rc;
}

int keytab_load(struct keytab *t, const struct config *c, unsigned long keyset,
		const struct hsm_key *found, char *err, size_t errlen)
{
	int rc = -1;

	t->n = 0;
	t->cap = c->nkeys ? c->nkeys : 1;
	t->keys = OPENSSL_secure_zalloc(t->cap * sizeof(*t->keys));
	if (t->keys == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < c->nkeys; i++) {
		struct key *k = &t->keys[i];

		snprintf(k->name, sizeof(k->name), "%s", c->keys[i].name);
		k->index = i;
		k->keyset = keyset;
		k->conf = &c->keys[i];
		k->pub = found[i].pub;
		EVP_PKEY_up_ref(k->pub);
		snprintf(k->label, sizeof(k->label), "%s", found[i].label);
		memcpy(k->id, found[i].id, found[i].id_len);
		k->id_len = found[i].id_len;
		hsm_key_exposed(&found[i], k->exposed, sizeof(k->exposed));
		t->n++;
		if (rsa_pub_numbers(k->pub, k->n, &k->k, &k->e) != 0 || k->k * 8 < RSA_MIN_BITS) {
			snprintf(err, errlen, "[key %s]: RSA keys of %d to %d bits are supported",
				 k->name, RSA_MIN_BITS, RSA_MAX_BITS);
			goto fail;
		}
		if (k->conf->mechanism == MECH_RAW && (rc = ir_secret(k, found[i].priv, err, errlen)) != 0)
			goto fail;
	}
	return 0;
fail:
	keytab_free(t);
	return rc;
}

int keytab_clone(struct keytab *dst, const struct keytab *src, const struct config *c)
{
	dst->cap = src->n ? src->n : 1;
	dst->keys = OPENSSL_secure_zalloc(dst->cap * sizeof(*dst->keys));
	dst->n = 0;
	if (dst->keys == NULL)
		return -1;
	for (size_t i = 0; i < src->n; i++) {
		dst->keys[i] = src->keys[i];
		dst->keys[i].conf = &c->keys[i];
		EVP_PKEY_up_ref(dst->keys[i].pub);
		dst->n++;
	}
	return 0;
}

int keytab_same_key(const struct key *k, const struct hsm_key *hk)
{
	return EVP_PKEY_eq(k->pub, hk->pub) == 1;
}

void keytab_free(struct keytab *t)
{
	for (size_t i = 0; i < t->n; i++)
		EVP_PKEY_free(t->keys[i].pub);
	if (t->keys != NULL)
		OPENSSL_secure_clear_free(t->keys, t->cap * sizeof(*t->keys));
	t->keys = NULL;
	t->n = 0;
}

struct key *keytab_find(const struct keytab *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->keys[i].name, name) == 0)
			return &t->keys[i];
	return NULL;
}
