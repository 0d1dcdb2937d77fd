#include "acl.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_number(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v >= (unsigned long)(uid_t)-1)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Resolves one "kind:value" word into e. */
static int parse_word(const char *w, struct acl_entry *e, char *err, size_t errlen)
{
	char buf[4096];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;

	if (strcmp(w, "*") == 0) {
		e->kind = ACL_ANYONE;
		return 0;
	}
	if (strncmp(w, "uid:", 4) == 0 || strncmp(w, "gid:", 4) == 0) {
		e->kind = w[0] == 'u' ? ACL_UID : ACL_GID;
		if (parse_number(w + 4, &e->id) == 0)
			return 0;
	} else if (strncmp(w, "user:", 5) == 0) {
		e->kind = ACL_UID;
		if (getpwnam_r(w + 5, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL) {
			e->id = pwp->pw_uid;
			return 0;
		}
		snprintf(err, errlen, "unknown user \"%s\"", w + 5);
		return -1;
	} else if (strncmp(w, "group:", 6) == 0) {
		e->kind = ACL_GID;
		if (getgrnam_r(w + 6, &gr, buf, sizeof(buf), &grp) == 0 && grp != NULL) {
			e->id = grp->gr_gid;
			return 0;
		}
		snprintf(err, errlen, "unknown group \"%s\"", w + 6);
		return -1;
	}
	snprintf(err, errlen, "\"%s\" is not user:NAME, uid:N, group:NAME, gid:N or *", w);
	return -1;
}

int acl_parse(const char *text, struct acl *out, char *err, size_t errlen)
{
	char copy[1024], *save = NULL, *w;

	memset(out, 0, sizeof(*out));
	if (strlen(text) >= sizeof(copy)) {
		snprintf(err, errlen, "rule too long");
		return -1;
	}
	strcpy(copy, text);
	for (w = strtok_r(copy, " \t,", &save); w != NULL; w = strtok_r(NULL, " \t,", &save)) {
		if (out->n == ACL_MAX) {
			snprintf(err, errlen, "more than %d entries in one rule", ACL_MAX);
			return -1;
		}
		if (parse_word(w, &out->e[out->n], err, errlen) != 0)
			return -1;
		out->n++;
	}
	/* An empty rule is allowed: nobody but root and the daemon's uid. */
	out->set = 1;
	return 0;
}

int acl_allows(const struct acl *a, const struct peer *p, uid_t self)
{
	if (p->uid == 0 || p->uid == self)
		return 1;
	for (size_t i = 0; a->set && i < a->n; i++) {
		const struct acl_entry *e = &a->e[i];

		if (e->kind == ACL_ANYONE || (e->kind == ACL_UID && e->id == p->uid) ||
		    (e->kind == ACL_GID && peer_in_group(p, e->id)))
			return 1;
	}
	return 0;
}

const char *acl_op_setting(enum acl_op op)
{
	static const char *const names[ACL_OPS] = {
		[ACL_UNWRAP] = "allow_unwrap", [ACL_WRAP] = "allow_wrap",
		[ACL_COPP_OPEN] = "allow_copp_open", [ACL_PUBKEY] = "allow_pubkey",
		[ACL_OPM_OPEN] = "allow_opm_open",
	};

	return names[op];
}
