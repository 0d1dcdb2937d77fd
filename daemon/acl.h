/*
 * Access rules: who may use a key for an operation. A rule is a list of
 * "user:NAME uid:N group:NAME gid:N *"; names are resolved when the
 * configuration is read. A key that sets no rule for an operation allows
 * only root and the daemon's own uid.
 */
#ifndef KT_ACL_H
#define KT_ACL_H

#include <stddef.h>
#include <sys/types.h>

#include "peer.h"

#define ACL_MAX 32

enum acl_op { ACL_UNWRAP, ACL_WRAP, ACL_COPP_OPEN, ACL_PUBKEY, ACL_OPM_OPEN, ACL_OPS };

struct acl_entry {
	enum { ACL_ANYONE, ACL_UID, ACL_GID } kind;
	unsigned id;
};

struct acl {
	int set;                        /* 0: the default (root and the daemon's uid) */
	size_t n;
	struct acl_entry e[ACL_MAX];
};

/* Parses a rule; -1 with a sentence in err (an unknown user or group is an error). */
int acl_parse(const char *text, struct acl *out, char *err, size_t errlen);
/* 1 when the rule lets p in; self is the daemon's uid. */
int acl_allows(const struct acl *a, const struct peer *p, uid_t self);
/* The configuration name of an operation's rule ("allow_unwrap"). */
const char *acl_op_setting(enum acl_op op);

#endif
