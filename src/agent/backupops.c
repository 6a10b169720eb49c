/* backupops.c - full backups, disk copies (restore, clone) and image imports
 * on a storage domain. Everything is written under a temporary name and
 * renamed when complete, so a failure (ENOSPC, a dead VM) leaves nothing
 * half-written: the partial files are removed.
 *
 *   DOMAIN/backups/ID/{manifest.json, disk0.qcow2, ...}
 *   DOMAIN/images/NAME.qcow2
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qmp.h"
#include "storage/qimg.h"
#include "storage/store.h"

static const char *
js(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static const char *
bk_root(const char *storage, char *err, size_t errsz)
{
	const char *root = vmhost_storage_path(storage);

	if (root == NULL)
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    storage, agent_cfg.name);
	return root;
}

static void
bk_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Checksums of a backup's files, computed in a thread of their own so the
 * read (from the page cache) overlaps QEMU's final flush of the targets. */
struct bk_sum {
	json_t		*spec;
	const char	*dir;
	json_t		*disks;		/* [{name, file, size_bytes, sha256...}] */
	uint64_t	 total;
	int		 rc;
	char		 err[256];
	pthread_t	 th;
	int		 started;
};

static int bk_checksums(json_t *spec, const char *dir, json_t *disks,
    uint64_t *total, char *err, size_t errsz);

static void *
bk_sum_main(void *arg)
{
	struct bk_sum *s = arg;

	s->rc = bk_checksums(s->spec, s->dir, s->disks, &s->total, s->err,
	    sizeof(s->err));
	return NULL;
}

static void
bk_sum_start(struct bk_sum *s)
{
	if (s->started)
		return;
	if (pthread_create(&s->th, NULL, bk_sum_main, s) == 0)
		s->started = 1;
	else
		bk_sum_main(s);
	s->started = s->started ? 1 : -1;
}

/* Join (or run) the checksums; 0 when they were computed. */
static int
bk_sum_finish(struct bk_sum *s, char *err, size_t errsz)
{
	if (s->started == 0)
		bk_sum_main(s);
	else if (s->started == 1)
		pthread_join(s->th, NULL);
	s->started = -1;
	if (s->rc < 0)
		snprintf(err, errsz, "%s", s->err);
	return s->rc;
}

/* A guest write that had to copy old data into a full backup target
 * fails, and virtio-blk stops the VM on ENOSPC (QEMU's default werror)
 * with the write kept for a retry. The backup is gone now, so the retry
 * succeeds: resume the guest, as if the backup had never been there. */
static void
bk_resume_after_error(struct avm *vm)
{
	json_t *st = NULL;
	char qerr[256];

	if (blk_qmp(vm, "query-status", NULL, &st, qerr, sizeof(qerr)) == 0 &&
	    strcmp(js(st, "status"), "io-error") == 0) {
		log_warnx("vm %s: a guest write failed with the backup's target; "
		    "resuming it now the backup is gone", vm->name);
		if (blk_qmp(vm, "cont", NULL, NULL, qerr, sizeof(qerr)) < 0)
			log_warnx("vm %s: %s", vm->name, qerr);
	}
	json_decref(st);
}

/* Copies of a running VM's disks at one instant: one transaction of
 * blockdev-backup jobs, one per disk, into pre-created qcow2 targets. */
static int
bk_backup_running(struct avm *vm, json_t *spec, const char *tmp,
    const char *id, int direct, struct ajob *j, struct bk_sum *sum,
    char *err, size_t errsz)
{
	json_t *qb = NULL, *d, *actions = json_array(), *ids = json_array();
	json_t *nodes = json_array(), *n;
	char path[PATH_MAX], node[32], qerr[256];
	size_t i;
	int rc = -1;

	if (blk_qmp(vm, "query-block", NULL, &qb, err, errsz) < 0)
		goto cleanup;
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		const char *root = NULL;
		json_t *b;
		size_t k;
		json_int_t vsize = 0;
		char want[64];

		snprintf(want, sizeof(want), "/machine/peripheral/virtio-disk%zu/",
		    i);
		json_array_foreach(qb, k, b) {
			if (strncmp(js(b, "qdev"), want, strlen(want)) == 0) {
				json_t *in = json_object_get(b, "inserted");
				root = json_string_value(json_object_get(in,
				    "node-name"));
				vsize = json_integer_value(json_object_get(
				    json_object_get(in, "image"), "virtual-size"));
			}
		}
		if (root == NULL || vsize <= 0 ||
		    util_fmt(path, sizeof(path), "%s/%s.qcow2", tmp,
		    js(d, "name")) < 0) {
			snprintf(err, errsz, "disk %s is not attached to the "
			    "running VM", js(d, "name"));
			goto cleanup;
		}
		if (util_fmt(node, sizeof(node), "bk%zu-%.20s", i, id) < 0) {
			snprintf(err, errsz, "backup node name too long");
			goto cleanup;
		}
		/* Its target bypasses the page cache where the VM's disks
		 * would (qemu_cache_direct), on both nodes. */
		if (qimg_create(path, vsize, NULL, err, errsz) < 0 ||
		    blk_qmp(vm, "blockdev-add", json_pack("{s:s, s:s, s:{s:b, "
		    "s:b}, s:{s:s, s:s, s:{s:b, s:b}}}", "driver", "qcow2",
		    "node-name", node, "cache", "direct", direct, "no-flush", 1,
		    "file", "driver", "file", "filename", path, "cache", "direct",
		    direct, "no-flush", 1), NULL, err, errsz) < 0)
			goto cleanup;
		json_array_append_new(nodes, json_string(node));
		json_array_append_new(ids, json_string(node));
		/* use-copy-range: the job copies with copy_file_range, in the
		 * kernel (or on the NFS server), instead of reading and writing
		 * 64 KiB buffers through QEMU; 2-4x faster and steadier here.
		 * QEMU falls back to buffered copies where the call fails. */
		json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:s, "
		    "s:s, s:b, s:{s:b}}}", "type", "blockdev-backup", "data",
		    "job-id", node, "device", root, "target", node, "sync", "full",
		    "auto-dismiss", 0, "x-perf", "use-copy-range", 1));
	}
	if (blk_qmp(vm, "transaction", json_pack("{s:O}", "actions", actions),
	    NULL, err, errsz) < 0)
		goto cleanup;
	ajob_progress(j, 2);
	if (blk_jobs_wait(vm, ids, j, 2, 90, err, errsz) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	/* Closing writes qcow2's metadata out; no fsync (no-flush): we sync
	 * the files ourselves while the checksums read them. */
	json_array_foreach(nodes, i, n)
		blk_qmp(vm, "blockdev-del", json_pack("{s:O}", "node-name", n),
		    NULL, qerr, sizeof(qerr));
	if (rc == 0)
		bk_sum_start(sum);
	else
		bk_resume_after_error(vm);
	json_decref(nodes);
	json_decref(ids);
	json_decref(actions);
	json_decref(qb);
	return rc;
}

/* fdatasync every file of dir (the backup's disks). */
static int
bk_sync_files(json_t *spec, const char *dir, char *err, size_t errsz)
{
	char path[PATH_MAX];
	json_t *d;
	size_t i;
	int fd;

	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if (util_fmt(path, sizeof(path), "%s/%s.qcow2", dir,
		    js(d, "name")) < 0 || (fd = open(path, O_RDONLY |
		    O_CLOEXEC)) < 0) {
			snprintf(err, errsz, "cannot open the backup of %s",
			    js(d, "name"));
			return -1;
		}
		if (fdatasync(fd) < 0) {
			snprintf(err, errsz, "cannot write the backup of %s: %s",
			    js(d, "name"), strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* A stopped VM: each disk's chain flattened with qemu-img convert. */
static int
bk_backup_stopped(json_t *spec, const char *tmp, struct ajob *j, char *err,
    size_t errsz)
{
	const char *root = bk_root(js(spec, "storage"), err, errsz);
	char src[PATH_MAX], dst[PATH_MAX];
	size_t i, n = json_array_size(json_object_get(spec, "disks"));
	json_t *d;

	if (root == NULL)
		return -1;
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if (store_disk_path(root, js(spec, "uuid"), js(d, "file"), src,
		    sizeof(src)) < 0 || util_fmt(dst, sizeof(dst), "%s/%s.qcow2",
		    tmp, js(d, "name")) < 0) {
			snprintf(err, errsz, "invalid disk %s", js(d, "name"));
			return -1;
		}
		if (qimg_convert(src, js(d, "format")[0] ? js(d, "format") : NULL,
		    dst, err, errsz) < 0)
			return -1;
		ajob_progress(j, (int)(90 * (i + 1) / n));
	}
	return 0;
}

/* Size and checksum of every backup file, into the manifest. */
static int
bk_checksums(json_t *spec, const char *dir, json_t *disks, uint64_t *total,
    char *err, size_t errsz)
{
	char path[PATH_MAX], sum[QIMG_SHA256_HEX + 1], file[UTIL_NAME_MAX + 8];
	json_t *d, *info;
	uint64_t bytes;
	size_t i;

	*total = 0;
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if (util_fmt(file, sizeof(file), "%s.qcow2", js(d, "name")) < 0 ||
		    util_fmt(path, sizeof(path), "%s/%s", dir, file) < 0 ||
		    qimg_sha256(path, sum, &bytes, err, errsz) < 0)
			return -1;
		if ((info = qimg_info(path, "qcow2", err, errsz)) == NULL)
			return -1;
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:I, s:O, "
		    "s:s}", "name", js(d, "name"), "file", file, "format", "qcow2",
		    "size_bytes", (json_int_t)bytes, "virtual_size",
		    json_object_get(info, "virtual-size"), "sha256", sum));
		json_decref(info);
		*total += bytes;
	}
	return 0;
}

/* The manifest, written atomically inside the (still temporary) dir. */
static json_t *
bk_manifest(json_t *args, const char *tmp, int64_t created, int running,
    struct bk_sum *sum, char *err, size_t errsz)
{
	json_t *spec = json_object_get(args, "spec"), *m = NULL;
	json_t *disks = sum->disks, *saved = json_deep_copy(spec);
	char path[PATH_MAX], when[40], *s = NULL;
	uint64_t total = sum->total;

	json_incref(disks);
	json_object_del(saved, "snapshots");
	util_time_iso(created, when, sizeof(when));
	m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:s, s:O, s:O,"
	    " s:i}", "id", js(args, "id"), "vm", js(spec, "name"), "vm_uuid",
	    js(spec, "uuid"), "storage", js(args, "storage"), "created", when,
	    "created_ms", (json_int_t)created, "size_bytes", (json_int_t)total,
	    "running", running, "host", agent_cfg.name, "disks", disks, "spec",
	    saved, "version", 1);
	if (m == NULL || util_fmt(path, sizeof(path), "%s/manifest.json",
	    tmp) < 0 || (s = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS)) ==
	    NULL || util_write_file_atomic(path, s, strlen(s), 0644) < 0) {
		snprintf(err, errsz, "cannot write the backup manifest: %s",
		    strerror(errno));
		goto fail;
	}
	free(s);
	json_decref(disks);
	json_decref(saved);
	return m;
fail:
	free(s);
	json_decref(m);
	json_decref(disks);
	json_decref(saved);
	return NULL;
}

int
bk_backup_job(struct ajob *j, json_t *args, json_t **result, char *err,
    size_t errsz)
{
	json_t *spec = json_object_get(args, "spec"), *m = NULL;
	const char *id = js(args, "id"), *root;
	char dir[PATH_MAX], tmp[PATH_MAX], fin[PATH_MAX];
	struct bk_sum sum = { .rc = 0 };
	struct avm *vm = NULL;
	int64_t created, t0, t1;
	int rc = -1, made = 0;

	if ((root = bk_root(js(args, "storage"), err, errsz)) == NULL)
		return -1;
	if (!util_name_valid(id) || util_fmt(dir, sizeof(dir), "%s/backups",
	    root) < 0 || util_fmt(tmp, sizeof(tmp), "%s/.%s.partial", dir,
	    id) < 0 || util_fmt(fin, sizeof(fin), "%s/%s", dir, id) < 0) {
		snprintf(err, errsz, "invalid backup id");
		return -1;
	}
	if (util_mkdir_p(dir, 0755) < 0 || mkdir(tmp, 0755) < 0) {
		snprintf(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	made = 1;
	vm = vmhost_get(js(spec, "uuid"));
	created = util_wall_ms();
	t0 = util_mono_ms();
	sum.spec = spec;
	sum.dir = tmp;
	sum.disks = json_array();
	if (vm ? bk_backup_running(vm, spec, tmp, id, qemu_cache_direct(
	    vmhost_storage_direct(js(args, "storage")), 0), j, &sum, err,
	    errsz) :
	    bk_backup_stopped(spec, tmp, j, err, errsz))
		goto cleanup;
	t1 = util_mono_ms();
	if (bk_sync_files(spec, tmp, err, errsz) < 0)
		goto cleanup;
	if (bk_sum_finish(&sum, err, errsz) < 0 ||
	    (m = bk_manifest(args, tmp, created, vm != NULL, &sum, err,
	    errsz)) == NULL)
		goto cleanup;
	/* Where the time went, for the benchmark and for operators. */
	json_object_set_new(m, "copy_ms", json_integer(t1 - t0));
	json_object_set_new(m, "seal_ms", json_integer(util_mono_ms() - t1));
	log_info("backup %s: copied in %lld ms, then synced, checksums and "
	    "manifest in %lld ms", id, (long long)(t1 - t0),
	    (long long)(util_mono_ms() - t1));
	if (rename(tmp, fin) < 0) {
		snprintf(err, errsz, "cannot store the backup: %s",
		    strerror(errno));
		goto cleanup;
	}
	bk_fsync_dir(dir);
	log_info("vm %s: backup %s written to %s", js(spec, "name"), id, fin);
	*result = m;
	m = NULL;
	rc = 0;
cleanup:
	if (sum.started == 1)
		bk_sum_finish(&sum, NULL, 0);
	json_decref(sum.disks);
	if (rc < 0 && made)
		util_rm_rf(tmp);
	if (rc < 0 && errno == ENOSPC && strstr(err, "space") == NULL) {
		size_t l = strlen(err);
		snprintf(err + l, errsz - l, " (no space left on storage %s)",
		    js(args, "storage"));
	}
	json_decref(m);
	vmhost_put(vm);
	return rc;
}

/* One disk of a copy: verify the source's checksum when given, then a
 * full copy (or an overlay for a linked clone). */
static int
bk_copy_one(json_t *src, const char *dst, char *err, size_t errsz)
{
	char sum[QIMG_SHA256_HEX + 1];
	const char *path = js(src, "path");

	if (path[0] != '/') {
		snprintf(err, errsz, "invalid source disk");
		return -1;
	}
	if (js(src, "sha256")[0]) {
		if (qimg_sha256(path, sum, NULL, err, errsz) < 0)
			return -1;
		if (strcmp(sum, js(src, "sha256")) != 0) {
			snprintf(err, errsz, "%s is damaged: its checksum does "
			    "not match the manifest", path);
			return -1;
		}
	}
	if (json_is_true(json_object_get(src, "linked")))
		return qimg_create(dst, 0, path, err, errsz);
	return qimg_convert(path, js(src, "format")[0] ? js(src, "format") :
	    NULL, dst, err, errsz);
}

int
bk_copy_job(struct ajob *j, json_t *args, json_t **result, char *err,
    size_t errsz)
{
	json_t *spec = json_object_get(args, "spec"), *srcs, *d;
	char dir[PATH_MAX], dst[PATH_MAX];
	const char *root;
	size_t i, n;
	int rc = -1, made = 0;

	if ((root = bk_root(js(spec, "storage"), err, errsz)) == NULL)
		return -1;
	srcs = json_object_get(args, "sources");
	n = json_array_size(json_object_get(spec, "disks"));
	if (n != json_array_size(srcs) || store_vm_dir(root, js(spec, "uuid"),
	    dir, sizeof(dir)) < 0) {
		snprintf(err, errsz, "invalid copy request");
		return -1;
	}
	if (mkdir(dir, 0755) < 0) {
		snprintf(err, errsz, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	made = 1;
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if (store_disk_path(root, js(spec, "uuid"), js(d, "file"), dst,
		    sizeof(dst)) < 0) {
			snprintf(err, errsz, "invalid disk %s", js(d, "name"));
			goto cleanup;
		}
		if (bk_copy_one(json_array_get(srcs, i), dst, err, errsz) < 0)
			goto cleanup;
		ajob_progress(j, (int)(95 * (i + 1) / n));
	}
	if (store_vm_write_meta(root, spec, err, errsz) < 0)
		goto cleanup;
	*result = json_pack("{s:s}", "dir", dir);
	rc = 0;
cleanup:
	if (rc < 0 && made)
		util_rm_rf(dir);
	return rc;
}

/* Only raw or qcow2 without a backing file: an image must stand alone. */
static int
bk_import_probe(const char *file, char *fmt, size_t fmtsz, char *err,
    size_t errsz)
{
	json_t *info;
	const char *f;
	int rc = -1;

	if ((info = qimg_info(file, NULL, err, errsz)) == NULL)
		return -1;
	f = js(info, "format");
	if (strcmp(f, "raw") != 0 && strcmp(f, "qcow2") != 0)
		snprintf(err, errsz, "%s is a %s image: only raw and qcow2 can "
		    "be imported", file, f[0] ? f : "unknown");
	else if (json_object_get(info, "backing-filename") ||
	    json_object_get(json_object_get(json_object_get(info,
	    "format-specific"), "data"), "data-file"))
		snprintf(err, errsz, "the source has a backing or data file: "
		    "import a self-contained image");
	else
		rc = util_fmt(fmt, fmtsz, "%s", f);
	json_decref(info);
	return rc;
}

int
bk_import_job(struct ajob *j, json_t *args, json_t **result, char *err,
    size_t errsz)
{
	const char *name = js(args, "name"), *file = js(args, "file"), *root;
	char dir[PATH_MAX], tmp[PATH_MAX], fin[PATH_MAX], fmt[16];
	char sum[QIMG_SHA256_HEX + 1], src[64];
	json_t *info = NULL;
	uint64_t bytes;
	int rc = -1, sfd = -1, made = 0;

	if ((root = bk_root(js(args, "storage"), err, errsz)) == NULL)
		return -1;
	if (!util_name_valid(name) || util_fmt(dir, sizeof(dir), "%s/images",
	    root) < 0 || util_fmt(tmp, sizeof(tmp), "%s/.%s.partial", dir,
	    name) < 0 || util_fmt(fin, sizeof(fin), "%s/%s.qcow2", dir,
	    name) < 0) {
		snprintf(err, errsz, "invalid image name");
		return -1;
	}
	/* The source opened beneath its media area; qemu-img reads that
	 * open file (through this process's fd), never the path. */
	if ((sfd = media_open("file", file, err, errsz)) < 0)
		return -1;
	if (util_fmt(src, sizeof(src), "/proc/%d/fd/%d", (int)getpid(),
	    sfd) < 0 || bk_import_probe(src, fmt, sizeof(fmt), err, errsz) < 0)
		goto cleanup;
	if (access(fin, F_OK) == 0) {
		snprintf(err, errsz, "image file %s already exists", fin);
		goto cleanup;
	}
	if (util_mkdir_p(dir, 0755) < 0) {
		snprintf(err, errsz, "cannot create %s: %s", dir, strerror(errno));
		goto cleanup;
	}
	ajob_progress(j, 5);
	made = 1;
	if (qimg_convert(src, fmt, tmp, err, errsz) < 0)
		goto cleanup;
	ajob_progress(j, 80);
	if (qimg_check(tmp, err, errsz) < 0 ||
	    qimg_sha256(tmp, sum, &bytes, err, errsz) < 0 ||
	    (info = qimg_info(tmp, "qcow2", err, errsz)) == NULL)
		goto cleanup;
	if (rename(tmp, fin) < 0) {
		snprintf(err, errsz, "cannot store the image: %s", strerror(errno));
		goto cleanup;
	}
	bk_fsync_dir(dir);
	*result = json_pack("{s:s, s:s, s:O, s:I, s:s}", "file", fin,
	    "source_format", fmt, "virtual_size", json_object_get(info,
	    "virtual-size"), "size_bytes", (json_int_t)bytes, "sha256", sum);
	rc = 0;
cleanup:
	if (rc < 0 && made)
		(void)unlink(tmp);
	if (sfd >= 0)
		close(sfd);
	json_decref(info);
	return rc;
}

int
bk_verify_job(struct ajob *j, json_t *args, json_t **result, char *err,
    size_t errsz)
{
	char dir[PATH_MAX], path[PATH_MAX], sum[QIMG_SHA256_HEX + 1];
	const char *root, *id = js(args, "id");
	json_t *m = NULL, *d, *bad = json_array();
	size_t i, n;
	int rc = -1;

	if ((root = bk_root(js(args, "storage"), err, errsz)) == NULL)
		goto cleanup;
	if (!util_name_valid(id) || util_fmt(dir, sizeof(dir), "%s/backups/%s",
	    root, id) < 0 || util_fmt(path, sizeof(path), "%s/manifest.json",
	    dir) < 0 || (m = json_load_file(path, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL) {
		snprintf(err, errsz, "backup %s has no readable manifest on "
		    "storage %s", id, js(args, "storage"));
		goto cleanup;
	}
	n = json_array_size(json_object_get(m, "disks"));
	json_array_foreach(json_object_get(m, "disks"), i, d) {
		if (!util_name_valid(js(d, "file")) || util_fmt(path,
		    sizeof(path), "%s/%s", dir, js(d, "file")) < 0 ||
		    qimg_sha256(path, sum, NULL, err, errsz) < 0 ||
		    strcmp(sum, js(d, "sha256")) != 0)
			json_array_append_new(bad, json_string(js(d, "file")));
		ajob_progress(j, (int)(99 * (i + 1) / n));
	}
	if (json_array_size(bad) > 0) {
		snprintf(err, errsz, "backup %s is damaged: %s does not match "
		    "its checksum", id, json_string_value(json_array_get(bad, 0)));
		goto cleanup;
	}
	*result = json_pack("{s:s, s:b}", "id", id, "ok", 1);
	rc = 0;
cleanup:
	json_decref(bad);
	json_decref(m);
	return rc;
}

int
bk_remove(const char *storage, const char *kind, const char *name, char *err,
    size_t errsz, int *status)
{
	char path[PATH_MAX];
	const char *root;
	struct stat st;
	int rc;

	*status = 400;
	if ((root = bk_root(storage, err, errsz)) == NULL)
		return -1;
	if (!util_name_valid(name)) {
		snprintf(err, errsz, "invalid name");
		return -1;
	}
	rc = strcmp(kind, "images") == 0 ?
	    util_fmt(path, sizeof(path), "%s/images/%s.qcow2", root, name) :
	    util_fmt(path, sizeof(path), "%s/backups/%s", root, name);
	if (rc < 0) {
		snprintf(err, errsz, "name too long");
		return -1;
	}
	*status = 200;
	if (lstat(path, &st) < 0 && errno == ENOENT)
		return 0;	/* already gone: deleting is idempotent */
	if ((S_ISDIR(st.st_mode) ? util_rm_rf(path) : unlink(path)) < 0) {
		snprintf(err, errsz, "cannot remove %s: %s", path,
		    strerror(errno));
		*status = 500;
		return -1;
	}
	return 0;
}
