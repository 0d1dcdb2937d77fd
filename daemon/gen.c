#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gen *gen_load(const char *path, char *err, size_t errlen)
{
	struct gen *g = calloc(1, sizeof(*g));

	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (config_load(path, &g->conf, err, errlen) != 0) {
		free(g);
		return NULL;
	}
	g->refs = 1;
	return g;
}

struct gen *gen_hold(struct gen *g)
{
	g->refs++;
	return g;
}

void gen_release(struct gen *g)
{
	if (g == NULL || --g->refs > 0)
		return;
	keytab_free(&g->keys);
	config_free(&g->conf);
	free(g);
}

static int same_key(const struct key_conf *a, const struct key_conf *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->label, b->label) == 0 &&
	       a->id_len == b->id_len && memcmp(a->id, b->id, a->id_len) == 0 &&
	       a->mechanism == b->mechanism && a->require_sensitive == b->require_sensitive;
}

int gen_same_keys(const struct config *a, const struct config *b)
{
	if (a->nkeys != b->nkeys)
		return 0;
	for (size_t i = 0; i < a->nkeys; i++)
		if (!same_key(&a->keys[i], &b->keys[i]))
			return 0;
	return 1;
}

const struct keytab *gen_keys(const struct gen *g)
{
	static const struct keytab none = { NULL, 0, 0 };

	return gen_ready(g) ? &g->keys : &none;
}

int gen_ready(const struct gen *g)
{
	return atomic_load(&((struct gen *)g)->ready);
}
