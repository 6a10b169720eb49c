/* qemu_spawn.c - start QEMU detached: its fds in place, its signals reset,
 * as its unprivileged user (the command line: qemu_cmd.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/proc.h"
#include "qemu/qemu_cmd.h"

struct qemu_child_arg {
	char				**argv;
	const struct qemu_vm_spec	 *spec;
	int				  nullfd, logfd, maxfd;
};

/* In the child after fork: only async-signal-safe calls from here on.
 * Every fd we keep first moves above the slots, so no dup2 onto a slot
 * clobbers one not yet placed; then 0-2, the error pipe at 3, the slots
 * (dup2 clears close-on-exec: QEMU inherits them), everything else
 * closed; then signals and the user. */
static void __attribute__((noreturn))
qemu_child(void *arg, int errfd)
{
	const struct qemu_child_arg *c = arg;
	const struct qemu_vm_spec *s = c->spec;
	int moved[QEMU_MAX_FDS], top = QEMU_FD_FIRST + s->npass, fd, i;
	int nullfd, logfd;

	if (setsid() < 0 || (fd = fcntl(errfd, F_DUPFD_CLOEXEC, top)) < 0)
		proc_child_fail(errfd, errno);
	errfd = fd;
	if ((nullfd = fcntl(c->nullfd, F_DUPFD_CLOEXEC, top)) < 0 ||
	    (logfd = fcntl(c->logfd, F_DUPFD_CLOEXEC, top)) < 0)
		proc_child_fail(errfd, errno);
	for (i = 0; i < s->npass; i++)
		if ((moved[i] = fcntl(s->pass_fd[i], F_DUPFD_CLOEXEC, top)) < 0)
			proc_child_fail(errfd, errno);
	if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 ||
	    dup3(errfd, 3, O_CLOEXEC) < 0)
		proc_child_fail(errfd, errno);
	errfd = 3;
	for (i = 0; i < s->npass; i++)
		if (dup2(moved[i], QEMU_FD_FIRST + i) < 0)
			proc_child_fail(errfd, errno);
	if (syscall(SYS_close_range, (unsigned)top, ~0U, 0U) < 0) {
		for (fd = top; fd < c->maxfd; fd++)
			(void)close(fd);
	}
	proc_child_exec(&s->user, c->argv, errfd);
}

/* The passed fds are open files, no directory, and read-only where QEMU
 * only reads (CD-ROMs, read-only disks, kernel, initrd): a writable fd
 * would stay writable in QEMU whatever the command line says. */
static int
qemu_check_pass(const struct qemu_vm_spec *s, char *err, size_t errsz)
{
	int ro[QEMU_MAX_FDS] = { 0 }, i, j, fl;
	struct stat st;

	if (s->kernel_fd)
		ro[s->kernel_fd - QEMU_FD_FIRST] = 1;
	if (s->initrd_fd)
		ro[s->initrd_fd - QEMU_FD_FIRST] = 1;
	for (i = 0; i < s->ndisks; i++) {
		if (!s->disks[i].fdset || !(s->disks[i].readonly ||
		    s->disks[i].cdrom))
			continue;
		for (j = 0; j < s->nfdsets; j++)
			if (s->fdsets[j].set == s->disks[i].fdset)
				ro[s->fdsets[j].slot - QEMU_FD_FIRST] = 1;
	}
	for (i = 0; i < s->npass; i++) {
		if ((fl = fcntl(s->pass_fd[i], F_GETFL)) < 0 ||
		    fstat(s->pass_fd[i], &st) < 0 || S_ISDIR(st.st_mode)) {
			snprintf(err, errsz, "cannot pass fd %d to QEMU: %s",
			    s->pass_fd[i], fl < 0 ? strerror(errno) :
			    "a directory");
			return -1;
		}
		if (ro[i] && (fl & O_ACCMODE) != O_RDONLY) {
			snprintf(err, errsz, "cannot pass fd %d to QEMU: a "
			    "read-only device's file must be open read-only",
			    s->pass_fd[i]);
			return -1;
		}
	}
	return 0;
}

static int
qemu_max_fd(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > 65536)
		return 65536;
	return (int)rl.rlim_cur;
}

int
qemu_spawn(const struct qemu_vm_spec *spec, const char *logfile, pid_t *pid,
    char *err, size_t errsz)
{
	struct qemu_child_arg c = { .spec = spec, .nullfd = -1, .logfd = -1 };
	int rc = -1;

	if ((c.argv = qemu_build_argv(spec)) == NULL) {
		snprintf(err, errsz, "cannot build QEMU command line: %s",
		    errno == EINVAL ? "invalid VM description" : strerror(errno));
		return -1;
	}
	if (qemu_check_pass(spec, err, errsz) < 0)
		goto cleanup;
	c.nullfd = proc_fd_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (c.nullfd < 0) {
		snprintf(err, errsz, "cannot open /dev/null: %s", strerror(errno));
		goto cleanup;
	}
	c.logfd = proc_fd_high(open(logfile, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0640));
	if (c.logfd < 0) {
		snprintf(err, errsz, "cannot open %s: %s", logfile, strerror(errno));
		goto cleanup;
	}
	c.maxfd = qemu_max_fd();
	rc = proc_fork_exec(c.argv[0], qemu_child, &c, pid, err, errsz);
cleanup:
	if (c.nullfd >= 0)
		close(c.nullfd);
	if (c.logfd >= 0)
		close(c.logfd);
	qemu_argv_free(c.argv);
	return rc;
}
