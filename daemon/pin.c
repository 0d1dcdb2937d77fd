#include "pin.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

static int pin_path(const struct hsm_conf *h, char *path, size_t len, char *err, size_t errlen)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");

	if (h->pin_file[0] != '\0') {
		snprintf(path, len, "%s", h->pin_file);
	} else if (creds != NULL && creds[0] != '\0') {
		snprintf(path, len, "%s/%s", creds, CREDENTIAL_PIN);
	} else {
		snprintf(err, errlen, "no PIN: set [hsm] pin_file, or run under systemd with "
			 "LoadCredential=" CREDENTIAL_PIN ":FILE");
		return -1;
	}
	return 0;
}

static const char *file_kind(mode_t mode)
{
	if (S_ISLNK(mode))
		return "a symbolic link (links are not followed)";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "of an unknown type";
}

static void owner_error(const char *path, uid_t owner, char *err, size_t errlen)
{
	uid_t me = geteuid();

	if (me == 0)
		snprintf(err, errlen, "the PIN file %s must be owned by root, not by uid %u (chown it)",
			 path, (unsigned)owner);
	else
		snprintf(err, errlen, "the PIN file %s must be owned by root or by uid %u (the daemon's "
			 "user), not by uid %u (chown it)", path, (unsigned)me, (unsigned)owner);
}

/*
 * Whether st describes a file fit to hold the PIN: a regular file (a FIFO or
 * a device could block, or feed the PIN from elsewhere), that only root or
 * this process's user can chmod (another user could open theirs up to
 * everyone at any time), readable by its owner only.
 */
static int check_stat(const char *path, const struct stat *st, char *err, size_t errlen)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);

	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "the PIN file %s must be a regular file, not %s", path,
			 file_kind(st->st_mode));
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		owner_error(path, st->st_uid, err, errlen);
		return -1;
	}
	if (mode != 0600 && mode != 0400) {
		snprintf(err, errlen, "the PIN file %s must be a regular file readable by its owner only "
			 "(mode %04o; chmod 600 it)", path, mode);
		return -1;
	}
	return 0;
}

/*
 * Opens the PIN file, refusing one that others could read. O_NONBLOCK: a
 * FIFO would otherwise block the open until a writer came, hanging the
 * start or keytransd -t; it is opened at once and refused by the checks.
 */
static int open_pin(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		/* ELOOP is also what O_NOFOLLOW gives for a link: say which. */
		if (errno == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			check_stat(path, &st, err, errlen);
		else
			snprintf(err, errlen, "cannot read the PIN file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot read the PIN file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (check_stat(path, &st, err, errlen) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int pin_check(const struct hsm_conf *h, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd;

	if (pin_path(h, path, sizeof(path), err, errlen) != 0 || (fd = open_pin(path, err, errlen)) < 0)
		return -1;
	close(fd);
	return 0;
}

/*
 * lstat, not open: it needs search permission on the folders only, so the
 * daemon's user can check root's 0600 file (ExecStartPre= without "+"),
 * and nothing is read.
 */
int pin_check_source(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		snprintf(err, errlen, "cannot check the PIN file %s: %s", path, strerror(errno));
		return -1;
	}
	return check_stat(path, &st, err, errlen);
}

char *pin_read(const struct hsm_conf *h, char *err, size_t errlen)
{
	char path[PATH_MAX], *pin;
	ssize_t n;
	int fd;

	if (pin_path(h, path, sizeof(path), err, errlen) != 0 || (fd = open_pin(path, err, errlen)) < 0)
		return NULL;
	pin = OPENSSL_secure_zalloc(PIN_MAX + 1);
	if (pin == NULL) {
		snprintf(err, errlen, "out of locked memory");
		close(fd);
		return NULL;
	}
	n = read(fd, pin, PIN_MAX);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read the PIN file %s: %s", path, strerror(errno));
		pin_free(pin);
		return NULL;
	}
	pin[n] = '\0';
	pin[strcspn(pin, "\r\n")] = '\0';
	if (pin[0] == '\0') {
		snprintf(err, errlen, "the PIN file %s is empty", path);
		pin_free(pin);
		return NULL;
	}
	return pin;
}

void pin_free(char *pin)
{
	if (pin != NULL)
		OPENSSL_secure_clear_free(pin, PIN_MAX + 1);
}
