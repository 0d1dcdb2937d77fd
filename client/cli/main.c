/* keytrans: global options, the command table, exit codes. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
};

static const struct command commands[] = {
	{ "info", cmd_info },
	{ "keys", cmd_keys },
	{ "pubkey", cmd_pubkey },
	{ "unwrap", cmd_unwrap },
	{ "wrap", cmd_wrap },
	{ "copp-sign", cmd_copp_sign },
	{ "copp-open", cmd_copp_open },
	{ "stats", cmd_stats },
	{ "bench", cmd_bench },
	{ "keygen", cmd_keygen },
	{ "import", cmd_import },
};

int cli_connect(const struct cli *cli, kt_conn **c)
{
	int st;

	*c = kt_conn_new();
	if (*c == NULL)
		return cli_fail(cli, KT_ERR_NOMEM, NULL);
	st = kt_connect(*c, cli->socket);
	if (st == KT_OK)
		return EXIT_DONE;
	st = cli_fail(cli, st, kt_errmsg(*c));
	kt_conn_free(*c);
	*c = NULL;
	return st;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Users also write --json after the command; usage errors must honour it. */
static int wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--json") == 0)
			return 1;
	}
	return 0;
}

/* Options before the command; *i ends at the command. EXIT_HELP: all said. */
static int global_options(struct cli *cli, int argc, char **argv, int *i)
{
	for (*i = 1; *i < argc && argv[*i][0] == '-'; ++*i) {
		const char *a = argv[*i];

		if (strcmp(a, "--json") == 0) {
			cli->json = 1;
		} else if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
			if (*i + 1 >= argc)
				return cli_usage(cli, "option %s needs a value", a);
			cli->socket = argv[++*i];
		} else if (strncmp(a, "--socket=", 9) == 0) {
			cli->socket = a + 9;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			cli_print_help(stdout);
			return EXIT_HELP;
		} else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("keytrans %s (libkeytrans %s)\n", KT_VERSION, kt_version());
			return EXIT_HELP;
		} else {
			return cli_usage(cli, "unknown option '%s'", a);
		}
	}
	return EXIT_DONE;
}

int main(int argc, char **argv)
{
	struct cli cli = { .json = wants_json(argc, argv) };
	const struct command *cmd;
	int i, st;

	st = global_options(&cli, argc, argv, &i);
	if (st != EXIT_DONE)
		return st == EXIT_HELP ? EXIT_DONE : st;
	if (i >= argc)
		return cli_usage(&cli, "no command given");
	cmd = find_command(argv[i]);
	if (cmd == NULL)
		return cli_usage(&cli, "unknown command '%s'", argv[i]);
	cli.cmd = cmd->name;
	st = cmd->run(&cli, argc - i - 1, argv + i + 1);
	if (st == EXIT_HELP)
		st = EXIT_DONE;
	if (fflush(stdout) != 0 && st == EXIT_DONE) {
		fputs("keytrans: cannot write stdout\n", stderr);
		st = EXIT_FAILED;
	}
	return st;
}
