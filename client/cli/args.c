/*
 * A command's arguments: options in any order among the positional ones,
 * "--opt VALUE", "--opt=VALUE" and "-o VALUE"; "--" ends the options.
 * --json and --help are understood by every command.
 */
#include "cli.h"

#include <string.h>

static const struct opt *find(const struct opt *opts, const char *arg, size_t len)
{
	for (; opts->name != NULL; opts++) {
		if (strlen(opts->name) == len && strncmp(opts->name, arg, len) == 0)
			return opts;
		if (opts->alias != NULL && strlen(opts->alias) == len && strncmp(opts->alias, arg, len) == 0)
			return opts;
	}
	return NULL;
}

/* Handles argv[*i], an option; moves *i past its value. */
static int option(struct cli *cli, int argc, char **argv, int *i, const struct opt *opts)
{
	const char *arg = argv[*i], *eq = strchr(arg, '=');
	size_t len = eq != NULL && arg[1] == '-' ? (size_t)(eq - arg) : strlen(arg);
	const struct opt *o = find(opts, arg, len);

	if (o == NULL)
		return cli_usage(cli, "unknown option '%.*s' for %s", (int)len, arg, cli->cmd);
	if (o->flag != NULL) {
		if (len != strlen(arg))
			return cli_usage(cli, "option %s takes no value", o->name);
		*o->flag = 1;
		return EXIT_DONE;
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

int args_parse(struct cli *cli, int argc, char **argv, const struct opt *opts,
	       const char **pos, int npos)
{
	int got = 0, only_pos = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		int st;

		if (!only_pos && strcmp(arg, "--") == 0) {
			only_pos = 1;
		} else if (!only_pos && strcmp(arg, "--json") == 0) {
			cli->json = 1;
		} else if (!only_pos && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
			cli_print_command_help(stdout, cli->cmd);
			return EXIT_HELP;
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
