/* cli.h - the client commands (`cvirt vm ...`, `cvirt host ...`). */
#ifndef CVIRT_CLI_H
#define CVIRT_CLI_H

/* argv[0] is the program; returns the process exit status. */
int	cli_main(int argc, char **argv);

#endif
