#include "p11uri.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <p11-kit/uri.h>

/*
 * The attributes of RFC 7512 (and p11-kit's module-name/module-path). p11-kit
 * quietly keeps unknown query attributes as vendor ones and drops a value it
 * cannot take (a label too long) with only an "unrecognized" flag: the names
 * are checked here so that what is wrong can be named. Values are p11-kit's.
 */
struct attr {
	const char *name;
	unsigned group;         /* P11URI_TOKEN ...; 0: never taken */
	unsigned has;           /* P11URI_HAS_* it fills */
	int query;              /* after the "?" */
};

static const struct attr attrs[] = {
	{ "token", P11URI_TOKEN, P11URI_HAS_TOKEN, 0 },
	{ "manufacturer", P11URI_TOKEN, P11URI_HAS_MANUFACTURER, 0 },
	{ "serial", P11URI_TOKEN, P11URI_HAS_SERIAL, 0 },
	{ "model", P11URI_TOKEN, P11URI_HAS_MODEL, 0 },
	{ "object", P11URI_OBJECT, P11URI_HAS_OBJECT, 0 },
	{ "id", P11URI_OBJECT, P11URI_HAS_ID, 0 },
	{ "type", P11URI_OBJECT, P11URI_HAS_TYPE, 0 },
	{ "slot-description", 0, 0, 0 },
	{ "slot-manufacturer", 0, 0, 0 },
	{ "slot-id", 0, 0, 0 },
	{ "library-description", 0, 0, 0 },
	{ "library-manufacturer", 0, 0, 0 },
	{ "library-version", 0, 0, 0 },
	{ "pin-source", P11URI_PIN_SOURCE, P11URI_HAS_PIN_SOURCE, 1 },
	{ "pin-value", 0, 0, 1 },
	{ "module-path", P11URI_MODULE_PATH, P11URI_HAS_MODULE_PATH, 1 },
	{ "module-name", P11URI_MODULE_NAME, 0, 1 },
};
#define NATTRS (sizeof(attrs) / sizeof(attrs[0]))

#define SCHEME "pkcs11:"

/* token_fields copies CK_TOKEN_INFO fields whole into struct p11uri. */
_Static_assert(sizeof(((CK_TOKEN_INFO *)0)->label) == P11URI_TOKEN_MAX &&
	       sizeof(((CK_TOKEN_INFO *)0)->manufacturerID) == P11URI_TOKEN_MAX &&
	       sizeof(((CK_TOKEN_INFO *)0)->serialNumber) == P11URI_SERIAL_MAX &&
	       sizeof(((CK_TOKEN_INFO *)0)->model) == P11URI_SERIAL_MAX, "token field sizes");

int p11uri_is_uri(const char *s)
{
	return strncasecmp(s, SCHEME, strlen(SCHEME)) == 0;
}

static const struct attr *find_attr(const char *name, size_t len, int query)
{
	for (size_t i = 0; i < NATTRS; i++)
		if (strlen(attrs[i].name) == len && strncmp(attrs[i].name, name, len) == 0 &&
		    attrs[i].query == query)
			return &attrs[i];
	return NULL;
}

/* One "name=value" of the URI; *seen collects the attributes met so far. */
static int check_one(const char *a, size_t len, int query, unsigned accept, unsigned *seen,
		     char *err, size_t errlen)
{
	const char *eq = memchr(a, '=', len);
	size_t nlen = eq ? (size_t)(eq - a) : len;
	const struct attr *at = find_attr(a, nlen, query);
	unsigned bit;

	if (at == NULL) {
		snprintf(err, errlen, "unknown attribute \"%.*s\"", (int)(nlen > 40 ? 40 : nlen), a);
		return -1;
	}
	if (strcmp(at->name, "pin-value") == 0) {
		snprintf(err, errlen, "pin-value is refused: a PIN is never written here "
			 "(put it in a file, mode 0600, named by pin-source=file:PATH)");
		return -1;
	}
	if ((at->group & accept) == 0) {
		snprintf(err, errlen, "attribute \"%s\" is not supported here", at->name);
		return -1;
	}
	if (eq == NULL || eq + 1 == a + len) {
		snprintf(err, errlen, "attribute \"%s\" has no value", at->name);
		return -1;
	}
	bit = 1u << (at - attrs);
	if (*seen & bit) {
		snprintf(err, errlen, "attribute \"%s\" given twice", at->name);
		return -1;
	}
	*seen |= bit;
	return 0;
}

/* Checks every attribute name of s (which p11-kit has parsed); *has: what it gives. */
static int check_names(const char *s, unsigned accept, unsigned *has, char *err, size_t errlen)
{
	const char *p = s + strlen(SCHEME);
	unsigned seen = 0;
	int query = 0;

	while (*p != '\0') {
		size_t len = strcspn(p, query ? "&" : ";?");

		if (len > 0 && check_one(p, len, query, accept, &seen, err, errlen) != 0)
			return -1;
		p += len;
		if (*p == '?')
			query = 1;
		if (*p != '\0')
			p++;
	}
	*has = 0;
	for (size_t i = 0; i < NATTRS; i++)
		if (seen & (1u << i))
			*has |= attrs[i].has;
	return 0;
}

/* A blank-padded CK_TOKEN_INFO field; 0 when p11-kit did not take the value (too long). */
static int padded(const unsigned char *f, size_t n, char *out)
{
	if (f[0] == '\0')
		return 0;
	while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\0'))
		n--;
	memcpy(out, f, n);
	out[n] = '\0';
	return 1;
}

static int token_fields(P11KitUri *u, struct p11uri *out, char *err, size_t errlen)
{
	CK_TOKEN_INFO *t = p11_kit_uri_get_token_info(u);
	const struct {
		unsigned has;
		const char *name;
		const unsigned char *field;
		size_t len;             /* of field; out holds len + 1 */
		char *out;
	} fields[] = {
		{ P11URI_HAS_TOKEN, "token", t->label, sizeof(t->label), out->token },
		{ P11URI_HAS_MANUFACTURER, "manufacturer", t->manufacturerID, sizeof(t->manufacturerID),
		  out->manufacturer },
		{ P11URI_HAS_SERIAL, "serial", t->serialNumber, sizeof(t->serialNumber), out->serial },
		{ P11URI_HAS_MODEL, "model", t->model, sizeof(t->model), out->model },
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if ((out->has & fields[i].has) && !padded(fields[i].field, fields[i].len, fields[i].out)) {
			snprintf(err, errlen, "%s is longer than %zu bytes", fields[i].name, fields[i].len);
			return -1;
		}
	return 0;
}

static int object_label(P11KitUri *u, struct p11uri *out, char *err, size_t errlen)
{
	CK_ATTRIBUTE *a = p11_kit_uri_get_attribute(u, CKA_LABEL);

	if (a == NULL || a->ulValueLen > P11URI_OBJECT_MAX) {
		snprintf(err, errlen, "object is longer than %d bytes", P11URI_OBJECT_MAX);
		return -1;
	}
	if (memchr(a->pValue, '\0', a->ulValueLen) != NULL) {
		snprintf(err, errlen, "object must not hold a NUL byte (%%00)");
		return -1;
	}
	memcpy(out->object, a->pValue, a->ulValueLen);
	out->object[a->ulValueLen] = '\0';
	return 0;
}

static int object_fields(P11KitUri *u, struct p11uri *out, char *err, size_t errlen)
{
	CK_ATTRIBUTE *a;

	if ((out->has & P11URI_HAS_OBJECT) && object_label(u, out, err, errlen) != 0)
		return -1;
	if (out->has & P11URI_HAS_ID) {
		a = p11_kit_uri_get_attribute(u, CKA_ID);
		if (a == NULL || a->ulValueLen > P11URI_ID_MAX) {
			snprintf(err, errlen, "id is longer than %d bytes", P11URI_ID_MAX);
			return -1;
		}
		memcpy(out->id, a->pValue, a->ulValueLen);
		out->id_len = a->ulValueLen;
	}
	if (out->has & P11URI_HAS_TYPE) {
		a = p11_kit_uri_get_attribute(u, CKA_CLASS);
		if (a == NULL || a->ulValueLen != sizeof(CK_OBJECT_CLASS)) {
			snprintf(err, errlen, "type must be private, public, cert, secret-key or data");
			return -1;
		}
		out->type = *(const CK_OBJECT_CLASS *)a->pValue;
	}
	return 0;
}

/*
 * RFC 7512 leaves the form of pin-source to the application; like OpenSSL's
 * and p11-kit's tools, a file is taken: file:PATH, file:///PATH or a plain path.
 * Anything else (a command, another scheme) would run or fetch something.
 */
static int pin_file(const char *src, char *out, char *err, size_t errlen)
{
	const char *path = src;

	if (strncmp(src, "file://", 7) == 0)
		path = src + 7;     /* only an empty authority: file:///PATH */
	else if (strncmp(src, "file:", 5) == 0)
		path = src + 5;
	else if (src[0] != '/' && strchr(src, ':') != NULL)
		path = NULL;
	if (path == NULL || path[0] == '\0' || path[0] == '|' ||
	    (strncmp(src, "file://", 7) == 0 && path[0] != '/')) {
		snprintf(err, errlen, "pin-source must name a file (file:PATH)");
		return -1;
	}
	if (strlen(path) >= PATH_MAX) {
		snprintf(err, errlen, "pin-source is too long");
		return -1;
	}
	strcpy(out, path);
	return 0;
}

static int query_fields(P11KitUri *u, struct p11uri *out, char *err, size_t errlen)
{
	const char *v;

	if ((out->has & P11URI_HAS_PIN_SOURCE) &&
	    pin_file(p11_kit_uri_get_pin_source(u), out->pin_source, err, errlen) != 0)
		return -1;
	if (out->has & P11URI_HAS_MODULE_PATH) {
		v = p11_kit_uri_get_module_path(u);
		if (strlen(v) >= sizeof(out->module_path)) {
			snprintf(err, errlen, "module-path is too long");
			return -1;
		}
		strcpy(out->module_path, v);
	}
	return 0;
}

/* p11-kit keeps a pin-value it parsed; it is wiped before p11-kit frees it. */
static void free_uri(P11KitUri *u)
{
	char *pin = (char *)p11_kit_uri_get_pin_value(u);

	if (pin != NULL)
		explicit_bzero(pin, strlen(pin));
	p11_kit_uri_free(u);
}

int p11uri_parse(const char *s, unsigned accept, struct p11uri *out, char *err, size_t errlen)
{
	P11KitUri *u;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!p11uri_is_uri(s)) {
		snprintf(err, errlen, "not a PKCS#11 URI (pkcs11:...)");
		return -1;
	}
	u = p11_kit_uri_new();
	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = p11_kit_uri_parse(s, P11_KIT_URI_FOR_ANY, u);
	if (rc != P11_KIT_URI_OK) {
		snprintf(err, errlen, "not a valid PKCS#11 URI: %s", p11_kit_uri_message(rc));
		rc = -1;
	} else if (check_names(s, accept, &out->has, err, errlen) != 0 ||
		   token_fields(u, out, err, errlen) != 0 || object_fields(u, out, err, errlen) != 0 ||
		   query_fields(u, out, err, errlen) != 0) {
		rc = -1;
	} else if (p11_kit_uri_any_unrecognized(u)) {
		snprintf(err, errlen, "p11-kit did not take every attribute of the URI");
		rc = -1;
	}
	free_uri(u);
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc;
}
