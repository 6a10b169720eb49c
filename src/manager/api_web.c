/* api_web.c - what the web UI needs beyond the REST objects: where its files
 * are, and a server-sent-events stream of the cluster's state. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <civetweb.h>

#include "common/log.h"
#include "common/ticket.h"
#include "manager/manager_int.h"

#define STREAM_POLL_MS      500
#define STREAM_KEEPALIVE_MS 10000
#define STREAM_TASKS        30
#define STREAM_EVENTS       30
#define STREAM_MAX          8		/* each holds a "long" worker */

static struct ticket_store stream_tickets = TICKET_STORE_INIT(30000);
static atomic_int stream_quit;
static atomic_int stream_open;		/* streams being served */

static int
web_has_index(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	return util_fmt(path, sizeof(path), "%s/index.html", dir) == 0 &&
	    stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
web_root_find(char *out, size_t outsz)
{
	char exe[PATH_MAX], *slash;
	ssize_t n;

	/* Next to the binary (build/cvirt -> build/web, BIN/cvirt -> BIN/../share). */
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL)
			*slash = '\0';
		if (util_fmt(out, outsz, "%s/web", exe) == 0 && web_has_index(out))
			return 0;
		if (util_fmt(out, outsz, "%s/../share/cvirt/web", exe) == 0 &&
		    web_has_index(out))
			return 0;
	}
	if (util_fmt(out, outsz, "/usr/share/cvirt/web") == 0 &&
	    web_has_index(out))
		return 0;
	out[0] = '\0';
	return -1;
}

int
web_root_check(const char *dir)
{
	if (!web_has_index(dir)) {
		log_error("--web-root %s: no index.html there", dir);
		return -1;
	}
	return 0;
}

void
api_web_shutdown(void)
{
	atomic_store(&stream_quit, 1);
}

/* GET /api/v1/session: who the token belongs to, so the UI offers only
 * what the role allows. */
static int
api_session(struct httpd_req *r)
{
	return httpd_reply_json(r, 200, json_pack("{s:s, s:s}", "name",
	    r->principal, "role", auth_role_name(r->role)));
}

/* POST /api/v1/stream/ticket: EventSource cannot send a header, so the page
 * trades its token for a one-use ticket first. */
static int
api_stream_ticket(struct httpd_req *r)
{
	char ticket[TICKET_LEN + 1], path[96];

	if (atomic_load(&stream_open) >= STREAM_MAX)
		return httpd_reply_error(r, 503, "too many live streams open "
		    "(%d); close a page or poll the API", STREAM_MAX);
	if (ticket_issue(&stream_tickets, r->principal, ticket,
	    sizeof(ticket)) < 0 ||
	    util_fmt(path, sizeof(path), "/api/v1/stream?ticket=%s", ticket) < 0)
		return httpd_reply_error(r, 500, "cannot issue a ticket");
	return httpd_reply_json(r, 200, json_pack("{s:s, s:s}", "ticket",
	    ticket, "path", path));
}

static json_t *
stream_rows(const char *sql, int64_t limit, json_t *(*conv)(json_t *))
{
	json_t *rows = limit > 0 ? db_query(sql, "i", limit) :
	    db_query(sql, NULL), *row, *arr = json_array();
	size_t i;

	json_array_foreach(rows, i, row)
		json_array_append_new(arr, conv(row));
	json_decref(rows);
	return arr;
}

/* What changes often and is small: hosts, recent tasks and events, the
 * latest usage samples. VMs go in their own event, sent only on a change. */
static json_t *
stream_state(void)
{
	return json_pack("{s:o, s:o, s:o, s:o}",
	    "hosts", stream_rows("SELECT h.*, (SELECT COUNT(*) FROM vms v WHERE "
	    "v.host = h.name) AS vms FROM hosts h ORDER BY h.name", 0, host_json),
	    "tasks", stream_rows("SELECT * FROM tasks ORDER BY id DESC LIMIT ?",
	    STREAM_TASKS, task_json),
	    "events", stream_rows("SELECT * FROM events ORDER BY id DESC LIMIT ?",
	    STREAM_EVENTS, event_json),
	    "stats", stats_all_json());
}

static json_t *
stream_vms(void)
{
	return stream_rows("SELECT * FROM vms ORDER BY name", 0, vm_json);
}

/* POST /api/v1/vms/{name}/vnc: a one-use ticket for the graphical console,
 * relayed by console.c like the serial one. */
static int
api_vm_vnc(struct httpd_req *r)
{
	char ticket[64], path[128];
	const char *host, *state, *display;
	json_t *row = NULL, *spec;

	if (util_name_valid(r->params[0]))
		row = vm_find(r->params[0]);
	if (row == NULL)
		return httpd_reply_error(r, 404, "vm \"%.64s\" not found",
		    r->params[0]);
	host = json_string_value(json_object_get(row, "host"));
	state = json_string_value(json_object_get(row, "state"));
	spec = vm_spec(row);
	display = json_string_value(json_object_get(spec, "display"));
	if (display == NULL || strcmp(display, "vnc") != 0)
		httpd_reply_error(r, 409, "vm \"%s\" has no graphical console "
		    "(it was created with display none)", r->params[0]);
	else if (host == NULL || state == NULL || strcmp(state, "stopped") == 0 ||
	    strcmp(state, "failed") == 0)
		httpd_reply_error(r, 409, "vm \"%s\" is not running", r->params[0]);
	else if (console_ticket_kind(json_string_value(json_object_get(row,
	    "uuid")), host, "vnc", ticket, sizeof(ticket)) < 0 ||
	    util_fmt(path, sizeof(path), "/api/v1/console?ticket=%s", ticket) < 0)
		httpd_reply_error(r, errno == EBUSY ? 503 : 500, errno == EBUSY ?
		    "too many consoles open; close one first" :
		    "cannot issue a console ticket");
	else
		httpd_reply_json(r, 200, json_pack("{s:s, s:s}", "ticket",
		    ticket, "path", path));
	json_decref(spec);
	json_decref(row);
	return 0;
}

/* GET /api/v1/vms/{name}/stats and /hosts/{name}/stats: the kept samples,
 * oldest first. */
static int
api_vm_stats(struct httpd_req *r)
{
	char key[UTIL_UUID_LEN + 8];
	json_t *row = NULL, *out;

	if (util_name_valid(r->params[0]))
		row = vm_find(r->params[0]);
	if (row == NULL)
		return httpd_reply_error(r, 404, "vm \"%.64s\" not found",
		    r->params[0]);
	snprintf(key, sizeof(key), "vm:%s",
	    json_string_value(json_object_get(row, "uuid")));
	json_decref(row);
	out = stats_series_json(key);
	json_object_set_new(out, "vm", json_string(r->params[0]));
	return httpd_reply_json(r, 200, out);
}

static int
api_host_stats(struct httpd_req *r)
{
	char key[UTIL_NAME_MAX + 8];
	json_t *row = NULL, *out;

	if (util_name_valid(r->params[0]))
		row = db_row("SELECT name FROM hosts WHERE name = ?", "s",
		    r->params[0]);
	if (row == NULL)
		return httpd_reply_error(r, 404, "host \"%.64s\" not found",
		    r->params[0]);
	json_decref(row);
	snprintf(key, sizeof(key), "host:%s", r->params[0]);
	out = stats_series_json(key);
	json_object_set_new(out, "host", json_string(r->params[0]));
	return httpd_reply_json(r, 200, out);
}

/* Send event `name` with j's JSON when it differs from *last (which then
 * takes it). 1 sent, 0 unchanged, -1 the client is gone or out of memory. */
static int
stream_part(struct mg_connection *c, const char *name, json_t *j, char **last)
{
	char *cur = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int rc = 0;

	json_decref(j);
	if (cur == NULL)
		return -1;
	if (*last == NULL || strcmp(cur, *last) != 0) {
		if (mg_printf(c, "event: %s\ndata: %s\n\n", name, cur) <= 0) {
			free(cur);
			return -1;
		}
		free(*last);
		*last = cur;
		return 1;
	}
	free(cur);
	return rc;
}

/* GET /api/v1/stream?ticket=T: "vms" (the VM list) and "state" (the rest)
 * events, each sent at once and again when it changes (checked every
 * 500 ms); a comment as keep-alive. Each stream holds a "long" worker
 * for as long as the page is open, hence the cap at the ticket. */
static int
api_stream(struct httpd_req *r)
{
	char ticket[64], who[TICKET_DATA], *vms = NULL, *state = NULL;
	int64_t quiet = 0;
	int a, b;

	if (httpd_query(r, "ticket", ticket, sizeof(ticket)) < 0 ||
	    ticket_redeem(&stream_tickets, ticket, who, sizeof(who)) < 0)
		return httpd_reply_error(r, 401, "invalid or expired stream ticket");
	if (atomic_fetch_add(&stream_open, 1) >= STREAM_MAX) {
		atomic_fetch_sub(&stream_open, 1);
		return httpd_reply_error(r, 503, "too many live streams open");
	}
	snprintf(r->principal, sizeof(r->principal), "%.63s", who);
	r->status = 200;
	mg_printf(r->conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
	    "\r\nCache-Control: no-store\r\nConnection: close\r\n"
	    "X-Accel-Buffering: no\r\n\r\nretry: 2000\n\n");
	while (!atomic_load(&stream_quit)) {
		if ((a = stream_part(r->conn, "vms", stream_vms(), &vms)) < 0 ||
		    (b = stream_part(r->conn, "state", stream_state(), &state)) < 0)
			break;
		if (a || b) {
			quiet = 0;
		} else if ((quiet += STREAM_POLL_MS) >= STREAM_KEEPALIVE_MS) {
			if (mg_printf(r->conn, ": keep-alive\n\n") <= 0)
				break;
			quiet = 0;
		}
		util_sleep_ms(STREAM_POLL_MS);
	}
	atomic_fetch_sub(&stream_open, 1);
	free(vms);
	free(state);
	return 0;
}

const struct httpd_route api_web_routes[] = {
	{ "GET",  "/api/v1/session",         api_session, 0, ROLE_VIEWER },
	{ "POST", "/api/v1/stream/ticket",   api_stream_ticket, 0, ROLE_VIEWER },
	{ "GET",  "/api/v1/stream",          api_stream,
	  HTTPD_NOAUTH | HTTPD_LONG, 0 },
	{ "GET",  "/api/v1/vms/{}/stats",    api_vm_stats, 0, ROLE_VIEWER },
	{ "POST", "/api/v1/vms/{}/vnc",      api_vm_vnc, 0, ROLE_OPERATOR },
	{ "GET",  "/api/v1/hosts/{}/stats",  api_host_stats, 0, ROLE_VIEWER },
};
const size_t api_web_nroutes = sizeof(api_web_routes) / sizeof(api_web_routes[0]);
