/* capenv.h - put a unit test (run as root) in the credentials an agent
 * under systemd may have (supplementary groups, inheritable and ambient
 * capabilities), and check a child's /proc/self/status dropped them all. */
#ifndef CVIRT_CAPENV_H
#define CVIRT_CAPENV_H

#include <stddef.h>
#include <sys/types.h>

#include "common/proc.h"

struct capenv {
	gid_t	groups[64];
	int	ngroups;
};

/* Supplementary groups {0, 4, 27}; CAP_NET_ADMIN in the inheritable and
 * ambient sets. 0, or -1 when the kernel refused one. capenv_restore
 * undoes it. */
int	capenv_hostile(struct capenv *save);
void	capenv_restore(const struct capenv *save);
/* 0 when status (a child's /proc/self/status, or its Uid, Gid, Groups,
 * Cap* and NoNewPrivs lines) shows exactly id's uid and gid, groups {gid},
 * every capability set empty and no_new_privs; else -1 with the first
 * line missing in why. */
int	capenv_dropped(const char *status, const struct proc_identity *id,
	    char *why, size_t whysz);

#endif
