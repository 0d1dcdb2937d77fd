#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "hex.h"
#include "p11uri.h"

#define DEFAULT_SOCKET "/run/keytransd/keytransd.sock"

/* The URI fields land in the config's as they are. */
_Static_assert(P11URI_TOKEN_MAX == CONFIG_TOKEN_MAX && P11URI_SERIAL_MAX == CONFIG_SERIAL_MAX &&
	       P11URI_OBJECT_MAX == CONFIG_LABEL_MAX && P11URI_ID_MAX == CONFIG_ID_MAX,
	       "p11uri and config sizes differ");

enum section { SEC_NONE, SEC_DAEMON, SEC_HSM, SEC_KEY };

/* Parser state: the config being filled and the first error. */
struct parse {
	struct config *c;
	FILE *f;
	char dir[PATH_MAX];
	enum section kind;                  /* of the section being read */
	uint64_t seen[SEC_KEY + 1];         /* SEEN_* bits per kind (SEC_KEY: this key) */
	int line;                           /* lines read so far */
	int err_line;                       /* line of msg */
	char msg[256];                      /* first error, without position */
};

/* Each setting may be given once per section. */
enum {
	SEEN_SOCKET = 1, SEEN_MODE = 2, SEEN_WORKERS = 4, SEEN_MODULE = 8, SEEN_TOKEN = 16,
	SEEN_PIN = 32, SEEN_LABEL = 64, SEEN_ID = 128, SEEN_MECH = 256, SEEN_PUBLIC_OPS = 512,
	SEEN_ALLOW = 1024,              /* + the acl_op: one bit per rule */
	SEEN_ADMIN = 1 << 14, SEEN_SENSITIVE = 1 << 15,
	SEEN_SERIALIZE = 1 << 13,       /* [hsm] only: shares a bit with a [key] rule */
	SEEN_STATS_OUTCOMES = 1 << 26,  /* [daemon], after the limits' bits */
	SEEN_URI = 1 << 28, SEEN_PIN_SOURCE = 1 << 29, SEEN_MODULE_PATH = 1 << 30,
};
#define SEEN_LIMIT ((uint64_t)1 << 32)  /* + the index in limit_settings */

/* The numeric [daemon] limits: name, field, range, default. */
static const struct {
	const char *name;
	size_t off;
	long min, max, dflt;
} limit_settings[] = {
	{ "max_connections", offsetof(struct limits, max_connections), 1, 65536, 1024 },
	{ "max_connections_per_uid", offsetof(struct limits, max_connections_per_uid), 1, 65536, 256 },
	{ "max_inflight", offsetof(struct limits, max_inflight), 1, 4096, 64 },
	{ "request_timeout", offsetof(struct limits, request_timeout), 1, 3600, 30 },
	{ "idle_timeout", offsetof(struct limits, idle_timeout), 1, 86400, 300 },
	{ "job_memory", offsetof(struct limits, job_memory), 256, 1 << 20, 4096 },
	{ "job_memory_per_uid", offsetof(struct limits, job_memory_per_uid), 16, 1 << 20, 1024 },
	{ "hsm_call_timeout", offsetof(struct limits, hsm_call_timeout), 1, 3600, 10 },
	{ "hsm_retry_max", offsetof(struct limits, hsm_retry_max), 1, 3600, 4 },
	{ "recipient_cache", offsetof(struct limits, recipient_cache), 0, 65536, 1024 },
	{ "max_sessions", offsetof(struct limits, max_sessions), 0, 65536, 4096 },
	{ "max_sessions_per_uid", offsetof(struct limits, max_sessions_per_uid), 0, 65536, 64 },
	{ "session_idle_timeout", offsetof(struct limits, session_idle_timeout), 1, 86400, 300 },
};
#define NLIMITS (sizeof(limit_settings) / sizeof(limit_settings[0]))
_Static_assert(NLIMITS <= 32, "the limits' SEEN bits would not fit in 64");

/* Records the first error; returns 0 so that handlers can "return error(...)". */
__attribute__((format(printf, 2, 3)))
static int error(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->msg[0] == '\0') {
		p->err_line = p->line;
		va_start(ap, fmt);
		vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
		va_end(ap);
	}
	return 0;
}

static int resolve_path(struct parse *p, const char *value, char *out, const char *name)
{
	int n;

	if (value[0] == '\0')
		return error(p, "%s must not be empty", name);
	if (value[0] == '/')
		n = snprintf(out, PATH_MAX, "%s", value);
	else
		n = snprintf(out, PATH_MAX, "%s/%s", p->dir, value);
	if (n < 0 || n >= PATH_MAX)
		return error(p, "%s is too long", name);
	return 1;
}

static int once(struct parse *p, uint64_t bit, const char *name)
{
	if (p->seen[p->kind] & bit)
		return error(p, "%s given twice in this section", name);
	p->seen[p->kind] |= bit;
	return 1;
}

static int parse_long(const char *v, long min, long max, int base, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(v, &end, base);
	return errno == 0 && end != v && *end == '\0' && *out >= min && *out <= max;
}

static int acl_setting(struct parse *p, uint64_t bit, const char *name, const char *value,
		       struct acl *out)
{
	char why[160];

	if (!once(p, bit, name))
		return 0;
	if (acl_parse(value, out, why, sizeof(why)) != 0)
		return error(p, "%s: %s", name, why);
	return 1;
}

static int limit_setting(struct parse *p, size_t i, const char *value)
{
	long v;

	if (!once(p, SEEN_LIMIT << i, limit_settings[i].name))
		return 0;
	if (!parse_long(value, limit_settings[i].min, limit_settings[i].max, 10, &v))
		return error(p, "%s must be a number from %ld to %ld, not \"%s\"", limit_settings[i].name,
			     limit_settings[i].min, limit_settings[i].max, value);
	/* OpenSSL's locked heap is a buddy allocator: its size must be a power of two. */
	if (strcmp(limit_settings[i].name, "job_memory") == 0 && (v & (v - 1)) != 0)
		return error(p, "job_memory must be a power of two (KiB), not %ld", v);
	*(long *)((char *)&p->c->limits + limit_settings[i].off) = v;
	return 1;
}

static int daemon_setting(struct parse *p, const char *name, const char *value)
{
	long v;

	for (size_t i = 0; i < NLIMITS; i++)
		if (strcmp(name, limit_settings[i].name) == 0)
			return limit_setting(p, i, value);
	if (strcmp(name, "allow_public_ops") == 0)
		return acl_setting(p, SEEN_PUBLIC_OPS, name, value, &p->c->allow_public_ops);
	if (strcmp(name, "admin") == 0)
		return acl_setting(p, SEEN_ADMIN, name, value, &p->c->admin);
	if (strcmp(name, "stats_outcomes") == 0)
		return acl_setting(p, SEEN_STATS_OUTCOMES, name, value, &p->c->stats_outcomes);

	if (strcmp(name, "socket") == 0)
		return once(p, SEEN_SOCKET, name) && resolve_path(p, value, p->c->socket, name);
	if (strcmp(name, "socket_mode") == 0) {
		if (!once(p, SEEN_MODE, name))
			return 0;
		if (!parse_long(value, 0, 0777, 8, &v))
			return error(p, "socket_mode must be octal permissions such as 0660, not \"%s\"",
				     value);
		p->c->socket_mode = (mode_t)v;
		return 1;
	}
	if (strcmp(name, "workers") == 0) {
		if (!once(p, SEEN_WORKERS, name))
			return 0;
		if (!parse_long(value, 1, CONFIG_WORKERS_MAX, 10, &v))
			return error(p, "workers must be a number from 1 to 16, not \"%s\"", value);
		p->c->workers = (int)v;
		return 1;
	}
	return error(p, "unknown key \"%s\" in [daemon]", name);
}

/*
 * A setting that a token URI may give too (pin_file / pin-source, module /
 * module-path): whichever comes second is refused, as two answers would be.
 */
static int given_once(struct parse *p, uint64_t bit, uint64_t other, const char *name,
		      const char *conflict)
{
	if (p->seen[p->kind] & other)
		return error(p, "%s", conflict);
	return once(p, bit, name);
}

/* token = pkcs11:token=LABEL;serial=...?pin-source=file:PATH&module-path=PATH */
static int token_uri(struct parse *p, struct hsm_conf *h, const char *value)
{
	struct p11uri u;
	char why[200];

	if (p11uri_parse(value, P11URI_TOKEN | P11URI_PIN_SOURCE | P11URI_MODULE_PATH, &u, why,
			 sizeof(why)) != 0)
		return error(p, "token: %s", why);
	if (!(u.has & P11URI_HAS_TOKEN) || u.token[0] == '\0')
		return error(p, "token: the URI must give the token's label (token=LABEL)");
	strcpy(h->token, u.token);
	strcpy(h->token_attrs.manufacturer, u.manufacturer);
	strcpy(h->token_attrs.serial, u.serial);
	strcpy(h->token_attrs.model, u.model);
	if ((u.has & P11URI_HAS_PIN_SOURCE) &&
	    !(given_once(p, SEEN_PIN_SOURCE, SEEN_PIN, "pin-source",
			"token: the URI's pin-source and pin_file both name the PIN file; keep one") &&
	      resolve_path(p, u.pin_source, h->pin_file, "pin-source")))
		return 0;
	if ((u.has & P11URI_HAS_MODULE_PATH) &&
	    !(given_once(p, SEEN_MODULE_PATH, SEEN_MODULE, "module-path",
			"token: the URI's module-path and module both name the module; keep one") &&
	      resolve_path(p, u.module_path, h->module, "module-path")))
		return 0;
	return 1;
}

/* require_sensitive = yes | no */
static int sensitive_setting(struct parse *p, const char *name, const char *value, int *out)
{
	if (!once(p, SEEN_SENSITIVE, name))
		return 0;
	if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
		return error(p, "%s must be yes or no, not \"%s\"", name, value);
	*out = strcmp(value, "yes") == 0;
	return 1;
}

static int hsm_setting(struct parse *p, struct hsm_conf *h, const char *name, const char *value)
{
	if (strcmp(name, "require_sensitive") == 0)
		return sensitive_setting(p, name, value, &h->require_sensitive);
	if (strcmp(name, "serialize") == 0) {
		if (!once(p, SEEN_SERIALIZE, name))
			return 0;
		if (strcmp(value, "auto") == 0)
			h->serialize = SERIALIZE_AUTO;
		else if (strcmp(value, "yes") == 0)
			h->serialize = SERIALIZE_YES;
		else if (strcmp(value, "no") == 0)
			h->serialize = SERIALIZE_NO;
		else
			return error(p, "serialize must be auto, yes or no, not \"%s\"", value);
		return 1;
	}
	if (strcmp(name, "module") == 0)
		return given_once(p, SEEN_MODULE, SEEN_MODULE_PATH, name,
				  "module: the token URI's module-path names the module already; keep one") &&
		       resolve_path(p, value, h->module, name);
	if (strcmp(name, "pin_file") == 0)
		return given_once(p, SEEN_PIN, SEEN_PIN_SOURCE, name,
				  "pin_file: the token URI's pin-source names the PIN file already; keep one") &&
		       resolve_path(p, value, h->pin_file, name);
	if (strcmp(name, "token") == 0) {
		if (!once(p, SEEN_TOKEN, name))
			return 0;
		if (p11uri_is_uri(value))
			return token_uri(p, h, value);
		if (value[0] == '\0' || strlen(value) > CONFIG_TOKEN_MAX)
			return error(p, "token must be a label of 1 to 32 characters, not \"%s\"", value);
		strcpy(h->token, value);
		return 1;
	}
	if (strcmp(h->name, "hsm") == 0)
		return error(p, "unknown key \"%s\" in [hsm]", name);
	return error(p, "unknown key \"%s\" in [hsm %s]", name, h->name);
}

/* uri = pkcs11:object=LABEL;id=%01;type=private, in place of label and id. */
static int key_uri(struct parse *p, struct key_conf *k, const char *value)
{
	struct p11uri u;
	char why[200];

	if (p11uri_parse(value, P11URI_TOKEN | P11URI_OBJECT, &u, why, sizeof(why)) != 0)
		return error(p, "uri: %s", why);
	if ((u.has & P11URI_HAS_TYPE) && u.type != P11URI_PRIVATE)
		return error(p, "uri: type must be private (the daemon uses the private key)");
	if (!(u.has & (P11URI_HAS_OBJECT | P11URI_HAS_ID)))
		return error(p, "uri: the URI must name the key (object=LABEL and/or id=ID)");
	strcpy(k->label, u.object);
	memcpy(k->id, u.id, u.id_len);
	k->id_len = u.id_len;
	strcpy(k->token, u.token);
	strcpy(k->token_attrs.manufacturer, u.manufacturer);
	strcpy(k->token_attrs.serial, u.serial);
	strcpy(k->token_attrs.model, u.model);
	k->uri_line = p->line;
	return 1;
}

/* A key is named by label and/or id, or by a uri holding them: not both ways. */
static int key_named_once(struct parse *p, uint64_t bit, const char *name)
{
	uint64_t other = bit == SEEN_URI ? SEEN_LABEL | SEEN_ID : SEEN_URI;

	if (p->seen[p->kind] & other)
		return error(p, "%s: give either uri or label/id, not both", name);
	return once(p, bit, name);
}

static int key_setting(struct parse *p, struct key_conf *k, const char *name, const char *value)
{
	long n;

	if (strcmp(name, "uri") == 0)
		return key_named_once(p, SEEN_URI, name) && key_uri(p, k, value);
	if (strcmp(name, "label") == 0) {
		if (!key_named_once(p, SEEN_LABEL, name))
			return 0;
		if (value[0] == '\0' || strlen(value) > CONFIG_LABEL_MAX)
			return error(p, "label must be 1 to 256 characters");
		strcpy(k->label, value);
		return 1;
	}
	if (strcmp(name, "id") == 0) {
		if (!key_named_once(p, SEEN_ID, name))
			return 0;
		n = hex_decode(value, k->id, sizeof(k->id));
		if (n <= 0)
			return error(p, "id must be 1 to 64 bytes of hex, not \"%s\"", value);
		k->id_len = (size_t)n;
		return 1;
	}
	if (strcmp(name, "require_sensitive") == 0)
		return sensitive_setting(p, name, value, &k->require_sensitive);
	if (strcmp(name, "rsa_mechanism") == 0) {
		if (!once(p, SEEN_MECH, name))
			return 0;
		if (strcmp(value, "raw") != 0 && strcmp(value, "pkcs") != 0)
			return error(p, "rsa_mechanism must be raw or pkcs, not \"%s\"", value);
		k->mechanism = strcmp(value, "pkcs") == 0 ? MECH_PKCS : MECH_RAW;
		return 1;
	}
	for (unsigned op = 0; op < ACL_OPS; op++)
		if (strcmp(name, acl_op_setting(op)) == 0)
			return acl_setting(p, SEEN_ALLOW << op, name, value, &k->allow[op]);
	return error(p, "unknown key \"%s\" in [key %s]", name, k->name);
}

int config_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Opens a new [hsm] (name "hsm") or [hsm NAME] entry. */
static int enter_hsm_section(struct parse *p, const char *name)
{
	struct config *c = p->c;
	struct hsm_conf *hsms;

	if (!config_valid_name(name))
		return error(p, "HSM name \"%s\" must be 1 to 64 of A-Z a-z 0-9 _ . -", name);
	for (size_t i = 0; i < c->nhsms; i++)
		if (strcmp(c->hsms[i].name, name) == 0)
			return strcmp(name, "hsm") == 0 ? error(p, "[hsm] is defined twice")
							: error(p, "[hsm %s] is defined twice", name);
	if (c->nhsms == CONFIG_HSMS_MAX)
		return error(p, "at most %d HSM sections", CONFIG_HSMS_MAX);
	hsms = realloc(c->hsms, (c->nhsms + 1) * sizeof(*hsms));
	if (hsms == NULL)
		return error(p, "out of memory");
	c->hsms = hsms;
	memset(&hsms[c->nhsms], 0, sizeof(*hsms));
	strcpy(hsms[c->nhsms].name, name);
	c->nhsms++;
	return 1;
}

/* Called when the section changes: opens a new [key NAME] entry. */
static int enter_key_section(struct parse *p, const char *name)
{
	struct config *c = p->c;
	struct key_conf *keys;

	if (!config_valid_name(name))
		return error(p, "key name \"%s\" must be 1 to 64 of A-Z a-z 0-9 _ . -", name);
	for (size_t i = 0; i < c->nkeys; i++)
		if (strcmp(c->keys[i].name, name) == 0)
			return error(p, "key \"%s\" is defined twice", name);
	keys = realloc(c->keys, (c->nkeys + 1) * sizeof(*keys));
	if (keys == NULL)
		return error(p, "out of memory");
	c->keys = keys;
	memset(&keys[c->nkeys], 0, sizeof(*keys));
	strcpy(keys[c->nkeys].name, name);
	keys[c->nkeys].require_sensitive = -1;
	c->nkeys++;
	return 1;
}

static enum section section_kind(const char *section, const char **key_name)
{
	if (strcmp(section, "daemon") == 0)
		return SEC_DAEMON;
	if (strcmp(section, "hsm") == 0) {
		*key_name = section;
		return SEC_HSM;
	}
	if (strncmp(section, "hsm ", 4) == 0) {
		*key_name = section + 4;
		return SEC_HSM;
	}
	if (strncmp(section, "key ", 4) == 0) {
		*key_name = section + 4;
		return SEC_KEY;
	}
	return SEC_NONE;
}

/*
 * Called by the line reader for each "[section]" line, before inih sees it:
 * inih reports a section only through its settings (so an empty one would go
 * unnoticed) and cuts long names short.
 */
static void open_section(struct parse *p, const char *name, size_t len)
{
	char section[256];
	const char *key_name = NULL;

	if (len >= sizeof(section)) {
		p->kind = SEC_NONE;
		error(p, "section name too long");
		return;
	}
	memcpy(section, name, len);
	section[len] = '\0';
	p->kind = section_kind(section, &key_name);
	if (p->kind == SEC_KEY || p->kind == SEC_HSM) {
		p->seen[p->kind] = 0;
		if (!(p->kind == SEC_KEY ? enter_key_section(p, key_name) : enter_hsm_section(p, key_name)))
			p->kind = SEC_NONE;
	} else if (p->kind == SEC_NONE) {
		error(p, "unknown section [%s]", section);
	}
}

/*
 * inih's line reader: counts lines, refuses a line longer than inih's buffer
 * (inih would take its rest for another line), strips indentation (inih would
 * take an indented line for the continuation of the value above) and opens
 * sections.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *s = str, *end;
	size_t len;
	int ch;

	if (fgets(str, num, p->f) == NULL)
		return NULL;
	p->line++;
	len = strlen(str);
	/* A full buffer without the newline: the line goes on, unless only "\n" is left. */
	if (len > 0 && len == (size_t)num - 1 && str[len - 1] != '\n' &&
	    (ch = getc(p->f)) != EOF && ch != '\n') {
		error(p, "line is longer than %d characters", num - 1);
		while (ch != EOF && ch != '\n')
			ch = getc(p->f);
	}
	if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	len = strspn(s, " \t");
	memmove(s, s + len, strlen(s + len) + 1);
	if (s[0] == '[' && (end = strchr(s + 1, ']')) != NULL)
		open_section(p, s + 1, (size_t)(end - s - 1));
	return str;
}

static int on_setting(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;

	(void)section;  /* p->kind, from the reader, which saw the whole name */
	if (p->msg[0] != '\0')
		return 0;
	switch (p->kind) {
	case SEC_DAEMON:
		return daemon_setting(p, name, value);
	case SEC_HSM:
		return hsm_setting(p, &p->c->hsms[p->c->nhsms - 1], name, value);
	case SEC_KEY:
		return key_setting(p, &p->c->keys[p->c->nkeys - 1], name, value);
	case SEC_NONE:
		break;
	}
	return error(p, "\"%s\" is outside any section", name);
}

static void set_defaults(struct config *c)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	memset(c, 0, sizeof(*c));
	snprintf(c->socket, sizeof(c->socket), "%s", DEFAULT_SOCKET);
	c->socket_mode = 0660;
	c->workers = cpus < 1 ? 1 : cpus > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (int)cpus;
	for (size_t i = 0; i < NLIMITS; i++)
		*(long *)((char *)&c->limits + limit_settings[i].off) = limit_settings[i].dflt;
}

/* How an HSM's section is written: [hsm] or [hsm NAME]. */
static const char *hsm_section(const struct hsm_conf *h, char *buf, size_t len)
{
	if (strcmp(h->name, "hsm") == 0)
		snprintf(buf, len, "[hsm]");
	else
		snprintf(buf, len, "[hsm %s]", h->name);
	return buf;
}

/*
 * One PKCS#11 module per HSM section: a module is loaded once per process, so
 * two sections on it would share its sessions, and rebuilding one (which
 * finalises the module) would break the other. Compared by file, so that two
 * spellings of one path are caught too.
 */
static int same_module(const struct hsm_conf *a, const struct hsm_conf *b)
{
	struct stat sa, sb;

	if (stat(a->module, &sa) == 0 && stat(b->module, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	return strcmp(a->module, b->module) == 0;
}

static void check_modules(const struct config *c, char *msg, size_t len)
{
	char sa[CONFIG_NAME_MAX + 8], sb[CONFIG_NAME_MAX + 8];

	for (size_t i = 0; msg[0] == '\0' && i < c->nhsms; i++)
		for (size_t j = i + 1; msg[0] == '\0' && j < c->nhsms; j++)
			if (same_module(&c->hsms[i], &c->hsms[j]))
				snprintf(msg, len, "%s uses the module of %s: one section per PKCS#11 module "
					 "(a module's tokens cannot be recovered one at a time)",
					 hsm_section(&c->hsms[j], sb, sizeof(sb)),
					 hsm_section(&c->hsms[i], sa, sizeof(sa)));
}

/* Settings without which the daemon cannot start; named by section. */
static int check_complete(const struct config *c, char *msg, size_t len)
{
	char sec[CONFIG_NAME_MAX + 8];

	if (c->nhsms == 0)
		snprintf(msg, len, "[hsm] module is missing");
	for (size_t i = 0; msg[0] == '\0' && i < c->nhsms; i++) {
		if (c->hsms[i].module[0] == '\0')
			snprintf(msg, len, "%s module is missing", hsm_section(&c->hsms[i], sec, sizeof(sec)));
		else if (c->hsms[i].token[0] == '\0')
			snprintf(msg, len, "%s token is missing", hsm_section(&c->hsms[i], sec, sizeof(sec)));
	}
	check_modules(c, msg, len);
	if (msg[0] == '\0' && c->limits.job_memory_per_uid > c->limits.job_memory)
		snprintf(msg, len, "[daemon] job_memory_per_uid is larger than job_memory");
	for (size_t i = 0; msg[0] == '\0' && i < c->nkeys; i++)
		if (c->keys[i].label[0] == '\0' && c->keys[i].id_len == 0)
			snprintf(msg, len, "[key %s] needs a label or an id", c->keys[i].name);
	return msg[0] == '\0' ? 0 : -1;
}

/* The first token attribute that both give and that differs; NULL when none. */
static const char *token_conflict(const struct key_conf *k, const struct hsm_conf *h)
{
	const struct token_attrs *a = &k->token_attrs, *b = &h->token_attrs;

	if (k->token[0] != '\0' && strcmp(k->token, h->token) != 0)
		return "token";
	if (a->manufacturer[0] && b->manufacturer[0] && strcmp(a->manufacturer, b->manufacturer))
		return "manufacturer";
	if (a->serial[0] && b->serial[0] && strcmp(a->serial, b->serial))
		return "serial";
	if (a->model[0] && b->model[0] && strcmp(a->model, b->model))
		return "model";
	return NULL;
}

/*
 * Every HSM holds every key, so a key URI naming a token must name each HSM's
 * (the HSM sections may follow the key's, hence after the whole file). What
 * the HSM sections leave open is compared with the token itself at start.
 */
static int check_key_tokens(struct parse *p)
{
	const struct config *c = p->c;
	char sec[CONFIG_NAME_MAX + 8];
	const char *what;

	for (size_t i = 0; i < c->nkeys; i++)
		for (size_t j = 0; c->keys[i].uri_line != 0 && j < c->nhsms; j++)
			if ((what = token_conflict(&c->keys[i], &c->hsms[j])) != NULL) {
				p->line = c->keys[i].uri_line;
				error(p, "uri: its %s differs from the token of %s (\"%s\"); every HSM "
				      "holds every key", what, hsm_section(&c->hsms[j], sec, sizeof(sec)),
				      c->hsms[j].token);
				return -1;
			}
	return 0;
}

static void folder_of(const char *path, char *dir)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, PATH_MAX, ".");
	else if (slash == path)
		snprintf(dir, PATH_MAX, "/");
	else
		snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
}

int config_load_stream(FILE *f, const char *path, struct config *c, char *err, size_t errlen)
{
	struct parse p = { .c = c, .f = f };
	int line;

	set_defaults(c);
	folder_of(path, p.dir);
	line = ini_parse_stream(read_line, &p, on_setting, &p);
	if (ferror(p.f)) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		line = -1;
	} else if (p.msg[0] != '\0' && (line <= 0 || p.err_line <= line)) {
		/* Ours came first (inih's line is a syntax error, or a later setting). */
		snprintf(err, errlen, "%s:%d: %s", path, p.err_line, p.msg);
		line = -1;
	} else if (line != 0) {
		snprintf(err, errlen, "%s:%d: %s", path, line,
			 line > 0 ? "syntax error (expected name = value or [section])" : "out of memory");
	} else if (check_complete(c, p.msg, sizeof(p.msg)) != 0) {
		snprintf(err, errlen, "%s: %s", path, p.msg);
		line = -1;
	} else if (check_key_tokens(&p) != 0) {
		snprintf(err, errlen, "%s:%d: %s", path, p.err_line, p.msg);
		line = -1;
	}
	if (line != 0) {
		config_free(c);
		return -1;
	}
	return 0;
}

int config_load(const char *path, struct config *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	int rc, e;

	if (f == NULL) {
		e = errno;
		set_defaults(c);        /* *c is empty, as after any other failure */
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -1;
	}
	rc = config_load_stream(f, path, c, err, errlen);
	fclose(f);
	return rc;
}

void config_free(struct config *c)
{
	free(c->keys);
	c->keys = NULL;
	c->nkeys = 0;
	free(c->hsms);
	c->hsms = NULL;
	c->nhsms = 0;
}
