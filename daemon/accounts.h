/*
 * Per-uid accounting: how many connections a uid has open, how much memory
 * its requests hold (locked job memory and the replies waiting to be read)
 * and how often it is refused, so that one local user cannot take the daemon
 * (or the audit log) from the others. Loop thread only.
 */
#ifndef KT_ACCOUNTS_H
#define KT_ACCOUNTS_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define ACCOUNT_BUCKETS 64

struct accounts;

struct account {
	struct account *next;
	struct accounts *home;
	uid_t uid;
	unsigned conns;
	size_t bytes;
	time_t audit_sec;               /* refusals: the second being counted ... */
	unsigned audit_n;               /* ... how many were logged in it ... */
	unsigned long audit_dropped;    /* ... and how many were not, since the last one logged */
};

struct accounts {
	struct account *bucket[ACCOUNT_BUCKETS];
	size_t budget;                  /* bytes one uid may hold */
	void (*relief)(void *arg);      /* called when an account falls back below 3/4 of it */
	void *arg;
};

/* The uid's account, created when needed; NULL when out of memory. */
struct account *accounts_get(struct accounts *a, uid_t uid);
/* Frees the account once it has no connection and no bytes. */
void accounts_put(struct accounts *a, struct account *acct);
/* 1 when the account holds its whole budget (its connections should stop reading). */
int account_over(const struct account *acct);
/* 1 when the account is far enough below budget to read again. */
int account_relieved(const struct account *acct);
void account_charge(struct account *acct, size_t bytes);
/* Gives bytes back; may call the relief callback, and frees an idle account. */
void account_refund(struct account *acct, size_t bytes);
void accounts_free(struct accounts *a);

/* Refusals of one uid logged one by one in a second, at most: the rest are counted. */
#define ACCOUNT_AUDIT_PER_SECOND 10
/*
 * 1 when a refusal of this uid at now may be logged on its own, with
 * *dropped set to how many were not since the last one logged (a record of
 * them goes first); 0 when it is only counted. A local user cannot flood the
 * log (nor journald's rate limit, drowning other users' records).
 */
int account_audit_allowed(struct account *acct, time_t now, unsigned long *dropped);
/*
 * Calls report(uid, n, arg) for each uid with n > 0 refusals counted but not
 * written in a second before now, and resets them: so that the count of a
 * burst is written soon after it, even if no refusal follows.
 */
void accounts_audit_flush(struct accounts *a, time_t now,
			  void (*report)(uid_t uid, unsigned long n, void *arg), void *arg);

#endif
