/* keytrans pubkey: a key's public half as PUBLICKEYBLOB, PEM, DER or CNG BCRYPT_RSAPUBLIC_BLOB. */
#include "cli.h"

#include <string.h>

static const char *const format_names[] = { [KT_FMT_BLOB] = "blob", [KT_FMT_PEM] = "pem",
					    [KT_FMT_DER] = "der", [KT_FMT_CNG] = "cng", NULL };

static int parse_format(const char *s)
{
	return s == NULL ? KT_FMT_BLOB : args_choice(s, format_names);
}

static void pubkey_json(const char *name, int format, const uint8_t *p, size_t n)
{
	struct json j;

	json_begin(&j, stdout);
	json_str(&j, "name", name);
	json_str(&j, "format", format_names[format]);
	if (format == KT_FMT_PEM)
		json_strn(&j, "data", (const char *)p, n);
	else
		json_hex(&j, "data", p, n);
	json_end(&j);
}

static int fetch(const struct cli *cli, struct keyref *ref, int format, struct out_file *o)
{
	uint8_t *p = NULL;
	size_t n;
	kt_conn *c;
	const char *name;
	int st = cli_connect(cli, &c);

	if (st != EXIT_DONE)
		return st;
	st = keyref_resolve(cli, c, ref, &name);
	if (st != EXIT_DONE) {
		kt_conn_free(c);
		return st;
	}
	st = kt_pubkey(c, name, format, &p, &n);
	if (st != KT_OK) {
		st = cli_fail(cli, st, kt_errmsg(c));
	} else {
		st = io_out_write(cli, o, p, n);
		if (st == EXIT_DONE && cli->json)
			pubkey_json(name, format, p, n);
	}
	kt_free(p);
	kt_conn_free(c);
	return st;
}

int cmd_pubkey(struct cli *cli, int argc, char **argv)
{
	const char *name, *fmt = NULL, *out = NULL;
	const struct opt opts[] = {
		OPT_VALUE("--format", NULL, &fmt, "FORMAT",
			  "blob (PUBLICKEYBLOB, default), pem or der (SubjectPublicKeyInfo), "
			  "cng (BCRYPT_RSAPUBLIC_BLOB)"),
		OPT_VALUE("--out", "-o", &out, "FILE",
			  "where it goes (default: stdout; blob, der and cng not to a terminal)"),
		OPT_END,
	};
	struct out_file o;
	struct keyref ref;
	int format, st = args_parse(cli, argc, argv, opts, &name, 1);

	if (st != EXIT_DONE)
		return st;
	if (name == NULL)
		return cli_usage(cli, "missing the key NAME");
	format = parse_format(fmt);
	if (format < 0)
		return cli_usage(cli, "unknown format '%s' (blob, pem, der or cng)", fmt);
	st = keyref_parse(cli, name, &ref);
	if (st != EXIT_DONE)
		return st;
	st = io_out_open(cli, &o, out, format != KT_FMT_PEM, 0);
	if (st == EXIT_DONE)
		st = fetch(cli, &ref, format, &o);
	io_out_close(&o);
	return st;
}
