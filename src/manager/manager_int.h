/* manager_int.h - the manager's internal interfaces. */
#ifndef CVIRT_MANAGER_INT_H
#define CVIRT_MANAGER_INT_H

#include <limits.h>
#include <stdint.h>
#include <jansson.h>

#include "common/httpd.h"
#include "common/util.h"

enum role { ROLE_NONE, ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN, ROLE_AGENT };

/* Written at start-up, read-only afterwards. */
struct mgr_cfg {
	char	data[PATH_MAX];
	char	listen[128];
	char	db_url[PATH_MAX];
	char	tls_cert[PATH_MAX];
	char	tls_key[PATH_MAX];
	int64_t	heartbeat_interval_ms;	/* agents report this often */
	int64_t	heartbeat_timeout_ms;	/* host down after this silence */
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
/* First row or NULL (none or error; errno ENOENT when none). */
json_t	*db_row(const char *sql, const char *types, ...);
/* Changed rows, or -1 (errno EEXIST on a uniqueness violation). */
int	 db_exec(const char *sql, const char *types, ...);
int64_t	 db_last_id(void);
/* A transaction: holds the DB lock from begin to commit/rollback. */
int	 db_begin(void);
int	 db_commit(void);
void	 db_rollback(void);

/* auth.c */
int	 auth_init(void);	/* admin token on first start */
int	 auth_check(struct httpd_req *r, int min_role);

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
 * busy VM gives -1 with errno EBUSY. Returns the task id or -1. */
int64_t	 task_submit(const char *kind, const char *vm, json_t *params,
	    const char *owner, char *err, size_t errsz);
void	 task_progress(struct task *t, int pct);
json_t	*task_json(json_t *row);
json_t	*task_get(int64_t id);

/* agentc.c: calls from the manager to one agent */
/* Any HTTP answer gives 0 with *status; -1 when unreachable (err set). */
int	 agentc_call(const char *host, const char *method, const char *path,
	    json_t *body, long timeout_ms, int *status, json_t **reply,
	    char *err, size_t errsz);
/* Host name of an up host that has storage domain st, or -1. */
int	 agentc_host_with_storage(const char *st, const char *prefer,
	    char *out, size_t outsz);

/* sched.c */
/* Pick a host for the VM row; 0 or -1 with a reason naming every host. */
int	 sched_pick(json_t *vm, const char *want, char *out, size_t outsz,
	    char *err, size_t errsz);

/* vm.c: VM objects */
json_t	*vm_json(json_t *row);
json_t	*vm_find(const char *name);	/* row or NULL */
/* The spec the agent gets (uuid, name, cpus, ...); new reference. */
json_t	*vm_spec(json_t *row);
void	 vm_set_state(const char *uuid, const char *state, const char *host,
	    int64_t pid);

/* vmops.c: task handlers */
int	 vmops_start(struct task *t);
int	 vmops_stop(struct task *t);
int	 vmops_reboot(struct task *t);
int	 vmops_pause(struct task *t);
int	 vmops_resume(struct task *t);
int	 vmops_delete(struct task *t);

/* hostmon.c */
int	 hostmon_start(void);
void	 hostmon_stop(void);
json_t	*host_json(json_t *row);

/* Route tables, one per API file. */
extern const struct httpd_route api_vm_routes[], api_host_routes[],
    api_task_routes[], api_agent_routes[], api_misc_routes[];
extern const size_t api_vm_nroutes, api_host_nroutes, api_task_nroutes,
    api_agent_nroutes, api_misc_nroutes;
extern const struct httpd_ws_route console_ws_route;

/* console.c: one-use ticket (30 s) for the console websocket of a VM. */
int	 console_ticket_new(const char *uuid, const char *host, char *out,
	    size_t outsz);

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
