/* vmhost.c - the VMs this host runs: spawn, QMP events, stop (re-attach
 * after an agent restart: vmadopt.c).
 *
 * Each running VM has a monitor thread that owns reading QMP events and
 * notices QEMU's exit. Request threads send QMP commands directly (the QMP
 * layer serialises them). Never hold vm->lock or the table lock across QMP
 * or other I/O. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qmp.h"
#include "storage/store.h"

#define VMHOST_MAX 1024

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct avm *table[VMHOST_MAX];
static pthread_mutex_t exits_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *exits;		/* [{uuid, state, reason, seq}] */
static json_int_t exit_seq;
/* The last exits, acknowledged or not, for vmhost_exit_of(): the manager
 * asks how a migration's destination QEMU ended. */
#define VMHOST_RECENT	64
static json_t *recent;		/* [{uuid, pid, state, reason}], oldest first */

int
vmhost_init(void)
{
	exits = json_array();
	recent = json_array();
	return exits && recent ? 0 : -1;
}

const char *
vmhost_storage_path(const char *name)
{
	int i;

	for (i = 0; name && i < agent_cfg.nstorage; i++)
		if (strcmp(agent_cfg.storage[i].name, name) == 0)
			return agent_cfg.storage[i].path;
	return NULL;
}

static int
vmhost_storage_index(const char *name)
{
	int i;

	for (i = 0; name && i < agent_cfg.nstorage; i++)
		if (strcmp(agent_cfg.storage[i].name, name) == 0)
			return i;
	return -1;
}

int
vmhost_storage_direct(const char *name)
{
	int k = vmhost_storage_index(name);

	return k >= 0 && agent_cfg.storage[k].direct;
}

int
vmhost_domains(json_t *spec, unsigned *mask, char *err, size_t errsz)
{
	const char *name = json_string_value(json_object_get(spec, "storage"));
	json_t *d;
	size_t i;
	int k;

	*mask = 0;
	if ((k = vmhost_storage_index(name)) < 0)
		goto missing;
	*mask |= 1u << k;
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if ((name = json_string_value(json_object_get(d, "storage"))) ==
		    NULL)
			continue;	/* on the VM's own storage */
		if ((k = vmhost_storage_index(name)) < 0)
			goto missing;
		*mask |= 1u << k;
	}
	return 0;
missing:
	snprintf(err, errsz, "storage %s is not attached to host %s",
	    name ? name : "(none)", agent_cfg.name);
	return -1;
}

json_t *
vmhost_domain_names(unsigned mask)
{
	json_t *a = json_array();
	int i;

	for (i = 0; a && i < agent_cfg.nstorage; i++)
		if (mask & (1u << i))
			json_array_append_new(a, json_string(
			    agent_cfg.storage[i].name));
	return a;
}

unsigned
vmhost_domain_mask(json_t *names)
{
	unsigned mask = 0;
	json_t *e;
	size_t i;
	int k;

	json_array_foreach(names, i, e)
		if ((k = vmhost_storage_index(json_string_value(e))) >= 0)
			mask |= 1u << k;
	return mask;
}

static void
vmhost_free(struct avm *vm)
{
	qmp_close(vm->qmp);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

struct avm *
vmhost_get(const char *uuid)
{
	struct avm *vm = NULL;
	int i;

	pthread_mutex_lock(&table_lock);
	for (i = 0; i < VMHOST_MAX; i++) {
		if (table[i] && strcmp(table[i]->uuid, uuid) == 0) {
			vm = table[i];
			pthread_mutex_lock(&vm->lock);
			vm->refs++;
			pthread_mutex_unlock(&vm->lock);
			break;
		}
	}
	pthread_mutex_unlock(&table_lock);
	return vm;
}

void
vmhost_unless_here(const char *uuid, void (*fn)(const char *))
{
	int i, here = 0;

	pthread_mutex_lock(&table_lock);
	for (i = 0; i < VMHOST_MAX; i++)
		if (table[i] && strcmp(table[i]->uuid, uuid) == 0)
			here = 1;
	if (!here)
		fn(uuid);
	pthread_mutex_unlock(&table_lock);
}

void
vmhost_put(struct avm *vm)
{
	int last;

	if (vm == NULL)
		return;
	pthread_mutex_lock(&vm->lock);
	last = --vm->refs == 0;
	pthread_mutex_unlock(&vm->lock);
	if (last)
		vmhost_free(vm);
}

/* Insert a new VM (agent_int.h). */
struct avm *
vmhost_insert(const char *uuid, const char *name, const char *storage,
    char *err, size_t errsz, int *status)
{
	struct avm *vm = NULL;
	int i, slot = -1;

	pthread_mutex_lock(&table_lock);
	for (i = 0; i < VMHOST_MAX; i++) {
		if (table[i] && strcmp(table[i]->uuid, uuid) == 0) {
			pthread_mutex_lock(&table[i]->lock);
			if (strcmp(table[i]->state, "unknown") == 0)
				snprintf(err, errsz, "VM %s is unknown on host %s: "
				    "its QEMU (pid %d) does not answer; stop it "
				    "with --force or wait", name, agent_cfg.name,
				    (int)table[i]->pid);
			else
				snprintf(err, errsz, "VM %s is already running on "
				    "this host", name);
			pthread_mutex_unlock(&table[i]->lock);
			*status = 409;
			goto cleanup;
		}
		if (table[i] == NULL && slot < 0)
			slot = i;
	}
	if (slot < 0) {
		snprintf(err, errsz, "this host runs too many VMs");
		*status = 409;
		goto cleanup;
	}
	if ((vm = calloc(1, sizeof(*vm))) == NULL) {
		snprintf(err, errsz, "out of memory");
		*status = 500;
		goto cleanup;
	}
	snprintf(vm->uuid, sizeof(vm->uuid), "%s", uuid);
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->storage, sizeof(vm->storage), "%s", storage);
	snprintf(vm->state, sizeof(vm->state), "starting");
	vm->pidfd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	if (util_cond_init_mono(&vm->cond) != 0) {	/* a broken libc only */
		pthread_mutex_destroy(&vm->lock);
		free(vm);
		vm = NULL;
		snprintf(err, errsz, "cannot create a condition variable");
		*status = 500;
		goto cleanup;
	}
	vm->refs = 2;
	table[slot] = vm;
cleanup:
	pthread_mutex_unlock(&table_lock);
	return vm;
}

void
vmhost_remove(struct avm *vm)
{
	int i;

	pthread_mutex_lock(&table_lock);
	for (i = 0; i < VMHOST_MAX; i++)
		if (table[i] == vm)
			table[i] = NULL;
	pthread_mutex_unlock(&table_lock);
	vmhost_put(vm);
}

void
vmhost_set_state(struct avm *vm, const char *state)
{
	pthread_mutex_lock(&vm->lock);
	snprintf(vm->state, sizeof(vm->state), "%s", state);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	report_kick();
}

static int
vmhost_record_path(const char *uuid, char *out, size_t size)
{
	return util_fmt(out, size, "%s/vms/%s.json", agent_cfg.data, uuid);
}

/* What a restarted agent needs to find and re-attach to the QEMU. */
int
vmhost_record_save(struct avm *vm)
{
	char path[PATH_MAX];
	json_t *rec;
	char *s = NULL;
	int rc = -1;

	/* domains: what the keeper's records scan fences it for. */
	rec = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:I, s:b, s:s, "
	    "s:o}", "uuid", vm->uuid, "name", vm->name, "storage", vm->storage,
	    "domains", vmhost_domain_names(vm->domains), "dir",
	    vm->dir, "qmp_path", vm->qmp_path, "serial_path", vm->serial_path,
	    "pid", (json_int_t)vm->pid, "ha", vm->ha, "ha_monitor",
	    vm->ha_monitor, "nics", nic_record(vm));
	if (rec)
		health_record_save(vm, rec);
	if (rec == NULL || vmhost_record_path(vm->uuid, path, sizeof(path)) < 0)
		goto cleanup;
	if ((s = json_dumps(rec, JSON_INDENT(2))) == NULL)
		goto cleanup;
	rc = util_write_file_atomic(path, s, strlen(s), 0600);
cleanup:
	free(s);
	json_decref(rec);
	return rc;
}

void
vmhost_record_exit(struct avm *vm, const char *state, const char *reason)
{
	char path[PATH_MAX];

	pthread_mutex_lock(&exits_lock);
	json_array_append_new(exits, json_pack("{s:s, s:s, s:s, s:I}", "uuid",
	    vm->uuid, "state", state, "reason", reason, "seq", ++exit_seq));
	if (json_array_size(recent) >= VMHOST_RECENT)
		json_array_remove(recent, 0);
	json_array_append_new(recent, json_pack("{s:s, s:I, s:s, s:s}", "uuid",
	    vm->uuid, "pid", (json_int_t)vm->pid, "state", state, "reason",
	    reason));
	pthread_mutex_unlock(&exits_lock);
	if (vmhost_record_path(vm->uuid, path, sizeof(path)) == 0)
		(void)unlink(path);
	/* The keeper drops it at its pidfd anyway; this is at once. */
	if (keeperctl_vm_del(vm->uuid) < 0)
		log_debug("vm %s: the keeper did not take vm_del", vm->name);
	(void)unlink(vm->qmp_path);
	(void)unlink(vm->serial_path);
	if (vm->qga_path[0])
		(void)unlink(vm->qga_path);
}

json_t *
vmhost_exit_of(const char *uuid)
{
	json_t *e, *ret = NULL;
	size_t i;

	pthread_mutex_lock(&exits_lock);
	for (i = json_array_size(recent); i > 0 && ret == NULL; i--) {
		e = json_array_get(recent, i - 1);
		if (strcmp(json_string_value(json_object_get(e, "uuid")),
		    uuid) == 0)
			ret = json_deep_copy(e);
	}
	pthread_mutex_unlock(&exits_lock);
	return ret;
}

json_t *
vmhost_exits(void)
{
	json_t *copy;

	pthread_mutex_lock(&exits_lock);
	copy = json_deep_copy(exits);
	pthread_mutex_unlock(&exits_lock);
	return copy;
}

void
vmhost_exits_ack(json_t *sent)
{
	json_int_t last = 0;
	json_t *e;
	size_t i;

	json_array_foreach(sent, i, e)
		last = json_integer_value(json_object_get(e, "seq"));
	pthread_mutex_lock(&exits_lock);
	while (json_array_size(exits) > 0 && json_integer_value(json_object_get(
	    json_array_get(exits, 0), "seq")) <= last)
		json_array_remove(exits, 0);
	pthread_mutex_unlock(&exits_lock);
}

json_t *
vmhost_list(void)
{
	json_t *list = json_array();
	int i;

	pthread_mutex_lock(&table_lock);
	for (i = 0; i < VMHOST_MAX; i++) {
		struct avm *vm = table[i];
		if (vm == NULL)
			continue;
		json_t *o;

		pthread_mutex_lock(&vm->lock);
		o = json_pack("{s:s, s:s, s:s, s:I}", "uuid", vm->uuid, "name",
		    vm->name, "state", vm->state, "pid", (json_int_t)vm->pid);
		if (o && strcmp(vm->state, "unknown") == 0)
			json_object_set_new(o, "reason",
			    json_string(vm->unknown_reason));
		pthread_mutex_unlock(&vm->lock);
		json_array_append_new(list, o);
	}
	pthread_mutex_unlock(&table_lock);
	return list;
}

void
vmhost_rotate_serials(const char *storage)
{
	json_t *dirs = json_array(), *d;
	size_t k;
	int i;

	pthread_mutex_lock(&table_lock);
	for (i = 0; dirs && i < VMHOST_MAX; i++) {
		struct avm *vm = table[i];

		if (vm == NULL || strcmp(vm->storage, storage) != 0)
			continue;
		/* Its paths are set while it is "starting". */
		pthread_mutex_lock(&vm->lock);
		if (strcmp(vm->state, "starting") != 0 && vm->dir[0])
			json_array_append_new(dirs, json_string(vm->dir));
		pthread_mutex_unlock(&vm->lock);
	}
	pthread_mutex_unlock(&table_lock);
	json_array_foreach(dirs, k, d)
		serial_rotate(json_string_value(d), agent_cfg.serial_max);
	json_decref(dirs);
}

/* One wait on vm->cond (vm->lock held) of at most 200 ms, ending at the
 * monotonic deadline; -1 once the deadline has passed (agent_int.h). */
int
vmhost_cond_wait_locked(struct avm *vm, int64_t deadline)
{
	int64_t now = util_mono_ms();

	if (deadline - now <= 0)
		return -1;
	(void)util_cond_wait_until(&vm->cond, &vm->lock, deadline - now > 200 ?
	    now + 200 : deadline);
	return 0;
}

/* Wait until QEMU is gone or ms passed (agent_int.h). */
int
vmhost_wait_exit(struct avm *vm, int64_t ms)
{
	int64_t deadline = util_mono_ms() + ms;
	int gone;

	pthread_mutex_lock(&vm->lock);
	while (!vm->exited && vmhost_cond_wait_locked(vm, deadline) == 0)
		;
	gone = vm->exited;
	pthread_mutex_unlock(&vm->lock);
	return gone;
}

/* QMP events, sorted by name (bsearch). */
struct vmhost_evh {
	const char	*name;
	void		 (*fn)(struct avm *vm, json_t *data);
};

static void
ev_guest_panicked(struct avm *vm, json_t *data)
{
	log_warnx("vm %s: guest panicked", vm->name);
	pthread_mutex_lock(&vm->lock);
	snprintf(vm->fail_reason, sizeof(vm->fail_reason), "guest panicked");
	pthread_mutex_unlock(&vm->lock);
	vmhost_set_state(vm, "failed");
}

static void
ev_powerdown(struct avm *vm, json_t *data)
{
	log_info("vm %s: ACPI power-down requested", vm->name);
}

/* QEMU says why: "host-qmp-system-reset" for `vm reboot`, "guest-reset"
 * when the guest asked. On QEMU, SeaBIOS answers a reset of a guest it has
 * booted with resets of its own (its shadowed copy says POST has run, and
 * it resets again to start clean): one or more "guest-reset" within a
 * fraction of a second of every reset (docs/testing.md). */
static void
ev_reset(struct avm *vm, json_t *data)
{
	const char *why = json_string_value(json_object_get(data, "reason"));

	pthread_mutex_lock(&vm->lock);
	vm->boots++;
	pthread_mutex_unlock(&vm->lock);
	if (why)
		log_info("vm %s: reset (%s)", vm->name, why);
	else
		log_info("vm %s: reset", vm->name);
}

static void
ev_migration(struct avm *vm, json_t *data)
{
	const char *st = json_string_value(json_object_get(data, "status"));
	int out;

	if (st == NULL)
		return;
	pthread_mutex_lock(&vm->lock);
	out = vm->migrating;
	if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0)
		vm->migrating = 0;
	pthread_mutex_unlock(&vm->lock);
	log_debug("vm %s: migration %s", vm->name, st);
	if (out && strcmp(st, "completed") == 0)
		vmhost_set_state(vm, "postmigrate");
}

static void
ev_resume(struct avm *vm, json_t *data)
{
	int arrived;

	pthread_mutex_lock(&vm->lock);
	arrived = vm->incoming;
	vm->incoming = 0;
	pthread_mutex_unlock(&vm->lock);
	vmhost_set_state(vm, "running");
	if (arrived)
		mig_announce(vm);
}

static void
ev_device_deleted(struct avm *vm, json_t *data)
{
	nic_device_deleted(vm, data);
}

static void
ev_shutdown(struct avm *vm, json_t *data)
{
	json_t *guest = json_object_get(data, "guest");

	pthread_mutex_lock(&vm->lock);
	vm->clean_shutdown = 1;
	pthread_mutex_unlock(&vm->lock);
	log_info("vm %s: shutdown (%s)", vm->name,
	    json_is_true(guest) ? "by the guest" : "by the host");
}

static void
ev_stop(struct avm *vm, json_t *data)
{
	int stopping;

	pthread_mutex_lock(&vm->lock);
	stopping = strcmp(vm->state, "stopping") == 0 || vm->clean_shutdown ||
	    vm->migrating || vm->migrated;
	pthread_mutex_unlock(&vm->lock);
	if (!stopping)
		vmhost_set_state(vm, "paused");
}

void
vmhost_fail(struct avm *vm, const char *reason)
{
	log_warnx("vm %s: %s: ending QEMU pid %d", vm->name, reason,
	    (int)vm->pid);
	pthread_mutex_lock(&vm->lock);
	if (vm->fail_reason[0] == '\0')
		snprintf(vm->fail_reason, sizeof(vm->fail_reason), "%s", reason);
	pthread_mutex_unlock(&vm->lock);
	if (vmexit_kill(vm, SIGKILL) < 0 && errno != ESRCH)
		log_warn("vm %s: SIGKILL", vm->name);
}

static void
ev_watchdog(struct avm *vm, json_t *data)
{
	log_warnx("vm %s: watchdog fired", vm->name);
	/* The guest stopped petting it: end it so HA restarts it. */
	if (strcmp(vm->ha_monitor, "watchdog") == 0)
		vmhost_fail(vm, "the guest watchdog fired");
}

static const struct vmhost_evh vmhost_events[] = {
	{ "DEVICE_DELETED",	ev_device_deleted },
	{ "GUEST_PANICKED",	ev_guest_panicked },
	{ "MIGRATION",		ev_migration },
	{ "POWERDOWN",		ev_powerdown },
	{ "RESET",		ev_reset },
	{ "RESUME",		ev_resume },
	{ "SHUTDOWN",		ev_shutdown },
	{ "STOP",		ev_stop },
	{ "WATCHDOG",		ev_watchdog },
};

static int
vmhost_evh_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct vmhost_evh *)elem)->name);
}

void
vmhost_event(void *ud, const char *event, json_t *data)
{
	const struct vmhost_evh *h;

	h = bsearch(event, vmhost_events, sizeof(vmhost_events) /
	    sizeof(vmhost_events[0]), sizeof(vmhost_events[0]), vmhost_evh_cmp);
	if (h)
		h->fn(ud, data);
	else
		log_debug("vm event %s ignored", event);
}

static const char *
jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

int
vmhost_media_fd(struct qemu_vm_spec *q, const char *what, const char *value,
    char *err, size_t errsz)
{
	int fd, slot;

	if ((fd = media_open(what, value, err, errsz)) < 0)
		return -1;
	if ((slot = qemu_spec_fd(q, fd)) < 0) {
		close(fd);
		snprintf(err, errsz, "too many files for QEMU");
		return -1;
	}
	return slot;
}

/* The files vmhost_media_fd opened for QEMU (after qemu_spawn, or when
 * it did not run). */
static void
vmhost_media_close(struct qemu_vm_spec *q)
{
	int i;

	for (i = 0; q && i < q->npass; i++)
		close(q->pass_fd[i]);
	if (q)
		q->npass = 0;
}

/* Translate the manager's VM spec into a QEMU description. */
static int
vmhost_qemu_spec(json_t *spec, struct avm *vm, struct qemu_vm_spec *q,
    char *err, size_t errsz)
{
	const char *root = vmhost_storage_path(vm->storage);
	json_t *d;
	size_t i;

	memset(q, 0, sizeof(*q));
	snprintf(q->uuid, sizeof(q->uuid), "%s", vm->uuid);
	snprintf(q->name, sizeof(q->name), "%s", vm->name);
	q->cpus = (int)json_integer_value(json_object_get(spec, "cpus"));
	q->memory_mib = (int)json_integer_value(json_object_get(spec, "memory_mib"));
	snprintf(q->accel, sizeof(q->accel), "%s", agent_cfg.accel);
	if (util_fmt(q->kernel, sizeof(q->kernel), "%s", jstr(spec, "kernel")) < 0 ||
	    util_fmt(q->initrd, sizeof(q->initrd), "%s", jstr(spec, "initrd")) < 0 ||
	    util_fmt(q->cmdline, sizeof(q->cmdline), "%s", jstr(spec, "cmdline")) < 0 ||
	    serialcopy_local_path(vm->uuid, q->serial_log,
	    sizeof(q->serial_log)) < 0) {
		snprintf(err, errsz, "kernel, initrd or cmdline too long");
		return -1;
	}
	/* Opened here, beneath their media area; QEMU gets the open files
	 * (it never resolves a path a user named). */
	if ((q->kernel[0] && (q->kernel_fd = vmhost_media_fd(q, "kernel",
	    q->kernel, err, errsz)) < 0) || (q->initrd[0] && (q->initrd_fd =
	    vmhost_media_fd(q, "initrd", q->initrd, err, errsz)) < 0))
		return -1;
	json_array_foreach(json_object_get(spec, "disks"), i, d) {
		if (q->ndisks >= QEMU_MAX_DISKS ||
		    store_disk_path(root, vm->uuid, jstr(d, "file"),
		    q->disks[q->ndisks].path, sizeof(q->disks[0].path)) < 0) {
			snprintf(err, errsz, "invalid disk in VM spec");
			return -1;
		}
		snprintf(q->disks[q->ndisks].format, sizeof(q->disks[0].format),
		    "%s", json_object_get(d, "format") ? jstr(d, "format") : "qcow2");
		/* The domain the disk lives on (its own, else the VM's). */
		q->disks[q->ndisks].direct = vmhost_storage_direct(
		    json_object_get(d, "storage") ? jstr(d, "storage") :
		    vm->storage);
		q->ndisks++;
	}
	/* After the disks, so snapshot/backup disk indices stay the same. */
	if (bootmedia_add(spec, vm->dir, q, err, errsz) < 0)
		return -1;
	/* Its TAPs exist from here on: vmhost_start releases them when
	 * the VM does not start after all. */
	if (nic_qemu_spec(vm, spec, q, err, errsz) < 0)
		return -1;
	if (health_qemu_spec(vm, spec, q, err, errsz) < 0)
		return -1;
	snprintf(q->qmp_path, sizeof(q->qmp_path), "%s", vm->qmp_path);
	snprintf(q->serial_path, sizeof(q->serial_path), "%s", vm->serial_path);
	/* The graphical console (vnc.c) on a unix socket next to the serial
	 * one, for VMs created with "display": "vnc". */
	q->vnc_display = json_is_string(json_object_get(spec, "display")) &&
	    strcmp(jstr(spec, "display"), "vnc") == 0 &&
	    vnc_socket_path(vm, q->vnc_path, sizeof(q->vnc_path)) == 0 ? 0 : -1;
	q->panic_device = 1;
	q->start_paused = 1;
	return 0;
}

/* Why QEMU failed to start, from its log: its last error line (the
 * program's name cut off) and the hint QEMU printed after it, if any
 * (image locking's `Failed to get "write" lock` is followed by `Is another
 * process using the image [PATH]?`); else the log's last line. */
static void
vmhost_qemu_reason(const char *log, char *err, size_t errsz)
{
	static const char pfx[] = "qemu-system-x86_64: ";
	char *buf, *line, *end, *last = NULL, *error = NULL, *hint = NULL;
	size_t len;

	if ((buf = util_read_file(log, 1 << 20, &len)) == NULL)
		return;
	for (line = buf; line < buf + len; line = end + 1) {
		if ((end = strchr(line, '\n')) == NULL)
			end = buf + len;
		*end = '\0';
		if (end > line && end[-1] == '\r')
			end[-1] = '\0';
		if (*line == '\0')
			continue;
		last = line;
		if (strncmp(line, pfx, sizeof(pfx) - 1) == 0 &&
		    strncmp(line + sizeof(pfx) - 1, "warning:", 8) != 0) {
			error = line + sizeof(pfx) - 1;
			hint = NULL;
		} else if (error != NULL && hint == NULL) {
			hint = line;
		}
	}
	if (error != NULL && hint != NULL)
		snprintf(err, errsz, "QEMU failed to start: %s (%s)", error, hint);
	else if (error != NULL || last != NULL)
		snprintf(err, errsz, "QEMU failed to start: %s",
		    error != NULL ? error : last);
	free(buf);
}

/* A line in the serial log where each run of the VM begins. */
static void
vmhost_serial_mark(struct avm *vm)
{
	char line[256], when[40];

	util_time_iso(util_wall_ms(), when, sizeof(when));
	snprintf(line, sizeof(line), "\r\n[cvirt: %s starting on host %s at %s]"
	    "\r\n", vm->name, agent_cfg.name, when);
	serial_mark(vm->dir, line);
}

int
vmhost_paths(struct avm *vm, char *err, size_t errsz)
{
	const char *root = vmhost_storage_path(vm->storage);

	if (root == NULL) {
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    vm->storage, agent_cfg.name);
		return -1;
	}
	if (store_vm_dir(root, vm->uuid, vm->dir, sizeof(vm->dir)) < 0 ||
	    util_fmt(vm->qmp_path, sizeof(vm->qmp_path), "%s/%.8s.qmp",
	    agent_cfg.run, vm->uuid) < 0 ||
	    util_fmt(vm->serial_path, sizeof(vm->serial_path), "%s/%.8s.serial",
	    agent_cfg.run, vm->uuid) < 0) {
		snprintf(err, errsz, "path too long for VM %s", vm->name);
		return -1;
	}
	return 0;
}

int
vmhost_start(json_t *spec, int incoming, json_t **result, char *err,
    size_t errsz, int *status)
{
	struct qemu_vm_spec *q = NULL;	/* ~100 KiB: not on a server thread's stack */
	struct avm *vm = NULL;
	char log[PATH_MAX], kerr[256];
	json_t *names = NULL;
	unsigned domains;
	int rc = -1, inserted = 0, i;

	*status = 500;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	*status = 400;
	if (vmhost_domains(spec, &domains, err, errsz) < 0)
		goto cleanup;
	/* A hung domain fails at once instead of holding this thread. */
	*status = 503;
	if (domwatch_ready(spec, err, errsz) < 0)
		goto cleanup;
	/* No QEMU starts without a live keeper holding the leases of its
	 * domains. */
	*status = 503;
	for (i = 0; i < agent_cfg.nstorage; i++)
		if ((domains & (1u << i)) && keeperctl_ready(
		    agent_cfg.storage[i].name, err, errsz) < 0)
			goto cleanup;
	*status = 400;
	vm = vmhost_insert(jstr(spec, "uuid"), jstr(spec, "name"),
	    jstr(spec, "storage"), err, errsz, status);
	if (vm == NULL)
		goto cleanup;
	inserted = 1;
	vm->domains = domains;
	*status = 400;
	if (vmhost_paths(vm, err, errsz) < 0)
		goto cleanup;
	if (access(vm->dir, F_OK) < 0) {
		snprintf(err, errsz, "VM %s has no files on storage %s",
		    vm->name, vm->storage);
		*status = 404;
		goto cleanup;
	}
	vm->incoming = incoming;
	vm->ha = json_is_true(json_object_get(spec, "ha"));
	snprintf(vm->ha_monitor, sizeof(vm->ha_monitor), "%s",
	    jstr(spec, "ha_monitor")[0] ? jstr(spec, "ha_monitor") : "process");
	/* While a migration comes in, the source still owns vm.json. */
	if (vmhost_qemu_spec(spec, vm, q, err, errsz) < 0 || (!incoming &&
	    store_vm_write_meta(vmhost_storage_path(vm->storage), spec, err,
	    errsz) < 0) ||
	    util_fmt(log, sizeof(log), "%s/logs/%s.log", agent_cfg.data,
	    vm->uuid) < 0)
		goto cleanup;
	(void)unlink(vm->qmp_path);
	(void)unlink(vm->serial_path);
	*status = 500;
	if (serialcopy_begin(vm->uuid, vm->storage, vm->dir) < 0) {
		snprintf(err, errsz, "cannot keep the serial log of VM %s in "
		    "%s/serial: %s", vm->name, agent_cfg.data, strerror(errno));
		goto cleanup;
	}
	if (incoming) {
		snprintf(q->incoming, sizeof(q->incoming), "defer");
		q->start_paused = 0;	/* run as soon as the state is in */
	} else {
		vmhost_serial_mark(vm);
	}
	*status = 502;
	rc = qemu_spawn(q, log, &vm->pid, err, errsz);
	vmhost_media_close(q);	/* QEMU has its own copies */
	if (rc < 0)
		goto cleanup;
	rc = -1;
	vm->child = 1;
	/* Its end is known by this pidfd alone (vmexit.c). The command line
	 * is checked after the open, as for every pidfd we trust. */
	if ((vm->pidfd = util_pidfd_open(vm->pid)) < 0 ||
	    !util_pid_has_arg(vm->pid, vm->uuid)) {
		snprintf(err, errsz, "cannot watch QEMU pid %d: %s",
		    (int)vm->pid, vm->pidfd < 0 ? strerror(errno) :
		    "not the QEMU started");
		goto cleanup;
	}
	/* The keeper guards it (kills it when a lease of its domains is
	 * lost) before it runs a guest instruction: -S until cont, an
	 * incoming one until the migration stream comes. */
	*status = 503;
	if ((names = vmhost_domain_names(vm->domains)) == NULL ||
	    keeperctl_vm_add(vm->uuid, vm->pid, names, kerr, sizeof(kerr)) <
	    0) {
		snprintf(err, errsz, "the lease keeper of host %s does not guard "
		    "QEMU pid %d: %s", agent_cfg.name, (int)vm->pid, names ?
		    kerr : "out of memory");
		goto cleanup;
	}
	*status = 502;
	vm->qmp = qmp_open(vm->qmp_path, 10000, vmhost_event, vm, err, errsz);
	if (vm->qmp == NULL) {
		(void)vmexit_gone(vm, 2000);
		vmhost_qemu_reason(log, err, errsz);
		goto cleanup;
	}
	if (vmhost_record_save(vm) < 0) {
		snprintf(err, errsz, "cannot record VM state: %s", strerror(errno));
		goto cleanup;
	}
	if (vmexit_monitor_start(vm) < 0) {
		snprintf(err, errsz, "cannot start the VM monitor");
		goto cleanup;
	}
	if (health_start(vm) < 0)
		log_warnx("vm %s: cannot start its %s monitor", vm->name,
		    vm->ha_monitor);
	if (incoming) {
		vmhost_set_state(vm, "incoming");
		*result = json_pack("{s:I, s:s}", "pid", (json_int_t)vm->pid,
		    "state", "incoming");
		*status = 200;
		rc = 0;
		goto cleanup;
	}
	if (qmp_command(vm->qmp, "cont", NULL, 10000, NULL, err, errsz) < 0) {
		pthread_mutex_lock(&vm->lock);
		vm->stop_requested = 1;
		pthread_mutex_unlock(&vm->lock);
		(void)vmexit_kill(vm, SIGKILL);
		vmhost_wait_exit(vm, VMEXIT_KILL_WAIT_MS);
		inserted = 0;	/* the monitor removes it */
		goto cleanup;
	}
	vmhost_set_state(vm, "running");
	log_info("vm %s: started, QEMU pid %d", vm->name, (int)vm->pid);
	*result = json_pack("{s:I, s:s}", "pid", (json_int_t)vm->pid,
	    "state", "running");
	*status = 200;
	rc = 0;
cleanup:
	if (rc < 0 && vm && inserted) {
		if (vm->pid > 0 && !vm->monitor_started) {
			char why[256];

			(void)vmexit_kill(vm, SIGKILL);
			if (!vmexit_gone(vm, VMEXIT_KILL_WAIT_MS)) {
				/* Stuck in I/O: it stays, unknown, and
				 * its monitor records the exit once the
				 * pidfd says so. */
				vmexit_stop_failed(vm, why, sizeof(why));
				if (vmexit_monitor_start(vm) < 0)
					log_warnx("vm %s: cannot start its "
					    "monitor: it stays unknown",
					    vm->name);
				inserted = 0;
			} else {
				(void)unlink(vm->qmp_path);
				(void)unlink(vm->serial_path);
			}
		}
		if (inserted && !vm->monitor_started) {
			nic_release(vm);
			vmhost_remove(vm);
		}
	}
	vmhost_put(vm);
	json_decref(names);
	vmhost_media_close(q);
	free(q);
	return rc;
}

static struct avm *
vmhost_get_running(const char *uuid, char *err, size_t errsz, int *status)
{
	struct avm *vm = vmhost_get(uuid);

	if (vm == NULL) {
		snprintf(err, errsz, "VM %s is not running on host %s", uuid,
		    agent_cfg.name);
		*status = 404;
	}
	return vm;
}

int
vmhost_stop(const char *uuid, int force, int timeout_s, char *err,
    size_t errsz, int *status)
{
	char qerr[256];
	struct avm *vm;
	json_t *ended = NULL;
	int rc = -1;

	/* Its QEMU ended here just before (a failure the manager has not
	 * heard of yet): stopped is what was asked. */
	if ((vm = vmhost_get(uuid)) == NULL && (ended = vmhost_exit_of(uuid))) {
		log_info("vm %s: stop: its QEMU (pid %lld) has already ended "
		    "(%s)", uuid, (long long)json_integer_value(json_object_get(
		    ended, "pid")), json_string_value(json_object_get(ended,
		    "state")));
		goto done;
	}
	if (vm == NULL && (vm = vmhost_get_running(uuid, err, errsz,
	    status)) == NULL)
		goto cleanup;
	if (vmadopt_unknown(vm)) {	/* no QMP: its pidfd */
		rc = vmadopt_stop(vm, force, timeout_s, err, errsz, status);
		goto cleanup;
	}
	pthread_mutex_lock(&vm->lock);
	vm->stop_requested = 1;
	snprintf(vm->state, sizeof(vm->state), "stopping");
	pthread_mutex_unlock(&vm->lock);
	report_kick();
	if (!force) {
		/* ACPI power button first; a guest that ignores it is quit. */
		if (qmp_command(vm->qmp, "system_powerdown", NULL, 5000, NULL,
		    qerr, sizeof(qerr)) < 0)
			log_warnx("vm %s: %s", vm->name, qerr);
		else if (vmhost_wait_exit(vm, (int64_t)timeout_s * 1000))
			goto done;
		log_info("vm %s: no power-off after %d s, quitting QEMU",
		    vm->name, timeout_s);
	}
	if (qmp_command(vm->qmp, "quit", NULL, 3000, NULL, qerr,
	    sizeof(qerr)) < 0)
		log_debug("vm %s: quit: %s", vm->name, qerr);
	if (vmhost_wait_exit(vm, 5000))
		goto done;
	log_warnx("vm %s: QEMU ignores quit, killing pid %d", vm->name,
	    (int)vm->pid);
	if (vmexit_kill(vm, SIGKILL) < 0 && errno != ESRCH)
		log_warn("vm %s: SIGKILL", vm->name);
	/* Done only once its pidfd says so (the monitor's vm->exited). */
	if (!vmhost_wait_exit(vm, VMEXIT_KILL_WAIT_MS)) {
		vmexit_stop_failed(vm, err, errsz);
		*status = 500;
		goto cleanup;
	}
done:
	*status = 200;
	rc = 0;
cleanup:
	json_decref(ended);
	vmhost_put(vm);
	return rc;
}

int
vmhost_simple(const char *uuid, const char *op, char *err, size_t errsz,
    int *status)
{
	static const struct { const char *op, *qmp, *state; } ops[] = {
		{ "pause",  "stop",         "paused" },
		{ "resume", "cont",         "running" },
		{ "reboot", "system_reset", NULL },
	};
	struct avm *vm = NULL;
	size_t i;
	int rc = -1;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(ops[i].op, op) == 0)
			break;
	if (i == sizeof(ops) / sizeof(ops[0])) {
		snprintf(err, errsz, "unknown operation %s", op);
		*status = 400;
		goto cleanup;
	}
	if ((vm = vmhost_get_running(uuid, err, errsz, status)) == NULL)
		goto cleanup;
	if (vmadopt_unknown(vm)) {
		snprintf(err, errsz, "VM %s is unknown on host %s: its QEMU "
		    "(pid %d) does not answer", vm->name, agent_cfg.name,
		    (int)vm->pid);
		*status = 409;
		goto cleanup;
	}
	if (qmp_command(vm->qmp, ops[i].qmp, NULL, 10000, NULL, err, errsz) < 0) {
		*status = 502;
		goto cleanup;
	}
	if (ops[i].state)
		vmhost_set_state(vm, ops[i].state);
	*status = 200;
	rc = 0;
cleanup:
	vmhost_put(vm);
	return rc;
}

int
vmhost_define(json_t *spec, char *err, size_t errsz, int *status)
{
	/* Files the host reads at start: refused at define, not at start. */
	static const char *const files[] = { "kernel", "initrd", "cdrom" };
	const char *root = vmhost_storage_path(jstr(spec, "storage"));
	size_t i;
	int fd;

	*status = 400;
	if (root == NULL) {
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    jstr(spec, "storage"), agent_cfg.name);
		return -1;
	}
	if (domwatch_ok(jstr(spec, "storage"), err, errsz) < 0) {
		*status = 503;
		return -1;
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (json_object_get(spec, files[i]) && jstr(spec, files[i])[0]) {
			if ((fd = media_open(files[i], jstr(spec, files[i]), err,
			    errsz)) < 0)
				return -1;
			close(fd);
		}
	}
	if (store_vm_define(root, spec, err, errsz) < 0) {
		*status = errno == EEXIST ? 409 : 500;
		return -1;
	}
	*status = 200;
	return 0;
}

int
vmhost_undefine(const char *uuid, const char *storage, char *err,
    size_t errsz, int *status)
{
	const char *root = vmhost_storage_path(storage);
	struct avm *vm;

	if (root == NULL) {
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    storage, agent_cfg.name);
		*status = 400;
		return -1;
	}
	if (domwatch_ok(storage, err, errsz) < 0) {
		*status = 503;
		return -1;
	}
	if ((vm = vmhost_get(uuid)) != NULL) {
		vmhost_put(vm);
		snprintf(err, errsz, "VM %s is running", uuid);
		*status = 409;
		return -1;
	}
	if (store_vm_remove(root, uuid) < 0) {
		snprintf(err, errsz, "cannot remove VM files: %s",
		    strerror(errno));
		*status = 500;
		return -1;
	}
	*status = 200;
	return 0;
}

json_t *
vmhost_isolate(void)
{
	struct avm *list[VMHOST_MAX];
	json_t *stopped = json_array();
	char err[256];
	int i, n = 0, status;

	pthread_mutex_lock(&table_lock);
	for (i = 0; i < VMHOST_MAX; i++) {
		if (table[i] == NULL || !table[i]->ha)
			continue;
		pthread_mutex_lock(&table[i]->lock);
		table[i]->refs++;
		snprintf(table[i]->fail_reason, sizeof(table[i]->fail_reason),
		    "isolated: powered off by the isolation response");
		pthread_mutex_unlock(&table[i]->lock);
		list[n++] = table[i];
	}
	pthread_mutex_unlock(&table_lock);
	for (i = 0; i < n; i++) {
		if (vmhost_stop(list[i]->uuid, 1, 0, err, sizeof(err), &status) == 0)
			json_array_append_new(stopped, json_string(list[i]->uuid));
		else
			log_warnx("isolation: vm %s: %s", list[i]->name, err);
		vmhost_put(list[i]);
	}
	return stopped;
}
