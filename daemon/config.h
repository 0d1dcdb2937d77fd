/*
 * keytransd.conf: INI, read with inih. Relative paths are taken relative to
 * the file's folder; unknown sections and keys are errors that name them.
 * Tokens and keys may also be named by PKCS#11 URIs (RFC 7512): [hsm] token
 * and [key] uri, read by common/p11uri.c.
 */
#ifndef KT_CONFIG_H
#define KT_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "acl.h"

#define CONFIG_NAME_MAX 64
#define CONFIG_LABEL_MAX 256
#define CONFIG_ID_MAX 64
#define CONFIG_TOKEN_MAX 32
#define CONFIG_SERIAL_MAX 16     /* CK_TOKEN_INFO serialNumber and model */
#define CONFIG_WORKERS_MAX 16   /* libp11 keeps 16 sessions per slot */
#define CONFIG_HSMS_MAX 16       /* [hsm] / [hsm NAME] sections */

/* How the HSM is asked for the private operation. */
enum rsa_mechanism {
	MECH_RAW,       /* CKM_RSA_X_509; padding removed here, in constant time (default) */
	MECH_PKCS,      /* CKM_RSA_PKCS, for HSMs that forbid raw RSA: no implicit rejection */
};

/* What a PKCS#11 URI may select a token by besides its label; "" : anything. */
struct token_attrs {
	char manufacturer[CONFIG_TOKEN_MAX + 1];
	char serial[CONFIG_SERIAL_MAX + 1];
	char model[CONFIG_SERIAL_MAX + 1];
};

struct key_conf {
	char name[CONFIG_NAME_MAX + 1];     /* what clients call it */
	char label[CONFIG_LABEL_MAX + 1];   /* CKA_LABEL, "" when not given */
	uint8_t id[CONFIG_ID_MAX];          /* CKA_ID */
	size_t id_len;                      /* 0 when not given */
	enum rsa_mechanism mechanism;
	struct acl allow[ACL_OPS];          /* allow_unwrap, allow_wrap, ... */
	char token[CONFIG_TOKEN_MAX + 1];   /* the token its uri names, "" : any */
	struct token_attrs token_attrs;     /* checked against each HSM's token */
	int uri_line;                       /* of its uri, for messages; 0 : none */
	int require_sensitive;              /* yes 1, no 0, not given -1 ([hsm]'s applies) */
};

/* One HSM: an [hsm] or [hsm NAME] section. Several hold the same keys. */
struct hsm_conf {
	char name[CONFIG_NAME_MAX + 1];     /* "hsm" for a plain [hsm] */
	char module[PATH_MAX];
	char token[CONFIG_TOKEN_MAX + 1];   /* its label */
	struct token_attrs token_attrs;     /* from a token URI */
	char pin_file[PATH_MAX];            /* "" : $CREDENTIALS_DIRECTORY/pin */
	int require_sensitive;              /* refuse keys that may leave the HSM */
	enum { SERIALIZE_AUTO, SERIALIZE_YES, SERIALIZE_NO } serialize;    /* one call at a time */
};

/* Limits that hold under abuse ([daemon] section). */
struct limits {
	long max_connections;           /* open connections in all */
	long max_connections_per_uid;
	long max_inflight;              /* requests on workers, per connection */
	long request_timeout;           /* s: a frame must arrive, a job must start, within it */
	long idle_timeout;              /* s: a connection with nothing to do is closed after it */
	long job_memory;                /* KiB of locked memory for requests in flight, in all */
	long job_memory_per_uid;        /* KiB of it one uid may hold */
	long hsm_call_timeout;          /* s: a longer PKCS#11 call takes its HSM out of service */
	long hsm_retry_max;             /* s: longest wait between two attempts to bring an HSM back */
	long recipient_cache;           /* PUBLIC_KEYs kept decoded (recipients.h); 0: none */
	long max_sessions;              /* sealed COPP/OPM sessions open at once (sessions.h); 0: none */
	long max_sessions_per_uid;
	long session_idle_timeout;      /* s: a session unused this long is wiped */
};

struct config {
	char socket[PATH_MAX];
	mode_t socket_mode;
	int workers;
	struct acl allow_public_ops;        /* wrap/copp-sign to a key given in the request */
	struct acl admin;                   /* keygen, import (default: root and the daemon's uid) */
	struct acl stats_outcomes;          /* see private-key operations' series in stats, as admin */
	struct limits limits;
	struct hsm_conf *hsms;
	size_t nhsms;
	struct key_conf *keys;
	size_t nkeys;
};

/*
 * Reads and checks path. On failure returns -1 with a message in err that
 * names the file and line (or section) at fault; *c is then empty.
 */
int config_load(const char *path, struct config *c, char *err, size_t errlen);
/*
 * The same over an open stream (the caller closes it); path is used only in
 * messages and for the folder that relative paths are taken from.
 */
int config_load_stream(FILE *f, const char *path, struct config *c, char *err, size_t errlen);
void config_free(struct config *c);
/* 1 when s may name a key or an HSM: 1 to 64 of A-Z a-z 0-9 _ . - */
int config_valid_name(const char *s);

#endif
