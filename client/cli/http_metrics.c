/*
 * keytrans stats --prometheus --http: one HTTP/1.x scrape, the request read
 * from stdin and the answer written to stdout, for a socket-activated unit
 * (systemd Accept=yes, inetd). The network listener thus lives in systemd and
 * in this short-lived, unprivileged process, never in the key-holding daemon.
 *
 * GET or HEAD of /metrics: 200 with the stats in the Prometheus text format;
 * another path 404; another method 405; a malformed or oversized request
 * head 400; a head not complete within READ_TIMEOUT_MS 408; the daemon
 * unreachable or failing the stats call 503. The connection is closed after
 * each answer (no keep-alive: one process per connection).
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 8192           /* request line and header fields */
#define READ_TIMEOUT_MS 10000   /* for the whole head: a slow client cannot hold the process */
#define STATS_TIMEOUT_MS 10000  /* Prometheus' default scrape_timeout */
#define WRITE_TIMEOUT_S 10
#define DRAIN_MS 1000
#define DRAIN_MAX (64 * 1024)

#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_TYPE "text/plain; charset=utf-8"

enum head_read { HEAD_OK, HEAD_EMPTY, HEAD_INCOMPLETE, HEAD_TOO_BIG, HEAD_BAD, HEAD_TIMEOUT };

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Bytes read into buf (at most max); 0: nothing came within limit_ms of t0; -1: EOF or error. */
static ssize_t read_by(char *buf, size_t max, const struct timespec *t0, long limit_ms)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	ssize_t n;
	int ready;

	do {
		long left = limit_ms - ms_since(t0);

		if (left <= 0)
			return 0;
		ready = poll(&p, 1, (int)left);
	} while (ready < 0 && errno == EINTR);
	if (ready <= 0)
		return ready == 0 ? 0 : -1;
	do
		n = read(0, buf, max);
	while (n < 0 && errno == EINTR);
	return n > 0 ? n : -1;
}

/* The offset just past the blank line that ends a head, or 0. Bare LF ends lines too. */
static size_t head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Reads the request head into buf (HEAD_MAX + 1 bytes), NUL-terminated where it ends. */
static enum head_read read_head(char *buf)
{
	struct timespec t0;
	size_t len = 0, end;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (len < HEAD_MAX) {
		ssize_t n = read_by(buf + len, HEAD_MAX - len, &t0, READ_TIMEOUT_MS);

		if (n == 0)
			return HEAD_TIMEOUT;
		if (n < 0)
			return len == 0 ? HEAD_EMPTY : HEAD_INCOMPLETE;
		len += (size_t)n;
		end = head_end(buf, len);
		if (end > 0) {
			buf[end] = '\0';
			/* A NUL would cut the lines short of what was checked. */
			return memchr(buf, '\0', end) == NULL ? HEAD_OK : HEAD_BAD;
		}
	}
	return HEAD_TOO_BIG;
}

static int is_tchar(int c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The next line of *p, its CR LF or LF cut off; NULL when a bare CR is in it. */
static char *next_line(char **p)
{
	char *line = *p, *nl = strchr(line, '\n');

	if (nl == NULL)
		return NULL;
	*nl = '\0';
	*p = nl + 1;
	if (nl > line && nl[-1] == '\r')
		nl[-1] = '\0';
	return strchr(line, '\r') == NULL ? line : NULL;
}

/* "METHOD SP TARGET SP HTTP/1.x" (RFC 9112, 3): 0, or -1 when malformed. */
static int request_line(char *line, char **method, char **target, int *minor)
{
	char *sp1 = strchr(line, ' '), *sp2, *v;

	if (sp1 == NULL || sp1 == line)
		return -1;
	*sp1 = '\0';
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 == NULL || sp2 == sp1 + 1)
		return -1;
	*sp2 = '\0';
	*method = line;
	*target = sp1 + 1;
	v = sp2 + 1;
	for (char *c = line; *c != '\0'; c++)
		if (!is_tchar((unsigned char)*c))
			return -1;
	for (char *c = *target; *c != '\0'; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
			return -1;
	if (strcmp(v, "HTTP/1.0") != 0 && strcmp(v, "HTTP/1.1") != 0)
		return -1;
	*minor = v[7] - '0';
	return 0;
}

/* "NAME: value" (no folding, no control characters); 1 for a Host field, 0 other, -1 malformed. */
static int header_field(const char *line)
{
	const char *colon = strchr(line, ':');

	if (colon == NULL || colon == line)
		return -1;
	for (const char *c = line; c < colon; c++)
		if (!is_tchar((unsigned char)*c))
			return -1;
	for (const char *c = colon + 1; *c != '\0'; c++) {
		unsigned char u = (unsigned char)*c;

		if ((u < ' ' && u != '\t') || u == 0x7f)
			return -1;
	}
	return colon - line == 4 && strncasecmp(line, "host", 4) == 0;
}

/* The request line and the fields: 0, or -1 when malformed (HTTP/1.1 also needs one Host). */
static int parse_head(char *head, char **method, char **target)
{
	char *p = head, *line = next_line(&p);
	int minor, hosts = 0;

	if (line == NULL || request_line(line, method, target, &minor) != 0)
		return -1;
	while (*p != '\0') {
		int f;

		line = next_line(&p);
		if (line == NULL)
			return -1;
		if (*line == '\0')
			break;
		f = header_field(line);
		if (f < 0)
			return -1;
		hosts += f;
	}
	return minor == 1 && hosts != 1 ? -1 : 0;
}

/* /metrics, with or without a query; also in absolute form (http://host:port/metrics). */
static int is_metrics(const char *target)
{
	size_t n;

	if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
		target = strchr(strchr(target, ':') + 3, '/');
		if (target == NULL)
			return 0;
	}
	n = strcspn(target, "?");
	return n == 8 && strncmp(target, "/metrics", 8) == 0;
}

static int write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(1, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Unread request bytes at close() make the kernel reset the connection, and
 * the client may then lose the answer: read them away first, for a while.
 */
static void drain(void)
{
	struct timespec t0;
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	shutdown(1, SHUT_WR);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (total < DRAIN_MAX && (n = read_by(buf, sizeof(buf), &t0, DRAIN_MS)) > 0)
		total += (size_t)n;
}

/* Writes one whole answer; EXIT_DONE, or EXIT_FAILED when the client could not be written to. */
static int respond(int code, const char *reason, const char *type, const char *extra,
		   const char *body, size_t len, int head_only)
{
	char head[512], date[64];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "%sConnection: close\r\n\r\n", code, reason, date, type, len, extra);
	if (n < 0 || (size_t)n >= sizeof(head))
		return EXIT_FAILED;     /* not with this file's fixed texts */
	if (write_all(head, (size_t)n) != 0 || (!head_only && write_all(body, len) != 0)) {
		fprintf(stderr, "keytrans: metrics: cannot write the answer: %s\n", strerror(errno));
		return EXIT_FAILED;
	}
	drain();
	return EXIT_DONE;
}

static int refuse(int code, const char *reason, const char *extra, const char *body)
{
	fprintf(stderr, "keytrans: metrics: answered %d %s\n", code, reason);
	return respond(code, reason, TEXT_TYPE, extra, body, strlen(body), 0);
}

/* The stats as Prometheus text in *body (free() it): KT_OK, or the failed call's status. */
static int render(const struct cli *cli, char **body, size_t *len, char *why, size_t whylen)
{
	kt_conn *c = kt_conn_new();
	struct kt_stats *s = malloc(sizeof(*s));  /* about 15 KiB */
	struct kt_recipient_stats r;
	struct kt_session_stats sess;
	FILE *f = NULL;
	int st = c == NULL || s == NULL ? KT_ERR_NOMEM : KT_OK;

	if (st == KT_OK) {
		kt_set_timeout(c, STATS_TIMEOUT_MS);
		st = kt_connect(c, cli->socket);
	}
	if (st == KT_OK)
		st = stats_fetch(c, s, &r, &sess);
	if (st != KT_OK)
		snprintf(why, whylen, "%s", c != NULL ? kt_errmsg(c) : "");
	if (st == KT_OK && (f = open_memstream(body, len)) == NULL)
		st = KT_ERR_NOMEM;
	if (f != NULL) {
		int bad;

		prometheus_write(f, s, &r, &sess);
		bad = ferror(f);
		if (fclose(f) != 0 || bad) {
			free(*body);
			st = KT_ERR_NOMEM;
		}
	}
	free(s);
	kt_conn_free(c);
	return st;
}

/* 200 with the stats, or 503 naming what failed (the details go to stderr, the journal). */
static int scrape(const struct cli *cli, int head_only)
{
	char why[256] = "", msg[128];
	char *body = NULL;
	size_t len = 0;
	int st = render(cli, &body, &len, why, sizeof(why)), rc;

	if (st != KT_OK) {
		fprintf(stderr, "keytrans: metrics: no stats from keytransd: %s: %s\n",
			kt_status_name(st), why[0] != '\0' ? why : kt_status_text(st));
		snprintf(msg, sizeof(msg), "keytransd unavailable: %s\n", kt_status_name(st));
		return respond(503, "Service Unavailable", TEXT_TYPE, "", msg, strlen(msg), head_only);
	}
	rc = respond(200, "OK", PROM_TYPE, "", body, len, head_only);
	free(body);
	return rc;
}

int http_metrics(const struct cli *cli)
{
	char head[HEAD_MAX + 1], *method, *target;
	struct timeval wt = { .tv_sec = WRITE_TIMEOUT_S };

	/* A client gone before its answer is written must not end us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	/* A client that never reads: the write fails after a while (when stdout is a socket). */
	setsockopt(1, SOL_SOCKET, SO_SNDTIMEO, &wt, sizeof(wt));
	switch (read_head(head)) {
	case HEAD_EMPTY:
		return EXIT_DONE;       /* a port check: nothing asked, nothing to answer */
	case HEAD_TIMEOUT:
		return refuse(408, "Request Timeout", "", "request timeout\n");
	case HEAD_INCOMPLETE:
	case HEAD_TOO_BIG:
	case HEAD_BAD:
		return refuse(400, "Bad Request", "", "bad request: incomplete or oversized head\n");
	case HEAD_OK:
		break;
	}
	if (parse_head(head, &method, &target) != 0)
		return refuse(400, "Bad Request", "", "bad request\n");
	if (!is_metrics(target))
		return refuse(404, "Not Found", "", "not found: the metrics are at /metrics\n");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return refuse(405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
			      "method not allowed: GET or HEAD\n");
	return scrape(cli, strcmp(method, "HEAD") == 0);
}
