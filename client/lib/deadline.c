/* Per-call time limits on the monotonic clock. */
#include "internal.h"

#include <limits.h>

void deadline_start(struct deadline *d, int timeout_ms)
{
	d->forever = timeout_ms <= 0;
	clock_gettime(CLOCK_MONOTONIC, &d->end);
	if (d->forever)
		return;
	d->end.tv_sec += timeout_ms / 1000;
	d->end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (d->end.tv_nsec >= 1000000000L) {
		d->end.tv_sec++;
		d->end.tv_nsec -= 1000000000L;
	}
}

int deadline_left(const struct deadline *d)
{
	struct timespec now;
	long long ms;

	if (d->forever)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(d->end.tv_sec - now.tv_sec) * 1000 +
	     (d->end.tv_nsec - now.tv_nsec) / 1000000;
	if (ms <= 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}
