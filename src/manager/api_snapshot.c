/* api_snapshot.c - /api/v1/vms/{name}/snapshots: list, create, revert,
 * delete. Snapshots live in the VM's spec (and so in vm.json on storage). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))

void
api_task_settle(int64_t id, int ms)
{
	int64_t start = util_mono_ms(), deadline = start + ms;
	json_t *row;

	while (util_mono_ms() < deadline) {
		row = db_row("SELECT state FROM tasks WHERE id = ?", "i", id);
		if (row == NULL || (strcmp(JS(row, "state"), "queued") != 0 &&
		    strcmp(JS(row, "state"), "running") != 0)) {
			json_decref(row);
			return;
		}
		json_decref(row);
		/* A 1 ms poll of one row while a fast task may still end. */
		util_sleep_ms(util_mono_ms() - start < 200 ? 1 : 10);
	}
}

/* The VM of the path and its spec; NULL after replying 404. */
static json_t *
api_snap_vm(struct httpd_req *r, json_t **spec)
{
	json_t *row = util_name_valid(r->params[0]) ? vm_find(r->params[0]) :
	    NULL;

	if (row == NULL || (*spec = vm_spec(row)) == NULL) {
		httpd_reply_error(r, 404, "vm \"%.64s\" not found", r->params[0]);
		json_decref(row);
		return NULL;
	}
	return row;
}

static json_t *
api_snap_find(json_t *spec, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(spec, "snapshots"), i, s)
		if (strcmp(JS(s, "name"), name) == 0)
			return s;
	return NULL;
}

/* What users see of a snapshot: name, created, and whether the VM ran. */
static json_t *
api_snap_json(json_t *s, json_t *spec)
{
	json_t *o = json_pack("{s:O, s:O, s:O, s:O, s:s}", "name",
	    json_object_get(s, "name"), "id", json_object_get(s, "id"),
	    "created", json_object_get(s, "created"), "running",
	    json_object_get(s, "running") ? json_object_get(s, "running") :
	    json_false(), "vm", JS(spec, "name"));

	json_object_set(o, "disks", json_object_get(s, "disks"));
	return o;
}

static int
api_snap_list(struct httpd_req *r)
{
	json_t *spec = NULL, *row = api_snap_vm(r, &spec), *out, *s;
	size_t i;

	if (row == NULL)
		return 0;
	out = json_array();
	json_array_foreach(json_object_get(spec, "snapshots"), i, s)
		json_array_append_new(out, api_snap_json(s, spec));
	json_decref(spec);
	json_decref(row);
	return httpd_reply_json(r, 200, out);
}

static int
api_snap_submit(struct httpd_req *r, const char *kind, const char *snap,
    int settle_ms)
{
	json_t *params = json_pack("{s:s}", "snapshot", snap);
	char err[256];
	int64_t id;

	/* task_submit copies params; they stay ours. */
	id = task_submit(kind, r->params[0], params, r->principal, err,
	    sizeof(err));
	json_decref(params);
	if (id < 0)
		return httpd_reply_error(r, errno == ENOENT ? 404 :
		    errno == EBUSY ? 409 : 500, "%s", err);
	/* A snapshot takes milliseconds: answer with the finished task. */
	if (settle_ms > 0)
		api_task_settle(id, settle_ms);
	return api_reply_task(r, id);
}

static int
api_snap_create(struct httpd_req *r)
{
	static const char *const fields[] = { "name", NULL };
	json_t *spec = NULL, *row;
	const char *name = NULL;
	int rc = 0;

	if ((row = api_snap_vm(r, &spec)) == NULL)
		return 0;
	if (r->body == NULL || api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", 255, &name) < 0) {
		if (r->status == 0)
			httpd_reply_error(r, 400, "a JSON body {\"name\"} is "
			    "required");
		goto cleanup;
	}
	if (name == NULL || !util_name_valid(name)) {
		httpd_reply_error(r, 400, "invalid snapshot name \"%.64s\": use "
		    "1-63 letters, digits, '.', '_' or '-', starting with a letter"
		    " or digit", name ? name : "");
	} else if (api_snap_find(spec, name) != NULL) {
		httpd_reply_error(r, 409, "snapshot \"%s\" of vm \"%s\" already "
		    "exists", name, r->params[0]);
	} else if (json_array_size(json_object_get(spec, "disks")) == 0) {
		httpd_reply_error(r, 409, "vm \"%s\" has no disks to snapshot",
		    r->params[0]);
	} else if (json_is_true(json_object_get(spec, "template"))) {
		httpd_reply_error(r, 409, "vm \"%s\" is a template: its disks are "
		    "the base of its clones", r->params[0]);
	} else {
		rc = api_snap_submit(r, "snapshot.create", name, 5000);
	}
cleanup:
	json_decref(spec);
	json_decref(row);
	return rc;
}

/* revert and delete name an existing snapshot. */
static int
api_snap_op(struct httpd_req *r, const char *kind)
{
	json_t *spec = NULL, *row;
	int rc = 0;

	if ((row = api_snap_vm(r, &spec)) == NULL)
		return 0;
	if (!util_name_valid(r->params[1]) ||
	    api_snap_find(spec, r->params[1]) == NULL)
		httpd_reply_error(r, 404, "snapshot \"%.64s\" of vm \"%s\" not "
		    "found", r->params[1], r->params[0]);
	else if (strcmp(kind, "snapshot.revert") == 0 &&
	    strcmp(JS(row, "state"), "stopped") != 0 &&
	    strcmp(JS(row, "state"), "failed") != 0)
		httpd_reply_error(r, 409, "vm \"%s\" is %s: stop it before a "
		    "revert", r->params[0], JS(row, "state"));
	else
		rc = api_snap_submit(r, kind, r->params[1],
		    strcmp(kind, "snapshot.revert") == 0 ? 5000 : 0);
	json_decref(spec);
	json_decref(row);
	return rc;
}

static int
api_snap_revert(struct httpd_req *r)
{
	return api_snap_op(r, "snapshot.revert");
}

static int
api_snap_delete(struct httpd_req *r)
{
	return api_snap_op(r, "snapshot.delete");
}

static int
api_snap_show(struct httpd_req *r)
{
	json_t *spec = NULL, *row = api_snap_vm(r, &spec), *s;

	if (row == NULL)
		return 0;
	if ((s = api_snap_find(spec, r->params[1])) == NULL)
		httpd_reply_error(r, 404, "snapshot \"%.64s\" of vm \"%s\" not "
		    "found", r->params[1], r->params[0]);
	else
		httpd_reply_json(r, 200, api_snap_json(s, spec));
	json_decref(spec);
	json_decref(row);
	return 0;
}

const struct httpd_route api_snapshot_routes[] = {
	{ "GET",    "/api/v1/vms/{}/snapshots",           api_snap_list, 0, ROLE_VIEWER },
	{ "POST",   "/api/v1/vms/{}/snapshots",           api_snap_create, 0, ROLE_OPERATOR },
	{ "GET",    "/api/v1/vms/{}/snapshots/{}",        api_snap_show, 0, ROLE_VIEWER },
	{ "DELETE", "/api/v1/vms/{}/snapshots/{}",        api_snap_delete, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/snapshots/{}/revert", api_snap_revert, 0, ROLE_OPERATOR },
};
const size_t api_snapshot_nroutes = sizeof(api_snapshot_routes) /
    sizeof(api_snapshot_routes[0]);
