/*
 * keytrans keygen, keytrans import: a new RSA key in the daemon's HSM (for
 * [daemon] admin users), and the [key NAME] section that serves it.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* Generating a 4096-bit key inside an HSM can take a while. */
#define KEYGEN_TIMEOUT_MS (10 * 60 * 1000)
#define PEM_LINE_BYTES 48       /* 64 base64 characters */

static void print_pem(FILE *f, const uint8_t *der, size_t n)
{
	unsigned char line[PEM_LINE_BYTES / 3 * 4 + 1];

	fputs("-----BEGIN PUBLIC KEY-----\n", f);
	for (size_t off = 0; off < n; off += PEM_LINE_BYTES) {
		size_t chunk = n - off < PEM_LINE_BYTES ? n - off : PEM_LINE_BYTES;

		EVP_EncodeBlock(line, der + off, (int)chunk);
		fprintf(f, "%s\n", line);
	}
	fputs("-----END PUBLIC KEY-----\n", f);
}

/* The configuration section that serves the key. */
static void config_section(char *out, size_t cap, const struct kt_new_key *k)
{
	size_t used = (size_t)snprintf(out, cap, "[key %s]\nlabel = %s\nid = ", k->name, k->label);

	for (size_t i = 0; i < k->id_len && used + 3 < cap; i++)
		used += (size_t)snprintf(out + used, cap - used, "%02x", k->id[i]);
	snprintf(out + used, cap - used, "\n");
}

static void new_key_print(const struct cli *cli, const char *what, const struct kt_new_key *k)
{
	char section[512];
	struct json j;

	config_section(section, sizeof(section), k);
	if (cli->json) {
		json_begin(&j, stdout);
		json_str(&j, "name", k->name);
		json_str(&j, "label", k->label);
		json_hex(&j, "id", k->id, k->id_len);
		json_u64(&j, "bits", k->bits);
		json_u64(&j, "exponent", k->exponent);
		json_hex(&j, "public_key", k->public_key, k->public_key_len);
		json_str(&j, "config", section);
		json_end(&j);
		return;
	}
	printf("%s RSA-%" PRIu32 " key \"%s\" (exponent %" PRIu64 ") in the HSM.\n"
	       "The daemon serves it once this section is in its configuration\n"
	       "and it has reloaded it (systemctl reload keytransd, or SIGHUP):\n\n"
	       "%s\n", what, k->bits, k->name, k->exponent, section);
	print_pem(stdout, k->public_key, k->public_key_len);
}

static int keygen(const struct cli *cli, const char *name, unsigned bits)
{
	struct kt_new_key k;
	kt_conn *c;
	int st = cli_connect(cli, &c);

	if (st != EXIT_DONE)
		return st;
	kt_set_timeout(c, KEYGEN_TIMEOUT_MS);
	st = kt_keygen(c, name, bits, 0, &k);
	if (st == KT_OK)
		new_key_print(cli, "Generated", &k);
	else
		st = cli_fail(cli, st, kt_errmsg(c));
	kt_conn_free(c);
	return st;
}

int cmd_keygen(struct cli *cli, int argc, char **argv)
{
	const char *name, *bits_text = NULL;
	const struct opt opts[] = {
		OPT_VALUE("--bits", NULL, &bits_text, "N",
			  "the modulus length: 2048 (default), 3072 or 4096"),
		OPT_END,
	};
	uint32_t bits = 2048;
	int st = args_parse(cli, argc, argv, opts, &name, 1);

	if (st != EXIT_DONE)
		return st;
	if (name == NULL)
		return cli_usage(cli, "missing the key NAME");
	if (bits_text != NULL && io_u32(cli, "--bits", bits_text, &bits) != EXIT_DONE)
		return EXIT_USAGE;
	return keygen(cli, name, bits);
}

/* For the user's benefit only: the daemon detects the format itself. */
static const char *key_format(const uint8_t *p, size_t n)
{
	if (n > 0 && p[0] == 0x07)
		return "PRIVATEKEYBLOB";
	if (n > 0 && p[0] == 0x30)
		return "DER";
	if (n >= 4 && memcmp(p, "RSA2", 4) == 0)
		return "BCRYPT_RSAPRIVATE_BLOB";
	if (n >= 4 && memcmp(p, "RSA3", 4) == 0)
		return "BCRYPT_RSAFULLPRIVATE_BLOB";
	return "PEM";
}

int cmd_import(struct cli *cli, int argc, char **argv)
{
	const char *pos[2];
	const struct opt opts[] = { OPT_END };
	struct kt_new_key k;
	char what[64];
	uint8_t *buf = NULL;
	size_t len = 0;
	kt_conn *c = NULL;
	int st = args_parse(cli, argc, argv, opts, pos, 2);

	if (st != EXIT_DONE)
		return st;
	if (pos[0] == NULL || pos[1] == NULL)
		return cli_usage(cli, "import needs a key NAME and a key FILE");
	st = io_read(cli, pos[1], &buf, &len);
	if (st == EXIT_DONE)
		st = cli_connect(cli, &c);
	if (st == EXIT_DONE) {
		st = kt_import(c, pos[0], buf, len, &k);
		if (st == KT_OK) {
			snprintf(what, sizeof(what), "Imported (%s)", key_format(buf, len));
			new_key_print(cli, what, &k);
		} else {
			st = cli_fail(cli, st, kt_errmsg(c));
		}
	}
	io_wipe(buf, len);
	free(buf);
	kt_conn_free(c);
	return st;
}
