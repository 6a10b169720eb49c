/* agent_int.h - the agent's internal interfaces (one host's daemon). */
#ifndef CVIRT_AGENT_INT_H
#define CVIRT_AGENT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#include "common/httpd.h"
#include "common/util.h"

#define AGENT_MAX_STORAGE 16

struct agent_storage {
	char	name[UTIL_NAME_MAX + 1];
	char	path[PATH_MAX];
};

/* Written once at start-up, read-only afterwards (except the key fields,
 * which report.c owns under agent_key_lock). */
struct agent_cfg {
	char			data[PATH_MAX];
	char			run[PATH_MAX];	/* short dir for unix sockets */
	char			manager[512];
	char			token[256];
	char			name[UTIL_NAME_MAX + 1];
	char			listen[128];
	char			url[160];	/* how the manager reaches us */
	struct agent_storage	storage[AGENT_MAX_STORAGE];
	int			nstorage;
	char			accel[8];
	char			accel_reason[160];
	int			cpus;
	int64_t			memory_mib;
	int			stop_timeout_s;	/* default graceful stop wait */
	size_t			serial_max;	/* bytes kept per serial chunk */
};

extern struct agent_cfg agent_cfg;

/* One VM that this host runs. The table owns every avm; refs keep one
 * alive while a request uses it. Fields below `lock` are under it. */
struct avm {
	char		 uuid[UTIL_UUID_LEN + 1];
	char		 name[UTIL_NAME_MAX + 1];
	char		 storage[UTIL_NAME_MAX + 1];
	char		 dir[PATH_MAX];		/* VM dir on the storage domain */
	char		 qmp_path[108];
	char		 serial_path[108];
	pid_t		 pid;
	int		 child;			/* spawned by this process */
	struct qmp	*qmp;
	pthread_t	 monitor;
	int		 monitor_started;

	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	char		 state[16];		/* running, paused, starting, stopping */
	int		 exited;		/* QEMU is gone */
	int		 clean_shutdown;	/* SHUTDOWN event or stop requested */
	int		 stop_requested;
	int		 refs;
	int64_t		 boots;			/* RESET events since start */
};

/* accel.c */
int	 accel_detect(const char *mode, char *out, size_t outsz, char *why,
	    size_t whysz);

/* vmhost.c: the VM table and lifecycle */
int	 vmhost_init(void);
/* Re-attach to QEMUs recorded in DATA/vms after an agent restart. */
void	 vmhost_reattach(void);
/* Returns a referenced avm or NULL; release with vmhost_put. */
struct avm *vmhost_get(const char *uuid);
void	 vmhost_put(struct avm *vm);
int	 vmhost_define(json_t *spec, char *err, size_t errsz, int *status);
int	 vmhost_undefine(const char *uuid, const char *storage, char *err,
	    size_t errsz, int *status);
int	 vmhost_start(json_t *spec, json_t **result, char *err, size_t errsz,
	    int *status);
int	 vmhost_stop(const char *uuid, int force, int timeout_s, char *err,
	    size_t errsz, int *status);
/* op: "pause", "resume", "reboot" */
int	 vmhost_simple(const char *uuid, const char *op, char *err,
	    size_t errsz, int *status);
/* JSON array of running VMs {uuid, name, state, pid}; new reference. */
json_t	*vmhost_list(void);
/* Exits not yet acknowledged by the manager; new reference. */
json_t	*vmhost_exits(void);
void	 vmhost_exits_ack(json_t *sent);
const char *vmhost_storage_path(const char *name);

/* serial.c */
/* Serial output kept for the VM in dir from absolute offset (-1: all kept).
 * New reference {"data","offset","size"} or NULL with err. */
json_t	*serial_read(const char *dir, int64_t offset, char *err, size_t errsz);
/* Keep serial.log bounded: move it to serial.log.0 past max bytes. */
void	 serial_rotate(const char *dir, size_t max);
extern const struct httpd_ws_route serial_ws_route;
/* A one-use ticket for the console websocket of the VM (30 s). */
int	 serial_ticket_new(const char *uuid, char *out, size_t outsz);

/* report.c: registration and heartbeats */
int	 report_start(void);
void	 report_kick(void);		/* send a report now */
void	 report_stop(void);
/* Copy of the current agent key ("" before registration). */
void	 report_agent_key(char *out, size_t outsz);

/* agent_api.c */
extern const struct httpd_route agent_routes[];
extern const size_t agent_nroutes;
int	 agent_auth(struct httpd_req *r, int min_role);
/* Host facts, storage and VMs as reported to the manager; new reference. */
json_t	*agent_info(void);

#endif
