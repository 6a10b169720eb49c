/* nicops.c - a VM's vNICs on this host: TAPs for its QEMU command line,
 * hot-plug and unplug over QMP, the TAPs' release when QEMU has ended.
 *
 * Every NIC sits behind its own PCIe root port (qemu_cmd.h): port k holds
 * netdev net<k> and device nic<k>. The port is kept in the VM metadata's
 * nic object ("port") so a restart or a migration's destination puts a
 * hot-plugged NIC at the same PCI address. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "net/net.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qmp.h"
#include "storage/store.h"

#define NIC_UNPLUG_MS	10000	/* guest's time to release an unplugged NIC */

/* One read-modify-write of a VM's metadata file at a time: two hot-plugs
 * of one VM would each write back the list they read. */
static pthread_mutex_t nic_meta_lock = PTHREAD_MUTEX_INITIALIZER;

_Static_assert(AGENT_MAX_NICS == QEMU_MAX_NICS, "one root port per NIC");

static const char *
nic_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* QEMU's user-mode network (slirp), no TAP: a NIC the manager stamped
 * with its network's "type" user, and, in specs from before that stamp,
 * no network or the built-in "user". */
static int
nic_is_user(json_t *nic)
{
	const char *net = nic_str(nic, "network"), *type = nic_str(nic, "type");

	if (type[0] != '\0')
		return strcmp(type, "user") == 0;
	return net[0] == '\0' || strcmp(net, "user") == 0;
}

/* The lowest root port not used by vm->nics (call with vm->lock); -1. */
static int
nic_free_port_locked(const struct avm *vm)
{
	int p, i, used;

	for (p = 0; p < AGENT_MAX_NICS; p++) {
		for (used = 0, i = 0; i < vm->nnics && !used; i++)
			used = vm->nics[i].port == p;
		if (!used)
			return p;
	}
	return -1;
}

static int
nic_find_locked(const struct avm *vm, const char *mac)
{
	int i;

	for (i = 0; i < vm->nnics; i++)
		if (strcasecmp(vm->nics[i].mac, mac) == 0)
			return i;
	return -1;
}

/* The "port" of the NIC with this MAC in a nics list, or -1. */
static json_int_t
nic_port_of(json_t *nics, const char *mac)
{
	json_t *e, *jp;
	size_t i;

	json_array_foreach(nics, i, e) {
		if (strcasecmp(nic_str(e, "mac"), mac) != 0)
			continue;
		jp = json_object_get(e, "port");
		return json_is_integer(jp) ? json_integer_value(jp) : -1;
	}
	return -1;
}

/* Ports for the spec's NICs: the spec's own "port", else the one the VM's
 * metadata on storage recorded for that MAC (a hot-plugged NIC, or a
 * migration's destination: the source wrote it), else the lowest free.
 * -1 when there are too many NICs. */
static int
nic_assign_ports(json_t *nics, json_t *recorded, int *ports, size_t n)
{
	int taken[AGENT_MAX_NICS] = { 0 };
	size_t i;
	int p, pass;

	if (n > AGENT_MAX_NICS)
		return -1;
	for (i = 0; i < n; i++)
		ports[i] = -1;
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			json_t *nic = json_array_get(nics, i), *jp;
			json_int_t v;

			jp = json_object_get(nic, "port");
			v = pass == 0 ? (json_is_integer(jp) ?
			    json_integer_value(jp) : -1) :
			    nic_port_of(recorded, nic_str(nic, "mac"));
			if (ports[i] < 0 && v >= 0 && v < AGENT_MAX_NICS &&
			    !taken[v]) {
				ports[i] = (int)v;
				taken[v] = 1;
			}
		}
	}
	for (i = 0; i < n; i++) {
		for (p = 0; ports[i] < 0 && p < AGENT_MAX_NICS; p++) {
			if (!taken[p]) {
				ports[i] = p;
				taken[p] = 1;
			}
		}
	}
	return 0;
}

/* Fill n from a nic object; attaches its TAP unless it is user-mode. */
static int
nic_prepare(json_t *nic, int port, struct qemu_nic *n, char *err,
    size_t errsz)
{
	const char *mac = nic_str(nic, "mac");
	char buf[128];

	memset(n, 0, sizeof(*n));
	n->port = port;
	if (!net_mac_valid(mac)) {
		snprintf(err, errsz, "invalid NIC MAC address \"%.20s\"", mac);
		return -1;
	}
	snprintf(n->mac, sizeof(n->mac), "%s", mac);
	if (nic_is_user(nic)) {
		snprintf(n->type, sizeof(n->type), "user");
		/* A named user network's subnet: slirp's net= (checked by
		 * qemu_nic_netdev, as every option is). */
		if (util_fmt(n->net, sizeof(n->net), "%s",
		    nic_str(nic, "subnet")) < 0 ||
		    qemu_nic_netdev(n, buf, sizeof(buf)) < 0) {
			snprintf(err, errsz, "invalid NIC subnet \"%.20s\"",
			    nic_str(nic, "subnet"));
			return -1;
		}
		return 0;
	}
	snprintf(n->type, sizeof(n->type), "tap");
	/* vhost-net only helps (and only works) with KVM; a host without
	 * the vhost_net module keeps QEMU's own packet path. */
	n->vhost = strcmp(agent_cfg.accel, "kvm") == 0 &&
	    access("/dev/vhost-net", R_OK | W_OK) == 0;
	return net_tap_attach(nic_str(nic, "network"), mac, n->ifname,
	    sizeof(n->ifname), err, errsz);
}

int
nic_qemu_spec(struct avm *vm, json_t *spec, struct qemu_vm_spec *q,
    char *err, size_t errsz)
{
	json_t *nics = json_object_get(spec, "nics"), *nic, *meta = NULL;
	const char *root = vmhost_storage_path(vm->storage);
	int ports[AGENT_MAX_NICS];
	size_t i, n = json_array_size(nics);
	int rc = -1;

	q->nnics = 0;
	if (nics != NULL && !json_is_array(nics)) {
		snprintf(err, errsz, "VM spec: nics must be a list");
		return -1;
	}
	if (root)
		meta = store_vm_read_meta(root, vm->uuid);
	if (nic_assign_ports(nics, json_object_get(meta, "nics"), ports,
	    n) < 0) {
		snprintf(err, errsz, "a VM has at most %d NICs", AGENT_MAX_NICS);
		goto cleanup;
	}
	json_array_foreach(nics, i, nic) {
		if (nic_prepare(nic, ports[i], &q->nics[i], err, errsz) < 0)
			goto cleanup;
		q->nnics++;
		/* Kept in the metadata written at start (not by a migration's
		 * destination: the source's already says the same). */
		json_object_set_new(nic, "port", json_integer(ports[i]));
	}
	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < n; i++) {
		snprintf(vm->nics[i].mac, sizeof(vm->nics[i].mac), "%s",
		    q->nics[i].mac);
		vm->nics[i].port = q->nics[i].port;
		vm->nics[i].tap = strcmp(q->nics[i].type, "tap") == 0;
		vm->nics[i].deleted = 0;
	}
	vm->nnics = (int)n;
	pthread_mutex_unlock(&vm->lock);
	rc = 0;
cleanup:
	json_decref(meta);
	if (rc < 0) {
		for (i = 0; i < (size_t)q->nnics; i++)
			if (strcmp(q->nics[i].type, "tap") == 0)
				net_tap_detach(q->nics[i].mac);
		q->nnics = 0;
	}
	return rc;
}

void
nic_release(struct avm *vm)
{
	char macs[AGENT_MAX_NICS][18];
	int i, n = 0;

	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < vm->nnics; i++)
		if (vm->nics[i].tap)
			snprintf(macs[n++], sizeof(macs[0]), "%s", vm->nics[i].mac);
	vm->nnics = 0;
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < n; i++)
		if (net_tap_detach(macs[i]) < 0)
			log_warnx("vm %s: cannot delete the TAP of NIC %s",
			    vm->name, macs[i]);
}

json_t *
nic_record(struct avm *vm)
{
	json_t *list = json_array();
	int i;

	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < vm->nnics; i++)
		json_array_append_new(list, json_pack("{s:s, s:i, s:b}", "mac",
		    vm->nics[i].mac, "port", vm->nics[i].port, "tap",
		    vm->nics[i].tap));
	pthread_mutex_unlock(&vm->lock);
	return list;
}

void
nic_record_load(struct avm *vm, json_t *list)
{
	json_t *e;
	size_t i;

	pthread_mutex_lock(&vm->lock);
	vm->nnics = 0;
	json_array_foreach(list, i, e) {
		json_int_t port = json_integer_value(json_object_get(e, "port"));
		struct avm_nic *n = &vm->nics[vm->nnics];

		if (vm->nnics >= AGENT_MAX_NICS)
			break;
		if (!net_mac_valid(nic_str(e, "mac")) || port < 0 ||
		    port >= AGENT_MAX_NICS)
			continue;
		snprintf(n->mac, sizeof(n->mac), "%s", nic_str(e, "mac"));
		n->port = (int)port;
		n->tap = json_is_true(json_object_get(e, "tap"));
		n->deleted = 0;
		vm->nnics++;
	}
	pthread_mutex_unlock(&vm->lock);
}

void
nic_device_deleted(struct avm *vm, json_t *data)
{
	const char *dev = nic_str(data, "device");
	int i;

	/* Only our NIC devices ("nic<port>"); their backends come too. */
	if (strncmp(dev, "nic", 3) != 0 || !isdigit((unsigned char)dev[3]) ||
	    dev[4] != '\0')
		return;
	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < vm->nnics; i++)
		if (vm->nics[i].port == dev[3] - '0')
			vm->nics[i].deleted = 1;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

int
nic_qmp_plug(struct qmp *q, const struct qemu_nic *n, char *err,
    size_t errsz)
{
	char buf[256], id[16], qerr[256];
	json_t *nd = NULL, *dev = NULL;
	int rc = -1;

	/* The same checks and names as on a command line. */
	if (qemu_nic_netdev(n, buf, sizeof(buf)) < 0 ||
	    qemu_nic_device(n, buf, sizeof(buf)) < 0) {
		snprintf(err, errsz, "invalid NIC");
		return -1;
	}
	snprintf(id, sizeof(id), "net%d", n->port);
	if (strcmp(n->type, "tap") == 0)
		nd = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "tap", "id", id,
		    "ifname", n->ifname, "script", "no", "downscript", "no");
	else
		nd = json_pack("{s:s, s:s}", "type", "user", "id", id);
	if (nd && n->net[0] && strcmp(n->type, "user") == 0)
		json_object_set_new(nd, "net", json_string(n->net));
	if (nd && n->vhost && strcmp(n->type, "tap") == 0)
		json_object_set_new(nd, "vhost", json_true());
	dev = json_pack("{s:s, s:s, s:s, s:s+, s:s+}", "driver",
	    "virtio-net-pci", "netdev", id, "mac", n->mac, "id", "nic", id + 3,
	    "bus", "cvport", id + 3);
	if (nd == NULL || dev == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	if (qmp_command(q, "netdev_add", nd, 10000, NULL, err, errsz) < 0)
		goto cleanup;
	if (qmp_command(q, "device_add", dev, 10000, NULL, err, errsz) < 0) {
		json_decref(nd);
		nd = json_pack("{s:s}", "id", id);
		if (qmp_command(q, "netdev_del", nd, 10000, NULL, qerr,
		    sizeof(qerr)) < 0)
			log_warnx("NIC %s: %s", n->mac, qerr);
		goto cleanup;
	}
	rc = 0;
cleanup:
	json_decref(nd);
	json_decref(dev);
	return rc;
}

/* Wait until DEVICE_DELETED marked the NIC on port (vm->lock held). */
static int
nic_wait_deleted_locked(struct avm *vm, const char *mac, int timeout_ms)
{
	int64_t deadline = util_mono_ms() + timeout_ms;
	int i;

	for (;;) {
		if ((i = nic_find_locked(vm, mac)) < 0 || vm->nics[i].deleted)
			return 0;
		if (vm->exited || vmhost_cond_wait_locked(vm, deadline) < 0)
			return -1;
	}
}

int
nic_qmp_unplug(struct avm *vm, const char *mac, int timeout_ms, char *err,
    size_t errsz)
{
	char id[16];
	json_t *args = NULL;
	int i, port, rc = -1, gone;

	pthread_mutex_lock(&vm->lock);
	if ((i = nic_find_locked(vm, mac)) >= 0)
		vm->nics[i].deleted = 0;
	port = i >= 0 ? vm->nics[i].port : -1;
	pthread_mutex_unlock(&vm->lock);
	if (port < 0) {
		snprintf(err, errsz, "VM %s has no NIC %s", vm->name, mac);
		return -1;
	}
	snprintf(id, sizeof(id), "nic%d", port);
	args = json_pack("{s:s}", "id", id);
	if (qmp_command(vm->qmp, "device_del", args, 10000, NULL, err,
	    errsz) < 0)
		goto cleanup;
	/* The guest has to let go of the device (ACPI eject). */
	pthread_mutex_lock(&vm->lock);
	gone = nic_wait_deleted_locked(vm, mac, timeout_ms) == 0;
	pthread_mutex_unlock(&vm->lock);
	if (!gone) {
		snprintf(err, errsz, "the guest of VM %s did not release NIC %s "
		    "within %d s", vm->name, mac, timeout_ms / 1000);
		goto cleanup;
	}
	json_decref(args);
	snprintf(id, sizeof(id), "net%d", port);
	args = json_pack("{s:s}", "id", id);
	if (qmp_command(vm->qmp, "netdev_del", args, 10000, NULL, err,
	    errsz) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	json_decref(args);
	return rc;
}

/* vm.json with the NIC added (nic non-NULL) or the NIC of mac removed;
 * the new "nics" list goes to *out (new reference). */
static int
nic_meta_update(struct avm *vm, json_t *nic, const char *mac, json_t **out,
    char *err, size_t errsz)
{
	const char *root = vmhost_storage_path(vm->storage);
	json_t *meta = NULL, *nics, *e;
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&nic_meta_lock);
	if (root == NULL || (meta = store_vm_read_meta(root, vm->uuid)) == NULL) {
		snprintf(err, errsz, "cannot read the metadata of VM %s",
		    vm->name);
		goto cleanup;
	}
	if (!json_is_array(nics = json_object_get(meta, "nics"))) {
		nics = json_array();
		json_object_set_new(meta, "nics", nics);
	}
	if (nic) {
		json_array_append(nics, nic);
	} else {
		json_array_foreach(nics, i, e) {
			if (strcasecmp(nic_str(e, "mac"), mac) == 0) {
				json_array_remove(nics, i);
				break;
			}
		}
	}
	if (store_vm_write_meta(root, meta, err, errsz) < 0)
		goto cleanup;
	*out = json_incref(nics);
	rc = 0;
cleanup:
	pthread_mutex_unlock(&nic_meta_lock);
	json_decref(meta);
	return rc;
}

/* Running (or paused) and not moving between hosts. */
static int
nic_vm_ready(struct avm *vm, char *err, size_t errsz)
{
	int ok;

	pthread_mutex_lock(&vm->lock);
	ok = !vm->incoming && !vm->migrating && !vm->migrated && !vm->exited &&
	    (strcmp(vm->state, "running") == 0 ||
	    strcmp(vm->state, "paused") == 0);
	if (!ok)
		snprintf(err, errsz, "VM %s is %s: NICs change only while it "
		    "runs", vm->name, vm->state);
	pthread_mutex_unlock(&vm->lock);
	return ok ? 0 : -1;
}

/* Reserve a port for mac; -1 (with err, *status) when taken or full. */
static int
nic_reserve(struct avm *vm, const char *mac, int tap, char *err,
    size_t errsz, int *status)
{
	int port = -1;

	pthread_mutex_lock(&vm->lock);
	if (nic_find_locked(vm, mac) >= 0) {
		snprintf(err, errsz, "VM %s already has NIC %s", vm->name, mac);
		*status = 409;
	} else if ((port = nic_free_port_locked(vm)) < 0) {
		snprintf(err, errsz, "VM %s has %d NICs, the most it can have",
		    vm->name, AGENT_MAX_NICS);
		*status = 409;
	} else {
		struct avm_nic *n = &vm->nics[vm->nnics++];

		snprintf(n->mac, sizeof(n->mac), "%s", mac);
		n->port = port;
		n->tap = tap;
		n->deleted = 0;
	}
	pthread_mutex_unlock(&vm->lock);
	return port;
}

static void
nic_forget(struct avm *vm, const char *mac)
{
	int i;

	pthread_mutex_lock(&vm->lock);
	if ((i = nic_find_locked(vm, mac)) >= 0) {
		vm->nics[i] = vm->nics[vm->nnics - 1];
		vm->nnics--;
	}
	pthread_mutex_unlock(&vm->lock);
}

int
nic_plug(const char *uuid, json_t *nic, json_t **result, char *err,
    size_t errsz, int *status)
{
	struct avm *vm = NULL;
	struct qemu_nic n;
	json_t *rec = NULL, *nics = NULL;
	const char *mac = nic_str(nic, "mac");
	int port, reserved = 0, attached = 0, plugged = 0, rc = -1;
	char qerr[256];

	*status = 400;
	if (!json_is_object(nic) || !net_mac_valid(mac) ||
	    (json_object_get(nic, "network") &&
	    !json_is_string(json_object_get(nic, "network")))) {
		snprintf(err, errsz, "a NIC needs a valid \"mac\" and a "
		    "\"network\" name");
		goto cleanup;
	}
	*status = 404;
	if ((vm = vmhost_get(uuid)) == NULL) {
		snprintf(err, errsz, "VM %s is not running on host %s", uuid,
		    agent_cfg.name);
		goto cleanup;
	}
	*status = 409;
	if (nic_vm_ready(vm, err, errsz) < 0 ||
	    (port = nic_reserve(vm, mac, !nic_is_user(nic), err, errsz,
	    status)) < 0)
		goto cleanup;
	reserved = 1;
	if (nic_prepare(nic, port, &n, err, errsz) < 0)
		goto cleanup;
	attached = strcmp(n.type, "tap") == 0;
	*status = 502;
	if (nic_qmp_plug(vm->qmp, &n, err, errsz) < 0)
		goto cleanup;
	plugged = 1;
	rec = json_deep_copy(nic);
	json_object_set_new(rec, "port", json_integer(port));
	*status = 500;
	if (nic_meta_update(vm, rec, NULL, &nics, err, errsz) < 0 ||
	    vmhost_record_save(vm) < 0)
		goto cleanup;
	log_info("vm %s: NIC %s plugged (%s, port %d)", vm->name, n.mac,
	    n.type[0] == 't' ? n.ifname : "user", port);
	*result = json_pack("{s:O, s:O}", "nic", rec, "nics", nics);
	*status = 200;
	rc = 0;
cleanup:
	if (rc < 0 && plugged &&
	    nic_qmp_unplug(vm, mac, NIC_UNPLUG_MS, qerr, sizeof(qerr)) < 0)
		log_warnx("vm %s: %s", vm->name, qerr);
	if (rc < 0 && attached)
		net_tap_detach(mac);
	if (rc < 0 && reserved)
		nic_forget(vm, mac);
	json_decref(rec);
	json_decref(nics);
	vmhost_put(vm);
	return rc;
}

int
nic_unplug(const char *uuid, const char *mac, json_t **result, char *err,
    size_t errsz, int *status)
{
	struct avm *vm = NULL;
	json_t *nics = NULL;
	int i, tap = 0, rc = -1;

	*status = 400;
	if (!net_mac_valid(mac)) {
		snprintf(err, errsz, "invalid MAC address");
		goto cleanup;
	}
	*status = 404;
	if ((vm = vmhost_get(uuid)) == NULL) {
		snprintf(err, errsz, "VM %s is not running on host %s", uuid,
		    agent_cfg.name);
		goto cleanup;
	}
	pthread_mutex_lock(&vm->lock);
	if ((i = nic_find_locked(vm, mac)) >= 0)
		tap = vm->nics[i].tap;
	pthread_mutex_unlock(&vm->lock);
	if (i < 0) {
		snprintf(err, errsz, "VM %s has no NIC %s", vm->name, mac);
		goto cleanup;
	}
	*status = 409;
	if (nic_vm_ready(vm, err, errsz) < 0)
		goto cleanup;
	*status = 504;
	if (nic_qmp_unplug(vm, mac, NIC_UNPLUG_MS, err, errsz) < 0)
		goto cleanup;
	if (tap && net_tap_detach(mac) < 0)
		log_warnx("vm %s: cannot delete the TAP of NIC %s", vm->name, mac);
	nic_forget(vm, mac);
	*status = 500;
	if (nic_meta_update(vm, NULL, mac, &nics, err, errsz) < 0 ||
	    vmhost_record_save(vm) < 0)
		goto cleanup;
	log_info("vm %s: NIC %s unplugged", vm->name, mac);
	*result = json_pack("{s:O}", "nics", nics);
	*status = 200;
	rc = 0;
cleanup:
	json_decref(nics);
	vmhost_put(vm);
	return rc;
}

/* POST /agent/v1/vms/{uuid}/nics: body = one nic object. */
int
nicapi_plug(struct httpd_req *r)
{
	json_t *res = NULL;
	char err[512];
	int status = 500;

	if (r->nparams < 1 || !util_uuid_valid(r->params[0]))
		return httpd_reply_error(r, 400, "invalid VM uuid");
	if (nic_plug(r->params[0], r->body, &res, err, sizeof(err), &status) < 0)
		return httpd_reply_error(r, status, "%s", err);
	return httpd_reply_json(r, 200, res);
}

/* DELETE /agent/v1/vms/{uuid}/nics/{mac} */
int
nicapi_unplug(struct httpd_req *r)
{
	json_t *res = NULL;
	char err[512];
	int status = 500;

	if (r->nparams < 2 || !util_uuid_valid(r->params[0]))
		return httpd_reply_error(r, 400, "invalid VM uuid");
	if (nic_unplug(r->params[0], r->params[1], &res, err, sizeof(err),
	    &status) < 0)
		return httpd_reply_error(r, status, "%s", err);
	return httpd_reply_json(r, 200, res);
}
