#include "alg.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct alg_info algs[] = {
	{ 0x6602, "CALG_RC2", 5, 16 },
	{ 0x6801, "CALG_RC4", 5, 16 },
	{ 0x6601, "CALG_DES", 8, 8 },
	{ 0x6609, "CALG_3DES_112", 16, 16 },
	{ 0x6603, "CALG_3DES", 24, 24 },
	{ 0x660e, "CALG_AES_128", 16, 16 },
	{ 0x660f, "CALG_AES_192", 24, 24 },
	{ 0x6610, "CALG_AES_256", 32, 32 },
};

const struct alg_info *alg_table(size_t *n)
{
	*n = sizeof(algs) / sizeof(algs[0]);
	return algs;
}

const struct alg_info *alg_by_id(uint32_t id)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].id == id)
			return &algs[i];
	return NULL;
}

/* Compares a user's spelling with "CALG_X": case, '-' for '_' and the prefix are free. */
static int name_matches(const char *user, const char *calg)
{
	const char *bare = calg + strlen("CALG_");

	if (strncasecmp(user, "CALG_", 5) == 0 || strncasecmp(user, "CALG-", 5) == 0)
		user += 5;
	for (; *user && *bare; user++, bare++) {
		char u = *user == '-' ? '_' : (char)toupper((unsigned char)*user);

		if (u != *bare)
			return 0;
	}
	return *user == '\0' && *bare == '\0';
}

const struct alg_info *alg_by_name(const char *name)
{
	char *end;
	unsigned long v;

	if (name == NULL || *name == '\0')
		return NULL;
	/* A number; text that only starts with a digit may still be a name ("3DES"). */
	if (isdigit((unsigned char)name[0])) {
		v = strtoul(name, &end, 0);
		if (*end == '\0')
			return v > UINT32_MAX ? NULL : alg_by_id((uint32_t)v);
	}
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (name_matches(name, algs[i].name))
			return &algs[i];
	return NULL;
}

int alg_len_ok(const struct alg_info *a, size_t len)
{
	return a != NULL && len >= a->min_len && len <= a->max_len;
}

size_t alg_default_len(const struct alg_info *a)
{
	return a->max_len;
}
