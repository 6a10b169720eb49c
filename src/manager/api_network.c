/* api_network.c - /api/v1/networks and a VM's vNICs (/api/v1/vms/NAME/nics):
 * validation of networks (types, subnets, VNIs, VLAN ids) and NIC hot-plug
 * through the VM's agent. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

#define VNET_VNI_FIRST	10000
#define VNET_VNI_MAX	16777215
#define VNET_MAX_NICS	8	/* QEMU_MAX_NICS on the agent */
#define VNET_USER_MTU	1500	/* slirp's, fixed in QEMU 7.2 */
#define VNET_USER_PREFIX_MAX 27	/* slirp's DHCP pool: the 15th to 30th */

/* The built-in user-mode network (QEMU's slirp; nothing on the host). */
static json_t *
api_net_user(void)
{
	return json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:I, s:n, s:n, s:n, "
	    "s:b}", "name", "user", "id", "type", "user", "subnet", "gateway",
	    "dhcp", 1, "mtu", (json_int_t)1500, "vni", "vlan", "uplink",
	    "builtin", 1);
}

/* A network row with its use: how many vNICs, which VMs. */
static json_t *
api_net_full(json_t *row, int hosts)
{
	json_t *o = vnet_json(row), *vms, *v, *names = json_array();
	size_t i;

	vms = db_query("SELECT DISTINCT v.name FROM nics n JOIN vms v ON "
	    "v.uuid = n.vm WHERE n.network = ? ORDER BY v.name", "s",
	    JS(row, "name"));
	json_array_foreach(vms, i, v)
		json_array_append(names, json_object_get(v, "name"));
	json_decref(vms);
	json_object_set_new(o, "vms", names);
	json_object_set_new(o, "builtin", json_false());
	if (hosts)
		json_object_set_new(o, "hosts", vnet_hosts_of(JS(row, "name"),
		    strcmp(JS(row, "type"), "user") == 0));
	if (hosts && strcmp(JS(row, "type"), "vlan") == 0)
		json_object_set_new(o, "datapaths", vnet_datapaths_of(JS(row,
		    "name")));
	return o;
}

static int
api_net_list(struct httpd_req *r)
{
	json_t *rows = db_query("SELECT * FROM networks ORDER BY name", NULL);
	json_t *out = json_array(), *row, *users;
	size_t i;

	if (rows == NULL) {
		json_decref(out);
		return httpd_reply_error(r, 500, "cannot list the networks");
	}
	json_array_append_new(out, api_net_user());
	json_array_foreach(rows, i, row)
		json_array_append_new(out, api_net_full(row, 0));
	users = db_row("SELECT COUNT(*) AS n FROM nics WHERE network = 'user'",
	    NULL);
	json_object_set_new(json_array_get(out, 0), "nics",
	    json_integer(users ? JI(users, "n") : 0));
	json_decref(users);
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

static int
api_net_show(struct httpd_req *r)
{
	json_t *row;

	if (strcmp(r->params[0], "user") == 0)
		return httpd_reply_json(r, 200, api_net_user());
	if (!util_name_valid(r->params[0]) || (row = db_row("SELECT * FROM "
	    "networks WHERE name = ?", "s", r->params[0])) == NULL)
		return httpd_reply_error(r, 404, "network \"%.64s\" not found",
		    r->params[0]);
	httpd_reply_json(r, 200, api_net_full(row, 1));
	json_decref(row);
	return 0;
}

/* A user-mode network (QEMU's slirp in each VM): nothing on the hosts to
 * configure, so no VNI, VLAN or uplink; slirp's DHCP always runs. */
static int
api_net_user_check(struct httpd_req *r, const struct vnet_cidr *c,
    int has_vni, int has_vlan, const char *uplink, int dhcp, int has_mtu,
    int64_t mtu)
{
	if (has_vni || has_vlan || uplink) {
		httpd_reply_error(r, 400, "a user network has no %s: it is QEMU's "
		    "user-mode networking inside each VM", has_vni ? "vni" :
		    has_vlan ? "vlan" : "uplink");
		return -1;
	}
	if (dhcp == 0) {
		httpd_reply_error(r, 400, "a user network always has DHCP "
		    "(QEMU's own): dhcp cannot be false");
		return -1;
	}
	if (has_mtu && mtu != VNET_USER_MTU) {
		httpd_reply_error(r, 400, "a user network's MTU is %d (QEMU's "
		    "user-mode networking has no MTU option)", VNET_USER_MTU);
		return -1;
	}
	/* Slirp's DHCP hands out 16 addresses from the 15th (.15 to .30 of
	 * a /24): a smaller subnet has no room for them. */
	if (c && c->prefix > VNET_USER_PREFIX_MAX) {
		httpd_reply_error(r, 400, "a user network's subnet must be /%d to "
		    "/%d (QEMU's DHCP gives the 15th to the 30th address)",
		    VNET_PREFIX_MIN, VNET_USER_PREFIX_MAX);
		return -1;
	}
	return 0;
}

/* Nat subnets are routed on every host: no other network may overlap
 * them. Overlays (vxlan, vlan, bridge) are isolated from each other and
 * from the host, so they may share a subnet; a user network's subnet
 * exists only inside each QEMU and overlaps nothing. */
static int
api_net_overlap(struct httpd_req *r, const char *type,
    const struct vnet_cidr *c)
{
	json_t *rows = db_query("SELECT name, type, subnet FROM networks WHERE "
	    "subnet IS NOT NULL AND type <> 'user'", NULL), *row;
	struct vnet_cidr o;
	char err[128];
	size_t i;
	int rc = 0;

	json_array_foreach(rows, i, row) {
		if (vnet_cidr_parse(JS(row, "subnet"), &o, err, sizeof(err)) < 0 ||
		    !vnet_cidr_overlap(c, &o))
			continue;
		if (strcmp(type, "nat") == 0 || strcmp(JS(row, "type"), "nat") == 0) {
			httpd_reply_error(r, 409, "subnet overlaps %s network %s "
			    "(%s): a nat network's subnet is routed on every host "
			    "and may not overlap another network",
			    JS(row, "type"), JS(row, "name"), JS(row, "subnet"));
			rc = -1;
			break;
		}
	}
	json_decref(rows);
	return rc;
}

/* VNI: the one asked for if free, else the lowest free from 10000. */
static int
api_net_vni(struct httpd_req *r, int has, int64_t *vni)
{
	json_t *row;

	if (has) {
		row = db_row("SELECT name FROM networks WHERE vni = ?", "i", *vni);
		if (row != NULL) {
			httpd_reply_error(r, 409, "VNI %lld is used by network %s",
			    (long long)*vni, JS(row, "name"));
			json_decref(row);
			return -1;
		}
		return 0;
	}
	/* VNET_VNI_FIRST, else the lowest used one from there whose next
	 * is free (a VNI given by hand high up leaves the rest usable). */
	row = db_row("SELECT vni FROM networks WHERE vni = ?", "i",
	    (int64_t)VNET_VNI_FIRST);
	*vni = VNET_VNI_FIRST;
	if (row != NULL) {
		json_decref(row);
		row = db_row("SELECT MIN(a.vni) + 1 AS m FROM networks a WHERE "
		    "a.vni >= ? AND NOT EXISTS (SELECT 1 FROM networks b WHERE "
		    "b.vni = a.vni + 1)", "i", (int64_t)VNET_VNI_FIRST);
		*vni = row && json_is_integer(json_object_get(row, "m")) ?
		    JI(row, "m") : VNET_VNI_MAX + 1;
	}
	json_decref(row);
	if (*vni > VNET_VNI_MAX) {
		httpd_reply_error(r, 409, "no free VNI left: give one with vni");
		return -1;
	}
	return 0;
}

static int
api_net_create(struct httpd_req *r)
{
	static const char *const fields[] = { "name", "type", "subnet", "vni",
	    "vlan", "uplink", "dhcp", "mtu", NULL };
	const char *name, *type, *subnet, *uplink;
	int64_t vni = 0, vlan = 0, mtu = 0, id;
	int has_vni, has_vlan, has_mtu, dhcp = -1;
	struct vnet_cidr c;
	char err[160], gw[16] = "";
	json_t *row;

	if (r->body == NULL)
		return httpd_reply_error(r, 400, "a JSON body is required");
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", 255, &name) < 0 ||
	    api_str_field(r, "type", 16, &type) < 0 ||
	    api_str_field(r, "subnet", 31, &subnet) < 0 ||
	    api_str_field(r, "uplink", 31, &uplink) < 0 ||
	    api_int_field(r, "vni", 1, VNET_VNI_MAX, &vni, &has_vni) < 0 ||
	    api_int_field(r, "vlan", 1, 4094, &vlan, &has_vlan) < 0 ||
	    api_int_field(r, "mtu", 576, 9000, &mtu, &has_mtu) < 0 ||
	    api_bool_field(r, "dhcp", &dhcp) < 0)
		return 0;
	if (name == NULL || !util_name_valid(name))
		return httpd_reply_error(r, 400, "invalid network name \"%.64s\": "
		    "use 1-63 letters, digits, '.', '_' or '-'", name ? name : "");
	if (strcmp(name, "user") == 0)
		return httpd_reply_error(r, 409, "network user is built in");
	if (type == NULL || (strcmp(type, "user") != 0 &&
	    strcmp(type, "nat") != 0 && strcmp(type, "bridge") != 0 &&
	    strcmp(type, "vlan") != 0 && strcmp(type, "vxlan") != 0))
		return httpd_reply_error(r, 400, "type must be user, nat, bridge, "
		    "vlan or vxlan");
	if (subnet && vnet_cidr_parse(subnet, &c, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 400, "%s", err);
	if (strcmp(type, "user") == 0 && api_net_user_check(r, subnet ? &c :
	    NULL, has_vni, has_vlan, uplink, dhcp, has_mtu, mtu) < 0)
		return 0;
	if (strcmp(type, "nat") == 0 && subnet == NULL)
		return httpd_reply_error(r, 400, "a nat network needs a subnet");
	if (has_vni && strcmp(type, "vxlan") != 0)
		return httpd_reply_error(r, 400, "vni is for vxlan networks");
	if (has_vlan != (strcmp(type, "vlan") == 0))
		return httpd_reply_error(r, 400, has_vlan ? "vlan is for vlan "
		    "networks" : "a vlan network needs a vlan id (1-4094)");
	if (uplink && !vnet_ifname_valid(uplink))
		return httpd_reply_error(r, 400, "uplink must be a host interface "
		    "name (1-15 letters, digits, '.', '_', '-'; not cvn...)");
	if (uplink == NULL && (strcmp(type, "vlan") == 0 ||
	    strcmp(type, "bridge") == 0))
		return httpd_reply_error(r, 400, "a %s network needs an uplink",
		    type);
	if (uplink && strcmp(type, "nat") == 0)
		return httpd_reply_error(r, 400, "a nat network has no uplink");
	/* DHCP: on for nat, user (QEMU's own) and vxlan with a subnet; an
	 * outside network (bridge, vlan) usually has its own DHCP server. */
	if (dhcp < 0)
		dhcp = strcmp(type, "nat") == 0 || strcmp(type, "user") == 0 ||
		    (strcmp(type, "vxlan") == 0 && subnet != NULL);
	if (dhcp && subnet == NULL && strcmp(type, "user") != 0)
		return httpd_reply_error(r, 400, "dhcp needs a subnet");
	if (!has_mtu)
		mtu = strcmp(type, "vxlan") == 0 ? 1450 : 1500;
	/* Slirp's gateway is the second address (10.0.2.2). */
	if (subnet)
		vnet_ip_fmt(c.net + (strcmp(type, "user") == 0 ? 2 : 1), gw,
		    sizeof(gw));

	db_begin();
	if ((row = db_row("SELECT name FROM networks WHERE name = ?", "s",
	    name)) != NULL) {
		json_decref(row);
		httpd_reply_error(r, 409, "network \"%s\" already exists", name);
		goto fail;
	}
	if (subnet && strcmp(type, "user") != 0 && api_net_overlap(r, type,
	    &c) < 0)
		goto fail;
	if (strcmp(type, "vxlan") == 0 && api_net_vni(r, has_vni, &vni) < 0)
		goto fail;
	if (has_vlan && (row = db_row("SELECT name FROM networks WHERE vlan = ? "
	    "AND uplink = ?", "is", vlan, uplink)) != NULL) {
		httpd_reply_error(r, 409, "VLAN %lld on %s is used by network %s",
		    (long long)vlan, uplink, JS(row, "name"));
		json_decref(row);
		goto fail;
	}
	row = db_row("SELECT MAX(id) AS m FROM networks", NULL);
	id = row && json_is_integer(json_object_get(row, "m")) ?
	    JI(row, "m") + 1 : 1;
	json_decref(row);
	if (db_exec("INSERT INTO networks (name, id, type, subnet, gateway, dhcp,"
	    " mtu, uplink, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
	    "sisssiisi", name, id, type, subnet, gw[0] ? gw : NULL,
	    (int64_t)dhcp, mtu, uplink, util_wall_ms()) < 0 ||
	    (strcmp(type, "vxlan") == 0 && db_exec("UPDATE networks SET vni = ? "
	    "WHERE name = ?", "is", vni, name) < 0) ||
	    (has_vlan && db_exec("UPDATE networks SET vlan = ? WHERE name = ?",
	    "is", vlan, name) < 0)) {
		httpd_reply_error(r, 500, "cannot record network %s", name);
		goto fail;
	}
	if (db_commit() < 0)	/* rolled back */
		return httpd_reply_error(r, 500, "cannot record network %s",
		    name);
	if (strcmp(type, "user") != 0)	/* nothing for the agents */
		vnet_changed();
	event_add("info", "network.created", name, "network %s (%s%s%s) "
	    "created by %s", name, type, subnet ? " " : "", subnet ? subnet : "",
	    r->principal);
	row = db_row("SELECT * FROM networks WHERE name = ?", "s", name);
	httpd_reply_json(r, 201, row ? api_net_full(row, 1) : json_object());
	json_decref(row);
	return 0;
fail:
	db_rollback();
	return 0;
}

static int
api_net_delete(struct httpd_req *r)
{
	json_t *row, *use;
	int rc = 0;

	if (strcmp(r->params[0], "user") == 0)
		return httpd_reply_error(r, 409, "network user is built in and "
		    "cannot be deleted");
	if (!util_name_valid(r->params[0]))
		return httpd_reply_error(r, 404, "network \"%.64s\" not found",
		    r->params[0]);
	db_begin();
	if ((row = db_row("SELECT * FROM networks WHERE name = ?", "s",
	    r->params[0])) == NULL) {
		db_rollback();
		return httpd_reply_error(r, 404, "network \"%.64s\" not found",
		    r->params[0]);
	}
	use = api_net_full(row, 0);
	if (json_array_size(json_object_get(use, "vms")) > 0) {
		db_rollback();
		httpd_reply_error(r, 409, "network %s is in use by %zu VM(s) "
		    "(first: %s): remove their NICs first", r->params[0],
		    json_array_size(json_object_get(use, "vms")),
		    json_string_value(json_array_get(json_object_get(use, "vms"),
		    0)));
		goto cleanup;
	}
	if (db_exec("DELETE FROM networks WHERE name = ?", "s",
	    r->params[0]) < 0) {
		db_rollback();
		httpd_reply_error(r, 500, "cannot delete network %s",
		    r->params[0]);
		goto cleanup;
	}
	if (db_commit() < 0) {
		httpd_reply_error(r, 500, "cannot delete network %s",
		    r->params[0]);
		goto cleanup;
	}
	vnet_changed();
	event_add("info", "network.deleted", r->params[0], "network %s deleted "
	    "by %s", r->params[0], r->principal);
	rc = httpd_reply_json(r, 200, json_pack("{s:s}", "deleted",
	    r->params[0]));
cleanup:
	json_decref(use);
	json_decref(row);
	return rc;
}

/* ---- a VM's vNICs ----------------------------------------------------------- */

/* The VM and its spec, refusing states where its NICs cannot change. */
static json_t *
api_nic_vm(struct httpd_req *r, json_t **spec, int *running)
{
	json_t *row = NULL;
	const char *st;

	*spec = NULL;
	if (!util_name_valid(r->params[0]) || (row = vm_find(r->params[0])) ==
	    NULL || (*spec = vm_spec(row)) == NULL) {
		httpd_reply_error(r, 404, "vm \"%.64s\" not found", r->params[0]);
		json_decref(row);
		return NULL;
	}
	st = JS(row, "state");
	*running = strcmp(st, "running") == 0 || strcmp(st, "paused") == 0;
	if (json_is_integer(json_object_get(row, "task_id"))) {
		/* The task may save the spec it read before this change. */
		httpd_reply_error(r, 409, "vm %s is busy with task %lld: change "
		    "its NICs when it is done", r->params[0],
		    (long long)JI(row, "task_id"));
		json_decref(*spec);
		*spec = NULL;
		json_decref(row);
		return NULL;
	}
	if (!*running && strcmp(st, "stopped") != 0 && strcmp(st, "failed") != 0) {
		httpd_reply_error(r, 409, "vm %s is %s: change its NICs when it "
		    "runs or is stopped", r->params[0], st);
		json_decref(*spec);
		*spec = NULL;
		json_decref(row);
		return NULL;
	}
	return row;
}

/* Add nic to (or, nic NULL, drop the NIC of mac from) the VM's spec as it
 * is in the inventory now, in one transaction: another NIC change of the
 * same VM may have saved the spec since this request read it. 0, or -1
 * with an HTTP status and a message. */
static int
api_nic_save(const char *uuid, json_t *nic, const char *mac, int *status,
    char *err, size_t errsz)
{
	json_t *row = NULL, *spec = NULL, *nics, *e;
	size_t i;
	int rc = -1;

	*status = 500;
	if (db_begin() < 0) {
		snprintf(err, errsz, "cannot record the NIC change");
		return -1;
	}
	if ((row = db_row("SELECT spec FROM vms WHERE uuid = ?", "s",
	    uuid)) == NULL || (spec = vm_spec(row)) == NULL) {
		*status = 404;
		snprintf(err, errsz, "the VM is gone");
		goto cleanup;
	}
	if (!json_is_array(nics = json_object_get(spec, "nics"))) {
		nics = json_array();
		json_object_set_new(spec, "nics", nics);
	}
	if (nic != NULL && json_array_size(nics) >= VNET_MAX_NICS) {
		*status = 409;
		snprintf(err, errsz, "the VM has %d NICs, the most it can have",
		    VNET_MAX_NICS);
		goto cleanup;
	}
	if (nic != NULL) {
		json_array_append(nics, nic);
	} else {
		json_array_foreach(nics, i, e) {
			if (JS(e, "mac") && strcmp(JS(e, "mac"), mac) == 0) {
				json_array_remove(nics, i);
				break;
			}
		}
	}
	if (storops_save_spec(uuid, spec) < 0) {
		snprintf(err, errsz, "cannot record the NIC change");
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (rc == 0 && db_commit() < 0) {
		*status = 500;
		snprintf(err, errsz, "cannot record the NIC change");
		rc = -1;
	} else if (rc < 0) {
		db_rollback();
	}
	json_decref(spec);
	json_decref(row);
	return rc;
}

/* The agent's part of a hot-(un)plug; reply (may be NULL) gets its answer
 * ({nic, nics}: the NIC as the VM has it, with its PCI port). */
static int
api_nic_agent(struct httpd_req *r, json_t *row, const char *method,
    const char *suffix, json_t *body, json_t **reply)
{
	char path[192], err[512];
	int status = 0;

	if (util_fmt(path, sizeof(path), "/agent/v1/vms/%s/nics%s",
	    JS(row, "uuid"), suffix) < 0 ||
	    agentc_call(JS(row, "host"), method, path, body, 30000, &status,
	    reply, err, sizeof(err)) < 0 || status >= 400) {
		httpd_reply_error(r, status >= 400 && status < 500 ? 409 : 502,
		    "host %s: %s", JS(row, "host"), err);
		return -1;
	}
	return 0;
}

/* Undo a hot-plug the inventory could not record (best effort). */
static void
api_nic_unplug_back(json_t *row, const char *mac)
{
	char path[192], err[512];
	int status = 0;

	if (util_fmt(path, sizeof(path), "/agent/v1/vms/%s/nics/%s",
	    JS(row, "uuid"), mac) < 0 || agentc_call(JS(row, "host"), "DELETE",
	    path, NULL, 30000, &status, NULL, err, sizeof(err)) < 0 ||
	    status >= 400)
		log_warnx("vm %s: NIC %s stays plugged on host %s: %s",
		    JS(row, "name"), mac, JS(row, "host"), status >= 400 ?
		    "the agent refused to unplug it" : err);
}

static int
api_nic_add(struct httpd_req *r)
{
	static const char *const fields[] = { "network", "mac", "ip", "model",
	    NULL };
	const char *net, *mac, *ip, *model;
	json_t *row, *spec = NULL, *nic = NULL, *out, *reply = NULL;
	char err[256];
	int running = 0, status;

	if ((row = api_nic_vm(r, &spec, &running)) == NULL)
		return 0;
	if (r->body == NULL || api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "network", 255, &net) < 0 ||
	    api_str_field(r, "mac", 17, &mac) < 0 ||
	    api_str_field(r, "ip", 15, &ip) < 0 ||
	    api_str_field(r, "model", 16, &model) < 0) {
		if (!r->status)
			httpd_reply_error(r, 400, "body {\"network\": NAME} required");
		goto cleanup;
	}
	if (net == NULL) {
		httpd_reply_error(r, 400, "network is required");
		goto cleanup;
	}
	if (model && strcmp(model, "virtio") != 0) {
		httpd_reply_error(r, 400, "model must be virtio");
		goto cleanup;
	}
	if (json_array_size(json_object_get(spec, "nics")) >= VNET_MAX_NICS) {
		httpd_reply_error(r, 409, "vm %s has %d NICs, the most it can have",
		    r->params[0], VNET_MAX_NICS);
		goto cleanup;
	}
	nic = json_pack("{s:s}", "network", net);
	if (mac)
		json_object_set_new(nic, "mac", json_string(mac));
	if (ip)
		json_object_set_new(nic, "ip", json_string(ip));
	if (vnet_nic_add(spec, nic, &status, err, sizeof(err)) < 0) {
		httpd_reply_error(r, status, "%s", err);
		goto cleanup;
	}
	if (running && api_nic_agent(r, row, "POST", "", nic, &reply) < 0) {
		vnet_nics_release(JS(row, "uuid"), JS(nic, "mac"));
		goto cleanup;
	}
	/* Keep the port the agent gave it: a migration's destination puts
	 * the NIC at the same PCI address. */
	if (json_is_integer(json_object_get(json_object_get(reply, "nic"),
	    "port")))
		json_object_set(nic, "port", json_object_get(json_object_get(
		    reply, "nic"), "port"));
	if (api_nic_save(JS(row, "uuid"), nic, NULL, &status, err,
	    sizeof(err)) < 0) {
		httpd_reply_error(r, status, "%s", err);
		if (running)
			api_nic_unplug_back(row, JS(nic, "mac"));
		vnet_nics_release(JS(row, "uuid"), JS(nic, "mac"));
		goto cleanup;
	}
	event_add("info", "vm.nic.added", r->params[0], "vm %s: NIC %s on "
	    "network %s%s%s added%s by %s", r->params[0], JS(nic, "mac"), net,
	    JS(nic, "ip") ? ", ip " : "", JS(nic, "ip") ? JS(nic, "ip") : "",
	    running ? " (hot-plugged)" : "", r->principal);
	json_decref(row);
	row = vm_find(r->params[0]);
	out = row ? vm_json(row) : json_object();
	httpd_reply_json(r, 201, out);
cleanup:
	json_decref(reply);
	json_decref(nic);
	json_decref(spec);
	json_decref(row);
	return 0;
}

static int
api_nic_remove(struct httpd_req *r)
{
	json_t *row, *spec = NULL, *nics, *nic = NULL;
	char suffix[32], err[256], mac[18];
	int running = 0, status;
	size_t i;

	if ((row = api_nic_vm(r, &spec, &running)) == NULL)
		return 0;
	nics = json_object_get(spec, "nics");
	json_array_foreach(nics, i, nic)
		if (JS(nic, "mac") && strcasecmp(JS(nic, "mac"), r->params[1]) == 0)
			break;
	if (i == json_array_size(nics)) {
		httpd_reply_error(r, 404, "vm %s has no NIC %.32s", r->params[0],
		    r->params[1]);
		goto cleanup;
	}
	/* The spec's spelling (lower case) from here on. */
	if (util_fmt(mac, sizeof(mac), "%s", JS(nic, "mac")) < 0) {
		httpd_reply_error(r, 500, "vm %s: a NIC with a malformed MAC",
		    r->params[0]);
		goto cleanup;
	}
	snprintf(suffix, sizeof(suffix), "/%s", mac);
	if (running && api_nic_agent(r, row, "DELETE", suffix, NULL, NULL) < 0)
		goto cleanup;
	if (api_nic_save(JS(row, "uuid"), NULL, mac, &status, err,
	    sizeof(err)) < 0) {
		httpd_reply_error(r, status, "%s", err);
		goto cleanup;
	}
	vnet_nics_release(JS(row, "uuid"), mac);
	event_add("info", "vm.nic.removed", r->params[0], "vm %s: NIC %s "
	    "removed%s by %s", r->params[0], mac,
	    running ? " (hot-unplugged)" : "", r->principal);
	json_decref(row);
	row = vm_find(r->params[0]);
	httpd_reply_json(r, 200, row ? vm_json(row) : json_object());
cleanup:
	json_decref(spec);
	json_decref(row);
	return 0;
}

const struct httpd_route api_network_routes[] = {
	{ "GET",    "/api/v1/networks",          api_net_list,   0, ROLE_VIEWER },
	{ "POST",   "/api/v1/networks",          api_net_create, 0, ROLE_ADMIN },
	{ "GET",    "/api/v1/networks/{}",       api_net_show,   0, ROLE_VIEWER },
	{ "DELETE", "/api/v1/networks/{}",       api_net_delete, 0, ROLE_ADMIN },
	{ "POST",   "/api/v1/vms/{}/nics",       api_nic_add,    0, ROLE_OPERATOR },
	{ "DELETE", "/api/v1/vms/{}/nics/{}",    api_nic_remove, 0, ROLE_OPERATOR },
};
const size_t api_network_nroutes = sizeof(api_network_routes) /
    sizeof(api_network_routes[0]);
