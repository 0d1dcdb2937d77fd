/* keytrans unwrap: SIMPLEBLOB in, the session key out as a PLAINTEXTKEYBLOB. */
#include "cli.h"

#include <stdlib.h>

#include "alg.h"
#include "plaintextkeyblob.h"

static void unwrap_json(const struct kt_session_key *k, const char *alg)
{
	struct json j;

	json_begin(&j, stdout);
	json_u64(&j, "alg_id", k->alg_id);
	json_str(&j, "alg", alg);
	json_hex(&j, "key", k->key, k->len);
	json_end(&j);
}

static int emit(const struct cli *cli, const struct kt_session_key *k, struct out_file *o)
{
	const struct alg_info *a = alg_by_id(k->alg_id);   /* the library checked it */
	uint8_t blob[PLAINTEXTKEYBLOB_MAX];
	size_t n = ptkb_encode(k->alg_id, k->key, k->len, blob, sizeof(blob));
	int st;

	if (a == NULL || n == 0)
		return cli_fail(cli, KT_ERR_PROTOCOL, "the daemon returned an unusable session key");
	st = io_out_write(cli, o, blob, n);
	io_wipe(blob, sizeof(blob));
	if (st != EXIT_DONE)
		return st;
	if (cli->json)
		unwrap_json(k, a->name);
	else
		fprintf(io_summary(o), "alg: %s\nkey_len: %zu\n", a->name, k->len);
	return EXIT_DONE;
}

static int unwrap(const struct cli *cli, struct keyref *ref, const uint8_t *blob, size_t len,
		  int padding, struct out_file *o)
{
	struct kt_session_key k = { 0 };
	const char *name;
	kt_conn *c;
	int st = cli_connect(cli, &c);

	if (st != EXIT_DONE)
		return st;
	st = keyref_resolve(cli, c, ref, &name);
	if (st != EXIT_DONE) {
		kt_conn_free(c);
		return st;
	}
	st = kt_unwrap(c, name, blob, len, padding, &k);
	if (st == KT_OK)
		st = emit(cli, &k, o);
	else
		st = cli_fail(cli, st, kt_errmsg(c));
	io_wipe(&k, sizeof(k));
	kt_conn_free(c);
	return st;
}

int cmd_unwrap(struct cli *cli, int argc, char **argv)
{
	const char *name, *in = NULL, *out = NULL;
	int oaep = 0, strict = 0;
	const struct opt opts[] = {
		OPT_VALUE("--in", "-i", &in, "BLOBFILE", "the SIMPLEBLOB to decrypt (default: stdin)"),
		OPT_VALUE("--out", "-o", &out, "KEYBLOBFILE",
			  "where the PLAINTEXTKEYBLOB goes, mode 0600 (default: stdout, not a terminal)"),
		OPT_FLAG("--oaep", NULL, &oaep, "the blob has OAEP padding (SHA-1), not PKCS#1 v1.5"),
		OPT_FLAG("--strict", NULL, &strict,
			 "fail with UNWRAP_FAILED instead of giving the implicit-rejection key"),
		OPT_END,
	};
	struct out_file o;
	uint8_t *blob = NULL;
	size_t len = 0;
	struct keyref ref;
	int st = args_parse(cli, argc, argv, opts, &name, 1);

	if (st != EXIT_DONE)
		return st;
	if (name == NULL)
		return cli_usage(cli, "missing the key NAME");
	st = keyref_parse(cli, name, &ref);
	if (st != EXIT_DONE)
		return st;
	st = io_out_open(cli, &o, out, 1, 1);
	if (st == EXIT_DONE)
		st = io_read(cli, in, &blob, &len);
	if (st == EXIT_DONE)
		st = unwrap(cli, &ref, blob, len,
			    (oaep ? KT_PAD_OAEP : KT_PAD_PKCS1) | (strict ? KT_STRICT : 0), &o);
	io_out_close(&o);
	free(blob);
	return st;
}
