/* main.c - the one cvirt binary: daemon roles and client commands. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/keeper.h"
#include "cli/cli.h"
#include "common/log.h"
#include "manager/manager.h"
#include "sim/sim.h"
#include "version.h"

struct role {
	const char	*name;
	int		 (*main)(int argc, char **argv);
	int		 arenas;	/* malloc arenas; 0: glibc's default */
};

/* Daemon roles; everything else is a client command. The agent's threads
 * (one per VM, the HTTP workers) allocate little and seldom at once: two
 * arenas instead of glibc's up to 8 per core keep ~1 MiB of half-used
 * per-thread heaps out of its resident memory (docs/performance.md). */
static const struct role roles[] = {
	{ "agent",	agent_main,	2 },
	{ "keeper",	keeper_main,	1 },	/* exec'd by the agent */
	{ "manager",	manager_main,	0 },
	{ "sim",	sim_main,	0 },
	{ "up",		up_main,	0 },
};

int
main(int argc, char **argv)
{
	size_t i;

	if (argc >= 2 && (strcmp(argv[1], "version") == 0 ||
	    strcmp(argv[1], "--version") == 0)) {
		printf("cvirt %s\n", CVIRT_VERSION);
		return 0;
	}
	for (i = 0; argc >= 2 && i < sizeof(roles) / sizeof(roles[0]); i++) {
		if (strcmp(argv[1], roles[i].name) == 0) {
			log_init(argv[1], LOG_LVL_INFO);
			if (roles[i].arenas > 0)
				(void)mallopt(M_ARENA_MAX, roles[i].arenas);
			return roles[i].main(argc - 1, argv + 1);
		}
	}
	log_init("cvirt", LOG_LVL_WARN);
	return cli_main(argc, argv);
}
