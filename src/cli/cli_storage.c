/* cli_storage.c - `cvirt image|snapshot|backup ...` and `vm clone|template`:
 * thin layers over /api/v1/images, /vms/NAME/snapshots, /backups. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "common/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The result line of a finished task: fmt gets the two arguments. */
struct cli_st_done {
	const char	*fmt;
	const char	*a, *b;
};

static void
cli_st_done(struct cli_ctx *c, json_t *task, void *arg)
{
	const struct cli_st_done *d = arg;
	char line[512];

	(void)c;
	(void)task;
	snprintf(line, sizeof(line), d->fmt, d->a, d->b ? d->b : "");
	cli_out_clean(line, line, sizeof(line));
	printf("%s\n", line);
}

/* One request answered by a task, then wait for it (or --no-wait). */
static int
cli_st_task(struct cli_ctx *c, const char *method, const char *path,
    json_t *body, int no_wait, struct cli_st_done *done)
{
	json_t *task = NULL;
	int rc = CLI_EXIT_FAIL;

	if (cli_api(c, method, path, body, &task) == 0)
		rc = cli_task_finish(c, task, no_wait, cli_st_done, done);
	json_decref(task);
	json_decref(body);
	return rc;
}

/* ---- images ------------------------------------------------------------- */

int
cli_image_import(struct cli_ctx *c, int argc, char **argv)
{
	const char *name = NULL, *storage = NULL, *host = NULL;
	int no_wait = 0, rc;
	struct cli_opt opts[] = {
		{ "name", CLI_OPT_STR, &name },
		{ "storage", CLI_OPT_STR, &storage },
		{ "host", CLI_OPT_STR, &host },
		{ "no-wait", CLI_OPT_FLAG, &no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	struct cli_st_done done = { "image %s imported", NULL, NULL };
	char *pos[1], ref[PATH_MAX];
	json_t *body;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (name == NULL)
		return cli_usage_error(c, "--name is required");
	if (cli_check_name("image", name) != 0 ||
	    (storage && cli_check_name("storage", storage) != 0) ||
	    (host && cli_check_name("host", host) != 0))
		return CLI_EXIT_FAIL;
	/* The hosts' file in images/, or this client's uploaded there
	 * first (cli_media.c). */
	if (cli_media_arg(c, "image import", "images", pos[0], storage, ref,
	    sizeof(ref), NULL) != 0)
		return CLI_EXIT_FAIL;
	body = json_pack("{s:s, s:s}", "file", ref, "name", name);
	if (storage)
		json_object_set_new(body, "storage", json_string(storage));
	if (host)
		json_object_set_new(body, "host", json_string(host));
	done.a = name;
	return cli_st_task(c, "POST", "/images", body, no_wait, &done);
}

int
cli_image_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "STORAGE", "storage", CLI_F_STR },
		{ "STATE", "state", CLI_F_STR },
		{ "VIRTUAL", "virtual_size", CLI_F_BYTES },
		{ "SIZE", "size_bytes", CLI_F_BYTES },
		{ "FROM", "source_format", CLI_F_STR },
		{ "CREATED", "created", CLI_F_STR },
	};
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	return cli_out_list(c, "/images", cols, NELEM(cols));
}

int
cli_image_delete(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[1], path[128];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("image", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/images/%s", pos[0]);
	if (cli_api(c, "DELETE", path, NULL, NULL) != 0)
		return CLI_EXIT_FAIL;
	if (!c->json)
		printf("image %s deleted\n", pos[0]);
	else
		printf("{}\n");
	return CLI_EXIT_OK;
}

/* ---- snapshots ---------------------------------------------------------- */

/* VM and SNAP positional arguments, checked. */
static int
cli_snap_args(struct cli_ctx *c, int argc, char **argv, int nsnap,
    char **pos, int *no_wait, int *rc)
{
	struct cli_opt opts[] = {
		{ "no-wait", CLI_OPT_FLAG, no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};

	if (cli_opts_parse(c, argc, argv, opts, pos, 1 + nsnap, 1 + nsnap, NULL,
	    rc) != 0)
		return -1;
	*rc = CLI_EXIT_FAIL;
	if (cli_check_name("VM", pos[0]) != 0 ||
	    (nsnap && cli_check_name("snapshot", pos[1]) != 0))
		return -1;
	return 0;
}

int
cli_snapshot_create(struct cli_ctx *c, int argc, char **argv)
{
	struct cli_st_done done = { "snapshot %s of vm %s created", NULL, NULL };
	char *pos[2], path[128];
	int no_wait = 0, rc;

	if (cli_snap_args(c, argc, argv, 1, pos, &no_wait, &rc) != 0)
		return rc;
	snprintf(path, sizeof(path), "/vms/%s/snapshots", pos[0]);
	done.a = pos[1];
	done.b = pos[0];
	return cli_st_task(c, "POST", path, json_pack("{s:s}", "name", pos[1]),
	    no_wait, &done);
}

int
cli_snapshot_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "CREATED", "created", CLI_F_STR },
		{ "RUNNING", "running", CLI_F_BOOL },
		{ "DISKS", "disks", CLI_F_COUNT },
	};
	char *pos[1], path[128];
	int no_wait = 0, rc;

	if (cli_snap_args(c, argc, argv, 0, pos, &no_wait, &rc) != 0)
		return rc;
	snprintf(path, sizeof(path), "/vms/%s/snapshots", pos[0]);
	return cli_out_list(c, path, cols, NELEM(cols));
}

int
cli_snapshot_revert(struct cli_ctx *c, int argc, char **argv)
{
	struct cli_st_done done = { "vm %s reverted to snapshot %s", NULL,
	    NULL };
	char *pos[2], path[192];
	int no_wait = 0, rc;

	if (cli_snap_args(c, argc, argv, 1, pos, &no_wait, &rc) != 0)
		return rc;
	snprintf(path, sizeof(path), "/vms/%s/snapshots/%s/revert", pos[0],
	    pos[1]);
	done.a = pos[0];
	done.b = pos[1];
	return cli_st_task(c, "POST", path, NULL, no_wait, &done);
}

int
cli_snapshot_delete(struct cli_ctx *c, int argc, char **argv)
{
	struct cli_st_done done = { "snapshot %s of vm %s deleted", NULL, NULL };
	char *pos[2], path[192];
	int no_wait = 0, rc;

	if (cli_snap_args(c, argc, argv, 1, pos, &no_wait, &rc) != 0)
		return rc;
	snprintf(path, sizeof(path), "/vms/%s/snapshots/%s", pos[0], pos[1]);
	done.a = pos[1];
	done.b = pos[0];
	return cli_st_task(c, "DELETE", path, NULL, no_wait, &done);
}

/* ---- backups ------------------------------------------------------------ */

static void
cli_backup_done(struct cli_ctx *c, json_t *task, void *arg)
{
	json_t *res = json_object_get(task, "result");
	char line[256];

	(void)c;
	(void)arg;
	snprintf(line, sizeof(line), "backup %s of vm %s created (%lld bytes)",
	    cli_json_str(res, "id", "?"), cli_json_str(res, "vm", "?"),
	    (long long)json_integer_value(json_object_get(res, "size_bytes")));
	cli_out_clean(line, line, sizeof(line));
	printf("%s\n", line);
}

int
cli_backup_create(struct cli_ctx *c, int argc, char **argv)
{
	const char *storage = NULL, *keep = NULL;
	int no_wait = 0, rc;
	struct cli_opt opts[] = {
		{ "storage", CLI_OPT_STR, &storage },
		{ "keep", CLI_OPT_STR, &keep },
		{ "no-wait", CLI_OPT_FLAG, &no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	json_t *body, *task = NULL;
	char *pos[1], path[128];
	uint64_t k = 0;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("VM", pos[0]) != 0 ||
	    (storage && cli_check_name("storage", storage) != 0) ||
	    (keep && cli_parse_num("--keep", keep, 1, 10000, &k) != 0))
		return CLI_EXIT_FAIL;
	body = json_object();
	if (storage)
		json_object_set_new(body, "storage", json_string(storage));
	if (keep)
		json_object_set_new(body, "keep", json_integer((json_int_t)k));
	snprintf(path, sizeof(path), "/vms/%s/backups", pos[0]);
	rc = CLI_EXIT_FAIL;
	if (cli_api(c, "POST", path, body, &task) == 0)
		rc = cli_task_finish(c, task, no_wait, cli_backup_done, NULL);
	json_decref(task);
	json_decref(body);
	return rc;
}

int
cli_backup_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "ID", "id", CLI_F_STR }, { "VM", "vm", CLI_F_STR },
		{ "STORAGE", "storage", CLI_F_STR }, { "STATE", "state", CLI_F_STR },
		{ "SIZE", "size_bytes", CLI_F_BYTES },
		{ "CREATED", "created", CLI_F_STR },
	};
	char *pos[1], path[128];
	int n = 0, rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 0, 1, &n, &rc) != 0)
		return rc;
	if (n == 1 && cli_check_name("VM", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	if (n == 1)
		snprintf(path, sizeof(path), "/backups?vm=%s", pos[0]);
	else
		snprintf(path, sizeof(path), "/backups");
	return cli_out_list(c, path, cols, NELEM(cols));
}

int
cli_backup_restore(struct cli_ctx *c, int argc, char **argv)
{
	const char *name = NULL, *storage = NULL;
	int no_wait = 0, rc;
	struct cli_opt opts[] = {
		{ "name", CLI_OPT_STR, &name },
		{ "storage", CLI_OPT_STR, &storage },
		{ "no-wait", CLI_OPT_FLAG, &no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	struct cli_st_done done = { "backup %s restored as vm %s", NULL, NULL };
	char *pos[1], path[128];
	json_t *body;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (name == NULL)
		return cli_usage_error(c, "--name is required");
	if (cli_check_name("backup", pos[0]) != 0 ||
	    cli_check_name("VM", name) != 0 ||
	    (storage && cli_check_name("storage", storage) != 0))
		return CLI_EXIT_FAIL;
	body = json_pack("{s:s}", "name", name);
	if (storage)
		json_object_set_new(body, "storage", json_string(storage));
	snprintf(path, sizeof(path), "/backups/%s/restore", pos[0]);
	done.a = pos[0];
	done.b = name;
	return cli_st_task(c, "POST", path, body, no_wait, &done);
}

/* backup show ID, backup verify ID, backup delete ID */
int
cli_backup_show(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col fields[] = {
		{ "id", "id", CLI_F_STR }, { "vm", "vm", CLI_F_STR },
		{ "storage", "storage", CLI_F_STR }, { "state", "state", CLI_F_STR },
		{ "size", "size_bytes", CLI_F_BYTES },
		{ "created", "created", CLI_F_STR },
	};
	static const struct cli_col disks[] = {
		{ "NAME", "name", CLI_F_STR }, { "SIZE", "size_bytes", CLI_F_BYTES },
		{ "VIRTUAL", "virtual_size", CLI_F_BYTES },
		{ "SHA256", "sha256", CLI_F_STR },
	};
	char *pos[1], path[128];
	json_t *b = NULL;
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("backup", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/backups/%s", pos[0]);
	if (cli_api(c, "GET", path, NULL, &b) != 0)
		return CLI_EXIT_FAIL;
	if (c->json) {
		cli_out_json(b);
	} else {
		cli_out_kv(b, fields, NELEM(fields));
		cli_out_sublist("disks", json_object_get(b, "disks"), disks,
		    NELEM(disks));
	}
	json_decref(b);
	return CLI_EXIT_OK;
}

int
cli_backup_verify(struct cli_ctx *c, int argc, char **argv)
{
	struct cli_st_done done = { "backup %s is intact%s", NULL, NULL };
	char *pos[1], path[128];
	int no_wait = 0, rc;
	struct cli_opt opts[] = {
		{ "no-wait", CLI_OPT_FLAG, &no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("backup", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/backups/%s/verify", pos[0]);
	done.a = pos[0];
	return cli_st_task(c, "POST", path, NULL, no_wait, &done);
}

int
cli_backup_delete(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[1], path[128];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("backup", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/backups/%s", pos[0]);
	if (cli_api(c, "DELETE", path, NULL, NULL) != 0)
		return CLI_EXIT_FAIL;
	printf(c->json ? "{}\n" : "backup %s deleted\n", pos[0]);
	return CLI_EXIT_OK;
}

/* ---- clones and templates ----------------------------------------------- */

int
cli_vm_clone(struct cli_ctx *c, int argc, char **argv)
{
	const char *storage = NULL;
	int linked = 0, no_wait = 0, rc;
	struct cli_opt opts[] = {
		{ "linked", CLI_OPT_FLAG, &linked },
		{ "storage", CLI_OPT_STR, &storage },
		{ "no-wait", CLI_OPT_FLAG, &no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	struct cli_st_done done = { "vm %s cloned as %s", NULL, NULL };
	char *pos[2], path[128];
	json_t *body;

	if (cli_opts_parse(c, argc, argv, opts, pos, 2, 2, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("VM", pos[0]) != 0 || cli_check_name("VM",
	    pos[1]) != 0 || (storage && cli_check_name("storage", storage) != 0))
		return CLI_EXIT_FAIL;
	body = json_pack("{s:s, s:b}", "name", pos[1], "linked", linked);
	if (storage)
		json_object_set_new(body, "storage", json_string(storage));
	snprintf(path, sizeof(path), "/vms/%s/clone", pos[0]);
	done.a = pos[0];
	done.b = pos[1];
	return cli_st_task(c, "POST", path, body, no_wait, &done);
}

int
cli_vm_template(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[1], path[128];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("VM", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/vms/%s/template", pos[0]);
	return cli_call(c, "POST", path, NULL, NULL, "vm %s is now a template\n",
	    pos[0]);
}

/* ---- disks -------------------------------------------------------------- */

int
cli_disk_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "SIZE", "size_mib", CLI_F_MIB },
		{ "FORMAT", "format", CLI_F_STR }, { "FILE", "file", CLI_F_STR },
	};
	char *pos[1], path[128];
	json_t *vm = NULL;
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("VM", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/vms/%s", pos[0]);
	if (cli_api(c, "GET", path, NULL, &vm) != 0)
		return CLI_EXIT_FAIL;
	if (c->json)
		cli_out_json(json_object_get(vm, "disks"));
	else
		cli_out_table(json_object_get(vm, "disks"), cols, NELEM(cols));
	json_decref(vm);
	return CLI_EXIT_OK;
}

/* disk add VM --size MIB; disk resize VM DISK --size MIB */
static int
cli_disk_op(struct cli_ctx *c, int argc, char **argv, int resize)
{
	const char *size = NULL;
	int no_wait = 0, rc;
	struct cli_opt opts[] = {
		{ "size", CLI_OPT_STR, &size },
		{ "no-wait", CLI_OPT_FLAG, &no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	struct cli_st_done done = { resize ? "vm %s: disk %s resized" :
	    "vm %s: disk added%s", NULL, NULL };
	char *pos[2], path[192];
	uint64_t mib;

	if (cli_opts_parse(c, argc, argv, opts, pos, resize ? 2 : 1,
	    resize ? 2 : 1, NULL, &rc) != 0)
		return rc;
	if (size == NULL)
		return cli_usage_error(c, "--size is required");
	if (cli_check_name("VM", pos[0]) != 0 ||
	    (resize && cli_check_name("disk", pos[1]) != 0) ||
	    cli_parse_num("--size (MiB)", size, 1, 67108864, &mib) != 0)
		return CLI_EXIT_FAIL;
	if (resize)
		snprintf(path, sizeof(path), "/vms/%s/disks/%s/resize", pos[0],
		    pos[1]);
	else
		snprintf(path, sizeof(path), "/vms/%s/disks", pos[0]);
	done.a = pos[0];
	done.b = resize ? pos[1] : "";
	return cli_st_task(c, "POST", path, json_pack("{s:I}", "size_mib",
	    (json_int_t)mib), no_wait, &done);
}

int
cli_disk_add(struct cli_ctx *c, int argc, char **argv)
{
	return cli_disk_op(c, argc, argv, 0);
}

int
cli_disk_resize(struct cli_ctx *c, int argc, char **argv)
{
	return cli_disk_op(c, argc, argv, 1);
}

/* ---- boot media for vm create ------------------------------------------- */

/* A small text file's content (user-data, a public key). */
static char *
cli_st_read(const char *opt, const char *path, size_t max)
{
	size_t len;
	char *s = util_read_file(path, max, &len);

	if (s == NULL)
		cli_err("%s %s: %s", opt, path, errno == EFBIG ?
		    "file too large" : strerror(errno));
	else if (strlen(s) != len) {
		cli_err("%s %s: not a text file", opt, path);
		free(s);
		s = NULL;
	}
	return s;
}

int
cli_vm_boot_media(struct cli_ctx *c, const char *cdrom, const char *storage,
    const char *hostname, const char *user_data, const char *ssh_key,
    json_t *body)
{
	char ref[PATH_MAX], *text = NULL;
	json_t *ci;

	/* The hosts' ISO, or this client's uploaded first (cli_media.c). */
	if (cdrom) {
		if (cli_media_arg(c, "--cdrom", "isos", cdrom, storage, ref,
		    sizeof(ref), NULL) != 0)
			return -1;
		json_object_set_new(body, "cdrom", json_string(ref));
	}
	if (!hostname && !user_data && !ssh_key)
		return 0;
	ci = json_object();
	json_object_set_new(body, "cloud_init", ci);
	if (hostname)
		json_object_set_new(ci, "hostname", json_string(hostname));
	if (user_data) {
		if ((text = cli_st_read("--user-data", user_data, 65536)) == NULL)
			return -1;
		json_object_set_new(ci, "user_data", json_string(text));
		free(text);
	}
	if (ssh_key) {
		if ((text = cli_st_read("--ssh-key", ssh_key, 8192)) == NULL)
			return -1;
		text[strcspn(text, "\r\n")] = '\0';
		json_object_set_new(ci, "ssh_keys", json_pack("[s]", text));
		free(text);
	}
	return 0;
}

int
cli_vm_firmware(const char *firmware, json_t *body)
{
	if (firmware == NULL)
		return 0;
	if (strcmp(firmware, "bios") != 0 && strcmp(firmware, "uefi") != 0) {
		cli_err("--firmware must be bios or uefi, not \"%s\"", firmware);
		return -1;
	}
	json_object_set_new(body, "firmware", json_string(firmware));
	return 0;
}
