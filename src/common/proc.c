/* proc.c - run helper programs with a timeout and captured output, and
 * the child-side set-up of every program cvirt starts. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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
	snprintf(err, errsz, "cannot run %s: %s", bin,
	    n == (ssize_t)sizeof(e) ? strerror(e) : "exec status unknown");
	errno = n == (ssize_t)sizeof(e) ? e : EIO;
	return -1;
}

/* In the child after fork: only async-signal-safe calls from here on. */
static void __attribute__((noreturn))
proc_child(char *const argv[], int nullfd, int outfd, int errfd)
{
	int e;

	if (dup2(nullfd, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0)
		goto fail;
	proc_child_signals();
	execvp(argv[0], argv);
fail:
	e = errno;
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

/* Start argv with stdin from /dev/null and stdout+stderr into outfd (> 2):
 * 0 and the pid, or -1 with a reason in out. */
static int
proc_start(char *const argv[], int outfd, pid_t *pid, char *out,
    size_t outsz)
{
	int nullfd, efd[2] = { -1, -1 }, rc = -1;
	sigset_t all, old;
	pid_t child;

	nullfd = proc_fd_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (nullfd < 0 || pipe2(efd, O_CLOEXEC) < 0 ||
	    (efd[0] = proc_fd_high(efd[0])) < 0 ||
	    (efd[1] = proc_fd_high(efd[1])) < 0) {
		snprintf(out, outsz, "cannot run %s: %s", argv[0],
		    strerror(errno));
		goto cleanup;
	}
	/* No handler of ours may run in the child before it resets them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	child = fork();
	if (child == 0)
		proc_child(argv, nullfd, outfd, efd[1]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (child < 0) {
		snprintf(out, outsz, "cannot run %s: fork: %s", argv[0],
		    strerror(errno));
		goto cleanup;
	}
	close(efd[1]);
	efd[1] = -1;
	if (proc_exec_status(efd[0], child, argv[0], out, outsz) < 0)
		goto cleanup;
	*pid = child;
	rc = 0;
cleanup:
	if (nullfd >= 0)
		close(nullfd);
	if (efd[0] >= 0)
		close(efd[0]);
	if (efd[1] >= 0)
		close(efd[1]);
	return rc;
}

int
proc_run(char *const argv[], char *out, size_t outsz, int timeout_ms)
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
	if (proc_start(argv, pipefd[1], &pid, out, outsz) < 0) {
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
