/* A backtrace on stderr when the daemon dies of a fatal signal (crash.c). */
#ifndef KT_CRASH_H
#define KT_CRASH_H

void crash_handler_install(void);

#endif
