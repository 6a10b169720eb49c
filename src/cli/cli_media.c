/* cli_media.c - `cvirt iso upload|list|delete`, and the host files that
 * `vm create` (--kernel, --initrd, --cdrom) and `image import` name. One
 * explicit rule decides whose file an argument is (docs/cli.md): a
 * STORAGE:AREA/NAME, or an absolute path inside a media area or media
 * directory the manager reports, is the hosts' file and is never read
 * here; anything else is a file of this client, read here and uploaded
 * into the storage domain's area first (named by its SHA-256). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli/cli_int.h"
#include "common/beneath.h"
#include "common/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Whether path lies in area of a storage domain, or in a media
 * directory of a host, as the manager reports them. */
static int
cli_media_is_host_path(struct cli_ctx *c, const char *path, const char *area)
{
	json_t *st = NULL, *hosts = NULL, *e, *d;
	size_t i, j, alen = strlen(area);
	const char *rel;
	char err[512];
	int found = 0;

	/* A role that may not list them (a project member) knows no area:
	 * its arguments are its own files. */
	(void)cli_api_try(c, "GET", "/storage", NULL, &st, err, sizeof(err));
	(void)cli_api_try(c, "GET", "/hosts", NULL, &hosts, err, sizeof(err));
	json_array_foreach(st, i, e) {
		rel = json_string_value(json_object_get(e, "path")) ?
		    beneath_rel(json_string_value(json_object_get(e, "path")),
		    path) : NULL;
		if (rel && strncmp(rel, area, alen) == 0 && rel[alen] == '/')
			found = 1;
	}
	json_array_foreach(hosts, i, e)
		json_array_foreach(json_object_get(e, "media_dirs"), j, d)
			if (json_is_string(d) && beneath_rel(json_string_value(d),
			    path))
				found = 1;
	json_decref(st);
	json_decref(hosts);
	return found;
}

/* The storage domain to upload to: want, else "local" when it exists,
 * else the only one there is. */
static int
cli_media_storage(struct cli_ctx *c, const char *want, char *out,
    size_t outsz)
{
	json_t *st = NULL, *e;
	size_t i;
	int rc = -1, local = 0;

	if (want)
		return cli_check_name("storage", want) != 0 ? -1 :
		    util_fmt(out, outsz, "%s", want);
	if (cli_api(c, "GET", "/storage", NULL, &st) != 0)
		return -1;
	/* As the manager's image import: "local" when there is one. */
	json_array_foreach(st, i, e)
		if (json_is_string(json_object_get(e, "name")) && strcmp(
		    json_string_value(json_object_get(e, "name")), "local") == 0)
			local = 1;
	if (local || json_array_size(st) == 1)
		rc = util_fmt(out, outsz, "%s", local ? "local" :
		    json_string_value(json_object_get(json_array_get(st, 0),
		    "name")));
	else
		cli_err("%s: choose a storage domain with --storage",
		    json_array_size(st) ? "several storage domains exist" :
		    "no storage domain is known yet");
	json_decref(st);
	return rc;
}

/* SHA-256 of fd's content (hex), fd rewound. */
static int
cli_media_sha256(int fd, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32];
	char *buf = malloc(1 << 20);
	ssize_t n = -1;
	int i, rc = -1;

	if (ctx && buf && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1)
		while ((n = read(fd, buf, 1 << 20)) > 0)
			EVP_DigestUpdate(ctx, buf, (size_t)n);
	if (n == 0 && EVP_DigestFinal_ex(ctx, md, NULL) == 1 &&
	    lseek(fd, 0, SEEK_SET) == 0) {
		for (i = 0; i < 32; i++) {
			out[2 * i] = hex[md[i] >> 4];
			out[2 * i + 1] = hex[md[i] & 15];
		}
		out[64] = '\0';
		rc = 0;
	}
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

/* Open a client file for an upload: a regular file, its size. */
static int
cli_media_open(const char *opt, const char *file, long long *size)
{
	struct stat sb;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_err("%s %s: %s", opt, file, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		cli_err("%s %s: not a regular file", opt, file);
		close(fd);
		return -1;
	}
	*size = (long long)sb.st_size;
	return fd;
}

/* Upload fd as AREA/NAME of storage st; the reply (owned) or NULL. */
static json_t *
cli_media_put(struct cli_ctx *c, const char *st, const char *area,
    const char *name, int fd, long long size)
{
	char path[CLI_PATH_MAX], label[300];
	json_t *reply = NULL;

	if (util_fmt(path, sizeof(path), "/storage/%s/%s/%s", st, area,
	    name) != 0) {
		cli_err("name too long");
		return NULL;
	}
	snprintf(label, sizeof(label), "%s/%s", area, name);
	(void)cli_api_upload(c, path, fd, size, label, &reply);
	return reply;
}

/* A client file's content-addressed name in an area: its base name made
 * safe, then the first 16 hex digits of its SHA-256. */
static void
cli_media_cas_name(const char *file, const char *sum, char *out, size_t outsz)
{
	const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	char clean[101];
	size_t i, n = 0;

	for (i = 0; base[i] && n < sizeof(clean) - 1; i++)
		if ((base[i] >= 'a' && base[i] <= 'z') ||
		    (base[i] >= 'A' && base[i] <= 'Z') ||
		    (base[i] >= '0' && base[i] <= '9') ||
		    (n > 0 && strchr("._-+", base[i])))
			clean[n++] = base[i];
	clean[n] = '\0';
	snprintf(out, outsz, "%s%s%.16s", clean, n ? "-" : "", sum);
}

/* The entry named name in AREA of st, or NULL. */
static json_t *
cli_media_find(struct cli_ctx *c, const char *st, const char *area,
    const char *name)
{
	char path[CLI_PATH_MAX];
	json_t *list = NULL, *e, *found = NULL;
	size_t i;

	if (util_fmt(path, sizeof(path), "/storage/%s/%s", st, area) != 0 ||
	    cli_api(c, "GET", path, NULL, &list) != 0)
		return NULL;
	json_array_foreach(list, i, e)
		if (json_is_string(json_object_get(e, "name")) && strcmp(
		    json_string_value(json_object_get(e, "name")), name) == 0)
			found = json_incref(e);
	json_decref(list);
	return found;
}

int
cli_media_arg(struct cli_ctx *c, const char *opt, const char *area,
    const char *arg, const char *storage, char *out, size_t outsz,
    int *uploaded)
{
	char st[UTIL_NAME_MAX + 1], sum[65], name[160];
	const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');
	json_t *e = NULL;
	long long size;
	int fd = -1, rc = -1, host;

	if (uploaded)
		*uploaded = 0;
	/* STORAGE:AREA/NAME: the hosts' file, by domain. */
	if (arg[0] != '/' && colon && (slash == NULL || colon < slash))
		return util_fmt(out, outsz, "%s", arg) == 0 ? 0 : -1;
	if (arg[0] == '/') {
		if ((host = cli_media_is_host_path(c, arg, area)) < 0)
			return -1;
		if (host)
			return util_fmt(out, outsz, "%s", arg) == 0 ? 0 : -1;
	}
	/* This client's file: uploaded once per content. */
	if (cli_media_storage(c, storage, st, sizeof(st)) != 0 ||
	    (fd = cli_media_open(opt, arg, &size)) < 0)
		goto cleanup;
	if (cli_media_sha256(fd, sum) != 0) {
		cli_err("%s %s: cannot read it: %s", opt, arg, strerror(errno));
		goto cleanup;
	}
	cli_media_cas_name(arg, sum, name, sizeof(name));
	e = cli_media_find(c, st, area, name);
	if (e && json_is_string(json_object_get(e, "sha256")) &&
	    strcmp(json_string_value(json_object_get(e, "sha256")), sum) != 0) {
		cli_err("%s %s: %s/%s on storage %s has other content", opt, arg,
		    area, name, st);
		goto cleanup;
	}
	if (e == NULL) {
		if ((e = cli_media_put(c, st, area, name, fd, size)) == NULL)
			goto cleanup;
		if (uploaded)
			*uploaded = 1;
	}
	if (util_fmt(out, outsz, "%s:%s/%s", st, area, name) != 0)
		goto cleanup;
	rc = 0;
cleanup:
	json_decref(e);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- cvirt iso ... ------------------------------------------------------- */

int
cli_iso_upload(struct cli_ctx *c, int argc, char **argv)
{
	const char *storage = NULL, *name = NULL;
	struct cli_opt opts[] = {
		{ "storage", CLI_OPT_STR, &storage },
		{ "name", CLI_OPT_STR, &name },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char *pos[1], st[UTIL_NAME_MAX + 1];
	json_t *reply = NULL;
	long long size;
	int rc, fd;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (name == NULL)
		name = strrchr(pos[0], '/') ? strrchr(pos[0], '/') + 1 : pos[0];
	if (!beneath_upload_name_ok(name)) {
		cli_err("invalid ISO name \"%.64s\": 1-200 letters, digits, '.', "
		    "'_', '-' or '+', not starting with '.' (use --name)", name);
		return CLI_EXIT_FAIL;
	}
	if (cli_media_storage(c, storage, st, sizeof(st)) != 0 ||
	    (fd = cli_media_open("iso upload", pos[0], &size)) < 0)
		return cli_fail(c);
	reply = cli_media_put(c, st, BENEATH_AREA_ISOS, name, fd, size);
	close(fd);
	if (reply == NULL)
		return cli_fail(c);
	if (c->json)
		cli_out_json(reply);
	else
		printf("uploaded isos/%s to storage %s (%lld bytes, sha256 %s)\n",
		    name, st, (long long)json_integer_value(json_object_get(reply,
		    "size_bytes")), json_string_value(json_object_get(reply,
		    "sha256")) ? json_string_value(json_object_get(reply,
		    "sha256")) : "-");
	json_decref(reply);
	return CLI_EXIT_OK;
}

int
cli_iso_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "SIZE", "size_bytes", CLI_F_BYTES },
		{ "SHA256", "sha256", CLI_F_STR }, { "PATH", "path", CLI_F_STR },
	};
	const char *storage = NULL;
	struct cli_opt opts[] = {
		{ "storage", CLI_OPT_STR, &storage },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char st[UTIL_NAME_MAX + 1], path[CLI_PATH_MAX];
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	if (cli_media_storage(c, storage, st, sizeof(st)) != 0 ||
	    util_fmt(path, sizeof(path), "/storage/%s/isos", st) != 0)
		return cli_fail(c);
	return cli_out_list(c, path, cols, NELEM(cols));
}

int
cli_iso_delete(struct cli_ctx *c, int argc, char **argv)
{
	const char *storage = NULL;
	struct cli_opt opts[] = {
		{ "storage", CLI_OPT_STR, &storage },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char *pos[1], st[UTIL_NAME_MAX + 1], path[CLI_PATH_MAX];
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (!beneath_upload_name_ok(pos[0])) {
		cli_err("invalid ISO name \"%.64s\"", pos[0]);
		return CLI_EXIT_FAIL;
	}
	if (cli_media_storage(c, storage, st, sizeof(st)) != 0 ||
	    util_fmt(path, sizeof(path), "/storage/%s/isos/%s", st,
	    pos[0]) != 0)
		return cli_fail(c);
	return cli_call(c, "DELETE", path, NULL, NULL, "iso %s deleted\n",
	    pos[0]);
}
