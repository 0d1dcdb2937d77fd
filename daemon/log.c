#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

void log_open(struct logger *lg, int to_stderr, int debug)
{
	lg->to_stderr = to_stderr;
	lg->debug = debug;
	if (!to_stderr)
		openlog("keytransd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_close(struct logger *lg)
{
	if (!lg->to_stderr)
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

void log_msg(const struct logger *lg, int prio, const char *fmt, ...)
{
	char line[1024], stamp[32], out[1200];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (prio == LOG_DEBUG && !lg->debug)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!lg->to_stderr) {
		syslog(prio, "%s", line);
		return;
	}
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
