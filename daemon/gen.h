/*
 * One loaded configuration, as far as a reload (SIGHUP) can change it: the
 * keys and their access rules, and who may use public keys. Each request
 * holds the generation it was checked against until it is answered, so a
 * reload never changes a key or a rule under a request in flight. Settings
 * that need a restart (socket, workers, limits, [hsm] sections) stay in
 * struct daemon's conf.
 *
 * Loop thread only: hold, release and the daemon's current pointer.
 */
#ifndef KT_GEN_H
#define KT_GEN_H

#include <stdatomic.h>

#include "config.h"
#include "keytab.h"

struct gen {
	struct config conf;     /* the file as loaded; keys[i].conf points into it */
	struct keytab keys;
	unsigned long keyset;   /* the same number while the key list (names, labels, ids,
				   mechanisms, in order) stays the same */
	int refs;
	atomic_int ready;       /* keys is filled (0 while the daemon waits for its first HSM) */
};

/*
 * The key table, or an empty one while no HSM has filled it: the daemon
 * serves from its start, and the supervisor thread fills the table of the
 * first generation when the first HSM comes (release store of ready).
 */
const struct keytab *gen_keys(const struct gen *g);
/* 1 once the key table is filled. */
int gen_ready(const struct gen *g);

/* A generation with conf loaded from path (no keys yet); NULL with err. */
struct gen *gen_load(const char *path, char *err, size_t errlen);
struct gen *gen_hold(struct gen *g);
void gen_release(struct gen *g);
/* 1 when both list the same keys in the same order (their HSM objects are the same). */
int gen_same_keys(const struct config *a, const struct config *b);

#endif
