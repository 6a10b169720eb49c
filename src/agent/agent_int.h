/* agent_int.h - the agent's internal interfaces (one host's daemon). */
#ifndef CVIRT_AGENT_INT_H
#define CVIRT_AGENT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#include "common/httpd.h"
#include "common/proc.h"
#include "common/util.h"

#define AGENT_MAX_STORAGE 16

struct agent_storage {
	char	name[UTIL_NAME_MAX + 1];
	char	path[PATH_MAX];
	int	direct;		/* its VMs' disks bypass the page cache */
};

#define AGENT_MAX_MEDIA_DIRS 8

/* Written once at start-up, read-only afterwards (except the key fields,
 * which report.c owns under agent_key_lock). */
struct agent_cfg {
	char			data[PATH_MAX];
	char			run[PATH_MAX];	/* short dir for unix sockets */
	/* qemuuser.c: who QEMU runs as (.set 0: as the agent; .uid/.gid
	 * are then the agent's own, the owner files for QEMU get) and
	 * DATA/qemu, where files only QEMU reads live */
	struct proc_identity	qemu_id;
	char			qemu_dir[PATH_MAX];
	char			manager[512];
	char			token[256];
	char			name[UTIL_NAME_MAX + 1];
	char			listen[128];
	char			migration_addr[64];	/* where we receive migrations */
	char			url[160];	/* how the manager reaches us */
	struct agent_storage	storage[AGENT_MAX_STORAGE];
	int			nstorage;
	/* --media-dir: directories an admin lists whose files (beneath
	 * them) may be boot media, kernels and import sources, besides the
	 * media areas of the storage domains (media.c) */
	char			media_dirs[AGENT_MAX_MEDIA_DIRS][PATH_MAX];
	int			nmedia_dirs;
	char			accel[8];
	char			accel_reason[160];
	int			cpus;
	int64_t			memory_mib;
	int			stop_timeout_s;	/* default graceful stop wait */
	size_t			serial_max;	/* bytes kept per serial chunk */
	int			lock_fd;	/* data/agent.lock, held for
						 * life (> 2), or -1 */
	/* the lease keeper (docs/keeper.md) */
	char			watchdog[PATH_MAX];	/* auto|none|DEV|unix:PATH */
	int64_t			renew_ms;	/* R */
	int64_t			fence_ms;	/* F */
	int64_t			kill_grace_ms;	/* K */
	int64_t			watchdog_ms;	/* W */
};

extern struct agent_cfg agent_cfg;

#define AGENT_MAX_NICS 8	/* QEMU_MAX_NICS: one PCIe root port each */

/* One vNIC of a running VM (nicops.c). */
struct avm_nic {
	char	mac[18];
	int	port;		/* root port: QEMU ids net<port>, nic<port> */
	int	tap;		/* has a TAP on this host (not "user") */
	int	deleted;	/* DEVICE_DELETED seen (unplug under way) */
};

/* One VM that this host runs. The table owns every avm; refs keep one
 * alive while a request uses it. Fields below `lock` are under it. */
struct avm {
	char		 uuid[UTIL_UUID_LEN + 1];
	char		 name[UTIL_NAME_MAX + 1];
	char		 storage[UTIL_NAME_MAX + 1];
	unsigned	 domains;		/* bit i: agent_cfg.storage[i] holds
						 * its metadata or a disk (the
						 * keeper fences it for those) */
	char		 dir[PATH_MAX];		/* VM dir on the storage domain */
	char		 qmp_path[108];
	char		 serial_path[108];
	pid_t		 pid;
	int		 pidfd;			/* QEMU's end is known by it alone
						 * (vmexit.c); -1 only when an
						 * adopted one's cannot be opened */
	int		 child;			/* spawned by this process */
	struct qmp	*qmp;
	pthread_t	 monitor;
	int		 monitor_started;

	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	char		 state[16];		/* running, paused, starting, stopping,
						 * unknown (vmadopt.c) */
	char		 unknown_reason[192];	/* why it is unknown */
	int		 exited;		/* QEMU is gone */
	int		 clean_shutdown;	/* SHUTDOWN event or stop requested */
	int		 stop_requested;
	int		 incoming;		/* waiting for a migration stream */
	int		 migrating;		/* outgoing migration under way */
	int		 migrated;		/* handed over: its exit is no failure */
	int		 ha;			/* restarted by the manager on failure */
	char		 ha_monitor[16];	/* process, panic, watchdog, ... */
	char		 fail_reason[192];	/* why its exit is a failure */
	int		 refs;
	int64_t		 boots;			/* RESET events since start */
	/* health.c: heartbeat and tcp:PORT monitors (set before QEMU starts) */
	char		 qga_path[108];		/* guest agent port socket, or "" */
	char		 health_addr[64];	/* where tcp:PORT connects */
	int		 health_port;		/* the guest port of tcp:PORT */
	int		 fwd_port;		/* loopback port forwarded to it, or 0 */
	int		 health_armed;		/* answered since start or reboot */
	struct avm_nic	 nics[AGENT_MAX_NICS];	/* its NICs on this host */
	int		 nnics;
};

/* accel.c */
int	 accel_detect(const char *mode, char *out, size_t outsz, char *why,
	    size_t whysz);

/* qemuuser.c: the user QEMU runs as */
/* agent_cfg.qemu_id and .qemu_dir (after agent_cfg.data is set). user
 * NULL, or an agent that is not root: QEMU runs as the agent. Otherwise
 * user's uid/gid with groups {its gid, kvm}; root or a missing user is
 * refused: -1 with err. */
int	 agent_qemu_user_init(const char *user, char *err, size_t errsz);
/* DATA/qemu or, with sub ("tls", "psk/UUID8": plain names), a directory
 * beneath it, created when missing: owned by the agent, group the QEMU
 * user's, 02750, never through a symlink. Its path in out; 0, or -1 with
 * errno (EINVAL for a bad sub). */
int	 agent_qemu_dir(const char *sub, char *out, size_t outsz);

/* vmhost.c: the VM table and lifecycle */
int	 vmhost_init(void);
/* Returns a referenced avm or NULL; release with vmhost_put. */
struct avm *vmhost_get(const char *uuid);
void	 vmhost_put(struct avm *vm);
int	 vmhost_define(json_t *spec, char *err, size_t errsz, int *status);
int	 vmhost_undefine(const char *uuid, const char *storage, char *err,
	    size_t errsz, int *status);
/* incoming: start QEMU with "-incoming defer" to receive a migration. */
int	 vmhost_start(json_t *spec, int incoming, json_t **result, char *err,
	    size_t errsz, int *status);
/* Set the state and report it at once. */
void	 vmhost_set_state(struct avm *vm, const char *state);
int	 vmhost_stop(const char *uuid, int force, int timeout_s, char *err,
	    size_t errsz, int *status);
/* op: "pause", "resume", "reboot" */
int	 vmhost_simple(const char *uuid, const char *op, char *err,
	    size_t errsz, int *status);
/* JSON array of running VMs {uuid, name, state, pid}; new reference. */
json_t	*vmhost_list(void);
/* Exits not yet acknowledged by the manager; new reference. */
json_t	*vmhost_exits(void);
/* The last recorded exit of a VM's QEMU on this host ({uuid, pid, state,
 * reason}, a copy to decref), or NULL. */
json_t	*vmhost_exit_of(const char *uuid);
void	 vmhost_exits_ack(json_t *sent);
const char *vmhost_storage_path(const char *name);
/* media_open's file (what, value) passed to QEMU (q): its slot, or -1
 * with err; vmhost_start closes it after QEMU started. */
struct qemu_vm_spec;
int	 vmhost_media_fd(struct qemu_vm_spec *q, const char *what,
	    const char *value, char *err, size_t errsz);
/* 1 when the domain takes O_DIRECT (its VMs' disks bypass the page cache;
 * domwatch_start decides). */
int	 vmhost_storage_direct(const char *name);
/* The storage domains of a VM spec (its storage and each disk's) as a
 * mask of agent_cfg.storage; -1 with err when one is not attached here. */
int	 vmhost_domains(json_t *spec, unsigned *mask, char *err, size_t errsz);
/* Names of the domains in mask, a new array; and back (unknown names are
 * skipped). */
json_t	*vmhost_domain_names(unsigned mask);
unsigned vmhost_domain_mask(json_t *names);
/* Rewrite DATA/vms/UUID.json (what a restarted agent re-attaches to). */
int	 vmhost_record_save(struct avm *vm);
/* The VM failed (a fired watchdog, a lost heartbeat...): its exit is a
 * failure with this reason; end its QEMU so that HA restarts it. */
void	 vmhost_fail(struct avm *vm, const char *reason);
/* One wait on vm->cond (vm->lock held), at most 200 ms, until the
 * monotonic deadline (ms); -1 once it has passed. */
int	 vmhost_cond_wait_locked(struct avm *vm, int64_t deadline);
/* Wait until QEMU is gone or ms passed; 1 when gone. */
int	 vmhost_wait_exit(struct avm *vm, int64_t ms);
/* For vmadopt.c. Insert a new VM in state "starting" (one reference for
 * the table, one for the caller); NULL with err and *status (409 when the
 * uuid is already in the table). */
struct avm *vmhost_insert(const char *uuid, const char *name,
	    const char *storage, char *err, size_t errsz, int *status);
/* Take the VM out of the table and drop the table's reference. */
void	 vmhost_remove(struct avm *vm);
/* Keep the serial logs of the VMs on storage bounded (its serial
 * thread, serialcopy.c: storage I/O). */
void	 vmhost_rotate_serials(const char *storage);
/* fn(uuid) with the VM table locked, unless uuid is in it (a start
 * inserts the VM before anything else). */
void	 vmhost_unless_here(const char *uuid, void (*fn)(const char *));
/* vm->dir, qmp_path and serial_path from its uuid and storage. */
int	 vmhost_paths(struct avm *vm, char *err, size_t errsz);
/* Queue an exit for the manager; remove the record and the sockets. */
void	 vmhost_record_exit(struct avm *vm, const char *state,
	    const char *reason);
/* QMP event callback (ud: the avm). */
void	 vmhost_event(void *ud, const char *event, json_t *data);

/* vmexit.c: a QEMU's end, known by its pidfd alone */
/* How long a killed QEMU may take to exit before it is "unknown" ("QEMU
 * pid N does not exit (uninterruptible I/O)"). */
#define VMEXIT_KILL_WAIT_MS	5000
/* The thread that reads vm->qmp's events (vm->qmp may be NULL: then only
 * the pidfd) until QEMU exits, then calls vmexit_ended. */
int	 vmexit_monitor_start(struct avm *vm);
/* QEMU has exited (or QMP closed): make sure it is gone (waiting as long
 * as it takes, "unknown" meanwhile), record the exit, take the VM out of
 * the table and drop the caller's reference. */
void	 vmexit_ended(struct avm *vm);
/* Send sig to the QEMU through its pidfd: 0, or -1 (ESRCH: it is gone). */
int	 vmexit_kill(struct avm *vm, int sig);
/* 1 once every thread of QEMU has exited (within ms; a child is reaped),
 * else 0. Only the VM's owner thread calls it (it may set vm->pidfd). */
int	 vmexit_gone(struct avm *vm, int64_t ms);
/* A stop's SIGKILL did not end QEMU within VMEXIT_KILL_WAIT_MS: the VM is
 * unknown now; the stop's error into err. */
void	 vmexit_stop_failed(struct avm *vm, char *err, size_t errsz);

/* vmadopt.c: after an agent restart, the QEMUs of this host (DATA/vms
 * records and a /proc scan) into the table; one that does not answer QMP
 * stays "unknown" with its pid while a thread retries the attach. */
void	 vmadopt_start(void);
/* "complete", or "partial" while a record or /proc could not be read. */
const char *vmadopt_scan(void);
/* 1 once a scan has put every QEMU of this agent in the table (before,
 * a VM missing from it may still run here). */
int	 vmadopt_complete(void);
/* 1 when vm is unknown (not attached to its QMP). */
int	 vmadopt_unknown(struct avm *vm);
/* Stop an unknown VM through its pidfd (SIGTERM, then SIGKILL; force:
 * SIGKILL at once); done only once the pidfd says it exited. */
int	 vmadopt_stop(struct avm *vm, int force, int timeout_s, char *err,
	    size_t errsz, int *status);

/* nicops.c: vNICs (TAPs on this host, hot-plug) */
struct qemu_vm_spec;
struct qmp;
struct qemu_nic;
/* q->nics from the spec's "nics", attaching a TAP for every network but
 * "user", and vm->nics; on error nothing stays attached. */
int	 nic_qemu_spec(struct avm *vm, json_t *spec, struct qemu_vm_spec *q,
	    char *err, size_t errsz);
/* The VM's QEMU has ended for good on this host: delete its TAPs. */
void	 nic_release(struct avm *vm);
/* vm->nics for the agent's record (new reference), and back. */
json_t	*nic_record(struct avm *vm);
void	 nic_record_load(struct avm *vm, json_t *list);
/* QMP DEVICE_DELETED of the VM (data borrowed). */
void	 nic_device_deleted(struct avm *vm, json_t *data);
/* netdev_add + device_add of n; the netdev is removed again when
 * device_add fails. */
int	 nic_qmp_plug(struct qmp *q, const struct qemu_nic *n, char *err,
	    size_t errsz);
/* device_del, wait up to timeout_ms for DEVICE_DELETED, netdev_del. */
int	 nic_qmp_unplug(struct avm *vm, const char *mac, int timeout_ms,
	    char *err, size_t errsz);
/* Hot-plug (nic: one nic object, borrowed) and unplug on a running VM,
 * recorded in its metadata; *result {"nic"?, "nics"} (new reference). */
int	 nic_plug(const char *uuid, json_t *nic, json_t **result, char *err,
	    size_t errsz, int *status);
int	 nic_unplug(const char *uuid, const char *mac, json_t **result,
	    char *err, size_t errsz, int *status);
int	 nicapi_plug(struct httpd_req *r);	/* POST .../vms/{uuid}/nics */
int	 nicapi_unplug(struct httpd_req *r);	/* DELETE .../nics/{mac} */

/* health.c: the heartbeat and tcp:PORT HA monitors */
#define HEALTH_NONE		0
#define HEALTH_HEARTBEAT	1
#define HEALTH_TCP		2
#define HEALTH_INTERVAL_DEF	2000	/* ms between probes */
#define HEALTH_INTERVAL_MIN	500
#define HEALTH_INTERVAL_MAX	60000
#define HEALTH_TIMEOUT_MIN	250	/* a probe waits interval/2, at least this */
#define HEALTH_MISSES_DEF	3	/* misses in a row that make a failure */
#define HEALTH_MISSES_MAX	100
struct qemu_vm_spec;
/* HEALTH_* of a monitor word; the guest port of tcp:PORT in *port. */
int	 health_kind(const char *monitor, int *port);
/* Devices the monitor needs: the guest agent port, a forward of the
 * guest port on the user-mode NIC (after the NICs are in q), or the
 * watchdog. */
int	 health_qemu_spec(struct avm *vm, json_t *spec,
	    struct qemu_vm_spec *q, char *err, size_t errsz);
/* Its fields in the agent's record (rec borrowed), and back. */
void	 health_record_save(struct avm *vm, json_t *rec);
void	 health_record_load(struct avm *vm, json_t *rec);
/* A thread that probes the VM until its QEMU is gone (no-op for other
 * monitors). */
int	 health_start(struct avm *vm);
/* Interval and misses from the manager's cluster settings. */
void	 health_settings(int interval_ms, int misses);

/* migrate.c: live migration, both ends */
/* mig: the manager's {"psk", "source"} for this migration. */
int	 mig_incoming(json_t *spec, json_t *mig, json_t **result, char *err,
	    size_t errsz, int *status);
int	 mig_start(const char *uuid, json_t *params, char *err, size_t errsz,
	    int *status);
json_t	*mig_status(const char *uuid, char *err, size_t errsz, int *status);
int	 mig_cancel(const char *uuid, char *err, size_t errsz, int *status);
int	 mig_finish(const char *uuid, char *err, size_t errsz, int *status);
/* Resume a source left in postmigrate ({"paused": true}: pause it again). */
int	 mig_resume(const char *uuid, json_t *params, char *err, size_t errsz,
	    int *status);
/* The VM now runs here after an incoming migration: QMP announce-self,
 * so switches and bridges learn its MACs' new place at once. */
void	 mig_announce(struct avm *vm);

/* domwatch.c: a thread per storage domain does the periodic storage I/O
 * (checks, lease snapshots, isolation records, serial log rotation);
 * others read its cache. */
/* Start the threads; waits up to 2 s for each domain's O_DIRECT probe and
 * sets agent_cfg.storage[].direct (once: before the keeper's start). */
int	 domwatch_start(void);
/* 0 when the domain's last check found it usable and no storage call of
 * its thread has been under way for over 3000 ms; else -1 with why (for a
 * 503) in err. Waits for a call under way for 1500 ms or more, at most
 * until that bound. */
int	 domwatch_ok(const char *name, char *err, size_t errsz);
/* domwatch_ok for every domain of a VM spec (vmhost_domains). */
int	 domwatch_ready(json_t *spec, char *err, size_t errsz);
/* [{name, path, ok, error, direct, total_bytes, free_bytes}] from the
 * cache; new reference. */
json_t	*domwatch_storage_json(void);
/* {leases, read_start_age_ms, read_ms}: the last snapshot of the domain's
 * lease records (new reference), or NULL with err and *status (400
 * unknown domain, 503 none yet or the domain does not answer, as in
 * domwatch_ok, but without a wait: the snapshot's age says how old). */
json_t	*domwatch_leases(const char *name, char *err, size_t errsz,
	    int *status);
/* Write (stopped: the HA VMs powered off, borrowed) or remove the
 * isolation record on every domain, from its own thread; no wait. */
void	 domwatch_isolation(json_t *stopped);
void	 domwatch_isolation_clear(void);

/* lease.c: the keeper's client (the keeper: keeper.h), lease records,
 * isolation records */
/* Start the keeper (or keep the running one when its configuration is
 * the same) and the thread that restarts it at once when it dies. */
int	 keeperctl_start(void);
/* Ends the restart thread. leave: the host leaves, and the keeper stops
 * and removes its leases unless it still guards a VM. */
void	 keeperctl_stop(int leave);
/* The keeper's status reply (docs/keeper.md), NULL when it does not
 * answer within timeout_ms; new reference. */
json_t	*keeperctl_status(int timeout_ms);
/* 1 when the keeper answered its status within 200 ms. */
int	 keeperctl_live(void);
/* 0 when a VM on storage may start here now (keeper live, lease ok,
 * watchdog petted); else -1 with the reason (for a 503) in err. */
int	 keeperctl_ready(const char *storage, char *err, size_t errsz);
/* Guard QEMU pid of uuid on domains (array of names, borrowed): its end
 * is then confirmed by pidfd. -1 with the keeper's refusal in err. */
int	 keeperctl_vm_add(const char *uuid, pid_t pid, json_t *domains,
	    char *err, size_t errsz);
int	 keeperctl_vm_del(const char *uuid);
/* Leave mode: no kill on domain before until_ms (CLOCK_MONOTONIC). */
int	 keeperctl_hold(const char *domain, int64_t until_ms);
/* fence, timing, keeper and each storage entry's lease, lease_age_ms,
 * fence and direct (docs/ha.md) added to an agent_info() object. */
void	 keeperctl_info(json_t *info);
/* One request to the keeper socket at sock (req borrowed); the reply
 * (new reference) or NULL with err. */
json_t	*keeperctl_call_at(const char *sock, json_t *req, int timeout_ms,
	    char *err, size_t errsz);
/* 1 when the keeper holds domain name's lease (ok or late): its status
 * of the last 100 ms, or (fresh) asked now. */
int	 lease_storage_ok(const char *name, int fresh);
json_t	*lease_read_all(const char *root, char *err, size_t errsz);
/* The isolation record (rec borrowed: {host, isolated, stopped, time}) on
 * the domain at root, and its removal; storage I/O: only from the
 * domain's domwatch thread. */
int	 lease_isolation_write(const char *root, json_t *rec);
void	 lease_isolation_remove(const char *root);
/* Power off the HA VMs (isolation response); their uuids, new reference. */
json_t	*vmhost_isolate(void);

/* serial.c */
/* Serial output kept for the VM in dir from absolute offset (-1: all kept).
 * New reference {"data","offset","size"} or NULL with err. */
json_t	*serial_read(const char *dir, int64_t offset, char *err, size_t errsz);
/* Keep serial.log bounded: move it to serial.log.0 past max bytes. */
void	 serial_rotate(const char *dir, size_t max);
/* Appends line to dir/serial.log, never through a symlink. */
void	 serial_mark(const char *dir, const char *line);
/* dir/serial.log opened with flags, never through a symlink; with O_CREAT
 * a non-regular file planted under the name is replaced. -1 on error. */
int	 serial_log_open(const char *dir, int flags);
/* serialcopy.c: QEMU's serial log on this host's disk, copied to the
 * VM's serial.log on storage by the domain's thread. */
int	 serialcopy_local_path(const char *uuid, char *out, size_t outsz);
/* Before uuid's QEMU starts: what an earlier run left is copied, the log
 * is to go to dir (on storage). 0 or -1. */
int	 serialcopy_begin(const char *uuid, const char *storage,
	    const char *dir);
/* One round for the domain storage (its serial thread): new output of
 * each log copied, logs of VMs gone from this host removed once copied. */
void	 serialcopy_round(const char *storage);
/* One serial thread per domain: a round every 500 ms, the logs on storage
 * rotated every 2 s (vmhost_rotate_serials). 0 or -1. */
int	 serialcopy_start(void);
/* A round of every serial thread now (a VM's QEMU ended). */
void	 serialcopy_kick(void);
extern const struct httpd_ws_route serial_ws_route;
/* A websocket <-> unix socket bridge (serial and VNC consoles): open
 * connects to path and returns the state for the three callbacks, or NULL. */
void	*serial_bridge_open(struct mg_connection *c, const char *path);
void	 serial_bridge_ready(void *state);
void	 serial_bridge_data(void *state, const char *buf, size_t len);
void	 serial_bridge_close(void *state);

/* vnc.c: the graphical console, QEMU's VNC server on a unix socket */
int	 vnc_socket_path(const struct avm *vm, char *out, size_t outsz);
int	 vnc_api_ticket(struct httpd_req *r);	/* POST .../vms/{uuid}/vnc */
extern const struct httpd_ws_route vnc_ws_route;
/* A one-use ticket for the console websocket of the VM (30 s). */
int	 serial_ticket_new(const char *uuid, char *out, size_t outsz);

/* stats.c: counters for the UI's charts, sent with each report: {"host":
 * {...}, "vms": {UUID: {...}}} for the VMs in vms (vmhost_list); new ref. */
json_t	*stats_json(json_t *vms);

/* report.c: registration and heartbeats */
int	 report_start(void);
void	 report_kick(void);		/* send a report now */
void	 report_stop(void);
/* 1 when the manager refused this host for good (the agent then stops). */
int	 report_was_refused(void);
/* Copy of the current agent key ("" before registration). */
void	 report_agent_key(char *out, size_t outsz);
/* This host's key: DATA/agent.secret (64 hex digits, 0600), made at the
 * first start (never by two starts) and replaced only by a next key the
 * manager took; the agent registers and renews its certificate with it,
 * the manager calls the agent with it. 0 or -1. */
int	 report_secret_init(void);
/* The key to offer with a token: DATA/agent.secret.next, made once
 * (0600); NULL when it cannot be written. */
const char *report_next_key(void);
/* The manager keeps key: when it is the next one, it becomes this host's
 * key (DATA/agent.secret). */
void	 report_key_accepted(const char *key);
/* The credentials to offer the manager, in order (i from 0): the host's
 * key, a next key offered before, the token file's (admin or join)
 * token; NULL past the last. */
const char *report_cred(int i);
/* 1 when cred (from report_cred) is the token file's token. */
int	 report_cred_is_token(const char *cred);

/* ajob.c: background jobs (backups, copies, merges) the manager polls */
#define AJOB_ID_LEN 16
struct ajob;
/* Runs in the job's own thread with args (borrowed); *result (a new
 * reference or NULL) is kept as the job's result, also on failure. */
typedef int (*ajob_fn)(struct ajob *j, json_t *args, json_t **result,
	    char *err, size_t errsz);
/* Start fn in a thread; args is stolen. The id goes to id (>= 17 bytes). */
int	 ajob_start(ajob_fn fn, json_t *args, char *id, size_t idsz);
void	 ajob_progress(struct ajob *j, int pct);
/* {id, state, progress, error?, result?}; new reference or NULL. */
json_t	*ajob_get(const char *id);

/* blockops.c: snapshots of a VM's disks (running: QMP; stopped: qemu-img).
 * Each takes the manager's VM spec and gives the updated spec. */
int	 blk_snapshot_create(json_t *spec, const char *snap, json_t **out,
	    char *err, size_t errsz, int *status);
int	 blk_snapshot_revert(json_t *spec, const char *snap, json_t **out,
	    char *err, size_t errsz, int *status);
/* qmp_command on the VM with args stolen (may be NULL). */
int	 blk_qmp(struct avm *vm, const char *cmd, json_t *args, json_t **ret,
	    char *err, size_t errsz);
/* Wait for the block jobs named in ids to end (completing ready ones),
 * progress from p0 to p1 into j (may be NULL), dismiss them; a failed job
 * cancels the others. 0 when all succeeded, else -1 with the first error. */
int	 blk_jobs_wait(struct avm *vm, json_t *ids, struct ajob *j, int p0,
	    int p1, char *err, size_t errsz);
/* Job: {spec, snapshot}; result {spec} (also when it failed half-way). */
int	 blk_snapshot_delete_job(struct ajob *j, json_t *args, json_t **result,
	    char *err, size_t errsz);

/* backupops.c: backups, disk copies, images (jobs and plain calls) */
/* Job: {spec, id, storage}; result: the backup's manifest. */
int	 bk_backup_job(struct ajob *j, json_t *args, json_t **result,
	    char *err, size_t errsz);
/* Job: {storage, spec, sources:[{path, format?, sha256?, linked?}]}:
 * a new VM dir whose disks are copies (or overlays) of the sources. */
int	 bk_copy_job(struct ajob *j, json_t *args, json_t **result, char *err,
	    size_t errsz);
/* Job: {file, name, storage}; result {file, virtual_size, size_bytes, ...}. */
int	 bk_import_job(struct ajob *j, json_t *args, json_t **result,
	    char *err, size_t errsz);
/* Job: {storage, id}: recompute every checksum of a backup. */
int	 bk_verify_job(struct ajob *j, json_t *args, json_t **result,
	    char *err, size_t errsz);
/* kind "images" or "backups": remove DOMAIN/kind/name[.qcow2]. */
int	 bk_remove(const char *storage, const char *kind, const char *name,
	    char *err, size_t errsz, int *status);

/* diskops.c: add a blank disk (VM stopped), grow a disk (running or not) */
int	 disk_add(json_t *spec, int64_t size_mib, json_t **out, char *err,
	    size_t errsz, int *status);
int	 disk_resize(json_t *spec, const char *disk, int64_t size_mib,
	    json_t **out, char *err, size_t errsz, int *status);

/* bootmedia.c: the VM's --cdrom and its cloud-init seed, appended to the
 * QEMU description after its disks (the seed is rebuilt in dir). */
struct qemu_vm_spec;
int	 bootmedia_add(json_t *spec, const char *dir, struct qemu_vm_spec *q,
	    char *err, size_t errsz);

/* media.c: user-named host files, only from media areas (isos/,
 * kernels/, images/ of a storage domain) or --media-dir directories.
 * media_area: the area for what ("cdrom", "kernel", "initrd", "file":
 * an image import's source),
 * or NULL. media_open: value (an absolute path as this host sees it)
 * opened read-only beneath its area, a regular file: the fd (the caller
 * closes it), or -1 with beneath_refusal's one text in err, whatever the
 * reason. */
const char *media_area(const char *what);
int	 media_open(const char *what, const char *value, char *err,
	    size_t errsz);
int	 media_add_dir(const char *path);
json_t	*media_dirs_json(void);
int	 mediaapi_check(struct httpd_req *r);
int	 mediaapi_put(struct httpd_req *r);
int	 mediaapi_list(struct httpd_req *r);
int	 mediaapi_delete(struct httpd_req *r);

/* blockapi.c: the /agent/v1/block, jobs, images and backups routes */
int	 blockapi_snapshot(struct httpd_req *r);
int	 blockapi_disk(struct httpd_req *r);
int	 blockapi_job_start(struct httpd_req *r);
int	 blockapi_job_get(struct httpd_req *r);
int	 blockapi_remove(struct httpd_req *r);

/* agent_api.c */
extern const struct httpd_route agent_routes[];
extern const size_t agent_nroutes;
int	 agent_auth(struct httpd_req *r, int min_role);
/* Host facts, storage and VMs as reported to the manager; new reference. */
json_t	*agent_info(void);
/* The storage entries of agent_info (from domwatch's cache: no storage
 * I/O), before keeperctl_info adds the lease fields; new reference. */
json_t	*agent_storage(void);

/* agent_tls.c: with an https manager, this host's certificate from the
 * cluster CA (asked for with the token on first start) and the TLS
 * settings for its server in *hc (zeroed otherwise); 0 or -1 (refused). */
int	 agent_tls_setup(struct httpd_config *hc);
/* 1 when this host serves mutual TLS with a cluster certificate. */
int	 agent_tls_on(void);
/* The addresses this host asked for that its certificate does not name
 * (the manager's word at start-up; new reference or NULL). */
json_t	*agent_tls_pending(void);
/* migstream.c: a migration's stream, authenticated both ways (a one-time
 * TLS-PSK key from the manager; the destination takes only a connection
 * from the source's addresses). */
/* p: {"psk": 64 hex digits, "source": [IP...] (incoming)}; 0 or -1. */
int	 migstream_check(json_t *p, int incoming, char *err, size_t errsz);
/* Destination: the key on vm's QEMU and a listener on our migration
 * address (*port) whose thread hands QEMU the source's connection within
 * 60 s, closing any other. 0 or -1 with err. */
int	 migstream_listen(struct avm *vm, json_t *p, int *port, char *err,
	    size_t errsz);
/* Source: the key on vm's QEMU for its next migrate. 0 or -1. */
int	 migstream_source(struct avm *vm, json_t *p, char *err, size_t errsz);

#endif
