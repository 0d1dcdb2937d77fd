/*
 * The daemon's one context: everything the process owns, created in main.c
 * in start-up order and torn down in reverse. No other globals.
 */
#ifndef KT_DAEMON_H
#define KT_DAEMON_H

#include <time.h>

#include <sys/types.h>

#include "accounts.h"
#include "backend.h"
#include "config.h"
#include "job.h"
#include "keytab.h"
#include "log.h"
#include "recipients.h"
#include "sessions.h"
#include "stats.h"
#include "worker.h"

struct event;
struct event_base;
struct gen;
struct server;
struct hsm;

struct daemon {
	struct config conf;             /* as started: what a reload cannot change */
	const char *conf_path;
	struct gen *gen;                /* keys and rules in force (reload.c) */
	struct gen *reloading;          /* a reload waiting for the HSMs, or NULL */
	struct event *reload_ev;
	unsigned long keysets;          /* last struct gen keyset given out */
	struct logger log;
	struct backends hsms;           /* every [hsm] section, and its health */
	struct replyq replies;
	struct pool hsm_pool;           /* private-key work: one HSM call per job */
	struct pool pub_pool;           /* public-key work: wrap, copp-sign */
	struct recipients recipients;   /* PUBLIC_KEYs decoded, shared by pub_pool's workers */
	struct sessions sessions;       /* sealed COPP/OPM sessions: HSM workers open, the loop uses */
	struct jobpool jobs;            /* loop thread only */
	struct accounts accounts;       /* per-uid use, loop thread only */
	struct stats stats;             /* answers and connections, loop thread only */
	uid_t uid;                      /* the daemon's own uid (always allowed) */
	struct event_base *base;
	struct server *server;
	struct timespec started;        /* CLOCK_MONOTONIC */
	char **argv;                    /* for a restart (daemon_restart) */
};

/*
 * Restarts the process in place (exec of itself, keeping the listening
 * socket, so that no queued connection is lost): the way out of a PKCS#11
 * call that never returns. Does not return.
 */
void daemon_restart(struct daemon *d);

#endif
