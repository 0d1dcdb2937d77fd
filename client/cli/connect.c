/*
 * Connecting to the daemon, and when that fails, what to check: is keytransd
 * running, which socket was tried and where its path came from, and whether
 * the caller may open it (the group the socket unit gives it).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The path kt_connect tries (the library's own rule), and where it came from. */
static const char *socket_tried(const struct cli *cli, const char **from)
{
	const char *env = getenv("KEYTRANS_SOCKET");

	if (cli->socket != NULL && *cli->socket != '\0') {
		*from = "given with -s";
		return cli->socket;
	}
	if (env != NULL && *env != '\0') {
		*from = "from $KEYTRANS_SOCKET";
		return env;
	}
	*from = "the default; -s or $KEYTRANS_SOCKET choose another";
	return KT_DEFAULT_SOCKET;
}

/* The errno behind the library's "PATH: strerror" message, or 0. */
static int message_errno(const char *msg)
{
	static const int known[] = { ENOENT, ECONNREFUSED, EACCES, EPERM, ENOTSOCK, ENOTDIR };
	size_t n = strlen(msg);

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		const char *text = strerror(known[i]);
		size_t len = strlen(text);

		if (n > len + 2 && strcmp(msg + n - len, text) == 0 && msg[n - len - 2] == ':')
			return known[i];
	}
	return 0;
}

static const char *hint(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ECONNREFUSED:
		return "is keytransd running? (systemctl status keytransd.socket keytransd)";
	case EACCES:
	case EPERM:
		return "not in group keytrans? (id -nG; after usermod -aG keytrans USER, log in again)";
	default:
		return "is that keytransd's socket?";
	}
}

/* The library's message is "PATH: reason"; the user also needs what to check. */
static int connect_failed(const struct cli *cli, int err)
{
	const char *from, *path = socket_tried(cli, &from);
	char msg[1024];

	snprintf(msg, sizeof(msg), "cannot connect to keytransd at %s (%s): %s; %s", path, from,
		 strerror(err), hint(err));
	return cli_fail(cli, KT_ERR_CONNECT, msg);
}

int cli_connect(const struct cli *cli, kt_conn **c)
{
	int st;

	*c = kt_conn_new();
	if (*c == NULL)
		return cli_fail(cli, KT_ERR_NOMEM, NULL);
	st = kt_connect(*c, cli->socket);
	if (st == KT_OK)
		return EXIT_DONE;
	if (st == KT_ERR_CONNECT && message_errno(kt_errmsg(*c)) != 0)
		st = connect_failed(cli, message_errno(kt_errmsg(*c)));
	else
		st = cli_fail(cli, st, kt_errmsg(*c));
	kt_conn_free(*c);
	*c = NULL;
	return st;
}
