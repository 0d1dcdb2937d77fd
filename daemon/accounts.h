/*
 * Per-uid accounting: how many connections a uid has open and how much
 * locked job memory its requests hold, so that one local user cannot take
 * the daemon from the others. Loop thread only.
 */
#ifndef KT_ACCOUNTS_H
#define KT_ACCOUNTS_H

#include <stddef.h>
#include <sys/types.h>

#define ACCOUNT_BUCKETS 64

struct accounts;

struct account {
	struct account *next;
	struct accounts *home;
	uid_t uid;
	unsigned conns;
	size_t bytes;
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

#endif
