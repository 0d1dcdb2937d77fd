/*
 * The user PIN of an HSM: read from its [hsm] pin_file, or from the systemd
 * credential "pin" ($CREDENTIALS_DIRECTORY/pin); never from the command line
 * or the environment. Only a regular file (not a link, FIFO or device),
 * owned by root or the daemon's user, mode 0600 or 0400, is accepted. The
 * PIN is read again for every login (start-up and each recovery) and wiped
 * at once.
 */
#ifndef KT_PIN_H
#define KT_PIN_H

#include <stddef.h>

#include "config.h"

#define PIN_MAX 256
#define CREDENTIAL_PIN "pin"    /* LoadCredential=pin:... */

/* 0 when the PIN file exists and is private (for keytransd -t). */
int pin_check(const struct hsm_conf *h, char *err, size_t errlen);
/*
 * The same checks on the file at path without opening it (keytransd
 * --check-pin): under systemd, on LoadCredential='s source, which the
 * daemon itself never sees.
 */
int pin_check_source(const char *path, char *err, size_t errlen);
/*
 * Reads the PIN into locked memory; the caller gives it back with pin_free.
 * NULL with a sentence in err.
 */
char *pin_read(const struct hsm_conf *h, char *err, size_t errlen);
void pin_free(char *pin);

#endif
