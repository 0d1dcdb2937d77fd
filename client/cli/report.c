/* Errors, usage hints and help text: JSON on stdout or one line on stderr. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

struct synopsis {
	const char *cmd;
	const char *text;
};

static const struct synopsis synopses[] = {
	{ "info", "keytrans [-s SOCKET] [--json] info" },
	{ "keys", "keytrans [-s SOCKET] [--json] keys" },
	{ "stats", "keytrans [-s SOCKET] [--json] stats [--prometheus]" },
	{ "pubkey", "keytrans [-s SOCKET] [--json] pubkey NAME [--format blob|pem|der] [-o FILE]" },
	{ "unwrap", "keytrans [-s SOCKET] [--json] unwrap NAME [-i BLOBFILE] [--oaep] [--strict]\n"
		    "         [-o KEYBLOBFILE]" },
	{ "wrap", "keytrans [-s SOCKET] [--json] wrap (--to KEYFILE | --to-key NAME)\n"
		  "         (--alg ALG (--key HEX | --generate [--bits N] [--key-out KEYBLOBFILE])\n"
		  "          | --key-blob KEYBLOBFILE) [--oaep] [-o BLOBFILE]" },
	{ "copp-sign", "keytrans [-s SOCKET] [--json] copp-sign (--to KEYFILE | --to-key NAME) --random HEX\n"
		       "         [--aes-key HEX] [--status-seq N] [--command-seq N] [-o SIGFILE]" },
	{ "copp-open", "keytrans [-s SOCKET] [--json] copp-open NAME [-i SIGFILE] [--expect-random HEX]\n"
		       "         [--strict]" },
	{ "keygen", "keytrans [-s SOCKET] [--json] keygen NAME [--bits 2048|3072|4096]" },
	{ "import", "keytrans [-s SOCKET] [--json] import NAME FILE" },
	{ "bench", "keytrans [-s SOCKET] [--json] bench [--op unwrap|unwrap-oaep|wrap|wrap-generate|\n"
		   "         copp-sign|copp-open|pubkey] [--key NAME | --to KEYFILE] [--alg ALG]\n"
		   "         [-c CONNECTIONS] [-P PIPELINE] [-d SECONDS | -n REQUESTS]" },
};

static const char help_tail[] =
	"  keytrans --help | --version\n"
	"\n"
	"SOCKET defaults to $KEYTRANS_SOCKET, else " KT_DEFAULT_SOCKET ".\n"
	"Files are raw binary; -i/-o default to stdin/stdout (\"-\" too). KEYBLOBFILE is a\n"
	"CryptoAPI PLAINTEXTKEYBLOB. ALG is a name (AES_128, CALG_RC4) or a number (0x660e).\n"
	"Secret outputs (unwrap -o, --key-out, copp-sign -o) replace only a missing file or\n"
	"a private one of the caller's; no output is written through a symbolic link.\n"
	"Exit status: 0 done, 1 refused or failed by the daemon, 2 usage error,\n"
	"3 daemon unreachable.\n";

static const char *synopsis_of(const char *cmd)
{
	for (size_t i = 0; cmd != NULL && i < sizeof(synopses) / sizeof(synopses[0]); i++)
		if (strcmp(synopses[i].cmd, cmd) == 0)
			return synopses[i].text;
	return NULL;
}

void cli_print_help(FILE *f)
{
	fputs("usage:\n", f);
	for (size_t i = 0; i < sizeof(synopses) / sizeof(synopses[0]); i++)
		fprintf(f, "  %s\n", synopses[i].text);
	fputs(help_tail, f);
}

void cli_print_command_help(FILE *f, const char *cmd)
{
	const char *s = synopsis_of(cmd);

	if (s == NULL)
		cli_print_help(f);
	else
		fprintf(f, "usage: %s\n", s);
}

static void json_error(const char *code, const char *msg)
{
	struct json j;

	json_begin(&j, stdout);
	json_str(&j, "error", code);
	json_str(&j, "message", msg);
	json_end(&j);
}

int cli_usage(const struct cli *cli, const char *fmt, ...)
{
	const char *s = synopsis_of(cli->cmd);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cli->json)
		json_error("USAGE", msg);
	fprintf(stderr, "keytrans: %s\n", msg);
	if (s != NULL)
		fprintf(stderr, "usage: %s\n", s);
	fputs("Try 'keytrans --help' for more.\n", stderr);
	return EXIT_USAGE;
}

static int exit_code(int status)
{
	switch (status) {
	case KT_ERR_CONNECT:
	case KT_ERR_IO:
	case KT_ERR_TIMEOUT:
		return EXIT_UNREACHABLE;
	case KT_ERR_ARG:
		return EXIT_USAGE;
	default:
		return EXIT_FAILED;
	}
}

int cli_fail(const struct cli *cli, int status, const char *msg)
{
	/* The library refuses bad arguments before sending: a usage error. */
	const char *code = status == KT_ERR_ARG ? "USAGE" : kt_status_name(status);

	if (msg == NULL || *msg == '\0')
		msg = kt_status_text(status);
	if (cli->json)
		json_error(code, msg);
	else
		fprintf(stderr, "keytrans: %s: %s\n", code, msg);
	return exit_code(status);
}

int cli_output_failed(const struct cli *cli, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cli->json)
		json_error("OUTPUT", msg);
	else
		fprintf(stderr, "keytrans: OUTPUT: %s\n", msg);
	return EXIT_FAILED;
}
