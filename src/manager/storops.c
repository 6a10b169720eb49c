/* storops.c - task handlers for storage: snapshots, backups (create, restore,
 * verify, retention), clones and image imports. Long work runs as an agent
 * job that these handlers poll, mapping its progress into the task's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define STOROPS_UNREACHABLE_MS 60000

int
storops_save_spec(const char *uuid, json_t *spec)
{
	char *s = json_dumps(spec, JSON_COMPACT);
	int rc = -1;

	if (s != NULL)
		rc = db_exec("UPDATE vms SET spec = ?, updated = ? WHERE uuid = ?",
		    "sis", s, util_wall_ms(), uuid) < 0 ? -1 : 0;
	free(s);
	return rc;
}

int
storops_storage_path(const char *name, char *out, size_t outsz)
{
	json_t *rows = db_query("SELECT info FROM hosts", NULL), *h, *s;
	size_t i, j;
	int rc = -1;

	json_array_foreach(rows, i, h) {
		json_t *info = json_loads(JS(h, "info") ? JS(h, "info") : "{}", 0,
		    NULL);
		json_array_foreach(json_object_get(info, "storage"), j, s)
			if (rc < 0 && JS(s, "name") && strcmp(JS(s, "name"),
			    name) == 0 && JS(s, "path"))
				rc = util_fmt(out, outsz, "%s", JS(s, "path"));
		json_decref(info);
	}
	json_decref(rows);
	return rc;
}

/* One call to an agent; 0, or -1 with t->err. */
static int
storops_call(struct task *t, const char *host, const char *method,
    const char *path, json_t *body, long timeout_ms, json_t **reply)
{
	char err[512];
	int status = 0;

	if (agentc_call(host, method, path, body, timeout_ms, &status, reply,
	    err, sizeof(err)) < 0 || status >= 400) {
		snprintf(t->err, sizeof(t->err), "%s", err);
		if (reply) {
			json_decref(*reply);
			*reply = NULL;
		}
		return -1;
	}
	return 0;
}

/* Start an agent job and poll it until it ends; its progress maps into
 * [p0, p1]. *result gets the job's result (also when it failed). */
static int
storops_job(struct task *t, const char *host, json_t *body, int p0, int p1,
    json_t **result)
{
	json_t *reply = NULL, *st = NULL;
	char path[128], err[512];
	int64_t last_ok = util_mono_ms(), wait_ms = 5;
	int status, last_pct = -1, rc = -1;

	*result = NULL;
	if (storops_call(t, host, "POST", "/agent/v1/jobs", body, 30000,
	    &reply) < 0)
		return -1;
	snprintf(path, sizeof(path), "/agent/v1/jobs/%s",
	    JS(reply, "job") ? JS(reply, "job") : "");
	for (;;) {
		util_sleep_ms(wait_ms);
		if (wait_ms < 50)
			wait_ms *= 2;
		json_decref(st);
		st = NULL;
		if (agentc_call(host, "GET", path, NULL, 10000, &status, &st, err,
		    sizeof(err)) < 0 || status != 200) {
			if (status == 404 || util_mono_ms() - last_ok >
			    STOROPS_UNREACHABLE_MS) {
				snprintf(t->err, sizeof(t->err), "lost the job on "
				    "host %s: %.400s", host, err);
				goto cleanup;
			}
			continue;
		}
		last_ok = util_mono_ms();
		if (strcmp(JS(st, "state") ? JS(st, "state") : "", "running") != 0)
			break;
		int pct = p0 + (int)(json_integer_value(json_object_get(st,
		    "progress")) * (p1 - p0) / 100);
		if (pct != last_pct) {
			task_progress(t, pct);
			last_pct = pct;
		}
	}
	if (json_object_get(st, "result"))
		*result = json_incref(json_object_get(st, "result"));
	if (strcmp(JS(st, "state"), "succeeded") != 0) {
		snprintf(t->err, sizeof(t->err), "%s", JS(st, "error") ?
		    JS(st, "error") : "the job failed");
		goto cleanup;
	}
	rc = 0;
cleanup:
	json_decref(st);
	json_decref(reply);
	return rc;
}

/* The VM's host when it runs, else any up host that sees its storage. */
static int
storops_vm_host(struct task *t, json_t *row, json_t *spec, char *host,
    size_t hostsz)
{
	const char *state = JS(row, "state");

	if (strcmp(state, "running") == 0 || strcmp(state, "paused") == 0) {
		snprintf(host, hostsz, "%s", JS(row, "host"));
		return 0;
	}
	if (strcmp(state, "stopped") != 0 && strcmp(state, "failed") != 0) {
		snprintf(t->err, sizeof(t->err), "vm \"%s\" is %s: wait until it "
		    "is running or stopped", t->vm, state);
		return -1;
	}
	if (agentc_host_with_storage(JS(spec, "storage"), NULL, host,
	    hostsz) < 0) {
		snprintf(t->err, sizeof(t->err), "no host with storage %s is up",
		    JS(spec, "storage"));
		return -1;
	}
	return 0;
}

/* Load the task's VM row and spec; -1 with t->err. */
static int
storops_load(struct task *t, const char *name, json_t **row, json_t **spec)
{
	*spec = NULL;
	if ((*row = vm_find(name)) == NULL || (*spec = vm_spec(*row)) == NULL) {
		snprintf(t->err, sizeof(t->err), "vm \"%s\" not found", name);
		json_decref(*row);
		*row = NULL;
		return -1;
	}
	return 0;
}

/* create and revert: one quick call to the agent. */
static int
storops_snapshot_call(struct task *t, const char *op)
{
	char host[UTIL_NAME_MAX + 1], path[160];
	json_t *row = NULL, *spec = NULL, *body = NULL, *reply = NULL;
	const char *snap = JS(t->params, "snapshot");
	int rc = -1;

	if (storops_load(t, t->vm, &row, &spec) < 0)
		return -1;
	if (strcmp(op, "revert") == 0 && strcmp(JS(row, "state"), "stopped") != 0
	    && strcmp(JS(row, "state"), "failed") != 0) {
		snprintf(t->err, sizeof(t->err), "vm \"%s\" is %s: stop it before "
		    "a revert", t->vm, JS(row, "state"));
		goto cleanup;
	}
	if (storops_vm_host(t, row, spec, host, sizeof(host)) < 0)
		goto cleanup;
	body = json_pack("{s:s, s:O, s:s}", "op", op, "spec", spec, "snapshot",
	    snap ? snap : "");
	snprintf(path, sizeof(path), "/agent/v1/block/%s/snapshot", JS(row, "uuid"));
	if (storops_call(t, host, "POST", path, body, 60000, &reply) < 0)
		goto cleanup;
	if (storops_save_spec(JS(row, "uuid"), json_object_get(reply, "spec")) < 0) {
		snprintf(t->err, sizeof(t->err), "cannot record the new disk chain");
		goto cleanup;
	}
	if (json_object_get(reply, "snapshot"))
		t->result = json_pack("{s:O, s:O, s:O, s:s}", "name",
		    json_object_get(json_object_get(reply, "snapshot"), "name"),
		    "created", json_object_get(json_object_get(reply, "snapshot"),
		    "created"), "id", json_object_get(json_object_get(reply,
		    "snapshot"), "id"), "vm", t->vm);
	event_add("info", strcmp(op, "create") == 0 ? "snapshot.created" :
	    "snapshot.reverted", t->vm, "vm %s: snapshot %s %s", t->vm, snap,
	    strcmp(op, "create") == 0 ? "created" : "reverted to");
	rc = 0;
cleanup:
	json_decref(reply);
	json_decref(body);
	json_decref(spec);
	json_decref(row);
	return rc;
}

int
storops_snapshot_create(struct task *t)
{
	return storops_snapshot_call(t, "create");
}

int
storops_snapshot_revert(struct task *t)
{
	return storops_snapshot_call(t, "revert");
}

/* disk.add (VM stopped) and disk.resize (running or not). */
static int
storops_disk_call(struct task *t, const char *op)
{
	char host[UTIL_NAME_MAX + 1], path[160];
	json_t *row = NULL, *spec = NULL, *body = NULL, *reply = NULL;
	int rc = -1;

	if (storops_load(t, t->vm, &row, &spec) < 0)
		return -1;
	if (storops_vm_host(t, row, spec, host, sizeof(host)) < 0)
		goto cleanup;
	body = json_pack("{s:s, s:O, s:O, s:O?}", "op", op, "spec", spec,
	    "size_mib", json_object_get(t->params, "size_mib"), "disk",
	    json_object_get(t->params, "disk"));
	snprintf(path, sizeof(path), "/agent/v1/block/%s/disk", JS(row, "uuid"));
	if (storops_call(t, host, "POST", path, body, 120000, &reply) < 0)
		goto cleanup;
	if (storops_save_spec(JS(row, "uuid"), json_object_get(reply, "spec")) < 0) {
		snprintf(t->err, sizeof(t->err), "cannot record the new disks");
		goto cleanup;
	}
	t->result = json_pack("{s:O}", "disks", json_object_get(json_object_get(
	    reply, "spec"), "disks"));
	event_add("info", strcmp(op, "add") == 0 ? "disk.added" : "disk.resized",
	    t->vm, "vm %s: disk %s %s (%lld MiB)", t->vm, strcmp(op, "add") == 0 ?
	    (JS(reply, "disk") ? JS(reply, "disk") : "?") : JS(t->params, "disk"),
	    strcmp(op, "add") == 0 ? "added" : "resized",
	    (long long)json_integer_value(json_object_get(t->params, "size_mib")));
	rc = 0;
cleanup:
	json_decref(reply);
	json_decref(body);
	json_decref(spec);
	json_decref(row);
	return rc;
}

int
storops_disk_add(struct task *t)
{
	return storops_disk_call(t, "add");
}

int
storops_disk_resize(struct task *t)
{
	return storops_disk_call(t, "resize");
}

int
storops_snapshot_delete(struct task *t)
{
	char host[UTIL_NAME_MAX + 1];
	json_t *row = NULL, *spec = NULL, *body = NULL, *res = NULL;
	const char *snap = JS(t->params, "snapshot");
	int rc = -1;

	if (storops_load(t, t->vm, &row, &spec) < 0)
		return -1;
	if (storops_vm_host(t, row, spec, host, sizeof(host)) < 0)
		goto cleanup;
	body = json_pack("{s:s, s:O, s:s}", "kind", "snapshot-delete", "spec",
	    spec, "snapshot", snap ? snap : "");
	rc = storops_job(t, host, body, 5, 95, &res);
	/* Even a failed merge may have changed the chain of some disks. */
	if (json_object_get(res, "spec"))
		storops_save_spec(JS(row, "uuid"), json_object_get(res, "spec"));
	if (rc == 0)
		event_add("info", "snapshot.deleted", t->vm, "vm %s: snapshot %s "
		    "deleted", t->vm, snap);
cleanup:
	json_decref(res);
	json_decref(body);
	json_decref(spec);
	json_decref(row);
	return rc;
}

/* Drop the oldest good backups of the VM beyond keep. */
static void
storops_retention(struct task *t, const char *host, int64_t keep)
{
	json_t *rows, *b;
	char path[256];
	size_t i;

	rows = db_query("SELECT id, storage FROM backups WHERE vm_uuid = ("
	    "SELECT uuid FROM vms WHERE name = ?) AND state = 'ok' ORDER BY "
	    "created DESC, id DESC", "s", t->vm);
	json_array_foreach(rows, i, b) {
		if ((int64_t)i < keep)
			continue;
		if (util_fmt(path, sizeof(path), "/agent/v1/files/backups/%s?"
		    "storage=%s", JS(b, "id"), JS(b, "storage")) < 0 ||
		    storops_call(t, host, "DELETE", path, NULL, 60000, NULL) < 0) {
			log_warnx("retention: cannot delete backup %s: %s",
			    JS(b, "id"), t->err);
			t->err[0] = '\0';
			continue;
		}
		db_exec("DELETE FROM backups WHERE id = ?", "s", JS(b, "id"));
		event_add("info", "backup.expired", t->vm, "backup %s of vm %s "
		    "removed (keep %lld)", JS(b, "id"), t->vm, (long long)keep);
	}
	json_decref(rows);
}

/* A manager that stopped during a backup or an image import left its row
 * half-made: the task is failed (task_init), so is the object, and its
 * files can be deleted like any other's. */
void
storops_recover(void)
{
	int n;

	if ((n = db_exec("UPDATE backups SET state = 'failed' WHERE state = "
	    "'running'", NULL)) > 0)
		event_add("warning", "backup.failed", NULL, "%d backup(s) were "
		    "running when the manager stopped: marked failed (delete "
		    "them to free their space)", n);
	if ((n = db_exec("UPDATE images SET state = 'failed' WHERE state = "
	    "'importing'", NULL)) > 0)
		event_add("warning", "image.failed", NULL, "%d image import(s) "
		    "were running when the manager stopped: marked failed", n);
}

int
storops_backup_create(struct task *t)
{
	char host[UTIL_NAME_MAX + 1];
	json_t *row = NULL, *spec = NULL, *body = NULL, *m = NULL;
	const char *id = JS(t->params, "id"), *st = JS(t->params, "storage");
	char *ms = NULL;
	int rc = -1;

	if (storops_load(t, t->vm, &row, &spec) < 0)
		goto cleanup;
	if (storops_vm_host(t, row, spec, host, sizeof(host)) < 0)
		goto cleanup;
	body = json_pack("{s:s, s:O, s:s, s:s}", "kind", "backup", "spec", spec,
	    "id", id, "storage", st);
	if (storops_job(t, host, body, 2, 98, &m) < 0)
		goto cleanup;
	ms = json_dumps(m, JSON_COMPACT);
	db_exec("UPDATE backups SET state = 'ok', size_bytes = ?, manifest = ?,"
	    " created = ? WHERE id = ?", "isis",
	    (int64_t)json_integer_value(json_object_get(m, "size_bytes")), ms,
	    (int64_t)json_integer_value(json_object_get(m, "created_ms")), id);
	event_add("info", "backup.created", t->vm, "vm %s backed up as %s", t->vm,
	    id);
	if (json_is_integer(json_object_get(t->params, "keep")))
		storops_retention(t, host, json_integer_value(json_object_get(
		    t->params, "keep")));
	t->result = json_pack("{s:s, s:s, s:O, s:O, s:s, s:O?, s:O?}", "id", id,
	    "vm", t->vm, "created", json_object_get(m, "created"), "size_bytes",
	    json_object_get(m, "size_bytes"), "storage", st, "copy_ms",
	    json_object_get(m, "copy_ms"), "seal_ms", json_object_get(m,
	    "seal_ms"));
	rc = 0;
cleanup:
	if (rc < 0)
		db_exec("DELETE FROM backups WHERE id = ?", "s", id);
	free(ms);
	json_decref(m);
	json_decref(body);
	json_decref(spec);
	json_decref(row);
	return rc;
}

/* Copy job into the new VM (the task's VM, inserted by the API); on
 * failure its row goes too: nothing half-created. */
static int
storops_copy_into(struct task *t, json_t *sources, const char *what)
{
	char host[UTIL_NAME_MAX + 1];
	json_t *row = NULL, *spec = NULL, *body = NULL, *res = NULL;
	int rc = -1;

	if (storops_load(t, t->vm, &row, &spec) < 0)
		return -1;
	if (agentc_host_with_storage(JS(spec, "storage"), NULL, host,
	    sizeof(host)) < 0) {
		snprintf(t->err, sizeof(t->err), "no host with storage %s is up",
		    JS(spec, "storage"));
		goto cleanup;
	}
	body = json_pack("{s:s, s:O, s:O}", "kind", "copy", "spec", spec,
	    "sources", sources);
	if (storops_job(t, host, body, 5, 99, &res) < 0)
		goto cleanup;
	event_add("info", "vm.created", t->vm, "vm %s created from %s", t->vm,
	    what);
	t->result = json_pack("{s:s, s:s}", "name", t->vm, "uuid",
	    JS(row, "uuid"));
	rc = 0;
cleanup:
	if (rc < 0 && row)
		db_exec("DELETE FROM vms WHERE uuid = ?", "s", JS(row, "uuid"));
	json_decref(res);
	json_decref(body);
	json_decref(spec);
	json_decref(row);
	return rc;
}

int
storops_backup_restore(struct task *t)
{
	const char *id = JS(t->params, "backup");
	json_t *b, *m = NULL, *d, *srcs = json_array();
	char root[4096], path[4200];
	size_t i;
	int rc = -1;

	b = db_row("SELECT * FROM backups WHERE id = ? AND state = 'ok'", "s",
	    id ? id : "");
	if (b == NULL || (m = json_loads(JS(b, "manifest") ? JS(b, "manifest") :
	    "", 0, NULL)) == NULL) {
		snprintf(t->err, sizeof(t->err), "backup \"%s\" not found", id);
		db_exec("DELETE FROM vms WHERE name = ?", "s", t->vm);
		goto cleanup;
	}
	if (storops_storage_path(JS(b, "storage"), root, sizeof(root)) < 0) {
		snprintf(t->err, sizeof(t->err), "storage %s is not known",
		    JS(b, "storage"));
		db_exec("DELETE FROM vms WHERE name = ?", "s", t->vm);
		goto cleanup;
	}
	json_array_foreach(json_object_get(m, "disks"), i, d) {
		util_fmt(path, sizeof(path), "%s/backups/%s/%s", root, id,
		    JS(d, "file"));
		json_array_append_new(srcs, json_pack("{s:s, s:s, s:O}", "path",
		    path, "format", "qcow2", "sha256", json_object_get(d,
		    "sha256")));
	}
	rc = storops_copy_into(t, srcs, id);
cleanup:
	json_decref(srcs);
	json_decref(m);
	json_decref(b);
	return rc;
}

int
storops_backup_verify(struct task *t)
{
	const char *id = JS(t->params, "backup");
	char host[UTIL_NAME_MAX + 1];
	json_t *b, *body = NULL, *res = NULL;
	int rc = -1;

	if ((b = db_row("SELECT * FROM backups WHERE id = ?", "s", id)) == NULL) {
		snprintf(t->err, sizeof(t->err), "backup \"%s\" not found", id);
		return -1;
	}
	if (agentc_host_with_storage(JS(b, "storage"), NULL, host,
	    sizeof(host)) < 0) {
		snprintf(t->err, sizeof(t->err), "no host with storage %s is up",
		    JS(b, "storage"));
		goto cleanup;
	}
	body = json_pack("{s:s, s:s, s:O}", "kind", "verify", "id", id, "storage",
	    json_object_get(b, "storage"));
	if (storops_job(t, host, body, 1, 99, &res) < 0)
		goto cleanup;
	t->result = json_pack("{s:s, s:b}", "id", id, "ok", 1);
	rc = 0;
cleanup:
	json_decref(res);
	json_decref(body);
	json_decref(b);
	return rc;
}

int
storops_vm_clone(struct task *t)
{
	const char *src = JS(t->params, "source");
	json_t *row = NULL, *spec = NULL, *d, *srcs = json_array();
	char root[4096], path[4200];
	int linked = json_is_true(json_object_get(t->params, "linked"));
	size_t i;
	int rc = -1;

	/* The source is busy with this task too, so nobody starts it. */
	if (src == NULL || db_exec("UPDATE vms SET task_id = ? WHERE name = ? AND"
	    " task_id IS NULL", "is", t->id, src) != 1) {
		snprintf(t->err, sizeof(t->err), "vm \"%s\" is busy or gone", src);
		db_exec("DELETE FROM vms WHERE name = ?", "s", t->vm);
		goto cleanup;
	}
	if (storops_load(t, src, &row, &spec) < 0 ||
	    storops_storage_path(JS(spec, "storage"), root, sizeof(root)) < 0) {
		if (t->err[0] == '\0')
			snprintf(t->err, sizeof(t->err), "storage of \"%s\" is "
			    "not known", src);
		db_exec("DELETE FROM vms WHERE name = ?", "s", t->vm);
		goto cleanup;
	}
	if (strcmp(JS(row, "state"), "stopped") != 0 &&
	    strcmp(JS(row, "state"), "failed") != 0) {
		snprintf(t->err, sizeof(t->err), "vm \"%s\" is %s: stop it before "
		    "cloning", src, JS(row, "state"));
		db_exec("DELETE FROM vms WHERE name = ?", "s", t->vm);
		goto cleanup;
	}
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		util_fmt(path, sizeof(path), "%s/vms/%s/%s", root, JS(row, "uuid"),
		    JS(d, "file"));
		json_array_append_new(srcs, json_pack("{s:s, s:s, s:b}", "path",
		    path, "format", JS(d, "format") ? JS(d, "format") : "qcow2",
		    "linked", linked));
	}
	rc = storops_copy_into(t, srcs, src);
cleanup:
	json_decref(srcs);
	json_decref(spec);
	json_decref(row);
	return rc;
}

int
storops_image_import(struct task *t)
{
	const char *name = JS(t->params, "name"), *st = JS(t->params, "storage");
	char host[UTIL_NAME_MAX + 1];
	json_t *body = NULL, *res = NULL;
	int rc = -1;

	if (agentc_host_with_storage(st, JS(t->params, "host"), host,
	    sizeof(host)) < 0) {
		snprintf(t->err, sizeof(t->err), "no host with storage %s is up",
		    st);
		goto cleanup;
	}
	body = json_pack("{s:s, s:O, s:s, s:s}", "kind", "import", "file",
	    json_object_get(t->params, "file"), "name", name, "storage", st);
	if (storops_job(t, host, body, 2, 99, &res) < 0)
		goto cleanup;
	db_exec("UPDATE images SET state = 'ready', file = ?, virtual_size = ?,"
	    " size_bytes = ?, sha256 = ?, format = ? WHERE name = ?", "siisss",
	    JS(res, "file"), (int64_t)json_integer_value(json_object_get(res,
	    "virtual_size")), (int64_t)json_integer_value(json_object_get(res,
	    "size_bytes")), JS(res, "sha256"), JS(res, "source_format"), name);
	event_add("info", "image.imported", name, "image %s imported", name);
	t->result = json_pack("{s:s, s:O}", "name", name, "virtual_size",
	    json_object_get(res, "virtual_size"));
	rc = 0;
cleanup:
	if (rc < 0)
		db_exec("DELETE FROM images WHERE name = ?", "s", name);
	json_decref(res);
	json_decref(body);
	return rc;
}
