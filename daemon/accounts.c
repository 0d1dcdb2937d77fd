#include "accounts.h"

#include <stdlib.h>

struct account *accounts_get(struct accounts *a, uid_t uid)
{
	struct account **head = &a->bucket[uid % ACCOUNT_BUCKETS], *acct;

	for (acct = *head; acct != NULL; acct = acct->next)
		if (acct->uid == uid)
			return acct;
	acct = calloc(1, sizeof(*acct));
	if (acct == NULL)
		return NULL;
	acct->uid = uid;
	acct->home = a;
	acct->next = *head;
	*head = acct;
	return acct;
}

void accounts_put(struct accounts *a, struct account *acct)
{
	struct account **pp = &a->bucket[acct->uid % ACCOUNT_BUCKETS];

	/* Kept while it has refusals to report (accounts_audit_flush frees it then). */
	if (acct->conns != 0 || acct->bytes != 0 || acct->audit_dropped != 0)
		return;
	while (*pp != acct)
		pp = &(*pp)->next;
	*pp = acct->next;
	free(acct);
}

void accounts_free(struct accounts *a)
{
	for (size_t i = 0; i < ACCOUNT_BUCKETS; i++)
		while (a->bucket[i] != NULL) {
			struct account *next = a->bucket[i]->next;

			free(a->bucket[i]);
			a->bucket[i] = next;
		}
}

int account_over(const struct account *acct)
{
	return acct->bytes >= acct->home->budget;
}

int account_relieved(const struct account *acct)
{
	return acct->bytes < acct->home->budget / 4 * 3;
}

void account_charge(struct account *acct, size_t bytes)
{
	acct->bytes += bytes;
}

void account_refund(struct account *acct, size_t bytes)
{
	struct accounts *a = acct->home;
	int was_relieved = account_relieved(acct);

	acct->bytes -= bytes;
	if (!was_relieved && account_relieved(acct) && a->relief != NULL)
		a->relief(a->arg);
	accounts_put(a, acct);
}

int account_audit_allowed(struct account *acct, time_t now, unsigned long *dropped)
{
	if (now != acct->audit_sec) {
		acct->audit_sec = now;
		acct->audit_n = 0;
	}
	if (acct->audit_n >= ACCOUNT_AUDIT_PER_SECOND) {
		acct->audit_dropped++;
		return 0;
	}
	acct->audit_n++;
	*dropped = acct->audit_dropped;
	acct->audit_dropped = 0;
	return 1;
}

void accounts_audit_flush(struct accounts *a, time_t now,
			  void (*report)(uid_t uid, unsigned long n, void *arg), void *arg)
{
	for (size_t i = 0; i < ACCOUNT_BUCKETS; i++) {
		struct account *acct = a->bucket[i], *next;

		for (; acct != NULL; acct = next) {
			next = acct->next;
			if (acct->audit_dropped == 0 || acct->audit_sec == now)
				continue;
			report(acct->uid, acct->audit_dropped, arg);
			acct->audit_dropped = 0;
			accounts_put(a, acct);      /* frees it if it was only kept for this */
		}
	}
}
