/* manager.h - the management server (`cvirt manager`) and `cvirt up`. */
#ifndef CVIRT_MANAGER_H
#define CVIRT_MANAGER_H

int	manager_main(int argc, char **argv);
int	up_main(int argc, char **argv);

#endif
