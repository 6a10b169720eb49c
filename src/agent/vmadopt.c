/* vmadopt.c - after an agent restart: this host's QEMUs back into the table.
 *
 * The table is built from the DATA/vms records plus a /proc scan for QEMUs
 * whose record was lost (argv with -uuid and a path under this agent's run
 * dir). A live QEMU is never dropped: each goes in as "unknown" with its
 * pid, held by a pidfd (opened before its command line is checked, so a
 * reused pid cannot fool us), and a thread per VM retries QMP until it
 * answers (then running, paused, ...) or the pidfd says QEMU exited (then
 * the exit is recorded). The manager marks a VM that no report names
 * stopped only when the scan was complete (docs/ha.md). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "qemu/qmp.h"
#include "storage/store.h"

#define VMADOPT_ATTACH_MS	2000	/* one qmp_open + query-status */
#define VMADOPT_RETRY_MS	2000	/* between two attempts */
#define VMADOPT_FIRST_MS	3000	/* start-up waits for first attempts */
#define VMADOPT_RESCAN_MS	5000	/* while the scan is partial */
#define VMADOPT_MAX_SCAN	1024

static pthread_mutex_t adopt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t adopt_cond;
static int adopt_first_pending;	/* attach threads before their 1st try */
static int adopt_partial;	/* a record or /proc could not be read */
static int adopt_complete;	/* a scan has found every QEMU of ours */

/* What a check of a pid says about a VM's QEMU. */
enum vmadopt_seen { SEEN_GONE, SEEN_OURS, SEEN_UNSURE };

/* One QEMU found in /proc: its uuid and pid. */
struct vmadopt_proc {
	char	uuid[UTIL_UUID_LEN + 1];
	pid_t	pid;
};

static const char *
vmadopt_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void
vmadopt_set_partial(const char *why)
{
	pthread_mutex_lock(&adopt_lock);
	if (!adopt_partial)
		log_warnx("scan of this host's QEMUs is partial: %s", why);
	adopt_partial = 1;
	pthread_mutex_unlock(&adopt_lock);
}

int
vmadopt_complete(void)
{
	int complete;

	pthread_mutex_lock(&adopt_lock);
	complete = adopt_complete;
	pthread_mutex_unlock(&adopt_lock);
	return complete;
}

const char *
vmadopt_scan(void)
{
	int partial;

	pthread_mutex_lock(&adopt_lock);
	partial = adopt_partial;
	pthread_mutex_unlock(&adopt_lock);
	return partial ? "partial" : "complete";
}

int
vmadopt_unknown(struct avm *vm)
{
	int unknown;

	pthread_mutex_lock(&vm->lock);
	unknown = strcmp(vm->state, "unknown") == 0;
	pthread_mutex_unlock(&vm->lock);
	return unknown;
}

/* 1 when arg names a path under this agent's run dir ("RUN/x", or after
 * "=" or ":" as in path=RUN/x.qmp, unix:RUN/x.vnc). */
static int
vmadopt_arg_ours(const char *arg)
{
	size_t n = strlen(agent_cfg.run);
	const char *p;

	for (p = strstr(arg, agent_cfg.run); n > 0 && p != NULL;
	    p = strstr(p + 1, agent_cfg.run))
		if ((p == arg || p[-1] == '=' || p[-1] == ':') && p[n] == '/')
			return 1;
	return 0;
}

/* pid's command line: the value of -uuid into uuid ("" without one) and
 * *ours when an argument is under the run dir. -1 when it cannot be read
 * (errno); 1 when it is empty (a leader that exited, a kernel thread),
 * else 0. */
static int
vmadopt_cmdline(pid_t pid, char *uuid, size_t uuidsz, int *ours)
{
	char path[64], *buf, *p, *prev = NULL;
	size_t len;

	uuid[0] = '\0';
	*ours = 0;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((buf = util_read_file(path, 1 << 20, &len)) == NULL)
		return -1;
	if (len == 0) {
		free(buf);
		return 1;
	}
	for (p = buf; p < buf + len; p += strlen(p) + 1) {
		if (prev && strcmp(prev, "-uuid") == 0 && util_uuid_valid(p))
			snprintf(uuid, uuidsz, "%s", p);
		if (vmadopt_arg_ours(p))
			*ours = 1;
		prev = p;
	}
	free(buf);
	return 0;
}

/* Is pidfd (for pid) the QEMU of uuid? Its command line is read after the
 * pidfd was opened and trusted only while the pidfd is not readable (the
 * pid cannot have been reused meanwhile). A live process whose command
 * line cannot be read or reads empty (a leader that exited while a thread
 * is stuck in I/O) may still be it: unsure. Another program, or QEMU of
 * another VM, on that pid: gone. */
static enum vmadopt_seen
vmadopt_check(int pidfd, pid_t pid, const char *uuid)
{
	char got[UTIL_UUID_LEN + 1];
	int ours, rc;

	if (util_pidfd_exited(pidfd, 0) == 1)
		return SEEN_GONE;
	rc = vmadopt_cmdline(pid, got, sizeof(got), &ours);
	if (util_pidfd_exited(pidfd, 0) == 1)
		return SEEN_GONE;
	if (rc != 0)
		return SEEN_UNSURE;
	return strcmp(got, uuid) == 0 ? SEEN_OURS : SEEN_GONE;
}

/* Open vm->pidfd on pid and check it: no such process is gone; a pidfd
 * that cannot be opened otherwise (EMFILE...) leaves us unsure. */
static enum vmadopt_seen
vmadopt_open(struct avm *vm, pid_t pid, const char *uuid)
{
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	if (pid <= 0)
		return SEEN_GONE;
	if ((vm->pidfd = util_pidfd_open(pid)) < 0) {
		if (errno == ESRCH)
			return SEEN_GONE;
		log_warn("vm %s: pidfd of QEMU pid %d", vm->name, (int)pid);
		return SEEN_UNSURE;	/* in the table, unknown: not lost */
	}
	return vmadopt_check(vm->pidfd, pid, uuid);
}

/* QEMUs of this agent in /proc (-uuid and a path under the run dir) into
 * found; their count, or -1 when /proc cannot be listed. */
static int
vmadopt_proc_scan(struct vmadopt_proc *found, int max)
{
	struct dirent *de;
	char uuid[UTIL_UUID_LEN + 1], *end;
	int n = 0, ours;
	DIR *d;

	if ((d = opendir("/proc")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && n < max) {
		long pid = strtol(de->d_name, &end, 10);

		if (*end != '\0' || pid <= 0 || pid == (long)getpid())
			continue;
		if (vmadopt_cmdline((pid_t)pid, uuid, sizeof(uuid), &ours) == -1 &&
		    errno != ENOENT && errno != ESRCH) {
			n = -1;		/* a process we could not look at */
			break;
		}
		if (uuid[0] && ours) {
			snprintf(found[n].uuid, sizeof(found[n].uuid), "%s", uuid);
			found[n++].pid = (pid_t)pid;
		}
	}
	closedir(d);
	return n;
}

/* The first attempt of an attach thread is over (start-up waits for it). */
static void
vmadopt_first_done(int *first)
{
	if (!*first)
		return;
	*first = 0;
	pthread_mutex_lock(&adopt_lock);
	adopt_first_pending--;
	pthread_cond_broadcast(&adopt_cond);
	pthread_mutex_unlock(&adopt_lock);
}

/* One attempt: QMP open + query-status; on success the VM leaves
 * "unknown" and its monitor takes over. 0 attached, -1 not (err). */
static int
vmadopt_attach(struct avm *vm, char *err, size_t errsz)
{
	struct qmp *q;
	json_t *st = NULL;
	const char *qs, *state;
	int rc = -1;

	if (vm->dir[0] == '\0') {
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    vm->storage, agent_cfg.name);
		return -1;
	}
	q = qmp_open(vm->qmp_path, VMADOPT_ATTACH_MS, vmhost_event, vm, err,
	    errsz);
	if (q == NULL || qmp_command(q, "query-status", NULL,
	    VMADOPT_ATTACH_MS, &st, err, errsz) < 0)
		goto cleanup;
	qs = json_string_value(json_object_get(st, "status"));
	pthread_mutex_lock(&vm->lock);
	if (qs && strcmp(qs, "postmigrate") == 0) {
		vm->migrated = 1;	/* its state lives elsewhere now */
		state = "postmigrate";
	} else if (qs && strcmp(qs, "inmigrate") == 0) {
		vm->incoming = 1;
		state = "incoming";
	} else {
		state = json_is_true(json_object_get(st, "running")) ?
		    "running" : "paused";
	}
	if (vm->stop_requested)
		state = "stopping";
	vm->qmp = q;
	snprintf(vm->state, sizeof(vm->state), "%s", state);
	vm->unknown_reason[0] = '\0';
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	q = NULL;
	if (vmexit_monitor_start(vm) < 0) {
		/* Nobody would see its exit: unknown again, try later. */
		pthread_mutex_lock(&vm->lock);
		q = vm->qmp;
		vm->qmp = NULL;
		snprintf(vm->state, sizeof(vm->state), "unknown");
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errsz, "cannot start the VM monitor");
		goto cleanup;
	}
	if (health_start(vm) < 0)
		log_warnx("vm %s: cannot start its %s monitor", vm->name,
		    vm->ha_monitor);
	/* A QEMU found in /proc gets its record back. */
	if (vmhost_record_save(vm) < 0)
		log_warn("vm %s: cannot rewrite its record", vm->name);
	log_info("vm %s: re-attached to QEMU pid %d (%s)", vm->name,
	    (int)vm->pid, state);
	report_kick();
	rc = 0;
cleanup:
	qmp_close(q);
	json_decref(st);
	return rc;
}

/* Per unknown VM (owns one reference): attach, retrying every 2 s while
 * the pidfd says QEMU lives; its exit is recorded here until then. */
static void *
vmadopt_main(void *arg)
{
	struct avm *vm = arg;
	char err[256];
	int first = 1, tries = 0;

	for (;;) {
		if (vmexit_gone(vm, 0)) {
			log_warnx("vm %s: QEMU pid %d exited before the agent "
			    "could attach to it", vm->name, (int)vm->pid);
			vmadopt_first_done(&first);
			vmexit_ended(vm);	/* drops our reference */
			return NULL;
		}
		if (vmadopt_attach(vm, err, sizeof(err)) == 0)
			break;
		if (tries++ == 0 || tries % 30 == 0)
			log_warnx("vm %s: cannot attach to QEMU pid %d (%s): "
			    "reported unknown, retrying every %d ms", vm->name,
			    (int)vm->pid, err, VMADOPT_RETRY_MS);
		pthread_mutex_lock(&vm->lock);
		snprintf(vm->unknown_reason, sizeof(vm->unknown_reason),
		    "QEMU pid %d runs but its QMP does not answer: %.140s",
		    (int)vm->pid, err);
		pthread_mutex_unlock(&vm->lock);
		vmadopt_first_done(&first);
		(void)vmexit_gone(vm, VMADOPT_RETRY_MS);
	}
	vmadopt_first_done(&first);
	vmhost_put(vm);
	return NULL;
}

static int
vmadopt_thread(struct avm *vm)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_mutex_lock(&adopt_lock);
	adopt_first_pending++;
	pthread_mutex_unlock(&adopt_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, vmadopt_main, vm);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_mutex_lock(&adopt_lock);
		adopt_first_pending--;
		pthread_mutex_unlock(&adopt_lock);
		return -1;
	}
	return 0;
}

/* The pid of uuid in the /proc scan, or 0. */
static pid_t
vmadopt_scanned(const struct vmadopt_proc *procs, int nprocs, const char *uuid)
{
	int i;

	for (i = 0; i < nprocs; i++)
		if (strcmp(procs[i].uuid, uuid) == 0)
			return procs[i].pid;
	return 0;
}

/* Put the QEMU of one record (or one found in /proc: a record made up from
 * its storage metadata) into the table. Nothing when the uuid is in the
 * table already. */
static void
vmadopt_one(json_t *rec, const struct vmadopt_proc *procs, int nprocs)
{
	char err[256];
	struct avm *vm;
	enum vmadopt_seen seen;
	const char *uuid = vmadopt_str(rec, "uuid");
	pid_t pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
	pid_t alt = vmadopt_scanned(procs, nprocs, uuid);
	json_t *one;
	int status;

	if ((vm = vmhost_insert(uuid, vmadopt_str(rec, "name")[0] ?
	    vmadopt_str(rec, "name") : uuid, vmadopt_str(rec, "storage"), err,
	    sizeof(err), &status)) == NULL)
		return;
	nic_record_load(vm, json_object_get(rec, "nics"));
	/* Records from before "domains": the VM's storage alone. */
	vm->domains = vmhost_domain_mask(json_object_get(rec, "domains"));
	if (vm->domains == 0 && (one = json_pack("[s]", vmadopt_str(rec,
	    "storage"))) != NULL) {
		vm->domains = vmhost_domain_mask(one);
		json_decref(one);
	}
	vm->ha = json_is_true(json_object_get(rec, "ha"));
	snprintf(vm->ha_monitor, sizeof(vm->ha_monitor), "%s",
	    vmadopt_str(rec, "ha_monitor")[0] ? vmadopt_str(rec, "ha_monitor") :
	    "process");
	health_record_load(vm, rec);
	seen = vmadopt_open(vm, pid, uuid);
	if (seen == SEEN_GONE && alt > 0 && alt != pid) {
		pid = alt;
		seen = vmadopt_open(vm, pid, uuid);
	}
	vm->pid = pid;
	if (vmhost_paths(vm, err, sizeof(err)) < 0) {
		vm->dir[0] = '\0';	/* never attached: exits still seen */
		snprintf(vm->qmp_path, sizeof(vm->qmp_path), "%s",
		    vmadopt_str(rec, "qmp_path"));
		snprintf(vm->serial_path, sizeof(vm->serial_path), "%s",
		    vmadopt_str(rec, "serial_path"));
	}
	if (seen == SEEN_GONE) {
		log_warnx("vm %s: QEMU pid %d is gone (exited while the agent "
		    "was down)", vm->name, (int)pid);
		nic_release(vm);
		vmhost_record_exit(vm, "failed", "QEMU exited while the agent "
		    "was down");
		vmhost_remove(vm);
		vmhost_put(vm);
		return;
	}
	snprintf(vm->state, sizeof(vm->state), "unknown");
	snprintf(vm->unknown_reason, sizeof(vm->unknown_reason),
	    seen == SEEN_UNSURE ? "QEMU pid %d lives but its command line "
	    "cannot be read (exiting?)" : "attaching to QEMU pid %d", (int)pid);
	if (vmadopt_thread(vm) < 0) {
		/* Stays unknown in the table: never dropped while it lives. */
		log_warnx("vm %s: cannot start its attach thread", vm->name);
		vmhost_put(vm);
	}
}

/* A QEMU of this agent without a record: what its storage domain knows. */
static json_t *
vmadopt_orphan(const struct vmadopt_proc *p)
{
	char dir[PATH_MAX];
	json_t *rec, *meta = NULL;
	int i;

	rec = json_pack("{s:s, s:I}", "uuid", p->uuid, "pid", (json_int_t)p->pid);
	for (i = 0; rec && i < agent_cfg.nstorage; i++) {
		if (store_vm_dir(agent_cfg.storage[i].path, p->uuid, dir,
		    sizeof(dir)) < 0 || access(dir, F_OK) < 0)
			continue;
		json_object_set_new(rec, "storage",
		    json_string(agent_cfg.storage[i].name));
		meta = store_vm_read_meta(agent_cfg.storage[i].path, p->uuid);
		break;
	}
	if (rec && json_is_string(json_object_get(meta, "name")))
		json_object_set(rec, "name", json_object_get(meta, "name"));
	if (rec && json_is_true(json_object_get(meta, "ha")))
		json_object_set_new(rec, "ha", json_true());
	if (rec && json_is_string(json_object_get(meta, "ha_monitor")))
		json_object_set(rec, "ha_monitor",
		    json_object_get(meta, "ha_monitor"));
	json_decref(meta);
	return rec;
}

/* Records and /proc into the table; 0 complete, -1 partial (why). */
static int
vmadopt_scan_once(char *why, size_t whysz)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct vmadopt_proc *procs;
	struct dirent *de;
	json_t *rec, *seen = json_object();
	int nprocs, i, rc = 0;
	DIR *d = NULL;

	if ((procs = calloc(VMADOPT_MAX_SCAN, sizeof(*procs))) == NULL ||
	    seen == NULL) {
		snprintf(why, whysz, "out of memory");
		rc = -1;
		goto cleanup;
	}
	if ((nprocs = vmadopt_proc_scan(procs, VMADOPT_MAX_SCAN)) < 0) {
		snprintf(why, whysz, "cannot scan /proc: %s", strerror(errno));
		nprocs = 0;
		rc = -1;
	}
	if (util_fmt(dir, sizeof(dir), "%s/vms", agent_cfg.data) < 0 ||
	    (d = opendir(dir)) == NULL) {
		snprintf(why, whysz, "cannot read %.160s/vms: %s",
		    agent_cfg.data, strerror(errno));
		rc = -1;
	}
	while (d && (de = readdir(d)) != NULL) {
		json_error_t jerr;
		size_t n = strlen(de->d_name);

		rec = NULL;
		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		if (util_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) < 0 ||
		    (rec = json_load_file(path, 0, &jerr)) == NULL ||
		    !util_uuid_valid(vmadopt_str(rec, "uuid"))) {
			snprintf(why, whysz, "cannot read the record %.160s",
			    de->d_name);
			json_decref(rec);
			rc = -1;
			continue;
		}
		json_object_set_new(seen, vmadopt_str(rec, "uuid"), json_true());
		vmadopt_one(rec, procs, nprocs);
		json_decref(rec);
	}
	/* QEMUs whose record was lost. */
	for (i = 0; i < nprocs; i++) {
		if (json_object_get(seen, procs[i].uuid))
			continue;
		json_object_set_new(seen, procs[i].uuid, json_true());
		log_warnx("QEMU pid %d of VM %s has no record here: adopting it",
		    (int)procs[i].pid, procs[i].uuid);
		if ((rec = vmadopt_orphan(&procs[i])) != NULL)
			vmadopt_one(rec, procs, nprocs);
		json_decref(rec);
	}
cleanup:
	if (d)
		closedir(d);
	json_decref(seen);
	free(procs);
	return rc;
}

/* While the scan is partial, try it again now and then. */
static void *
vmadopt_rescan_main(void *arg)
{
	char why[256];

	(void)arg;
	for (;;) {
		util_sleep_ms(VMADOPT_RESCAN_MS);
		if (vmadopt_scan_once(why, sizeof(why)) == 0)
			break;
	}
	pthread_mutex_lock(&adopt_lock);
	adopt_partial = 0;
	adopt_complete = 1;
	pthread_mutex_unlock(&adopt_lock);
	log_info("scan of this host's QEMUs is complete");
	report_kick();
	return NULL;
}

static void
vmadopt_init(void)
{
	if (util_cond_init_mono(&adopt_cond) != 0)
		abort();	/* only with a broken libc */
}

void
vmadopt_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int64_t deadline = util_mono_ms() + VMADOPT_FIRST_MS;
	char why[256];
	pthread_t t;

	pthread_once(&once, vmadopt_init);
	if (vmadopt_scan_once(why, sizeof(why)) < 0) {
		vmadopt_set_partial(why);
		if (pthread_create(&t, NULL, vmadopt_rescan_main, NULL) == 0)
			pthread_detach(t);
	} else {
		pthread_mutex_lock(&adopt_lock);
		adopt_complete = 1;
		pthread_mutex_unlock(&adopt_lock);
	}
	/* The first report should not call a QEMU that answers unknown. */
	pthread_mutex_lock(&adopt_lock);
	while (adopt_first_pending > 0 && util_cond_wait_until(&adopt_cond,
	    &adopt_lock, deadline) == 0)
		;
	pthread_mutex_unlock(&adopt_lock);
}

int
vmadopt_stop(struct avm *vm, int force, int timeout_s, char *err,
    size_t errsz, int *status)
{
	pthread_mutex_lock(&vm->lock);
	vm->stop_requested = 1;
	pthread_mutex_unlock(&vm->lock);
	if (!force) {
		log_info("vm %s: unknown: SIGTERM to QEMU pid %d", vm->name,
		    (int)vm->pid);
		if (vmexit_kill(vm, SIGTERM) < 0 && errno != ESRCH)
			log_warn("vm %s: SIGTERM", vm->name);
		else if (vmhost_wait_exit(vm, (int64_t)timeout_s * 1000))
			goto done;
	}
	log_warnx("vm %s: unknown: SIGKILL to QEMU pid %d", vm->name,
	    (int)vm->pid);
	if (vmexit_kill(vm, SIGKILL) < 0 && errno != ESRCH)
		log_warn("vm %s: SIGKILL", vm->name);
	/* The exit is recorded (vmadopt_main) only once the pidfd says so. */
	if (!vmhost_wait_exit(vm, VMEXIT_KILL_WAIT_MS)) {
		vmexit_stop_failed(vm, err, errsz);
		*status = 500;
		return -1;
	}
done:
	*status = 200;
	return 0;
}
