/* proc.c - run helper programs with a timeout and captured output. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"
#include "common/util.h"

extern char **environ;

int
proc_run(char *const argv[], char *out, size_t outsz, int timeout_ms)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	struct pollfd pfd;
	int pipefd[2] = { -1, -1 }, status = 0, rc = -1, fa_init = 0;
	int attr_init = 0;
	size_t len = 0;
	int64_t deadline = util_mono_ms() + timeout_ms;
	pid_t pid = -1;
	char sink[512];

	if (outsz > 0)
		out[0] = '\0';
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		goto cleanup;
	posix_spawn_file_actions_init(&fa);
	fa_init = 1;
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	/* The caller's blocked and ignored signals (the agent blocks SIGTERM
	 * for sigwait) must not stick to helpers that outlive it (dnsmasq). */
	posix_spawnattr_init(&attr);
	attr_init = 1;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGHUP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	errno = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	if (errno != 0) {
		snprintf(out, outsz, "cannot run %s: %s", argv[0], strerror(errno));
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
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_init)
		posix_spawnattr_destroy(&attr);
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
