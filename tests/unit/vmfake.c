/* vmfake.c - a stand-in QEMU and VM table helpers for unit tests
 * (vmfake.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"
#include "vmfake.h"

pid_t
vmfake_qemu(const char *uuid, const char *qmp, const char *open_path)
{
	char chardev[256];
	pid_t pid;

	snprintf(chardev, sizeof(chardev), "socket,id=qmp,path=%s,server=on,"
	    "wait=off", qmp);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "fake-qemu", "--fake-qemu", "-uuid",
		    uuid, "-chardev", chardev, open_path ? "--open" : (char *)NULL,
		    open_path, (char *)NULL);
		_exit(127);
	}
	/* Until exec (and the open) is done its cmdline is this test's. */
	for (int i = 0; i < 500; i++) {
		char path[64], *buf;
		size_t len;
		int done;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		buf = util_read_file(path, 1 << 16, &len);
		done = buf && len > 0 && strcmp(buf, "fake-qemu") == 0;
		free(buf);
		if (done && open_path) {
			char fd[64], target[PATH_MAX];
			ssize_t n;

			snprintf(fd, sizeof(fd), "/proc/%d/fd/3", (int)pid);
			n = readlink(fd, target, sizeof(target) - 1);
			done = n > 0 && (size_t)n == strlen(open_path) &&
			    strncmp(target, open_path, (size_t)n) == 0;
		}
		if (done)
			return pid;
		util_sleep_ms(10);
	}
	fail_msg("the fake QEMU did not start");
	return -1;
}

void
vmfake_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--fake-qemu") != 0)
		return;
	/* fd 3: the file a test wants held open (vmfake_qemu looks). fd 3
	 * may be taken by what the test inherited (flock(1)'s lock file
	 * when the suite runs under `flock LOCK tests/run`). */
	if (argc >= 8 && strcmp(argv[6], "--open") == 0) {
		int fd = open(argv[7], O_RDONLY);

		if (fd < 0 || (fd != 3 && dup2(fd, 3) != 3))
			_exit(126);
		if (fd != 3)
			close(fd);
	}
	for (;;)
		pause();
}

void
vmfake_agent(const char *tmpl, char *dir, size_t dirsz, char *uuid,
    char *qmp, size_t qmpsz)
{
	char path[PATH_MAX];

	snprintf(dir, dirsz, "%s", tmpl);
	assert_non_null(mkdtemp(dir));
	snprintf(agent_cfg.data, sizeof(agent_cfg.data), "%s/data", dir);
	snprintf(agent_cfg.run, sizeof(agent_cfg.run), "%s/run", dir);
	snprintf(agent_cfg.name, sizeof(agent_cfg.name), "h1");
	snprintf(agent_cfg.storage[0].name, sizeof(agent_cfg.storage[0].name),
	    "local");
	snprintf(agent_cfg.storage[0].path, sizeof(agent_cfg.storage[0].path),
	    "%s/storage", dir);
	agent_cfg.nstorage = 1;
	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms", agent_cfg.data),
	    0);
	assert_int_equal(util_mkdir_p(path, 0700), 0);
	assert_int_equal(util_mkdir_p(agent_cfg.run, 0700), 0);
	assert_int_equal(util_uuid_gen(uuid), 0);
	assert_int_equal(util_fmt(qmp, qmpsz, "%s/%.8s.qmp", agent_cfg.run,
	    uuid), 0);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms/%s",
	    agent_cfg.storage[0].path, uuid), 0);
	assert_int_equal(util_mkdir_p(path, 0700), 0);
}

void
vmfake_reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		*pid = 0;
	}
}

void
vmfake_record(const char *uuid, pid_t pid, const char *qmp)
{
	char path[PATH_MAX];
	json_t *rec;

	rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:s, s:[]}",
	    "uuid", uuid, "name", "web1", "storage", "local", "dir", "",
	    "qmp_path", qmp, "serial_path", "", "pid", (json_int_t)pid, "ha", 1,
	    "ha_monitor", "process", "nics");
	assert_non_null(rec);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms/%s.json",
	    agent_cfg.data, uuid), 0);
	assert_int_equal(json_dump_file(rec, path, 0), 0);
	json_decref(rec);
}

void
vmfake_state(const char *uuid, char *out, size_t outsz, pid_t *pid)
{
	struct avm *vm = vmhost_get(uuid);

	out[0] = '\0';
	if (vm == NULL)
		return;
	pthread_mutex_lock(&vm->lock);
	snprintf(out, outsz, "%s", vm->state);
	if (pid)
		*pid = vm->pid;
	pthread_mutex_unlock(&vm->lock);
	vmhost_put(vm);
}

void
vmfake_wait_state(const char *uuid, const char *want, int ms)
{
	int64_t deadline = util_mono_ms() + ms;
	char st[16];

	for (;;) {
		vmfake_state(uuid, st, sizeof(st), NULL);
		if (strcmp(st, want) == 0)
			return;
		if (util_mono_ms() > deadline)
			fail_msg("vm state %s, not %s, after %d ms", st[0] ? st :
			    "(gone)", want, ms);
		util_sleep_ms(20);
	}
}

json_t *
vmfake_exit(const char *uuid)
{
	json_t *all = vmhost_exits(), *e, *ret = NULL;
	size_t i;

	json_array_foreach(all, i, e)
		if (strcmp(json_string_value(json_object_get(e, "uuid")),
		    uuid) == 0)
			ret = json_deep_copy(e);
	vmhost_exits_ack(all);
	json_decref(all);
	return ret;
}

json_t *
vmfake_listed(const char *uuid)
{
	json_t *all = vmhost_list(), *v, *ret = NULL;
	size_t i;

	json_array_foreach(all, i, v)
		if (strcmp(json_string_value(json_object_get(v, "uuid")),
		    uuid) == 0)
			ret = json_deep_copy(v);
	json_decref(all);
	return ret;
}
