/*
 * Restart in place: the answer to a call stuck inside the PKCS#11 module,
 * which no thread can cancel (docs/reliability.md). The process execs itself
 * with the listening socket kept as fd 3, the way systemd passes one, so
 * connections queued meanwhile are served by the new process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "server.h"

void daemon_restart(struct daemon *d)
{
	int fd = d->server != NULL ? server_listen_fd(d->server) : -1;
	char pid[32];

	/* The listening socket survives the exec as fd 3, the way systemd passes one. */
	if (fd >= 0 && (fd == 3 || dup2(fd, 3) == 3) && fcntl(3, F_SETFD, 0) == 0) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid, 1);
	}
	setenv("KEYTRANSD_RESTARTED", "1", 1);
	sessions_wipe(&d->sessions);    /* the new process starts without them */
	execv("/proc/self/exe", d->argv);
	log_err(&d->log, "cannot restart: %s", strerror(errno));
	_exit(1);
}
