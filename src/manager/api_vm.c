/* api_vm.c - /api/v1/vms: create, list, show, lifecycle tasks, serial. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))

/* No control characters: the agent's QEMU command line refuses them. */
static int
api_text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* An absolute path without ".." components, ',' or control characters
 * (as QEMU's command line takes it): it names a file on hosts. */
static int
api_ha_monitor_ok(const char *m)
{
	static const char *const kinds[] = { "process", "panic", "watchdog",
	    "heartbeat", NULL };
	uint64_t port;
	size_t i;

	for (i = 0; kinds[i]; i++)
		if (strcmp(m, kinds[i]) == 0)
			return 1;
	return strncmp(m, "tcp:", 4) == 0 &&
	    util_parse_u64(m + 4, 1, 65535, &port) == 0;
}

/* Storage for a new VM: the one asked for, or the only one there is. */
static int
api_pick_storage(struct httpd_req *r, const char *want, char *out, size_t sz)
{
	json_t *hosts = db_query("SELECT info FROM hosts", NULL), *h, *s, *names;
	size_t i, j;
	int rc = -1;

	names = json_object();
	json_array_foreach(hosts, i, h) {
		json_t *info = json_loads(JS(h, "info") ? JS(h, "info") : "{}", 0,
		    NULL);
		json_array_foreach(json_object_get(info, "storage"), j, s)
			if (JS(s, "name"))
				json_object_set_new(names, JS(s, "name"), json_true());
		json_decref(info);
	}
	if (want) {
		if (json_object_get(names, want) == NULL)
			httpd_reply_error(r, 404, "storage \"%s\" not found", want);
		else
			rc = util_fmt(out, sz, "%s", want);
	} else if (json_object_size(names) == 1) {
		rc = util_fmt(out, sz, "%s", json_object_iter_key(
		    json_object_iter(names)));
	} else if (json_object_size(names) == 0) {
		httpd_reply_error(r, 503, "no storage domain is known yet: no "
		    "host has registered");
	} else {
		httpd_reply_error(r, 400, "several storage domains exist: choose "
		    "one with --storage");
	}
	json_decref(names);
	json_decref(hosts);
	return rc;
}

/* The create request's NICs: "network" (one NIC on it) or "nics", a list
 * of {network, mac?, ip?}; the user-mode network when neither is given.
 * Reservations happen in api_vm_insert. NULL after replying 4xx. */
static json_t *
api_vm_nics(struct httpd_req *r, const char *net)
{
	static const char *const keys[] = { "network", "mac", "ip", "model",
	    NULL };
	json_t *req = json_object_get(r->body, "nics"), *out, *n, *v;
	const char *key;
	size_t i, k;

	if (req != NULL && net != NULL) {
		httpd_reply_error(r, 400, "give network or nics, not both");
		return NULL;
	}
	if (req == NULL || json_is_null(req))
		return json_pack("[{s:s, s:s}]", "network", net ? net : "user",
		    "model", "virtio");
	if (!json_is_array(req) || json_array_size(req) > 8) {
		httpd_reply_error(r, 400, "nics must be a list of at most 8 "
		    "{\"network\": NAME, \"mac\"?: MAC, \"ip\"?: IP}");
		return NULL;
	}
	out = json_array();
	json_array_foreach(req, i, n) {
		if (!json_is_object(n) || !json_is_string(json_object_get(n,
		    "network")))
			goto bad;
		json_object_foreach(n, key, v) {
			for (k = 0; keys[k]; k++)
				if (strcmp(keys[k], key) == 0)
					break;
			if (keys[k] == NULL || !json_is_string(v) ||
			    json_string_length(v) > 255)
				goto bad;
		}
		if (json_object_get(n, "model") && strcmp(json_string_value(
		    json_object_get(n, "model")), "virtio") != 0) {
			json_decref(out);
			httpd_reply_error(r, 400, "nic model must be virtio");
			return NULL;
		}
		json_array_append_new(out, json_deep_copy(n));
	}
	return out;
bad:
	json_decref(out);
	httpd_reply_error(r, 400, "nics[%zu] must be {\"network\": NAME, "
	    "\"mac\"?: MAC, \"ip\"?: IP} with string values", i);
	return NULL;
}

/* Validate the create request into a spec; NULL after replying 4xx. */
static json_t *
api_vm_spec(struct httpd_req *r)
{
	static const char *const fields[] = { "name", "cpus", "memory_mib",
	    "disk_mib", "image", "kernel", "initrd", "cmdline", "network",
	    "host", "storage", "ha", "ha_monitor", "affinity", "anti_affinity",
	    "cdrom", "cloud_init", "firmware", "display", "nics",
	    NULL };
	const char *name, *kernel, *initrd, *cmdline, *image, *net, *host, *st,
	    *mon, *aff = NULL, *anti = NULL, *display = NULL;
	int64_t cpus = 0, mem = 0, disk = 0;
	int has_cpus, has_mem, has_disk, ha = 0;
	char uuid[UTIL_UUID_LEN + 1], storage[UTIL_NAME_MAX + 1];
	char kpath[4096], ipath[4096];
	json_t *spec, *row, *nics;

	if (r->body == NULL) {
		httpd_reply_error(r, 400, "a JSON body is required");
		return NULL;
	}
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", 255, &name) < 0 ||
	    api_int_field(r, "cpus", 1, 256, &cpus, &has_cpus) < 0 ||
	    api_int_field(r, "memory_mib", 16, 4194304, &mem, &has_mem) < 0 ||
	    api_int_field(r, "disk_mib", 1, 67108864, &disk, &has_disk) < 0 ||
	    api_str_field(r, "image", 255, &image) < 0 ||
	    api_str_field(r, "kernel", 4095, &kernel) < 0 ||
	    api_str_field(r, "initrd", 4095, &initrd) < 0 ||
	    api_str_field(r, "cmdline", 1024, &cmdline) < 0 ||
	    api_str_field(r, "network", 255, &net) < 0 ||
	    api_str_field(r, "host", 255, &host) < 0 ||
	    api_str_field(r, "storage", 255, &st) < 0 ||
	    api_str_field(r, "ha_monitor", 32, &mon) < 0 ||
	    api_str_field(r, "affinity", 255, &aff) < 0 ||
	    api_str_field(r, "anti_affinity", 255, &anti) < 0 ||
	    api_str_field(r, "display", 16, &display) < 0 ||
	    api_bool_field(r, "ha", &ha) < 0)
		return NULL;
	/* "vnc": a VGA card and the graphical console (web UI); off by
	 * default, as the card slows busy TCG guests' migrations. */
	if (display && strcmp(display, "vnc") != 0 &&
	    strcmp(display, "none") != 0) {
		httpd_reply_error(r, 400, "display must be vnc or none");
		return NULL;
	}
	if (name == NULL || !util_name_valid(name)) {
		httpd_reply_error(r, 400, "invalid VM name \"%.64s\": use 1-63 "
		    "letters, digits, '.', '_' or '-', starting with a letter or "
		    "digit", name ? name : "");
		return NULL;
	}
	if (!has_cpus || !has_mem) {
		httpd_reply_error(r, 400, "cpus and memory_mib are required");
		return NULL;
	}
	if ((kernel && api_media_ref(r, "kernel", kernel, kpath,
	    sizeof(kpath)) < 0) || (initrd && api_media_ref(r, "initrd",
	    initrd, ipath, sizeof(ipath)) < 0))
		return NULL;
	if (cmdline && !api_text_ok(cmdline)) {
		httpd_reply_error(r, 400, "cmdline must not hold control "
		    "characters");
		return NULL;
	}
	if ((initrd || cmdline) && !kernel) {
		httpd_reply_error(r, 400, "initrd and cmdline need a kernel");
		return NULL;
	}
	if (image && (!util_name_valid(image) || (row = db_row("SELECT name "
	    "FROM images WHERE name = ?", "s", image)) == NULL)) {
		httpd_reply_error(r, 404, "image \"%.64s\" not found", image);
		return NULL;
	}
	if (image)
		json_decref(row);
	if (mon && !api_ha_monitor_ok(mon)) {
		httpd_reply_error(r, 400, "ha_monitor must be process, panic, "
		    "watchdog, heartbeat or tcp:PORT");
		return NULL;
	}
	if (host) {
		if (!util_name_valid(host) || (row = db_row("SELECT name FROM "
		    "hosts WHERE name = ?", "s", host)) == NULL) {
			httpd_reply_error(r, 404, "host \"%.64s\" not found", host);
			return NULL;
		}
		json_decref(row);
	}
	if ((aff && !util_name_valid(aff)) || (anti && !util_name_valid(anti))) {
		httpd_reply_error(r, 400, "affinity and anti_affinity are group "
		    "names: letters, digits, '.', '_' or '-'");
		return NULL;
	}
	if (st && !util_name_valid(st)) {
		httpd_reply_error(r, 404, "storage \"%.64s\" not found", st);
		return NULL;
	}
	if (api_pick_storage(r, st, storage, sizeof(storage)) < 0)
		return NULL;
	if ((nics = api_vm_nics(r, net)) == NULL)
		return NULL;
	util_uuid_gen(uuid);
	spec = json_pack("{s:s, s:s, s:I, s:I, s:s, s:[], s:o, s:b, s:s}",
	    "uuid", uuid, "name", name, "cpus", (json_int_t)cpus,
	    "memory_mib", (json_int_t)mem, "storage", storage, "disks", "nics",
	    nics, "ha", ha, "ha_monitor", mon ? mon : "process");
	if (image) {
		/* A linked clone on the image, at least --disk MiB large. */
		json_t *d = api_image_disk(r, image, storage, has_disk ? disk : 0);
		if (d == NULL) {
			json_decref(spec);
			return NULL;
		}
		json_array_append_new(json_object_get(spec, "disks"), d);
	} else if (has_disk)
		json_array_append_new(json_object_get(spec, "disks"), json_pack(
		    "{s:s, s:s, s:s, s:I}", "name", "disk0", "file", "disk0.qcow2",
		    "format", "qcow2", "size_mib", (json_int_t)disk));
	if (kernel)
		json_object_set_new(spec, "kernel", json_string(kpath));
	if (initrd)
		json_object_set_new(spec, "initrd", json_string(ipath));
	if (cmdline)
		json_object_set_new(spec, "cmdline", json_string(cmdline));
	if (display && strcmp(display, "vnc") == 0)
		json_object_set_new(spec, "display", json_string("vnc"));
	if (host)
		json_object_set_new(spec, "host", json_string(host));
	if (aff)
		json_object_set_new(spec, "affinity", json_string(aff));
	if (anti)
		json_object_set_new(spec, "anti_affinity", json_string(anti));
	if (api_vm_boot_media(r, spec) < 0) {
		json_decref(spec);
		return NULL;
	}
	return spec;
}

static int
api_vm_create(struct httpd_req *r)
{
	char host[UTIL_NAME_MAX + 1], path[128], err[512];
	json_t *spec, *row = NULL;
	int status = 0, code;

	if ((spec = api_vm_spec(r)) == NULL)
		return 0;
	if (api_vm_insert(r, spec) < 0)
		goto cleanup;
	/* The files go on the storage domain through any host that sees it. */
	if (agentc_host_with_storage(JS(spec, "storage"), JS(spec, "host"), host,
	    sizeof(host)) < 0) {
		code = 503;
		snprintf(err, sizeof(err), "no host with storage %s is up",
		    JS(spec, "storage"));
		goto undo;
	}
	snprintf(path, sizeof(path), "/agent/v1/vms/%s", JS(spec, "uuid"));
	if (agentc_call(host, "PUT", path, spec, 120000, &status, NULL, err,
	    sizeof(err)) < 0 || status >= 400) {
		code = status >= 400 && status < 500 ? 400 : 502;
		goto undo;
	}
	event_add("info", "vm.created", JS(spec, "name"), "vm %s created by %s",
	    JS(spec, "name"), r->principal);
	row = vm_find(JS(spec, "name"));
	httpd_reply_json(r, 201, row ? vm_json(row) : json_object());
	goto cleanup;
undo:
	/* Gone before the client hears of the failure: a list right after
	 * the error must not show the VM. */
	vnet_nics_release(JS(spec, "uuid"), NULL);
	db_exec("DELETE FROM vms WHERE uuid = ?", "s", JS(spec, "uuid"));
	httpd_reply_error(r, code, "%s", err);
cleanup:
	json_decref(row);
	json_decref(spec);
	return 0;
}

static int
api_vm_list(struct httpd_req *r)
{
	char *buf = NULL;
	size_t len, n;
	int rc;

	if (vm_list_json(&buf, &len, &n) < 0)
		return httpd_reply_error(r, 500, "cannot list the VMs");
	rc = httpd_reply_raw(r, 200, "application/json", buf, len);
	free(buf);
	if (n > 1000)
		malloc_trim(0);	/* hand the big reply's pages back */
	return rc;
}

/* The VM named in the path, or NULL after replying 404. */
static json_t *
api_vm_lookup(struct httpd_req *r)
{
	json_t *row = NULL;

	if (util_name_valid(r->params[0]))
		row = vm_find(r->params[0]);
	if (row == NULL)
		httpd_reply_error(r, 404, "vm \"%.64s\" not found", r->params[0]);
	return row;
}

static int
api_vm_show(struct httpd_req *r)
{
	json_t *row = api_vm_lookup(r);

	json_t *o;

	if (row == NULL)
		return 0;
	o = vm_json(row);
	/* HA VMs: could another host restart it now (CONTRACT.md)? */
	if (json_is_true(json_object_get(o, "ha")))
		json_object_update_new(o, sched_protection(row));
	httpd_reply_json(r, 200, o);
	json_decref(row);
	return 0;
}

static int
api_vm_submit(struct httpd_req *r, const char *kind, json_t *params)
{
	char err[256];
	int64_t id;

	id = task_submit(kind, r->params[0], params, r->principal, err,
	    sizeof(err));
	json_decref(params);
	if (id < 0)
		return httpd_reply_error(r, errno == ENOENT ? 404 :
		    errno == EBUSY ? 409 : 500, "%s", err);
	return api_reply_task(r, id);
}

/* Refuses (409, 404 for an unknown host, 422 with no host to go to) an
 * operation the VM's state rules out, before a task is queued; a VM busy
 * with a task is left to task_submit's 409. */
static int
api_vm_precheck(struct httpd_req *r, const char *op, json_t *params)
{
	char err[256];
	json_t *row = vm_find(r->params[0]);
	int rc = 0, status;

	if (row != NULL && !json_is_integer(json_object_get(row, "task_id")) &&
	    vmops_check(op, row, params, err, sizeof(err)) < 0) {
		status = errno == ENOENT ? 404 : errno == ENOSPC ? 422 : 409;
		httpd_reply_error(r, status, "%s", err);
		rc = -1;
	}
	json_decref(row);
	return rc;
}

/* Migration options: all optional; "to" picks the host (else placement). */
static int
api_vm_migrate_params(struct httpd_req *r, const char *const fields[],
    json_t *params)
{
	static const struct { const char *key; int64_t min, max; } nums[] = {
		{ "downtime_ms", 1, 60000 },
		{ "bandwidth_mibs", 0, 1000000 },
		{ "timeout_s", 5, 86400 },
	};
	const char *to = NULL;
	int64_t v;
	int has, ac = 1;
	size_t i;

	if (r->body == NULL)
		return 0;
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "to", 255, &to) < 0 ||
	    api_bool_field(r, "auto_converge", &ac) < 0)
		return -1;
	if (to && !util_name_valid(to)) {
		httpd_reply_error(r, 404, "host \"%.64s\" not found", to);
		return -1;
	}
	if (to)
		json_object_set_new(params, "to", json_string(to));
	json_object_set_new(params, "auto_converge", json_boolean(ac));
	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (api_int_field(r, nums[i].key, nums[i].min, nums[i].max, &v,
		    &has) < 0)
			return -1;
		if (has)
			json_object_set_new(params, nums[i].key, json_integer(v));
	}
	return 0;
}

/* POST /vms/{name}/OP: the operations that queue a task vm.OP. Each has
 * its own route, so a path naming no operation is 404 and another method
 * on one is 405 (httpd_dispatch). */
static int
api_vm_action(struct httpd_req *r, const char *op)
{
	static const char *const start_f[] = { "host", NULL };
	static const char *const stop_f[] = { "force", "timeout_s", NULL };
	static const char *const none_f[] = { "force", NULL };
	static const char *const mig_f[] = { "to", "downtime_ms",
	    "bandwidth_mibs", "timeout_s", "auto_converge", NULL };
	const char *host = NULL;
	json_t *row, *params = json_object();
	int64_t timeout = 0;
	int force = 0, has_timeout = 0;
	char kind[32];

	if ((row = api_vm_lookup(r)) == NULL)
		goto fail;
	json_decref(row);
	if (strcmp(op, "start") == 0) {
		if (api_vm_guard(r, r->params[0], "start") < 0)
			goto fail;
		if (r->body && (api_check_fields(r, start_f) < 0 ||
		    api_str_field(r, "host", 255, &host) < 0))
			goto fail;
		if (host)
			json_object_set_new(params, "host", json_string(host));
	} else if (strcmp(op, "stop") == 0) {
		if (r->body && (api_check_fields(r, stop_f) < 0 ||
		    api_bool_field(r, "force", &force) < 0 ||
		    api_int_field(r, "timeout_s", 0, 3600, &timeout,
		    &has_timeout) < 0))
			goto fail;
		json_object_set_new(params, "force", json_boolean(force));
		if (has_timeout)
			json_object_set_new(params, "timeout_s", json_integer(timeout));
	} else if (strcmp(op, "migrate") == 0) {
		if (api_vm_migrate_params(r, mig_f, params) < 0)
			goto fail;
	} else {	/* reboot, pause, resume */
		if (r->body && (api_check_fields(r, none_f) < 0 ||
		    api_bool_field(r, "force", &force) < 0))
			goto fail;
	}
	if (api_vm_precheck(r, op, params) < 0)
		goto fail;
	snprintf(kind, sizeof(kind), "vm.%s", op);
	return api_vm_submit(r, kind, params);
fail:
	json_decref(params);
	return 0;
}

static int
api_vm_start(struct httpd_req *r)
{
	return api_vm_action(r, "start");
}

static int
api_vm_stop(struct httpd_req *r)
{
	return api_vm_action(r, "stop");
}

static int
api_vm_reboot(struct httpd_req *r)
{
	return api_vm_action(r, "reboot");
}

static int
api_vm_pause(struct httpd_req *r)
{
	return api_vm_action(r, "pause");
}

static int
api_vm_resume(struct httpd_req *r)
{
	return api_vm_action(r, "resume");
}

static int
api_vm_migrate(struct httpd_req *r)
{
	return api_vm_action(r, "migrate");
}

static int
api_vm_delete(struct httpd_req *r)
{
	char force[8] = "";
	json_t *row, *params;

	if ((row = api_vm_lookup(r)) == NULL)
		return 0;
	json_decref(row);
	if (api_vm_guard(r, r->params[0], "delete") < 0)
		return 0;
	httpd_query(r, "force", force, sizeof(force));
	params = json_pack("{s:b}", "force", strcmp(force, "1") == 0 ||
	    strcmp(force, "true") == 0);
	if (api_vm_precheck(r, "delete", params) < 0) {
		json_decref(params);
		return 0;
	}
	return api_vm_submit(r, "vm.delete", params);
}

static int
api_vm_serial(struct httpd_req *r)
{
	char host[UTIL_NAME_MAX + 1], path[256], off[32] = "", err[512];
	json_t *row, *spec = NULL, *reply = NULL;
	uint64_t v;
	int status = 0;

	if ((row = api_vm_lookup(r)) == NULL)
		return 0;
	spec = vm_spec(row);
	if (httpd_query(r, "offset", off, sizeof(off)) == 0 &&
	    util_parse_u64(off, 0, INT64_MAX, &v) < 0) {
		httpd_reply_error(r, 400, "offset must be a byte offset");
		goto cleanup;
	}
	if (agentc_host_with_storage(JS(spec, "storage"), JS(row, "host"), host,
	    sizeof(host)) < 0) {
		httpd_reply_error(r, 503, "no host with storage %s is up",
		    JS(spec, "storage"));
		goto cleanup;
	}
	if (util_fmt(path, sizeof(path), "/agent/v1/vms/%s/serial?storage=%s%s%s",
	    JS(row, "uuid"), JS(spec, "storage"), off[0] ? "&offset=" : "",
	    off) < 0 || agentc_call(host, "GET", path, NULL, 10000, &status,
	    &reply, err, sizeof(err)) < 0 || status != 200) {
		httpd_reply_error(r, 502, "%s", err);
		goto cleanup;
	}
	httpd_reply_json(r, 200, reply);
	reply = NULL;
cleanup:
	json_decref(reply);
	json_decref(spec);
	json_decref(row);
	return 0;
}

static int
api_vm_console(struct httpd_req *r)
{
	char ticket[64], path[128];
	json_t *row;

	if ((row = api_vm_lookup(r)) == NULL)
		return 0;
	if (JS(row, "host") == NULL || strcmp(JS(row, "state"), "stopped") == 0) {
		httpd_reply_error(r, 409, "vm \"%s\" is not running", r->params[0]);
	} else if (console_ticket_new(JS(row, "uuid"), JS(row, "host"), ticket,
	    sizeof(ticket)) < 0) {
		httpd_reply_error(r, errno == EBUSY ? 503 : 500, errno == EBUSY ?
		    "too many consoles open; close one first" :
		    "cannot issue a console ticket");
	} else {
		snprintf(path, sizeof(path), "/api/v1/console?ticket=%s", ticket);
		httpd_reply_json(r, 200, json_pack("{s:s, s:s}", "ticket", ticket,
		    "path", path));
	}
	json_decref(row);
	return 0;
}

const struct httpd_route api_vm_routes[] = {
	{ "GET",    "/api/v1/vms",             api_vm_list,    0, ROLE_VIEWER },
	{ "POST",   "/api/v1/vms",             api_vm_create,  0, ROLE_OPERATOR },
	{ "GET",    "/api/v1/vms/{}",          api_vm_show,    0, ROLE_VIEWER },
	{ "DELETE", "/api/v1/vms/{}",          api_vm_delete,  0, ROLE_OPERATOR },
	{ "GET",    "/api/v1/vms/{}/serial",   api_vm_serial,  0, ROLE_VIEWER },
	{ "POST",   "/api/v1/vms/{}/console",  api_vm_console, 0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/start",    api_vm_start,   0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/stop",     api_vm_stop,    0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/reboot",   api_vm_reboot,  0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/pause",    api_vm_pause,   0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/resume",   api_vm_resume,  0, ROLE_OPERATOR },
	{ "POST",   "/api/v1/vms/{}/migrate",  api_vm_migrate, 0, ROLE_OPERATOR },
};
const size_t api_vm_nroutes = sizeof(api_vm_routes) / sizeof(api_vm_routes[0]);
