#include "reload.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "gen.h"

/* Puts g in force: new requests are checked against it. */
static void install(struct daemon *d, struct gen *g)
{
	struct gen *old = d->gen;

	size_t wiped;

	d->gen = g;
	gen_release(old);
	/* The rules the sessions were opened under may be gone: they all end here. */
	if ((wiped = sessions_wipe(&d->sessions)) > 0)
		log_info(&d->log, "reload: %zu sealed session%s wiped", wiped, wiped == 1 ? "" : "s");
}

/* Appends to buf (", " between items); what does not fit is cut. */
static void add_item(char *buf, size_t len, const char *item)
{
	size_t used = strlen(buf);

	if (used < len)
		snprintf(buf + used, len - used, "%s%s", used ? ", " : "", item);
}

static int same_hsms(const struct config *a, const struct config *b)
{
	if (a->nhsms != b->nhsms)
		return 0;
	for (size_t i = 0; i < a->nhsms; i++)
		if (memcmp(&a->hsms[i], &b->hsms[i], sizeof(a->hsms[i])) != 0)
			return 0;
	return 1;
}

/* Logs the changed settings a reload cannot apply (they keep their running values). */
static void note_restart_only(struct daemon *d, const struct config *now)
{
	const struct config *was = &d->conf;
	char what[256] = "";

	if (strcmp(was->socket, now->socket) != 0 || was->socket_mode != now->socket_mode)
		add_item(what, sizeof(what), "socket");
	if (was->workers != now->workers)
		add_item(what, sizeof(what), "workers");
	if (memcmp(&was->limits, &now->limits, sizeof(was->limits)) != 0)
		add_item(what, sizeof(what), "[daemon] limits");
	if (!same_hsms(was, now))
		add_item(what, sizeof(what), "[hsm] sections");
	if (what[0] != '\0')
		log_warn(&d->log, "reload: %s changed: that takes a restart; kept as running", what);
}

/* "added a, b; removed c" between two key lists. */
static void key_changes(const struct config *was, const struct config *now, char *out, size_t len)
{
	char added[256] = "", removed[256] = "";

	for (size_t i = 0; i < now->nkeys; i++) {
		size_t j = 0;

		while (j < was->nkeys && strcmp(was->keys[j].name, now->keys[i].name) != 0)
			j++;
		if (j == was->nkeys)
			add_item(added, sizeof(added), now->keys[i].name);
	}
	for (size_t j = 0; j < was->nkeys; j++) {
		size_t i = 0;

		while (i < now->nkeys && strcmp(was->keys[j].name, now->keys[i].name) != 0)
			i++;
		if (i == now->nkeys)
			add_item(removed, sizeof(removed), was->keys[j].name);
	}
	snprintf(out, len, "added: %s; removed: %s", added[0] ? added : "none",
		 removed[0] ? removed : "none");
}

static void reloaded(struct daemon *d, struct gen *g, const char *how)
{
	char changes[600];

	key_changes(&d->gen->conf, &g->conf, changes, sizeof(changes));
	install(d, g);
	log_info(&d->log, "configuration reloaded (%s): %zu key%s; %s", how, g->keys.n,
		 g->keys.n == 1 ? "" : "s", changes);
	sd_notify(0, "READY=1\nSTATUS=configuration reloaded");
}

static void refused(struct daemon *d, const char *why)
{
	log_err(&d->log, "reload refused: %s; the running configuration stays in force", why);
	sd_notify(0, "READY=1\nSTATUS=reload refused; running configuration unchanged");
}

/* The supervisor has rebuilt the HSMs for the new key list (or failed to). */
static void on_reload_done(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct gen *g = d->reloading;
	char why[1024];

	(void)fd;
	(void)what;
	d->reloading = NULL;
	if (backends_reload_result(&d->hsms, why, sizeof(why)) == 0) {
		reloaded(d, g, "HSM keys looked up again");
		return;
	}
	refused(d, why);
	gen_release(g);
}

void reload_start(struct daemon *d)
{
	char err[2048];
	struct gen *g;

	if (d->reloading != NULL) {
		log_warn(&d->log, "SIGHUP: a reload is already running; ignored");
		return;
	}
	sd_notify(0, "RELOADING=1");
	g = gen_load(d->conf_path, err, sizeof(err));
	if (g == NULL) {
		refused(d, err);
		return;
	}
	note_restart_only(d, &g->conf);
	if (!gen_ready(d->gen)) {
		gen_release(g);
		refused(d, "no HSM has been in service since the start, so the keys are not loaded "
			"yet; reload once one is");
		return;
	}
	if (gen_same_keys(&d->gen->conf, &g->conf)) {
		/* Same keys: only rules change, no HSM work. */
		g->keyset = d->gen->keyset;
		if (keytab_clone(&g->keys, &d->gen->keys, &g->conf) != 0) {
			gen_release(g);
			refused(d, "out of memory");
			return;
		}
		atomic_store(&g->ready, 1);
		reloaded(d, g, "rules");
		return;
	}
	g->keyset = ++d->keysets;
	if (backends_reload(&d->hsms, g, d->reload_ev) != 0) {
		gen_release(g);
		refused(d, "the HSMs are busy with another reload");
		return;
	}
	d->reloading = g;
	log_info(&d->log, "reload: the key list changed: looking the keys up in the HSMs again");
}

int reload_init(struct daemon *d)
{
	d->reload_ev = event_new(d->base, -1, 0, on_reload_done, d);
	return d->reload_ev != NULL ? 0 : -1;
}

void reload_free(struct daemon *d)
{
	if (d->reloading != NULL)
		gen_release(d->reloading);
	d->reloading = NULL;
	if (d->reload_ev != NULL)
		event_free(d->reload_ev);
	d->reload_ev = NULL;
}
