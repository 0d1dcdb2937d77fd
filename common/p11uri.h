/*
 * RFC 7512 PKCS#11 URIs ("pkcs11:token=keytrans;object=kx1;id=%01"), parsed
 * by p11-kit and reduced to what keytrans selects tokens and keys by. Shared
 * by the daemon's configuration and the command line; each says which
 * attributes it takes, and any other one is an error that names it.
 */
#ifndef KT_P11URI_H
#define KT_P11URI_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define P11URI_TOKEN_MAX 32     /* CK_TOKEN_INFO label, manufacturerID */
#define P11URI_SERIAL_MAX 16    /* serialNumber, model */
#define P11URI_OBJECT_MAX 256   /* CKA_LABEL, as [key] label takes it */
#define P11URI_ID_MAX 64        /* CKA_ID, as [key] id takes it */

/* Which attributes a caller takes (the "accept" argument of p11uri_parse). */
enum {
	P11URI_TOKEN = 1,           /* token, manufacturer, serial, model */
	P11URI_OBJECT = 2,          /* object, id, type */
	P11URI_PIN_SOURCE = 4,      /* pin-source (file:PATH only); pin-value is always refused */
	P11URI_MODULE_PATH = 8,     /* module-path */
	P11URI_MODULE_NAME = 16,    /* module-name (accepted, not used: see keytrans(1)) */
};

/* What a URI gave (the "has" bits). */
enum {
	P11URI_HAS_TOKEN = 1, P11URI_HAS_MANUFACTURER = 2, P11URI_HAS_SERIAL = 4,
	P11URI_HAS_MODEL = 8, P11URI_HAS_OBJECT = 16, P11URI_HAS_ID = 32, P11URI_HAS_TYPE = 64,
	P11URI_HAS_PIN_SOURCE = 128, P11URI_HAS_MODULE_PATH = 256,
};

/* The object classes type= names that matter here (CKO_*). */
enum p11uri_type { P11URI_PRIVATE = 3, P11URI_PUBLIC = 2 };

struct p11uri {
	unsigned has;                               /* P11URI_HAS_* */
	char token[P11URI_TOKEN_MAX + 1];           /* trailing blanks removed, as libp11 does */
	char manufacturer[P11URI_TOKEN_MAX + 1];
	char serial[P11URI_SERIAL_MAX + 1];
	char model[P11URI_SERIAL_MAX + 1];
	char object[P11URI_OBJECT_MAX + 1];
	uint8_t id[P11URI_ID_MAX];
	size_t id_len;
	unsigned long type;                         /* CKO_* */
	char pin_source[PATH_MAX];                  /* the file's path, "file:" removed */
	char module_path[PATH_MAX];
};

/* 1 when s is written as a PKCS#11 URI (the scheme, in any case). */
int p11uri_is_uri(const char *s);
/*
 * Parses s, taking only the attribute groups in accept (P11URI_TOKEN, ...).
 * 0, or -1 with a sentence in err naming the attribute or the fault; pin-value
 * is refused without its value being stored or repeated.
 */
int p11uri_parse(const char *s, unsigned accept, struct p11uri *out, char *err, size_t errlen);

#endif
