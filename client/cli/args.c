/*
 * A command's arguments: options in any order among the positional ones,
 * "--opt VALUE", "--opt=VALUE" and "-o VALUE"; "--" ends the options.
 * The global options (-s, --json, --help, --version) are understood before
 * the command and among its arguments alike.
 */
#include "cli.h"

#include <string.h>
#include <strings.h>

void args_globals(struct cli *cli, struct opt t[GLOBAL_OPTS])
{
	const struct opt table[GLOBAL_OPTS] = {
		OPT_VALUE("--socket", "-s", &cli->socket, "SOCKET",
			  "the daemon's socket (default: $KEYTRANS_SOCKET, else " KT_DEFAULT_SOCKET ")"),
		OPT_FLAG("--json", NULL, &cli->json,
			 "print one JSON object on stdout: the result, or the error"),
		OPT_FLAG("--help", "-h", &cli->help, "print this help and exit"),
		OPT_FLAG("--version", "-V", &cli->version, "print the version and exit"),
		OPT_END,
	};

	memcpy(t, table, sizeof(table));
}

int args_choice(const char *text, const char *const *names)
{
	for (int i = 0; text != NULL && names[i] != NULL; i++)
		if (strcasecmp(text, names[i]) == 0)
			return i;
	return -1;
}

static const struct opt *find(const struct opt *opts, const char *arg, size_t len)
{
	for (; opts != NULL && opts->name != NULL; opts++) {
		if (strlen(opts->name) == len && strncmp(opts->name, arg, len) == 0)
			return opts;
		if (opts->alias != NULL && strlen(opts->alias) == len && strncmp(opts->alias, arg, len) == 0)
			return opts;
	}
	return NULL;
}

/* --help and --version act at once, whatever else is on the line. */
static int act(struct cli *cli, const struct opt *cmd_opts)
{
	if (cli->help) {
		help_print(stdout, cmd_opts, cli->cmd);
		return EXIT_HELP;
	}
	if (cli->version) {
		printf("keytrans %s (libkeytrans %s)\n", KT_VERSION, kt_version());
		return EXIT_HELP;
	}
	return EXIT_DONE;
}

/* Handles argv[*i], an option of opts or a global one; moves *i past its value. */
static int option(struct cli *cli, int argc, char **argv, int *i, const struct opt *opts)
{
	const char *arg = argv[*i], *eq = strchr(arg, '=');
	size_t len = eq != NULL && arg[1] == '-' ? (size_t)(eq - arg) : strlen(arg);
	struct opt globals[GLOBAL_OPTS];
	const struct opt *o = find(opts, arg, len);

	args_globals(cli, globals);
	if (o == NULL)
		o = find(globals, arg, len);
	if (o == NULL && cli->cmd != NULL)
		return cli_usage(cli, "unknown option '%.*s' for %s", (int)len, arg, cli->cmd);
	if (o == NULL)
		return cli_usage(cli, "unknown option '%.*s'", (int)len, arg);
	if (o->flag != NULL) {
		if (len != strlen(arg))
			return cli_usage(cli, "option %s takes no value", o->name);
		*o->flag = 1;
		return act(cli, opts);
	}
	if (*o->value != NULL)
		return cli_usage(cli, "option %s given twice", o->name);
	if (len != strlen(arg))
		*o->value = arg + len + 1;
	else if (*i + 1 < argc)
		*o->value = argv[++*i];
	else
		return cli_usage(cli, "option %s needs a value", o->name);
	return EXIT_DONE;
}

static int is_option(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0';
}

int args_leading(struct cli *cli, int argc, char **argv, int *i)
{
	for (*i = 1; *i < argc && is_option(argv[*i]); ++*i) {
		int st;

		if (strcmp(argv[*i], "--") == 0) {
			++*i;
			break;
		}
		st = option(cli, argc, argv, i, NULL);
		if (st != EXIT_DONE)
			return st;
	}
	return EXIT_DONE;
}

int args_parse(struct cli *cli, int argc, char **argv, const struct opt *opts,
	       const char **pos, int npos)
{
	int got = 0, only_pos = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		int st;

		if (!only_pos && strcmp(arg, "--") == 0) {
			only_pos = 1;
		} else if (!only_pos && is_option(arg)) {
			st = option(cli, argc, argv, &i, opts);
			if (st != EXIT_DONE)
				return st;
		} else if (got < npos) {
			pos[got++] = arg;
		} else {
			return cli_usage(cli, "unexpected argument '%s'", arg);
		}
	}
	for (int i = got; i < npos; i++)
		pos[i] = NULL;
	return EXIT_DONE;
}
