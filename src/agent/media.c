/* media.c - the host files users may name (boot media, kernels, initrds,
 * image import sources): only files in the media areas of this host's
 * storage domains (isos/, kernels/, images/) or beneath a directory an
 * admin listed (--media-dir), opened beneath them, never by a path the
 * user chose; and the agent's routes that upload into, list and delete
 * from the areas (docs/storage.md "Media areas"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent/agent_int.h"
#include "common/beneath.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/util.h"

#define MEDIA_XATTR	"user.cvirt.sha256"
#define MEDIA_TMP	".upload-"
#define MEDIA_STALE_S	900	/* an upload's temp file untouched this long
				 * was interrupted (uploads write it
				 * continuously) */
#define MEDIA_MAX_DEFAULT (64LL << 30)
#define MEDIA_BUF	(1 << 20)

const char *
media_area(const char *what)
{
	if (strcmp(what, "cdrom") == 0)
		return BENEATH_AREA_ISOS;
	if (strcmp(what, "kernel") == 0 || strcmp(what, "initrd") == 0)
		return BENEATH_AREA_KERNELS;
	if (strcmp(what, "file") == 0)		/* an image import's source */
		return BENEATH_AREA_IMAGES;
	return NULL;
}

static int
media_area_valid(const char *area)
{
	return strcmp(area, BENEATH_AREA_ISOS) == 0 ||
	    strcmp(area, BENEATH_AREA_KERNELS) == 0 ||
	    strcmp(area, BENEATH_AREA_IMAGES) == 0;
}

int
media_add_dir(const char *path)
{
	if (path[0] != '/' || strcmp(path, "/") == 0) {
		log_error("--media-dir wants an absolute directory other than "
		    "/, not \"%s\"", path);
		return -1;
	}
	if (agent_cfg.nmedia_dirs >= AGENT_MAX_MEDIA_DIRS) {
		log_error("at most %d --media-dir", AGENT_MAX_MEDIA_DIRS);
		return -1;
	}
	if (util_fmt(agent_cfg.media_dirs[agent_cfg.nmedia_dirs],
	    sizeof(agent_cfg.media_dirs[0]), "%s", path) < 0) {
		log_error("--media-dir too long");
		return -1;
	}
	agent_cfg.nmedia_dirs++;
	return 0;
}

json_t *
media_dirs_json(void)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < agent_cfg.nmedia_dirs; i++)
		json_array_append_new(a, json_string(agent_cfg.media_dirs[i]));
	return a;
}

int
media_open(const char *what, const char *value, char *err, size_t errsz)
{
	const char *area = media_area(what), *rel;
	size_t alen;
	int i, fd = -1;

	if (area == NULL || value == NULL || value[0] != '/')
		goto refuse;
	alen = strlen(area);
	for (i = 0; i < agent_cfg.nstorage && fd < 0; i++) {
		rel = beneath_rel(agent_cfg.storage[i].path, value);
		if (rel && strncmp(rel, area, alen) == 0 && rel[alen] == '/')
			fd = beneath_open(agent_cfg.storage[i].path, rel,
			    O_RDONLY, 1);
	}
	for (i = 0; i < agent_cfg.nmedia_dirs && fd < 0; i++)
		if ((rel = beneath_rel(agent_cfg.media_dirs[i], value)) != NULL)
			fd = beneath_open(agent_cfg.media_dirs[i], rel, O_RDONLY,
			    1);
	if (fd >= 0)
		return fd;
	log_debug("%s %s refused: %s", what, value, strerror(errno));
refuse:
	beneath_refusal(err, errsz, what, value, area ? area : "?");
	return -1;
}

/* ---- the areas' routes ------------------------------------------------- */

/* POST /agent/v1/media-check {"what", "path"}: whether media_open takes
 * it here (the manager asks before it queues an import): 200, or 400
 * with the one refusal text. */
int
mediaapi_check(struct httpd_req *r)
{
	const char *what = json_string_value(json_object_get(r->body, "what"));
	const char *path = json_string_value(json_object_get(r->body, "path"));
	char err[300];
	int fd;

	if (what == NULL || path == NULL || media_area(what) == NULL)
		return httpd_reply_error(r, 400, "what and path are required");
	if ((fd = media_open(what, path, err, sizeof(err))) < 0)
		return httpd_reply_error(r, 400, "%s", err);
	close(fd);
	return httpd_reply_json(r, 200, json_object());
}

/* The area directory of domain st (created when missing), opened beneath
 * its root: an area that is a symlink does not open. -1 after replying. */
static int
media_area_fd(struct httpd_req *r, const char *st, const char *area,
    int create)
{
	const char *root = vmhost_storage_path(st);
	char err[256];
	int rfd, fd;

	if (root == NULL) {
		httpd_reply_error(r, 404, "storage %.64s is not attached to host "
		    "%s", st, agent_cfg.name);
		return -1;
	}
	if (!media_area_valid(area)) {
		httpd_reply_error(r, 404, "no media area %.32s: isos, kernels or "
		    "images", area);
		return -1;
	}
	if (domwatch_ok(st, err, sizeof(err)) < 0) {
		httpd_reply_error(r, 503, "%s", err);
		return -1;
	}
	if ((rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		httpd_reply_error(r, 503, "storage %s: %s", st, strerror(errno));
		return -1;
	}
	if (create && mkdirat(rfd, area, 0755) < 0 && errno != EEXIST)
		log_warn("storage %s: cannot create %s/", st, area);
	fd = beneath_openat(rfd, area, O_RDONLY | O_DIRECTORY, 0);
	close(rfd);
	if (fd < 0)
		httpd_reply_error(r, errno == ENOENT ? 404 : 500, "storage %s: "
		    "no usable %s/ area", st, area);
	return fd;
}

/* Interrupted uploads' temp files, untouched for MEDIA_STALE_S. */
static void
media_sweep(int afd)
{
	struct dirent *e;
	struct stat sb;
	DIR *d;
	int dfd = dup(afd);

	if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, MEDIA_TMP, sizeof(MEDIA_TMP) - 1) == 0 &&
		    fstatat(afd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    time(NULL) - sb.st_mtime > MEDIA_STALE_S &&
		    unlinkat(afd, e->d_name, 0) == 0)
			log_info("removed %s, an interrupted upload", e->d_name);
	closedir(d);
}

/* The body into fd, hashed; its SHA-256 (hex) into sum. 0, or -1 after
 * replying. */
static int
media_receive(struct httpd_req *r, int fd, char sum[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	long long total = 0;
	char *buf = malloc(MEDIA_BUF);
	int n, i, rc = -1;
	ssize_t w, off;

	if (buf == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(),
	    NULL) != 1) {
		httpd_reply_error(r, 500, "out of memory");
		goto cleanup;
	}
	while (total < r->content_length) {
		n = httpd_body_read(r, buf, r->content_length - total <
		    MEDIA_BUF ? (size_t)(r->content_length - total) : MEDIA_BUF);
		if (n <= 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		for (off = 0; off < n; off += w) {
			if ((w = write(fd, buf + off, (size_t)(n - off))) < 0) {
				httpd_reply_error(r, errno == ENOSPC ? 507 : 500,
				    "cannot store the upload: %s", strerror(errno));
				goto cleanup;
			}
		}
		total += n;
	}
	if (total != r->content_length) {
		httpd_reply_error(r, 400, "the upload ended after %lld of %lld "
		    "bytes", total, r->content_length);
		goto cleanup;
	}
	if (fsync(fd) < 0) {
		httpd_reply_error(r, 500, "cannot store the upload: %s",
		    strerror(errno));
		goto cleanup;
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	for (i = 0; i < 32; i++) {
		sum[2 * i] = hex[md[i] >> 4];
		sum[2 * i + 1] = hex[md[i] & 15];
	}
	sum[64] = '\0';
	rc = 0;
cleanup:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

/* PUT /agent/v1/media/STORAGE/AREA/NAME?max=BYTES: a new file, streamed
 * into a temp name and linked to NAME only when complete (never
 * replacing one: 409). */
int
mediaapi_put(struct httpd_req *r)
{
	const char *st = r->params[0], *area = r->params[1], *name = r->params[2];
	char q[32], tmp[64], sum[65], rnd[17];
	long long max = MEDIA_MAX_DEFAULT;
	struct statvfs vfs;
	struct stat sb;
	uint64_t v;
	int afd = -1, fd = -1, linked = 0;

	if (!beneath_upload_name_ok(name)) {
		httpd_reply_error(r, 400, "invalid file name: 1-200 letters, "
		    "digits, '.', '_', '-' or '+', not starting with '.'");
		goto cleanup;
	}
	if (httpd_query(r, "max", q, sizeof(q)) == 0) {
		if (util_parse_u64(q, 0, (uint64_t)1 << 50, &v) < 0) {
			httpd_reply_error(r, 400, "invalid max");
			goto cleanup;
		}
		max = (long long)v;
	}
	if (r->content_length < 0) {
		httpd_reply_error(r, 411, "an upload needs a Content-Length");
		goto cleanup;
	}
	if (r->content_length > max) {
		httpd_reply_error(r, 413, "the upload is larger than the limit "
		    "of %lld MiB", max >> 20);
		goto cleanup;
	}
	if ((afd = media_area_fd(r, st, area, 1)) < 0)
		goto cleanup;
	media_sweep(afd);
	if (fstatat(afd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		httpd_reply_error(r, 409, "%s/%s already exists on storage %s",
		    area, name, st);
		goto cleanup;
	}
	if (fstatvfs(afd, &vfs) == 0 && (long long)vfs.f_bavail *
	    (long long)vfs.f_frsize < r->content_length) {
		httpd_reply_error(r, 507, "storage %s has not enough free space "
		    "for %lld bytes", st, r->content_length);
		goto cleanup;
	}
	if (util_random_hex(rnd, 8) < 0 || util_fmt(tmp, sizeof(tmp), "%s%s",
	    MEDIA_TMP, rnd) < 0 || (fd = openat(afd, tmp, O_WRONLY | O_CREAT |
	    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0) {
		httpd_reply_error(r, 500, "cannot store the upload: %s",
		    strerror(errno));
		goto cleanup;
	}
	if (media_receive(r, fd, sum) < 0)
		goto cleanup;
	/* Best effort: not every file system keeps user xattrs. */
	(void)fsetxattr(fd, MEDIA_XATTR, sum, 64, 0);
	/* link, not rename: never replaces a file that came meanwhile. */
	if (linkat(afd, tmp, afd, name, 0) < 0) {
		httpd_reply_error(r, errno == EEXIST ? 409 : 500, errno == EEXIST ?
		    "%s/%s already exists on storage %s" : "cannot store the "
		    "upload as %s/%s on storage %s", area, name, st);
		goto cleanup;
	}
	linked = 1;
	(void)fsync(afd);
	log_info("storage %s: %s/%s uploaded (%lld bytes, sha256 %s)", st,
	    area, name, r->content_length, sum);
	httpd_reply_json(r, 201, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s++++}",
	    "storage", st, "area", area, "name", name, "size_bytes",
	    (json_int_t)r->content_length, "sha256", sum, "path",
	    vmhost_storage_path(st), "/", area, "/", name));
cleanup:
	if (fd >= 0) {
		close(fd);
		/* The temp name goes in any case (linked or not). */
		if (unlinkat(afd, tmp, 0) < 0 && linked)
			log_warn("storage %s: cannot remove %s", st, tmp);
	}
	if (afd >= 0)
		close(afd);
	return 0;
}

/* One regular file's entry, or NULL. */
static json_t *
media_entry(int afd, const char *root, const char *area, const char *name)
{
	char sum[65], path[PATH_MAX];
	struct stat sb;
	ssize_t n = -1;
	json_t *e;
	int fd;

	if (name[0] == '.' || fstatat(afd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(sb.st_mode) || util_fmt(path, sizeof(path), "%s/%s/%s",
	    root, area, name) < 0)
		return NULL;
	if ((fd = openat(afd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) >= 0) {
		n = fgetxattr(fd, MEDIA_XATTR, sum, 64);
		close(fd);
	}
	sum[n == 64 ? 64 : 0] = '\0';
	e = json_pack("{s:s, s:s, s:I, s:I}", "name", name, "path", path,
	    "size_bytes", (json_int_t)sb.st_size, "modified_ms", (json_int_t)
	    sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000);
	json_object_set_new(e, "sha256", sum[0] ? json_string(sum) :
	    json_null());
	return e;
}

/* GET /agent/v1/media/STORAGE/AREA: its files (no temp, no links). */
int
mediaapi_list(struct httpd_req *r)
{
	const char *st = r->params[0], *area = r->params[1];
	json_t *out = json_array(), *e;
	struct dirent *de;
	DIR *d = NULL;
	int afd, dfd;

	if ((afd = media_area_fd(r, st, area, 0)) < 0) {
		json_decref(out);
		return 0;
	}
	if ((dfd = dup(afd)) >= 0 && (d = fdopendir(dfd)) == NULL)
		close(dfd);
	while (d && (de = readdir(d)) != NULL)
		if ((e = media_entry(afd, vmhost_storage_path(st), area,
		    de->d_name)) != NULL)
			json_array_append_new(out, e);
	if (d)
		closedir(d);
	close(afd);
	return httpd_reply_json(r, 200, out);
}

/* DELETE /agent/v1/media/STORAGE/AREA/NAME (the manager checked that no
 * VM or image uses it). */
int
mediaapi_delete(struct httpd_req *r)
{
	const char *st = r->params[0], *area = r->params[1], *name = r->params[2];
	struct stat sb;
	int afd;

	if (name[0] == '.' || strchr(name, '/') || !beneath_name_ok(name))
		return httpd_reply_error(r, 404, "no file %.64s in %s/", name,
		    area);
	if ((afd = media_area_fd(r, st, area, 0)) < 0)
		return 0;
	if (fstatat(afd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    S_ISDIR(sb.st_mode)) {
		httpd_reply_error(r, 404, "no file %.64s in %s/ of storage %s",
		    name, area, st);
	} else if (unlinkat(afd, name, 0) < 0) {
		httpd_reply_error(r, 500, "cannot remove %s/%s: %s", area, name,
		    strerror(errno));
	} else {
		(void)fsync(afd);
		log_info("storage %s: %s/%s deleted", st, area, name);
		httpd_reply_json(r, 200, json_object());
	}
	close(afd);
	return 0;
}
