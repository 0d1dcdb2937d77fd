#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

static void write_stderr(int prio, const char *line)
{
	char stamp[32], out[2300];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(out, sizeof(out), "%s.%03ldZ keytransd[%d] %s: %s\n", stamp,
		     ts.tv_nsec / 1000000, (int)getpid(), prio_name(prio), line);
	if (n > (int)sizeof(out) - 1)
		n = (int)sizeof(out) - 1;
	/* One write per line so that lines from several threads do not interleave. */
	if (write(STDERR_FILENO, out, (size_t)n) < 0)
		return;
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
		write_stderr(prio, line);
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

void log_audit(const struct logger *lg, const struct peer *p, const char *op, const char *key,
	       const char *outcome)
{
	char k[4 * 64 + 8], exe[4 * PEER_EXE_MAX + 8], line[2048];

	escape(k, sizeof(k), key);
	escape(exe, sizeof(exe), p->exe);
	snprintf(line, sizeof(line), "audit op=%s key=\"%s\" uid=%u gid=%u pid=%d exe=\"%s\" outcome=%s",
		 op, k, (unsigned)p->uid, (unsigned)p->gid, (int)p->pid, exe, outcome);
	if (lg->dest != LOG_TO_JOURNAL) {
		emit(lg, LOG_INFO, line);
		return;
	}
	sd_journal_send("MESSAGE=%s", line, "PRIORITY=%d", LOG_INFO, "SYSLOG_IDENTIFIER=keytransd",
			"KEYTRANS_AUDIT=1", "KEYTRANS_OP=%s", op, "KEYTRANS_KEY=%s", k,
			"KEYTRANS_UID=%u", (unsigned)p->uid, "KEYTRANS_GID=%u", (unsigned)p->gid,
			"KEYTRANS_PID=%d", (int)p->pid, "KEYTRANS_EXE=%s", exe,
			"KEYTRANS_OUTCOME=%s", outcome, NULL);
}
