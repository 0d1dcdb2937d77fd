/*
 * --help: the commands with a line each, and per command its usage, its
 * arguments and the lines of its option table (the one its parser reads,
 * so that the two cannot drift apart).
 */
#include "cli.h"

#include <ctype.h>
#include <string.h>

struct command_help {
	const char *cmd;
	const char *summary;    /* one line for keytrans --help */
	const char *synopsis;
	const char *args;       /* the positional arguments, a line each; or NULL */
};

#define SESSION_ARG "  HANDLE             the session, 32 hex digits from copp-open or opm-open --seal\n"
#define NAME_ARG "  NAME               the key: its name in the daemon's configuration, or a PKCS#11 URI\n"

static const struct command_help commands[] = {
	{ "info", "the daemon's version, token, key and worker counts, and HSMs",
	  "keytrans [-s SOCKET] [--json] info", NULL },
	{ "keys", "list the keys the caller may use",
	  "keytrans [-s SOCKET] [--json] keys", NULL },
	{ "stats", "the daemon's counters: connections, pools, HSMs, answers and latency",
	  "keytrans [-s SOCKET] [--json] stats [--prometheus [--http]]", NULL },
	{ "pubkey", "export the public half of a key",
	  "keytrans [-s SOCKET] [--json] pubkey NAME [--format blob|pem|der|cng] [-o FILE]", NAME_ARG },
	{ "unwrap", "decrypt a SIMPLEBLOB into its session key (a PLAINTEXTKEYBLOB)",
	  "keytrans [-s SOCKET] [--json] unwrap NAME [-i BLOBFILE] [--oaep] [--strict]\n"
	  "         [-o KEYBLOBFILE]", NAME_ARG },
	{ "wrap", "encrypt a session key (given or generated) into a SIMPLEBLOB",
	  "keytrans [-s SOCKET] [--json] wrap (--to KEYFILE | --to-key NAME)\n"
	  "         (--alg ALG (--key HEX | --generate [--bits N] [--key-out KEYBLOBFILE])\n"
	  "          | --key-blob KEYBLOBFILE) [--oaep] [-o BLOBFILE]", NULL },
	{ "copp-sign", "build a COPP session-start signature for a recipient key",
	  "keytrans [-s SOCKET] [--json] copp-sign (--to KEYFILE | --to-key NAME) --random HEX\n"
	  "         [--aes-key HEX] [--status-seq N] [--command-seq N] [-o SIGFILE]", NULL },
	{ "copp-open", "open a COPP session-start signature made for a key",
	  "keytrans [-s SOCKET] [--json] copp-open NAME [-i SIGFILE] [--expect-random HEX]\n"
	  "         [--seal] [--strict]", NAME_ARG },
	{ "opm-sign", "encrypt OPM session-start parameters for a recipient key",
	  "keytrans [-s SOCKET] [--json] opm-sign (--to KEYFILE | --to-key NAME) --random HEX\n"
	  "         [--aes-key HEX] [--status-seq N] [--command-seq N] [-o SIGFILE]", NULL },
	{ "opm-open", "open OPM session-start parameters encrypted for a key",
	  "keytrans [-s SOCKET] [--json] opm-open NAME [-i SIGFILE] [--expect-random HEX] [--seal]",
	  NAME_ARG },
	{ "session-mac", "the OMAC-1 of data under a sealed session's AES key",
	  "keytrans [-s SOCKET] [--json] session-mac HANDLE [-i DATAFILE]", SESSION_ARG },
	{ "session-verify", "check data's OMAC-1 and sequence number in a sealed session",
	  "keytrans [-s SOCKET] [--json] session-verify HANDLE [-i DATAFILE] [--omac HEX]\n"
	  "         [--kind status|command]", SESSION_ARG },
	{ "session-close", "close a sealed session, wiping its AES key",
	  "keytrans [-s SOCKET] [--json] session-close HANDLE", SESSION_ARG },
	{ "keygen", "generate an RSA key pair in the daemon's HSM (admin users)",
	  "keytrans [-s SOCKET] [--json] keygen NAME [--bits 2048|3072|4096]",
	  "  NAME               the new key's name and label (1 to 64 of A-Z a-z 0-9 _ . -)\n" },
	{ "import", "put an RSA private key into the daemon's HSM (admin users)",
	  "keytrans [-s SOCKET] [--json] import NAME FILE",
	  "  NAME               the new key's name and label (1 to 64 of A-Z a-z 0-9 _ . -)\n"
	  "  FILE               the private key: PEM or DER PKCS#1/PKCS#8, a PRIVATEKEYBLOB or a\n"
	  "                     CNG RSAPRIVATE/RSAFULLPRIVATE blob; - for stdin\n" },
	{ "bench", "a closed-loop load generator: rate, latency percentiles, errors",
	  "keytrans [-s SOCKET] [--json] bench --op OP (--key NAME | --to KEYFILE\n"
	  "         [--distinct-recipients N]) [--strict] [--alg ALG] [-c CONNECTIONS]\n"
	  "         [-P PIPELINE] [-d SECONDS | -n REQUESTS]", NULL },
};

static const char help_tail[] =
	"Files are raw binary; -i/-o default to stdin/stdout (\"-\" too). KEYBLOBFILE is a\n"
	"CryptoAPI PLAINTEXTKEYBLOB. ALG is a name in any case (AES_128, calg_rc4) or a\n"
	"number (0x660e). Secret outputs (unwrap -o, --key-out, copp-sign and opm-sign -o)\n"
	"replace only a missing file or a private one of the caller's; no output is written\n"
	"through a symbolic link.\n"
	"Exit status: 0 done, 1 refused or failed (by the daemon, or reading or writing a\n"
	"file), 2 usage error, 3 daemon unreachable. See keytrans(1).\n";

static const struct command_help *find(const char *cmd)
{
	for (size_t i = 0; cmd != NULL && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].cmd, cmd) == 0)
			return &commands[i];
	return NULL;
}

const char *help_synopsis(const char *cmd)
{
	const struct command_help *h = find(cmd);

	return h != NULL ? h->synopsis : NULL;
}

/* "  -o, --out FILE" or "      --oaep", then the help padded to one column. */
static void option_lines(FILE *f, const char *title, const struct opt *o)
{
	if (o == NULL || o->name == NULL)
		return;
	fprintf(f, "%s:\n", title);
	for (; o->name != NULL; o++) {
		char left[64];

		snprintf(left, sizeof(left), "  %s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "    ",
			 o->name, o->value ? " " : "", o->value ? o->arg : "");
		if (strlen(left) > 24)
			fprintf(f, "%s\n%*s%s\n", left, 26, "", o->help);
		else
			fprintf(f, "%-26s%s\n", left, o->help);
	}
}

static void global_lines(FILE *f, const char *title)
{
	struct cli dummy = { 0 };
	struct opt globals[GLOBAL_OPTS];

	args_globals(&dummy, globals);
	option_lines(f, title, globals);
}

static void general_help(FILE *f)
{
	fputs("usage: keytrans [-s SOCKET] [--json] COMMAND [ARGUMENT...]\n"
	      "       keytrans COMMAND --help\n"
	      "       keytrans --help | --version\n\n"
	      "Commands:\n", f);
	for (size_t i = 0; cli_command_name(i) != NULL; i++) {
		const struct command_help *h = find(cli_command_name(i));

		fprintf(f, "  %-16s%s\n", cli_command_name(i), h != NULL ? h->summary : "");
	}
	fputc('\n', f);
	global_lines(f, "Global options (before or after the command)");
	fputc('\n', f);
	fputs(help_tail, f);
}

void help_print(FILE *f, const struct opt *cmd_opts, const char *cmd)
{
	const struct command_help *h = find(cmd);

	if (cmd == NULL) {
		general_help(f);
		return;
	}
	if (h != NULL)
		fprintf(f, "usage: %s\n%c%s.\n\n", h->synopsis, toupper((unsigned char)h->summary[0]),
			h->summary + 1);
	else
		fprintf(f, "usage: keytrans [-s SOCKET] [--json] %s\n\n", cmd);
	if (h != NULL && h->args != NULL)
		fprintf(f, "Arguments:\n%s\n", h->args);
	if (cmd_opts != NULL && cmd_opts->name != NULL) {
		option_lines(f, "Options", cmd_opts);
		fputc('\n', f);
	}
	global_lines(f, "Global options (before or after the command)");
	fputs("\nkeytrans --help tells about files and exit statuses; keytrans(1) tells all.\n", f);
}
