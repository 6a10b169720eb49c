/* proc.h - run a helper program (qemu-img, ip, ...) and capture its output. */
#ifndef CVIRT_PROC_H
#define CVIRT_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Run argv (argv[0] searched in PATH) with stdin from /dev/null and
 * stdout+stderr captured into out (truncated, NUL-terminated). Kills it
 * after timeout_ms. Returns the exit status (0..255), or -1 when it could
 * not run or was killed; out then holds a reason. */
int	proc_run(char *const argv[], char *out, size_t outsz, int timeout_ms);
/* In a child between fork and exec (async-signal-safe): every signal to
 * its default action and none blocked, glibc's internal ones included, so
 * no program we start inherits what our parent ignored (nohup, make, a CI
 * runner) or what we block (SIGTERM, for sigwait). */
void	proc_child_signals(void);
/* fd itself when it is above 2; otherwise a close-on-exec duplicate above
 * 2 (fd is closed), so a child's dup2 onto 0-2 cannot clobber it. -1 on
 * error or when fd < 0. */
int	proc_fd_high(int fd);
/* The parent's side of a fork whose child writes its errno to the write
 * end (close-on-exec) of the pipe rfd reads when exec fails: 0 once the
 * child has exec'd; -1 with errno set, the child reaped and "cannot run
 * BIN: REASON" in err otherwise. */
int	proc_exec_status(int rfd, pid_t pid, const char *bin, char *err,
	    size_t errsz);
/* Last non-empty line of s, copied into out (for one-line errors). */
void	proc_last_line(const char *s, char *out, size_t outsz);

#endif
