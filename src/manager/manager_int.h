/* manager_int.h - the manager's internal interfaces. */
#ifndef CVIRT_MANAGER_INT_H
#define CVIRT_MANAGER_INT_H

#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <jansson.h>

#include "common/httpd.h"
#include "common/util.h"

enum role { ROLE_NONE, ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN, ROLE_AGENT,
    ROLE_JOIN };	/* ROLE_JOIN routes: an admin token or a join token */

/* Written at start-up, read-only afterwards. */
struct mgr_cfg {
	char	data[PATH_MAX];
	char	listen[128];
	char	db_url[PATH_MAX];
	char	tls_cert[PATH_MAX];
	char	tls_key[PATH_MAX];
	int64_t	heartbeat_interval_ms;	/* agents report this often */
	int64_t	heartbeat_timeout_ms;	/* host down after this silence */
	char	web_root[PATH_MAX];	/* the UI's files; "" when none */
	int64_t	upload_max;	/* bytes an upload into a media area may have */
	int64_t	login_window_ms;	/* failed logins count this long */
};
extern struct mgr_cfg mgr_cfg;

/* db.c: the inventory (SQLite or PostgreSQL), one connection behind a
 * recursive lock. SQL uses "?" placeholders and the common dialect (see
 * db.c). Parameter types: 's' string (NULL binds NULL), 'i' int64, 'n'
 * NULL (no argument). */
/* url: "sqlite:PATH", a plain path, or "postgresql://..." (libpq). */
int	 db_open(const char *url);
void	 db_close(void);
const char *db_backend_name(void);	/* "sqlite" or "postgresql" */
/* Rows as an array of objects keyed by column name; NULL on error. */
json_t	*db_query(const char *sql, const char *types, ...);
/* A column as db_each hands it: NUL-terminated text (integers in decimal),
 * val NULL for SQL NULL; valid only during the callback. */
enum db_type { DB_NULL, DB_INT, DB_TEXT };
struct db_col {
	const char	*val;
	size_t		 len;
	enum db_type	 type;
};
typedef int (*db_each_fn)(void *arg, const struct db_col *cols, int ncols);
/* Calls fn(arg, columns in SELECT order) for each row, without building
 * JSON rows (for big lists), under the DB lock: fn must not do I/O or call
 * db_*. fn returning -1 stops early. 0, or -1 on a database error. */
int	 db_each(const char *sql, db_each_fn fn, void *arg, const char *types,
	    ...);
/* First row or NULL (none or error; errno ENOENT when none). */
json_t	*db_row(const char *sql, const char *types, ...);
/* Changed rows, or -1 (errno EEXIST on a uniqueness violation). */
int	 db_exec(const char *sql, const char *types, ...);
int64_t	 db_last_id(void);
/* Holds the DB lock (recursive) across several calls, so that no other
 * thread's statement comes between them; no I/O but the database's. */
void	 db_hold(void);
void	 db_release(void);
/* Counts the statements that may have changed which host carries which VM
 * size (rows of vms added or removed, host, cpus, memory_mib or grouped
 * set) and rolled back transactions: equal counts mean no such change. */
uint64_t db_vms_gen(void);
/* A transaction: holds the DB lock from begin to commit/rollback. */
int	 db_begin(void);
int	 db_commit(void);
void	 db_rollback(void);

/* ha.c: leader election on PostgreSQL (always the leader on SQLite). */
/* Calls lead() now (SQLite) or from its thread once leading. */
int	 ha_start(const char *db_url, int (*lead)(void));
void	 ha_stop(void);		/* no take-over from now on */
void	 ha_close(void);	/* release the lock (services stopped) */
int	 ha_is_leader(void);	/* 0 also once its lease has run out */
int	 ha_lost_lock(void);	/* the leader found its lock gone */
/* The server's auth hook: 503 on a standby, else auth_check. */
int	 ha_auth(struct httpd_req *r, int min_role);

/* heartbeat.c: the report interval agents are told and the silence
 * after which a host is down, both growing past 250 hosts per second. */
int64_t	 hb_interval_ms(void);
int64_t	 hb_timeout_ms(void);

/* usage.c: latest usage counters per host/VM from agent reports */
void	 usage_record(const char *host, json_t *stats);
/* names: uuid -> VM name; VMs missing from it are skipped. */
void	 usage_write_metrics(FILE *f, json_t *names);
/* api_metrics.c: /metrics beyond the inventory counts */
void	 api_metrics_write(FILE *f);

/* auth.c */
int	 auth_init(void);	/* admin token on first start */
int	 auth_check(struct httpd_req *r, int min_role);
/* Role from its name ("admin", ...) or ROLE_NONE; and back. */
int	 auth_role_parse(const char *s);
const char *auth_role_name(int role);

/* users.c: users, API tokens, password login, join tokens */
/* A new API token for user name (replacing the old ones when replace);
 * out gets the plain token, only its hash is stored. */
int	 users_token_new(const char *name, int replace, char *out, size_t outsz);
extern const struct httpd_route api_users_routes[];
extern const size_t api_users_nroutes;

/* login.c: argon2id hashes (at most two at a time), POST /login|logout */
int	 login_pw_hash(const char *pw, char *out, size_t outsz);
/* loginlimit.c: login attempts per client address (an IPv6 /64) and in
 * flight. reserve counts one attempt before its password is checked: 0,
 * or -1 with a one-line reason for a 429 in err. release ends it (failed:
 * it counts against the address for mgr_cfg.login_window_ms). */
int	 loginlimit_reserve(const char *remote, int64_t now, char *err,
	    size_t errsz);
void	 loginlimit_release(const char *remote, int failed);
extern const struct httpd_route api_login_routes[];
extern const size_t api_login_nroutes;

/* api_pki.c: with TLS on, the cluster CA, our client certificate for
 * agents and client-certificate checks on the API server in *hc. */
int	 pki_mgr_init(struct httpd_config *hc);
/* A loopback port relayed over mutual TLS to host name's agent at
 * addr:port (its certificate must be name's, tls.h). */
int	 pki_mgr_tunnel(const char *name, const char *addr, int port,
	    int *local_port, char *err, size_t errsz);
/* 1 when this manager runs the cluster CA. */
int	 pki_mgr_ready(void);

/* hostid.c: who may register as (or get a certificate for) which host
 * (docs/security.md, "Admitting hosts"). */
#define HOSTID_RESERVED	"cvirt-manager"	/* the manager's certificate CN */
#define HOSTID_KEY_LEN	64		/* hex digits of an agent key */
enum hostid_how {
	HOSTID_NEW,	/* a new host (or one an admin reset) */
	HOSTID_SAME,	/* the host itself, with its key: same key */
	HOSTID_REKEY,	/* the host by its certificate, or one registered
			 * before agents chose keys: takes a new key */
};
struct hostid {
	enum hostid_how	 how;
	json_t		*row;	/* the host's row or NULL; owned */
	json_t		*token;	/* the join token's row or NULL; owned */
};
/* ROLE_JOIN credentials (auth.c calls it first): a host's key
 * ("host:NAME") or, without one, a host's certificate ("cert:NAME");
 * 0 with r->principal set, 1 when the token is neither (go on with user
 * and join tokens), or 401 with r->auth_err. */
int	 hostid_auth_host(struct httpd_req *r);
/* ROLE_AGENT (reports): the host whose key is the token, which must also
 * present the certificate it registered with when it has one; 0 or 401
 * with r->auth_err. */
int	 hostid_auth_agent(struct httpd_req *r);
/* A join token: unused and unexpired ("join:ID"); 0 or 401 with
 * r->auth_err saying which (used, expired). */
int	 hostid_auth_join(struct httpd_req *r, const char *hash);
/* May r's credential register host name (cert: get a certificate for
 * it)? 0 with *id filled (release with hostid_free), else an HTTP status
 * with err. */
int	 hostid_admit(struct httpd_req *r, const char *name, int cert,
	    struct hostid *id, char *err, size_t errsz);
void	 hostid_free(struct hostid *id);
/* In the registering transaction: the join token of id (if any) is used
 * by name, once; its addresses become name's approved ones. 0, or -1
 * when another registration used it first (or it just expired). */
int	 hostid_consume(const struct hostid *id, const char *name);
/* The join token of id (if any) is bound to name until used: a
 * certificate for name was issued with it. 0 or -1. */
int	 hostid_bind(const struct hostid *id, const char *name);
/* The addresses name's certificate names besides DNS:name: where the
 * request came from (remote), the join token's and the approved ones;
 * "A,B,..." into out (name first). The requested addresses (want,
 * "A,B" or NULL) that are not among them go to *pending (a JSON array,
 * owned). 0 or -1 (too many). */
int	 hostid_sans(const struct hostid *id, const char *name,
	    const char *remote, const char *want, char *out, size_t outsz,
	    json_t **pending);
extern const struct httpd_route api_pki_routes[];
extern const size_t api_pki_nroutes;

/* audit.c: who did what; called by the server after every request. */
void	 audit_request(struct httpd_req *r);
extern const struct httpd_route api_audit_routes[];
extern const size_t api_audit_nroutes;

/* event.c */
void	 event_add(const char *severity, const char *kind, const char *object,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
json_t	*event_json(json_t *row);

/* task.c */
struct task {
	int64_t		 id;
	char		 kind[32];
	char		 vm[UTIL_NAME_MAX + 1];
	json_t		*params;	/* borrowed by handlers */
	json_t		*result;	/* set by handlers (stolen) */
	char		 err[512];
};
typedef int (*task_fn)(struct task *t);
int	 task_init(int workers);
void	 task_shutdown(void);
/* Queue a task; when vm is non-NULL the VM is marked busy atomically and a
 * busy VM gives -1 with errno EBUSY. params (may be NULL) are copied: the
 * caller keeps its reference. Returns the task id or -1. */
int64_t	 task_submit(const char *kind, const char *vm, json_t *params,
	    const char *owner, char *err, size_t errsz);
/* Written only while this manager leads and the task is still its own
 * (running): a take-over's task_init() fails it, and it stays failed. */
void	 task_progress(struct task *t, int pct);
/* A kind beyond the built-in table (at most 4; the unit tests' kinds). */
int	 task_kind_add(const char *kind, task_fn fn);
json_t	*task_json(json_t *row);
json_t	*task_get(int64_t id);

/* agentc.c: calls from the manager to one agent */
/* Any HTTP answer gives 0 with *status; -1 when unreachable (err set). */
int	 agentc_call(const char *host, const char *method, const char *path,
	    json_t *body, long timeout_ms, int *status, json_t **reply,
	    char *err, size_t errsz);
/* agentc_call with stream's body_read, body_arg and body_len (NULL:
 * none; body is then NULL): a body streamed to the agent. */
struct httpc_opts;
int	 agentc_call_stream(const char *host, const char *method,
	    const char *path, json_t *body, const struct httpc_opts *stream,
	    long timeout_ms, int *status, json_t **reply, char *err,
	    size_t errsz);
/* Host name of an up host that has storage domain st, or -1. */
int	 agentc_host_with_storage(const char *st, const char *prefer,
	    char *out, size_t outsz);

/* cluster.c: cluster-wide settings (meta table), one validated copy. */
struct cluster_settings {
	int	mem_overcommit_pct;
	int	cpu_overcommit_pct;
	int	migration_downtime_ms;
	int	migration_bandwidth_mibs;	/* 0: unlimited */
	int	migration_timeout_s;
	int	balancer_threshold_pct;
	int	balancer_interval_s;
	int	balancer_cooldown_s;
	int	ha_lease_timeout_ms;		/* a lease this old is dead */
	int	ha_max_restarts;		/* in place, per window */
	int	ha_restart_window_s;
	int	ha_reserve_hosts;		/* admission control */
	int	ha_monitor_interval_ms;		/* heartbeat, tcp:PORT probes */
	int	ha_monitor_misses;		/* misses in a row = failed */
	char	balancer_mode[16];		/* off, advise, automatic */
	char	ha_isolation_response[16];	/* poweroff, leave */
	char	ha_storage_loss_response[16];	/* restart, leave */
};
int	 cluster_load(void);
void	 cluster_get(struct cluster_settings *out);
json_t	*cluster_json(void);
int	 cluster_update(json_t *body, char *err, size_t errsz);
extern const struct httpd_route api_cluster_routes[];
extern const size_t api_cluster_nroutes;

/* sched.c */
/* Pick a host for the VM row (want: only that host; exclude: never that
 * one); 0 or -1 with a reason naming every host considered. */
int	 sched_pick(json_t *vm, const char *want, const char *exclude,
	    char *out, size_t outsz, char *err, size_t errsz);
/* The same with prefer: a host tried first when it passes every filter
 * (the VM's creation-time host: a preference, never a pin), else any. */
int	 sched_place(json_t *vm, const char *want, const char *prefer,
	    const char *exclude, char *out, size_t outsz, char *err,
	    size_t errsz);
/* HA VMs (vm show): whether another host could restart the VM now, and
 * why not (one line per host); new reference {protected, protection_reasons}. */
json_t	*sched_protection(json_t *vm);
/* Per host: memory_mib, mem_used_mib, cpus_used, state; new reference. */
json_t	*sched_loads(void);
/* Around the update of a VM's host (vm_set_state): keeps placement's
 * per-host sums current without reading every VM again. begin holds the
 * DB lock until end; host is the VM's new host (NULL: none). */
struct sched_move {
	uint64_t	 gen;
	json_t		*row;	/* the VM's old host and size, or NULL */
	int		 known;
};
void	 sched_move_begin(struct sched_move *mv, const char *uuid);
void	 sched_move_end(struct sched_move *mv, const char *host);

/* hostlease.c: storage leases per (host, domain), dated by the manager's
 * monotonic clock after each read returns (docs/ha.md, "Timing"). */
#define HLEASE_READ_MAX_MS	1000	/* a slower read is not fresh */
#define HLEASE_SNAP_MAX_MS	1500	/* an older agent snapshot is refused */
#define HLEASE_BACK_MAX		64	/* seqs this far below the last: older snapshots */
struct hlease {
	int64_t	seq;		/* the lease's sequence number (compared only) */
	int64_t	first_seen;	/* mono ms: arrival of the reply first showing seq */
	int64_t	fresh_from;	/* mono ms: latest start of a read showing seq */
	int64_t	fresh_at;	/* mono ms: arrival of that read */
	int64_t	read_ms;	/* how long that storage read took */
	int	seen;		/* 0: never observed */
	char	via[UTIL_NAME_MAX + 1];	/* the host that read it last */
};
/* Pure: fold one read into l. present 0: the lease was not on storage;
 * sent/arrived: our mono ms around the call; read_start_age_ms: how long
 * before its reply the agent's storage read started; read_ms: its length. */
void	 hlease_observe(struct hlease *l, int present, int64_t seq,
	    int64_t sent, int64_t arrived, int64_t read_start_age_ms,
	    int64_t read_ms);
/* Pure: the host's keeper has given up the domain: seq unchanged for
 * lease_timeout_ms since we first saw it, and confirmed by a read that
 * started at least fence_ms (the host's fence deadline) after that. */
int	 hlease_expired(const struct hlease *l, int64_t now,
	    int64_t lease_timeout_ms, int64_t fence_ms);
/* One reply of GET /agent/v1/leases?storage=domain read via a host into
 * the table; -1 when the reply is malformed or its snapshot too old. */
int	 hlease_apply(const char *domain, const char *via, json_t *reply,
	    int64_t sent, int64_t arrived);
/* A copy of (host, domain)'s entry; -1 when never observed. */
int	 hlease_get(const char *host, const char *domain, struct hlease *out);
/* The host's last isolation record seen on storage (new reference or
 * NULL); *nvia: how many different hosts read that same record. */
json_t	*hlease_isolation(const char *host, size_t *nvia);
int	 hlease_init(void);	/* the table only (unit tests) */
int	 hlease_start(void);	/* the table and the reader threads */
void	 hlease_stop(void);

/* failover.c: host failure (heartbeat + lease), VM restarts, admission */
void	 failover_init(void);	/* its tables only, afresh (unit tests) */
/* The monotonic ms clock of the fence decisions; NULL: util_mono_ms. */
void	 failover_set_clock(int64_t (*fn)(void));
/* One round of the fence decisions, from the lease table and the DB
 * (no restarts; the failover thread runs it every 500 ms). */
void	 failover_fence_round(void);
int	 failover_start(void);
void	 failover_stop(void);
/* A VM's QEMU failed on host: remember it for the restart policy. */
void	 failover_vm_failed(const char *name, const char *host,
	    const char *reason);
/* 0, or -1 with err when starting this HA VM would break the reserve. */
int	 failover_admit(json_t *vm, char *err, size_t errsz);
/* Peers and isolation settings for an agent's reply (added to reply). */
void	 failover_agent_hints(const char *host, json_t *reply);
/* An operator vouched that host is off (confirm-off): a kill-only host's
 * VMs may restart once its leases expired after this moment. */
void	 failover_confirm_off(const char *host);
/* The host registered again: a confirm-off given before no longer holds. */
void	 failover_host_registered(const char *host);
/* The storage domains of a VM's spec (metadata and disks): name -> true;
 * new reference. */
json_t	*failover_vm_domains(json_t *spec);
/* docs/ha.md, "Timing": the defaults of a host's keeper, and the margin
 * the lease timeout keeps above fence + tick (+ watchdog). */
#define FAILOVER_FENCE_MS	3000
#define FAILOVER_TICK_MS	100
#define FAILOVER_WATCHDOG_MS	1000
#define FAILOVER_MARGIN_MS	500
/* Whether a host that fences itself this way (fence "watchdog" or
 * "kill-only"; NULL: an agent from before issue 14, always 0) with this
 * timing ({fence_ms, tick_ms, watchdog_ms}; missing: the defaults) is
 * safe with the lease timeout: 0, or -1 and one line with the arithmetic.
 * host NULL: the defaults, for the manager's own start-up check. */
int	 failover_timing_check(const char *host, const char *fence,
	    json_t *timing, int64_t lease_timeout_ms, char *err, size_t errsz);
/* The same for the defaults and every registered host. */
int	 failover_timing_check_all(int64_t lease_timeout_ms, char *err,
	    size_t errsz);
/* 1 when host can no longer run the VM of spec: its leases on every
 * domain of the VM expired under the fence rules (docs/ha.md), or the
 * host does not exist; a report from another host may then claim it. */
int	 failover_vm_released(const char *host, json_t *spec);

/* migrate.c: live migration, evacuation, the balancer */
int	 vmops_migrate(struct task *t);
int	 hostops_evacuate(struct task *t);
int	 balancer_start(void);
void	 balancer_stop(void);

/* vm.c: VM objects */
json_t	*vm_json(json_t *row);
json_t	*vm_find(const char *name);	/* row or NULL */
/* vmlist.c: every VM as vm_json() gives it, by name, as one JSON array
 * text in *out (malloc'd, NUL-terminated; the caller frees it) of *len
 * bytes and *count VMs. 0 or -1. */
int	 vm_list_json(char **out, size_t *len, size_t *count);
/* The spec the agent gets (uuid, name, cpus, ...); new reference. */
json_t	*vm_spec(json_t *row);
void	 vm_set_state(const char *uuid, const char *state, const char *host,
	    int64_t pid);

/* vmops.c: task handlers */
/* Whether op ("start", "pause", "resume", "reboot", "delete", "migrate";
 * any other passes) may run now on the VM row with the task's params: 0, or
 * -1 with err set and errno EBUSY (wrong state), ENOENT (a host named in
 * params is unknown) or ENOSPC (no other host to go to). The API answers
 * with it before it queues a task; the handler checks again when it runs. */
int	 vmops_check(const char *op, json_t *row, json_t *params, char *err,
	    size_t errsz);
int	 vmops_start(struct task *t);
int	 vmops_stop(struct task *t);
int	 vmops_reboot(struct task *t);
int	 vmops_pause(struct task *t);
int	 vmops_resume(struct task *t);
int	 vmops_delete(struct task *t);

/* storops.c: storage task handlers (snapshots, backups, copies, images) */
int	 storops_snapshot_create(struct task *t);
int	 storops_snapshot_revert(struct task *t);
int	 storops_snapshot_delete(struct task *t);
int	 storops_backup_create(struct task *t);
/* At the leader's start: backups and imports the last run left half-made
 * are marked failed. */
void	 storops_recover(void);
int	 storops_backup_restore(struct task *t);
int	 storops_backup_verify(struct task *t);
int	 storops_vm_clone(struct task *t);
int	 storops_image_import(struct task *t);
int	 storops_disk_add(struct task *t);
int	 storops_disk_resize(struct task *t);
/* Path of storage domain name as the hosts see it; 0 or -1. */
int	 storops_storage_path(const char *name, char *out, size_t outsz);
/* Store an updated VM spec (DB; the agent wrote vm.json). */
int	 storops_save_spec(const char *uuid, json_t *spec);

/* api_storage.c, api_snapshot.c: images, backups, clones, snapshots */
extern const struct httpd_route api_storage_routes[], api_snapshot_routes[];
extern const size_t api_storage_nroutes, api_snapshot_nroutes;
extern const struct httpd_route api_media_routes[];
extern const size_t api_media_nroutes;
/* api_media.c: value, a host file a VM or an import names (what:
 * "cdrom", "kernel", "initrd" or "file"), as STORAGE:AREA/NAME or the
 * path as hosts see it, into out (that path) when it lies in its media
 * area (isos/, kernels/, images/) or a media directory a host reports;
 * 0, or -1 after a 400 with one text whatever the reason. */
int	 api_media_ref(struct httpd_req *r, const char *what,
	    const char *value, char *out, size_t outsz);
/* Whether path (api_media_ref's out for value) opens on an up host of
 * storage (prefer first, may be NULL): 0, or -1 after replying (400 with
 * the same one text). */
int	 api_media_check(struct httpd_req *r, const char *what,
	    const char *value, const char *path, const char *storage,
	    const char *prefer);
/* The first disk of a VM created from image name (a linked clone on it),
 * size_mib at least the image's; NULL after replying 4xx. */
json_t	*api_image_disk(struct httpd_req *r, const char *image,
	    const char *storage, int64_t size_mib);
/* The create request's cdrom and cloud_init, checked, into spec; -1
 * after replying 400. */
int	 api_vm_boot_media(struct httpd_req *r, json_t *spec);
/* Refuse op ("start", "delete") on VM name when it is a template (start)
 * or the base of linked clones (delete): -1 after replying 409. */
int	 api_vm_guard(struct httpd_req *r, const char *name, const char *op);
/* Insert a new stopped VM row for spec; -1 after replying 409/500. */
int	 api_vm_insert(struct httpd_req *r, json_t *spec);
/* Wait up to ms for task id to end (fast operations answer at once). */
void	 api_task_settle(int64_t id, int ms);

/* vnet.c: virtual networks (docs/network.md) */
#define VNET_PREFIX_MIN 16	/* subnets from /16 ... */
#define VNET_PREFIX_MAX 29	/* ... to /29 */
struct vnet_cidr {
	uint32_t net;		/* host byte order, host bits zero */
	int	 prefix;
};
int	 vnet_ip_parse(const char *s, uint32_t *ip);
void	 vnet_ip_fmt(uint32_t ip, char *out, size_t outsz);
int	 vnet_cidr_parse(const char *s, struct vnet_cidr *c, char *err,
	    size_t errsz);
uint32_t vnet_mask(int prefix);
int	 vnet_cidr_overlap(const struct vnet_cidr *a, const struct vnet_cidr *b);
int	 vnet_cidr_host_ok(const struct vnet_cidr *c, uint32_t ip);
int	 vnet_mac_valid(const char *s);
int	 vnet_ifname_valid(const char *s);
/* Something agents realize changed: they get the new state. */
void	 vnet_changed(void);
/* Reserve MAC (and IP) for every nic of spec (rows in nics; the VM row
 * exists); -1 with an HTTP status and message, nothing reserved. */
int	 vnet_nics_reserve(json_t *spec, int *status, char *err, size_t errsz);
/* One more nic {network, mac?, ip?, model?} for spec's VM. */
int	 vnet_nic_add(json_t *spec, json_t *nic, int *status, char *err,
	    size_t errsz);
/* Free the VM's reservations (one MAC, or all when mac is NULL). */
void	 vnet_nics_release(const char *vm_uuid, const char *mac);
void	 vnet_backfill(void);
json_t	*vnet_json(json_t *row);
/* The desired network state for host, NULL when have is current. */
json_t	*vnet_payload(const char *host, const char *have);
/* A host's report: status {network: "ok" | error}, dp {vlan network:
 * "8021q" | "ebpf"} (NULL from agents that do not say). Borrowed. */
void	 vnet_host_status(const char *host, json_t *status, json_t *dp);
/* A deleted host: its network states are dropped. */
void	 vnet_host_forget(const char *host);
/* 0 when host realized every network of spec's nics; else -1 and why. */
int	 vnet_host_check(const char *host, json_t *spec, char *why, size_t whysz);
/* {host: state} of a network; user: a user-mode one ("ok" everywhere). */
json_t	*vnet_hosts_of(const char *network, int user);
/* {host: datapath} of a VLAN network (hosts that realized it). */
json_t	*vnet_datapaths_of(const char *network);
extern const struct httpd_route api_network_routes[];
extern const size_t api_network_nroutes;

/* hostmon.c: liveness by this manager's monotonic clock (never by
 * hosts.last_seen, a wall time for display). */
int	 hostmon_start(void);
void	 hostmon_stop(void);
void	 hostmon_seen(const char *host);	/* it registered or reported */
/* ms since the host last reported (or since monitoring began). */
int64_t	 hostmon_silence_ms(const char *host);
json_t	*host_json(json_t *row);

/* Route tables, one per API file. */
extern const struct httpd_route api_vm_routes[], api_host_routes[],
    api_task_routes[], api_agent_routes[], api_misc_routes[];
extern const size_t api_vm_nroutes, api_host_nroutes, api_task_nroutes,
    api_agent_nroutes, api_misc_nroutes;
extern const struct httpd_ws_route console_ws_route;
/* api_routes.c: every route table the manager serves, in match order. A
 * table that is not listed is neither served, documented nor fuzzed
 * (tests/unit/test_routes.c fails on one defined in src/manager/ that is
 * not here). */
struct api_route_table {
	const char			*name;		/* its symbol */
	const struct httpd_route	*routes;
	const size_t			*n;
};
extern const struct api_route_table api_route_tables[];
extern const size_t api_route_ntables;
/* All routes of api_route_tables in one array, in order; *n gets their
 * count. The caller frees it; NULL when out of memory. */
struct httpd_route *api_routes_join(size_t *n);

/* api_web.c: the web UI's files and its live stream */
extern const struct httpd_route api_web_routes[];
extern const size_t api_web_nroutes;
/* The UI's files next to the binary (DIR/web, DIR/../share/cvirt/web) or
 * /usr/share/cvirt/web; -1 and "" when none has an index.html. */
int	 web_root_find(char *out, size_t outsz);
int	 web_root_check(const char *dir);
void	 api_web_shutdown(void);	/* ends open streams */

/* stats.c: the last minutes of usage per host and VM, from agent reports */
void	 stats_record(const char *host, json_t *stats);
/* {"max_samples", "samples": [{t, cpu_pct, mem_mib, ...}]}; key "vm:UUID"
 * or "host:NAME"; new reference. */
json_t	*stats_series_json(const char *key);
/* {"hosts": {NAME: sample}, "vms": {NAME: sample}}: current ones only. */
json_t	*stats_all_json(void);

/* console.c: one-use ticket (30 s) for the console websocket of a VM;
 * -1 with errno EBUSY while CONSOLE_MAX consoles are open (503). */
int	 console_ticket_new(const char *uuid, const char *host, char *out,
	    size_t outsz);
/* kind: "serial" or "vnc" (the graphical console). */
int	 console_ticket_kind(const char *uuid, const char *host, const char *kind,
	    char *out, size_t outsz);

/* api_util.c: strict request decoding shared by the API files */
/* Every key of body must be in the NULL-terminated allowed list. */
int	 api_check_fields(struct httpd_req *r, const char *const allowed[]);
/* Optional integer field within [min,max]; 0 absent/ok, -1 replied 400. */
int	 api_int_field(struct httpd_req *r, const char *key, int64_t min,
	    int64_t max, int64_t *out, int *present);
int	 api_str_field(struct httpd_req *r, const char *key, size_t maxlen,
	    const char **out);
int	 api_bool_field(struct httpd_req *r, const char *key, int *out);
/* Reply 202 with the task. */
int	 api_reply_task(struct httpd_req *r, int64_t id);
/* Query ?limit=N (1..max, default def); -1 when replied 400. */
int	 api_limit(struct httpd_req *r, int def, int max, int *out);

#endif
