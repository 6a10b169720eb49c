/* proc.c - run helper programs with a timeout and captured output, and
 * the child-side set-up of every program cvirt starts (signals, the
 * unprivileged user it runs as). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"
#include "common/util.h"

void
proc_child_signals(void)
{
	/* All zeros: SIG_DFL, no flags, an empty mask, in every
	 * architecture's kernel struct sigaction (this is larger than any). */
	static const unsigned long zero[8];
	int sig;

	/* The system calls, not sigaction(3): glibc refuses its two internal
	 * signals (32, 33), and its posix_spawn leaves those ignored in each
	 * program it starts (GNU make 4.3 starts recipes that way). */
	for (sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, zero, NULL,
			    (size_t)(_NSIG - 1) / 8);
	(void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, zero, NULL,
	    (size_t)(_NSIG - 1) / 8);
}

int
proc_child_identity(const struct proc_identity *id)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];
	unsigned long cap;
	int r;

	if (id == NULL || !id->set)
		return 0;
	if (id->uid == 0 || id->gid == 0 || id->ngroups < 0 ||
	    id->ngroups > PROC_MAX_GROUPS) {
		errno = EINVAL;
		return -1;
	}
	/* The bounding set, while we still hold CAP_SETPCAP: nothing the
	 * program execs later can gain one back. EINVAL ends the list. */
	for (cap = 0; cap < 64; cap++) {
		if ((r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) < 0) {
			if (errno == EINVAL)
				break;
			return -1;
		}
		if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -1;
	}
	/* The system calls, not glibc's wrappers: they act on this thread
	 * only, which is the whole process after fork, and are safe here.
	 * Groups and gid first: after the uid changes we may not. */
	if (syscall(SYS_setgroups, (size_t)id->ngroups, id->groups) < 0 ||
	    syscall(SYS_setresgid, id->gid, id->gid, id->gid) < 0 ||
	    syscall(SYS_setresuid, id->uid, id->uid, id->uid) < 0)
		return -1;
	/* The uid change cleared the permitted, effective and ambient sets
	 * unless a securebit kept them; the inheritable set it leaves. All
	 * empty (the ambient set follows permitted and inheritable). */
	memset(none, 0, sizeof(none));
	if (syscall(SYS_capset, &hdr, none) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	/* The caller's working directory would be a way into a directory
	 * the user could not otherwise reach. */
	if (chdir("/") < 0)
		return -1;
	if (getuid() != id->uid || geteuid() != id->uid ||
	    getgid() != id->gid || getegid() != id->gid) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

int
proc_identity_user(const char *user, const char *extra_group,
    struct proc_identity *id, char *err, size_t errsz)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	/* Once per agent start; a group with thousands of members fits. */
	size_t bufsz = 1 << 20;
	char *buf = NULL;
	int rc = -1, e;

	memset(id, 0, sizeof(*id));
	if (user == NULL || user[0] == '\0' || strlen(user) > 32) {
		snprintf(err, errsz, "invalid user name");
		errno = EINVAL;
		return -1;
	}
	if ((buf = malloc(bufsz)) == NULL) {
		snprintf(err, errsz, "out of memory");
		errno = ENOMEM;
		goto cleanup;
	}
	if ((e = getpwnam_r(user, &pw, buf, bufsz, &pwp)) != 0 ||
	    pwp == NULL) {
		snprintf(err, errsz, "user %s does not exist%s%s", user,
		    e ? ": " : "", e ? strerror(e) : "");
		errno = e ? e : ENOENT;
		goto cleanup;
	}
	if (pw.pw_uid == 0 || pw.pw_gid == 0) {
		snprintf(err, errsz, "user %s is root or in group root: "
		    "refused", user);
		errno = EPERM;
		goto cleanup;
	}
	id->set = 1;
	id->uid = pw.pw_uid;
	id->gid = pw.pw_gid;
	id->groups[id->ngroups++] = pw.pw_gid;
	/* pw's strings share buf: its ids are copied out already. */
	if (extra_group && getgrnam_r(extra_group, &gr, buf, bufsz,
	    &grp) == 0 && grp != NULL && gr.gr_gid != 0 &&
	    gr.gr_gid != id->gid)
		id->groups[id->ngroups++] = gr.gr_gid;
	rc = 0;
cleanup:
	if (rc < 0)
		memset(id, 0, sizeof(*id));
	free(buf);
	return rc;
}

int
proc_fd_high(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

int
proc_exec_status(int rfd, pid_t pid, const char *bin, char *err,
    size_t errsz)
{
	ssize_t n;
	int e;

	do {
		n = read(rfd, &e, sizeof(e));
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(e) || e == 0 || e == INT_MIN) {
		snprintf(err, errsz, "cannot run %s: exec status unknown", bin);
		errno = EIO;
	} else if (e < 0) {
		snprintf(err, errsz, "cannot run %s as an unprivileged user: %s",
		    bin, strerror(-e));
		errno = -e;
	} else {
		snprintf(err, errsz, "cannot run %s: %s", bin, strerror(e));
		errno = e;
	}
	return -1;
}

int
proc_fork_exec(const char *bin, proc_child_fn child, void *arg, pid_t *pid,
    char *err, size_t errsz)
{
	int efd[2] = { -1, -1 }, rc = -1;
	sigset_t all, old;
	pid_t p;

	if (pipe2(efd, O_CLOEXEC) < 0 || (efd[0] = proc_fd_high(efd[0])) < 0 ||
	    (efd[1] = proc_fd_high(efd[1])) < 0) {
		snprintf(err, errsz, "cannot run %s: pipe: %s", bin,
		    strerror(errno));
		goto cleanup;
	}
	/* No handler of ours may run in the child before it resets them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	p = fork();
	if (p == 0)
		child(arg, efd[1]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (p < 0) {
		snprintf(err, errsz, "cannot run %s: fork: %s", bin,
		    strerror(errno));
		goto cleanup;
	}
	close(efd[1]);
	efd[1] = -1;
	if (proc_exec_status(efd[0], p, bin, err, errsz) < 0)
		goto cleanup;
	*pid = p;
	rc = 0;
cleanup:
	if (efd[0] >= 0)
		close(efd[0]);
	if (efd[1] >= 0)
		close(efd[1]);
	return rc;
}

struct proc_child_arg {
	const struct proc_identity	*id;
	char *const			*argv;
	int				 nullfd, outfd;
};

void
proc_child_fail(int errfd, int e)
{
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

void
proc_child_exec(const struct proc_identity *id, char *const argv[],
    int errfd)
{
	proc_child_signals();
	if (proc_child_identity(id) < 0)
		proc_child_fail(errfd, -errno);
	execvp(argv[0], argv);
	proc_child_fail(errfd, errno);
}

/* In the child after fork: only async-signal-safe calls from here on. */
static void __attribute__((noreturn))
proc_child(void *arg, int errfd)
{
	const struct proc_child_arg *c = arg;

	if (dup2(c->nullfd, 0) < 0 || dup2(c->outfd, 1) < 0 ||
	    dup2(c->outfd, 2) < 0)
		proc_child_fail(errfd, errno);
	proc_child_exec(c->id, c->argv, errfd);
}

/* Start argv as id with stdin from /dev/null and stdout+stderr into outfd
 * (> 2): 0 and the pid, or -1 with a reason in out. */
static int
proc_start(const struct proc_identity *id, char *const argv[], int outfd,
    pid_t *pid, char *out, size_t outsz)
{
	struct proc_child_arg c = { .id = id, .argv = argv, .outfd = outfd };
	int rc;

	c.nullfd = proc_fd_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (c.nullfd < 0) {
		snprintf(out, outsz, "cannot run %s: %s", argv[0],
		    strerror(errno));
		return -1;
	}
	rc = proc_fork_exec(argv[0], proc_child, &c, pid, out, outsz);
	close(c.nullfd);
	return rc;
}

int
proc_run(char *const argv[], char *out, size_t outsz, int timeout_ms)
{
	return proc_run_as(NULL, argv, out, outsz, timeout_ms);
}

int
proc_run_as(const struct proc_identity *id, char *const argv[], char *out,
    size_t outsz, int timeout_ms)
{
	struct pollfd pfd;
	int pipefd[2] = { -1, -1 }, status = 0, rc = -1;
	size_t len = 0;
	int64_t deadline = util_mono_ms() + timeout_ms;
	pid_t pid = -1;
	char sink[512];

	if (outsz > 0)
		out[0] = '\0';
	if (pipe2(pipefd, O_CLOEXEC) < 0 ||
	    (pipefd[0] = proc_fd_high(pipefd[0])) < 0 ||
	    (pipefd[1] = proc_fd_high(pipefd[1])) < 0) {
		snprintf(out, outsz, "cannot run %s: pipe: %s", argv[0],
		    strerror(errno));
		goto cleanup;
	}
	if (proc_start(id, argv, pipefd[1], &pid, out, outsz) < 0) {
		pid = -1;
		goto cleanup;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	for (;;) {
		int64_t left = deadline - util_mono_ms();
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			snprintf(out, outsz, "%s timed out", argv[0]);
			waitpid(pid, &status, 0);
			pid = -1;
			goto cleanup;
		}
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		if (len + 1 < outsz)
			n = read(pipefd[0], out + len, outsz - len - 1);
		else
			n = read(pipefd[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len + 1 < outsz) {
			len += (size_t)n;
			out[len] = '\0';
		}
	}
	if (waitpid(pid, &status, 0) < 0)
		goto cleanup;
	pid = -1;
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (rc < 0)
		snprintf(out, outsz, "%s was killed by signal %d", argv[0],
		    WTERMSIG(status));
cleanup:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return rc;
}

void
proc_last_line(const char *s, char *out, size_t outsz)
{
	const char *end = s + strlen(s), *start;

	while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	start = end;
	while (start > s && start[-1] != '\n')
		start--;
	snprintf(out, outsz, "%.*s", (int)(end - start), start);
}
