/* sim_int.h - `cvirt sim`: simulated hosts that speak the agent protocol
 * (register, report, answer the manager's calls) without QEMU. */
#ifndef CVIRT_SIM_INT_H
#define CVIRT_SIM_INT_H

#include <pthread.h>
#include <stdint.h>
#include <jansson.h>

#include "common/httpd.h"
#include "common/util.h"

#define SIM_HOST_CPUS	64
#define SIM_HOST_MIB	(256 * 1024)
#define SIM_STORAGE	"sim"

struct sim_vm {
	char	uuid[UTIL_UUID_LEN + 1];
	char	state[16];		/* running, paused */
	int64_t	pid, cpu_ms;
};

/* One simulated host; lock guards the VM list and the key. */
struct sim_host {
	pthread_mutex_t	 lock;
	char		 name[UTIL_NAME_MAX + 1];
	char		 key[128];	/* agent key, "" before registering */
	struct sim_vm	*vms;
	size_t		 nvms, cap;
	int64_t		 next_report;	/* monotonic ms */
	int64_t		 interval_ms;
};

struct sim_cfg {
	char		 manager[1024];	/* URL[,URL...] */
	char		 token[256];	/* admin or join token */
	char		 listen[128];
	char		 prefix[32];
	int		 hosts, vms_per_host, threads;
	struct sim_host	*tab;
};
extern struct sim_cfg sim_cfg;

/* sim_host.c */
extern const struct httpd_route sim_routes[];
extern const size_t sim_nroutes;
/* Registers (when needed) and reports every due host of this thread's
 * share, forever until *quit. */
void	*sim_reporter(void *arg);
/* Manager URL of the moment (URL1,URL2... fail over) + path. */
void	 sim_url(char *out, size_t outsz, const char *path);
void	 sim_failover(long status);
/* Adds a running VM to host h (the manager thinks it runs there). */
void	 sim_vm_add(struct sim_host *h, const char *uuid, const char *state);
extern volatile int sim_quit;

#endif
