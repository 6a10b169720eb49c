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
 * on its first line and a JSON body (possibly empty) after it; a route
 * that streams its body (HTTPD_STREAM) reads it raw with httpd_body_read.
 * Checked beyond the sanitizers: every handler sends exactly one reply,
 * with a status, never a 500, and a JSON error reply carries "error".
 *
 * Two more kinds of request reach what a route table does not:
 * "AUTH ROLE [CN]\nHEADER" runs auth_check (src/manager/auth.c) on the
 * Authorization header HEADER as httpd_dispatch hands it over
 * (httpd_bearer), for a route of least role ROLE (none, viewer, operator,
 * admin, agent, join) and a client certificate named CN; and
 * "WS KIND QUERY\nFRAMES" opens the console websocket
 * (console_ws_route, src/manager/console.c) with the upgrade request's
 * query QUERY ("-": none) after the harness issued a console ticket of
 * KIND (serial, vnc; none: no ticket), then plays FRAMES, records of one
 * byte each: 'c' LEN2 DATA (the client sends), 'a' OP LEN2 DATA REPEAT
 * (the agent sends REPEAT frames of websocket opcode OP), 'r' (the
 * client's handshake is done), 'x' (the agent hangs up); LEN2 is 16 bits,
 * little endian; then the client goes. In any request, $ADMIN, $AGENT
 * (host fz1's key), $TOKEN and $KEY (the last "token" and "agent_key" a
 * reply handed out), $TICKET (the ticket just issued, else the last one a
 * reply gave) and $EXPIRED (an expired session planted by fuzz_reset)
 * stand for those secrets. Checked: auth_check accepts (or refuses with
 * 403) only a secret the input was given and never $EXPIRED, with a role
 * the route allows; the console opens only on a ticket issued and not
 * yet used, and always on one (host fz1 as registered), dialling the
 * ticket's console on the host's address; the client gets exactly the
 * agent's data frames, in order, none before its handshake is done, and
 * a close when the agent hangs up; the agent gets exactly the client's
 * data; LeakSanitizer finds the link freed. */
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
#define FUZZ_HOST_URL	"http://127.0.0.1:9"
#define FUZZ_UUID	"0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f"
#define FUZZ_AGENT_TICKET "fz-agent-ticket"
#define FUZZ_EXPIRED	"fuzz-expired-session-0123456789abcdef"
#define FUZZ_SECRET	300	/* longer than any token auth_check takes */
#define FUZZ_MAX_KNOWN	(2 + 2 * FUZZ_MAX_REQS)
#define FUZZ_MAX_TICKETS (2 * FUZZ_MAX_REQS)
/* Agent data fed to one console: well past CONSOLE_PENDING_MAX. */
#define FUZZ_WS_FEED	(1024 * 1024)

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

/* The secrets this input was given: the admin token, fz1's key, and each
 * "token" or "agent_key" a reply carried. */
static char fuzz_known[FUZZ_MAX_KNOWN][FUZZ_SECRET];
static int fuzz_nknown;
static char fuzz_last_token[FUZZ_SECRET], fuzz_last_key[FUZZ_SECRET];
static char fuzz_last_ticket[FUZZ_SECRET];

/* Console tickets issued during this input: unused ones are valid. */
static struct {
	char	ticket[FUZZ_SECRET];
	char	kind[8];	/* serial, vnc; "" when a reply gave it */
	int	used;
} fuzz_tickets[FUZZ_MAX_TICKETS];
static int fuzz_ntickets;

/* The console websocket's two connections, as civetweb would hold them:
 * what each was sent, and the agent side's handlers. */
static char fuzz_client_conn, fuzz_agent_conn;
#define FUZZ_CLIENT	((struct mg_connection *)&fuzz_client_conn)
#define FUZZ_AGENT	((struct mg_connection *)&fuzz_agent_conn)
struct fuzz_buf {
	char	*p;
	size_t	 n;
};
static struct {
	mg_websocket_data_handler	 data;
	mg_websocket_close_handler	 close;
	void				*ud;
	int				 dialed, port, ready, agent_gone;
	int				 client_gone, client_closed;
	char				 host[160], path[256];
	struct fuzz_buf			 to_client, to_agent;
} fz_ws;

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
	if (reply == NULL)
		return 0;
	/* The agent's console and VNC tickets (console_dial). */
	if (strcmp(method, "POST") == 0 && strlen(path) > 4 &&
	    (strcmp(path + strlen(path) - 4, "/vnc") == 0 ||
	    (strlen(path) > 8 &&
	    strcmp(path + strlen(path) - 8, "/console") == 0)))
		*reply = json_pack("{s:s}", "ticket", FUZZ_AGENT_TICKET);
	else
		*reply = json_object();
	return 0;
}

/* Uploads relayed to an agent (api_media.c): as any call, the body the
 * request streams left unread. */
int
agentc_call_stream(const char *host, const char *method, const char *path,
    json_t *body, const struct httpc_opts *stream, long timeout_ms,
    int *status, json_t **reply, char *err, size_t errsz)
{
	(void)stream;
	return agentc_call(host, method, path, body, timeout_ms, status, reply,
	    err, errsz);
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
fuzz_buf_add(struct fuzz_buf *b, const char *data, size_t len)
{
	char *p;

	if (len == 0)
		return;
	if ((p = realloc(b->p, b->n + len)) == NULL)
		abort();
	memcpy(p + b->n, data, len);
	b->p = p;
	b->n += len;
}

static void
fuzz_buf_free(struct fuzz_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = 0;
}

static void
fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(fuzz_err, "fuzz_api: ");
	vfprintf(fuzz_err, fmt, ap);
	fprintf(fuzz_err, "\n");
	va_end(ap);
	abort();
}

/* The client's websocket (httpd_ws_send, httpd_ws_close). */
int
mg_websocket_write(struct mg_connection *conn, int opcode, const char *data,
    size_t len)
{
	if (conn != FUZZ_CLIENT)
		fuzz_fail("websocket write to an unknown connection");
	if (fz_ws.client_gone)
		fuzz_fail("console: wrote to the client after it went");
	/* Before the handshake's reply, a frame would precede it. */
	if (!fz_ws.ready)
		fuzz_fail("console: a frame (opcode %d) to the client before its "
		    "handshake was done", opcode);
	if (fz_ws.client_closed)
		fuzz_fail("console: a frame to the client after closing it");
	if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
		fz_ws.client_closed = 1;
		return 2;
	}
	fuzz_buf_add(&fz_ws.to_client, data, len);
	return (int)len + 2;
}

/* The manager's websocket to the agent (console_dial). */
struct mg_connection *
mg_connect_websocket_client(const char *host, int port, int use_ssl,
    char *err, size_t errsz, const char *path, const char *origin,
    mg_websocket_data_handler data_func,
    mg_websocket_close_handler close_func, void *user_data)
{
	if (fz_ws.dialed)
		fuzz_fail("console: dialled the agent twice");
	fz_ws.dialed = 1;
	snprintf(fz_ws.host, sizeof(fz_ws.host), "%s", host);
	snprintf(fz_ws.path, sizeof(fz_ws.path), "%s", path);
	fz_ws.port = port;
	fz_ws.data = data_func;
	fz_ws.close = close_func;
	fz_ws.ud = user_data;
	return FUZZ_AGENT;
}

int
mg_websocket_client_write(struct mg_connection *conn, int opcode,
    const char *data, size_t len)
{
	if (conn != FUZZ_AGENT)
		fuzz_fail("websocket client write to an unknown connection");
	fuzz_buf_add(&fz_ws.to_agent, data, len);
	return (int)len + 6;
}

/* The agent side ends: civetweb calls its close handler once. */
static void
fuzz_agent_hangs_up(void)
{
	if (fz_ws.agent_gone)
		return;
	fz_ws.agent_gone = 1;
	fz_ws.close(FUZZ_AGENT, fz_ws.ud);
}

void
mg_close_connection(struct mg_connection *conn)
{
	if (conn != FUZZ_AGENT || !fz_ws.dialed)
		fuzz_fail("closed a connection never opened");
	fuzz_agent_hangs_up();
	fz_ws.dialed = 0;
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

static void
fuzz_known_add(const char *secret)
{
	if (fuzz_nknown < FUZZ_MAX_KNOWN && strlen(secret) < FUZZ_SECRET)
		snprintf(fuzz_known[fuzz_nknown++], FUZZ_SECRET, "%s", secret);
}

static int
fuzz_is_known(const char *secret)
{
	int i;

	for (i = 0; i < fuzz_nknown; i++)
		if (strcmp(fuzz_known[i], secret) == 0)
			return 1;
	return 0;
}

static void
fuzz_ticket_add(const char *ticket, const char *kind)
{
	if (fuzz_ntickets >= FUZZ_MAX_TICKETS || strlen(ticket) >= FUZZ_SECRET)
		fuzz_fail("more console tickets than an input can issue");
	snprintf(fuzz_tickets[fuzz_ntickets].ticket, FUZZ_SECRET, "%s",
	    ticket);
	snprintf(fuzz_tickets[fuzz_ntickets].kind, sizeof(fuzz_tickets[0].kind),
	    "%s", kind);
	fuzz_tickets[fuzz_ntickets++].used = 0;
	snprintf(fuzz_last_ticket, sizeof(fuzz_last_ticket), "%s", ticket);
}

/* What a reply handed out: secrets the input may use from now on. */
static void
fuzz_capture(void)
{
	json_t *j = json_loadb(fuzz_reply, fuzz_reply_len, 0, NULL);
	const char *v;

	if ((v = json_string_value(json_object_get(j, "token"))) != NULL) {
		fuzz_known_add(v);
		snprintf(fuzz_last_token, sizeof(fuzz_last_token), "%s", v);
	}
	if ((v = json_string_value(json_object_get(j, "agent_key"))) != NULL) {
		fuzz_known_add(v);
		snprintf(fuzz_last_key, sizeof(fuzz_last_key), "%s", v);
	}
	if ((v = json_string_value(json_object_get(j, "ticket"))) != NULL &&
	    fuzz_ntickets < FUZZ_MAX_TICKETS)
		fuzz_ticket_add(v, "");
	json_decref(j);
}

/* An empty inventory but for the admin, host fz1 (up, storage "local")
 * and the default cluster settings. */
static void
fuzz_reset(void)
{
	char sql[128], hash[UTIL_HASH_LEN + 1];
	json_t *rows, *t;
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
	    "', '" FUZZ_HOST_URL "', 'up', 'tcg', 2, 4096, '" FUZZ_KEY "', 0,"
	    " '{\"storage\":[{\"name\":\"local\",\"path\":\"/fuzz/local\","
	    "\"ok\":true}]}', 0)");
	/* The admin's session that ended a second after the epoch. */
	util_hash_hex(FUZZ_EXPIRED, hash);
	if (db_exec("INSERT INTO tokens (hash, name, role, created, kind, "
	    "expires) VALUES (?, 'admin', ?, 0, 'session', 1000)", "si", hash,
	    (int64_t)ROLE_ADMIN) < 0)
		abort();
	fuzz_nknown = 0;
	fuzz_known_add(fuzz_token);
	fuzz_known_add(FUZZ_KEY);
	fuzz_last_token[0] = fuzz_last_key[0] = fuzz_last_ticket[0] = '\0';
	fuzz_ntickets = 0;
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

/* HTTPD_STREAM routes read their body with httpd_body_read: this hands it
 * out as a slow client would, a few bytes at a time. */
static const char *fuzz_body;
static size_t fuzz_body_len;

static int
fuzz_body_read(struct httpd_req *r, void *buf, size_t n)
{
	size_t k = fuzz_body_len < n ? fuzz_body_len : n;

	(void)r;
	if (k > 1 + fuzz_body_len % 7)
		k = 1 + fuzz_body_len % 7;
	memcpy(buf, fuzz_body, k);
	fuzz_body += k;
	fuzz_body_len -= k;
	return (int)k;
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
	if (found->flags & HTTPD_STREAM) {
		/* The body as it streams in, in pieces of varied size. */
		fuzz_body = nl != NULL ? nl + 1 : req + len;
		fuzz_body_len = (size_t)(req + len - fuzz_body);
		r.content_length = (long long)fuzz_body_len;
		r.body_read = fuzz_body_read;
	} else if (nl != NULL && (size_t)(nl - req) + 1 < len &&
	    (r.body = httpd_json_decode(nl + 1, len - (size_t)(nl - req) - 1,
	    err, sizeof(err))) == NULL) {
		goto cleanup;	/* the server answers 400 itself */
	}
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
	fuzz_capture();
	audit_request(&r);
cleanup:
	json_decref(r.body);
	for (i = 0; i < r.nparams; i++)
		free(r.params[i]);
}

static const struct {
	const char	*name;
	int		 role;
} fuzz_roles[] = {
	{ "none", ROLE_NONE }, { "viewer", ROLE_VIEWER },
	{ "operator", ROLE_OPERATOR }, { "admin", ROLE_ADMIN },
	{ "agent", ROLE_AGENT }, { "join", ROLE_JOIN },
};

/* "AUTH ROLE [CN]\nHEADER": auth_check as httpd_dispatch calls it. The
 * header's value ends at CR, LF or NUL (no header value holds one); "-"
 * is no Authorization header at all. */
static void
fuzz_auth(const char *req, size_t len)
{
	const char *nl = memchr(req, '\n', len), *role = req + 5;
	char line[128], hdr[1024], *cn;
	size_t n = nl ? (size_t)(nl - req) : len, k, hl;
	struct httpd_req r;
	int min_role = -1, rc, enough;

	if (n >= sizeof(line))
		return;
	memcpy(line, role, n - 5);
	line[n - 5] = '\0';
	if ((cn = strchr(line, ' ')) != NULL)
		*cn++ = '\0';
	for (k = 0; k < sizeof(fuzz_roles) / sizeof(fuzz_roles[0]); k++)
		if (strcmp(line, fuzz_roles[k].name) == 0)
			min_role = fuzz_roles[k].role;
	if (min_role < 0 || nl == NULL)
		return;
	hl = len - n - 1 < sizeof(hdr) - 1 ? len - n - 1 : sizeof(hdr) - 1;
	memcpy(hdr, nl + 1, hl);
	hdr[hl] = '\0';
	hdr[strcspn(hdr, "\r\n")] = '\0';
	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.path = "/api/v1/fuzz";
	snprintf(r.principal, sizeof(r.principal), "anonymous");
	snprintf(r.remote, sizeof(r.remote), "127.0.0.1");
	if (cn != NULL)
		snprintf(r.peer_cn, sizeof(r.peer_cn), "%s", cn);
	r.token = strcmp(hdr, "-") == 0 ? NULL : httpd_bearer(hdr);
	rc = auth_check(&r, min_role);
	if (rc != 0 && rc != 401 && rc != 403)
		fuzz_fail("auth_check answered %d", rc);
	if (rc == 401)
		return;
	/* Registration by a host's verified certificate (CN), whatever the
	 * token: the certificate is the credential (src/manager/hostid.c). */
	if (rc == 0 && min_role == ROLE_JOIN && cn != NULL &&
	    strncmp(r.principal, "cert:", 5) == 0) {
		if (strcmp(r.principal + 5, cn) != 0 || r.role != ROLE_JOIN)
			fuzz_fail("certificate of %s taken as %s", cn,
			    r.principal);
		return;
	}
	if (r.token == NULL || !fuzz_is_known(r.token))
		fuzz_fail("auth_check let \"%.80s\" through (%d) for role %s: "
		    "no such secret was handed out", r.token ? r.token : "(none)",
		    rc, line);
	if (strcmp(r.principal, "anonymous") == 0 || r.principal[0] == '\0')
		fuzz_fail("auth_check named no principal (%d)", rc);
	if (min_role == ROLE_AGENT) {
		if (rc != 0 || r.role != ROLE_AGENT)
			fuzz_fail("agent route: %d with role %d", rc, r.role);
		if (cn != NULL && strcmp(r.principal + 5, cn) != 0)
			fuzz_fail("agent key of %s taken with the certificate of "
			    "%s", r.principal, cn);
		return;
	}
	if ((r.role < ROLE_NONE || r.role > ROLE_ADMIN) &&
	    !(min_role == ROLE_JOIN && r.role == ROLE_JOIN))
		fuzz_fail("auth_check gave role %d", r.role);
	enough = min_role == ROLE_JOIN ? r.role == ROLE_ADMIN ||
	    r.role == ROLE_JOIN : r.role >= min_role;
	if ((rc == 0) != enough)
		fuzz_fail("role %d %s for a route of role %d", r.role,
		    rc == 0 ? "let through" : "refused (403)", min_role);
}

/* The ticket a query names, decoded as console_open reads it; 0 or -1. */
static int
fuzz_query_ticket(const char *query, char *out, size_t outsz)
{
	return query != NULL && mg_get_var(query, strlen(query), "ticket", out,
	    outsz) >= 0 ? 0 : -1;
}

/* 1 when host fz1 is as fuzz_reset made it (console_dial reaches it). */
static int
fuzz_host_pristine(void)
{
	json_t *row = db_row("SELECT url FROM hosts WHERE name = ?", "s",
	    FUZZ_HOST);
	const char *url = json_string_value(json_object_get(row, "url"));
	int ok = url != NULL && strcmp(url, FUZZ_HOST_URL) == 0;

	json_decref(row);
	return ok;
}

/* Opens the console with query as civetweb would on an upgrade request;
 * the link, or NULL when refused. Checks the ticket's fate and the dial. */
static void *
fuzz_ws_open(const char *query)
{
	char dec[64], want[256];
	void *state;
	int i, t = -1;

	memset(&fz_ws, 0, sizeof(fz_ws));
	if (fuzz_query_ticket(query, dec, sizeof(dec)) == 0)
		for (i = 0; i < fuzz_ntickets && t < 0; i++)
			if (!fuzz_tickets[i].used &&
			    strcmp(fuzz_tickets[i].ticket, dec) == 0)
				t = i;
	fuzz_in_handler = 1;
	state = console_ws_route.open(FUZZ_CLIENT, query, NULL);
	fuzz_in_handler = 0;
	if (state != NULL && t < 0)
		fuzz_fail("console opened on a ticket never issued or used "
		    "before: %.80s", query);
	if (t < 0)
		return NULL;
	fuzz_tickets[t].used = 1;	/* one use, opened or not */
	if (state == NULL && fz_ws.dialed)
		fuzz_fail("console refused, its agent connection open");
	if (state != NULL && !fz_ws.dialed)
		fuzz_fail("console opened without an agent connection");
	/* A ticket a reply gave names a VM on any host; ours name fz1. */
	if (fuzz_tickets[t].kind[0] == '\0')
		return state;
	if (state == NULL) {
		if (fuzz_host_pristine())
			fuzz_fail("console refused a valid ticket: %.80s", query);
		return NULL;
	}
	snprintf(want, sizeof(want), "/agent/v1/%s?ticket=" FUZZ_AGENT_TICKET,
	    strcmp(fuzz_tickets[t].kind, "vnc") == 0 ? "vnc" : "console");
	if (strcmp(fz_ws.host, "127.0.0.1") != 0 || fz_ws.port != 9 ||
	    strcmp(fz_ws.path, want) != 0)
		fuzz_fail("console dialled %s:%d%s for a %s ticket", fz_ws.host,
		    fz_ws.port, fz_ws.path, fuzz_tickets[t].kind);
	return state;
}

static unsigned
fuzz_u16(const unsigned char *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

/* Plays the frames of an open console, then the client goes. */
static void
fuzz_ws_frames(void *state, const unsigned char *p, const unsigned char *end)
{
	struct fuzz_buf want = { NULL, 0 }, sent = { NULL, 0 };
	unsigned len, op, rep, i;
	size_t fed = 0;
	char *frame;
	int keep;

	while (p < end) {
		switch (*p++) {
		case 'c':
			if (end - p < 2 || (size_t)(end - p - 2) < fuzz_u16(p))
				goto done;
			len = fuzz_u16(p);
			console_ws_route.data(state, (const char *)p + 2, len);
			fuzz_buf_add(&sent, (const char *)p + 2, len);
			p += 2 + len;
			break;
		case 'a':
			if (end - p < 4 || (size_t)(end - p - 4) < fuzz_u16(p + 1))
				goto done;
			op = p[0] & 0x0f;
			len = fuzz_u16(p + 1);
			rep = p[3 + len] ? p[3 + len] : 1;
			for (i = 0; i < rep && !fz_ws.agent_gone &&
			    fed < FUZZ_WS_FEED; i++, fed += len) {
				if ((frame = malloc(len + 1)) == NULL)
					abort();
				memcpy(frame, p + 3, len);
				keep = fz_ws.data(FUZZ_AGENT, 0x80 | (int)op, frame,
				    len, fz_ws.ud);
				if (keep && op <= MG_WEBSOCKET_OPCODE_BINARY)
					fuzz_buf_add(&want, frame, len);
				free(frame);
				if (!keep)	/* civetweb closes that side */
					fuzz_agent_hangs_up();
			}
			p += 4 + len;
			break;
		case 'r':
			if (!fz_ws.ready) {
				fz_ws.ready = 1;
				console_ws_route.ready(state);
			}
			break;
		case 'x':
			fuzz_agent_hangs_up();
			break;
		default:
			break;
		}
	}
done:
	if (fz_ws.agent_gone && fz_ws.ready && !fz_ws.client_closed)
		fuzz_fail("console: the agent hung up, the client was not told");
	fz_ws.client_gone = 1;
	console_ws_route.close(state);
	if (fz_ws.dialed)
		fuzz_fail("console: the agent connection outlived the client");
	if (fz_ws.to_agent.n != sent.n || (sent.n &&
	    memcmp(fz_ws.to_agent.p, sent.p, sent.n) != 0))
		fuzz_fail("console: the agent got %zu bytes, the client sent %zu",
		    fz_ws.to_agent.n, sent.n);
	/* Frames held until the handshake never go if it never ends. */
	if (!fz_ws.ready)
		fuzz_buf_free(&want);
	if (fz_ws.to_client.n != want.n || (want.n &&
	    memcmp(fz_ws.to_client.p, want.p, want.n) != 0))
		fuzz_fail("console: the client got %zu bytes, the agent sent %zu",
		    fz_ws.to_client.n, want.n);
	fuzz_buf_free(&want);
	fuzz_buf_free(&sent);
	fuzz_buf_free(&fz_ws.to_client);
	fuzz_buf_free(&fz_ws.to_agent);
}

/* "WS KIND QUERY\nFRAMES", already expanded; the ticket was issued. */
static void
fuzz_ws(const char *req, size_t len)
{
	const char *nl = memchr(req, '\n', len), *sp;
	char query[2048];
	size_t n = nl ? (size_t)(nl - req) : len;
	void *state;

	if ((sp = memchr(req + 3, ' ', n - 3)) == NULL ||
	    (size_t)(req + n - sp) > sizeof(query))
		return;
	memcpy(query, sp + 1, (size_t)(req + n - sp - 1));
	query[req + n - sp - 1] = '\0';
	if (strlen(query) != (size_t)(req + n - sp - 1))
		return;		/* a NUL: no request line holds one */
	state = fuzz_ws_open(strcmp(query, "-") == 0 ? NULL : query);
	if (state != NULL)
		fuzz_ws_frames(state, nl ? (const unsigned char *)nl + 1 :
		    (const unsigned char *)req + len,
		    (const unsigned char *)req + len);
}

/* Every ticket still unused is redeemed now, so none outlives the input
 * (tickets last 30 s; the next input's oracle knows only its own). */
static void
fuzz_ws_drain(void)
{
	char query[FUZZ_SECRET + 8];
	void *state;
	int i;

	for (i = 0; i < fuzz_ntickets; i++) {
		if (fuzz_tickets[i].used)
			continue;
		snprintf(query, sizeof(query), "ticket=%s",
		    fuzz_tickets[i].ticket);
		if ((state = fuzz_ws_open(query)) != NULL)
			fuzz_ws_frames(state, NULL, NULL);
	}
}

static const char *const fuzz_names[] = { "$ADMIN", "$AGENT", "$TOKEN",
    "$KEY", "$TICKET", "$EXPIRED" };
#define FUZZ_NNAMES	(sizeof(fuzz_names) / sizeof(fuzz_names[0]))

/* req with each $NAME replaced by its value into out (when not NULL);
 * the length it has then. */
static size_t
fuzz_subst(const char *req, size_t len, const char *const *vals, char *out)
{
	size_t i = 0, n = 0, k, nl, vl;

	while (i < len) {
		for (k = 0; k < FUZZ_NNAMES; k++) {
			nl = strlen(fuzz_names[k]);
			if (len - i >= nl && memcmp(req + i, fuzz_names[k],
			    nl) == 0)
				break;
		}
		if (k == FUZZ_NNAMES) {
			if (out)
				out[n] = req[i];
			n++;
			i++;
			continue;
		}
		vl = strlen(vals[k]);
		if (out)
			memcpy(out + n, vals[k], vl);
		n += vl;
		i += nl;
	}
	return n;
}

/* One request of the input: its secrets filled in, then run as what it
 * is (AUTH, WS, or an API request). */
static void
fuzz_one(const char *req, size_t len)
{
	const char *vals[FUZZ_NNAMES] = { fuzz_token, FUZZ_KEY, fuzz_last_token,
	    fuzz_last_key, fuzz_last_ticket, FUZZ_EXPIRED };
	const char *kind = NULL;
	char ticket[64], *x;
	size_t n;
	int ws = len > 3 && memcmp(req, "WS ", 3) == 0;

	/* "WS serial ..." or "WS vnc ...": a ticket of that kind first. */
	if (ws && len > 10 && memcmp(req + 3, "serial ", 7) == 0)
		kind = "serial";
	else if (ws && len > 7 && memcmp(req + 3, "vnc ", 4) == 0)
		kind = "vnc";
	if (kind != NULL) {
		if (console_ticket_kind(FUZZ_UUID, FUZZ_HOST, kind, ticket,
		    sizeof(ticket)) < 0)
			fuzz_fail("cannot issue a console ticket");
		fuzz_ticket_add(ticket, kind);
	}
	n = fuzz_subst(req, len, vals, NULL);
	if ((x = malloc(n + 1)) == NULL)
		abort();
	fuzz_subst(req, len, vals, x);
	x[n] = '\0';
	if (ws)
		fuzz_ws(x, n);
	else if (n > 5 && memcmp(x, "AUTH ", 5) == 0)
		fuzz_auth(x, n);
	else
		fuzz_request(x, n);
	free(x);
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
		fuzz_one(p, (size_t)(sep - p));
		p = sep == end ? end : sep + 4;
	}
	fuzz_ws_drain();
	return 0;
}
