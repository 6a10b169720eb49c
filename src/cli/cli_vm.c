/* cli_vm.c - `cvirt vm ...`: create, list, show, the lifecycle operations
 * (each a task the client waits on) and the captured serial output. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_int.h"
#include "common/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Limits from docs/api.md, checked here before anything is sent. */
#define CLI_VM_CPUS_MAX		256
#define CLI_VM_MEM_MIN		16
#define CLI_VM_MEM_MAX		4194304
#define CLI_VM_DISK_MAX		67108864
#define CLI_VM_PATH_MAX		4095
#define CLI_VM_CMDLINE_MAX	1024
#define CLI_VM_TIMEOUT_MAX	3600
#define CLI_SERIAL_POLL_MS	200

struct cli_vm_create_opts {
	const char	*cpus, *memory, *disk, *image, *kernel, *initrd;
	const char	*cmdline, *net, *host, *storage, *ha_monitor;
	const char	*affinity, *anti_affinity;
	const char	*cdrom, *hostname, *user_data, *ssh_key; /* boot media */
	const char	*firmware;
	const char	*display;	/* vnc|none: graphical console */
	int		 ha;
};

/* --kernel/--initrd: the hosts' file, or this client's uploaded first
 * (cli_media.c decides which, by one rule). */
static int
cli_vm_bootfile(struct cli_ctx *c, const char *opt, const char *arg,
    const char *storage, json_t *body, const char *key)
{
	char ref[CLI_VM_PATH_MAX + 1];

	if (cli_media_arg(c, opt, "kernels", arg, storage, ref, sizeof(ref),
	    NULL) != 0)
		return -1;
	json_object_set_new(body, key, json_string(ref));
	return 0;
}

static int
cli_vm_ha_monitor_valid(const char *m)
{
	static const char *const kinds[] = {
		"process", "panic", "watchdog", "heartbeat",
	};
	uint64_t port;
	size_t i;

	for (i = 0; i < NELEM(kinds); i++)
		if (strcmp(m, kinds[i]) == 0)
			return 1;
	return strncmp(m, "tcp:", 4) == 0 &&
	    util_parse_u64(m + 4, 1, 65535, &port) == 0;
}

/* --net A,B,...: one NIC per network, in order. */
static int
cli_vm_nets(const char *list, json_t *body)
{
	char buf[1024], *p, *save = NULL;
	json_t *nics = json_array();

	if (strlen(list) >= sizeof(buf)) {
		cli_err("--net is too long");
		goto fail;
	}
	snprintf(buf, sizeof(buf), "%s", list);
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (cli_check_name("network", p) != 0)
			goto fail;
		json_array_append_new(nics, json_pack("{s:s}", "network", p));
	}
	if (json_array_size(nics) == 0) {
		cli_err("--net names no network");
		goto fail;
	}
	json_object_set_new(body, "nics", nics);
	return 0;
fail:
	json_decref(nics);
	return -1;
}

/* Names and boot files of a create request into body. */
static int
cli_vm_create_refs(struct cli_ctx *c, const struct cli_vm_create_opts *o,
    json_t *body)
{
	if ((o->image && cli_check_name("image", o->image) != 0) ||
	    (o->net && !strchr(o->net, ',') &&
	    cli_check_name("network", o->net) != 0) ||
	    (o->host && cli_check_name("host", o->host) != 0) ||
	    (o->storage && cli_check_name("storage", o->storage) != 0))
		return -1;
	if ((o->initrd || o->cmdline) && o->kernel == NULL) {
		cli_err("--%s needs --kernel", o->initrd ? "initrd" : "cmdline");
		return -1;
	}
	if (o->kernel && cli_vm_bootfile(c, "--kernel", o->kernel, o->storage,
	    body, "kernel") != 0)
		return -1;
	if (o->initrd && cli_vm_bootfile(c, "--initrd", o->initrd, o->storage,
	    body, "initrd") != 0)
		return -1;
	if (o->cmdline && strlen(o->cmdline) > CLI_VM_CMDLINE_MAX) {
		cli_err("--cmdline is longer than %d bytes", CLI_VM_CMDLINE_MAX);
		return -1;
	}
	if (o->ha_monitor && !cli_vm_ha_monitor_valid(o->ha_monitor)) {
		cli_err("--ha-monitor must be process, panic, watchdog, "
		    "heartbeat or tcp:PORT, not \"%s\"", o->ha_monitor);
		return -1;
	}
	if (o->image)
		json_object_set_new(body, "image", json_string(o->image));
	if (o->cmdline)
		json_object_set_new(body, "cmdline", json_string(o->cmdline));
	if (o->net && strchr(o->net, ',') == NULL)
		json_object_set_new(body, "network", json_string(o->net));
	else if (o->net && cli_vm_nets(o->net, body) != 0)
		return -1;
	if (o->host)
		json_object_set_new(body, "host", json_string(o->host));
	if (o->storage)
		json_object_set_new(body, "storage", json_string(o->storage));
	if (o->ha)
		json_object_set_new(body, "ha", json_true());
	if (o->ha_monitor)
		json_object_set_new(body, "ha_monitor",
		    json_string(o->ha_monitor));
	if (o->affinity)
		json_object_set_new(body, "affinity", json_string(o->affinity));
	if (o->anti_affinity)
		json_object_set_new(body, "anti_affinity",
		    json_string(o->anti_affinity));
	if (o->display) {
		if (strcmp(o->display, "vnc") != 0 &&
		    strcmp(o->display, "none") != 0) {
			cli_err("--display wants vnc or none");
			return -1;
		}
		json_object_set_new(body, "display", json_string(o->display));
	}
	return 0;
}

/* The POST /vms body, validated; NULL after printing one line. */
static json_t *
cli_vm_create_body(struct cli_ctx *c, const char *name,
    const struct cli_vm_create_opts *o)
{
	uint64_t cpus, mem, disk = 0;
	json_t *body = NULL;

	if (cli_check_name("VM", name) != 0 ||
	    cli_parse_num("--cpus", o->cpus, 1, CLI_VM_CPUS_MAX, &cpus) != 0 ||
	    cli_parse_num("--memory (MiB)", o->memory, CLI_VM_MEM_MIN,
	    CLI_VM_MEM_MAX, &mem) != 0 ||
	    (o->disk && cli_parse_num("--disk (MiB)", o->disk, 1,
	    CLI_VM_DISK_MAX, &disk) != 0))
		goto fail;
	body = json_pack("{s:s, s:I, s:I}", "name", name, "cpus",
	    (json_int_t)cpus, "memory_mib", (json_int_t)mem);
	if (body == NULL) {
		cli_err("out of memory");
		goto fail;
	}
	if (o->disk)
		json_object_set_new(body, "disk_mib", json_integer(
		    (json_int_t)disk));
	if (cli_vm_create_refs(c, o, body) != 0 ||
	    cli_vm_boot_media(c, o->cdrom, o->storage, o->hostname,
	    o->user_data, o->ssh_key, body) != 0 || cli_vm_firmware(o->firmware, body) != 0)
		goto fail;
	return body;
fail:
	json_decref(body);
	return NULL;
}

int
cli_vm_create(struct cli_ctx *c, int argc, char **argv)
{
	struct cli_vm_create_opts o;
	const struct cli_opt opts[] = {
		{ "cpus", CLI_OPT_STR, &o.cpus },
		{ "memory", CLI_OPT_STR, &o.memory },
		{ "disk", CLI_OPT_STR, &o.disk },
		{ "image", CLI_OPT_STR, &o.image },
		{ "kernel", CLI_OPT_STR, &o.kernel },
		{ "initrd", CLI_OPT_STR, &o.initrd },
		{ "cmdline", CLI_OPT_STR, &o.cmdline },
		{ "net", CLI_OPT_STR, &o.net },
		{ "host", CLI_OPT_STR, &o.host },
		{ "storage", CLI_OPT_STR, &o.storage },
		{ "ha", CLI_OPT_FLAG, &o.ha },
		{ "ha-monitor", CLI_OPT_STR, &o.ha_monitor },
		{ "affinity", CLI_OPT_STR, &o.affinity },
		{ "anti-affinity", CLI_OPT_STR, &o.anti_affinity },
		{ "cdrom", CLI_OPT_STR, &o.cdrom },
		{ "hostname", CLI_OPT_STR, &o.hostname },
		{ "user-data", CLI_OPT_STR, &o.user_data },
		{ "ssh-key", CLI_OPT_STR, &o.ssh_key },
		{ "firmware", CLI_OPT_STR, &o.firmware },
		{ "display", CLI_OPT_STR, &o.display },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	json_t *body = NULL, *vm = NULL;
	char *pos[1];
	int rc;

	memset(&o, 0, sizeof(o));
	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (o.cpus == NULL || o.memory == NULL)
		return cli_usage_error(c, "--%s is required",
		    o.cpus == NULL ? "cpus" : "memory");
	rc = CLI_EXIT_FAIL;
	if ((body = cli_vm_create_body(c, pos[0], &o)) == NULL)
		goto cleanup;
	if (cli_api(c, "POST", "/vms", body, &vm) != 0)
		goto cleanup;
	if (c->json)
		cli_out_json(vm);
	else
		printf("vm %s created (%s)\n", pos[0],
		    cli_json_str(vm, "state", "stopped"));
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(body);
	json_decref(vm);
	return rc;
}

int
cli_vm_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "STATE", "state", CLI_F_STR },
		{ "HOST", "host", CLI_F_STR }, { "CPUS", "cpus", CLI_F_STR },
		{ "MEMORY", "memory_mib", CLI_F_MIB },
		{ "HA", "ha", CLI_F_BOOL },
	};
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	return cli_out_list(c, "/vms", cols, NELEM(cols));
}

static void
cli_vm_print(json_t *vm)
{
	static const struct cli_col fields[] = {
		{ "name", "name", CLI_F_STR }, { "uuid", "uuid", CLI_F_STR },
		{ "state", "state", CLI_F_STR }, { "host", "host", CLI_F_STR },
		{ "cpus", "cpus", CLI_F_STR },
		{ "memory", "memory_mib", CLI_F_MIB },
		{ "ha", "ha", CLI_F_BOOL },
		{ "protected", "protected", CLI_F_BOOL },
		{ "ha_monitor", "ha_monitor", CLI_F_STR },
		{ "storage", "storage", CLI_F_STR },
		{ "kernel", "kernel", CLI_F_STR },
		{ "initrd", "initrd", CLI_F_STR },
		{ "cmdline", "cmdline", CLI_F_STR },
		{ "pid", "pid", CLI_F_STR },
		{ "created", "created", CLI_F_STR },
	};
	static const struct cli_col disks[] = {
		{ "NAME", "name", CLI_F_STR }, { "SIZE", "size_mib", CLI_F_MIB },
		{ "FORMAT", "format", CLI_F_STR }, { "FILE", "file", CLI_F_STR },
	};
	static const struct cli_col nics[] = {
		{ "MAC", "mac", CLI_F_STR }, { "NETWORK", "network", CLI_F_STR },
		{ "IP", "ip", CLI_F_STR }, { "MODEL", "model", CLI_F_STR },
	};

	json_t *why;
	size_t i;

	cli_out_kv(vm, fields, NELEM(fields));
	/* HA: why no other host could restart it now, a line each. */
	if (json_array_size(json_object_get(vm, "protection_reasons")) > 0) {
		printf("protection_reasons:\n");
		json_array_foreach(json_object_get(vm, "protection_reasons"), i,
		    why)
			printf("  %s\n", json_string_value(why) ?
			    json_string_value(why) : "?");
	}
	cli_out_sublist("disks", json_object_get(vm, "disks"), disks,
	    NELEM(disks));
	cli_out_sublist("nics", json_object_get(vm, "nics"), nics,
	    NELEM(nics));
}

/* GET /vms/NAME into *vm (an object); prints one line on failure. */
static int
cli_vm_get(struct cli_ctx *c, const char *name, json_t **vm)
{
	char path[128];

	*vm = NULL;
	snprintf(path, sizeof(path), "/vms/%s", name);
	if (cli_api(c, "GET", path, NULL, vm) != 0)
		return -1;
	if (!json_is_object(*vm)) {
		cli_err("unexpected reply from the manager for vm %s", name);
		json_decref(*vm);
		*vm = NULL;
		return -1;
	}
	return 0;
}

int
cli_vm_show(struct cli_ctx *c, int argc, char **argv)
{
	json_t *vm = NULL;
	char *pos[1];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("VM", pos[0]) != 0 ||
	    cli_vm_get(c, pos[0], &vm) != 0)
		return CLI_EXIT_FAIL;
	if (c->json)
		cli_out_json(vm);
	else
		cli_vm_print(vm);
	json_decref(vm);
	return CLI_EXIT_OK;
}

/* A lifecycle operation: how it is sent and what it takes. */
struct cli_vm_op {
	const char	*verb;
	const char	*past;		/* for "vm NAME <past>" */
	int		 send_force;	/* "force" in the body */
	int		 timeout;	/* takes --timeout */
	int		 host;		/* takes --host */
};

static const struct cli_vm_op cli_vm_ops[] = {
	{ "start",	"started",	0, 0, 1 },
	{ "stop",	"stopped",	1, 1, 0 },
	{ "reboot",	"rebooted",	1, 0, 0 },
	{ "pause",	"paused",	0, 0, 0 },
	{ "resume",	"resumed",	0, 0, 0 },
	{ "delete",	"deleted",	0, 0, 0 },
};

struct cli_vm_done_arg {
	const struct cli_vm_op	*op;
	const char		*name;
};

/* "vm t1 started on h1": the host from the task's result, else the VM. */
static void
cli_vm_op_done(struct cli_ctx *c, json_t *task, void *arg)
{
	const struct cli_vm_done_arg *a = arg;
	json_t *res = json_object_get(task, "result"), *vm = NULL;
	const char *host = cli_json_str(res, "host", NULL);
	char err[256], path[128], line[256];

	if (strcmp(a->op->verb, "start") == 0 && host == NULL) {
		snprintf(path, sizeof(path), "/vms/%s", a->name);
		if (cli_api_try(c, "GET", path, NULL, &vm, err,
		    sizeof(err)) == 0)
			host = cli_json_str(vm, "host", NULL);
	}
	snprintf(line, sizeof(line), "vm %s %s%s%s", a->name, a->op->past,
	    host && strcmp(a->op->verb, "start") == 0 ? " on " : "",
	    host && strcmp(a->op->verb, "start") == 0 ? host : "");
	cli_out_clean(line, line, sizeof(line));
	printf("%s\n", line);
	json_decref(vm);
}

/* What the user asked of a lifecycle operation. */
struct cli_vm_req {
	const char	*name;
	const char	*host;		/* or NULL */
	int		 force;
	int		 has_timeout;
	uint64_t	 timeout;
};

/* The request for op: path and body (NULL when none). */
static int
cli_vm_op_request(const struct cli_vm_op *op, const struct cli_vm_req *q,
    char *path, size_t size, json_t **body)
{
	*body = NULL;
	if (strcmp(op->verb, "delete") == 0)
		return util_fmt(path, size, "/vms/%s%s", q->name,
		    q->force ? "?force=1" : "");
	if (op->send_force || q->host != NULL || q->has_timeout)
		*body = json_object();
	if (op->send_force && q->force)
		json_object_set_new(*body, "force", json_true());
	if (q->has_timeout)
		json_object_set_new(*body, "timeout_s",
		    json_integer((json_int_t)q->timeout));
	if (q->host != NULL)
		json_object_set_new(*body, "host", json_string(q->host));
	return util_fmt(path, size, "/vms/%s/%s", q->name, op->verb);
}

static int
cli_vm_op_run(struct cli_ctx *c, const struct cli_vm_op *op, int argc,
    char **argv)
{
	struct cli_vm_req q = { NULL, NULL, 0, 0, 0 };
	struct cli_vm_done_arg done = { op, NULL };
	const char *timeout = NULL;
	struct cli_opt opts[5];
	json_t *body = NULL, *task = NULL;
	char *pos[1], path[160];
	int no_wait = 0, rc;
	size_t n = 0;

	opts[n++] = (struct cli_opt){ "force", CLI_OPT_FLAG, &q.force };
	opts[n++] = (struct cli_opt){ "no-wait", CLI_OPT_FLAG, &no_wait };
	if (op->timeout)
		opts[n++] = (struct cli_opt){ "timeout", CLI_OPT_STR, &timeout };
	if (op->host)
		opts[n++] = (struct cli_opt){ "host", CLI_OPT_STR, &q.host };
	opts[n] = (struct cli_opt){ NULL, CLI_OPT_FLAG, NULL };
	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	rc = CLI_EXIT_FAIL;
	q.name = done.name = pos[0];
	q.has_timeout = timeout != NULL;
	if (cli_check_name("VM", q.name) != 0 ||
	    (q.host && cli_check_name("host", q.host) != 0) ||
	    (timeout && cli_parse_num("--timeout (seconds)", timeout, 0,
	    CLI_VM_TIMEOUT_MAX, &q.timeout) != 0))
		goto cleanup;
	if (cli_vm_op_request(op, &q, path, sizeof(path), &body) != 0) {
		cli_err("request too long");
		goto cleanup;
	}
	if (cli_api(c, strcmp(op->verb, "delete") == 0 ? "DELETE" : "POST",
	    path, body, &task) != 0)
		goto cleanup;
	rc = cli_task_finish(c, task, no_wait, cli_vm_op_done, &done);
cleanup:
	json_decref(body);
	json_decref(task);
	return rc;
}

int
cli_vm_start(struct cli_ctx *c, int argc, char **argv)
{
	return cli_vm_op_run(c, &cli_vm_ops[0], argc, argv);
}

int
cli_vm_stop(struct cli_ctx *c, int argc, char **argv)
{
	return cli_vm_op_run(c, &cli_vm_ops[1], argc, argv);
}

int
cli_vm_reboot(struct cli_ctx *c, int argc, char **argv)
{
	return cli_vm_op_run(c, &cli_vm_ops[2], argc, argv);
}

int
cli_vm_pause(struct cli_ctx *c, int argc, char **argv)
{
	return cli_vm_op_run(c, &cli_vm_ops[3], argc, argv);
}

int
cli_vm_resume(struct cli_ctx *c, int argc, char **argv)
{
	return cli_vm_op_run(c, &cli_vm_ops[4], argc, argv);
}

int
cli_vm_delete(struct cli_ctx *c, int argc, char **argv)
{
	return cli_vm_op_run(c, &cli_vm_ops[5], argc, argv);
}

static volatile sig_atomic_t cli_serial_stop;

static void
cli_serial_onsig(int sig)
{
	(void)sig;
	cli_serial_stop = 1;
}

/* One read of the serial log from *offset; advances *offset. */
static int
cli_serial_read(struct cli_ctx *c, const char *name, long long *offset,
    int print_json)
{
	json_t *r = NULL, *data, *off;
	char path[160];
	int rc = -1;

	if (*offset >= 0)
		snprintf(path, sizeof(path), "/vms/%s/serial?offset=%lld",
		    name, *offset);
	else
		snprintf(path, sizeof(path), "/vms/%s/serial", name);
	if (cli_api(c, "GET", path, NULL, &r) != 0)
		goto cleanup;
	data = json_object_get(r, "data");
	off = json_object_get(r, "offset");
	if (!json_is_string(data) || !json_is_integer(off)) {
		cli_err("unexpected reply from the manager for vm %s's serial "
		    "output", name);
		goto cleanup;
	}
	if (print_json)
		cli_out_json(r);
	else
		fwrite(json_string_value(data), 1, json_string_length(data),
		    stdout);
	fflush(stdout);
	*offset = json_integer_value(off);
	rc = 0;
cleanup:
	json_decref(r);
	return rc;
}

int
cli_vm_serial(struct cli_ctx *c, int argc, char **argv)
{
	struct sigaction sa, old;
	int follow = 0, rc;
	const struct cli_opt opts[] = {
		{ "follow", CLI_OPT_FLAG, &follow },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	long long offset = -1;
	char *pos[1];

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (follow && c->json)
		return cli_usage_error(c, "--follow and --json do not go "
		    "together");
	if (cli_check_name("VM", pos[0]) != 0 ||
	    cli_serial_read(c, pos[0], &offset, c->json) != 0)
		return CLI_EXIT_FAIL;
	if (!follow)
		return CLI_EXIT_OK;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli_serial_onsig;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	sigaction(SIGTERM, &sa, NULL);
	rc = CLI_EXIT_OK;
	while (!cli_serial_stop) {
		util_sleep_ms(CLI_SERIAL_POLL_MS);
		if (!cli_serial_stop &&
		    cli_serial_read(c, pos[0], &offset, 0) != 0) {
			rc = CLI_EXIT_FAIL;
			break;
		}
	}
	sigaction(SIGINT, &old, NULL);
	return rc;
}
