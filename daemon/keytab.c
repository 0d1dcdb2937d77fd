#include "keytab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int keytab_load(struct keytab *t, struct hsm *h, const struct config *c, char *err, size_t errlen)
{
	t->n = 0;
	t->keys = calloc(c->nkeys ? c->nkeys : 1, sizeof(*t->keys));
	if (t->keys == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < c->nkeys; i++) {
		struct key *k = &t->keys[i];

		snprintf(k->name, sizeof(k->name), "%s", c->keys[i].name);
		k->index = i;
		if (hsm_find_key(h, &c->keys[i], &k->hk, err, errlen) != 0)
			goto fail;
		t->n++;
		if (rsa_pub_numbers(k->hk.pub, k->n, &k->k, &k->e) != 0 || k->k * 8 < RSA_MIN_BITS) {
			snprintf(err, errlen, "[key %s]: RSA keys of %d to %d bits are supported",
				 k->name, RSA_MIN_BITS, RSA_MAX_BITS);
			goto fail;
		}
	}
	return 0;
fail:
	keytab_free(t);
	return -1;
}

void keytab_free(struct keytab *t)
{
	for (size_t i = 0; i < t->n; i++)
		hsm_key_release(&t->keys[i].hk);
	free(t->keys);
	t->keys = NULL;
	t->n = 0;
}

struct key *keytab_find(const struct keytab *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->keys[i].name, name) == 0)
			return &t->keys[i];
	return NULL;
}
