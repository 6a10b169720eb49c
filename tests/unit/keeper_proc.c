/* keeper_proc.c - real keeper processes and their stand-ins for unit
 * tests (keeper_proc.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "agent/keeper.h"
#include "keeper_proc.h"

static char self_exe[PATH_MAX];
static volatile sig_atomic_t kp_legacy_quit;

static void
kp_legacy_onsig(int sig)
{
	(void)sig;
	kp_legacy_quit = 1;
}

/* The old keeper's loop (src/agent/lease.c: keeper_loop before issue 14,
 * without its fence): argv is SELF --legacy-keeper MODE --data AGENTDATA
 * DATA D0 D1. */
static void
kp_legacy_main(char **argv)
{
	const char *mode = argv[2], *data = argv[5], *dom[2] = { argv[6],
	    argv[7] };
	int64_t last_ok[2], seq = 0, now, start;
	char path[PATH_MAX], buf[256];
	int ok[2], i;

	prctl(PR_SET_NAME, "cvirt-keeper", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	signal(SIGTERM, kp_legacy_onsig);
	now = util_mono_ms();
	last_ok[0] = last_ok[1] = now;
	if (strcmp(mode, "stale-d0") == 0)
		last_ok[0] = now - 10000;
	while (!kp_legacy_quit) {
		start = util_mono_ms();
		seq++;
		for (i = 0; i < 2; i++) {
			snprintf(buf, sizeof(buf), "{\"host\":\"h1\",\"seq\":%lld,"
			    "\"renewed\":%lld,\"pid\":%d}\n", (long long)seq,
			    (long long)util_wall_ms(), (int)getpid());
			snprintf(path, sizeof(path), "%s/leases/h1.json", dom[i]);
			ok[i] = !(i == 0 && strcmp(mode, "stale-d0") == 0) &&
			    util_write_file_atomic(path, buf, strlen(buf), 0644) == 0;
			now = util_mono_ms();
			if (ok[i])
				last_ok[i] = now;
		}
		snprintf(buf, sizeof(buf), "{\"d0\":{\"ok\":%s,\"age_ms\":%lld},"
		    "\"d1\":{\"ok\":%s,\"age_ms\":%lld}}", ok[0] ? "true" :
		    "false", (long long)(now - last_ok[0]), ok[1] ? "true" : "false",
		    (long long)(now - last_ok[1]));
		snprintf(path, sizeof(path), "%s/keeper.status", data);
		(void)util_write_file_atomic(path, buf, strlen(buf), 0600);
		if (strcmp(mode, "fixed-mtime") == 0) {
			struct timespec ts[2] = { { 978307200, 0 }, { 978307200, 0 } };

			(void)utimensat(AT_FDCWD, path, ts, 0);
		}
		if (strcmp(mode, "last-round") == 0 && seq == 2)
			_exit(0);	/* its status of round 2 just written */
		if (strcmp(mode, "silent") == 0) {
			/* Its round hangs in a write: no status, no exit. */
			signal(SIGTERM, SIG_IGN);
			for (;;)
				pause();
		}
		now = util_mono_ms();
		if (now - start < 1000)
			util_sleep_ms(1000 - (now - start));
	}
	_exit(0);
}

void
kp_child(int argc, char **argv)
{
	ssize_t n;

	if (argc >= 2 && strcmp(argv[1], "--stand-in") == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (;;)
			pause();
	}
	if (argc == 8 && strcmp(argv[1], "--legacy-keeper") == 0)
		kp_legacy_main(argv);
	/* What the agent's keeperctl_spawn runs: /proc/self/exe keeper. */
	if (argc == 4 && strcmp(argv[1], "keeper") == 0)
		exit(keeper_main(argc - 1, argv + 1));
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		exit(1);
	self_exe[n] = '\0';
}

void
kp_mkdir(const char *p)
{
	assert_int_equal(util_mkdir_p(p, 0777), 0);
	assert_int_equal(chmod(p, 0777), 0);
}

pid_t
kp_standin(const char *uuid)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		execl(self_exe, "test_keeper", "--stand-in", "-uuid", uuid,
		    (char *)NULL);
		_exit(127);
	}
	/* Until its exec is done its cmdline is ours. */
	while (!util_pid_has_arg(pid, uuid))
		util_sleep_ms(5);
	return pid;
}

json_t *
kp_call(struct kp *k, const char *fmt, ...)
{
	char buf[1024], err[256];
	va_list ap;
	json_t *req, *rep;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	req = json_loads(buf, 0, NULL);
	assert_non_null(req);
	rep = keeperctl_call_at(k->sock, req, 1000, err, sizeof(err));
	json_decref(req);
	if (rep == NULL)
		fail_msg("keeper %s: %s", buf, err);
	return rep;
}

const char *
kp_domstate(struct kp *k, int i)
{
	static char st[32];
	json_t *r = kp_call(k, "{\"op\":\"status\"}");

	snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(
	    json_object_get(json_object_get(r, "domains"), i ? "d1" : "d0"),
	    "state")));
	json_decref(r);
	return st;
}

void
kp_setup(struct kp *k, const char *watchdog, int direct)
{
	char conf[1024], path[256];
	struct sockaddr_un sa;
	int i;

	memset(k, 0, sizeof(*k));
	k->wd = -1;
	snprintf(k->base, sizeof(k->base), "/tmp/cvirt-tk.XXXXXX");
	assert_non_null(mkdtemp(k->base));
	assert_int_equal(chmod(k->base, 0777), 0);
	snprintf(k->data, sizeof(k->data), "%s/data", k->base);
	snprintf(k->run, sizeof(k->run), "%s/run", k->base);
	snprintf(k->sock, sizeof(k->sock), "%s/keeper.sock", k->run);
	kp_mkdir(k->data);
	kp_mkdir(k->run);
	for (i = 0; i < 2; i++) {
		snprintf(k->d[i], sizeof(k->d[i]), "%s/d%d", k->base, i);
		snprintf(path, sizeof(path), "%s/leases", k->d[i]);
		kp_mkdir(path);
		snprintf(k->uuid[i], sizeof(k->uuid[i]),
		    "5e0e0000-0000-4000-8000-00000000000%d", i);
	}
	if (strcmp(watchdog, "unix") == 0) {
		snprintf(k->wdsock, sizeof(k->wdsock), "%s/wd.sock", k->base);
		k->wd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		assert_int_equal(util_fmt(sa.sun_path, sizeof(sa.sun_path), "%s",
		    k->wdsock), 0);
		assert_int_equal(bind(k->wd, (struct sockaddr *)&sa,
		    sizeof(sa)), 0);
		assert_int_equal(chmod(k->wdsock, 0777), 0);
	}
	snprintf(conf, sizeof(conf), "{\"host\":\"h1\",\"run\":\"%s\","
	    "\"watchdog\":\"%s%s\",\"renew_ms\":%d,\"fence_ms\":%d,"
	    "\"watchdog_ms\":%d,\"domains\":[{\"name\":\"d0\",\"path\":\"%s\","
	    "\"direct\":%s},{\"name\":\"d1\",\"path\":\"%s\",\"direct\":%s}]}",
	    k->run, k->wd >= 0 ? "unix:" : watchdog, k->wd >= 0 ? k->wdsock : "",
	    KP_R, KP_F, KP_W, k->d[0], direct ? "true" : "false", k->d[1],
	    direct ? "true" : "false");
	snprintf(path, sizeof(path), "%s/keeper.conf", k->data);
	assert_int_equal(util_write_file_atomic(path, conf, strlen(conf), 0644),
	    0);
}

void
kp_vms(struct kp *k)
{
	char path[PATH_MAX], rec[256];
	int i;

	snprintf(path, sizeof(path), "%s/vms", k->data);
	kp_mkdir(path);
	for (i = 0; i < 2; i++) {
		k->vm[i] = kp_standin(k->uuid[i]);
		snprintf(path, sizeof(path), "%s/vms/%s.json", k->data, k->uuid[i]);
		snprintf(rec, sizeof(rec), "{\"uuid\":\"%s\",\"pid\":%d,"
		    "\"storage\":\"d%d\"}", k->uuid[i], (int)k->vm[i], i);
		assert_int_equal(util_write_file_atomic(path, rec, strlen(rec),
		    0644), 0);
	}
}

int
kp_wait_sock(struct kp *k, int64_t ms)
{
	int64_t end = util_mono_ms() + ms;
	json_t *req = json_pack("{s:s}", "op", "status"), *r = NULL;
	char err[256];
	int rc;

	while (r == NULL && util_mono_ms() < end) {
		if ((r = keeperctl_call_at(k->sock, req, 100, err,
		    sizeof(err))) == NULL)
			util_sleep_ms(10);
	}
	rc = r ? 0 : -1;
	json_decref(req);
	json_decref(r);
	return rc;
}

void
kp_start(struct kp *k, const char *watchdog, int direct, uid_t uid)
{
	json_t *r;
	int i;

	kp_setup(k, watchdog, direct);
	k->keeper = fork();
	assert_true(k->keeper >= 0);
	if (k->keeper == 0) {
		char *argv[] = { "keeper", "--data", k->data, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (uid > 0 && setuid(uid) < 0)
			_exit(126);
		_exit(keeper_main(3, argv));
	}
	assert_int_equal(kp_wait_sock(k, 2000), 0);
	/* Both domains renewed once: ok. */
	for (i = 0; i < 100 && (strcmp(kp_domstate(k, 0), "ok") != 0 ||
	    strcmp(kp_domstate(k, 1), "ok") != 0); i++)
		util_sleep_ms(10);
	assert_string_equal(kp_domstate(k, 0), "ok");
	for (i = 0; i < 2; i++) {
		int64_t until = util_mono_ms() + 2000;

		k->vm[i] = kp_standin(k->uuid[i]);
		/* The keeper takes a VM only on a lease renewed within two
		 * renew intervals (200 ms here): under load a renewal comes
		 * late (a run: 274 ms) and vm_add is refused; the next one
		 * takes it (the agent waits so too: keeperctl_vm_add). */
		for (;;) {
			r = kp_call(k, "{\"op\":\"vm_add\",\"uuid\":\"%s\","
			    "\"pid\":%d,\"domains\":[\"d%d\"]}", k->uuid[i],
			    (int)k->vm[i], i);
			if (json_is_true(json_object_get(r, "ok")) ||
			    util_mono_ms() >= until ||
			    strstr(json_string_value(json_object_get(r,
			    "error")) ?: "", "lease not renewed (age") == NULL)
				break;
			json_decref(r);
			util_sleep_ms(20);
		}
		if (!json_is_true(json_object_get(r, "ok")))
			fail_msg("vm_add: %s", json_string_value(json_object_get(r,
			    "error")));
		json_decref(r);
	}
}

void
kp_stop(struct kp *k)
{
	int i;

	if (k->keeper > 0) {
		kill(k->keeper, SIGKILL);
		waitpid(k->keeper, NULL, 0);
	}
	k->keeper = 0;
	if (k->legacy > 0) {
		kill(k->legacy, SIGKILL);
		waitpid(k->legacy, NULL, 0);
	}
	k->legacy = 0;
	for (i = 0; i < 2; i++) {
		if (k->vm[i] > 0) {
			kill(k->vm[i], SIGKILL);
			waitpid(k->vm[i], NULL, 0);
		}
		k->vm[i] = 0;
	}
	if (k->wd >= 0)
		close(k->wd);
	k->wd = -1;
	if (k->base[0])
		(void)util_rm_rf(k->base);
	k->base[0] = '\0';
}

pid_t
kp_keeper(const char *data)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "keeper", "--data", (char *)data, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		_exit(keeper_main(3, argv));
	}
	return pid;
}

int64_t
kp_hang(struct kp *k, int i)
{
	char path[PATH_MAX];
	int64_t t0 = util_mono_ms();

	snprintf(path, sizeof(path), "%s/leases/h1.json", k->d[i]);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0666), 0);
	return t0;
}

int64_t
kp_seq(struct kp *k, int i)
{
	char path[PATH_MAX];
	json_t *o;
	int64_t seq;

	snprintf(path, sizeof(path), "%s/leases/h1.json", k->d[i]);
	o = json_load_file(path, 0, NULL);
	assert_non_null(o);
	seq = json_integer_value(json_object_get(o, "seq"));
	json_decref(o);
	return seq;
}

int
kp_pets(struct kp *k, int64_t ms)
{
	int64_t end = util_mono_ms() + ms;
	char buf[64];
	int n = 0;

	while (util_mono_ms() < end) {
		struct timeval tv = { 0, 20000 };

		setsockopt(k->wd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (recv(k->wd, buf, sizeof(buf), 0) > 0 &&
		    strncmp(buf, "pet ", 4) == 0)
			n++;
	}
	return n;
}

void
kp_drain(struct kp *k)
{
	char buf[64];

	while (recv(k->wd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* The whole fence of d0 while its storage hangs: its QEMU dies within
 * F + T of the hang (and not before F - K - R), d1 renews on and keeps its
 * QEMU, and the fence is confirmed. */
void
kp_fence_hung(struct kp *k)
{
	int64_t t0, dead;
	int64_t seq;
	int fd = util_pidfd_open(k->vm[0]);

	assert_true(fd >= 0);
	t0 = kp_hang(k, 0);
	assert_int_equal(util_pidfd_exited(fd, KP_F + KEEPER_TICK_MS + 500), 1);
	dead = util_mono_ms();
	close(fd);
	if (dead - t0 > KP_F + KEEPER_TICK_MS ||
	    dead - t0 < KP_F - KP_K - KP_R - 100)
		fail_msg("QEMU on the hung domain gone %lld ms after the hang "
		    "(want %d..%d)", (long long)(dead - t0),
		    KP_F - KP_K - KP_R - 100, KP_F + KEEPER_TICK_MS);
	seq = kp_seq(k, 1);
	util_sleep_ms(3 * KP_R);
	assert_true(kp_seq(k, 1) != seq);
	assert_true(util_pid_alive(k->vm[1]));
	assert_string_equal(kp_domstate(k, 1), "ok");
	assert_string_equal(kp_domstate(k, 0), "fenced");
}

static int
kp_status_stat(struct kp *k, struct stat *st)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/keeper.status", k->data);
	return stat(path, st);
}

pid_t
kp_legacy(struct kp *k, const char *mode, const char *other_data)
{
	char path[PATH_MAX], num[32];
	struct stat st;
	pid_t pid = fork();
	int i;

	assert_true(pid >= 0);
	if (pid == 0) {
		execl(self_exe, "cvirt", "--legacy-keeper", mode, "--data",
		    other_data ? other_data : k->data, k->data, k->d[0], k->d[1],
		    (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/keeper.pid", k->data);
	snprintf(num, sizeof(num), "%d\n", (int)pid);
	assert_int_equal(util_write_file_atomic(path, num, strlen(num), 0600),
	    0);
	for (i = 0; i < 300 && kp_status_stat(k, &st) < 0; i++)
		util_sleep_ms(10);
	assert_int_equal(kp_status_stat(k, &st), 0);
	return pid;
}

void
kp_legacy_round(struct kp *k)
{
	struct stat a, b;
	int i;

	assert_int_equal(kp_status_stat(k, &a), 0);
	for (i = 0; i < 600; i++) {
		if (kp_status_stat(k, &b) == 0 && b.st_ino != a.st_ino)
			return;
		util_sleep_ms(5);
	}
	fail_msg("the old keeper's stand-in wrote no status for 3 s");
}
