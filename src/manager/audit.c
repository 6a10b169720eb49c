/* audit.c - the audit log: every mutation (and every refused request)
 * with who, from where, what and the outcome; GET /api/v1/audit. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

/* Heartbeats would drown everything else: an accepted report is routine. */
static int
audit_wanted(struct httpd_req *r)
{
	if (r->status == 401 || r->status == 403 || r->status == 429)
		return 1;
	if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
		return 0;
	if (strcmp(r->path, "/api/v1/agent/report") == 0 && r->status < 400)
		return 0;
	return strncmp(r->path, "/api/", 5) == 0;
}

#define AUDIT_KEEP_MS	(INT64_C(90) * 24 * 3600 * 1000)

void
audit_request(struct httpd_req *r)
{
	static unsigned n;	/* racy on purpose: only paces the pruning */
	char path[256];

	if (!audit_wanted(r))
		return;
	/* Kept 90 days: prune now and then, not on every request. */
	if (n++ % 1024 == 0)
		db_exec("DELETE FROM audit WHERE time < ?", "i",
		    util_wall_ms() - AUDIT_KEEP_MS);
	/* Bounded: a hostile path must not grow the log without limit. */
	snprintf(path, sizeof(path), "%s", r->path);
	if (db_exec("INSERT INTO audit (time, principal, remote, method, path, "
	    "status) VALUES (?, ?, ?, ?, ?, ?)", "issssi", util_wall_ms(),
	    r->principal, r->remote, r->method, path, (int64_t)r->status) < 0)
		log_warnx("audit: cannot record %s %s by %s", r->method, path,
		    r->principal);
}

static json_t *
audit_json(json_t *row)
{
	char when[40];

	util_time_iso(json_integer_value(json_object_get(row, "time")), when,
	    sizeof(when));
	return json_pack("{s:O, s:s, s:O, s:O, s:O, s:O, s:O}",
	    "id", json_object_get(row, "id"), "time", when,
	    "user", json_object_get(row, "principal"),
	    "remote", json_object_get(row, "remote"),
	    "method", json_object_get(row, "method"),
	    "path", json_object_get(row, "path"),
	    "status", json_object_get(row, "status"));
}

static int
api_audit_list(struct httpd_req *r)
{
	json_t *rows, *out, *row;
	char user[UTIL_NAME_MAX + 8];
	int limit;
	size_t i;

	if (api_limit(r, 100, 100000, &limit) < 0)
		return 0;
	if (httpd_query(r, "user", user, sizeof(user)) == 0)
		rows = db_query("SELECT * FROM audit WHERE principal = ? "
		    "ORDER BY id DESC LIMIT ?", "si", user, (int64_t)limit);
	else
		rows = db_query("SELECT * FROM audit ORDER BY id DESC LIMIT ?",
		    "i", (int64_t)limit);
	if (rows == NULL)
		return httpd_reply_error(r, 500, "cannot read the audit log");
	out = json_array();
	json_array_foreach(rows, i, row)
		json_array_append_new(out, audit_json(row));
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

const struct httpd_route api_audit_routes[] = {
	{ "GET", "/api/v1/audit", api_audit_list, 0, ROLE_ADMIN },
};
const size_t api_audit_nroutes = sizeof(api_audit_routes) /
    sizeof(api_audit_routes[0]);
