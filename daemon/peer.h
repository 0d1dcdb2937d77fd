/*
 * Who is on the other end of a connection: the kernel's credentials of the
 * connecting process (SO_PEERCRED, SO_PEERGROUPS), taken once at accept
 * time, plus its executable for the audit log (best effort).
 */
#ifndef KT_PEER_H
#define KT_PEER_H

#include <sys/types.h>

#define PEER_GROUPS_MAX 64
#define PEER_EXE_MAX 256

struct peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int ngroups;                    /* supplementary groups held (at most PEER_GROUPS_MAX) */
	gid_t groups[PEER_GROUPS_MAX];
	char exe[PEER_EXE_MAX];         /* "/usr/bin/app", "comm:app" or "?" */
};

/* Fills p from the connected socket fd; -1 if the kernel gives no credentials. */
int peer_identify(int fd, struct peer *p);
/* 1 when the peer holds gid as its primary or a supplementary group. */
int peer_in_group(const struct peer *p, gid_t gid);

#endif
