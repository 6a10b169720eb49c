/* proc.h - run a helper program (qemu-img, ip, ...) and capture its output. */
#ifndef CVIRT_PROC_H
#define CVIRT_PROC_H

#include <stddef.h>
#include <sys/types.h>

#define PROC_MAX_GROUPS 4

/* Who a child runs as (QEMU, qemu-img on users' files). Resolved once in
 * the parent (proc_identity_user), applied in the child between fork and
 * exec (proc_child_identity). */
struct proc_identity {
	int	set;			/* 0: as the caller, nothing changes */
	uid_t	uid;
	gid_t	gid;
	gid_t	groups[PROC_MAX_GROUPS];	/* exactly these supplementary */
	int	ngroups;
};

/* Run argv (argv[0] searched in PATH) with stdin from /dev/null and
 * stdout+stderr captured into out (truncated, NUL-terminated). Kills it
 * after timeout_ms. Returns the exit status (0..255), or -1 when it could
 * not run or was killed; out then holds a reason. */
int	proc_run(char *const argv[], char *out, size_t outsz, int timeout_ms);
/* proc_run as id (NULL or !id->set: as the caller): the child drops to
 * id->uid/gid with exactly id->groups, no capability in any set (bounding
 * and ambient included), no_new_privs, cwd "/". When it cannot, nothing
 * runs: -1 and "cannot run BIN as an unprivileged user: REASON" in out. */
int	proc_run_as(const struct proc_identity *id, char *const argv[],
	    char *out, size_t outsz, int timeout_ms);
/* id for user name: its uid and primary gid, supplementary groups its
 * primary gid plus extra_group's gid when extra_group (may be NULL)
 * exists. Refuses root (uid or gid 0). 0, or -1 with a one-line reason. */
int	proc_identity_user(const char *user, const char *extra_group,
	    struct proc_identity *id, char *err, size_t errsz);
/* In a child between fork and exec (async-signal-safe): become id (see
 * proc_run_as); a no-op when !id->set. 0, or -1 with errno. */
int	proc_child_identity(const struct proc_identity *id);
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
 * end (close-on-exec) of the pipe rfd reads when exec fails (the errno
 * negated when proc_child_identity failed): 0 once the child has exec'd;
 * -1 with errno set, the child reaped and "cannot run BIN: REASON" (or
 * "cannot run BIN as an unprivileged user: REASON") in err otherwise. */
int	proc_exec_status(int rfd, pid_t pid, const char *bin, char *err,
	    size_t errsz);
/* What runs in the child of proc_fork_exec (async-signal-safe only): it
 * execs, or writes its errno (negated when proc_child_identity failed)
 * to errfd and calls _exit. It never returns. */
typedef void (*proc_child_fn)(void *arg, int errfd);
/* The end of every such child: signals reset, id taken (when set), argv
 * exec'd; on failure the errno goes to errfd (negated for the identity)
 * and the child exits 127. proc_child_fail(errfd, errno) for a failure
 * before that. */
void	proc_child_exec(const struct proc_identity *id, char *const argv[],
	    int errfd) __attribute__((noreturn));
void	proc_child_fail(int errfd, int e) __attribute__((noreturn));
/* fork with every signal blocked around it (no handler of ours may run in
 * the child before it resets them) and child(arg, errfd) in the child,
 * errfd the close-on-exec write end of a pipe above fd 2; then
 * proc_exec_status. 0 and the pid, or -1 with "cannot run BIN: ..." in
 * err. */
int	proc_fork_exec(const char *bin, proc_child_fn child, void *arg,
	    pid_t *pid, char *err, size_t errsz);
/* Last non-empty line of s, copied into out (for one-line errors). */
void	proc_last_line(const char *s, char *out, size_t outsz);

#endif
