/*
 * Logging: to stderr (foreground), syslog (background), or the systemd
 * journal with structured fields when stderr is connected to it. The logger
 * lives in the daemon's context and is passed to whoever logs; it is set once
 * before any thread starts and only read afterwards. Nothing logged may hold
 * key material, a PIN or a decrypted byte.
 */
#ifndef KT_LOG_H
#define KT_LOG_H

#include <syslog.h>

struct peer;

enum log_dest { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_JOURNAL };

struct logger {
	enum log_dest dest;
	int debug;
};

/* foreground: stderr, or the journal when stderr is the journal's stream. */
void log_open(struct logger *lg, int foreground, int debug);
void log_close(struct logger *lg);
__attribute__((format(printf, 3, 4)))
void log_msg(const struct logger *lg, int prio, const char *fmt, ...);
/*
 * The audit record of a private-key operation or a refusal: who (uid, gid,
 * pid, executable), what (operation, key name) and the outcome (a status
 * name). Values from the peer are escaped.
 */
void log_audit(const struct logger *lg, const struct peer *p, const char *op, const char *key,
	       const char *outcome);

#define log_err(lg, ...) log_msg((lg), LOG_ERR, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LOG_WARNING, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LOG_INFO, __VA_ARGS__)
#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, __VA_ARGS__)

#endif
