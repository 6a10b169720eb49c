/* capenv.c - an agent's credentials for unit tests, and the check that a
 * child dropped them (capenv.h). */
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "capenv.h"

/* Add (on) or remove CAP_NET_ADMIN in the inheritable set, and with it
 * in the ambient set (which needs it inheritable and permitted). */
static int
capenv_inherit(int on)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &hdr, d) < 0)
		return -1;
	if (on)
		d[0].inheritable |= 1U << CAP_NET_ADMIN;
	else
		d[0].inheritable &= ~(1U << CAP_NET_ADMIN);
	if (syscall(SYS_capset, &hdr, d) < 0)
		return -1;
	return on ? prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN,
	    0, 0) : 0;
}

int
capenv_hostile(struct capenv *save)
{
	static const gid_t extra[3] = { 0, 4, 27 };

	if ((save->ngroups = getgroups(64, save->groups)) < 0 ||
	    setgroups(3, extra) < 0)
		return -1;
	return capenv_inherit(1);
}

void
capenv_restore(const struct capenv *save)
{
	(void)capenv_inherit(0);
	(void)setgroups((size_t)save->ngroups, save->groups);
}

/* 1 when text has line (ending in '\n') as a whole line. */
static int
capenv_has_line(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if (p == text || p[-1] == '\n')
			return 1;
		p += n;
	}
	return 0;
}

int
capenv_dropped(const char *status, const struct proc_identity *id,
    char *why, size_t whysz)
{
	static const char *const zero[] = { "CapInh", "CapPrm", "CapEff",
	    "CapBnd", "CapAmb" };
	char want[5][128];
	size_t i;

	snprintf(want[0], sizeof(want[0]), "Uid:\t%u\t%u\t%u\t%u\n", id->uid,
	    id->uid, id->uid, id->uid);
	snprintf(want[1], sizeof(want[1]), "Gid:\t%u\t%u\t%u\t%u\n", id->gid,
	    id->gid, id->gid, id->gid);
	snprintf(want[2], sizeof(want[2]), "Groups:\t%u \n", id->gid);
	snprintf(want[3], sizeof(want[3]), "NoNewPrivs:\t1\n");
	for (i = 0; i < 4; i++) {
		if (!capenv_has_line(status, want[i])) {
			snprintf(why, whysz, "no \"%s\"", want[i]);
			return -1;
		}
	}
	for (i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
		snprintf(want[4], sizeof(want[4]), "%s:\t0000000000000000\n",
		    zero[i]);
		if (!capenv_has_line(status, want[4])) {
			snprintf(why, whysz, "%s not empty", zero[i]);
			return -1;
		}
	}
	return 0;
}
