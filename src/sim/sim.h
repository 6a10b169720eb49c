/* sim.h - the `cvirt sim` role (simulated hosts for scale tests). */
#ifndef CVIRT_SIM_H
#define CVIRT_SIM_H

int	sim_main(int argc, char **argv);

#endif
