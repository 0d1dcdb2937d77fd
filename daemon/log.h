/*
 * Logging to stderr (foreground) or syslog. The logger lives in the daemon's
 * context and is passed to whoever logs; it is set once before any thread
 * starts and only read afterwards.
 */
#ifndef KT_LOG_H
#define KT_LOG_H

#include <syslog.h>

struct logger {
	int to_stderr;
	int debug;
};

void log_open(struct logger *lg, int to_stderr, int debug);
void log_close(struct logger *lg);
__attribute__((format(printf, 3, 4)))
void log_msg(const struct logger *lg, int prio, const char *fmt, ...);

#define log_err(lg, ...) log_msg((lg), LOG_ERR, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LOG_WARNING, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LOG_INFO, __VA_ARGS__)
#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, __VA_ARGS__)

#endif
