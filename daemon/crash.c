/*
 * A fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) writes the
 * signal and a backtrace to stderr before the process dies as it would have:
 * core dumps are off (secrets), so this line in the log or journal is what
 * an operator can report. Only async-signal-safe calls, plus backtrace(),
 * which is loaded at start so that it does not allocate in the handler.
 */
#include "crash.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define KT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KT_SANITIZED 1
#endif
#endif

#ifdef KT_SANITIZED
/* The sanitizers' own handlers report more than this one can. */
void crash_handler_install(void)
{
}
#else
#define CRASH_FRAMES 64

static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };

static void say(const char *s)
{
	ssize_t rc = write(STDERR_FILENO, s, strlen(s));

	(void)rc;
}

static void on_fatal(int sig)
{
	void *frames[CRASH_FRAMES];
	int n = backtrace(frames, CRASH_FRAMES);

	say("keytransd: fatal signal ");
	say(sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" :
	    sig == SIGILL ? "SIGILL" : "SIGABRT");
	say("; backtrace (binary(+offset): addr2line -e BINARY OFFSET):\n");
	backtrace_symbols_fd(frames, n, STDERR_FILENO);
	signal(sig, SIG_DFL);
	raise(sig);
}

void crash_handler_install(void)
{
	void *warm[1];
	struct sigaction sa;

	backtrace(warm, 1);     /* loads libgcc now, not inside the handler */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaction(fatal_signals[i], &sa, NULL);
}
#endif
