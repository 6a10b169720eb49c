/* store.c - storage domain layout: VM directories, metadata, blank disks. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "storage/qimg.h"
#include "storage/store.h"

int
store_domain_init(const char *root, const char *name, char *err, size_t errsz)
{
	char path[PATH_MAX];
	json_t *meta = NULL;
	char *s = NULL;
	int rc = -1;

	if (util_mkdir_p(root, 0755) < 0 ||
	    util_fmt(path, sizeof(path), "%s/vms", root) < 0 ||
	    util_mkdir_p(path, 0755) < 0 ||
	    util_fmt(path, sizeof(path), "%s/leases", root) < 0 ||
	    util_mkdir_p(path, 0755) < 0 ||
	    /* The media areas (media.c): what users upload and name. */
	    util_fmt(path, sizeof(path), "%s/isos", root) < 0 ||
	    util_mkdir_p(path, 0755) < 0 ||
	    util_fmt(path, sizeof(path), "%s/kernels", root) < 0 ||
	    util_mkdir_p(path, 0755) < 0 ||
	    util_fmt(path, sizeof(path), "%s/images", root) < 0 ||
	    util_mkdir_p(path, 0755) < 0) {
		snprintf(err, errsz, "cannot create storage domain %s: %s",
		    root, strerror(errno));
		goto cleanup;
	}
	if (util_fmt(path, sizeof(path), "%s/domain.json", root) < 0)
		goto cleanup;
	if (access(path, F_OK) == 0) {
		rc = 0;
		goto cleanup;
	}
	meta = json_pack("{s:s, s:i}", "name", name, "version",
	    STORE_META_VERSION);
	s = json_dumps(meta, JSON_INDENT(2));
	if (s == NULL || util_write_file_atomic(path, s, strlen(s), 0644) < 0) {
		snprintf(err, errsz, "cannot write %s: %s", path,
		    strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(s);
	json_decref(meta);
	return rc;
}

/* One resolution of root's path, then calls relative to it. A shared
 * filesystem mounted without the kernel's dentry cache (GlusterFS with
 * entry-timeout=0, which a lease reader needs: docs/storage.md) makes
 * every component of every path a LOOKUP on every replica; each agent
 * checks each domain every 500 ms (domwatch.c). An O_PATH descriptor
 * opens nothing on the server. */
int
store_domain_check(const char *root, uint64_t *total, uint64_t *avail,
    char *err, size_t errsz)
{
	struct statvfs sv;
	struct stat st;
	int fd, rc = -1;

	if ((fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errsz, "storage %s is missing", root);
		goto cleanup;
	}
	if (faccessat(fd, "vms", W_OK, 0) < 0) {
		snprintf(err, errsz, "storage %s is not writable", root);
		goto cleanup;
	}
	if (fstatvfs(fd, &sv) < 0) {
		snprintf(err, errsz, "storage %s: cannot read its free space: "
		    "%s", root, strerror(errno));
		goto cleanup;
	}
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	rc = 0;
cleanup:
	if (fd >= 0)
		close(fd);
	return rc;
}

int
store_domain_probe_direct(const char *root, const char *host, char *err,
    size_t errsz)
{
	char path[PATH_MAX];
	void *w = NULL, *r = NULL;
	int fd = -1, rc = -1;

	if (util_fmt(path, sizeof(path), "%s/.probe-%s", root, host) < 0) {
		snprintf(err, errsz, "storage %s: path too long", root);
		return -1;
	}
	if (posix_memalign(&w, 4096, 4096) != 0 ||
	    posix_memalign(&r, 4096, 4096) != 0) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	memset(w, 0xc5, 4096);
	memcpy(w, host, strlen(host) < 4096 ? strlen(host) : 4096);
	memset(r, 0, 4096);
	if ((fd = open(path, O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0) {
		if (errno == EINVAL) {
			snprintf(err, errsz, "no O_DIRECT (EINVAL)");
			rc = 0;
		} else {
			snprintf(err, errsz, "O_DIRECT probe %s: %s", path,
			    strerror(errno));
		}
		goto cleanup;
	}
	if (pwrite(fd, w, 4096, 0) != 4096 || fdatasync(fd) < 0 ||
	    pread(fd, r, 4096, 0) != 4096) {
		rc = errno == EINVAL ? 0 : -1;
		snprintf(err, errsz, "%s%s", rc == 0 ? "no O_DIRECT I/O: " :
		    "O_DIRECT probe: ", strerror(errno));
		goto cleanup;
	}
	if (memcmp(w, r, 4096) != 0) {
		snprintf(err, errsz, "O_DIRECT probe read back other data");
		rc = 0;
		goto cleanup;
	}
	rc = 1;
cleanup:
	if (fd >= 0) {
		close(fd);
		(void)unlink(path);
	}
	free(w);
	free(r);
	return rc;
}

int
store_vm_dir(const char *root, const char *uuid, char *out, size_t size)
{
	if (!util_uuid_valid(uuid)) {
		errno = EINVAL;
		return -1;
	}
	return util_fmt(out, size, "%s/vms/%s", root, uuid);
}

int
store_disk_path(const char *root, const char *uuid, const char *file,
    char *out, size_t size)
{
	if (!util_uuid_valid(uuid) || !util_name_valid(file)) {
		errno = EINVAL;
		return -1;
	}
	return util_fmt(out, size, "%s/vms/%s/%s", root, uuid, file);
}

int
store_vm_write_meta(const char *root, json_t *spec, char *err, size_t errsz)
{
	const char *uuid = json_string_value(json_object_get(spec, "uuid"));
	char path[PATH_MAX];
	json_t *meta = NULL;
	char *s = NULL;
	int rc = -1;

	char dir[PATH_MAX];

	if (uuid == NULL || store_vm_dir(root, uuid, dir, sizeof(dir)) < 0 ||
	    util_fmt(path, sizeof(path), "%s/vm.json", dir) < 0) {
		snprintf(err, errsz, "invalid VM metadata");
		goto cleanup;
	}
	meta = json_deep_copy(spec);
	json_object_set_new(meta, "meta_version", json_integer(STORE_META_VERSION));
	s = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s == NULL || util_write_file_atomic(path, s, strlen(s), 0644) < 0) {
		snprintf(err, errsz, "cannot write VM metadata: %s",
		    strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(s);
	json_decref(meta);
	return rc;
}

json_t *
store_vm_read_meta(const char *root, const char *uuid)
{
	char path[PATH_MAX];

	char dir[PATH_MAX];

	char err[256], *buf;
	json_t *m;
	size_t len;

	if (store_vm_dir(root, uuid, dir, sizeof(dir)) < 0 ||
	    util_fmt(path, sizeof(path), "%s/vm.json", dir) < 0 ||
	    (buf = util_read_file(path, STORE_META_MAX, &len)) == NULL)
		return NULL;
	m = store_meta_parse(buf, len, err, sizeof(err));
	free(buf);
	return m;
}

static int
store_disk_create(const char *path, json_int_t size_mib, char *err,
    size_t errsz)
{
	char size[32], out[1024], line[256];
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o",
	    "lazy_refcounts=on", (char *)path, size, NULL };
	int st;

	snprintf(size, sizeof(size), "%lldM", (long long)size_mib);
	st = proc_run(argv, out, sizeof(out), 60000);
	if (st != 0) {
		proc_last_line(out, line, sizeof(line));
		snprintf(err, errsz, "cannot create disk: %s", line);
		return -1;
	}
	return 0;
}

int
store_vm_define(const char *root, json_t *spec, char *err, size_t errsz)
{
	const char *uuid = json_string_value(json_object_get(spec, "uuid"));
	json_t *disks = json_object_get(spec, "disks"), *d;
	char dir[PATH_MAX], path[PATH_MAX];
	size_t i;
	int rc = -1, made = 0;

	if (uuid == NULL || store_vm_dir(root, uuid, dir, sizeof(dir)) < 0) {
		snprintf(err, errsz, "invalid VM uuid");
		goto cleanup;
	}
	if (mkdir(dir, 0755) < 0) {
		if (errno == EEXIST)
			snprintf(err, errsz, "VM %s already exists on storage",
			    uuid);
		else
			snprintf(err, errsz, "cannot create %s: %s", dir,
			    strerror(errno));
		goto cleanup;
	}
	made = 1;
	json_array_foreach(disks, i, d) {
		const char *file = json_string_value(json_object_get(d, "file"));
		json_int_t mib = json_integer_value(json_object_get(d, "size_mib"));

		if (file == NULL || store_disk_path(root, uuid, file, path,
		    sizeof(path)) < 0) {
			snprintf(err, errsz, "invalid disk file name");
			goto cleanup;
		}
		if (json_is_string(json_object_get(d, "backing"))) {
			/* A linked clone on an image: an overlay of the size. */
			if (qimg_create(path, (int64_t)mib << 20, json_string_value(
			    json_object_get(d, "backing")), err, errsz) < 0)
				goto cleanup;
		} else if (store_disk_create(path, mib, err, errsz) < 0)
			goto cleanup;
	}
	if (store_vm_write_meta(root, spec, err, errsz) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	if (rc < 0 && made)
		util_rm_rf(dir);
	return rc;
}

int
store_vm_remove(const char *root, const char *uuid)
{
	char dir[PATH_MAX];

	if (store_vm_dir(root, uuid, dir, sizeof(dir)) < 0)
		return -1;
	return util_rm_rf(dir);
}
