/*
 * A key named on the command line: by its name, or by a PKCS#11 URI (RFC
 * 7512) as OpenSSL, GnuTLS and p11tool print them. The daemon knows keys by
 * name only, so a URI is matched against its key listing (name, label, id) and
 * must pick exactly one key; its token= against the token labels info reports.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* What the command line takes from a URI; pin and module say how to reach the HSM: the daemon's job. */
#define CLI_URI_ACCEPT \
	(P11URI_TOKEN | P11URI_OBJECT | P11URI_PIN_SOURCE | P11URI_MODULE_PATH | P11URI_MODULE_NAME)

int keyref_parse(const struct cli *cli, const char *arg, struct keyref *r)
{
	char why[200];

	r->arg = arg;
	r->is_uri = arg != NULL && p11uri_is_uri(arg);
	if (!r->is_uri)
		return EXIT_DONE;
	if (p11uri_parse(arg, CLI_URI_ACCEPT, &r->uri, why, sizeof(why)) != 0)
		return cli_usage(cli, "key URI: %s", why);
	if ((r->uri.has & P11URI_HAS_TYPE) && r->uri.type != P11URI_PRIVATE &&
	    r->uri.type != P11URI_PUBLIC)
		return cli_usage(cli, "key URI: type must be private or public (keytrans serves key pairs)");
	return EXIT_DONE;
}

/* 1 when the daemon's token (or one of its HSMs') is the one the URI names. */
static int token_served(const struct kt_info *info, const char *label)
{
	if (strcmp(info->token_label, label) == 0)
		return 1;
	for (size_t i = 0; i < info->nhsms; i++)
		if (strcmp(info->hsms[i].token_label, label) == 0)
			return 1;
	return 0;
}

static int key_matches(const struct kt_key *k, const struct p11uri *u)
{
	if ((u->has & P11URI_HAS_OBJECT) && strcmp(k->label, u->object) != 0)
		return 0;
	if ((u->has & P11URI_HAS_ID) &&
	    (k->id_len != u->id_len || memcmp(k->id, u->id, u->id_len) != 0))
		return 0;
	return 1;
}

/* Lists the daemon's keys and picks the one the URI matches. */
static int match_key(const struct cli *cli, kt_conn *c, struct keyref *r)
{
	struct kt_key *keys = NULL;
	char names[256] = "", msg[768];
	size_t n, found = 0, used = 0;
	int st = kt_keys(c, &keys, &n);

	if (st != KT_OK)
		return cli_fail(cli, st, kt_errmsg(c));
	for (size_t i = 0; i < n; i++) {
		if (!key_matches(&keys[i], &r->uri))
			continue;
		if (found++ == 0)
			snprintf(r->name, sizeof(r->name), "%s", keys[i].name);
		if (used < sizeof(names))
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
						 used ? ", " : "", keys[i].name);
	}
	kt_free(keys);
	if (found == 1)
		return EXIT_DONE;
	if (found == 0)
		snprintf(msg, sizeof(msg), "no key of the daemon matches %s", r->arg);
	else
		snprintf(msg, sizeof(msg), "%zu keys match %s (%s): narrow the URI or give the key's name",
			 found, r->arg, names);
	return cli_fail(cli, KT_UNKNOWN_KEY, msg);
}

int keyref_resolve(const struct cli *cli, kt_conn *c, struct keyref *r, const char **name)
{
	struct kt_info info;
	char msg[512];
	int st;

	*name = r->arg;
	if (!r->is_uri)
		return EXIT_DONE;
	if (r->uri.has & P11URI_HAS_TOKEN) {
		st = kt_info(c, &info);
		if (st != KT_OK)
			return cli_fail(cli, st, kt_errmsg(c));
		if (!token_served(&info, r->uri.token)) {
			snprintf(msg, sizeof(msg), "no key of the daemon matches %s: it serves "
				 "token \"%s\", not \"%s\"", r->arg, info.token_label, r->uri.token);
			return cli_fail(cli, KT_UNKNOWN_KEY, msg);
		}
	}
	st = match_key(cli, c, r);
	if (st == EXIT_DONE)
		*name = r->name;
	return st;
}
