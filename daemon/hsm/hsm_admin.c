#include "hsm_admin.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ckr.h"
#include "hsm.h"
#include "hsm_p11.h"
#include "privkey.h"
#include "rsa_pub.h"

#define TEMPLATE_MAX 24

static const CK_BBOOL ck_true = CK_TRUE, ck_false = CK_FALSE;
static const CK_OBJECT_CLASS class_private = CKO_PRIVATE_KEY, class_public = CKO_PUBLIC_KEY;
static const CK_KEY_TYPE key_rsa = CKK_RSA;

/* A session of our own on the token's slot, and the step that failed. */
struct session {
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE s;
	int open;
	CK_RV rv;
	const char *step;
};

/* An attribute template, built up one attribute at a time. */
struct tmpl {
	CK_ATTRIBUTE a[TEMPLATE_MAX];
	CK_ULONG n;
};

/* The module only reads templates: the values may be const. */
static void add(struct tmpl *t, CK_ATTRIBUTE_TYPE type, const void *value, size_t len)
{
	if (t->n < TEMPLATE_MAX)
		t->a[t->n++] = (CK_ATTRIBUTE){ type, (void *)value, (CK_ULONG)len };
}

static void add_bool(struct tmpl *t, CK_ATTRIBUTE_TYPE type, int on)
{
	add(t, type, on ? &ck_true : &ck_false, sizeof(CK_BBOOL));
}

/* What both halves carry: their class, RSA, on the token, the label and the id. */
static void add_common(struct tmpl *t, const CK_OBJECT_CLASS *class, const char *label,
		       const uint8_t *id)
{
	if (class != NULL)
		add(t, CKA_CLASS, class, sizeof(*class));
	add(t, CKA_KEY_TYPE, &key_rsa, sizeof(key_rsa));
	add_bool(t, CKA_TOKEN, 1);
	add(t, CKA_LABEL, label, strlen(label));
	add(t, CKA_ID, id, HSM_ID_LEN);
}

/*
 * The private half never leaves the HSM, and decrypts (raw RSA) only. Some
 * modules refuse parts of that in a key-pair template (tpm2-pkcs11 refuses
 * CKA_ENCRYPT and CKA_VERIFY in the public half): keygen then tries without
 * the public half's usage, then with the short private form too, which keeps
 * what matters (sensitive, not extractable, decrypts) and leaves the rest to
 * the module's defaults.
 */
static void add_private_policy(struct tmpl *t, int full)
{
	add_bool(t, CKA_PRIVATE, 1);
	add_bool(t, CKA_SENSITIVE, 1);
	add_bool(t, CKA_EXTRACTABLE, 0);
	add_bool(t, CKA_DECRYPT, 1);
	if (full) {
		add_bool(t, CKA_SIGN, 0);
		add_bool(t, CKA_UNWRAP, 0);
	}
}

static void add_public_policy(struct tmpl *t, int full)
{
	if (full) {
		add_bool(t, CKA_PRIVATE, 0);
		add_bool(t, CKA_ENCRYPT, 1);
		add_bool(t, CKA_VERIFY, 1);
		add_bool(t, CKA_WRAP, 0);
	}
}

/* The codes with which modules refuse a template (tpm2-pkcs11: CKR_GENERAL_ERROR). */
static int template_refused(CK_RV rv)
{
	switch (rv) {
	case CKR_TEMPLATE_INCONSISTENT:
	case CKR_TEMPLATE_INCOMPLETE:
	case CKR_ATTRIBUTE_TYPE_INVALID:
	case CKR_ATTRIBUTE_VALUE_INVALID:
	case CKR_ATTRIBUTE_READ_ONLY:
	case CKR_ACTION_PROHIBITED:
	case CKR_FUNCTION_NOT_SUPPORTED:
	case CKR_GENERAL_ERROR:
	case CKR_FUNCTION_FAILED:
		return 1;
	}
	return 0;
}

static int step_failed(struct session *s, CK_RV rv, const char *step)
{
	s->rv = rv;
	s->step = step;
	return -1;
}

static int open_session(struct hsm *h, struct session *s)
{
	CK_SLOT_ID slot;

	s->f = hsm_functions(h, &slot);
	if (s->f == NULL)
		return step_failed(s, CKR_GENERAL_ERROR, "finding the module's functions");
	s->rv = s->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s->s);
	if (s->rv != CKR_OK)
		return step_failed(s, s->rv, "C_OpenSession");
	s->open = 1;
	return 0;
}

/* 1 when an object has the attribute value, 0 when none has, -1 on error. */
static int exists(struct session *s, CK_ATTRIBUTE_TYPE type, const void *value, size_t len)
{
	CK_ATTRIBUTE t = { type, (void *)value, (CK_ULONG)len };
	CK_OBJECT_HANDLE o;
	CK_ULONG n = 0;
	CK_RV rv = s->f->C_FindObjectsInit(s->s, &t, 1);

	if (rv != CKR_OK)
		return step_failed(s, rv, "C_FindObjectsInit");
	rv = s->f->C_FindObjects(s->s, &o, 1, &n);
	s->f->C_FindObjectsFinal(s->s);
	return rv != CKR_OK ? step_failed(s, rv, "C_FindObjects") : n > 0;
}

static int label_free(struct session *s, struct hsm *h, const char *label, char *err, size_t errlen)
{
	int rc = exists(s, CKA_LABEL, label, strlen(label));

	if (rc == 1) {
		snprintf(err, errlen, "token \"%s\" already holds an object labelled \"%s\"",
			 hsm_token_label(h), label);
		return HSM_TAKEN;
	}
	return rc;
}

/* A random id that no object has (the HSM's generator). */
static int fresh_id(struct session *s, uint8_t id[HSM_ID_LEN])
{
	for (int tries = 0; tries < 4; tries++) {
		CK_RV rv = s->f->C_GenerateRandom(s->s, id, HSM_ID_LEN);
		int rc;

		if (rv != CKR_OK)
			return step_failed(s, rv, "C_GenerateRandom");
		rc = exists(s, CKA_ID, id, HSM_ID_LEN);
		if (rc <= 0)
			return rc;
	}
	return step_failed(s, CKR_FUNCTION_FAILED, "finding a free CKA_ID");
}

/* The public half as a software key, read back from the token's public key object. */
static int read_public(struct session *s, CK_OBJECT_HANDLE pub, EVP_PKEY **out)
{
	uint8_t n[RSA_MAX_BYTES], e[16];
	CK_ATTRIBUTE t[] = { { CKA_MODULUS, n, sizeof(n) }, { CKA_PUBLIC_EXPONENT, e, sizeof(e) } };
	CK_RV rv = s->f->C_GetAttributeValue(s->s, pub, t, 2);

	if (rv != CKR_OK)
		return step_failed(s, rv, "reading the new public key");
	*out = rsa_pub_from_ne(n, t[0].ulValueLen, e, t[1].ulValueLen);
	return *out ? 0 : step_failed(s, CKR_FUNCTION_FAILED, "reading the new public key");
}

static void destroy(struct session *s, CK_OBJECT_HANDLE o)
{
	if (o != CK_INVALID_HANDLE)
		s->f->C_DestroyObject(s->s, o);
}

/* e as a big-endian number without leading zero bytes; its length. */
static size_t exponent_bytes(uint64_t e, uint8_t out[8])
{
	size_t skip = 0;

	for (int i = 7; i >= 0; i--, e >>= 8)
		out[i] = (uint8_t)e;
	while (skip < 7 && out[skip] == 0)
		skip++;
	memmove(out, out + skip, 8 - skip);
	return 8 - skip;
}

enum template_level { TEMPLATE_FULL, TEMPLATE_NO_PUBLIC_USAGE, TEMPLATE_SHORT, TEMPLATE_LEVELS };

static int generate(struct session *s, const char *label, unsigned bits, uint64_t e,
		    enum template_level level, struct hsm_new_key *out)
{
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_ULONG modulus_bits = bits;
	struct tmpl pub = { .n = 0 }, priv = { .n = 0 };
	uint8_t eb[8];
	size_t elen = exponent_bytes(e, eb);
	CK_RV rv;

	add_common(&pub, NULL, label, out->id);
	add_public_policy(&pub, level == TEMPLATE_FULL);
	add(&pub, CKA_MODULUS_BITS, &modulus_bits, sizeof(modulus_bits));
	add(&pub, CKA_PUBLIC_EXPONENT, eb, elen);
	add_common(&priv, NULL, label, out->id);
	add_private_policy(&priv, level != TEMPLATE_SHORT);
	rv = s->f->C_GenerateKeyPair(s->s, &mech, pub.a, pub.n, priv.a, priv.n, &hpub, &hpriv);
	if (rv != CKR_OK)
		return step_failed(s, rv, "C_GenerateKeyPair");
	if (read_public(s, hpub, &out->pub) != 0) {
		destroy(s, hpriv);
		destroy(s, hpub);
		return -1;
	}
	return 0;
}

/* Closes the session; on failure err names the step and the PKCS#11 code. */
static int finish(struct session *s, int rc, unsigned long *ckr, char *err, size_t errlen)
{
	if (s->open)
		s->f->C_CloseSession(s->s);
	char rv[64];

	*ckr = 0;
	if (rc == -1 || rc == HSM_UNSUPPORTED) {
		*ckr = s->rv;
		snprintf(err, errlen, "%s failed: %s", s->step, ckr_describe(s->rv, rv, sizeof(rv)));
	}
	return rc;
}

/* C_GenerateKeyPair failed with a code by which modules refuse a template. */
static int generate_refused(const struct session *s)
{
	return s->step != NULL && strcmp(s->step, "C_GenerateKeyPair") == 0 &&
	       template_refused(s->rv);
}

int hsm_generate_rsa(struct hsm *h, const char *label, unsigned bits, uint64_t e,
		     struct hsm_new_key *out, unsigned long *ckr, char *err, size_t errlen)
{
	struct session s = { .f = NULL };
	int rc = open_session(h, &s);

	out->pub = NULL;
	if (rc == 0)
		rc = label_free(&s, h, label, err, errlen);
	if (rc == 0)
		rc = fresh_id(&s, out->id);
	if (rc == 0) {
		enum template_level level = TEMPLATE_FULL;

		while ((rc = generate(&s, label, bits, e, level, out)) != 0 && generate_refused(&s) &&
		       ++level < TEMPLATE_LEVELS)
			;
		if (rc == -1 && (generate_refused(&s) || ckr_is_refusal(s.rv)))
			rc = HSM_UNSUPPORTED;
	}
	return finish(&s, rc, ckr, err, errlen);
}

/* The id of an imported key: the same key always gets the same one, so it cannot go in twice. */
static int modulus_id(struct session *s, const struct rsa_parts *p, uint8_t id[HSM_ID_LEN])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int len;

	if (!EVP_Digest(p->num[RSA_N].b, p->num[RSA_N].len, md, &len, EVP_sha1(), NULL))
		return step_failed(s, CKR_FUNCTION_FAILED, "hashing the modulus");
	memcpy(id, md, HSM_ID_LEN);
	return 0;
}

static int key_not_there(struct session *s, struct hsm *h, const uint8_t *id, char *err,
			 size_t errlen)
{
	int rc = exists(s, CKA_ID, id, HSM_ID_LEN);

	if (rc == 1) {
		snprintf(err, errlen, "token \"%s\" already holds this key (an object with its CKA_ID)",
			 hsm_token_label(h));
		return HSM_TAKEN;
	}
	return rc;
}

/* The private key object with every number, then the public one; none or both. */
static int create(struct session *s, const char *label, const struct rsa_parts *p,
		  const uint8_t *id)
{
	static const CK_ATTRIBUTE_TYPE number_attr[RSA_NPARTS] = {
		[RSA_N] = CKA_MODULUS, [RSA_E] = CKA_PUBLIC_EXPONENT, [RSA_D] = CKA_PRIVATE_EXPONENT,
		[RSA_P] = CKA_PRIME_1, [RSA_Q] = CKA_PRIME_2, [RSA_DP] = CKA_EXPONENT_1,
		[RSA_DQ] = CKA_EXPONENT_2, [RSA_QINV] = CKA_COEFFICIENT,
	};
	struct tmpl priv = { .n = 0 }, pub = { .n = 0 };
	CK_OBJECT_HANDLE hpriv, hpub;
	CK_RV rv;

	add_common(&priv, &class_private, label, id);
	add_private_policy(&priv, 1);
	for (int i = 0; i < RSA_NPARTS; i++)
		add(&priv, number_attr[i], p->num[i].b, p->num[i].len);
	add_common(&pub, &class_public, label, id);
	add_public_policy(&pub, 1);
	add(&pub, CKA_MODULUS, p->num[RSA_N].b, p->num[RSA_N].len);
	add(&pub, CKA_PUBLIC_EXPONENT, p->num[RSA_E].b, p->num[RSA_E].len);
	rv = s->f->C_CreateObject(s->s, priv.a, priv.n, &hpriv);
	if (rv != CKR_OK) {
		step_failed(s, rv, "C_CreateObject (private key)");
		return template_refused(rv) ? HSM_UNSUPPORTED : -1;
	}
	rv = s->f->C_CreateObject(s->s, pub.a, pub.n, &hpub);
	if (rv != CKR_OK) {
		destroy(s, hpriv);
		return step_failed(s, rv, "C_CreateObject (public key)");
	}
	return 0;
}

int hsm_import_rsa(struct hsm *h, const char *label, const struct rsa_parts *parts,
		   struct hsm_new_key *out, unsigned long *ckr, char *err, size_t errlen)
{
	const struct rsa_num *n = &parts->num[RSA_N], *e = &parts->num[RSA_E];
	struct session s = { .f = NULL };
	int rc;

	out->pub = rsa_pub_from_ne(n->b, n->len, e->b, e->len);
	rc = out->pub != NULL ? open_session(h, &s)
			      : step_failed(&s, CKR_FUNCTION_FAILED, "copying the public key");
	if (rc == 0)
		rc = label_free(&s, h, label, err, errlen);
	if (rc == 0)
		rc = modulus_id(&s, parts, out->id);
	if (rc == 0)
		rc = key_not_there(&s, h, out->id, err, errlen);
	if (rc == 0)
		rc = create(&s, label, parts, out->id);
	if (rc != 0) {
		EVP_PKEY_free(out->pub);
		out->pub = NULL;
	}
	return finish(&s, rc, ckr, err, errlen);
}
