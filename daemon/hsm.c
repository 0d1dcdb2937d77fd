#include "hsm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/err.h>
#include <p11-kit/pkcs11.h>
#include <openssl/rsa.h>

#include "hsm_p11.h"
#include "rsa_pub.h"

struct hsm {
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	PKCS11_SLOT *slot;
	char token[CONFIG_TOKEN_MAX + 1];
	void *lib;                      /* our reference to the module libp11 loaded ... */
	CK_FUNCTION_LIST_PTR f;         /* ... and its functions, for hsm_admin.c */
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

const char *hsm_ckr_name(unsigned long ckr)
{
	switch (ckr) {
	case 0x000: return "CKR_OK";
	case 0x005: return "CKR_GENERAL_ERROR";
	case 0x006: return "CKR_FUNCTION_FAILED";
	case 0x010: return "CKR_ATTRIBUTE_READ_ONLY";
	case 0x012: return "CKR_ATTRIBUTE_TYPE_INVALID";
	case 0x013: return "CKR_ATTRIBUTE_VALUE_INVALID";
	case 0x030: return "CKR_DEVICE_ERROR";
	case 0x031: return "CKR_DEVICE_MEMORY";
	case 0x032: return "CKR_DEVICE_REMOVED";
	case 0x040: return "CKR_ENCRYPTED_DATA_INVALID";
	case 0x041: return "CKR_ENCRYPTED_DATA_LEN_RANGE";
	case 0x060: return "CKR_KEY_HANDLE_INVALID";
	case 0x062: return "CKR_KEY_SIZE_RANGE";
	case 0x068: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
	case 0x070: return "CKR_MECHANISM_INVALID";
	case 0x082: return "CKR_OBJECT_HANDLE_INVALID";
	case 0x0a0: return "CKR_PIN_INCORRECT";
	case 0x0a4: return "CKR_PIN_LOCKED";
	case 0x0b0: return "CKR_SESSION_CLOSED";
	case 0x0b1: return "CKR_SESSION_COUNT";
	case 0x0b3: return "CKR_SESSION_HANDLE_INVALID";
	case 0x0b5: return "CKR_SESSION_READ_ONLY";
	case 0x0d0: return "CKR_TEMPLATE_INCOMPLETE";
	case 0x0d1: return "CKR_TEMPLATE_INCONSISTENT";
	case 0x0e0: return "CKR_TOKEN_NOT_PRESENT";
	case 0x0e1: return "CKR_TOKEN_NOT_RECOGNIZED";
	case 0x0e2: return "CKR_TOKEN_WRITE_PROTECTED";
	case 0x101: return "CKR_USER_NOT_LOGGED_IN";
	case 0x102: return "CKR_USER_PIN_NOT_INITIALIZED";
	case 0x190: return "CKR_CRYPTOKI_NOT_INITIALIZED";
	}
	return "CKR_(other)";
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
	if (ckr == 0x0a0)
		snprintf(err, errlen, "login to token \"%s\" failed: wrong PIN", token);
	else if (ckr == 0x0a4)
		snprintf(err, errlen, "login to token \"%s\" failed: the user PIN is locked", token);
	else
		snprintf(err, errlen, "login to token \"%s\" failed: %s (0x%lx)", token,
			 hsm_ckr_name(ckr), ckr);
}

/*
 * libp11 0.4.12 waits forever when C_OpenSession fails while it holds no
 * session (its pool waits for a session to come back), which is the state of
 * every login. So one session is opened and closed first, straight through
 * the module libp11 has loaded: a failing HSM then gives an error, not a hang.
 * The module's function list is kept for hsm_admin.c (and the reference to
 * the module with it, dropped in hsm_close after libp11's).
 */
static int probe_session(struct hsm *h, const char *module, PKCS11_SLOT *slot, char *err,
			 size_t errlen)
{
	CK_C_GetFunctionList get = NULL;
	CK_FUNCTION_LIST_PTR f = NULL;
	CK_SESSION_HANDLE s;
	CK_RV rv = CKR_GENERAL_ERROR;

	h->lib = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
	if (h->lib == NULL) {
		snprintf(err, errlen, "cannot find the loaded module %s", module);
		return -1;
	}
	*(void **)&get = dlsym(h->lib, "C_GetFunctionList");
	if (get != NULL && get(&f) == CKR_OK && f != NULL) {
		rv = f->C_OpenSession(PKCS11_get_slotid_from_slot(slot), CKF_SERIAL_SESSION, NULL, NULL, &s);
		if (rv == CKR_OK)
			f->C_CloseSession(s);
	}
	h->f = rv == CKR_OK ? f : NULL;
	if (rv != CKR_OK) {
		snprintf(err, errlen, "cannot open a session on token \"%s\": %s (0x%lx)",
			 slot->token->label, hsm_ckr_name(rv), (unsigned long)rv);
		return -1;
	}
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
	if (PKCS11_CTX_load(h->ctx, module) != 0) {
		snprintf(err, errlen, "cannot load PKCS#11 module %s", module);
		PKCS11_CTX_free(h->ctx);
		h->ctx = NULL;
		rc = HSM_FATAL;
		goto fail;
	}
	if (PKCS11_enumerate_slots(h->ctx, &h->slots, &h->nslots) != 0) {
		snprintf(err, errlen, "cannot list the slots of %s: %s", module, hsm_ckr_name(take_ckr()));
		goto fail;
	}
	h->slot = find_token(h, token, attrs, err, errlen);
	if (h->slot == NULL || probe_session(h, module, h->slot, err, errlen) != 0)
		goto fail;
	if (PKCS11_login(h->slot, 0, pin) != 0) {
		ckr = take_ckr();
		login_error(ckr, token, err, errlen);
		/* CKR_PIN_INCORRECT .. CKR_PIN_LOCKED: every retry would count against the PIN. */
		if (ckr >= 0x0a0 && ckr <= 0x0a4)
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
	if (h->ctx != NULL) {
		if (h->slots != NULL)
			PKCS11_release_all_slots(h->ctx, h->slots, h->nslots);
		PKCS11_CTX_unload(h->ctx);
		PKCS11_CTX_free(h->ctx);
	}
	if (h->lib != NULL)
		dlclose(h->lib);
	free(h);
}

CK_FUNCTION_LIST_PTR hsm_functions(const struct hsm *h, CK_SLOT_ID *slot)
{
	*slot = PKCS11_get_slotid_from_slot(h->slot);
	return h->f;
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

int hsm_find_key(struct hsm *h, const struct key_conf *kc, struct hsm_key *out,
		 char *err, size_t errlen)
{
	PKCS11_KEY *keys, *found = NULL;
	unsigned int n, matches = 0;
	char want[160];

	memset(out, 0, sizeof(*out));
	if (!token_matches(h->slot->token, kc->token, &kc->token_attrs)) {
		describe_token(kc->token[0] ? kc->token : "*", &kc->token_attrs, want, sizeof(want));
		snprintf(err, errlen, "[key %s]: its uri names token %s, not token \"%s\" (serial \"%s\")",
			 kc->name, want, h->token, h->slot->token->serialnr ? h->slot->token->serialnr : "");
		return -1;
	}
	if (PKCS11_enumerate_keys(h->slot->token, &keys, &n) != 0) {
		snprintf(err, errlen, "[key %s]: cannot list the token's keys: %s", kc->name,
			 hsm_ckr_name(take_ckr()));
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
		return -1;
	}
	if (PKCS11_get_key_type(found) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "[key %s]: the key is not RSA", kc->name);
		return -1;
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
	return 0;
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

EVP_PKEY_CTX *hsm_pkcs_ctx_new(EVP_PKEY *priv)
{
	return decrypt_ctx(priv, RSA_PKCS1_PADDING);
}

int hsm_rsa_pkcs(EVP_PKEY_CTX *ctx, const uint8_t *in, size_t k, uint8_t *out, size_t *out_len,
		 unsigned long *ckr)
{
	ERR_clear_error();
	*ckr = 0;
	*out_len = k;
	if (EVP_PKEY_decrypt(ctx, out, out_len, in, k) <= 0) {
		*ckr = take_ckr();
		return -1;
	}
	return 0;
}

int hsm_ckr_is_fault(unsigned long ckr)
{
	switch (ckr) {
	case 0x030: /* CKR_DEVICE_ERROR */
	case 0x031: /* CKR_DEVICE_MEMORY */
	case 0x032: /* CKR_DEVICE_REMOVED */
	case 0x060: /* CKR_KEY_HANDLE_INVALID */
	case 0x082: /* CKR_OBJECT_HANDLE_INVALID */
	case 0x0b0: /* CKR_SESSION_CLOSED */
	case 0x0b1: /* CKR_SESSION_COUNT */
	case 0x0b3: /* CKR_SESSION_HANDLE_INVALID */
	case 0x0e0: /* CKR_TOKEN_NOT_PRESENT */
	case 0x0e1: /* CKR_TOKEN_NOT_RECOGNIZED */
	case 0x101: /* CKR_USER_NOT_LOGGED_IN */
	case 0x190: /* CKR_CRYPTOKI_NOT_INITIALIZED */
		return 1;
	}
	return 0;
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
