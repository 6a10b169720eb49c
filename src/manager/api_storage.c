/* api_storage.c - /api/v1/images, /api/v1/backups, vm clone and template:
 * validation, inventory rows, and the tasks that do the copying. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))

/* ---- shared helpers ----------------------------------------------------- */

/* A storage domain some host reports (any when want is NULL and there is
 * only one); -1 after replying. */
static int
api_st_pick(struct httpd_req *r, const char *want, char *out, size_t outsz)
{
	char path[4096];
	json_t *rows;
	size_t n;

	if (want) {
		if (!util_name_valid(want) || storops_storage_path(want, path,
		    sizeof(path)) < 0) {
			httpd_reply_error(r, 404, "storage \"%.64s\" not found",
			    want);
			return -1;
		}
		return util_fmt(out, outsz, "%s", want);
	}
	/* The VM's own storage is the caller's default; here any one. */
	rows = db_query("SELECT info FROM hosts", NULL);
	n = json_array_size(rows);
	json_decref(rows);
	if (n == 0) {
		httpd_reply_error(r, 503, "no host has registered yet");
		return -1;
	}
	httpd_reply_error(r, 400, "choose a storage domain with --storage");
	return -1;
}

static int
api_st_submit(struct httpd_req *r, const char *kind, const char *vm,
    json_t *params)
{
	char err[256];
	int64_t id;

	id = task_submit(kind, vm, params, r->principal, err, sizeof(err));
	json_decref(params);
	if (id < 0)
		return httpd_reply_error(r, errno == ENOENT ? 404 :
		    errno == EBUSY ? 409 : 500, "%s", err);
	return api_reply_task(r, id);
}

int
api_vm_insert(struct httpd_req *r, json_t *spec)
{
	char *s = json_dumps(spec, JSON_COMPACT), err[256] = "";
	int rc, status = 500;

	rc = s ? db_exec("INSERT INTO vms (uuid, name, state, spec, cpus, "
	    "memory_mib, grouped, created, updated) VALUES (?, ?, 'stopped', ?, "
	    "?, ?, ?, ?, ?)", "sssiiiii", JS(spec, "uuid"), JS(spec, "name"), s,
	    (int64_t)json_integer_value(json_object_get(spec, "cpus")),
	    (int64_t)json_integer_value(json_object_get(spec, "memory_mib")),
	    (int64_t)(JS(spec, "affinity") || JS(spec, "anti_affinity")),
	    util_wall_ms(), util_wall_ms()) : -1;
	free(s);
	if (rc < 0) {
		httpd_reply_error(r, errno == EEXIST ? 409 : 500, errno == EEXIST ?
		    "vm \"%s\" already exists" : "cannot record vm \"%s\"",
		    JS(spec, "name"));
		return -1;
	}
	/* The row first: the reservations belong to an existing VM. */
	if (vnet_nics_reserve(spec, &status, err, sizeof(err)) < 0 ||
	    storops_save_spec(JS(spec, "uuid"), spec) < 0) {
		vnet_nics_release(JS(spec, "uuid"), NULL);
		db_exec("DELETE FROM vms WHERE uuid = ?", "s", JS(spec, "uuid"));
		httpd_reply_error(r, status, "%s", status == 500 && !err[0] ?
		    "cannot record the VM's NICs" : err);
		return -1;
	}
	return 0;
}

/* A new VM's spec from a source spec: new identity, fresh disk files (one
 * per source disk, no snapshots), on storage st. */
static json_t *
api_st_newspec(json_t *src, const char *name, const char *st)
{
	char uuid[UTIL_UUID_LEN + 1], file[UTIL_NAME_MAX + 1];
	json_t *ns = json_deep_copy(src), *d, *n;
	size_t i;

	util_uuid_gen(uuid);
	json_object_set_new(ns, "uuid", json_string(uuid));
	json_object_set_new(ns, "name", json_string(name));
	json_object_set_new(ns, "storage", json_string(st));
	json_object_del(ns, "snapshots");
	json_object_del(ns, "template");
	json_object_del(ns, "host");
	json_array_foreach(json_object_get(ns, "disks"), i, d) {
		snprintf(file, sizeof(file), "%s.qcow2", JS(d, "name"));
		json_object_set_new(d, "file", json_string(file));
		json_object_set_new(d, "format", json_string("qcow2"));
		json_object_del(d, "image");
		json_object_del(d, "backing");
	}
	/* New MACs and addresses on the same networks (api_vm_insert). */
	json_array_foreach(json_object_get(ns, "nics"), i, n) {
		json_object_del(n, "mac");
		json_object_del(n, "ip");
	}
	return ns;
}

/* ---- boot media --------------------------------------------------------- */

static int
api_printable(const char *s, int quotes_ok)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f ||
		    (!quotes_ok && (*s == '"' || *s == '\\')))
			return 0;
	return 1;
}

/* cloud_init {hostname?, user_data?, ssh_keys?} into a clean object. */
static json_t *
api_cloud_init(struct httpd_req *r, json_t *ci, const char *vmname)
{
	json_t *keys = json_object_get(ci, "ssh_keys"), *k, *out;
	const char *host = json_string_value(json_object_get(ci, "hostname"));
	const char *ud = json_string_value(json_object_get(ci, "user_data"));
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(ci, key, v) {
		if (strcmp(key, "hostname") != 0 && strcmp(key, "user_data") != 0 &&
		    strcmp(key, "ssh_keys") != 0) {
			httpd_reply_error(r, 400, "unknown cloud_init field "
			    "\"%.32s\"", key);
			return NULL;
		}
	}
	if (host == NULL)
		host = vmname;
	if (!util_name_valid(host) || strchr(host, '_')) {
		httpd_reply_error(r, 400, "cloud_init hostname must be letters, "
		    "digits, '-' and '.'");
		return NULL;
	}
	if ((json_object_get(ci, "user_data") && (ud == NULL ||
	    json_string_length(json_object_get(ci, "user_data")) > 65536 ||
	    strlen(ud) != json_string_length(json_object_get(ci, "user_data"))))) {
		httpd_reply_error(r, 400, "cloud_init user_data must be text of at "
		    "most 64 KiB");
		return NULL;
	}
	if (keys && (!json_is_array(keys) || json_array_size(keys) > 32)) {
		httpd_reply_error(r, 400, "ssh_keys must be a list of at most 32 "
		    "keys");
		return NULL;
	}
	json_array_foreach(keys, i, k) {
		if (!json_is_string(k) || json_string_length(k) > 8192 ||
		    json_string_length(k) < 8 || !api_printable(json_string_value(k),
		    0)) {
			httpd_reply_error(r, 400, "ssh key %zu is not one line of an "
			    "OpenSSH public key", i + 1);
			return NULL;
		}
	}
	out = json_pack("{s:s, s:O}", "hostname", host, "ssh_keys", keys ? keys :
	    json_array());
	if (ud)
		json_object_set_new(out, "user_data", json_string(ud));
	return out;
}

int
api_vm_boot_media(struct httpd_req *r, json_t *spec)
{
	json_t *cd = json_object_get(r->body, "cdrom");
	json_t *ci = json_object_get(r->body, "cloud_init"), *c;
	json_t *fw = json_object_get(r->body, "firmware");
	char path[4096];
	const char *p;

	if (fw && !json_is_null(fw)) {
		p = json_string_value(fw);
		if (p == NULL || (strcmp(p, "bios") != 0 && strcmp(p, "uefi") != 0)) {
			httpd_reply_error(r, 400, "firmware must be bios or uefi");
			return -1;
		}
		json_object_set(spec, "firmware", fw);
	}

	if (cd && !json_is_null(cd)) {
		p = json_string_value(cd);
		if (p == NULL || strlen(p) > 4095 ||
		    strlen(p) != json_string_length(cd)) {
			httpd_reply_error(r, 400, "cdrom must be a file name of at "
			    "most 4095 bytes");
			return -1;
		}
		if (api_media_ref(r, "cdrom", p, path, sizeof(path)) < 0)
			return -1;
		json_object_set_new(spec, "cdrom", json_string(path));
	}
	if (ci && !json_is_null(ci)) {
		if (!json_is_object(ci)) {
			httpd_reply_error(r, 400, "cloud_init must be an object");
			return -1;
		}
		if ((c = api_cloud_init(r, ci, json_string_value(json_object_get(
		    spec, "name")))) == NULL)
			return -1;
		json_object_set_new(spec, "cloud_init", c);
	}
	return 0;
}

/* ---- images ------------------------------------------------------------- */

static json_t *
api_image_json(json_t *row)
{
	char c[40];

	util_time_iso(json_integer_value(json_object_get(row, "created")), c,
	    sizeof(c));
	return json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:s}",
	    "name", json_object_get(row, "name"), "storage",
	    json_object_get(row, "storage"), "state", json_object_get(row, "state"),
	    "file", json_object_get(row, "file"), "source_format",
	    json_object_get(row, "format"), "virtual_size",
	    json_object_get(row, "virtual_size"), "size_bytes",
	    json_object_get(row, "size_bytes"), "sha256",
	    json_object_get(row, "sha256"), "created", c);
}

static int
api_image_list(struct httpd_req *r)
{
	json_t *rows = db_query("SELECT * FROM images ORDER BY name", NULL), *row;
	json_t *out = json_array();
	size_t i;

	json_array_foreach(rows, i, row)
		json_array_append_new(out, api_image_json(row));
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

static json_t *
api_image_lookup(struct httpd_req *r, const char *name)
{
	json_t *row = util_name_valid(name) ? db_row("SELECT * FROM images "
	    "WHERE name = ?", "s", name) : NULL;

	if (row == NULL)
		httpd_reply_error(r, 404, "image \"%.64s\" not found", name);
	return row;
}

static int
api_image_show(struct httpd_req *r)
{
	json_t *row = api_image_lookup(r, r->params[0]);

	if (row) {
		httpd_reply_json(r, 200, api_image_json(row));
		json_decref(row);
	}
	return 0;
}

static int
api_image_import(struct httpd_req *r)
{
	static const char *const fields[] = { "file", "name", "storage", "host",
	    NULL };
	const char *file = NULL, *name = NULL, *st = NULL, *host = NULL;
	char storage[UTIL_NAME_MAX + 1], path[4096];
	json_t *row = NULL;

	if (r->body == NULL)
		return httpd_reply_error(r, 400, "a JSON body is required");
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "file", 4095, &file) < 0 ||
	    api_str_field(r, "name", 255, &name) < 0 ||
	    api_str_field(r, "storage", 255, &st) < 0 ||
	    api_str_field(r, "host", 255, &host) < 0)
		return 0;
	if (name == NULL || !util_name_valid(name))
		return httpd_reply_error(r, 400, "invalid image name \"%.64s\"",
		    name ? name : "");
	if (file == NULL)
		return httpd_reply_error(r, 400, "file is required: a file in "
		    "the images/ area of a storage domain");
	if (api_media_ref(r, "file", file, path, sizeof(path)) < 0)
		return 0;
	if (host && (!util_name_valid(host) || (row = db_row("SELECT name FROM "
	    "hosts WHERE name = ?", "s", host)) == NULL))
		return httpd_reply_error(r, 404, "host \"%.64s\" not found", host);
	json_decref(row);
	if (st == NULL && storops_storage_path("local", storage,
	    sizeof(storage)) == 0)
		st = "local";
	if (api_st_pick(r, st, storage, sizeof(storage)) < 0 ||
	    api_media_check(r, "file", file, path, storage, host) < 0)
		return 0;
	/* The row reserves the name; the task fills it in or removes it. */
	if (db_exec("INSERT INTO images (name, storage, file, format, "
	    "virtual_size, size_bytes, state, created) VALUES (?, ?, '', '', 0,"
	    " 0, 'importing', ?)", "ssi", name, storage, util_wall_ms()) < 0)
		return httpd_reply_error(r, errno == EEXIST ? 409 : 500,
		    errno == EEXIST ? "image \"%s\" already exists" :
		    "cannot record image \"%s\"", name);
	return api_st_submit(r, "image.import", NULL, json_pack("{s:s, s:s, "
	    "s:s, s:s?}", "file", path, "name", name, "storage", storage, "host",
	    host));
}

static int
api_image_delete(struct httpd_req *r)
{
	char host[UTIL_NAME_MAX + 1], path[256], err[512], like[128];
	json_t *row, *user;
	int status = 0;

	if ((row = api_image_lookup(r, r->params[0])) == NULL)
		return 0;
	snprintf(like, sizeof(like), "%%\"image\":\"%s\"%%", r->params[0]);
	if (strcmp(JS(row, "state"), "importing") == 0) {
		httpd_reply_error(r, 409, "image \"%s\" is being imported",
		    r->params[0]);
	} else if ((user = db_row("SELECT name FROM vms WHERE spec LIKE ?", "s",
	    like)) != NULL) {
		httpd_reply_error(r, 409, "image \"%s\" is the base of vm \"%s\"",
		    r->params[0], JS(user, "name"));
		json_decref(user);
	} else if (agentc_host_with_storage(JS(row, "storage"), NULL, host,
	    sizeof(host)) < 0) {
		httpd_reply_error(r, 503, "no host with storage %s is up",
		    JS(row, "storage"));
	} else if (util_fmt(path, sizeof(path), "/agent/v1/files/images/%s?"
	    "storage=%s", r->params[0], JS(row, "storage")) < 0 ||
	    agentc_call(host, "DELETE", path, NULL, 60000, &status, NULL, err,
	    sizeof(err)) < 0 || status >= 400) {
		httpd_reply_error(r, 502, "%s", err);
	} else {
		db_exec("DELETE FROM images WHERE name = ?", "s", r->params[0]);
		event_add("info", "image.deleted", r->params[0], "image %s deleted "
		    "by %s", r->params[0], r->principal);
		httpd_reply_json(r, 200, json_object());
	}
	json_decref(row);
	return 0;
}

json_t *
api_image_disk(struct httpd_req *r, const char *image, const char *storage,
    int64_t size_mib)
{
	json_t *row = api_image_lookup(r, image), *d = NULL;
	int64_t vmib;

	if (row == NULL)
		return NULL;
	if (strcmp(JS(row, "state"), "ready") != 0) {
		httpd_reply_error(r, 409, "image \"%s\" is being imported", image);
		goto cleanup;
	}
	vmib = (json_integer_value(json_object_get(row, "virtual_size")) +
	    (1 << 20) - 1) >> 20;
	if (size_mib < vmib)
		size_mib = vmib;
	d = json_pack("{s:s, s:s, s:s, s:I, s:s, s:O}", "name", "disk0", "file",
	    "disk0.qcow2", "format", "qcow2", "size_mib", (json_int_t)size_mib,
	    "image", image, "backing", json_object_get(row, "file"));
	(void)storage;
cleanup:
	json_decref(row);
	return d;
}

/* ---- backups ------------------------------------------------------------ */

static json_t *
api_backup_json(json_t *row)
{
	json_t *m = json_loads(JS(row, "manifest") ? JS(row, "manifest") : "{}",
	    0, NULL), *o, *d;
	char c[40];

	util_time_iso(json_integer_value(json_object_get(row, "created")), c,
	    sizeof(c));
	o = json_pack("{s:O, s:O, s:O, s:O, s:O, s:s, s:O}", "id",
	    json_object_get(row, "id"), "vm", json_object_get(row, "vm"),
	    "vm_uuid", json_object_get(row, "vm_uuid"), "storage",
	    json_object_get(row, "storage"), "state", json_object_get(row, "state"),
	    "created", c, "size_bytes", json_object_get(row, "size_bytes"));
	d = json_object_get(m, "disks");
	json_object_set_new(o, "disks", d ? json_incref(d) : json_array());
	json_decref(m);
	return o;
}

static int
api_backup_list(struct httpd_req *r)
{
	char vm[UTIL_NAME_MAX + 1];
	json_t *rows, *row, *out = json_array();
	size_t i;

	if (httpd_query(r, "vm", vm, sizeof(vm)) == 0)
		rows = db_query("SELECT * FROM backups WHERE vm = ? ORDER BY "
		    "created, id", "s", vm);
	else
		rows = db_query("SELECT * FROM backups ORDER BY created, id", NULL);
	json_array_foreach(rows, i, row)
		json_array_append_new(out, api_backup_json(row));
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

static json_t *
api_backup_lookup(struct httpd_req *r)
{
	json_t *row = util_name_valid(r->params[0]) ? db_row("SELECT * FROM "
	    "backups WHERE id = ?", "s", r->params[0]) : NULL;

	if (row == NULL)
		httpd_reply_error(r, 404, "backup \"%.64s\" not found",
		    r->params[0]);
	return row;
}

static int
api_backup_show(struct httpd_req *r)
{
	json_t *row = api_backup_lookup(r);

	if (row) {
		httpd_reply_json(r, 200, api_backup_json(row));
		json_decref(row);
	}
	return 0;
}

static int
api_backup_create(struct httpd_req *r)
{
	static const char *const fields[] = { "storage", "keep", NULL };
	char storage[UTIL_NAME_MAX + 1], id[UTIL_NAME_MAX + 1], when[40], hex[5];
	const char *st = NULL;
	json_t *row, *spec = NULL;
	int64_t keep = 0;
	int has_keep = 0, rc = 0;

	if (!util_name_valid(r->params[0]) ||
	    (row = vm_find(r->params[0])) == NULL)
		return httpd_reply_error(r, 404, "vm \"%.64s\" not found",
		    r->params[0]);
	spec = vm_spec(row);
	if (r->body && (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "storage", 255, &st) < 0 ||
	    api_int_field(r, "keep", 1, 10000, &keep, &has_keep) < 0))
		goto cleanup;
	if (api_st_pick(r, st ? st : JS(spec, "storage"), storage,
	    sizeof(storage)) < 0)
		goto cleanup;
	if (json_array_size(json_object_get(spec, "disks")) == 0) {
		httpd_reply_error(r, 409, "vm \"%s\" has no disks to back up",
		    r->params[0]);
		goto cleanup;
	}
	/* Sortable and readable: 20261124-180000-1a2b. */
	util_time_iso(util_wall_ms(), when, sizeof(when));
	util_random_hex(hex, 2);
	snprintf(id, sizeof(id), "%.4s%.2s%.2s-%.2s%.2s%.2s-%s", when, when + 5,
	    when + 8, when + 11, when + 14, when + 17, hex);
	if (db_exec("INSERT INTO backups (id, vm, vm_uuid, storage, state, "
	    "created) VALUES (?, ?, ?, ?, 'running', ?)", "ssssi", id,
	    r->params[0], JS(row, "uuid"), storage, util_wall_ms()) < 0) {
		httpd_reply_error(r, 500, "cannot record the backup");
		goto cleanup;
	}
	rc = api_st_submit(r, "backup.create", r->params[0], has_keep ?
	    json_pack("{s:s, s:s, s:I}", "id", id, "storage", storage, "keep",
	    (json_int_t)keep) : json_pack("{s:s, s:s}", "id", id, "storage",
	    storage));
	if (r->status != 202)
		db_exec("DELETE FROM backups WHERE id = ?", "s", id);
cleanup:
	json_decref(spec);
	json_decref(row);
	return rc;
}

/* POST /backups/ID/restore {name, storage?} and POST /vms/NAME/clone
 * {name, linked?}: a new VM row, then the copy task on it. */
static int
api_st_new_vm(struct httpd_req *r, json_t *src, const char *kind,
    json_t *params, const char *defst)
{
	static const char *const fields[] = { "name", "storage", "linked", NULL };
	char storage[UTIL_NAME_MAX + 1];
	const char *name = NULL, *st = NULL;
	json_t *ns = NULL;
	int linked = 0, rc = 0;

	if (r->body == NULL || api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", 255, &name) < 0 ||
	    api_str_field(r, "storage", 255, &st) < 0 ||
	    api_bool_field(r, "linked", &linked) < 0) {
		if (r->status == 0)
			httpd_reply_error(r, 400, "a JSON body {\"name\"} is "
			    "required");
		goto cleanup;
	}
	if (name == NULL || !util_name_valid(name)) {
		httpd_reply_error(r, 400, "invalid VM name \"%.64s\"",
		    name ? name : "");
		goto cleanup;
	}
	if (linked && st && strcmp(st, defst) != 0) {
		httpd_reply_error(r, 400, "a linked clone lives on its source's "
		    "storage %s", defst);
		goto cleanup;
	}
	if (api_st_pick(r, st ? st : defst, storage, sizeof(storage)) < 0)
		goto cleanup;
	ns = api_st_newspec(src, name, storage);
	if (linked)	/* the template must outlive this clone */
		json_object_set(ns, "linked_to", json_object_get(src, "uuid"));
	if (api_vm_insert(r, ns) < 0)
		goto cleanup;
	json_object_set_new(params, "linked", json_boolean(linked));
	rc = api_st_submit(r, kind, name, json_incref(params));
	if (r->status != 202)
		db_exec("DELETE FROM vms WHERE uuid = ?", "s", JS(ns, "uuid"));
cleanup:
	json_decref(ns);
	json_decref(params);
	return rc;
}

static int
api_backup_restore(struct httpd_req *r)
{
	json_t *row = api_backup_lookup(r), *m = NULL;
	int rc = 0;

	if (row == NULL)
		return 0;
	if (strcmp(JS(row, "state"), "ok") != 0 || (m = json_loads(JS(row,
	    "manifest"), 0, NULL)) == NULL)
		httpd_reply_error(r, 409, "backup \"%s\" is not complete",
		    r->params[0]);
	else if (r->body && json_is_true(json_object_get(r->body, "linked")))
		httpd_reply_error(r, 400, "a restore is always a full copy");
	else
		rc = api_st_new_vm(r, json_object_get(m, "spec"), "backup.restore",
		    json_pack("{s:s}", "backup", r->params[0]),
		    JS(json_object_get(m, "spec"), "storage"));
	json_decref(m);
	json_decref(row);
	return rc;
}

static int
api_backup_verify(struct httpd_req *r)
{
	json_t *row = api_backup_lookup(r);

	if (row == NULL)
		return 0;
	json_decref(row);
	return api_st_submit(r, "backup.verify", NULL, json_pack("{s:s}",
	    "backup", r->params[0]));
}

static int
api_backup_delete(struct httpd_req *r)
{
	char host[UTIL_NAME_MAX + 1], path[256], err[512];
	json_t *row = api_backup_lookup(r);
	int status = 0;

	if (row == NULL)
		return 0;
	if (strcmp(JS(row, "state"), "running") == 0)
		httpd_reply_error(r, 409, "backup \"%s\" is still running",
		    r->params[0]);
	else if (agentc_host_with_storage(JS(row, "storage"), NULL, host,
	    sizeof(host)) < 0)
		httpd_reply_error(r, 503, "no host with storage %s is up",
		    JS(row, "storage"));
	else if (util_fmt(path, sizeof(path), "/agent/v1/files/backups/%s?"
	    "storage=%s", r->params[0], JS(row, "storage")) < 0 ||
	    agentc_call(host, "DELETE", path, NULL, 60000, &status, NULL, err,
	    sizeof(err)) < 0 || status >= 400)
		httpd_reply_error(r, 502, "%s", err);
	else {
		db_exec("DELETE FROM backups WHERE id = ?", "s", r->params[0]);
		event_add("info", "backup.deleted", JS(row, "vm"), "backup %s "
		    "deleted by %s", r->params[0], r->principal);
		httpd_reply_json(r, 200, json_object());
	}
	json_decref(row);
	return 0;
}

/* ---- disks -------------------------------------------------------------- */

/* POST /vms/NAME/disks {size_mib} and /vms/NAME/disks/DISK/resize. */
static int
api_disk_op(struct httpd_req *r, const char *kind, const char *disk)
{
	static const char *const fields[] = { "size_mib", NULL };
	json_t *row = util_name_valid(r->params[0]) ? vm_find(r->params[0]) :
	    NULL, *spec = NULL, *d;
	int64_t mib = 0, cur = 0;
	int has = 0, found = 0, rc = 0;
	size_t i;

	if (row == NULL)
		return httpd_reply_error(r, 404, "vm \"%.64s\" not found",
		    r->params[0]);
	spec = vm_spec(row);
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if (disk && JS(d, "name") && strcmp(JS(d, "name"), disk) == 0) {
			found = 1;
			cur = json_integer_value(json_object_get(d, "size_mib"));
		}
	}
	if (r->body == NULL || api_check_fields(r, fields) < 0 ||
	    api_int_field(r, "size_mib", 1, 67108864, &mib, &has) < 0) {
		if (r->status == 0)
			httpd_reply_error(r, 400, "a JSON body {\"size_mib\"} is "
			    "required");
	} else if (!has) {
		httpd_reply_error(r, 400, "size_mib is required");
	} else if (disk && json_is_true(json_object_get(spec, "template"))) {
		httpd_reply_error(r, 409, "vm \"%s\" is a template: its disks are "
		    "the base of its clones", r->params[0]);
	} else if (disk && (!util_name_valid(disk) || !found)) {
		httpd_reply_error(r, 404, "disk \"%.64s\" of vm \"%s\" not found",
		    disk, r->params[0]);
	} else if (disk && mib <= cur) {
		httpd_reply_error(r, 400, "disk %s is %lld MiB: it can only grow",
		    disk, (long long)cur);
	} else if (!disk && strcmp(JS(row, "state"), "stopped") != 0 &&
	    strcmp(JS(row, "state"), "failed") != 0) {
		httpd_reply_error(r, 409, "vm \"%s\" is %s: stop it to add a disk",
		    r->params[0], JS(row, "state"));
	} else {
		rc = api_st_submit(r, kind, r->params[0], disk ? json_pack("{s:I, "
		    "s:s}", "size_mib", (json_int_t)mib, "disk", disk) :
		    json_pack("{s:I}", "size_mib", (json_int_t)mib));
	}
	json_decref(spec);
	json_decref(row);
	return rc;
}

static int
api_disk_add(struct httpd_req *r)
{
	return api_disk_op(r, "disk.add", NULL);
}

static int
api_disk_resize(struct httpd_req *r)
{
	return api_disk_op(r, "disk.resize", r->params[1]);
}

/* ---- clones and templates ----------------------------------------------- */

int
api_vm_guard(struct httpd_req *r, const char *name, const char *op)
{
	json_t *row = vm_find(name), *spec = NULL, *user = NULL;
	char like[128];
	int rc = 0;

	if (row == NULL)
		return 0;	/* the caller reports unknown VMs */
	spec = vm_spec(row);
	if (json_is_true(json_object_get(spec, "template")) &&
	    strcmp(op, "start") == 0) {
		httpd_reply_error(r, 409, "vm \"%s\" is a template: clone it to "
		    "run it", name);
		rc = -1;
	} else if (strcmp(op, "delete") == 0 && util_fmt(like, sizeof(like),
	    "%%\"linked_to\":\"%s\"%%", json_string_value(json_object_get(row,
	    "uuid"))) == 0 && (user = db_row("SELECT name FROM vms WHERE spec "
	    "LIKE ?", "s", like)) != NULL) {
		httpd_reply_error(r, 409, "vm \"%s\" is the base of linked clone "
		    "\"%s\": delete the clones first", name, JS(user, "name"));
		rc = -1;
	}
	json_decref(user);
	json_decref(spec);
	json_decref(row);
	return rc;
}


static int
api_vm_clone(struct httpd_req *r)
{
	json_t *row = util_name_valid(r->params[0]) ? vm_find(r->params[0]) :
	    NULL, *spec = NULL;
	int rc = 0, tmpl;

	if (row == NULL)
		return httpd_reply_error(r, 404, "vm \"%.64s\" not found",
		    r->params[0]);
	spec = vm_spec(row);
	tmpl = json_is_true(json_object_get(spec, "template"));
	if (strcmp(JS(row, "state"), "stopped") != 0 &&
	    strcmp(JS(row, "state"), "failed") != 0)
		httpd_reply_error(r, 409, "vm \"%s\" is %s: stop it before "
		    "cloning", r->params[0], JS(row, "state"));
	else if (json_is_integer(json_object_get(row, "task_id")))
		httpd_reply_error(r, 409, "vm \"%s\" is busy with task %lld",
		    r->params[0], (long long)json_integer_value(
		    json_object_get(row, "task_id")));
	else if (r->body && json_is_true(json_object_get(r->body, "linked")) &&
	    !tmpl)
		httpd_reply_error(r, 409, "a linked clone needs a template: run "
		    "'cvirt vm template %s' first", r->params[0]);
	else
		rc = api_st_new_vm(r, spec, "vm.clone", json_pack("{s:s}",
		    "source", r->params[0]), JS(spec, "storage"));
	json_decref(spec);
	json_decref(row);
	return rc;
}

/* POST /vms/NAME/template: a stopped VM becomes a read-only template. */
static int
api_vm_template(struct httpd_req *r)
{
	json_t *row = util_name_valid(r->params[0]) ? vm_find(r->params[0]) :
	    NULL, *spec = NULL;

	if (row == NULL)
		return httpd_reply_error(r, 404, "vm \"%.64s\" not found",
		    r->params[0]);
	spec = vm_spec(row);
	if (strcmp(JS(row, "state"), "stopped") != 0 ||
	    json_is_integer(json_object_get(row, "task_id")))
		httpd_reply_error(r, 409, "vm \"%s\" must be stopped and idle to "
		    "become a template", r->params[0]);
	else if (json_array_size(json_object_get(spec, "snapshots")) > 0)
		httpd_reply_error(r, 409, "vm \"%s\" has snapshots: delete them "
		    "first", r->params[0]);
	else {
		json_object_set_new(spec, "template", json_true());
		storops_save_spec(JS(row, "uuid"), spec);
		json_decref(row);
		row = vm_find(r->params[0]);
		httpd_reply_json(r, 200, row ? vm_json(row) : json_object());
	}
	json_decref(spec);
	json_decref(row);
	return 0;
}

const struct httpd_route api_storage_routes[] = {
	{ "GET",    "/api/v1/images",             api_image_list, 0, ROLE_VIEWER },
	{ "POST",   "/api/v1/images",             api_image_import, 0, ROLE_OPERATOR },
	{ "GET",    "/api/v1/images/{}",          api_image_show, 0, ROLE_VIEWER },
	{ "DELETE", "/api/v1/images/{}",          api_image_delete, 0, ROLE_OPERATOR },
	{ "GET",    "/api/v1/backups",            api_backup_list, 0, ROLE_VIEWER },
	{ "GET",    "/api/v1/backups/{}",         api_backup_show, 0, ROLE_VIEWER },
	{ "DELETE", "/api/v1/backups/{}",         api_backup_delete, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/backups/{}/restore", api_backup_restore, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/backups/{}/verify",  api_backup_verify, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/backups",     api_backup_create, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/disks",       api_disk_add, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/disks/{}/resize", api_disk_resize, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/clone",       api_vm_clone, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/template",    api_vm_template, 0, ROLE_OPERATOR },
};
const size_t api_storage_nroutes = sizeof(api_storage_routes) /
    sizeof(api_storage_routes[0]);
