/*
 * fuzz_config: the keytransd.conf reader (daemon/config.c with inih) through
 * config_load_stream over fmemopen, as if the file were
 * /etc/keytrans/fuzz.conf.
 *
 * Invariants: an accepted file gives a complete configuration (module and
 * token set, paths absolute, key names valid and unique, each key with a
 * label or an id, values in their ranges); a refused one leaves the
 * configuration empty and an error that names the file. Nothing leaks.
 */
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define PATH "/etc/keytrans/fuzz.conf"

static int valid_name(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= CONFIG_NAME_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static void check_good(const struct config *c)
{
	FUZZ_CHECK(c->socket[0] == '/' && strlen(c->socket) < sizeof(c->socket));
	FUZZ_CHECK(c->nhsms > 0);
	for (size_t i = 0; i < c->nhsms; i++) {
		const struct hsm_conf *h = &c->hsms[i];

		FUZZ_CHECK(h->module[0] == '/' && strlen(h->module) < sizeof(h->module));
		FUZZ_CHECK(h->pin_file[0] == '\0' || h->pin_file[0] == '/');
		FUZZ_CHECK(h->token[0] != '\0' && strlen(h->token) <= CONFIG_TOKEN_MAX);
	}
	FUZZ_CHECK(c->workers >= 1 && c->workers <= CONFIG_WORKERS_MAX);
	FUZZ_CHECK((c->socket_mode & ~(mode_t)0777) == 0);
	FUZZ_CHECK(c->nkeys == 0 || c->keys != NULL);
	for (size_t i = 0; i < c->nkeys; i++) {
		const struct key_conf *k = &c->keys[i];

		FUZZ_CHECK(valid_name(k->name));
		FUZZ_CHECK(strlen(k->label) <= CONFIG_LABEL_MAX && k->id_len <= CONFIG_ID_MAX);
		FUZZ_CHECK(k->label[0] != '\0' || k->id_len > 0);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->keys[j].name, k->name) != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = (char *)fuzz_dup(data, size), err[1024];
	struct config *c = calloc(1, sizeof(*c));
	FILE *f;
	int rc;

	FUZZ_CHECK(c != NULL);
	/* glibc's fmemopen refuses an empty buffer: an empty file is /dev/null. */
	f = size > 0 ? fmemopen(text, size, "r") : fopen("/dev/null", "r");
	FUZZ_CHECK(f != NULL);
	memset(err, 0x55, sizeof(err));
	err[sizeof(err) - 1] = '\0';
	rc = config_load_stream(f, PATH, c, err, sizeof(err));
	fclose(f);
	if (rc == 0) {
		check_good(c);
	} else {
		FUZZ_CHECK(rc == -1);
		FUZZ_CHECK(c->keys == NULL && c->nkeys == 0);
		FUZZ_CHECK(strncmp(err, PATH ":", strlen(PATH ":")) == 0);
	}
	config_free(c);
	free(c);
	free(text);
	return 0;
}
