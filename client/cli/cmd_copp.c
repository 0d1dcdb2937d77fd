/*
 * keytrans copp-sign, copp-open, opm-sign, opm-open: the COPP session-start
 * signature and OPM's encrypted initialization parameters, which carry the
 * same values and take the same options.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define SIG_LEN 256

static void copp_print(const struct cli *cli, const struct kt_copp *r, int with_sig, FILE *f)
{
	struct json j;

	if (!cli->json) {
		if (!with_sig) {
			fputs("random: ", f);
			io_print_hex(f, r->random, sizeof(r->random));
			fputc('\n', f);
		}
		fputs("aes_key: ", f);
		io_print_hex(f, r->aes_key, sizeof(r->aes_key));
		fprintf(f, "\nstatus_seq: %" PRIu32 "\ncommand_seq: %" PRIu32 "\n", r->status_seq,
			r->command_seq);
		return;
	}
	json_begin(&j, stdout);
	if (with_sig)
		json_hex(&j, "signature", r->signature, sizeof(r->signature));
	json_hex(&j, "random", r->random, sizeof(r->random));
	json_hex(&j, "aes_key", r->aes_key, sizeof(r->aes_key));
	json_u64(&j, "status_seq", r->status_seq);
	json_u64(&j, "command_seq", r->command_seq);
	json_end(&j);
}

struct sign_opts {
	const char *to, *to_key, *random, *aes_key, *status_seq, *command_seq, *out;
};

static int sign_args(const struct cli *cli, const struct sign_opts *s, struct kt_copp_sign_args *a,
		     struct keyref *to_key)
{
	int st = EXIT_DONE;

	if ((s->to == NULL) == (s->to_key == NULL))
		return cli_usage(cli, "give exactly one of --to KEYFILE and --to-key NAME");
	if (s->random == NULL)
		return cli_usage(cli, "--random HEX is required");
	st = keyref_parse(cli, s->to_key, to_key);
	if (st == EXIT_DONE)
		st = io_hex_exact(cli, "--random", s->random, a->random, sizeof(a->random));
	if (st == EXIT_DONE && s->aes_key != NULL) {
		a->flags |= KT_COPP_AES_KEY;
		st = io_hex_exact(cli, "--aes-key", s->aes_key, a->aes_key, sizeof(a->aes_key));
	}
	if (st == EXIT_DONE && s->status_seq != NULL) {
		a->flags |= KT_COPP_STATUS_SEQ;
		st = io_u32(cli, "--status-seq", s->status_seq, &a->status_seq);
	}
	if (st == EXIT_DONE && s->command_seq != NULL) {
		a->flags |= KT_COPP_COMMAND_SEQ;
		st = io_u32(cli, "--command-seq", s->command_seq, &a->command_seq);
	}
	return st;
}

typedef int sign_fn(kt_conn *c, const struct kt_copp_sign_args *a, struct kt_copp *out);

static int sign(const struct cli *cli, sign_fn *fn, struct kt_copp_sign_args *a,
		struct keyref *to_key, struct out_file *o)
{
	struct kt_copp r = { 0 };
	kt_conn *c;
	int st = cli_connect(cli, &c);

	if (st != EXIT_DONE)
		return st;
	st = keyref_resolve(cli, c, to_key, &a->to_key);
	if (st != EXIT_DONE) {
		kt_conn_free(c);
		return st;
	}
	st = fn(c, a, &r);
	if (st != KT_OK)
		st = cli_fail(cli, st, kt_errmsg(c));
	else
		st = io_out_write(cli, o, r.signature, sizeof(r.signature));
	if (st == EXIT_DONE)
		copp_print(cli, &r, 1, io_summary(o));
	io_wipe(&r, sizeof(r));
	kt_conn_free(c);
	return st;
}

/*
 * --to KEYFILE: a driver's XML certificate chain becomes its leaf's key here
 * (the daemon reads only binary and PEM key formats); any other file goes to
 * the daemon as it is.
 */
static int recipient(const struct cli *cli, const char *path, const uint8_t *file, size_t len,
		     uint8_t blob[KT_COPP_KEY_BLOB_LEN], struct kt_copp_sign_args *a)
{
	char why[300], msg[600];
	int st;

	a->to_pub = file;
	a->to_pub_len = len;
	if (!kt_is_xml(file, len))
		return EXIT_DONE;
	st = kt_copp_cert_key(file, len, blob, why, sizeof(why));
	if (st != KT_OK) {
		snprintf(msg, sizeof(msg), "%s: %s", io_is_std(path) ? "stdin" : path, why);
		return cli_fail(cli, st, msg);
	}
	a->to_pub = blob;
	a->to_pub_len = KT_COPP_KEY_BLOB_LEN;
	return EXIT_DONE;
}

static int sign_command(struct cli *cli, int argc, char **argv, sign_fn *fn)
{
	struct sign_opts s = { 0 };
	const struct opt opts[] = {
		OPT_VALUE("--to", NULL, &s.to, "KEYFILE",
			  "the recipient: an RSA-2048 public key, certificate, CNG blob or COPP XML chain"),
		OPT_VALUE("--to-key", NULL, &s.to_key, "NAME",
			  "the recipient: the daemon's RSA-2048 key NAME (or a PKCS#11 URI)"),
		OPT_VALUE("--random", NULL, &s.random, "HEX",
			  "the driver's 128-bit random number, 32 hex digits (required)"),
		OPT_VALUE("--aes-key", NULL, &s.aes_key, "HEX",
			  "the session's AES-128 key, 32 hex digits (default: from the HSM)"),
		OPT_VALUE("--status-seq", NULL, &s.status_seq, "N",
			  "the starting status sequence number (default: from the HSM)"),
		OPT_VALUE("--command-seq", NULL, &s.command_seq, "N",
			  "the starting command sequence number (default: from the HSM)"),
		OPT_VALUE("--out", "-o", &s.out, "SIGFILE",
			  "where the signature goes, mode 0600 (default: stdout, not a terminal)"),
		OPT_END,
	};
	struct kt_copp_sign_args a = { 0 };
	struct out_file o = { .fd = -1 };
	struct keyref to_key;
	uint8_t *pub = NULL, blob[KT_COPP_KEY_BLOB_LEN];
	size_t len = 0;
	int st = args_parse(cli, argc, argv, opts, NULL, 0);

	if (st == EXIT_DONE)
		st = sign_args(cli, &s, &a, &to_key);
	/* Kept private: whoever may open signatures with the recipient key reads the AES key. */
	if (st == EXIT_DONE)
		st = io_out_open(cli, &o, s.out, 1, 1);
	if (st == EXIT_DONE && s.to != NULL)
		st = io_read(cli, s.to, &pub, &len);
	if (st == EXIT_DONE && s.to != NULL && len == 0)
		st = cli_usage(cli, "%s is empty", s.to);
	if (st == EXIT_DONE && s.to != NULL)
		st = recipient(cli, s.to, pub, len, blob, &a);
	if (st == EXIT_DONE)
		st = sign(cli, fn, &a, &to_key, &o);
	io_out_close(&o);
	io_wipe(&a, sizeof(a));
	free(pub);
	return st;
}

int cmd_copp_sign(struct cli *cli, int argc, char **argv)
{
	return sign_command(cli, argc, argv, kt_copp_sign);
}

int cmd_opm_sign(struct cli *cli, int argc, char **argv)
{
	return sign_command(cli, argc, argv, kt_opm_sign);
}

/* A sealed open: the handle instead of the AES key. */
static void sealed_print(const struct cli *cli, const struct kt_sealed *r)
{
	struct json j;

	if (!cli->json) {
		fputs("session: ", stdout);
		io_print_hex(stdout, r->session, sizeof(r->session));
		fputs("\nrandom: ", stdout);
		io_print_hex(stdout, r->random, sizeof(r->random));
		printf("\nstatus_seq: %" PRIu32 "\ncommand_seq: %" PRIu32 "\n", r->status_seq,
		       r->command_seq);
		return;
	}
	json_begin(&j, stdout);
	json_hex(&j, "session", r->session, sizeof(r->session));
	json_hex(&j, "random", r->random, sizeof(r->random));
	json_u64(&j, "status_seq", r->status_seq);
	json_u64(&j, "command_seq", r->command_seq);
	json_end(&j);
}

/* What an open asks for: COPP or OPM, sealed or not. */
struct open_req {
	const char *name;
	const uint8_t *sig, *expect;
	unsigned flags;         /* KT_STRICT, KT_SEAL */
	int opm;
};

static int open_call(const struct cli *cli, kt_conn *c, const struct open_req *q)
{
	struct kt_sealed sealed = { 0 };
	struct kt_copp r = { 0 };
	unsigned strict = q->flags & KT_STRICT;
	int st;

	if (q->flags & KT_SEAL)
		st = q->opm ? kt_opm_open_sealed(c, q->name, q->sig, q->expect, &sealed)
			    : kt_copp_open_sealed(c, q->name, q->sig, q->expect, strict, &sealed);
	else
		st = q->opm ? kt_opm_open(c, q->name, q->sig, q->expect, 0, &r)
			    : kt_copp_open_ex(c, q->name, q->sig, q->expect, strict, &r);
	if (st != KT_OK)
		st = cli_fail(cli, st, kt_errmsg(c));
	else if (q->flags & KT_SEAL)
		sealed_print(cli, &sealed);
	else
		copp_print(cli, &r, 0, stdout);
	io_wipe(&r, sizeof(r));
	return st;
}

static int open_sig(const struct cli *cli, struct keyref *ref, struct open_req *q)
{
	kt_conn *c;
	int st = cli_connect(cli, &c);

	if (st != EXIT_DONE)
		return st;
	st = keyref_resolve(cli, c, ref, &q->name);
	if (st == EXIT_DONE)
		st = open_call(cli, c, q);
	kt_conn_free(c);
	return st;
}

static int open_command(struct cli *cli, int argc, char **argv, int opm)
{
	const char *name, *in = NULL, *expect_hex = NULL;
	int strict = 0, seal = 0;
	struct opt opts[] = {
		OPT_VALUE("--in", "-i", &in, "SIGFILE", "the 256-byte signature (default: stdin)"),
		OPT_VALUE("--expect-random", NULL, &expect_hex, "HEX",
			  "the random number it must carry, else RANDOM_MISMATCH (always give it)"),
		OPT_FLAG("--seal", NULL, &seal,
			 "keep the AES key in the daemon; print a session handle instead"),
		OPT_FLAG("--strict", NULL, &strict,
			 "fail with UNWRAP_FAILED when it does not decrypt (no implicit rejection)"),
		OPT_END,
	};
	uint8_t expect[16], *sig = NULL;
	size_t len = 0;
	struct keyref ref;
	struct open_req q = { .opm = opm };
	int st;

	if (opm)        /* OPM's OAEP has no implicit rejection: no --strict */
		opts[3] = (struct opt)OPT_END;
	st = args_parse(cli, argc, argv, opts, &name, 1);
	if (st != EXIT_DONE)
		return st;
	if (name == NULL)
		return cli_usage(cli, "missing the key NAME");
	st = keyref_parse(cli, name, &ref);
	if (st == EXIT_DONE && expect_hex != NULL)
		st = io_hex_exact(cli, "--expect-random", expect_hex, expect, sizeof(expect));
	if (st == EXIT_DONE)
		st = io_read(cli, in, &sig, &len);
	if (st == EXIT_DONE && len != SIG_LEN)
		st = cli_usage(cli, "%s holds %zu bytes; %s is %d", io_is_std(in) ? "stdin" : in, len,
			       opm ? "an OPM parameter array" : "a COPP signature", SIG_LEN);
	q.sig = sig;
	q.expect = expect_hex != NULL ? expect : NULL;
	q.flags = (strict ? KT_STRICT : 0) | (seal ? KT_SEAL : 0);
	if (st == EXIT_DONE)
		st = open_sig(cli, &ref, &q);
	free(sig);
	return st;
}

int cmd_copp_open(struct cli *cli, int argc, char **argv)
{
	return open_command(cli, argc, argv, 0);
}

int cmd_opm_open(struct cli *cli, int argc, char **argv)
{
	return open_command(cli, argc, argv, 1);
}
