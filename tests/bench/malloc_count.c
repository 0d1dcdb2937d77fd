/*
 * LD_PRELOAD helper for docs/performance.md: counts heap allocations by the
 * shared object that called malloc/calloc/realloc, so that allocations per
 * request can be attributed (keytransd's own code, libevent, libcrypto, the
 * PKCS#11 module...). SIGUSR1 resets the counters, SIGUSR2 writes them to
 * $MALLOC_COUNT_FILE (one "COUNT OBJECT" line each).
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

#define SLOTS 64

struct slot {
	_Atomic(uintptr_t) base;        /* the object's load address, 0 when free */
	atomic_ulong count;
	char name[120];
};

static struct slot slots[SLOTS];
static atomic_ulong unknown;

static void count(void *caller)
{
	Dl_info info;
	uintptr_t base;

	if (caller == NULL || dladdr(caller, &info) == 0 || info.dli_fbase == NULL) {
		atomic_fetch_add(&unknown, 1);
		return;
	}
	base = (uintptr_t)info.dli_fbase;
	for (int i = 0; i < SLOTS; i++) {
		uintptr_t expected = 0;

		if (atomic_load(&slots[i].base) == base ||
		    atomic_compare_exchange_strong(&slots[i].base, &expected, base)) {
			if (expected == 0 && slots[i].name[0] == '\0')
				snprintf(slots[i].name, sizeof(slots[i].name), "%s", info.dli_fname);
			atomic_fetch_add(&slots[i].count, 1);
			return;
		}
	}
	atomic_fetch_add(&unknown, 1);
}

void *malloc(size_t n)
{
	count(__builtin_return_address(0));
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	count(__builtin_return_address(0));
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	count(__builtin_return_address(0));
	return __libc_realloc(p, n);
}

static void reset(int sig)
{
	(void)sig;
	for (int i = 0; i < SLOTS; i++)
		atomic_store(&slots[i].count, 0);
	atomic_store(&unknown, 0);
}

static void dump(int sig)
{
	const char *path = getenv("MALLOC_COUNT_FILE");
	FILE *f;

	(void)sig;
	/* No fixed path under /tmp, where another user's file or link could be waiting. */
	if (path == NULL || path[0] == '\0') {
		static const char msg[] = "malloc_count: set MALLOC_COUNT_FILE to get the counts\n";

		(void)!write(2, msg, sizeof(msg) - 1);
		return;
	}
	/* Not async-signal-safe, but the measurement is taken while the process is idle. */
	f = fopen(path, "w");
	if (f == NULL)
		return;
	for (int i = 0; i < SLOTS; i++)
		if (atomic_load(&slots[i].count) > 0)
			fprintf(f, "%lu %s\n", atomic_load(&slots[i].count), slots[i].name);
	fprintf(f, "%lu (unknown)\n", atomic_load(&unknown));
	fclose(f);
}

__attribute__((constructor)) static void init(void)
{
	signal(SIGUSR1, reset);
	signal(SIGUSR2, dump);
}
