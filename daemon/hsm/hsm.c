#include "hsm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/err.h>
#include <p11-kit/pkcs11.h>
#include <openssl/rsa.h>

#include "ckr.h"
#include "hsm_p11.h"
#include "quirks.h"
#include "rsa_pub.h"

struct hsm {
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	PKCS11_SLOT *slot;
	CK_SLOT_ID slot_id;
	char token[CONFIG_TOKEN_MAX + 1];
	int loaded;                     /* libp11 loaded and initialised the module */
	void *lib;                      /* our reference to the module (taken before libp11's) */
	CK_FUNCTION_LIST_PTR f;         /* the functions of libp11's own instance of it */
	struct hsm_quirks quirks;
};

/* The CK_RV of the newest libp11 error on this thread's queue (0 if none); clears the queue. */
static unsigned long take_ckr(void)
{
	int lib = ERR_get_CKR_code();
	unsigned long e, ckr = 0;

	while ((e = ERR_get_error()) != 0)
		if (ERR_GET_LIB(e) == lib)
			ckr = (unsigned long)ERR_GET_REASON(e);
	return ckr;
}

static int same(const char *want, const char *have)
{
	return want[0] == '\0' || (have != NULL && strcmp(want, have) == 0);
}

/* label ("" : any) and what a token URI gave besides; libp11 strips the padding too. */
static int token_matches(const PKCS11_TOKEN *t, const char *label, const struct token_attrs *a)
{
	return same(label, t->label) && same(a->manufacturer, t->manufacturer) &&
	       same(a->serial, t->serialnr) && same(a->model, t->model);
}

/* "\"kt\"", or "\"kt\" (manufacturer \"*\", serial \"1234\", model \"*\")" when a URI asks for more. */
static void describe_token(const char *label, const struct token_attrs *a, char *out, size_t len)
{
	int n = snprintf(out, len, "\"%s\"", label);

	if (a->manufacturer[0] || a->serial[0] || a->model[0])
		snprintf(out + n, len - (size_t)n, " (manufacturer \"%s\", serial \"%s\", model \"%s\")",
			 a->manufacturer[0] ? a->manufacturer : "*", a->serial[0] ? a->serial : "*",
			 a->model[0] ? a->model : "*");
}

static PKCS11_SLOT *find_token(struct hsm *h, const char *label, const struct token_attrs *attrs,
			       char *err, size_t errlen)
{
	char seen[256] = "", want[160];
	size_t used = 0;

	describe_token(label, attrs, want, sizeof(want));
	for (unsigned int i = 0; i < h->nslots; i++) {
		PKCS11_TOKEN *t = h->slots[i].token;

		if (t == NULL)
			continue;
		if (token_matches(t, label, attrs)) {
			/* libp11 hangs on a session to an uninitialised token: check first. */
			if (!t->initialized) {
				snprintf(err, errlen, "token %s is not initialised", want);
				return NULL;
			}
			return &h->slots[i];
		}
		if (t->initialized && used < sizeof(seen))
			used += (size_t)snprintf(seen + used, sizeof(seen) - used, "%s\"%s\"",
						 used ? ", " : "", t->label);
	}
	snprintf(err, errlen, "token %s not found (initialised tokens present: %s)", want,
		 used ? seen : "none");
	return NULL;
}

static void login_error(unsigned long ckr, const char *token, char *err, size_t errlen)
{
	char rv[64];

	if (ckr == CKR_PIN_INCORRECT)
		snprintf(err, errlen, "login to token \"%s\" failed: wrong PIN", token);
	else if (ckr == CKR_PIN_LOCKED)
		snprintf(err, errlen, "login to token \"%s\" failed: the user PIN is locked", token);
	else
		snprintf(err, errlen, "login to token \"%s\" failed: %s%s", token,
			 ckr_describe(ckr, rv, sizeof(rv)),
			 ckr_is_resource(ckr) ? " (the HSM is out of a resource)" : "");
}

/*
 * libp11 0.4.12 has no accessor for the function list of the module it
 * loaded, and calling the module's C_GetFunctionList again is not the same:
 * p11-kit-client.so hands out a fresh, uninitialised instance with its own
 * connection each time. So the list is read from libp11's context, whose
 * private part starts with it (libp11-int.h, 0.4.x), and checked to be the
 * module's: its functions must live in the library we loaded.
 */
static CK_FUNCTION_LIST_PTR libp11_functions(PKCS11_CTX *ctx, void *lib)
{
	CK_FUNCTION_LIST_PTR f = ctx->_private ? *(CK_FUNCTION_LIST_PTR *)ctx->_private : NULL;
	void *ours = dlsym(lib, "C_GetFunctionList");
	Dl_info a, b;

	if (f == NULL || ours == NULL || (f->version.major != 2 && f->version.major != 3) ||
	    f->C_OpenSession == NULL || f->C_Decrypt == NULL ||
	    dladdr((void *)f->C_OpenSession, &a) == 0 || dladdr(ours, &b) == 0 ||
	    a.dli_fbase != b.dli_fbase)
		return NULL;
	return f;
}

/* "CKR_HOST_MEMORY (0x2), a resource error" and the like, for start-up messages. */
static const char *explain(unsigned long ckr, char *buf, size_t len)
{
	char rv[64];

	snprintf(buf, len, "%s%s", ckr_describe(ckr, rv, sizeof(rv)),
		 ckr_is_resource(ckr) ? ", a resource error (memory, sessions or a service the "
					"module needs, such as opencryptoki's pkcsslotd)" : "");
	return buf;
}

/*
 * The module's library itself: missing or not loadable is a configuration
 * error; libp11 would report it like a C_Initialize failure, which may pass.
 */
static int load_library(struct hsm *h, const char *module, char *err, size_t errlen)
{
	h->lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (h->lib == NULL) {
		snprintf(err, errlen, "cannot load PKCS#11 module %s: %s", module, dlerror());
		return HSM_FATAL;
	}
	if (dlsym(h->lib, "C_GetFunctionList") == NULL) {
		snprintf(err, errlen, "%s is not a PKCS#11 module (no C_GetFunctionList)", module);
		return HSM_FATAL;
	}
	return 0;
}

/* C_Initialize through libp11; a failure may pass (a service the module needs may start). */
static int initialise(struct hsm *h, const char *module, char *err, size_t errlen)
{
	char why[200];

	if (PKCS11_CTX_load(h->ctx, module) != 0) {
		snprintf(err, errlen, "PKCS#11 module %s did not initialise: %s", module,
			 explain(take_ckr(), why, sizeof(why)));
		return -1;
	}
	h->loaded = 1;
	h->f = libp11_functions(h->ctx, h->lib);
	if (h->f == NULL) {
		snprintf(err, errlen, "cannot find the functions libp11 loaded from %s "
			 "(an unsupported libp11 version?)", module);
		return HSM_FATAL;
	}
	hsm_quirks_detect(h->f, &h->quirks);
	return 0;
}

static int list_slots(struct hsm *h, const char *module, char *err, size_t errlen)
{
	CK_ULONG n = 0;
	CK_RV rv;
	char why[200];

	if (PKCS11_enumerate_slots(h->ctx, &h->slots, &h->nslots) == 0)
		return 0;
	/* libp11 does not always say why: ask the module. */
	rv = h->f->C_GetSlotList(CK_FALSE, NULL, &n);
	if (rv != CKR_OK)
		snprintf(err, errlen, "cannot list the slots of %s: %s", module,
			 explain(rv, why, sizeof(why)));
	else
		snprintf(err, errlen, "%s lists %lu slots (a module that reaches its token over "
			 "the network, such as p11-kit-client.so, lists none while its server is "
			 "unreachable)", module, (unsigned long)n);
	return -1;
}

/*
 * libp11 0.4.12 waits forever when C_OpenSession fails while it holds no
 * session (its pool waits for a session to come back), which is the state of
 * every login. So one session is opened and closed first, through the same
 * instance of the module: a failing HSM then gives an error, not a hang.
 */
static int probe_session(struct hsm *h, char *err, size_t errlen)
{
	CK_SESSION_HANDLE s;
	CK_RV rv = h->f->C_OpenSession(h->slot_id, CKF_SERIAL_SESSION, NULL, NULL, &s);
	char why[200];

	if (rv != CKR_OK) {
		snprintf(err, errlen, "cannot open a session on token \"%s\": %s", h->token,
			 explain(rv, why, sizeof(why)));
		return -1;
	}
	h->f->C_CloseSession(s);
	return 0;
}

int hsm_open(const char *module, const char *token, const struct token_attrs *attrs,
	     const char *pin, struct hsm **out, char *err, size_t errlen)
{
	struct hsm *h = calloc(1, sizeof(*h));
	unsigned long ckr;
	int rc = -1;

	*out = NULL;
	if (h == NULL || (h->ctx = PKCS11_CTX_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(h->token, sizeof(h->token), "%s", token);
	if ((rc = load_library(h, module, err, errlen)) != 0 ||
	    (rc = initialise(h, module, err, errlen)) != 0 ||
	    (rc = list_slots(h, module, err, errlen)) != 0)
		goto fail;
	rc = -1;
	h->slot = find_token(h, token, attrs, err, errlen);
	if (h->slot == NULL)
		goto fail;
	h->slot_id = PKCS11_get_slotid_from_slot(h->slot);
	if (probe_session(h, err, errlen) != 0)
		goto fail;
	if (PKCS11_login(h->slot, 0, pin) != 0) {
		ckr = take_ckr();
		login_error(ckr, token, err, errlen);
		/* CKR_PIN_INCORRECT .. CKR_PIN_LOCKED: every retry would count against the PIN. */
		if (ckr >= CKR_PIN_INCORRECT && ckr <= CKR_PIN_LOCKED)
			rc = HSM_FATAL;
		goto fail;
	}
	*out = h;
	return 0;
fail:
	ERR_clear_error();
	hsm_close(h);
	return rc;
}

void hsm_close(struct hsm *h)
{
	if (h == NULL)
		return;
	if (h->loaded) {
		if (h->slots != NULL)
			PKCS11_release_all_slots(h->ctx, h->slots, h->nslots);
		/* C_Finalize: every session of this instance goes with it. */
		PKCS11_CTX_unload(h->ctx);
	}
	if (h->ctx != NULL)
		PKCS11_CTX_free(h->ctx);
	if (h->lib != NULL)
		dlclose(h->lib);
	free(h);
}

CK_FUNCTION_LIST_PTR hsm_functions(const struct hsm *h, CK_SLOT_ID *slot)
{
	*slot = h->slot_id;
	return h->f;
}

const char *hsm_serialize_why(const struct hsm *h)
{
	return h->quirks.serialize ? h->quirks.why : NULL;
}

const char *hsm_token_label(const struct hsm *h)
{
	return h->token;
}

static int key_matches(const PKCS11_KEY *k, const struct key_conf *kc)
{
	if (kc->label[0] != '\0' && (k->label == NULL || strcmp(k->label, kc->label) != 0))
		return 0;
	if (kc->id_len != 0 && (k->id_len != kc->id_len || memcmp(k->id, kc->id, kc->id_len) != 0))
		return 0;
	return 1;
}

/* A provider-native copy of the public half: no HSM involved in public work. */
static EVP_PKEY *public_copy(EVP_PKEY *priv)
{
	uint8_t n[RSA_MAX_BYTES], e[8];
	uint64_t ev;
	size_t k;

	if (rsa_pub_numbers(priv, n, &k, &ev) != 0 || ev == (uint64_t)-1)
		return NULL;
	for (int i = 7; i >= 0; i--, ev >>= 8)
		e[i] = (uint8_t)ev;
	return rsa_pub_from_ne(n, k, e, sizeof(e));
}

/* One attribute of an object as a CK_BBOOL: 1, 0, or -1 when the module does not tell. */
static int bool_attr(struct hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	if (h->f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.ulValueLen != sizeof(v))
		return -1;
	return v == CK_TRUE;
}

/*
 * The handle of the private key libp11 found (token object handles hold in
 * every session of this instance), for operations libp11 cannot do
 * (hsm_decrypt), and whether the key may leave the HSM.
 */
static int key_object(struct hsm *h, const PKCS11_KEY *k, struct hsm_key *out, char *err,
		      size_t errlen)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[3] = { { CKA_CLASS, &cls, sizeof(cls) } };
	CK_ULONG nt = 1, found = 0;
	CK_OBJECT_HANDLE o[2];
	CK_SESSION_HANDLE s;
	CK_RV rv;
	char why[200];

	if (k->label != NULL && k->label[0] != '\0')
		t[nt++] = (CK_ATTRIBUTE){ CKA_LABEL, k->label, strlen(k->label) };
	if (k->id_len > 0)
		t[nt++] = (CK_ATTRIBUTE){ CKA_ID, k->id, k->id_len };
	rv = h->f->C_OpenSession(h->slot_id, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) {
		rv = h->f->C_FindObjectsInit(s, t, nt);
		if (rv == CKR_OK) {
			rv = h->f->C_FindObjects(s, o, 2, &found);
			h->f->C_FindObjectsFinal(s);
		}
		if (rv == CKR_OK && found == 1) {
			out->obj = o[0];
			out->sensitive = bool_attr(h, s, o[0], CKA_SENSITIVE);
			out->extractable = bool_attr(h, s, o[0], CKA_EXTRACTABLE);
		}
		h->f->C_CloseSession(s);
	}
	if (rv != CKR_OK) {
		snprintf(err, errlen, "cannot look the key up: %s", explain(rv, why, sizeof(why)));
		return -1;
	}
	if (found != 1) {
		snprintf(err, errlen, "%s private key object has the key's label and id",
			 found ? "more than one" : "no");
		return -1;
	}
	return 0;
}

int hsm_find_key(struct hsm *h, const struct key_conf *kc, struct hsm_key *out,
		 char *err, size_t errlen)
{
	PKCS11_KEY *keys, *found = NULL;
	unsigned int n, matches = 0;
	char want[160], why[512];

	memset(out, 0, sizeof(*out));
	if (!token_matches(h->slot->token, kc->token, &kc->token_attrs)) {
		describe_token(kc->token[0] ? kc->token : "*", &kc->token_attrs, want, sizeof(want));
		snprintf(err, errlen, "[key %s]: its uri names token %s, not token \"%s\" (serial \"%s\")",
			 kc->name, want, h->token, h->slot->token->serialnr ? h->slot->token->serialnr : "");
		return HSM_FATAL;
	}
	if (PKCS11_enumerate_keys(h->slot->token, &keys, &n) != 0) {
		snprintf(err, errlen, "[key %s]: cannot list the token's keys: %s", kc->name,
			 explain(take_ckr(), why, sizeof(why)));
		return -1;
	}
	for (unsigned int i = 0; i < n; i++)
		if (keys[i].isPrivate && key_matches(&keys[i], kc)) {
			found = &keys[i];
			matches++;
		}
	if (matches != 1) {
		snprintf(err, errlen, "[key %s]: %s private key in token \"%s\" has that label/id",
			 kc->name, matches ? "more than one" : "no", h->token);
		return HSM_FATAL;
	}
	if (PKCS11_get_key_type(found) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "[key %s]: the key is not RSA", kc->name);
		return HSM_FATAL;
	}
	out->priv = PKCS11_get_private_key(found);
	out->pub = out->priv ? public_copy(out->priv) : NULL;
	if (out->pub == NULL) {
		snprintf(err, errlen, "[key %s]: cannot read the key's public half", kc->name);
		hsm_key_release(out);
		ERR_clear_error();
		return -1;
	}
	snprintf(out->label, sizeof(out->label), "%s", found->label ? found->label : "");
	out->id_len = found->id_len <= sizeof(out->id) ? found->id_len : 0;
	memcpy(out->id, found->id, out->id_len);
	if (key_object(h, found, out, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "[key %s]: %s", kc->name, why);
		hsm_key_release(out);
		return -1;
	}
	return 0;
}

int hsm_key_exposed(const struct hsm_key *k, char *what, size_t len)
{
	snprintf(what, len, "%s%s%s", k->extractable == 1 ? "CKA_EXTRACTABLE = TRUE" : "",
		 k->extractable == 1 && k->sensitive == 0 ? ", " : "",
		 k->sensitive == 0 ? "CKA_SENSITIVE = FALSE" : "");
	return what[0] != '\0';
}

void hsm_key_release(struct hsm_key *k)
{
	EVP_PKEY_free(k->priv);
	EVP_PKEY_free(k->pub);
	k->priv = k->pub = NULL;
}

static EVP_PKEY_CTX *decrypt_ctx(EVP_PKEY *priv, int padding)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);

	if (ctx == NULL || EVP_PKEY_decrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, padding) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

EVP_PKEY_CTX *hsm_raw_ctx_new(EVP_PKEY *priv)
{
	return decrypt_ctx(priv, RSA_NO_PADDING);
}

int hsm_rsa_raw(EVP_PKEY_CTX *ctx, const uint8_t *in, size_t k, uint8_t *out, unsigned long *ckr)
{
	size_t out_len = k;

	ERR_clear_error();
	*ckr = 0;
	if (EVP_PKEY_decrypt(ctx, out, &out_len, in, k) <= 0 || out_len != k) {
		*ckr = take_ckr();
		return -1;
	}
	return 0;
}

int hsm_session_open(struct hsm *h, unsigned long *session, unsigned long *ckr)
{
	CK_SESSION_HANDLE s;
	CK_RV rv = h->f->C_OpenSession(h->slot_id, CKF_SERIAL_SESSION, NULL, NULL, &s);

	*ckr = rv;
	*session = rv == CKR_OK ? (unsigned long)s : 0;
	return rv == CKR_OK ? 0 : -1;
}

void hsm_session_close(struct hsm *h, unsigned long session)
{
	h->f->C_CloseSession((CK_SESSION_HANDLE)session);
}

int hsm_raw_decrypt(struct hsm *h, unsigned long session, unsigned long obj, const uint8_t *in,
		    size_t k, uint8_t *out, unsigned long *ckr)
{
	CK_MECHANISM m = { CKM_RSA_X_509, NULL, 0 };
	CK_ULONG len = (CK_ULONG)k;
	CK_RV rv = h->f->C_DecryptInit((CK_SESSION_HANDLE)session, &m, (CK_OBJECT_HANDLE)obj);

	if (rv == CKR_OK)
		rv = h->f->C_Decrypt((CK_SESSION_HANDLE)session, (CK_BYTE_PTR)in, (CK_ULONG)k, out, &len);
	*ckr = rv;
	if (rv != CKR_OK || len > k)
		return -1;
	/* The result is a number: a module may leave out its leading zero bytes. */
	if (len < k) {
		memmove(out + (k - len), out, len);
		memset(out, 0, k - len);
	}
	return 0;
}

int hsm_random(struct hsm *h, uint8_t *out, size_t n, unsigned long *ckr)
{
	ERR_clear_error();
	*ckr = 0;
	if (PKCS11_generate_random(h->slot, out, (unsigned int)n) != 0) {
		*ckr = take_ckr();
		return -1;
	}
	return 0;
}

/* The mechanism for hsm_decrypt: PKCS#1 v1.5, or OAEP with SHA-1 or SHA-512 (MGF1 the same), no label. */
static void mechanism(enum hsm_padding pad, CK_RSA_PKCS_OAEP_PARAMS *oaep, CK_MECHANISM *m)
{
	if (pad == HSM_PAD_OAEP_SHA512)
		*oaep = (CK_RSA_PKCS_OAEP_PARAMS){ CKM_SHA512, CKG_MGF1_SHA512, CKZ_DATA_SPECIFIED, NULL, 0 };
	else
		*oaep = (CK_RSA_PKCS_OAEP_PARAMS){ CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0 };
	if (pad != HSM_PAD_PKCS1)
		*m = (CK_MECHANISM){ CKM_RSA_PKCS_OAEP, oaep, sizeof(*oaep) };
	else
		*m = (CK_MECHANISM){ CKM_RSA_PKCS, NULL, 0 };
}

int hsm_decrypt(struct hsm *h, unsigned long obj, enum hsm_padding pad, const uint8_t *in,
		size_t k, uint8_t *out, size_t *out_len, struct hsm_failure *why)
{
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	CK_MECHANISM m;
	CK_SESSION_HANDLE s;
	CK_ULONG len = (CK_ULONG)k;
	CK_RV rv;

	mechanism(pad, &oaep, &m);
	why->step = HSM_STEP_SESSION;
	rv = h->f->C_OpenSession(h->slot_id, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) {
		why->step = HSM_STEP_INIT;
		rv = h->f->C_DecryptInit(s, &m, (CK_OBJECT_HANDLE)obj);
		if (rv == CKR_OK) {
			why->step = HSM_STEP_DECRYPT;
			rv = h->f->C_Decrypt(s, (CK_BYTE_PTR)in, (CK_ULONG)k, out, &len);
		}
		/* Also ends an operation a failed C_Decrypt left active (tpm2-pkcs11 does). */
		h->f->C_CloseSession(s);
	}
	why->ckr = rv;
	*out_len = rv == CKR_OK ? (size_t)len : 0;
	return rv == CKR_OK ? 0 : -1;
}
