/* test_vmstart.c - unit tests for what vmhost_start (src/agent/vmhost.c)
 * tells the lease keeper: a real QEMU (TCG, no disk, no kernel) is started
 * through the agent's own start path, and a fake keeper on RUN/keeper.sock
 * (the protocol of docs/keeper.md) notes each request.
 *
 * - The keeper is asked to guard the QEMU (vm_add, with its pid and the
 *   VM's domains: its storage and each disk's) before the guest runs: the
 *   VM is still "starting" when vm_add arrives.
 * - A refusal of the keeper ends the QEMU and fails the start with 503.
 * - The record a restarted agent (and the keeper's records scan) reads
 *   names the domains; the exit sends vm_del.
 * - A backup's target is added (blockdev-add, through a fake QMP) with
 *   cache.direct as the VM's disks would get on its domain. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"
#include "fake_qmp.h"
#include "qemu/qmp.h"
#include "storage/qimg.h"
#include "vmfake.h"

#define T_UUID	"0b7c9d2e-1f3a-4b5c-8d6e-7f8091a2b3c4"

/* The fake keeper: a thread serving RUN/keeper.sock. */
struct fkeeper {
	int		 lfd;
	int		 wake[2];
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	json_t		*log;		/* [{op, uuid?, pid?, domains?, state}] */
	int		 refuse;	/* vm_add answers ok:false */
	const char	*local_state;	/* status: domain local's, "ok" if NULL */
};

struct tstate {
	struct fkeeper	k;
};

static json_t *
fk_answer(struct fkeeper *k, json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	const char *uuid = json_string_value(json_object_get(req, "uuid"));
	const char *local;
	char st[16] = "";
	int refuse;

	if (op == NULL)
		return json_pack("{s:b, s:s}", "ok", 0, "error", "no op");
	pthread_mutex_lock(&k->lock);
	local = k->local_state ? k->local_state : "ok";
	pthread_mutex_unlock(&k->lock);
	if (strcmp(op, "status") == 0)
		return json_pack("{s:b, s:i, s:s, s:s, s:{s:{s:s, s:i, s:b}, "
		    "s:{s:s, s:i, s:b}}, s:i}", "ok", 1, "pid", 1, "fence",
		    "kill-only", "watchdog", "none", "domains", "local", "state",
		    local, "age_ms", 10, "direct", 0, "second", "state", "ok",
		    "age_ms", 10, "direct", 0, "vms", 0);
	/* What the agent's table says of the VM at this moment. */
	if (uuid)
		vmfake_state(uuid, st, sizeof(st), NULL);
	pthread_mutex_lock(&k->lock);
	json_object_set_new(req, "state", json_string(st));
	json_array_append(k->log, req);
	refuse = k->refuse;
	pthread_mutex_unlock(&k->lock);
	if (strcmp(op, "vm_add") == 0 && refuse)
		return json_pack("{s:b, s:s}", "ok", 0, "error",
		    "storage local: lease not renewed (age 2300 ms)");
	return json_pack("{s:b}", "ok", 1);
}

static void *
fk_main(void *arg)
{
	struct fkeeper *k = arg;
	struct pollfd p[2];
	char buf[4096], *s;
	json_t *req, *rep;
	ssize_t n;
	int fd;

	p[0].fd = k->lfd;
	p[0].events = POLLIN;
	p[1].fd = k->wake[0];
	p[1].events = POLLIN;
	while (poll(p, 2, -1) > 0 && p[1].revents == 0) {
		if ((fd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		req = n > 0 ? json_loadb(buf, (size_t)n, 0, NULL) : NULL;
		rep = req ? fk_answer(k, req) : NULL;
		if (rep && (s = json_dumps(rep, JSON_COMPACT)) != NULL) {
			(void)send(fd, s, strlen(s), MSG_NOSIGNAL);
			free(s);
		}
		json_decref(rep);
		json_decref(req);
		close(fd);
	}
	return NULL;
}

static void
fk_start(struct fkeeper *k)
{
	struct sockaddr_un sa;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	assert_int_equal(util_fmt(sa.sun_path, sizeof(sa.sun_path),
	    "%s/keeper.sock", agent_cfg.run), 0);
	(void)unlink(sa.sun_path);
	assert_true((k->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC,
	    0)) >= 0);
	assert_int_equal(bind(k->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(k->lfd, 16), 0);
	assert_int_equal(pipe2(k->wake, O_CLOEXEC), 0);
	pthread_mutex_init(&k->lock, NULL);
	assert_non_null(k->log = json_array());
	assert_int_equal(pthread_create(&k->thread, NULL, fk_main, k), 0);
}

static void
fk_stop(struct fkeeper *k)
{
	(void)!write(k->wake[1], "x", 1);
	pthread_join(k->thread, NULL);
	close(k->lfd);
	close(k->wake[0]);
	close(k->wake[1]);
	json_decref(k->log);
	pthread_mutex_destroy(&k->lock);
}

/* The requests of op the fake keeper got (a new array). */
static json_t *
fk_ops(struct fkeeper *k, const char *op)
{
	json_t *out = json_array(), *e;
	size_t i;

	pthread_mutex_lock(&k->lock);
	json_array_foreach(k->log, i, e)
		if (strcmp(json_string_value(json_object_get(e, "op")), op) == 0)
			json_array_append(out, e);
	pthread_mutex_unlock(&k->lock);
	return out;
}

static char t_dir[64];

/* One agent configuration and set of domain threads (domwatch) for the
 * process; each test gets a fresh fake keeper. */
static int
t_agent(void)
{
	char path[PATH_MAX], err[256];
	int i;

	snprintf(t_dir, sizeof(t_dir), "/tmp/cvirt-vmstart.XXXXXX");
	if (mkdtemp(t_dir) == NULL)
		return -1;
	snprintf(agent_cfg.data, sizeof(agent_cfg.data), "%s/data", t_dir);
	snprintf(agent_cfg.run, sizeof(agent_cfg.run), "%s/run", t_dir);
	snprintf(agent_cfg.name, sizeof(agent_cfg.name), "h1");
	snprintf(agent_cfg.accel, sizeof(agent_cfg.accel), "tcg");
	agent_cfg.serial_max = 1024 * 1024;
	for (i = 0; i < 2; i++) {
		snprintf(agent_cfg.storage[i].name,
		    sizeof(agent_cfg.storage[i].name), "%s", i ? "second" :
		    "local");
		if (util_fmt(agent_cfg.storage[i].path,
		    sizeof(agent_cfg.storage[i].path), "%s/storage%d", t_dir,
		    i) < 0 || util_fmt(path, sizeof(path), "%s/vms",
		    agent_cfg.storage[i].path) < 0 ||
		    util_mkdir_p(path, 0700) < 0)
			return -1;
	}
	agent_cfg.nstorage = 2;
	if (agent_qemu_user_init(NULL, err, sizeof(err)) < 0 ||
	    util_fmt(path, sizeof(path), "%s/vms", agent_cfg.data) < 0 ||
	    util_mkdir_p(path, 0700) < 0 ||
	    util_fmt(path, sizeof(path), "%s/logs", agent_cfg.data) < 0 ||
	    util_mkdir_p(path, 0700) < 0 ||
	    util_mkdir_p(agent_cfg.run, 0700) < 0 ||
	    util_fmt(path, sizeof(path), "%s/vms/%s",
	    agent_cfg.storage[0].path, T_UUID) < 0 ||
	    util_mkdir_p(path, 0700) < 0 || vmhost_init() < 0 ||
	    domwatch_start() < 0)
		return -1;
	/* Until the domains' first checks are in. */
	for (i = 0; i < 100 && (domwatch_ok("local", err, sizeof(err)) < 0 ||
	    domwatch_ok("second", err, sizeof(err)) < 0); i++)
		util_sleep_ms(20);
	return 0;
}

static int
setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	fk_start(&t->k);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tstate *t = *state;
	char err[256];
	int status;

	(void)vmhost_stop(T_UUID, 1, 0, err, sizeof(err), &status);
	json_decref(vmfake_exit(T_UUID));
	fk_stop(&t->k);
	free(t);
	return 0;
}

static json_t *
t_spec(void)
{
	json_t *spec = json_pack("{s:s, s:s, s:s, s:i, s:i, s:[], s:[]}",
	    "uuid", T_UUID, "name", "web1", "storage", "local", "cpus", 1,
	    "memory_mib", 64, "disks", "nics");

	assert_non_null(spec);
	return spec;
}

/* Starts spec's VM (it must start) and returns its QEMU's command line,
 * arguments joined by spaces (the caller frees it). */
static char *
t_start_cmdline(json_t *spec)
{
	json_t *res = NULL;
	char err[512], path[PATH_MAX], *cmd;
	int status = 0;
	size_t len, i;

	assert_int_equal(vmhost_start(spec, 0, &res, err, sizeof(err),
	    &status), 0);
	assert_int_equal(util_fmt(path, sizeof(path), "/proc/%d/cmdline",
	    (int)json_integer_value(json_object_get(res, "pid"))), 0);
	json_decref(res);
	assert_non_null(cmd = util_read_file(path, 1 << 20, &len));
	for (i = 0; i + 1 < len; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	return cmd;
}

/* vm_add comes with the QEMU's pid and the VM's domains while the VM is
 * still "starting" (before cont), the record names the domains, the exit
 * sends vm_del. Guards vmhost.c vmhost_start() (keeperctl_vm_add before
 * cont), vmhost_record_save() and vmhost_record_exit(). */
static void
test_start_is_guarded_before_cont(void **state)
{
	struct tstate *t = *state;
	json_t *spec = t_spec(), *res = NULL, *adds, *add, *dels, *rec;
	char err[512], path[PATH_MAX];
	int status = 0;
	pid_t pid;

	assert_int_equal(vmhost_start(spec, 0, &res, err, sizeof(err),
	    &status), 0);
	assert_int_equal(status, 200);
	pid = (pid_t)json_integer_value(json_object_get(res, "pid"));
	assert_true(pid > 0);
	adds = fk_ops(&t->k, "vm_add");
	assert_int_equal(json_array_size(adds), 1);
	add = json_array_get(adds, 0);
	assert_string_equal(json_string_value(json_object_get(add, "uuid")),
	    T_UUID);
	assert_int_equal(json_integer_value(json_object_get(add, "pid")), pid);
	assert_string_equal(json_string_value(json_object_get(add, "state")),
	    "starting");
	assert_int_equal(json_array_size(json_object_get(add, "domains")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    add, "domains"), 0)), "local");
	json_decref(adds);

	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms/%s.json",
	    agent_cfg.data, T_UUID), 0);
	assert_non_null(rec = json_load_file(path, 0, NULL));
	assert_true(json_equal(json_object_get(rec, "domains"),
	    json_object_get(add = json_pack("{s:[s]}", "d", "local"), "d")));
	json_decref(add);
	json_decref(rec);

	assert_int_equal(vmhost_stop(T_UUID, 1, 0, err, sizeof(err), &status),
	    0);
	vmfake_wait_state(T_UUID, "", 5000);
	dels = fk_ops(&t->k, "vm_del");
	assert_int_equal(json_array_size(dels), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    dels, 0), "uuid")), T_UUID);
	json_decref(dels);
	json_decref(vmfake_exit(T_UUID));
	json_decref(res);
	json_decref(spec);
}

/* The keeper fences the VM's domain and kills its QEMU moments after the
 * agent last asked its status (still "ok"): the exit is reported as the
 * fence, not as a QEMU that ended by itself. Guards vmexit.c
 * vmexit_fenced_recently() (a status asked after the exit, not the one
 * of the last 100 ms: with that, a CI run recorded a fence as "QEMU
 * exited unexpectedly"). */
static void
test_fence_kill_is_reported_as_fence(void **state)
{
	struct tstate *t = *state;
	json_t *spec = t_spec(), *res = NULL, *e;
	char err[512];
	int status = 0;
	pid_t pid;

	assert_int_equal(vmhost_start(spec, 0, &res, err, sizeof(err),
	    &status), 0);
	pid = (pid_t)json_integer_value(json_object_get(res, "pid"));
	assert_true(pid > 0);
	/* The agent's latest view: the lease is held. */
	assert_int_equal(lease_storage_ok("local", 0), 1);
	pthread_mutex_lock(&t->k.lock);
	t->k.local_state = "fencing";
	pthread_mutex_unlock(&t->k.lock);
	assert_int_equal(kill(pid, SIGKILL), 0);
	vmfake_wait_state(T_UUID, "", 5000);
	assert_non_null(e = vmfake_exit(T_UUID));
	assert_string_equal(json_string_value(json_object_get(e, "state")),
	    "failed");
	assert_string_equal(json_string_value(json_object_get(e, "reason")),
	    "fenced: the storage lease could not be renewed");
	json_decref(e);

	/* A QEMU that ends by itself while the lease is held is no fence. */
	pthread_mutex_lock(&t->k.lock);
	t->k.local_state = NULL;
	pthread_mutex_unlock(&t->k.lock);
	assert_int_equal(lease_storage_ok("local", 1), 1);
	json_decref(res);
	res = NULL;
	if (vmhost_start(spec, 0, &res, err, sizeof(err), &status) != 0)
		fail_msg("second start: %d %s", status, err);
	pid = (pid_t)json_integer_value(json_object_get(res, "pid"));
	assert_int_equal(kill(pid, SIGKILL), 0);
	vmfake_wait_state(T_UUID, "", 5000);
	assert_non_null(e = vmfake_exit(T_UUID));
	assert_string_equal(json_string_value(json_object_get(e, "reason")),
	    "QEMU exited unexpectedly");
	json_decref(e);
	json_decref(res);
	json_decref(spec);
}

/* QEMU's serial log is a file on the host's own disk (DATA/serial/
 * UUID.log), never on storage: QEMU writes it a byte per write(2) with
 * the guest stopped, so on shared storage every printed byte was a round
 * trip there, and a hung domain froze a guest that only printed. The
 * start's mark is on storage. Guards vmhost.c vmhost_qemu_spec() and
 * serialcopy.c. */
static void
test_serial_log_is_local(void **state)
{
	json_t *spec = t_spec();
	char err[512], path[PATH_MAX], want[PATH_MAX], *cmd, *mark;
	int status = 0;
	size_t len;

	(void)state;
	cmd = t_start_cmdline(spec);
	assert_int_equal(util_fmt(want, sizeof(want), "logfile=%s/serial/%s.log",
	    agent_cfg.data, T_UUID), 0);
	if (strstr(cmd, want) == NULL)
		fail_msg("no %s in QEMU's command line: %s", want, cmd);
	assert_null(strstr(cmd, "serial.log"));
	free(cmd);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms/%s/serial.log",
	    agent_cfg.storage[0].path, T_UUID), 0);
	assert_non_null(mark = util_read_file(path, 1 << 20, &len));
	assert_non_null(strstr(mark, "[cvirt: web1 starting on host h1"));
	free(mark);
	assert_int_equal(vmhost_stop(T_UUID, 1, 0, err, sizeof(err), &status),
	    0);
	vmfake_wait_state(T_UUID, "", 5000);
	json_decref(vmfake_exit(T_UUID));
	json_decref(spec);
}

/* A VM's disk on a domain that takes O_DIRECT reaches QEMU with
 * cache.direct=on and werror=stop, one on a domain that does not without
 * them. Guards vmhost.c vmhost_qemu_spec() (each disk's direct from its
 * domain, vmhost_storage_direct). */
static void
test_disk_cache_follows_domain(void **state)
{
	json_t *spec = t_spec();
	char err[512], path[PATH_MAX], *cmd;
	int status = 0, direct, has;

	(void)state;
	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms/%s/disk0.qcow2",
	    agent_cfg.storage[0].path, T_UUID), 0);
	assert_int_equal(qimg_create(path, 1 << 20, NULL, err, sizeof(err)), 0);
	json_array_append_new(json_object_get(spec, "disks"), json_pack(
	    "{s:s, s:s}", "name", "disk0", "file", "disk0.qcow2"));
	for (direct = 1; direct >= 0; direct--) {
		agent_cfg.storage[0].direct = direct;
		cmd = t_start_cmdline(spec);
		has = strstr(cmd, "filename=") != NULL && strstr(cmd,
		    "disk0.qcow2,read-only=off,cache.direct=on") != NULL &&
		    strstr(cmd, "id=virtio-disk0,werror=stop,rerror=stop") !=
		    NULL;
		if (has != direct)
			fail_msg("direct %d, QEMU's command line: %s", direct, cmd);
		assert_int_equal(strstr(cmd, "cache.direct") != NULL, direct);
		free(cmd);
		assert_int_equal(vmhost_stop(T_UUID, 1, 0, err, sizeof(err),
		    &status), 0);
		vmfake_wait_state(T_UUID, "", 5000);
		json_decref(vmfake_exit(T_UUID));
	}
	agent_cfg.storage[0].direct = 0;
	json_decref(spec);
}

/* The keeper refuses to guard the QEMU: the start fails 503 with its
 * reason, the QEMU is gone and the VM is not in the table. Guards
 * vmhost.c vmhost_start(). */
static void
test_start_refused_by_keeper(void **state)
{
	struct tstate *t = *state;
	json_t *spec = t_spec(), *res = NULL, *adds;
	char err[512], st[16];
	int status = 0;
	pid_t pid;

	t->k.refuse = 1;
	assert_int_equal(vmhost_start(spec, 0, &res, err, sizeof(err),
	    &status), -1);
	assert_int_equal(status, 503);
	assert_non_null(strstr(err, "lease not renewed (age 2300 ms)"));
	adds = fk_ops(&t->k, "vm_add");
	assert_int_equal(json_array_size(adds), 1);
	pid = (pid_t)json_integer_value(json_object_get(json_array_get(adds, 0),
	    "pid"));
	json_decref(adds);
	assert_true(pid > 0);
	/* Reaped by the agent: no such process any more. */
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	vmfake_state(T_UUID, st, sizeof(st), NULL);
	assert_string_equal(st, "");
	json_decref(spec);
}

/* The domains of a spec: its storage and each disk's, each attached
 * here; another is refused. Guards vmhost.c vmhost_domains(). */
static void
test_domains_of_a_spec(void **state)
{
	json_t *spec = t_spec(), *names;
	unsigned mask = 0;
	char err[256];

	(void)state;
	assert_int_equal(vmhost_domains(spec, &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 1);
	json_array_append_new(json_object_get(spec, "disks"), json_pack(
	    "{s:s, s:s}", "file", "disk0.qcow2", "storage", "second"));
	json_array_append_new(json_object_get(spec, "disks"), json_pack(
	    "{s:s}", "file", "disk1.qcow2"));
	assert_int_equal(vmhost_domains(spec, &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, 3);
	names = vmhost_domain_names(mask);
	assert_int_equal(json_array_size(names), 2);
	assert_int_equal(vmhost_domain_mask(names), 3);
	json_decref(names);
	json_array_append_new(json_object_get(spec, "disks"), json_pack(
	    "{s:s, s:s}", "file", "disk2.qcow2", "storage", "third"));
	assert_int_equal(vmhost_domains(spec, &mask, err, sizeof(err)), -1);
	assert_string_equal(err, "storage third is not attached to host h1");
	json_decref(spec);
}

/* The blockdev-add of a running VM's backup target, on a domain with and
 * without O_DIRECT: cache.direct on both nodes as qemu_cache_direct says
 * (no-flush as before). The fake QMP fails the transaction, so the job
 * ends there (blockdev-del, query-status). Guards backupops.c
 * bk_backup_running(). */
static void
test_backup_target_cache(void **state)
{
	static const char uuid[] = "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5";
	char add[PATH_MAX + 512], txn[512], sock[PATH_MAX], err[512], path[PATH_MAX];
	struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-block"),
		FQ(FQ_RETURN, "[{\"qdev\": \"/machine/peripheral/virtio-disk0/"
		    "virtio-backend\", \"inserted\": {\"node-name\": "
		    "\"disk0\", \"image\": {\"virtual-size\": 1048576}}}]"),
		FQ(FQ_EXPECT, add),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT, txn),
		FQ(FQ_ERROR, "no, not now"),
		FQ(FQ_EXPECT, "blockdev-del {\"node-name\": \"bk0-b1\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_RETURN, "{\"status\": \"running\", \"running\": true}"),
		FQ(FQ_END, NULL),
	};
	struct fake_qmp *f;
	struct avm *vm;
	json_t *args, *res = NULL;
	int direct, status;

	(void)state;
	assert_int_equal(util_fmt(sock, sizeof(sock), "%s/bk.qmp",
	    agent_cfg.run), 0);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms/%s",
	    agent_cfg.storage[0].path, uuid), 0);
	assert_int_equal(util_mkdir_p(path, 0700), 0);
	snprintf(txn, sizeof(txn), "transaction {\"actions\": [{\"type\": "
	    "\"blockdev-backup\", \"data\": {\"job-id\": \"bk0-b1\", "
	    "\"device\": \"disk0\", \"target\": \"bk0-b1\", \"sync\": "
	    "\"full\", \"auto-dismiss\": false, \"x-perf\": "
	    "{\"use-copy-range\": true}}}]}");
	args = json_pack("{s:{s:s, s:s, s:s, s:[{s:s, s:s}]}, s:s, s:s}",
	    "spec", "uuid", uuid, "name", "web2", "storage", "local", "disks",
	    "name", "disk0", "file", "disk0.qcow2", "id", "b1", "storage",
	    "second");
	assert_non_null(args);
	for (direct = 1; direct >= 0; direct--) {
		agent_cfg.storage[1].direct = direct;
		snprintf(add, sizeof(add), "blockdev-add {\"driver\": "
		    "\"qcow2\", \"node-name\": \"bk0-b1\", \"cache\": "
		    "{\"direct\": %s, \"no-flush\": true}, \"file\": "
		    "{\"driver\": \"file\", \"filename\": "
		    "\"%s/backups/.b1.partial/disk0.qcow2\", \"cache\": "
		    "{\"direct\": %s, \"no-flush\": true}}}", direct ?
		    "true" : "false", agent_cfg.storage[1].path, direct ?
		    "true" : "false");
		assert_non_null(vm = vmhost_insert(uuid, "web2", "local", err,
		    sizeof(err), &status));
		assert_int_equal(vmhost_paths(vm, err, sizeof(err)), 0);
		vmhost_set_state(vm, "running");
		assert_non_null(f = fake_qmp_start(sock, steps, 0));
		assert_non_null(vm->qmp = qmp_open(sock, 5000, vmhost_event, vm,
		    err, sizeof(err)));
		assert_int_equal(bk_backup_job(NULL, args, &res, err,
		    sizeof(err)), -1);
		assert_non_null(strstr(err, "no, not now"));
		qmp_close(vm->qmp);
		vm->qmp = NULL;
		assert_int_equal(fake_qmp_finish(f, err, sizeof(err)), 0);
		vmhost_remove(vm);
		vmhost_put(vm);
	}
	agent_cfg.storage[1].direct = 0;
	json_decref(args);
}

int
main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_start_is_guarded_before_cont),
		T(test_start_refused_by_keeper),
		T(test_domains_of_a_spec),
		T(test_disk_cache_follows_domain),
		T(test_backup_target_cache),
		T(test_fence_kill_is_reported_as_fence),
		T(test_serial_log_is_local),
	};

	int rc;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	if (t_agent() < 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	util_rm_rf(t_dir);
	return rc;
}
