/* main.c - the one cvirt binary: daemon roles and client commands. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "common/httpc.h"
#include "common/log.h"
#include "manager/manager.h"
#include "sim/sim.h"
#include "version.h"

struct role {
	const char	*name;
	int		 (*main)(int argc, char **argv);
};

/* Daemon roles; everything else is a client command. */
static const struct role roles[] = {
	{ "agent",	agent_main },
	{ "manager",	manager_main },
	{ "sim",	sim_main },
	{ "up",		up_main },
};

int
main(int argc, char **argv)
{
	size_t i;

	httpc_global_init();
	if (argc >= 2 && (strcmp(argv[1], "version") == 0 ||
	    strcmp(argv[1], "--version") == 0)) {
		printf("cvirt %s\n", CVIRT_VERSION);
		return 0;
	}
	for (i = 0; argc >= 2 && i < sizeof(roles) / sizeof(roles[0]); i++) {
		if (strcmp(argv[1], roles[i].name) == 0) {
			log_init(argv[1], LOG_LVL_INFO);
			return roles[i].main(argc - 1, argv + 1);
		}
	}
	log_init("cvirt", LOG_LVL_WARN);
	return cli_main(argc, argv);
}
