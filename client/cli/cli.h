/* keytrans, the command-line client: shared declarations. */
#ifndef KT_CLI_H
#define KT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "keytrans.h"
#include "p11uri.h"

#define CLI_INPUT_MAX (64 * 1024)

enum cli_exit {
	EXIT_DONE = 0,
	EXIT_FAILED = 1,        /* refused or failed by the daemon */
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,   /* ERR_CONNECT, ERR_IO, ERR_TIMEOUT */
	EXIT_HELP = -1          /* internal: help was printed, exit 0 */
};

struct cli {
	const char *socket;     /* NULL: the library's default */
	int json;
	int help, version;      /* --help, --version seen */
	const char *cmd;        /* the command, for usage hints */
};

/* "s" for a count other than one: "1 key", "2 keys". */
static inline const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/*
 * report.c: every message to the user goes through here. With --json, one
 * object on stdout, {"error": NAME, "code": N or null, "message": TEXT}, and
 * nothing on stderr; else one line on stderr (a usage error adds the usage).
 */
int cli_usage(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failed library call: the status name and the connection's message. */
int cli_fail(const struct cli *cli, int status, const char *msg);
/* An output file was refused, or writing a result failed after the daemon did its part. */
int cli_output_failed(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* An input file could not be read: exit 1, "keytrans: cannot read FILE: why". */
int cli_input_failed(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* args.c: a command's options and positional arguments, and the global options. */
struct opt {
	const char *name;       /* "--out" */
	const char *alias;      /* "-o", or NULL */
	const char **value;     /* option with a value, or NULL */
	int *flag;              /* option without a value, or NULL */
	const char *arg;        /* the value's name in --help ("FILE") */
	const char *help;       /* its line in --help */
};
/* One table per command, read by both the parser and --help. */
#define OPT_VALUE(n, a, v, meta, text) \
	{ .name = (n), .alias = (a), .value = (v), .arg = (meta), .help = (text) }
#define OPT_FLAG(n, a, f, text) { .name = (n), .alias = (a), .flag = (f), .help = (text) }
#define OPT_END { .name = NULL }
#define GLOBAL_OPTS 5           /* entries of args_globals, OPT_END included */
/* The options every command takes, before or after its name, set in cli. */
void args_globals(struct cli *cli, struct opt table[GLOBAL_OPTS]);
/* The global options before the command; *i ends at the command. EXIT_HELP: all said. */
int args_leading(struct cli *cli, int argc, char **argv, int *i);
/* EXIT_DONE, EXIT_HELP, or EXIT_USAGE after reporting. */
int args_parse(struct cli *cli, int argc, char **argv, const struct opt *opts,
	       const char **pos, int npos);
/* An enumeration's value, in any case: its index in names (NULL-ended), or -1. */
int args_choice(const char *text, const char *const *names);

/* help.c: --help, from the command table and each command's option table. */
void help_print(FILE *f, const struct opt *cmd_opts, const char *cmd);
/* The synopsis of cmd, or NULL. */
const char *help_synopsis(const char *cmd);

/* main.c, connect.c */
/* The command table, for help.c: name i, or NULL past the end. */
const char *cli_command_name(size_t i);
/* Connects to the daemon; EXIT_DONE, or the exit code after reporting. */
int cli_connect(const struct cli *cli, kt_conn **c);

/* keyref.c: a key given by name or by PKCS#11 URI. */
struct keyref {
	const char *arg;        /* as given; NULL when not given */
	int is_uri;
	struct p11uri uri;
	char name[65];          /* the name a URI resolved to */
};
/* Before connecting: EXIT_DONE, or EXIT_USAGE after reporting a bad URI. */
int keyref_parse(const struct cli *cli, const char *arg, struct keyref *r);
/*
 * After connecting: *name is the argument, or the name of the one key of the
 * daemon's listing the URI matches (else reported: UNKNOWN_KEY, exit 1).
 */
int keyref_resolve(const struct cli *cli, kt_conn *c, struct keyref *r, const char **name);

/* io.c: files, hex and number arguments. */
struct out_file {
	const char *name;       /* for messages */
	int fd;
	int is_stdout;
	int created;            /* removed again if nothing gets written */
	char *tmp;              /* a secret's own new file, renamed over name once written */
};
int io_is_std(const char *path);
/*
 * Reads a file or stdin (NULL or "-"), at most CLI_INPUT_MAX bytes; free()
 * *buf. One that cannot be read (or is too large) is reported: INPUT, exit 1.
 */
int io_read(const struct cli *cli, const char *path, uint8_t **buf, size_t *len);
/*
 * Opens an output before the daemon is asked anything, so a bad path fails
 * early. NULL or "-" is stdout, except that with --json and no path nothing
 * is written (the result is in the JSON). binary: refuse a terminal.
 * A symbolic link is never followed. secret: a new file of mode 0600,
 * renamed over the target once written, and only where nothing or a private
 * regular file of the caller's stands (else refused: OUTPUT, exit 1). A file
 * that cannot be created is OUTPUT, exit 1, too.
 */
int io_out_open(const struct cli *cli, struct out_file *o, const char *path, int binary,
		int secret);
/* Writes the whole result, once. */
int io_out_write(const struct cli *cli, struct out_file *o, const void *p, size_t n);
/* Closes; a file created by io_out_open and never written is removed. */
void io_out_close(struct out_file *o);
/* Where the human summary goes: stdout when the binary result did not. */
FILE *io_summary(const struct out_file *o);
int io_hex_exact(const struct cli *cli, const char *opt, const char *text, uint8_t *out, size_t n);
int io_hex_max(const struct cli *cli, const char *opt, const char *text, uint8_t *out, size_t cap,
	       size_t *len);
int io_u32(const struct cli *cli, const char *opt, const char *text, uint32_t *v);
void io_print_hex(FILE *f, const uint8_t *p, size_t n);
void io_wipe(void *p, size_t n);

/* json.c: one object, written as it goes. */
#define JSON_DEPTH 4
struct json {
	FILE *f;
	int depth;
	int n[JSON_DEPTH];
};
void json_begin(struct json *j, FILE *f);
void json_str(struct json *j, const char *key, const char *s);
void json_strn(struct json *j, const char *key, const char *s, size_t n);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_null(struct json *j, const char *key);
void json_bool(struct json *j, const char *key, int v);
void json_f64(struct json *j, const char *key, double v);     /* one decimal */
void json_hex(struct json *j, const char *key, const uint8_t *p, size_t n);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
/* Closes the top object; 0, or -1 when stdout could not be written. */
int json_end(struct json *j);

/* cmd_info.c: the HSMs of an info or stats answer, as text lines or a "hsms" array. */
void hsms_text(const struct kt_hsm *hsms, size_t n);
void hsms_json(struct json *j, const struct kt_hsm *hsms, size_t n);

/* prometheus.c: the stats in the Prometheus text exposition format (version 0.0.4). */
void prometheus_write(FILE *f, const struct kt_stats *s, const struct kt_recipient_stats *r,
		      const struct kt_session_stats *sess);
/* cmd_stats.c: one stats answer with the recipient cache's counters, and the sessions' (a second). */
int stats_fetch(kt_conn *c, struct kt_stats *s, struct kt_recipient_stats *r,
		struct kt_session_stats *sess);
/* http_metrics.c: one HTTP scrape of the stats, the request on stdin, the answer on stdout. */
int http_metrics(const struct cli *cli);

/* The commands: argc/argv are the arguments after the command name. */
int cmd_info(struct cli *cli, int argc, char **argv);
int cmd_keys(struct cli *cli, int argc, char **argv);
int cmd_pubkey(struct cli *cli, int argc, char **argv);
int cmd_unwrap(struct cli *cli, int argc, char **argv);
int cmd_wrap(struct cli *cli, int argc, char **argv);
int cmd_copp_sign(struct cli *cli, int argc, char **argv);
int cmd_copp_open(struct cli *cli, int argc, char **argv);
int cmd_opm_sign(struct cli *cli, int argc, char **argv);
int cmd_opm_open(struct cli *cli, int argc, char **argv);
int cmd_session_mac(struct cli *cli, int argc, char **argv);
int cmd_session_verify(struct cli *cli, int argc, char **argv);
int cmd_session_close(struct cli *cli, int argc, char **argv);
int cmd_bench(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_keygen(struct cli *cli, int argc, char **argv);
int cmd_import(struct cli *cli, int argc, char **argv);

#endif
