/* keytrans info, keytrans keys: what the daemon serves. */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

static const struct opt no_opts[] = { OPT_END };

void hsms_text(const struct kt_hsm *hsms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct kt_hsm *h = &hsms[i];

		printf("hsm %s: token %s, %s, %" PRIu32 " in flight, %" PRIu64 " fault%s%s%s\n",
		       h->name, h->token_label, h->state, h->in_flight, h->faults, plural(h->faults),
		       h->last_error[0] ? ", last error: " : "", h->last_error);
	}
}

void hsms_json(struct json *j, const struct kt_hsm *hsms, size_t n)
{
	json_array_begin(j, "hsms");
	for (size_t i = 0; i < n; i++) {
		const struct kt_hsm *h = &hsms[i];

		json_object_begin(j, NULL);
		json_str(j, "name", h->name);
		json_str(j, "token_label", h->token_label);
		json_str(j, "state", h->state);
		json_u64(j, "in_flight", h->in_flight);
		json_u64(j, "faults", h->faults);
		if (h->last_error[0] != '\0')
			json_str(j, "last_error", h->last_error);
		json_object_end(j);
	}
	json_array_end(j);
}

static void info_print(const struct cli *cli, const struct kt_info *in)
{
	struct json j;

	if (!cli->json) {
		printf("version: %s\ntoken_label: %s\nkey_count: %" PRIu32 "\n"
		       "worker_count: %" PRIu32 "\nuptime_s: %" PRIu64 "\n",
		       in->version, in->token_label, in->key_count, in->worker_count, in->uptime_s);
		if (in->notice[0] != '\0')
			printf("notice: %s\n", in->notice);
		hsms_text(in->hsms, in->nhsms);
		return;
	}
	json_begin(&j, stdout);
	json_str(&j, "version", in->version);
	json_str(&j, "token_label", in->token_label);
	json_u64(&j, "key_count", in->key_count);
	json_u64(&j, "worker_count", in->worker_count);
	json_u64(&j, "uptime_s", in->uptime_s);
	if (in->notice[0] != '\0')
		json_str(&j, "notice", in->notice);
	hsms_json(&j, in->hsms, in->nhsms);
	json_end(&j);
}

int cmd_info(struct cli *cli, int argc, char **argv)
{
	struct kt_info in;
	kt_conn *c;
	int st = args_parse(cli, argc, argv, no_opts, NULL, 0);

	if (st == EXIT_DONE)
		st = cli_connect(cli, &c);
	if (st != EXIT_DONE)
		return st;
	st = kt_info(c, &in);
	if (st == KT_OK)
		info_print(cli, &in);
	else
		st = cli_fail(cli, st, kt_errmsg(c));
	kt_conn_free(c);
	return st;
}

static void keys_json(const struct kt_key *k, size_t n)
{
	struct json j;

	json_begin(&j, stdout);
	json_array_begin(&j, "keys");
	for (size_t i = 0; i < n; i++) {
		json_object_begin(&j, NULL);
		json_str(&j, "name", k[i].name);
		json_str(&j, "label", k[i].label);
		json_hex(&j, "id", k[i].id, k[i].id_len);
		json_u64(&j, "bits", k[i].bits);
		json_u64(&j, "exponent", k[i].exponent);
		json_str(&j, "mechanism", k[i].mechanism);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_end(&j);
}

static int width(const struct kt_key *k, size_t n, size_t off, int min)
{
	int w = min;

	for (size_t i = 0; i < n; i++) {
		int len = (int)strlen((const char *)&k[i] + off);

		if (len > w)
			w = len;
	}
	return w;
}

static void keys_table(const struct kt_key *k, size_t n)
{
	int wn = width(k, n, offsetof(struct kt_key, name), 4);
	int wl = width(k, n, offsetof(struct kt_key, label), 5);

	printf("%-*s  %5s  %-8s  %-4s  %-*s  %s\n", wn, "NAME", "BITS", "EXPONENT", "MECH", wl, "LABEL",
	       "ID");
	for (size_t i = 0; i < n; i++) {
		printf("%-*s  %5" PRIu32 "  %-8" PRIu64 "  %-4s  %-*s  ", wn, k[i].name, k[i].bits,
		       k[i].exponent, k[i].mechanism, wl, k[i].label);
		io_print_hex(stdout, k[i].id, k[i].id_len);
		putchar('\n');
	}
}

int cmd_keys(struct cli *cli, int argc, char **argv)
{
	struct kt_key *keys;
	size_t n;
	kt_conn *c;
	int st = args_parse(cli, argc, argv, no_opts, NULL, 0);

	if (st == EXIT_DONE)
		st = cli_connect(cli, &c);
	if (st != EXIT_DONE)
		return st;
	st = kt_keys(c, &keys, &n);
	if (st != KT_OK) {
		st = cli_fail(cli, st, kt_errmsg(c));
	} else if (cli->json) {
		keys_json(keys, n);
	} else {
		keys_table(keys, n);
	}
	kt_free(keys);
	kt_conn_free(c);
	return st;
}
