/* The connection object: create, connect, close, error messages. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef KT_VERSION
#define KT_VERSION "0.1.0"
#endif

const char *kt_version(void)
{
	return KT_VERSION;
}

void wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

kt_conn *kt_conn_new(void)
{
	kt_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->rx = malloc(WIRE_FRAME_MAX);
	c->tx = malloc(WIRE_FRAME_MAX);
	if (c->rx == NULL || c->tx == NULL) {
		free(c->rx);
		free(c->tx);
		free(c);
		return NULL;
	}
	c->fd = -1;
	c->reconnect = 1;
	c->timeout_ms = KT_DEFAULT_TIMEOUT_MS;
	c->next_id = 1;
	return c;
}

void kt_close(kt_conn *c)
{
	if (c == NULL)
		return;
	conn_drop(c);
	c->path[0] = '\0';     /* closed on purpose: no reconnecting */
}

void conn_drop(kt_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pending_fail_all(c, KT_ERR_IO);
	/* Responses may hold session keys. */
	wipe(c->rx, WIRE_FRAME_MAX);
	c->rx_off = c->rx_len = c->held = 0;
}

void kt_conn_free(kt_conn *c)
{
	if (c == NULL)
		return;
	kt_close(c);
	wipe(c->tx, WIRE_FRAME_MAX);
	free(c->pend);
	free(c->xml);
	free(c->rx);
	free(c->tx);
	free(c);
}

void kt_set_timeout(kt_conn *c, int ms)
{
	if (c != NULL)
		c->timeout_ms = ms > 0 ? ms : 0;
}

const char *kt_errmsg(const kt_conn *c)
{
	return c != NULL ? c->err : "no connection object";
}

const char *kt_status_name(int status)
{
	return wire_status_name(status);
}

const char *kt_status_text(int status)
{
	return wire_status_text(status);
}

void kt_free(void *p)
{
	free(p);
}

int conn_err(kt_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return status;
}

/* The GNU strerror_r (we build with _GNU_SOURCE) may return a static string. */
static const char *errtext(int errnum, char *buf, size_t len)
{
	return strerror_r(errnum, buf, len);
}

int conn_errno(kt_conn *c, int status, const char *what, int errnum)
{
	char buf[128];

	return conn_err(c, status, "%s: %s", what, errtext(errnum, buf, sizeof(buf)));
}

int conn_fatal(kt_conn *c, int status, const char *fmt, ...)
{
	char msg[KT_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pending_fail_all(c, status);
	conn_drop(c);
	return conn_err(c, status, "%s", msg);
}

int conn_fatal_errno(kt_conn *c, const char *what, int errnum)
{
	char buf[128];

	return conn_fatal(c, KT_ERR_IO, "%s: %s", what, errtext(errnum, buf, sizeof(buf)));
}

static const char *socket_path(const char *path)
{
	const char *env;

	if (path != NULL && *path != '\0')
		return path;
	env = getenv("KEYTRANS_SOCKET");
	if (env != NULL && *env != '\0')
		return env;
	return KT_DEFAULT_SOCKET;
}

/* AF_UNIX connect() honours SO_SNDTIMEO, which bounds a full listen backlog. */
static void set_connect_timeout(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Connects to p (closing first); kt_connect's path is left alone. */
static int conn_open(kt_conn *c, const char *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	conn_drop(c);
	if (strlen(p) >= sizeof(sa.sun_path))
		return conn_err(c, KT_ERR_CONNECT, "%s: socket path too long", p);
	memcpy(sa.sun_path, p, strlen(p) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return conn_errno(c, KT_ERR_CONNECT, "socket", errno);
	set_connect_timeout(c->fd, c->timeout_ms);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		int st = (e == EAGAIN || e == EINPROGRESS) ? KT_ERR_TIMEOUT : KT_ERR_CONNECT;

		close(c->fd);
		c->fd = -1;
		return conn_errno(c, st, p, e);
	}
	set_connect_timeout(c->fd, 0);
	return KT_OK;
}

int kt_connect(kt_conn *c, const char *path)
{
	const char *p = socket_path(path);
	int st;

	if (c == NULL)
		return KT_ERR_ARG;
	c->path[0] = '\0';
	st = conn_open(c, p);
	if (st == KT_OK)
		snprintf(c->path, sizeof(c->path), "%s", p);   /* fits: conn_open checked */
	return st;
}

void kt_set_reconnect(kt_conn *c, int on)
{
	if (c != NULL)
		c->reconnect = on != 0;
}

int conn_ensure(kt_conn *c)
{
	if (c->fd >= 0)
		return KT_OK;
	/* Items still pending would be lost unseen: the caller collects them first. */
	if (!c->reconnect || c->path[0] == '\0' || c->npend > 0)
		return conn_err(c, KT_ERR_IO, "not connected to the daemon");
	return conn_open(c, c->path);
}

/*
 * A lost connection (the daemon restarted, or dropped the connection) or a
 * daemon that is stopping. Every operation is idempotent: nothing on the
 * daemon or in the HSM changes, so sending one again never does anything
 * twice. Not when other requests are in flight on the connection: a new one
 * would lose them.
 */
int conn_may_retry(const kt_conn *c, int st)
{
	return c->reconnect && c->path[0] != '\0' && c->npend == 0 &&
	       (st == KT_ERR_IO || st == KT_SHUTTING_DOWN);
}

int conn_reopen(kt_conn *c)
{
	char path[sizeof(c->path)];

	memcpy(path, c->path, sizeof(path));
	return conn_open(c, path);
}
