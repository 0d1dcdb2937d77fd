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

/* Opens the PIN file, refusing one that others could read. */
static int open_pin(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;

	if (fd < 0) {
		snprintf(err, errlen, "cannot read the PIN file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "the PIN file %s must be a regular file readable by its owner only "
			 "(mode %04o; chmod 600 it)", path, (unsigned)(st.st_mode & 07777));
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
