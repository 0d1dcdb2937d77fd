/* keytrans wrap: a session key (given or generated) in, SIMPLEBLOB out. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "alg.h"
#include "plaintextkeyblob.h"

struct wrap_opts {
	const char *to, *to_key, *alg, *key, *bits, *key_blob, *out, *key_out;
	int generate, oaep;
};

struct wrap_job {
	struct kt_wrap_args a;
	uint8_t key[KT_KEY_MAX];
	uint8_t *pub;
	size_t pub_len;
	struct out_file o, ko;
	struct keyref to_key;   /* --to-key, a name or a URI */
};

static int check_combination(const struct cli *cli, const struct wrap_opts *w)
{
	if ((w->to == NULL) == (w->to_key == NULL))
		return cli_usage(cli, "give exactly one of --to KEYFILE and --to-key NAME");
	if (w->key_blob != NULL && (w->alg || w->key || w->generate || w->bits || w->key_out))
		return cli_usage(cli, "--key-blob carries the algorithm and the key; "
				 "do not add --alg, --key, --generate, --bits or --key-out");
	if (w->key_blob != NULL)
		return EXIT_DONE;
	if (w->alg == NULL || (w->key == NULL) == !w->generate)
		return cli_usage(cli, "give --alg ALG with --key HEX or --generate, or --key-blob FILE");
	if (w->bits != NULL && !w->generate)
		return cli_usage(cli, "--bits goes with --generate");
	if (w->key_out != NULL && !w->generate)
		return cli_usage(cli, "--key-out goes with --generate");
	if (!cli->json && w->key_out != NULL && io_is_std(w->key_out) && io_is_std(w->out))
		return cli_usage(cli, "-o and --key-out cannot both be stdout");
	return EXIT_DONE;
}

static int key_from_blob(const struct cli *cli, const char *path, struct wrap_job *job)
{
	uint8_t *buf;
	size_t len;
	enum ptkb_error e;
	int st = io_read(cli, path, &buf, &len);

	if (st != EXIT_DONE)
		return st;
	e = ptkb_decode(buf, len, &job->a.alg_id, job->key, &job->a.key_len);
	io_wipe(buf, len);
	free(buf);
	if (e != PTKB_OK)
		return cli_usage(cli, "%s: %s", io_is_std(path) ? "stdin" : path, ptkb_strerror(e));
	job->a.key = job->key;
	return EXIT_DONE;
}

static int key_from_args(const struct cli *cli, const struct wrap_opts *w, struct wrap_job *job)
{
	const struct alg_info *alg = alg_by_name(w->alg);
	uint32_t bits = 0;
	int st = EXIT_DONE;

	if (alg == NULL)
		return cli_usage(cli, "unknown algorithm '%s'", w->alg);
	job->a.alg_id = alg->id;
	if (w->key != NULL) {
		st = io_hex_max(cli, "--key", w->key, job->key, sizeof(job->key), &job->a.key_len);
		job->a.key = job->key;
	} else if (w->bits != NULL) {
		st = io_u32(cli, "--bits", w->bits, &bits);
		if (st == EXIT_DONE && bits == 0)
			st = cli_usage(cli, "--bits must be more than 0");
		job->a.gen_bits = bits;
	}
	return st;
}

static int prepare(const struct cli *cli, const struct wrap_opts *w, struct wrap_job *job)
{
	int st = check_combination(cli, w);

	job->a.padding = w->oaep ? KT_PAD_OAEP : KT_PAD_PKCS1;
	if (st == EXIT_DONE)
		st = keyref_parse(cli, w->to_key, &job->to_key);
	if (st == EXIT_DONE)
		st = w->key_blob ? key_from_blob(cli, w->key_blob, job) : key_from_args(cli, w, job);
	if (st == EXIT_DONE)
		st = io_out_open(cli, &job->o, w->out, 1, 0);
	if (st == EXIT_DONE && w->key_out != NULL)
		st = io_out_open(cli, &job->ko, w->key_out, 1, 1);
	if (st == EXIT_DONE && w->to != NULL) {
		st = io_read(cli, w->to, &job->pub, &job->pub_len);
		job->a.to_pub = job->pub;
		job->a.to_pub_len = job->pub_len;
	}
	if (st == EXIT_DONE && w->to != NULL && job->pub_len == 0)
		st = cli_usage(cli, "%s is empty", w->to);
	return st;
}

/* show_key: a generated key not written to --key-out, whose only copy this is. */
static void wrap_json(const struct kt_wrapped *r, const char *alg, int show_key)
{
	struct json j;

	json_begin(&j, stdout);
	json_u64(&j, "alg_id", r->key.alg_id);
	json_str(&j, "alg", alg);
	json_hex(&j, "blob", r->blob, r->blob_len);
	if (show_key)
		json_hex(&j, "key", r->key.key, r->key.len);
	else if (r->generated)
		json_u64(&j, "key_len", r->key.len);
	json_end(&j);
}

static int save_key(const struct cli *cli, struct wrap_job *job, const struct kt_session_key *k)
{
	uint8_t blob[PLAINTEXTKEYBLOB_MAX];
	size_t n = ptkb_encode(k->alg_id, k->key, k->len, blob, sizeof(blob));
	int st;

	if (n == 0)
		return cli_fail(cli, KT_ERR_PROTOCOL, "the daemon generated an unusable key");
	st = io_out_write(cli, &job->ko, blob, n);
	io_wipe(blob, sizeof(blob));
	return st;
}

static int emit(const struct cli *cli, struct wrap_job *job, const struct kt_wrapped *r)
{
	const struct alg_info *alg = alg_by_id(r->key.alg_id);
	const char *name = alg != NULL ? alg->name : "unknown";
	FILE *f = job->ko.is_stdout ? stderr : io_summary(&job->o);
	/* With --key-out (its name set by io_out_open) the key goes there only. */
	int show_key = r->generated && job->ko.name == NULL;
	int st = io_out_write(cli, &job->o, r->blob, r->blob_len);

	if (st == EXIT_DONE && r->generated)
		st = save_key(cli, job, &r->key);
	if (st != EXIT_DONE)
		return st;
	if (cli->json) {
		wrap_json(r, name, show_key);
	} else if (show_key) {
		fprintf(f, "alg: %s\nkey: ", name);
		io_print_hex(f, r->key.key, r->key.len);
		fputc('\n', f);
	} else if (r->generated) {
		fprintf(f, "alg: %s\nkey_len: %zu\n", name, r->key.len);
	}
	return EXIT_DONE;
}

static int wrap(const struct cli *cli, struct wrap_job *job)
{
	struct kt_wrapped r = { 0 };
	kt_conn *c;
	int st = cli_connect(cli, &c);

	if (st != EXIT_DONE)
		return st;
	st = keyref_resolve(cli, c, &job->to_key, &job->a.to_key);
	if (st != EXIT_DONE) {
		kt_conn_free(c);
		return st;
	}
	st = kt_wrap(c, &job->a, &r);
	if (st == KT_OK)
		st = emit(cli, job, &r);
	else
		st = cli_fail(cli, st, kt_errmsg(c));
	io_wipe(&r, sizeof(r));
	kt_conn_free(c);
	return st;
}

int cmd_wrap(struct cli *cli, int argc, char **argv)
{
	struct wrap_opts w = { 0 };
	const struct opt opts[] = {
		OPT_VALUE("--to", NULL, &w.to, "KEYFILE",
			  "the recipient: an RSA public key or certificate file (blob, PEM, DER)"),
		OPT_VALUE("--to-key", NULL, &w.to_key, "NAME",
			  "the recipient: the daemon's key NAME (or a PKCS#11 URI)"),
		OPT_VALUE("--alg", NULL, &w.alg, "ALG",
			  "the session key's algorithm: AES_128, aes-256, CALG_RC4, 0x6610, ..."),
		OPT_VALUE("--key", NULL, &w.key, "HEX", "the session key to wrap, in hexadecimal"),
		OPT_FLAG("--generate", NULL, &w.generate,
			 "draw a new session key from the HSM instead of --key"),
		OPT_VALUE("--bits", NULL, &w.bits, "N",
			  "with --generate, RC2 and RC4: the key's length (40 to 128, default 128)"),
		OPT_VALUE("--key-blob", NULL, &w.key_blob, "KEYBLOBFILE",
			  "the algorithm and key from a PLAINTEXTKEYBLOB (instead of --alg)"),
		OPT_VALUE("--key-out", NULL, &w.key_out, "KEYBLOBFILE",
			  "with --generate: write the new key there (0600), not to stdout or JSON"),
		OPT_FLAG("--oaep", NULL, &w.oaep, "pad with OAEP (SHA-1) instead of PKCS#1 v1.5"),
		OPT_VALUE("--out", "-o", &w.out, "BLOBFILE",
			  "where the SIMPLEBLOB goes (default: stdout, not a terminal)"),
		OPT_END,
	};
	struct wrap_job job = { .o = { .fd = -1 }, .ko = { .fd = -1 } };
	int st = args_parse(cli, argc, argv, opts, NULL, 0);

	if (st == EXIT_DONE)
		st = prepare(cli, &w, &job);
	if (st == EXIT_DONE)
		st = wrap(cli, &job);
	io_out_close(&job.o);
	io_out_close(&job.ko);
	io_wipe(job.key, sizeof(job.key));
	free(job.pub);
	return st;
}
