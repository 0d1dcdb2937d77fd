/*
 * Errors: with --json one object on stdout and nothing on stderr, else one
 * line on stderr (a usage error adds the command's usage).
 */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

/* {"error": NAME, "code": the status number, or null for the CLI's own errors, "message": TEXT} */
static void json_error(const char *name, const int *status, const char *msg)
{
	struct json j;

	json_begin(&j, stdout);
	json_str(&j, "error", name);
	if (status != NULL)
		json_i64(&j, "code", *status);
	else
		json_null(&j, "code");
	json_str(&j, "message", msg);
	json_end(&j);
}

int cli_usage(const struct cli *cli, const char *fmt, ...)
{
	const char *s = help_synopsis(cli->cmd);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cli->json) {
		json_error("USAGE", NULL, msg);
		return EXIT_USAGE;
	}
	fprintf(stderr, "keytrans: %s\n", msg);
	if (s != NULL)
		fprintf(stderr, "usage: %s\n", s);
	if (cli->cmd != NULL)
		fprintf(stderr, "Try 'keytrans %s --help' for more.\n", cli->cmd);
	else
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

/* A message that already starts with "NAME: " (a daemon's or a caller's) is not given it twice. */
static const char *without_name(const char *msg, const char *name)
{
	size_t n = strlen(name);

	return strncmp(msg, name, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
}

int cli_fail(const struct cli *cli, int status, const char *msg)
{
	/* The library refuses bad arguments before sending: a usage error. */
	const char *name = status == KT_ERR_ARG ? "USAGE" : kt_status_name(status);

	if (msg == NULL || *msg == '\0')
		msg = kt_status_text(status);
	msg = without_name(msg, name);
	if (cli->json)
		json_error(name, status == KT_ERR_ARG ? NULL : &status, msg);
	else
		fprintf(stderr, "keytrans: %s: %s\n", name, msg);
	return exit_code(status);
}

/* The CLI's own failures (files): JSON error NAME, or one line, its name shown when named. */
static int local_failed(const struct cli *cli, const char *name, int named, const char *fmt,
			va_list ap) __attribute__((format(printf, 4, 0)));

static int local_failed(const struct cli *cli, const char *name, int named, const char *fmt,
			va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (cli->json)
		json_error(name, NULL, msg);
	else if (named)
		fprintf(stderr, "keytrans: %s: %s\n", name, msg);
	else
		fprintf(stderr, "keytrans: %s\n", msg);
	return EXIT_FAILED;
}

int cli_output_failed(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = local_failed(cli, "OUTPUT", 1, fmt, ap);
	va_end(ap);
	return rc;
}

int cli_input_failed(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = local_failed(cli, "INPUT", 0, fmt, ap);
	va_end(ap);
	return rc;
}
