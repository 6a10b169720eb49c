/* sigenv.h - put a unit test in the signal state a hostile parent leaves
 * (ignored and blocked signals), to check what children inherit. */
#ifndef CVIRT_SIGENV_H
#define CVIRT_SIGENV_H

#include <signal.h>

/* What a child of ours must show in /proc/self/status. */
#define SIGENV_CLEAN_BLK	"SigBlk:\t0000000000000000\n"
#define SIGENV_CLEAN_IGN	"SigIgn:\t0000000000000000\n"

struct sigenv {
	unsigned long	old[8][8];	/* kernel sigactions, as saved */
	sigset_t	mask;
};

/* Ignore SIGHUP (nohup), SIGPIPE (Python), SIGINT, SIGUSR2 and glibc's
 * internal signals 32 and 33 (GNU make 4.3 starts recipes with glibc's
 * posix_spawn, which leaves those two ignored, and sigaction(3) cannot set
 * them: done with the system call here); block SIGUSR1 and SIGTERM (as the
 * daemons do for sigwait). 0, or -1 when the kernel refused one.
 * sigenv_restore undoes it. */
int	sigenv_hostile(struct sigenv *save);
void	sigenv_restore(const struct sigenv *save);

#endif
