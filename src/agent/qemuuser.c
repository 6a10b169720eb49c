/* qemuuser.c - the user the agent's QEMU processes run as, and DATA/qemu,
 * the directory of files made for them (docs/security.md "Privilege"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"

/* Directories QEMU may read but never change; the setgid bit gives what
 * the agent creates inside them the QEMU user's group. */
#define AGENT_QEMU_DIR_MODE	02750

int
agent_qemu_user_init(const char *user, char *err, size_t errsz)
{
	struct proc_identity *id = &agent_cfg.qemu_id;

	memset(id, 0, sizeof(*id));
	id->uid = geteuid();
	id->gid = getegid();
	if (util_fmt(agent_cfg.qemu_dir, sizeof(agent_cfg.qemu_dir),
	    "%s/qemu", agent_cfg.data) < 0) {
		snprintf(err, errsz, "data directory path too long");
		return -1;
	}
	if (user == NULL)
		return 0;
	/* Only root can start a process as someone else; an unprivileged
	 * agent's QEMU runs as the agent, as it always has. */
	if (geteuid() != 0) {
		log_info("not root: QEMU runs as this agent's user, not %s",
		    user);
		return 0;
	}
	if (strcmp(user, "root") == 0) {
		snprintf(err, errsz, "QEMU must not run as root: set qemu_user "
		    "to an unprivileged user");
		return -1;
	}
	/* kvm: /dev/kvm's group on Debian; absent on hosts without KVM. */
	if (proc_identity_user(user, "kvm", id, err, errsz) < 0) {
		if (errno == ENOENT)
			snprintf(err, errsz, "user %s does not exist: install the "
			    "package or run 'cvirt up' once as root", user);
		id->uid = geteuid();
		id->gid = getegid();
		return -1;
	}
	return 0;
}

/* Open (creating) directory name beneath dfd without following a
 * symlink, ours, then with the QEMU user's group and AGENT_QEMU_DIR_MODE.
 * Created 0700 and only opened up once owned right, through the fd: no
 * window where another user's file or a swapped path gets our chown. */
static int
agent_qemu_subdir(int dfd, const char *name, const char *path)
{
	struct stat st;
	int fd, rc = -1;

	if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	if ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto cleanup;
	if (st.st_uid != geteuid()) {
		log_warnx("%s belongs to uid %u, not to this agent", path,
		    (unsigned)st.st_uid);
		errno = EPERM;
		goto cleanup;
	}
	if ((st.st_gid != agent_cfg.qemu_id.gid &&
	    fchown(fd, (uid_t)-1, agent_cfg.qemu_id.gid) < 0) ||
	    ((st.st_mode & 07777) != AGENT_QEMU_DIR_MODE &&
	    fchmod(fd, AGENT_QEMU_DIR_MODE) < 0))
		goto cleanup;
	rc = 0;
cleanup:
	if (rc < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* 1 when sub is NAME[/NAME...], each NAME a plain name (util_name_valid:
 * never "", "." or ".."): the result stays beneath DATA/qemu. */
static int
agent_qemu_sub_valid(const char *sub)
{
	char buf[PATH_MAX], *c, *save = NULL;
	size_t n = strlen(sub);

	if (n == 0 || sub[0] == '/' || sub[n - 1] == '/' ||
	    strstr(sub, "//") != NULL ||
	    util_fmt(buf, sizeof(buf), "%s", sub) < 0)
		return 0;
	for (c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (!util_name_valid(c))
			return 0;
	return 1;
}

int
agent_qemu_dir(const char *sub, char *out, size_t outsz)
{
	char buf[PATH_MAX], *comp, *save = NULL;
	int dfd = -1, nfd, rc = -1;

	if (sub != NULL && !agent_qemu_sub_valid(sub)) {
		errno = EINVAL;
		return -1;
	}
	if (util_fmt(out, outsz, "%s%s%s", agent_cfg.qemu_dir, sub ? "/" : "",
	    sub ? sub : "") < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", sub ? sub : "");
	if ((dfd = open(agent_cfg.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto cleanup;
	if ((nfd = agent_qemu_subdir(dfd, "qemu", agent_cfg.qemu_dir)) < 0)
		goto cleanup;
	close(dfd);
	dfd = nfd;
	for (comp = strtok_r(buf, "/", &save); comp;
	    comp = strtok_r(NULL, "/", &save)) {
		if ((nfd = agent_qemu_subdir(dfd, comp, out)) < 0)
			goto cleanup;
		close(dfd);
		dfd = nfd;
	}
	rc = 0;
cleanup:
	if (dfd >= 0)
		close(dfd);
	return rc;
}
