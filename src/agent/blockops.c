/* blockops.c - snapshots of a VM's disks: copy-on-write qcow2 overlays.
 *
 * A disk's "file" in the spec is its active layer. Snapshot S records, per
 * disk, the overlay it created and that overlay's backing file (the frozen
 * state at S). Running VMs are snapshotted atomically across all disks with
 * one QMP transaction; stopped ones with qemu-img. Merging (snapshot delete)
 * is a block-commit job on a running VM. The spec written back is the truth
 * for the next start; vm.json mirrors it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qmp.h"
#include "storage/qimg.h"
#include "storage/store.h"

#define BLK_QMP_TIMEOUT 30000

/* qmp_command with args stolen (may be NULL). */
int
blk_qmp(struct avm *vm, const char *cmd, json_t *args, json_t **ret,
    char *err, size_t errsz)
{
	int rc = qmp_command(vm->qmp, cmd, args, BLK_QMP_TIMEOUT, ret, err,
	    errsz);

	json_decref(args);
	return rc;
}

static const char *
js(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* Root of the spec's storage domain, or NULL with err. */
static const char *
blk_root(json_t *spec, char *err, size_t errsz, int *status)
{
	const char *root = vmhost_storage_path(js(spec, "storage"));

	if (root == NULL || !util_uuid_valid(js(spec, "uuid"))) {
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    js(spec, "storage"), agent_cfg.name);
		*status = 400;
	}
	return root;
}

static json_t *
blk_find_snap(json_t *spec, const char *snap, size_t *idx)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(spec, "snapshots"), i, s) {
		if (strcmp(js(s, "name"), snap) == 0) {
			if (idx)
				*idx = i;
			return s;
		}
	}
	return NULL;
}

static json_t *
blk_find_disk(json_t *spec, const char *name)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(spec, "disks"), i, d)
		if (strcmp(js(d, "name"), name) == 0)
			return d;
	return NULL;
}

/* The root node of virtio disk idx from query-block, or NULL. */
static const char *
blk_root_node(json_t *qb, size_t idx)
{
	char want[64];
	json_t *b;
	size_t i;

	snprintf(want, sizeof(want), "/machine/peripheral/virtio-disk%zu/", idx);
	json_array_foreach(qb, i, b) {
		if (strncmp(js(b, "qdev"), want, strlen(want)) == 0)
			return json_string_value(json_object_get(json_object_get(
			    b, "inserted"), "node-name"));
	}
	return NULL;
}

/* The format node opened on path (query-named-block-nodes), or NULL. */
static const char *
blk_node_by_file(json_t *nodes, const char *path)
{
	json_t *n;
	size_t i;

	json_array_foreach(nodes, i, n)
		if (strcmp(js(n, "drv"), "qcow2") == 0 &&
		    strcmp(js(n, "file"), path) == 0)
			return json_string_value(json_object_get(n, "node-name"));
	return NULL;
}

static void
blk_snap_id(char out[9])
{
	util_random_hex(out, 4);
}

/* Overlay paths for a new snapshot of every disk; NULL-safe cleanup. */
struct blk_new {
	char	paths[QEMU_MAX_DISKS][PATH_MAX];
	int	n;
};

static void
blk_new_unlink(struct blk_new *nw)
{
	int i;

	for (i = 0; i < nw->n; i++)
		(void)unlink(nw->paths[i]);
}

/* Fill the snapshot's per-disk records, the QMP actions (running) or the
 * overlay files (stopped). */
static int
blk_snap_prepare(const char *root, json_t *spec, const char *id,
    struct avm *vm, json_t *sdisks, json_t *actions, struct blk_new *nw,
    char *err, size_t errsz)
{
	char ovfile[UTIL_NAME_MAX + 1], cur[PATH_MAX], nodename[32];
	const char *uuid = js(spec, "uuid");
	json_t *qb = NULL, *d;
	size_t i;
	int rc = -1;

	if (vm && qmp_command(vm->qmp, "query-block", NULL, BLK_QMP_TIMEOUT,
	    &qb, err, errsz) < 0)
		goto cleanup;
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		const char *node = NULL;

		if (nw->n >= QEMU_MAX_DISKS ||
		    strcmp(js(d, "format"), "qcow2") != 0) {
			snprintf(err, errsz, "disk %s is not qcow2: it cannot "
			    "have snapshots", js(d, "name"));
			goto cleanup;
		}
		if (util_fmt(ovfile, sizeof(ovfile), "%s.%s.qcow2",
		    js(d, "name"), id) < 0 || store_disk_path(root, uuid, ovfile,
		    nw->paths[nw->n], sizeof(nw->paths[0])) < 0 ||
		    store_disk_path(root, uuid, js(d, "file"), cur,
		    sizeof(cur)) < 0) {
			snprintf(err, errsz, "invalid disk %s", js(d, "name"));
			goto cleanup;
		}
		if (vm && (node = blk_root_node(qb, i)) == NULL) {
			snprintf(err, errsz, "disk %s is not attached to the "
			    "running VM", js(d, "name"));
			goto cleanup;
		}
		nw->n++;
		if (vm) {
			snprintf(nodename, sizeof(nodename), "d%zu-%s", i, id);
			json_array_append_new(actions, json_pack("{s:s, s:{s:s, "
			    "s:s, s:s, s:s, s:s}}", "type", "blockdev-snapshot-sync",
			    "data", "node-name", node, "snapshot-file",
			    nw->paths[nw->n - 1], "snapshot-node-name", nodename,
			    "format", "qcow2", "mode", "absolute-paths"));
		} else if (qimg_create(nw->paths[nw->n - 1], 0, cur, err,
		    errsz) < 0) {
			goto cleanup;
		}
		json_array_append_new(sdisks, json_pack("{s:s, s:s, s:s}", "disk",
		    js(d, "name"), "overlay", ovfile, "backing", js(d, "file")));
	}
	rc = 0;
cleanup:
	json_decref(qb);
	return rc;
}

static void
blk_write_meta(const char *root, json_t *spec)
{
	char err[256];

	/* The manager's copy is the truth; vm.json is rewritten at start. */
	if (store_vm_write_meta(root, spec, err, sizeof(err)) < 0)
		log_warnx("vm %s: %s", js(spec, "name"), err);
}

int
blk_snapshot_create(json_t *spec, const char *snap, json_t **out, char *err,
    size_t errsz, int *status)
{
	/* 64 KiB of paths: not on a server thread's small stack. */
	struct blk_new *nw = calloc(1, sizeof(*nw));
	json_t *ns = NULL, *sdisks = json_array(), *actions = json_array();
	json_t *rec = NULL, *d;
	struct avm *vm = NULL;
	const char *root;
	char id[9], when[40];
	int64_t now;
	size_t i;
	int rc = -1;

	if (nw == NULL) {
		snprintf(err, errsz, "out of memory");
		*status = 500;
		goto cleanup;
	}
	if ((root = blk_root(spec, err, errsz, status)) == NULL)
		goto cleanup;
	*status = 409;
	if (blk_find_snap(spec, snap, NULL) != NULL) {
		snprintf(err, errsz, "snapshot \"%s\" already exists", snap);
		goto cleanup;
	}
	if (json_array_size(json_object_get(spec, "disks")) == 0) {
		snprintf(err, errsz, "vm \"%s\" has no disks to snapshot",
		    js(spec, "name"));
		goto cleanup;
	}
	blk_snap_id(id);
	vm = vmhost_get(js(spec, "uuid"));
	*status = 500;
	if (blk_snap_prepare(root, spec, id, vm, sdisks, actions, nw, err,
	    errsz) < 0)
		goto cleanup;
	now = util_wall_ms();
	if (vm && blk_qmp(vm, "transaction", json_pack("{s:O}",
	    "actions", actions), NULL, err, errsz) < 0) {
		*status = 502;
		goto cleanup;
	}
	ns = json_deep_copy(spec);
	json_array_foreach(json_object_get(ns, "disks"), i, d)
		json_object_set(d, "file", json_object_get(json_array_get(sdisks,
		    i), "overlay"));
	util_time_iso(now, when, sizeof(when));
	rec = json_pack("{s:s, s:s, s:s, s:I, s:b, s:O}", "name", snap, "id", id,
	    "created", when, "created_ms", (json_int_t)now, "running", vm != NULL,
	    "disks", sdisks);
	if (!json_is_array(json_object_get(ns, "snapshots")))
		json_object_set_new(ns, "snapshots", json_array());
	json_array_append(json_object_get(ns, "snapshots"), rec);
	blk_write_meta(root, ns);
	*out = json_pack("{s:O, s:O}", "spec", ns, "snapshot", rec);
	log_info("vm %s: snapshot %s taken (%s)", js(spec, "name"), snap,
	    vm ? "running" : "stopped");
	*status = 200;
	rc = 0;
cleanup:
	if (rc < 0 && nw)
		blk_new_unlink(nw);
	free(nw);
	vmhost_put(vm);
	json_decref(ns);
	json_decref(rec);
	json_decref(sdisks);
	json_decref(actions);
	return rc;
}

/* Overlay files of the snapshots from index k on (to drop on revert). */
static void
blk_unlink_from(const char *root, const char *uuid, json_t *snaps, size_t k)
{
	char path[PATH_MAX];
	json_t *s, *sd;
	size_t i, j;

	for (i = k; i < json_array_size(snaps); i++) {
		s = json_array_get(snaps, i);
		json_array_foreach(json_object_get(s, "disks"), j, sd)
			if (store_disk_path(root, uuid, js(sd, "overlay"), path,
			    sizeof(path)) == 0)
				(void)unlink(path);
	}
}

int
blk_snapshot_revert(json_t *spec, const char *snap, json_t **out, char *err,
    size_t errsz, int *status)
{
	struct blk_new *nw = calloc(1, sizeof(*nw));
	char id[9], ovfile[UTIL_NAME_MAX + 1], back[PATH_MAX];
	json_t *ns = NULL, *s, *sd, *snaps;
	struct avm *vm;
	const char *root, *uuid = js(spec, "uuid");
	size_t k, i;
	int rc = -1;

	if (nw == NULL) {
		snprintf(err, errsz, "out of memory");
		*status = 500;
		goto cleanup;
	}
	if ((root = blk_root(spec, err, errsz, status)) == NULL)
		goto cleanup;
	*status = 404;
	if (blk_find_snap(spec, snap, &k) == NULL) {
		snprintf(err, errsz, "snapshot \"%s\" not found", snap);
		goto cleanup;
	}
	*status = 409;
	if ((vm = vmhost_get(uuid)) != NULL) {
		vmhost_put(vm);
		snprintf(err, errsz, "vm \"%s\" is running: stop it before a "
		    "revert", js(spec, "name"));
		goto cleanup;
	}
	*status = 500;
	ns = json_deep_copy(spec);
	snaps = json_object_get(ns, "snapshots");
	s = json_array_get(snaps, k);
	blk_snap_id(id);
	/* A fresh overlay on the frozen state, under a new name, so that a
	 * crash before the spec is written leaves the old chain intact. */
	json_array_foreach(json_object_get(s, "disks"), i, sd) {
		json_t *d = blk_find_disk(ns, js(sd, "disk"));

		if (d == NULL)
			continue;	/* disk removed since */
		if (nw->n >= QEMU_MAX_DISKS ||
		    util_fmt(ovfile, sizeof(ovfile), "%s.%s.qcow2", js(sd, "disk"),
		    id) < 0 || store_disk_path(root, uuid, ovfile, nw->paths[nw->n],
		    sizeof(nw->paths[0])) < 0 || store_disk_path(root, uuid,
		    js(sd, "backing"), back, sizeof(back)) < 0) {
			snprintf(err, errsz, "invalid disk %s", js(sd, "disk"));
			goto cleanup;
		}
		if (qimg_create(nw->paths[nw->n], 0, back, err, errsz) < 0)
			goto cleanup;
		nw->n++;
		json_object_set_new(d, "file", json_string(ovfile));
	}
	/* Old overlays of S and later go once the new spec is in place. */
	blk_write_meta(root, ns);
	blk_unlink_from(root, uuid, json_object_get(spec, "snapshots"), k);
	json_array_foreach(json_object_get(s, "disks"), i, sd) {
		json_t *d = blk_find_disk(ns, js(sd, "disk"));
		if (d)
			json_object_set(sd, "overlay", json_object_get(d, "file"));
	}
	while (json_array_size(snaps) > k + 1)
		json_array_remove(snaps, k + 1);
	blk_write_meta(root, ns);
	*out = json_pack("{s:O}", "spec", ns);
	log_info("vm %s: reverted to snapshot %s", js(spec, "name"), snap);
	*status = 200;
	rc = 0;
cleanup:
	if (rc < 0 && nw)
		blk_new_unlink(nw);
	free(nw);
	json_decref(ns);
	return rc;
}

/* Wait for block jobs ids to end (completing ready ones, as an active
 * commit needs), report progress between p0 and p1, dismiss them. On a
 * failed job the others are cancelled. 0 when every job succeeded. */
int
blk_jobs_wait(struct avm *vm, json_t *ids, struct ajob *j, int p0, int p1,
    char *err, size_t errsz)
{
	char qerr[256] = "", first[512] = "";
	json_t *jobs = NULL, *q, *id;
	int64_t wait_ms = 2;
	size_t i, k;
	int cancelled = 0, done;

	for (;;) {
		uint64_t cur = 0, tot = 0;

		json_decref(jobs);
		jobs = NULL;
		if (qmp_command(vm->qmp, "query-jobs", NULL, BLK_QMP_TIMEOUT,
		    &jobs, err, errsz) < 0)
			return -1;
		done = 0;
		json_array_foreach(ids, i, id) {
			json_t *found = NULL;
			json_array_foreach(jobs, k, q)
				if (strcmp(js(q, "id"), json_string_value(id)) == 0)
					found = q;
			if (found == NULL) {
				snprintf(first, sizeof(first), "block job %s "
				    "vanished", json_string_value(id));
				done++;
				continue;
			}
			cur += (uint64_t)json_integer_value(json_object_get(found,
			    "current-progress"));
			tot += (uint64_t)json_integer_value(json_object_get(found,
			    "total-progress"));
			if (strcmp(js(found, "status"), "ready") == 0)
				blk_qmp(vm, "job-complete", json_pack(
				    "{s:O}", "id", id), NULL, qerr,
				    sizeof(qerr));
			if (strcmp(js(found, "status"), "concluded") == 0) {
				done++;
				if (json_object_get(found, "error") && !first[0])
					snprintf(first, sizeof(first), "%s",
					    js(found, "error"));
			}
		}
		if (j && tot > 0)
			ajob_progress(j, p0 + (int)((p1 - p0) * (double)cur /
			    (double)tot));
		if (done == (int)json_array_size(ids))
			break;
		if (first[0] && !cancelled) {
			json_array_foreach(ids, i, id)
				blk_qmp(vm, "job-cancel", json_pack("{s:O}",
				    "id", id), NULL, qerr,
				    sizeof(qerr));
			cancelled = 1;
		}
		util_sleep_ms(wait_ms);
		if (wait_ms < 20)
			wait_ms *= 2;
	}
	json_decref(jobs);
	json_array_foreach(ids, i, id)
		blk_qmp(vm, "job-dismiss", json_pack("{s:O}", "id", id),
		    NULL, qerr, sizeof(qerr));
	if (first[0]) {
		snprintf(err, errsz, "%s", first);
		return -1;
	}
	return 0;
}

/* Merge one disk's overlay of snapshot S into its backing file. next is the
 * same disk's record in the snapshot after S (NULL when S is the last). */
static int
blk_merge_disk(struct avm *vm, const char *root, json_t *ns, json_t *sd,
    json_t *next, size_t didx, struct ajob *j, char *err, size_t errsz)
{
	const char *uuid = js(ns, "uuid");
	char top[PATH_MAX], base[PATH_MAX], nextp[PATH_MAX], jid[48];
	json_t *d = blk_find_disk(ns, js(sd, "disk")), *nodes = NULL, *qb = NULL;
	json_t *ids = NULL;
	const char *tnode, *bnode, *rnode;
	int active, rc = -1;

	if (d == NULL)
		return 0;
	active = strcmp(js(d, "file"), js(sd, "overlay")) == 0;
	if (store_disk_path(root, uuid, js(sd, "overlay"), top, sizeof(top)) < 0 ||
	    store_disk_path(root, uuid, js(sd, "backing"), base, sizeof(base)) < 0 ||
	    (next && store_disk_path(root, uuid, js(next, "overlay"), nextp,
	    sizeof(nextp)) < 0)) {
		snprintf(err, errsz, "invalid disk %s", js(sd, "disk"));
		goto cleanup;
	}
	if (!active && next == NULL) {
		snprintf(err, errsz, "disk %s: snapshot chain is inconsistent",
		    js(sd, "disk"));
		goto cleanup;
	}
	if (vm) {
		if (blk_qmp(vm, "query-named-block-nodes", json_pack(
		    "{s:b}", "flat", 1), &nodes, err, errsz) < 0 ||
		    qmp_command(vm->qmp, "query-block", NULL, BLK_QMP_TIMEOUT, &qb,
		    err, errsz) < 0)
			goto cleanup;
		tnode = blk_node_by_file(nodes, top);
		bnode = blk_node_by_file(nodes, base);
		rnode = blk_root_node(qb, didx);
		if (tnode == NULL || bnode == NULL || rnode == NULL) {
			snprintf(err, errsz, "disk %s: snapshot files are not "
			    "open in the running VM", js(sd, "disk"));
			goto cleanup;
		}
		snprintf(jid, sizeof(jid), "merge-%zu", didx);
		if (blk_qmp(vm, "block-commit", json_pack("{s:s, s:s, "
		    "s:s, s:s, s:b}", "job-id", jid, "device", rnode, "top-node",
		    tnode, "base-node", bnode, "auto-dismiss", 0),
		    NULL, err, errsz) < 0)
			goto cleanup;
		ids = json_pack("[s]", jid);
		if (blk_jobs_wait(vm, ids, j, 5, 95, err, errsz) < 0)
			goto cleanup;
	} else {
		if (qimg_commit(top, err, errsz) < 0 ||
		    (!active && qimg_rebase_unsafe(nextp, base, err, errsz) < 0))
			goto cleanup;
	}
	/* The data of the overlay now lives in its backing file. */
	if (active)
		json_object_set(d, "file", json_object_get(sd, "backing"));
	else
		json_object_set(next, "backing", json_object_get(sd, "backing"));
	(void)unlink(top);
	rc = 0;
cleanup:
	json_decref(ids);
	json_decref(nodes);
	json_decref(qb);
	return rc;
}

static json_t *
blk_snap_disk(json_t *snap, const char *disk, size_t *idx)
{
	json_t *sd;
	size_t i;

	json_array_foreach(json_object_get(snap, "disks"), i, sd) {
		if (strcmp(js(sd, "disk"), disk) == 0) {
			if (idx)
				*idx = i;
			return sd;
		}
	}
	return NULL;
}

static size_t
blk_disk_index(json_t *spec, const char *name)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(spec, "disks"), i, d)
		if (strcmp(js(d, "name"), name) == 0)
			return i;
	return (size_t)-1;
}

int
blk_snapshot_delete_job(struct ajob *j, json_t *args, json_t **result,
    char *err, size_t errsz)
{
	json_t *spec = json_object_get(args, "spec"), *ns, *snaps, *s, *n, *sd;
	const char *snap = js(args, "snapshot"), *root;
	struct avm *vm;
	size_t k, si;
	int status, rc = -1;

	if ((root = blk_root(spec, err, errsz, &status)) == NULL)
		return -1;
	if (blk_find_snap(spec, snap, &k) == NULL) {
		snprintf(err, errsz, "snapshot \"%s\" not found", snap);
		return -1;
	}
	ns = json_deep_copy(spec);
	snaps = json_object_get(ns, "snapshots");
	s = json_array_get(snaps, k);
	n = json_array_get(snaps, k + 1);	/* NULL when S is the last */
	vm = vmhost_get(js(spec, "uuid"));
	/* Per disk, so that a failure half-way leaves a true spec behind. */
	while ((sd = json_array_get(json_object_get(s, "disks"), 0)) != NULL) {
		json_t *next = n ? blk_snap_disk(n, js(sd, "disk"), NULL) : NULL;
		size_t didx = blk_disk_index(ns, js(sd, "disk"));

		if (blk_merge_disk(vm, root, ns, sd, next, didx, j, err,
		    errsz) < 0)
			goto cleanup;
		blk_snap_disk(s, js(sd, "disk"), &si);
		json_array_remove(json_object_get(s, "disks"), si);
	}
	json_array_remove(snaps, k);
	log_info("vm %s: snapshot %s deleted", js(spec, "name"), snap);
	rc = 0;
cleanup:
	blk_write_meta(root, ns);
	*result = json_pack("{s:O}", "spec", ns);
	json_decref(ns);
	vmhost_put(vm);
	return rc;
}
