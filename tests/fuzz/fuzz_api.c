/* fuzz_api.c - libFuzzer target: the manager's REST handlers, every route
 * of every table in api_route_tables (src/manager/api_routes.c), fed
 * requests as the server would hand them over: routed in the server's
 * first-match order, the body decoded by httpd_json_decode, the caller
 * an admin (an agent on agent routes). A SQLite inventory in /dev/shm,
 * emptied before each input; task workers run; the agents are a stand-in
 * (agentc_* below, linked instead of src/manager/agentc.c) that answers
 * calls made while a request is handled with 200 {} and fails the calls
 * of tasks at once, so a VM can be created and its tasks end quickly.
 *
 * Input: requests separated by a line "%%"; each is "METHOD PATH[?QUERY]"
 * on its first line and a JSON body (possibly empty) after it.
 * Checked beyond the sanitizers: every handler sends exactly one reply,
 * with a status, never a 500, and a JSON error reply carries "error". */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <civetweb.h>

#include "common/httpd.h"
#include "common/log.h"
#include "manager/manager_int.h"

#define FUZZ_MAX_REQS	16
#define FUZZ_HOST	"fz1"
#define FUZZ_KEY	"fuzz-agent-key"

static __thread int fuzz_in_handler;	/* 1 while the main thread handles */
static int fuzz_replies;		/* status lines sent for a request */
static char fuzz_reply[65536];		/* the reply's body (truncated) */
static size_t fuzz_reply_len;
static int fuzz_reply_json;
static struct httpd_route *fuzz_routes;
static size_t fuzz_nroutes;
static char fuzz_db[64];
static char fuzz_token[UTIL_TOKEN_LEN + 1];	/* the admin's */
static FILE *fuzz_err;	/* stderr, kept open past -close_fd_mask=2 */

/* The agents. Calls from a request handler get 200 {}, so a VM create
 * reaches the inventory; calls from task workers fail at once. */
int
agentc_call(const char *host, const char *method, const char *path,
    json_t *body, long timeout_ms, int *status, json_t **reply, char *err,
    size_t errsz)
{
	if (!fuzz_in_handler) {
		snprintf(err, errsz, "host %s is unreachable: fuzz", host);
		return -1;
	}
	*status = 200;
	if (reply)
		*reply = json_object();
	return 0;
}

int
agentc_host_with_storage(const char *st, const char *prefer, char *out,
    size_t outsz)
{
	if (strcmp(st, "local") != 0)
		return -1;
	snprintf(out, outsz, "%s", FUZZ_HOST);
	return 0;
}

/* The connection: what httpd_reply_raw writes lands here. A negative
 * return ends the live stream (api_web.c) after its first event. */
int
mg_printf(struct mg_connection *conn, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (strncmp(buf, "HTTP/1.1 ", 9) == 0) {
		fuzz_replies++;
		fuzz_reply_json = strstr(buf, "application/json") != NULL;
	}
	return -1;
}

int
mg_write(struct mg_connection *conn, const void *buf, size_t len)
{
	size_t n = len < sizeof(fuzz_reply) - fuzz_reply_len ? len :
	    sizeof(fuzz_reply) - fuzz_reply_len;

	memcpy(fuzz_reply + fuzz_reply_len, buf, n);
	fuzz_reply_len += n;
	return (int)len;
}

static void
fuzz_sql(const char *sql)
{
	if (db_exec(sql, NULL) < 0)
		abort();
}

/* Tasks left from the previous input finish first (they fail fast). */
static void
fuzz_tasks_drain(void)
{
	json_t *row;
	int i;

	for (i = 0; i < 5000; i++) {
		row = db_row("SELECT id FROM tasks WHERE state IN ('queued', "
		    "'running') LIMIT 1", NULL);
		if (row == NULL)
			return;
		json_decref(row);
		usleep(1000);
	}
	fprintf(fuzz_err, "fuzz_api: tasks still running after 5 s\n");
	abort();
}

/* An empty inventory but for the admin, host fz1 (up, storage "local")
 * and the default cluster settings. */
static void
fuzz_reset(void)
{
	json_t *rows, *t;
	char sql[128];
	size_t i;

	fuzz_tasks_drain();
	rows = db_query("SELECT name FROM sqlite_master WHERE type = 'table' "
	    "AND name NOT LIKE 'sqlite_%'", NULL);
	if (rows == NULL)
		abort();
	json_array_foreach(rows, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		snprintf(sql, sizeof(sql), "DELETE FROM %s%s", name,
		    strcmp(name, "meta") == 0 ?
		    " WHERE key <> 'schema_version'" : "");
		fuzz_sql(sql);
	}
	json_decref(rows);
	db_exec("DELETE FROM sqlite_sequence", NULL);
	if (auth_init() < 0 || cluster_load() < 0)
		abort();
	fuzz_sql("INSERT INTO hosts (name, url, state, accel, cpus, memory_mib,"
	    " agent_key, last_seen, info, registered) VALUES ('" FUZZ_HOST
	    "', 'http://127.0.0.1:9', 'up', 'tcg', 2, 4096, '" FUZZ_KEY "', 0,"
	    " '{\"storage\":[{\"name\":\"local\",\"path\":\"/fuzz/local\","
	    "\"ok\":true}]}', 0)");
}

/* Inventories left by fuzzers that crashed (their process is gone). */
static void
fuzz_clean_stale(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	long pid;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (sscanf(de->d_name, "cvirt-fuzz-api.%ld", &pid) != 1 ||
		    pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) <
		    (int)sizeof(path))
			util_rm_rf(path);
	}
	closedir(d);
}

/* The inventory's files go when the fuzzer exits (not after a crash). */
static void
fuzz_cleanup(void)
{
	static const char *const files[] = { "cvirt.db", "cvirt.db-wal",
	    "cvirt.db-shm", "admin.token" };
	char path[PATH_MAX];
	size_t i;

	task_shutdown();
	db_close();
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", mgr_cfg.data, files[i]);
		unlink(path);
	}
	rmdir(mgr_cfg.data);
}

/* On SQLite the manager leads at once (ha_start): its task engine runs
 * (task_run starts nothing while the manager does not lead). */
static int
fuzz_lead(void)
{
	return task_init(1);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char path[PATH_MAX];

	/* libFuzzer calls us before it closes the target's stderr. */
	if ((fuzz_err = fdopen(dup(2), "w")) == NULL)
		abort();
	setvbuf(fuzz_err, NULL, _IONBF, 0);
	log_init("fuzz_api", LOG_LVL_ERROR);
	fuzz_clean_stale(dir);
	snprintf(mgr_cfg.data, sizeof(mgr_cfg.data), "%s/cvirt-fuzz-api.%d",
	    dir, (int)getpid());
	snprintf(fuzz_db, sizeof(fuzz_db), "%s/cvirt.db", mgr_cfg.data);
	mgr_cfg.heartbeat_interval_ms = 1000;
	mgr_cfg.heartbeat_timeout_ms = 5000;
	if (util_mkdir_p(mgr_cfg.data, 0700) < 0 || atexit(fuzz_cleanup) != 0 ||
	    db_open(fuzz_db) < 0 ||
	    auth_init() < 0 || cluster_load() < 0 ||
	    ha_start(fuzz_db, fuzz_lead) < 0 ||
	    (fuzz_routes = api_routes_join(&fuzz_nroutes)) == NULL)
		abort();
	if (snprintf(path, sizeof(path), "%s/admin.token", mgr_cfg.data) >=
	    (int)sizeof(path) || util_read_token(path, fuzz_token,
	    sizeof(fuzz_token)) < 0)
		abort();
	return 0;
}

static void
fuzz_check_reply(const struct httpd_req *r, const struct httpd_route *rt)
{
	json_t *j;

	if (fuzz_replies != 1 || r->status == 0) {
		fprintf(fuzz_err, "fuzz_api: %s %s sent %d replies\n", rt->method,
		    rt->pattern, fuzz_replies);
		abort();
	}
	if (r->status == 500) {
		fprintf(fuzz_err, "fuzz_api: %s %s answered 500: %.*s\n",
		    rt->method, rt->pattern, (int)fuzz_reply_len, fuzz_reply);
		abort();
	}
	/* A reply to HEAD has no body (httpd_reply_raw). */
	if (!fuzz_reply_json || r->status < 400 ||
	    strcmp(r->method, "HEAD") == 0 ||
	    fuzz_reply_len == sizeof(fuzz_reply))
		return;
	j = json_loadb(fuzz_reply, fuzz_reply_len, 0, NULL);
	if (!json_is_string(json_object_get(j, "error"))) {
		fprintf(fuzz_err, "fuzz_api: %s %s: error reply without \"error\": "
		    "%.*s\n", rt->method, rt->pattern, (int)fuzz_reply_len,
		    fuzz_reply);
		abort();
	}
	json_decref(j);
}

/* What httpd_dispatch lets through: no ".", ".." or empty segments
 * (civetweb resolves them, and the server refuses such a path). */
static int
fuzz_path_ok(const char *path)
{
	const char *s = path, *e;
	size_t len;

	if (*s != '/')
		return 0;
	while (*s == '/') {
		s++;
		e = strchrnul(s, '/');
		len = (size_t)(e - s);
		if ((len == 0 && *e == '/') || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s = e;
	}
	return 1;
}

/* One request as httpd_dispatch would route it. */
static void
fuzz_request(const char *req, size_t len)
{
	const char *nl = memchr(req, '\n', len), *sp, *q;
	const struct httpd_route *found = NULL;
	char line[2048], method[16], err[256];
	struct httpd_req r;
	size_t n = nl ? (size_t)(nl - req) : len, k;
	int i;

	if (n >= sizeof(line) || (sp = memchr(req, ' ', n)) == NULL ||
	    (size_t)(sp - req) >= sizeof(method))
		return;
	memcpy(method, req, (size_t)(sp - req));
	method[sp - req] = '\0';
	memcpy(line, sp + 1, n - (size_t)(sp - req) - 1);
	line[n - (size_t)(sp - req) - 1] = '\0';
	memset(&r, 0, sizeof(r));
	if ((q = strchr(line, '?')) != NULL) {
		line[q - line] = '\0';
		r.query = q + 1;
	}
	if (!fuzz_path_ok(line))
		return;		/* the server answers 400 itself */
	r.method = method;
	r.path = line;
	snprintf(r.remote, sizeof(r.remote), "127.0.0.1");
	for (k = 0; k < fuzz_nroutes && found == NULL; k++) {
		if (!httpd_route_match(fuzz_routes[k].pattern, r.path, &r))
			continue;
		if (strcmp(fuzz_routes[k].method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 &&
		    strcmp(fuzz_routes[k].method, "GET") == 0)) {
			found = &fuzz_routes[k];
			break;
		}
		for (i = 0; i < r.nparams; i++)
			free(r.params[i]);
		r.nparams = 0;
	}
	if (found == NULL)
		return;
	if (nl != NULL && (size_t)(nl - req) + 1 < len &&
	    (r.body = httpd_json_decode(nl + 1, len - (size_t)(nl - req) - 1,
	    err, sizeof(err))) == NULL)
		goto cleanup;	/* the server answers 400 itself */
	if (found->min_role == ROLE_AGENT) {
		r.role = ROLE_AGENT;
		r.token = FUZZ_KEY;
		snprintf(r.principal, sizeof(r.principal), "host:" FUZZ_HOST);
	} else {
		r.role = ROLE_ADMIN;
		r.token = fuzz_token;
		snprintf(r.principal, sizeof(r.principal), "admin");
	}
	fuzz_replies = 0;
	fuzz_reply_len = 0;
	fuzz_in_handler = 1;
	found->fn(&r);
	fuzz_in_handler = 0;
	fuzz_check_reply(&r, found);
	audit_request(&r);
cleanup:
	json_decref(r.body);
	for (i = 0; i < r.nparams; i++)
		free(r.params[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *sep;
	int n;

	fuzz_reset();
	for (n = 0; p < end && n < FUZZ_MAX_REQS; n++) {
		sep = memmem(p, (size_t)(end - p), "\n%%\n", 4);
		if (sep == NULL)
			sep = end;
		fuzz_request(p, (size_t)(sep - p));
		p = sep == end ? end : sep + 4;
	}
	return 0;
}
