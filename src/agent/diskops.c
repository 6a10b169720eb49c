/* diskops.c - a VM's disks after creation: add a blank disk (VM stopped),
 * grow a disk (QMP block_resize while it runs, qemu-img resize otherwise).
 * Like blockops.c, each takes the manager's spec and gives the new one. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "storage/qimg.h"
#include "storage/store.h"

static const char *
js(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static json_t *
disk_find(json_t *spec, const char *name, size_t *idx)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if (strcmp(js(d, "name"), name) == 0) {
			*idx = i;
			return d;
		}
	}
	return NULL;
}

int
disk_add(json_t *spec, int64_t size_mib, json_t **out, char *err,
    size_t errsz, int *status)
{
	const char *root = vmhost_storage_path(js(spec, "storage"));
	char name[16], file[32], path[PATH_MAX];
	struct avm *vm;
	json_t *ns;
	size_t idx;
	int n;

	*status = 400;
	if (root == NULL) {
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    js(spec, "storage"), agent_cfg.name);
		return -1;
	}
	if ((vm = vmhost_get(js(spec, "uuid"))) != NULL) {
		vmhost_put(vm);
		snprintf(err, errsz, "vm \"%s\" is running: stop it to add a disk",
		    js(spec, "name"));
		*status = 409;
		return -1;
	}
	for (n = 0; n < QEMU_MAX_DISKS; n++) {
		snprintf(name, sizeof(name), "disk%d", n);
		if (disk_find(spec, name, &idx) == NULL)
			break;
	}
	if (n == QEMU_MAX_DISKS ||
	    json_array_size(json_object_get(spec, "disks")) >= QEMU_MAX_DISKS - 2) {
		snprintf(err, errsz, "vm \"%s\" has the most disks it can have",
		    js(spec, "name"));
		*status = 409;
		return -1;
	}
	snprintf(file, sizeof(file), "%s.qcow2", name);
	*status = 500;
	if (store_disk_path(root, js(spec, "uuid"), file, path, sizeof(path)) < 0 ||
	    qimg_create(path, size_mib << 20, NULL, err, errsz) < 0)
		return -1;
	ns = json_deep_copy(spec);
	json_array_append_new(json_object_get(ns, "disks"), json_pack("{s:s, s:s,"
	    " s:s, s:I}", "name", name, "file", file, "format", "qcow2",
	    "size_mib", (json_int_t)size_mib));
	if (store_vm_write_meta(root, ns, err, errsz) < 0)
		log_warnx("vm %s: %s", js(spec, "name"), err);
	*out = json_pack("{s:o, s:s}", "spec", ns, "disk", name);
	*status = 200;
	return 0;
}

int
disk_resize(json_t *spec, const char *disk, int64_t size_mib, json_t **out,
    char *err, size_t errsz, int *status)
{
	const char *root = vmhost_storage_path(js(spec, "storage")), *node;
	char path[PATH_MAX], want[64];
	json_t *d, *ns = NULL, *qb = NULL, *b;
	struct avm *vm = NULL;
	size_t idx, k;
	int rc = -1;

	*status = 404;
	if (root == NULL || (d = disk_find(spec, disk, &idx)) == NULL) {
		snprintf(err, errsz, root ? "disk \"%s\" not found" :
		    "storage not attached here", disk);
		goto cleanup;
	}
	*status = 400;
	if (size_mib <= json_integer_value(json_object_get(d, "size_mib"))) {
		snprintf(err, errsz, "disk %s is %lld MiB: it can only grow", disk,
		    (long long)json_integer_value(json_object_get(d, "size_mib")));
		goto cleanup;
	}
	*status = 500;
	if ((vm = vmhost_get(js(spec, "uuid"))) != NULL) {
		if (blk_qmp(vm, "query-block", NULL, &qb, err, errsz) < 0)
			goto cleanup;
		node = NULL;
		snprintf(want, sizeof(want), "/machine/peripheral/virtio-disk%zu/",
		    idx);
		json_array_foreach(qb, k, b)
			if (strncmp(js(b, "qdev"), want, strlen(want)) == 0)
				node = json_string_value(json_object_get(
				    json_object_get(b, "inserted"), "node-name"));
		if (node == NULL) {
			snprintf(err, errsz, "disk %s is not attached", disk);
			goto cleanup;
		}
		if (blk_qmp(vm, "block_resize", json_pack("{s:s, s:I}", "node-name",
		    node, "size", (json_int_t)(size_mib << 20)), NULL, err,
		    errsz) < 0)
			goto cleanup;
	} else if (store_disk_path(root, js(spec, "uuid"), js(d, "file"), path,
	    sizeof(path)) < 0 || qimg_resize(path, size_mib, err, errsz) < 0) {
		goto cleanup;
	}
	ns = json_deep_copy(spec);
	json_object_set_new(json_array_get(json_object_get(ns, "disks"), idx),
	    "size_mib", json_integer(size_mib));
	if (store_vm_write_meta(root, ns, err, errsz) < 0)
		log_warnx("vm %s: %s", js(spec, "name"), err);
	*out = json_pack("{s:O}", "spec", ns);
	*status = 200;
	rc = 0;
cleanup:
	json_decref(ns);
	json_decref(qb);
	vmhost_put(vm);
	return rc;
}
