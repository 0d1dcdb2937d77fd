/*
 * keytrans session-mac, session-verify, session-close: the work of a sealed
 * session (copp-open / opm-open --seal), whose AES key stays in the daemon.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* A command's common inputs: the handle and, for mac and verify, the data. */
struct session_in {
	uint8_t handle[KT_SESSION_LEN];
	uint8_t *data;
	size_t len;
};

static int session_parse(const struct cli *cli, const char *handle, const char *in, int with_data,
			 struct session_in *s)
{
	int st;

	if (handle == NULL)
		return cli_usage(cli, "missing the session HANDLE");
	st = io_hex_exact(cli, "HANDLE", handle, s->handle, sizeof(s->handle));
	if (st != EXIT_DONE || !with_data)
		return st;
	st = io_read(cli, in, &s->data, &s->len);
	if (st == EXIT_DONE && s->len > KT_SESSION_DATA_MAX)
		st = cli_usage(cli, "%s holds %zu bytes; at most %d are signed or checked",
			       io_is_std(in) ? "stdin" : in, s->len, KT_SESSION_DATA_MAX);
	return st;
}

typedef int session_fn(const struct cli *cli, kt_conn *c, const struct session_in *s,
		       const void *arg);

/* Connects, runs fn, reports a failure. */
static int session_run(const struct cli *cli, session_fn *fn, const struct session_in *s,
		       const void *arg)
{
	kt_conn *c;
	int st = cli_connect(cli, &c);

	if (st != EXIT_DONE)
		return st;
	st = fn(cli, c, s, arg);
	if (st != KT_OK)
		st = cli_fail(cli, st, kt_errmsg(c));
	kt_conn_free(c);
	return st;
}

static int do_mac(const struct cli *cli, kt_conn *c, const struct session_in *s, const void *arg)
{
	uint8_t omac[KT_OMAC_LEN];
	struct json j;
	int st = kt_session_mac(c, s->handle, s->data, s->len, omac);

	(void)arg;
	if (st != KT_OK)
		return st;
	if (!cli->json) {
		fputs("omac: ", stdout);
		io_print_hex(stdout, omac, sizeof(omac));
		fputc('\n', stdout);
		return KT_OK;
	}
	json_begin(&j, stdout);
	json_hex(&j, "omac", omac, sizeof(omac));
	json_end(&j);
	return KT_OK;
}

/* What session-verify checks besides the data. */
struct verify_arg {
	const uint8_t *omac;
	int kind;
};

static int do_verify(const struct cli *cli, kt_conn *c, const struct session_in *s,
		     const void *arg)
{
	const struct verify_arg *v = arg;
	struct kt_session_seq next;
	struct json j;
	int st = kt_session_verify(c, s->handle, s->data, s->len, v->omac, v->kind, &next);

	if (st != KT_OK)
		return st;
	if (!cli->json) {
		printf("ok\nnext_status_seq: %" PRIu32 "\nnext_command_seq: %" PRIu32 "\n",
		       next.next_status_seq, next.next_command_seq);
		return KT_OK;
	}
	json_begin(&j, stdout);
	json_bool(&j, "ok", 1);
	json_u64(&j, "next_status_seq", next.next_status_seq);
	json_u64(&j, "next_command_seq", next.next_command_seq);
	json_end(&j);
	return KT_OK;
}

static int do_close(const struct cli *cli, kt_conn *c, const struct session_in *s,
		    const void *arg)
{
	struct json j;
	int st = kt_session_close(c, s->handle);

	(void)arg;
	if (st != KT_OK || !cli->json)
		return st;
	json_begin(&j, stdout);
	json_bool(&j, "closed", 1);
	json_end(&j);
	return KT_OK;
}

int cmd_session_mac(struct cli *cli, int argc, char **argv)
{
	const char *handle, *in = NULL;
	const struct opt opts[] = {
		OPT_VALUE("--in", "-i", &in, "DATAFILE",
			  "the bytes to sign, at most 4096 (default: stdin)"),
		OPT_END,
	};
	struct session_in s = { .data = NULL };
	int st = args_parse(cli, argc, argv, opts, &handle, 1);

	if (st == EXIT_DONE)
		st = session_parse(cli, handle, in, 1, &s);
	if (st == EXIT_DONE)
		st = session_run(cli, do_mac, &s, NULL);
	free(s.data);
	return st;
}

int cmd_session_verify(struct cli *cli, int argc, char **argv)
{
	static const char *const kinds[] = { "none", "status", "command", NULL };
	const char *handle, *in = NULL, *omac_hex = NULL, *kind = NULL;
	const struct opt opts[] = {
		OPT_VALUE("--in", "-i", &in, "DATAFILE",
			  "the bytes the OMAC covers, at most 4096 (default: stdin)"),
		OPT_VALUE("--omac", NULL, &omac_hex, "HEX",
			  "their OMAC, 32 hex digits (not for a COPP status request)"),
		OPT_VALUE("--kind", NULL, &kind, "KIND",
			  "status or command: check and advance its sequence number too"),
		OPT_END,
	};
	struct session_in s = { .data = NULL };
	uint8_t omac[KT_OMAC_LEN];
	struct verify_arg v = { .kind = KT_KIND_NONE };
	int st = args_parse(cli, argc, argv, opts, &handle, 1);

	if (st == EXIT_DONE && kind != NULL && (v.kind = args_choice(kind, kinds)) < 0)
		st = cli_usage(cli, "--kind must be status or command");
	if (st == EXIT_DONE && omac_hex != NULL) {
		st = io_hex_exact(cli, "--omac", omac_hex, omac, sizeof(omac));
		v.omac = omac;
	}
	if (st == EXIT_DONE)
		st = session_parse(cli, handle, in, 1, &s);
	if (st == EXIT_DONE)
		st = session_run(cli, do_verify, &s, &v);
	free(s.data);
	return st;
}

int cmd_session_close(struct cli *cli, int argc, char **argv)
{
	const char *handle;
	const struct opt opts[] = { OPT_END };
	struct session_in s = { .data = NULL };
	int st = args_parse(cli, argc, argv, opts, &handle, 1);

	if (st == EXIT_DONE)
		st = session_parse(cli, handle, NULL, 0, &s);
	if (st == EXIT_DONE)
		st = session_run(cli, do_close, &s, NULL);
	return st;
}
