/* agent.h - the hypervisor host daemon (`cvirt agent`). */
#ifndef CVIRT_AGENT_H
#define CVIRT_AGENT_H

/* argv[0] is "agent". Returns the exit status. */
int	agent_main(int argc, char **argv);

#endif
