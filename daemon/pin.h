/*
 * The user PIN of an HSM: read from its [hsm] pin_file, or from the systemd
 * credential "pin" ($CREDENTIALS_DIRECTORY/pin); never from the command line
 * or the environment. A file that others could read is refused. The PIN is
 * read again for every login (start-up and each recovery) and wiped at once.
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
 * Reads the PIN into locked memory; the caller gives it back with pin_free.
 * NULL with a sentence in err.
 */
char *pin_read(const struct hsm_conf *h, char *err, size_t errlen);
void pin_free(char *pin);

#endif
