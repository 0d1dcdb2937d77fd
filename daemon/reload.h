/*
 * SIGHUP: the configuration file is read again. Keys added or removed, and
 * new rules, take effect without dropping a connection; requests already
 * checked finish under the rules and keys they were checked with (struct
 * gen). A file that does not load, or whose keys the HSMs cannot serve, is
 * refused with a log line and the running configuration stays in force.
 * Settings that need a restart (socket, workers, [daemon] limits, [hsm]
 * sections) are reported and kept as they are. Loop thread only.
 */
#ifndef KT_RELOAD_H
#define KT_RELOAD_H

struct daemon;

/* -1 when the loop's event cannot be made. */
int reload_init(struct daemon *d);
void reload_start(struct daemon *d);
void reload_free(struct daemon *d);

#endif
