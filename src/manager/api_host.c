/* api_host.c - /api/v1/hosts and /api/v1/storage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pki.h"
#include "manager/manager_int.h"

#define HOST_SELECT "SELECT h.*, (SELECT COUNT(*) FROM vms v WHERE " \
	"v.host = h.name) AS vms FROM hosts h"

/* Each host's storage[] entry gets "fenced": whether the manager fenced
 * the host on that domain (docs/ha.md). One query for all the hosts: the
 * fenced rows are few. hosts: host objects (host_json), changed in place. */
static void
api_host_fenced(json_t *hosts)
{
	json_t *rows = db_query("SELECT host, storage FROM host_domains WHERE "
	    "state = 'fenced'", NULL), *f = json_object(), *h, *s, *r;
	char key[2 * UTIL_NAME_MAX + 2];
	size_t i, j;

	json_array_foreach(rows, i, r)
		if (util_fmt(key, sizeof(key), "%s\x1f%s", json_string_value(
		    json_object_get(r, "host")), json_string_value(
		    json_object_get(r, "storage"))) == 0)
			json_object_set_new(f, key, json_true());
	json_array_foreach(hosts, i, h)
		json_array_foreach(json_object_get(h, "storage"), j, s) {
			const char *n = json_string_value(json_object_get(s,
			    "name"));

			if (!json_is_object(s) || n == NULL ||
			    util_fmt(key, sizeof(key), "%s\x1f%s",
			    json_string_value(json_object_get(h, "name")), n) < 0)
				continue;
			json_object_set_new(s, "fenced", json_boolean(
			    json_object_get(f, key) != NULL));
		}
	json_decref(f);
	json_decref(rows);
}

static int
api_host_list(struct httpd_req *r)
{
	json_t *rows = db_query(HOST_SELECT " ORDER BY h.name", NULL), *row;
	json_t *out = json_array();
	size_t i;

	json_array_foreach(rows, i, row)
		json_array_append_new(out, host_json(row));
	json_decref(rows);
	api_host_fenced(out);
	return httpd_reply_json(r, 200, out);
}

static json_t *
api_host_lookup(struct httpd_req *r)
{
	json_t *row = NULL;

	if (util_name_valid(r->params[0]))
		row = db_row(HOST_SELECT " WHERE h.name = ?", "s", r->params[0]);
	if (row == NULL)
		httpd_reply_error(r, 404, "host \"%.64s\" not found", r->params[0]);
	return row;
}

static int
api_host_show(struct httpd_req *r)
{
	json_t *row = api_host_lookup(r), *one;

	if (row) {
		one = json_pack("[o]", host_json(row));
		api_host_fenced(one);
		httpd_reply_json(r, 200, json_incref(json_array_get(one, 0)));
		json_decref(one);
		json_decref(row);
	}
	return 0;
}

static int
api_host_maintenance(struct httpd_req *r)
{
	static const char *const fields[] = { "enabled", NULL };
	json_t *row;
	int on = -1;

	if ((row = api_host_lookup(r)) == NULL)
		return 0;
	json_decref(row);
	if (r->body == NULL || api_check_fields(r, fields) < 0 ||
	    api_bool_field(r, "enabled", &on) < 0)
		return r->status ? 0 : httpd_reply_error(r, 400,
		    "body {\"enabled\": true|false} required");
	if (on < 0)
		return httpd_reply_error(r, 400, "enabled is required");
	db_exec("UPDATE hosts SET maintenance = ? WHERE name = ?", "is",
	    (int64_t)on, r->params[0]);
	event_add("info", on ? "host.maintenance" : "host.active", r->params[0],
	    "host %s %s maintenance (by %s)", r->params[0],
	    on ? "entered" : "left", r->principal);
	/* Entering maintenance empties the host: a task when VMs run there. */
	row = db_row("SELECT COUNT(*) AS n FROM vms WHERE host = ? AND state IN "
	    "('running', 'paused')", "s", r->params[0]);
	if (on && row && json_integer_value(json_object_get(row, "n")) > 0) {
		json_t *p = json_pack("{s:s}", "host", r->params[0]);
		char err[256];
		int64_t id = task_submit("host.evacuate", NULL, p, r->principal,
		    err, sizeof(err));
		json_decref(p);
		json_decref(row);
		if (id < 0)
			return httpd_reply_error(r, 500, "%s", err);
		return api_reply_task(r, id);
	}
	json_decref(row);
	row = db_row(HOST_SELECT " WHERE h.name = ?", "s", r->params[0]);
	httpd_reply_json(r, 200, row ? host_json(row) : json_object());
	json_decref(row);
	return 0;
}

/* Forget a host that is gone for good (its agent stopped): its VXLAN
 * peers drop it, it no longer counts anywhere. A host that reports, or
 * that VMs are placed on, stays. */
static int
api_host_delete(struct httpd_req *r)
{
	json_t *row, *vm = NULL;
	int rc = 0;

	if ((row = api_host_lookup(r)) == NULL)
		return 0;
	db_begin();
	if (strcmp(json_string_value(json_object_get(row, "state")), "up") == 0) {
		httpd_reply_error(r, 409, "host %s is up: stop its agent first "
		    "(and move its VMs away with maintenance mode)", r->params[0]);
		goto fail;
	}
	if ((vm = db_row("SELECT name, state FROM vms WHERE host = ?", "s",
	    r->params[0])) != NULL) {
		httpd_reply_error(r, 409, "vm %s is %s on host %s: stop or move it "
		    "first", json_string_value(json_object_get(vm, "name")),
		    json_string_value(json_object_get(vm, "state")), r->params[0]);
		goto fail;
	}
	if (db_exec("DELETE FROM hosts WHERE name = ?", "s", r->params[0]) < 0) {
		httpd_reply_error(r, 500, "cannot delete host %s", r->params[0]);
		goto fail;
	}
	db_commit();
	vnet_host_forget(r->params[0]);
	vnet_changed();		/* VXLAN peers */
	event_add("info", "host.deleted", r->params[0], "host %s deleted by %s",
	    r->params[0], r->principal);
	rc = httpd_reply_json(r, 200, json_pack("{s:s}", "deleted",
	    r->params[0]));
	goto cleanup;
fail:
	db_rollback();
cleanup:
	json_decref(vm);
	json_decref(row);
	return rc;
}

/* An operator vouches that a host is off (powered off, reset, cut from
 * its storage): the VMs of a host without a watchdog (fence=kill-only, or
 * no fence reported) may then restart elsewhere once its leases expired
 * after this moment (docs/ha.md). Refused while the host reports. */
static int
api_host_confirm_off(struct httpd_req *r)
{
	json_t *row, *vms = NULL, *v, *names = NULL;
	const char *name = r->params[0];
	size_t i;

	if ((row = api_host_lookup(r)) == NULL)
		return 0;
	if (strcmp(json_string_value(json_object_get(row, "state")), "up") ==
	    0 || hostmon_silence_ms(name) < hb_timeout_ms()) {
		httpd_reply_error(r, 409, "host %s is reporting: it is not off",
		    name);
		goto cleanup;
	}
	if (db_exec("UPDATE hosts SET confirmed_off = ? WHERE name = ?", "is",
	    util_wall_ms(), name) != 1) {
		httpd_reply_error(r, 500, "cannot record the confirmation");
		goto cleanup;
	}
	/* Its VMs before the failover thread, kicked by the confirmation,
	 * fails them (host NULL): the reply names those it released. */
	vms = db_query("SELECT * FROM vms WHERE host = ? ORDER BY name", "s",
	    name);
	failover_confirm_off(name);
	event_add("warning", "host.confirmed_off", name, "host %s confirmed off "
	    "by %s: its VMs restart elsewhere once its storage leases expired",
	    name, r->principal);
	names = json_array();
	json_array_foreach(vms, i, v) {
		json_t *spec = vm_spec(v);

		if (spec && failover_vm_released(name, spec))
			json_array_append(names, json_object_get(v, "name"));
		json_decref(spec);
	}
	httpd_reply_json(r, 200, json_pack("{s:s, s:O}", "host", name, "vms",
	    names));
cleanup:
	json_decref(names);
	json_decref(vms);
	json_decref(row);
	return 0;
}

/* An admin takes a host's credentials away (a stolen disk, a host to
 * re-install): its key and certificate no longer count, its agent is
 * refused, and the name registers again only with an admin or a new join
 * token (docs/security.md, "Admitting hosts"). Its VMs stay recorded. */
static int
api_host_reset(struct httpd_req *r)
{
	json_t *row;

	if ((row = api_host_lookup(r)) == NULL)
		return 0;
	json_decref(row);
	if (db_exec("UPDATE hosts SET agent_key = NULL, cert_fp = NULL, "
	    "key_source = 'reset', state = 'down' WHERE name = ?", "s",
	    r->params[0]) != 1)
		return httpd_reply_error(r, 500, "cannot reset host %s",
		    r->params[0]);
	event_add("warning", "host.reset", r->params[0], "host %s reset by %s: "
	    "its key and certificate no longer count; it joins again with a "
	    "token", r->params[0], r->principal);
	return httpd_reply_json(r, 200, json_pack("{s:s}", "reset",
	    r->params[0]));
}

/* An address the host's certificate may name (it gets it when it next
 * asks for a certificate: its agent does at every start). */
static int
api_host_approve(struct httpd_req *r)
{
	static const char *const fields[] = { "address", NULL };
	json_t *row, *list = NULL, *pend = NULL, *v;
	const char *addr;
	char *a = NULL, *p = NULL;
	size_t i;

	if ((row = api_host_lookup(r)) == NULL)
		return 0;
	if (r->body == NULL || api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "address", 253, &addr) < 0) {
		if (r->status == 0)
			httpd_reply_error(r, 400, "body {\"address\": ADDR} "
			    "required");
		goto cleanup;
	}
	if (addr == NULL || strchr(addr, ',') || !pki_san_valid(addr)) {
		httpd_reply_error(r, 400, "address must be an IP address or a "
		    "DNS name");
		goto cleanup;
	}
	list = json_loads(json_string_value(json_object_get(row, "approved")) ?
	    json_string_value(json_object_get(row, "approved")) : "[]", 0, NULL);
	pend = json_loads(json_string_value(json_object_get(row, "pending")) ?
	    json_string_value(json_object_get(row, "pending")) : "[]", 0, NULL);
	if (!json_is_array(list) || !json_is_array(pend)) {
		httpd_reply_error(r, 500, "unreadable addresses of host %s",
		    r->params[0]);
		goto cleanup;
	}
	json_array_foreach(list, i, v)
		if (strcmp(json_string_value(v) ? json_string_value(v) : "",
		    addr) == 0)
			break;
	if (i == json_array_size(list)) {
		if (json_array_size(list) >= PKI_SAN_MAX - 2) {
			httpd_reply_error(r, 409, "host %s has %d approved "
			    "addresses already", r->params[0], PKI_SAN_MAX - 2);
			goto cleanup;
		}
		json_array_append_new(list, json_string(addr));
	}
	json_array_foreach(pend, i, v)
		if (strcmp(json_string_value(v) ? json_string_value(v) : "",
		    addr) == 0) {
			json_array_remove(pend, i);
			break;
		}
	a = json_dumps(list, JSON_COMPACT);
	p = json_dumps(pend, JSON_COMPACT);
	if (a == NULL || p == NULL || db_exec("UPDATE hosts SET approved = ?, "
	    "pending = ? WHERE name = ?", "sss", a, json_array_size(pend) ? p :
	    NULL, r->params[0]) != 1) {
		httpd_reply_error(r, 500, "cannot record the address");
		goto cleanup;
	}
	event_add("info", "host.address_approved", r->params[0], "address %s "
	    "approved for the certificate of host %s by %s", addr, r->params[0],
	    r->principal);
	httpd_reply_json(r, 200, json_pack("{s:s, s:O, s:O}", "host",
	    r->params[0], "approved_addresses", list, "pending_addresses", pend));
cleanup:
	free(a);
	free(p);
	json_decref(list);
	json_decref(pend);
	json_decref(row);
	return 0;
}

static int
api_storage_list(struct httpd_req *r)
{
	json_t *rows = db_query("SELECT name, state, info FROM hosts ORDER BY "
	    "name", NULL), *h, *s, *byname = json_object(), *out = json_array();
	const char *key;
	json_t *v;
	size_t i, j;

	json_array_foreach(rows, i, h) {
		json_t *info = json_loads(json_string_value(json_object_get(h,
		    "info")), 0, NULL);
		json_array_foreach(json_object_get(info, "storage"), j, s) {
			const char *n = json_string_value(json_object_get(s, "name"));
			json_t *e;
			if (n == NULL)
				continue;
			if ((e = json_object_get(byname, n)) == NULL) {
				e = json_pack("{s:s, s:O, s:[], s:O, s:O}", "name", n,
				    "path", json_object_get(s, "path"), "hosts",
				    "total_bytes", json_object_get(s, "total_bytes"),
				    "free_bytes", json_object_get(s, "free_bytes"));
				json_object_set_new(byname, n, e);
			}
			json_array_append_new(json_object_get(e, "hosts"), json_pack(
			    "{s:O, s:O, s:O, s:O, s:O}", "host", json_object_get(h,
			    "name"), "ok", json_object_get(s, "ok"),
			    "error", json_object_get(s, "error") ?
			    json_object_get(s, "error") : json_null(),
			    /* issue 14 agents: O_DIRECT there, lease state */
			    "direct", json_object_get(s, "direct") ?
			    json_object_get(s, "direct") : json_null(),
			    "lease", json_object_get(s, "lease") ?
			    json_object_get(s, "lease") : json_null()));
		}
		json_decref(info);
	}
	json_object_foreach(byname, key, v)
		json_array_append(out, v);
	json_decref(byname);
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

const struct httpd_route api_host_routes[] = {
	{ "GET",  "/api/v1/hosts",                  api_host_list, 0, ROLE_VIEWER },
	{ "GET",  "/api/v1/hosts/{}",               api_host_show, 0, ROLE_VIEWER },
	{ "DELETE", "/api/v1/hosts/{}",             api_host_delete, 0, ROLE_ADMIN },
	{ "POST", "/api/v1/hosts/{}/maintenance",   api_host_maintenance, 0, ROLE_ADMIN },
	{ "POST", "/api/v1/hosts/{}/confirm-off",   api_host_confirm_off, 0, ROLE_ADMIN },
	{ "POST", "/api/v1/hosts/{}/reset",         api_host_reset, 0, ROLE_ADMIN },
	{ "POST", "/api/v1/hosts/{}/addresses",     api_host_approve, 0, ROLE_ADMIN },
	{ "GET",  "/api/v1/storage",                api_storage_list, 0, ROLE_VIEWER },
};
const size_t api_host_nroutes = sizeof(api_host_routes) / sizeof(api_host_routes[0]);
