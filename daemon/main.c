/*
 * keytransd: start-up order, signals, shutdown. The PKCS#11 module is loaded
 * after daemonising, and the process never forks afterwards (libp11 and most
 * modules do not survive a fork).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "crash.h"
#include "daemon.h"
#include "backend.h"
#include "gen.h"
#include "pin.h"
#include "reload.h"
#include "keytab.h"
#include "log.h"
#include "ops.h"
#include "server.h"
#include "worker.h"

/* Exit status of a start that a restart cannot fix (sysexits' EX_CONFIG): the unit's
 * RestartPreventExitStatus= keeps systemd from retrying, e.g. a wrong PIN. */
#define EXIT_CONFIG 78
#define LOOP_SPIN_US 1000
#define JOB_CACHE 256

struct options {
	const char *config;
	const char *check_pin;  /* --check-pin=PATH */
	int foreground;
	int test_only;
	int no_pin;             /* -t --no-pin */
	int debug;
};

static void usage(FILE *to)
{
	fprintf(to, "usage: keytransd -c FILE [-f] [-d]       run the daemon (-f: foreground, log to"
		    " stderr; -d: debug log)\n"
		    "       keytransd -t [--no-pin] -c FILE   check the configuration and exit (--no-pin:"
		    " all but the PIN file)\n"
		    "       keytransd --check-pin=PATH        check that the PIN file PATH is private,"
		    " without reading it\n"
		    "       keytransd -V | -h\n"
		    "\n"
		    "  -c FILE            the configuration file (keytransd.conf(5))\n"
		    "  -f                 stay in the foreground and log to stderr (without systemd)\n"
		    "  -d                 log debug messages too\n"
		    "  -t                 check the configuration and the PIN file, then exit\n"
		    "  --no-pin           with -t: check everything but the PIN file\n"
		    "  --check-pin=PATH   check that the PIN file PATH is private, without reading it\n"
		    "  -V, --version      print the version and exit\n"
		    "  -h, --help         print this help and exit\n"
		    "See keytransd(8).\n");
}

enum { OPT_CHECK_PIN = 256, OPT_NO_PIN };

/* --check-pin stands alone; --no-pin only qualifies -t. */
static int options_valid(const struct options *o)
{
	if (o->check_pin != NULL)
		return o->config == NULL && !o->test_only && !o->foreground && !o->debug;
	return o->config != NULL && (o->test_only || !o->no_pin);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "check-pin", required_argument, NULL, OPT_CHECK_PIN },
		{ "no-pin", no_argument, NULL, OPT_NO_PIN },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "c:ftdVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 'f': o->foreground = 1; break;
		case 't': o->test_only = 1; break;
		case 'd': o->debug = 1; break;
		case OPT_CHECK_PIN: o->check_pin = optarg; break;
		case OPT_NO_PIN: o->no_pin = 1; break;
		case 'V': printf("keytransd %s\n", KT_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!options_valid(o) || optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/*
 * keytransd --check-pin=PATH: under systemd the daemon sees only the
 * credential's copy (0400, its own), so the unit checks the source of
 * LoadCredential= with this before each start.
 */
static int check_pin_source(const char *path)
{
	char err[2 * PATH_MAX];

	if (pin_check_source(path, err, sizeof(err)) != 0) {
		fprintf(stderr, "keytransd: %s\n", err);
		return EXIT_CONFIG;
	}
	printf("keytransd: %s: PIN file OK\n", path);
	return 0;
}

/*
 * What -t checks beyond the syntax: each module exists, each PIN file is
 * there and private. Not the PIN with --no-pin: systemd 252 hides the
 * credentials from ExecReload=, and a reload does not read the PIN again.
 */
static int check_files(const struct config *c, int pin, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->nhsms; i++) {
		if (access(c->hsms[i].module, R_OK) != 0) {
			snprintf(err, errlen, "[hsm %s] module %s: %s", c->hsms[i].name, c->hsms[i].module,
				 strerror(errno));
			return -1;
		}
		if (pin && pin_check(&c->hsms[i], err, errlen) != 0)
			return -1;
	}
	return 0;
}

/*
 * Secrets stay in memory that is locked and left out of core dumps: no core
 * dumps at all, no ptrace by other processes of the same user, and
 * OpenSSL's locked heap for jobs, keys' secrets and the PIN.
 */
static int protect_memory(struct daemon *d, char *err, size_t errlen)
{
	struct rlimit none = { 0, 0 };
	size_t heap = (size_t)d->conf.limits.job_memory * 1024;    /* a power of two (config.c) */
	int rc;

	prctl(PR_SET_DUMPABLE, 0);
	setrlimit(RLIMIT_CORE, &none);
	/* The key table (a 4 KiB block per key) comes out of the same heap as the jobs. */
	if (d->conf.nkeys * 4096 > heap / 4) {
		snprintf(err, errlen, "job_memory (%zu KiB) is too small for %zu keys: give it at least %zu",
			 heap / 1024, d->conf.nkeys, d->conf.nkeys * 16);
		return -1;
	}
	rc = CRYPTO_secure_malloc_init(heap, 16);
	if (rc == 0) {
		snprintf(err, errlen, "cannot set up %zu KiB of locked memory", heap / 1024);
		return -1;
	}
	if (rc == 2)
		log_warn(&d->log, "could not lock %zu KiB in memory (raise LimitMEMLOCK / ulimit -l): "
			 "secrets could be swapped out", heap / 1024);
	return 0;
}

/*
 * Forks into the background. The parent waits on a pipe for the child to
 * report start-up (so errors reach the operator's terminal) and exits with
 * its result; the child returns the pipe's write end.
 */
static int daemonize(void)
{
	int fds[2], null;
	char buf[512];
	ssize_t n;
	pid_t pid;

	if (pipe(fds) != 0 || (pid = fork()) < 0) {
		perror("keytransd: fork");
		exit(1);
	}
	if (pid > 0) {
		/* The child's report: its exit status as one byte, then the reason. */
		close(fds[1]);
		n = read(fds[0], buf, sizeof(buf) - 1);
		if (n > 0 && buf[0] == 0)
			exit(0);
		if (n > 0) {
			buf[n] = '\0';
			fprintf(stderr, "keytransd: %s\n", buf + 1);
			exit((unsigned char)buf[0]);
		}
		fprintf(stderr, "keytransd: the daemon died during start-up\n");
		exit(1);
	}
	close(fds[0]);
	setsid();
	if (chdir("/") != 0)
		exit(1);
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	return fds[1];
}

static void report_start(int fd, const char *err, int status)
{
	char msg[1024];
	int n;

	if (fd < 0)
		return;
	n = snprintf(msg, sizeof(msg), "%c%s", (char)status, err ? err : "");
	if (n > (int)sizeof(msg) - 1)
		n = (int)sizeof(msg) - 1;
	if (write(fd, msg, status == 0 ? 1 : (size_t)n) < 0)
		return;
	close(fd);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)what;
	log_info(&d->log, "signal %d: draining and stopping", (int)sig);
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	server_drain(d->server);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	/* A PKCS#11 call that does not return cannot be cancelled: let systemd restart us. */
	if (backends_stuck(&d->hsms))
		return;
	sd_notify(0, "WATCHDOG=1");
}

static void on_hsm_watch(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	backends_watch(&d->hsms);
	ops_audit_flush(d);
	sessions_expire(&d->sessions);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)sig;
	(void)what;
	log_info(&d->log, "SIGHUP: reloading %s", d->conf_path);
	reload_start(d);
}

/* Logs into the HSMs and loads the keys: 0, 1 (may pass on a retry) or EXIT_CONFIG. */
static int open_hsms(struct daemon *d, char *err, size_t errlen)
{
	const struct config *c;
	int rc;

	/* The keys and rules live in a generation of their own, which a reload replaces. */
	d->gen = gen_load(d->conf_path, err, errlen);
	if (d->gen == NULL)
		return EXIT_CONFIG;
	d->gen->keyset = d->keysets = 1;
	rc = backends_open(&d->hsms, d, d->gen, err, errlen);
	if (rc != 0)
		return rc == BACKENDS_CONFIG ? EXIT_CONFIG : 1;
	c = &d->gen->conf;
	for (size_t i = 0; i < c->nkeys; i++)
		if (c->keys[i].mechanism == MECH_PKCS)
			log_warn(&d->log, "[key %s] rsa_mechanism = pkcs: implicit rejection is off for it, "
				 "and the HSM's timing may reveal bad padding", c->keys[i].name);
	return backends_start(&d->hsms) == 0 ? 0 : 1;
}

/* 0, or the exit status: 1 (a restart may help) or EXIT_CONFIG. */
static int start(struct daemon *d, char *err, size_t errlen)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	if (protect_memory(d, err, errlen) != 0)
		return EXIT_CONFIG;
	rc = open_hsms(d, err, errlen);
	if (rc != 0)
		return rc;
	d->base = event_base_new();
	if (d->base == NULL || replyq_init(&d->replies) != 0 || reload_init(d) != 0) {
		snprintf(err, errlen, "cannot create the event loop");
		return 1;
	}
	if (pool_start(&d->hsm_pool, "hsm", d->conf.workers, POOL_MAX_DEPTH, &d->replies, d) != 0 ||
	    pool_start(&d->pub_pool, "public", cpus < 1 ? 1 : (int)cpus, POOL_MAX_DEPTH, &d->replies,
		       d) != 0) {
		snprintf(err, errlen, "cannot start worker threads");
		return 1;
	}
	/* recipient cache (issue 11): one ready context per public worker and padding */
	if (recipients_init(&d->recipients, (size_t)d->conf.limits.recipient_cache,
			    d->pub_pool.nworkers) != 0) {
		snprintf(err, errlen, "cannot set up the recipient cache");
		return 1;
	}
	if (sessions_init(&d->sessions, (size_t)d->conf.limits.max_sessions,
			  (size_t)d->conf.limits.max_sessions_per_uid,
			  (time_t)d->conf.limits.session_idle_timeout) != 0) {
		snprintf(err, errlen, "cannot set up the sealed-session table (AES-CMAC)");
		return 1;
	}
	return server_start(d, &d->server, err, errlen) == 0 ? 0 : 1;
}

static void stop(struct daemon *d)
{
	/* Workers waiting out a reload's pause must not wait on a supervisor that is gone. */
	backends_stop(&d->hsms);
	pool_stop(&d->hsm_pool);
	pool_stop(&d->pub_pool);
	recipients_free(&d->recipients);        /* recipient cache (issue 11): no worker holds one now */
	sessions_free(&d->sessions);            /* every sealed session's key wiped */
	if (d->server != NULL) {
		server_flush_replies(d->server);
		server_free(d->server);
	}
	if (d->base != NULL) {
		reload_free(d);
		event_base_free(d->base);   /* runs the buffers' cleanups: jobs go back to the pool */
	}
	if (d->replies.efd >= 0)
		replyq_destroy(&d->replies);
	jobpool_destroy(&d->jobs);
	accounts_free(&d->accounts);
	gen_release(d->gen);    /* after the jobs: each held the generation it was checked with */
	backends_close(&d->hsms);
	config_free(&d->conf);
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The event loop. While a few HSM operations are in flight and cores are
 * free for it, the loop polls instead of sleeping, for up to LOOP_SPIN_US:
 * a sleeping thread takes tens of microseconds to wake on another core
 * (docs/performance.md), which would be added to every reply. Under load
 * (as many operations in flight as cores) it sleeps as usual.
 */
static int loop(struct daemon *d)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int64_t spin_since = 0;

	while (!event_base_got_exit(d->base) && !event_base_got_break(d->base)) {
		unsigned busy = server_hsm_in_flight(d->server);

		if (busy == 0 || (long)busy >= cpus) {
			spin_since = 0;
		} else {
			if (spin_since == 0)
				spin_since = now_us();
			if (now_us() - spin_since < LOOP_SPIN_US) {
				if (event_base_loop(d->base, EVLOOP_NONBLOCK) < 0)
					return -1;
				continue;
			}
		}
		if (event_base_loop(d->base, EVLOOP_ONCE) < 0)
			return -1;
	}
	return 0;
}

/* Pings systemd's watchdog at half its period, when the unit sets WatchdogSec. */
static struct event *start_watchdog(struct daemon *d)
{
	uint64_t usec;
	struct timeval tv;
	struct event *ev;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return NULL;
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	ev = event_new(d->base, -1, EV_PERSIST, on_watchdog, d);
	if (ev != NULL)
		event_add(ev, &tv);
	return ev;
}

static int run(struct daemon *d)
{
	struct event *sigs[3], *watchdog, *hsm_watch;
	struct timeval quarter = { 0, 250000 };
	int i, rc = 0;

	sigs[0] = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	sigs[1] = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	sigs[2] = evsignal_new(d->base, SIGHUP, on_hup, d);
	for (i = 0; i < 3; i++)
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0)
			rc = -1;
	watchdog = start_watchdog(d);
	hsm_watch = event_new(d->base, -1, EV_PERSIST, on_hsm_watch, d);
	if (hsm_watch == NULL || event_add(hsm_watch, &quarter) != 0)
		rc = -1;
	if (rc == 0) {
		log_info(&d->log, "ready: %zu key%s, %zu of %zu HSM%s in service, %d HSM worker%s, socket %s",
			 gen_keys(d->gen)->n, gen_keys(d->gen)->n == 1 ? "" : "s", backends_up(&d->hsms),
			 d->hsms.n, d->hsms.n == 1 ? "" : "s", d->hsm_pool.nworkers,
			 d->hsm_pool.nworkers == 1 ? "" : "s",
			 server_activated(d->server) ? "from systemd" : d->conf.socket);
		if (gen_ready(d->gen)) {
			sd_notifyf(0, "READY=1\nSTATUS=serving %zu key%s from token %s", d->gen->keys.n,
				   d->gen->keys.n == 1 ? "" : "s", d->conf.hsms[0].token);
		} else {
			char why[256];

			backends_why(&d->hsms, why, sizeof(why));
			sd_notifyf(0, "READY=1\nSTATUS=waiting for an HSM: %s", why);
		}
		rc = loop(d);
	}
	for (i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	if (watchdog != NULL)
		event_free(watchdog);
	if (hsm_watch != NULL)
		event_free(hsm_watch);
	return rc;
}

int main(int argc, char **argv)
{
	struct daemon d = { .replies.efd = -1 };
	char err[2 * PATH_MAX], path[PATH_MAX];
	struct options o;
	int ready_fd = -1, rc, restarted = getenv("KEYTRANSD_RESTARTED") != NULL;

	unsetenv("KEYTRANSD_RESTARTED");
	d.argv = argv;
	d.conf_path = path;
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (o.check_pin != NULL)
		return check_pin_source(o.check_pin);
	/* Relative paths in the file are resolved against its folder, which must survive chdir("/"). */
	if (realpath(o.config, path) == NULL) {
		fprintf(stderr, "keytransd: %s: %s\n", o.config, strerror(errno));
		return 1;
	}
	if (config_load(path, &d.conf, err, sizeof(err)) != 0 ||
	    (o.test_only && check_files(&d.conf, !o.no_pin, err, sizeof(err)) != 0)) {
		fprintf(stderr, "keytransd: %s\n", err);
		config_free(&d.conf);   /* loaded when only check_files failed */
		return EXIT_CONFIG;
	}
	if (o.test_only) {
		printf("keytransd: %s: configuration OK\n", path);
		config_free(&d.conf);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	crash_handler_install();
	/* A restart (daemon_restart) is already in the background: no second fork. */
	if (!o.foreground && !restarted)
		ready_fd = daemonize();
	log_open(&d.log, o.foreground, o.debug);
	d.uid = getuid();
	evthread_use_pthreads();
	jobpool_init(&d.jobs, JOB_CACHE);
	clock_gettime(CLOCK_MONOTONIC, &d.started);
	rc = start(&d, err, sizeof(err));
	if (rc != 0) {
		log_err(&d.log, "cannot start: %s", err);
		report_start(ready_fd, err, rc);
		stop(&d);
		return rc;
	}
	report_start(ready_fd, NULL, 0);
	rc = run(&d);
	log_info(&d.log, "stopped");
	stop(&d);
	log_close(&d.log);
	return rc == 0 ? 0 : 1;
}
