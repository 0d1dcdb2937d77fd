#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "peer.h"

/* systemd sets JOURNAL_STREAM to "dev:ino" of the stream it gave us as stderr. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_open(struct logger *lg, int foreground, int debug)
{
	lg->debug = debug;
	lg->pid = (int)getpid();        /* stderr is used in the foreground only: no fork follows */
	if (foreground)
		lg->dest = stderr_is_journal() ? LOG_TO_JOURNAL : LOG_TO_STDERR;
	else
		lg->dest = LOG_TO_SYSLOG;
	if (lg->dest == LOG_TO_SYSLOG)
		openlog("keytransd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_close(struct logger *lg)
{
	if (lg->dest == LOG_TO_SYSLOG)
		closelog();
}

static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/* One line as written to stderr (timestamp, pid, level); its length, at most cap - 1. */
static size_t format_stderr(char *out, size_t cap, int pid, int prio, const char *line)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(out, cap, "%s.%03ldZ keytransd[%d] %s: %s\n", stamp, ts.tv_nsec / 1000000,
		     pid, prio_name(prio), line);
	if (n < 0)
		return 0;
	return (size_t)n > cap - 1 ? cap - 1 : (size_t)n;
}

static void write_all(const char *p, size_t n)
{
	/* One write per line (or batch of lines) so that lines from several threads do not interleave. */
	if (write(STDERR_FILENO, p, n) < 0)
		return;
}

static void write_stderr(const struct logger *lg, int prio, const char *line)
{
	char out[2300];

	write_all(out, format_stderr(out, sizeof(out), lg->pid, prio, line));
}

static void emit(const struct logger *lg, int prio, const char *line)
{
	switch (lg->dest) {
	case LOG_TO_SYSLOG:
		syslog(prio, "%s", line);
		break;
	case LOG_TO_JOURNAL:
		sd_journal_send("MESSAGE=%s", line, "PRIORITY=%d", prio, "SYSLOG_IDENTIFIER=keytransd",
				NULL);
		break;
	case LOG_TO_STDERR:
		write_stderr(lg, prio, line);
		break;
	}
}

void log_msg(const struct logger *lg, int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (prio == LOG_DEBUG && !lg->debug)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(lg, prio, line);
}

/* Copies s for a log value: printable ASCII only, quotes and backslashes escaped. */
static void escape(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 5 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

/*
 * "exe" is the peer's executable read from /proc, which its uid cannot fake;
 * when that cannot be read (another user's process) it is the command name,
 * which the process sets itself: marked unverified.
 */
static const char *exe_verified(const struct peer *p)
{
	return strncmp(p->exe, "comm:", 5) == 0 || strcmp(p->exe, "?") == 0 ? "no" : "yes";
}

static void audit_line(char *line, size_t cap, const struct peer *p, const struct audit *a,
		       char *k, size_t kcap, char *exe, size_t ecap)
{
	escape(k, kcap, a->key);
	escape(exe, ecap, p->exe);
	snprintf(line, cap, "audit op=%s key=\"%s\" mode=%s uid=%u gid=%u pid=%d exe=\"%s\" "
		 "exe_verified=%s outcome=%s", a->op, k, a->mode, (unsigned)p->uid, (unsigned)p->gid,
		 (int)p->pid, exe, exe_verified(p), a->outcome);
}

void log_audit(const struct logger *lg, const struct peer *p, const struct audit *a)
{
	char k[4 * 64 + 8], exe[4 * PEER_EXE_MAX + 8], line[2048];

	audit_line(line, sizeof(line), p, a, k, sizeof(k), exe, sizeof(exe));
	if (lg->dest != LOG_TO_JOURNAL) {
		emit(lg, LOG_INFO, line);
		return;
	}
	sd_journal_send("MESSAGE=%s", line, "PRIORITY=%d", LOG_INFO, "SYSLOG_IDENTIFIER=keytransd",
			"KEYTRANS_AUDIT=1", "KEYTRANS_OP=%s", a->op, "KEYTRANS_KEY=%s", k,
			"KEYTRANS_MODE=%s", a->mode,
			"KEYTRANS_UID=%u", (unsigned)p->uid, "KEYTRANS_GID=%u", (unsigned)p->gid,
			"KEYTRANS_PID=%d", (int)p->pid, "KEYTRANS_EXE=%s", exe,
			"KEYTRANS_EXE_VERIFIED=%s", exe_verified(p),
			"KEYTRANS_OUTCOME=%s", a->outcome, NULL);
}

void log_audit_batched(const struct logger *lg, struct log_batch *b, const struct peer *p,
		       const struct audit *a)
{
	char k[4 * 64 + 8], exe[4 * PEER_EXE_MAX + 8], line[2048], out[2300];
	size_t n;

	if (lg->dest != LOG_TO_STDERR) {
		log_audit(lg, p, a);
		return;
	}
	audit_line(line, sizeof(line), p, a, k, sizeof(k), exe, sizeof(exe));
	n = format_stderr(out, sizeof(out), lg->pid, LOG_INFO, line);
	if (b->len + n > sizeof(b->buf))
		log_flush(lg, b);
	memcpy(b->buf + b->len, out, n);
	b->len += n;
}

void log_flush(const struct logger *lg, struct log_batch *b)
{
	(void)lg;
	if (b->len > 0)
		write_all(b->buf, b->len);
	b->len = 0;
}
