/*
 * keytransd.conf: INI, read with inih. Relative paths are taken relative to
 * the file's folder; unknown sections and keys are errors that name them.
 */
#ifndef KT_CONFIG_H
#define KT_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_NAME_MAX 64
#define CONFIG_LABEL_MAX 256
#define CONFIG_ID_MAX 64
#define CONFIG_TOKEN_MAX 32
#define CONFIG_WORKERS_MAX 16   /* libp11 keeps 16 sessions per slot */

struct key_conf {
	char name[CONFIG_NAME_MAX + 1];     /* what clients call it */
	char label[CONFIG_LABEL_MAX + 1];   /* CKA_LABEL, "" when not given */
	uint8_t id[CONFIG_ID_MAX];          /* CKA_ID */
	size_t id_len;                      /* 0 when not given */
};

struct config {
	char socket[PATH_MAX];
	mode_t socket_mode;
	int workers;
	char module[PATH_MAX];
	char token[CONFIG_TOKEN_MAX + 1];
	char pin_file[PATH_MAX];
	struct key_conf *keys;
	size_t nkeys;
};

/*
 * Reads and checks path. On failure returns -1 with a message in err that
 * names the file and line (or section) at fault; *c is then empty.
 */
int config_load(const char *path, struct config *c, char *err, size_t errlen);
void config_free(struct config *c);

#endif
