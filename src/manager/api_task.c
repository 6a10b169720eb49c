/* api_task.c - /api/v1/tasks and /api/v1/events. */
#include <stdio.h>
#include <string.h>

#include "manager/manager_int.h"

static int
api_task_list(struct httpd_req *r)
{
	json_t *rows, *row, *out;
	int limit;
	size_t i;

	if (api_limit(r, 100, 10000, &limit) < 0)
		return 0;
	out = json_array();
	rows = db_query("SELECT * FROM tasks ORDER BY id DESC LIMIT ?", "i",
	    (int64_t)limit);
	json_array_foreach(rows, i, row)
		json_array_append_new(out, task_json(row));
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

static int
api_task_id(struct httpd_req *r, int64_t *id)
{
	uint64_t v;

	if (util_parse_u64(r->params[0], 1, INT64_MAX, &v) < 0) {
		httpd_reply_error(r, 400, "invalid task id \"%.32s\"", r->params[0]);
		return -1;
	}
	*id = (int64_t)v;
	return 0;
}

static int
api_task_show(struct httpd_req *r)
{
	json_t *t;
	int64_t id;

	if (api_task_id(r, &id) < 0)
		return 0;
	if ((t = task_get(id)) == NULL)
		return httpd_reply_error(r, 404, "task %lld not found", (long long)id);
	return httpd_reply_json(r, 200, t);
}

static int
api_task_cancel(struct httpd_req *r)
{
	json_t *t;
	int64_t id;

	if (api_task_id(r, &id) < 0)
		return 0;
	if ((t = task_get(id)) == NULL)
		return httpd_reply_error(r, 404, "task %lld not found", (long long)id);
	json_decref(t);
	db_begin();
	if (db_exec("UPDATE tasks SET state = 'cancelled', error = 'cancelled by "
	    "the user', updated = ? WHERE id = ? AND state = 'queued'", "ii",
	    util_wall_ms(), id) == 1)
		db_exec("UPDATE vms SET task_id = NULL WHERE task_id = ?", "i", id);
	db_commit();
	t = task_get(id);
	if (strcmp(json_string_value(json_object_get(t, "state")), "cancelled") != 0) {
		json_decref(t);
		return httpd_reply_error(r, 409, "task %lld is no longer queued and "
		    "cannot be cancelled", (long long)id);
	}
	return httpd_reply_json(r, 200, t);
}

static int
api_event_list(struct httpd_req *r)
{
	json_t *rows, *row, *out;
	char buf[32];
	uint64_t since = 0;
	int limit;
	size_t i;

	if (api_limit(r, 100, 10000, &limit) < 0)
		return 0;
	if (httpd_query(r, "since", buf, sizeof(buf)) == 0 &&
	    util_parse_u64(buf, 0, INT64_MAX, &since) < 0)
		return httpd_reply_error(r, 400, "since must be an event id");
	out = json_array();
	rows = db_query("SELECT * FROM events WHERE id > ? ORDER BY id DESC "
	    "LIMIT ?", "ii", (int64_t)since, (int64_t)limit);
	json_array_foreach(rows, i, row)
		json_array_append_new(out, event_json(row));
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

const struct httpd_route api_task_routes[] = {
	{ "GET",  "/api/v1/tasks",            api_task_list,   0, ROLE_VIEWER },
	{ "GET",  "/api/v1/tasks/{}",         api_task_show,   0, ROLE_VIEWER },
	{ "POST", "/api/v1/tasks/{}/cancel",  api_task_cancel, 0, ROLE_OPERATOR },
	{ "GET",  "/api/v1/events",           api_event_list,  0, ROLE_VIEWER },
};
const size_t api_task_nroutes = sizeof(api_task_routes) / sizeof(api_task_routes[0]);
