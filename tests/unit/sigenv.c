/* sigenv.c - a hostile parent's signal state for unit tests (sigenv.h). */
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sigenv.h"

static const int sigenv_ignored[8] = { SIGHUP, SIGPIPE, SIGINT, SIGUSR2,
    32, 33, 0, 0 };

int
sigenv_hostile(struct sigenv *save)
{
	/* handler SIG_IGN, no flags, empty mask: the first word is the
	 * handler in every architecture's kernel struct sigaction but MIPS. */
	unsigned long ign[8] = { (unsigned long)SIG_IGN };
	sigset_t blk;
	int i, rc = 0;

	memset(save, 0, sizeof(*save));
	for (i = 0; i < 8 && sigenv_ignored[i] != 0; i++)
		if (syscall(SYS_rt_sigaction, sigenv_ignored[i], ign,
		    save->old[i], (size_t)(_NSIG - 1) / 8) < 0)
			rc = -1;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR1);
	sigaddset(&blk, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &blk, &save->mask) < 0)
		rc = -1;
	return rc;
}

void
sigenv_restore(const struct sigenv *save)
{
	int i;

	sigprocmask(SIG_SETMASK, &save->mask, NULL);
	for (i = 0; i < 8 && sigenv_ignored[i] != 0; i++)
		(void)syscall(SYS_rt_sigaction, sigenv_ignored[i],
		    save->old[i], NULL, (size_t)(_NSIG - 1) / 8);
}
