#include "fuzz.h"

#include <string.h>

#include <openssl/pem.h>
#include <sanitizer/common_interface_defs.h>

#ifndef KT_VECTORS_DIR
#define KT_VECTORS_DIR "tests/vectors"
#endif

static struct fuzz_key keys[FUZZ_NKEYS] = {
	{ .name = "rsa1024" }, { .name = "rsa2048" }, { .name = "rsa4096" },
};
static int loaded;

static EVP_PKEY *load_pub(const char *name)
{
	const char *dir = getenv("KT_VECTORS");
	char path[4096];
	EVP_PKEY *pub;
	FILE *f;

	if (dir == NULL || *dir == '\0')
		dir = KT_VECTORS_DIR;
	snprintf(path, sizeof(path), "%s/keys/%s.pub.pem", dir, name);
	f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "fuzz: cannot open %s (set KT_VECTORS to tests/vectors)\n", path);
		abort();
	}
	pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (pub == NULL) {
		fprintf(stderr, "fuzz: %s is not a public key\n", path);
		abort();
	}
	return pub;
}

const struct fuzz_key *fuzz_keys(void)
{
	if (loaded)
		return keys;
	for (size_t i = 0; i < FUZZ_NKEYS; i++) {
		keys[i].pub = load_pub(keys[i].name);
		if (rsa_pub_numbers(keys[i].pub, keys[i].n, &keys[i].k, &keys[i].e) != 0) {
			fprintf(stderr, "fuzz: cannot read the numbers of %s\n", keys[i].name);
			abort();
		}
	}
	loaded = 1;
	return keys;
}

uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n);         /* ASan gives malloc(0) a pointer with no valid byte */

	if (q == NULL && n > 0)
		abort();
	if (n > 0)
		memcpy(q, p, n);
	return q;
}

void fuzz_fail(const char *file, int line, const char *expr)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s:%d: invariant violated: %s", file, line, expr);
	__sanitizer_report_error_summary(msg);
	abort();
}
