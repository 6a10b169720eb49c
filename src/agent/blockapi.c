/* blockapi.c - the agent's storage routes: snapshots (immediate), and jobs
 * (backups, copies, imports, merges) that the manager starts and polls. */
#include <stdio.h>
#include <string.h>

#include "agent/agent_int.h"
#include "common/httpd.h"
#include "common/util.h"

static const struct {
	const char	*kind;
	ajob_fn		 fn;
} blockapi_jobs[] = {
	{ "backup",		bk_backup_job },
	{ "copy",		bk_copy_job },
	{ "import",		bk_import_job },
	{ "snapshot-delete",	blk_snapshot_delete_job },
	{ "verify",		bk_verify_job },
};

/* POST /agent/v1/block/UUID/snapshot {op: create|revert, spec, snapshot} */
int
blockapi_snapshot(struct httpd_req *r)
{
	json_t *spec = json_object_get(r->body, "spec"), *out = NULL;
	const char *op = json_string_value(json_object_get(r->body, "op"));
	const char *snap = json_string_value(json_object_get(r->body,
	    "snapshot"));
	const char *uuid = json_string_value(json_object_get(spec, "uuid"));
	char err[512];
	int status = 500, rc;

	if (r->nparams < 1 || uuid == NULL || strcmp(uuid, r->params[0]) != 0)
		return httpd_reply_error(r, 400, "VM spec does not match the uuid");
	if (op == NULL || snap == NULL || !util_name_valid(snap))
		return httpd_reply_error(r, 400, "op and a valid snapshot name "
		    "are required");
	/* A hung domain fails at once instead of holding this thread. */
	if (domwatch_ready(spec, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 503, "%s", err);
	if (strcmp(op, "create") == 0)
		rc = blk_snapshot_create(spec, snap, &out, err, sizeof(err),
		    &status);
	else if (strcmp(op, "revert") == 0)
		rc = blk_snapshot_revert(spec, snap, &out, err, sizeof(err),
		    &status);
	else
		return httpd_reply_error(r, 400, "unknown op %.32s", op);
	if (rc < 0)
		return httpd_reply_error(r, status, "%s", err);
	return httpd_reply_json(r, 200, out);
}

/* POST /agent/v1/block/UUID/disk {op: add|resize, spec, disk?, size_mib} */
int
blockapi_disk(struct httpd_req *r)
{
	json_t *spec = json_object_get(r->body, "spec"), *out = NULL;
	const char *op = json_string_value(json_object_get(r->body, "op"));
	const char *disk = json_string_value(json_object_get(r->body, "disk"));
	const char *uuid = json_string_value(json_object_get(spec, "uuid"));
	json_int_t mib = json_integer_value(json_object_get(r->body, "size_mib"));
	char err[512];
	int status = 500, rc;

	if (r->nparams < 1 || uuid == NULL || strcmp(uuid, r->params[0]) != 0)
		return httpd_reply_error(r, 400, "VM spec does not match the uuid");
	if (op == NULL || mib < 1 || mib > 67108864)
		return httpd_reply_error(r, 400, "op and size_mib 1..67108864 are "
		    "required");
	if (domwatch_ready(spec, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 503, "%s", err);
	if (strcmp(op, "add") == 0)
		rc = disk_add(spec, mib, &out, err, sizeof(err), &status);
	else if (strcmp(op, "resize") == 0 && disk && util_name_valid(disk))
		rc = disk_resize(spec, disk, mib, &out, err, sizeof(err), &status);
	else
		return httpd_reply_error(r, 400, "unknown op or disk");
	if (rc < 0)
		return httpd_reply_error(r, status, "%s", err);
	return httpd_reply_json(r, 200, out);
}

/* POST /agent/v1/jobs {kind, ...}: 202 {job} */
int
blockapi_job_start(struct httpd_req *r)
{
	const char *kind = json_string_value(json_object_get(r->body, "kind"));
	char id[AJOB_ID_LEN + 1];
	size_t i;

	for (i = 0; kind && i < sizeof(blockapi_jobs) / sizeof(blockapi_jobs[0]);
	    i++) {
		if (strcmp(blockapi_jobs[i].kind, kind) != 0)
			continue;
		if (ajob_start(blockapi_jobs[i].fn, json_incref(r->body), id,
		    sizeof(id)) < 0)
			return httpd_reply_error(r, 503, "cannot start a job");
		return httpd_reply_json(r, 202, json_pack("{s:s}", "job", id));
	}
	return httpd_reply_error(r, 400, "unknown job kind");
}

int
blockapi_job_get(struct httpd_req *r)
{
	json_t *j = r->nparams == 1 ? ajob_get(r->params[0]) : NULL;

	if (j == NULL)
		return httpd_reply_error(r, 404, "no such job");
	return httpd_reply_json(r, 200, j);
}

/* DELETE /agent/v1/files/{images|backups}/NAME?storage=S */
int
blockapi_remove(struct httpd_req *r)
{
	char storage[UTIL_NAME_MAX + 1], err[512];
	int status = 500;

	if (r->nparams != 2 || (strcmp(r->params[0], "images") != 0 &&
	    strcmp(r->params[0], "backups") != 0))
		return httpd_reply_error(r, 404, "no such file kind");
	if (httpd_query(r, "storage", storage, sizeof(storage)) < 0)
		return httpd_reply_error(r, 400, "storage query parameter missing");
	if (domwatch_ok(storage, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 503, "%s", err);
	if (bk_remove(storage, r->params[0], r->params[1], err, sizeof(err),
	    &status) < 0)
		return httpd_reply_error(r, status, "%s", err);
	return httpd_reply_json(r, 200, json_object());
}
