/* keytrans: global options, the command table, exit codes. */
#include "cli.h"

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
	{ "opm-sign", cmd_opm_sign },
	{ "opm-open", cmd_opm_open },
	{ "session-mac", cmd_session_mac },
	{ "session-verify", cmd_session_verify },
	{ "session-close", cmd_session_close },
	{ "stats", cmd_stats },
	{ "bench", cmd_bench },
	{ "keygen", cmd_keygen },
	{ "import", cmd_import },
};

const char *cli_command_name(size_t i)
{
	return i < sizeof(commands) / sizeof(commands[0]) ? commands[i].name : NULL;
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

int main(int argc, char **argv)
{
	struct cli cli = { .json = wants_json(argc, argv) };
	const struct command *cmd;
	int i, st;

	st = args_leading(&cli, argc, argv, &i);
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
