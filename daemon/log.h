/*
 * Logging: to stderr (foreground), syslog (background), or the systemd
 * journal with structured fields when stderr is connected to it. The logger
 * lives in the daemon's context and is passed to whoever logs; it is set once
 * before any thread starts and only read afterwards. Nothing logged may hold
 * key material, a PIN or a decrypted byte.
 */
#ifndef KT_LOG_H
#define KT_LOG_H

#include <stddef.h>
#include <syslog.h>

struct peer;

enum log_dest { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_JOURNAL };

struct logger {
	enum log_dest dest;
	int debug;
	int pid;                        /* in stderr lines: asked once (a system call each time) */
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
struct audit {
	const char *op;
	const char *key;
	const char *mode;       /* what the request asked for: "-", "strict", "oaep", "strict,oaep" */
	const char *outcome;
};
void log_audit(const struct logger *lg, const struct peer *p, const struct audit *a);

/*
 * Audit records gathered during one event-loop iteration and written to
 * stderr with one write (under load, a write per operation is a measurable
 * share of the loop's time); syslog and the journal take them one by one.
 */
struct log_batch {
	size_t len;
	char buf[16384];
};
void log_audit_batched(const struct logger *lg, struct log_batch *b, const struct peer *p,
		       const struct audit *a);
void log_flush(const struct logger *lg, struct log_batch *b);

#define log_err(lg, ...) log_msg((lg), LOG_ERR, __VA_ARGS__)
#define log_warn(lg, ...) log_msg((lg), LOG_WARNING, __VA_ARGS__)
#define log_info(lg, ...) log_msg((lg), LOG_INFO, __VA_ARGS__)
#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, __VA_ARGS__)

#endif
