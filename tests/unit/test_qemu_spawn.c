/* test_qemu_spawn.c - unit tests for spawning QEMU (qemu_spawn.c): its
 * fds in place, its signals reset, as its user; against a stand-in and
 * against the real QEMU. The command line: test_qemu_cmd.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capenv.h"
#include "common/pki.h"
#include "common/proc.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qmp.h"
#include "qemu_fixture.h"
#include "sigenv.h"

/* A script that is not executed in these tests (see t_standin). */
static const char t_script[] = "#!/bin/sh\nexit 0\n";

/* Run as the stand-in QEMU: the spawn test points CVIRT_QEMU at this very
 * binary with CVIRT_TEST_STANDIN set; it reports what it inherited. A
 * shell would not do: dash clears its signal mask at start-up. */
static int
t_standin(int argc, char **argv)
{
	char path[300], target[4096], line[256];
	struct dirent *de;
	ssize_t n;
	FILE *f;
	DIR *d;
	int i;

	printf("argv:");
	for (i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	if ((d = opendir("/proc/self/fd")) == NULL)
		return 1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strtol(de->d_name, NULL, 10) == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		printf("fd %s -> %s\n", de->d_name, target);
		/* What a passed file holds, read through the fd. */
		if (strtol(de->d_name, NULL, 10) >= QEMU_FD_FIRST &&
		    target[0] == '/' && (n = pread((int)strtol(de->d_name,
		    NULL, 10), line, 16, 0)) >= 0)
			printf("fd %s reads \"%.*s\"\n", de->d_name, (int)n,
			    line);
	}
	closedir(d);
	if (getsid(0) == getpid())
		printf("session leader\n");
	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "SigBlk:", 7) == 0 ||
		    strncmp(line, "SigIgn:", 7) == 0 ||
		    strncmp(line, "Uid:", 4) == 0 ||
		    strncmp(line, "Gid:", 4) == 0 ||
		    strncmp(line, "Groups:", 7) == 0 ||
		    strncmp(line, "Cap", 3) == 0 ||
		    strncmp(line, "NoNewPrivs:", 11) == 0)
			fputs(line, stdout);
	}
	fclose(f);
	n = readlink("/proc/self/cwd", target, sizeof(target) - 1);
	target[n < 0 ? 0 : n] = '\0';
	printf("cwd %s\n", target);
	/* A path the caller could open: can we? */
	if (getenv("CVIRT_TEST_STANDIN_OPEN")) {
		int fd = open(getenv("CVIRT_TEST_STANDIN_OPEN"), O_RDONLY);

		printf("open by path: %s\n", fd < 0 ? strerror(errno) : "ok");
	}
	return 7;
}

static void
t_write_script(struct tstate *t, const char *name, const char *text,
    mode_t mode)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	assert_int_equal(util_write_file_atomic(path, text, strlen(text), mode),
	    0);
	setenv("CVIRT_QEMU", path, 1);
}

/* QEMU starts detached with only fds 0-2, in its own session, with no
 * signal blocked or ignored whatever our parent left us (the stand-in
 * reports its /proc status). Guards qemu_child (src/qemu/qemu_spawn.c) and
 * proc_child_signals (src/common/proc.c): with sigaction(3) there, glibc's
 * internal signals 32 and 33 stayed ignored under `make test`. */
static void
test_spawn_detached(void **state)
{
	struct tstate *t = *state;
	char logp[256], marker[256], self[4096], *log;
	struct sigenv sigsave;
	int status, mfd, stdin_save;
	ssize_t n;
	pid_t pid = 0;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	setenv("CVIRT_QEMU", self, 1);
	setenv("CVIRT_TEST_STANDIN", "1", 1);
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	assert_int_equal(util_write_file_atomic(logp, "before\n", 7, 0640), 0);
	/* An inherited fd, a blocked and an ignored signal must not leak. */
	snprintf(marker, sizeof(marker), "%s/marker-fd", t->dir);
	mfd = open(marker, O_RDWR | O_CREAT, 0600);
	assert_true(mfd >= 0);
	/* Our stdin is the marker too: the child must get /dev/null. */
	stdin_save = dup(0);
	assert_true(stdin_save >= 0);
	assert_int_equal(dup2(mfd, 0), 0);
	/* Whatever our parent left (see sigenv.h): qemu_child resets it. */
	assert_int_equal(sigenv_hostile(&sigsave), 0);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), 0);
	sigenv_restore(&sigsave);
	unsetenv("CVIRT_TEST_STANDIN");
	dup2(stdin_save, 0);
	close(stdin_save);
	close(mfd);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);
	log = util_read_file(logp, 1 << 20, NULL);
	assert_non_null(log);
	assert_memory_equal(log, "before\n", 7);
	assert_non_null(strstr(log, "argv: -name guest=vm1,debug-threads=on "));
	/* Exactly stdin, stdout and stderr are open. */
	assert_non_null(strstr(log, "\nfd 0 -> /dev/null\n"));
	assert_non_null(strstr(log, qt_fmt("\nfd 1 -> %s\n", logp, NULL)));
	assert_non_null(strstr(log, qt_fmt("\nfd 2 -> %s\n", logp, NULL)));
	if (qt_count(log, "\nfd ") != 3)
		fail_msg("unexpected open fds:\n%s", log);
	assert_non_null(strstr(log, "session leader\n"));
	if (strstr(log, SIGENV_CLEAN_BLK) == NULL ||
	    strstr(log, SIGENV_CLEAN_IGN) == NULL)
		fail_msg("signals blocked or ignored in QEMU:\n%s",
		    strstr(log, "SigBlk:") ? strstr(log, "SigBlk:") : log);
	free(log);
}

static void
test_spawn_exec_failure(void **state)
{
	struct tstate *t = *state;
	char logp[256], bin[256], want[600];
	pid_t pid = 0;

	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	snprintf(bin, sizeof(bin), "%s/no-such-qemu", t->dir);
	setenv("CVIRT_QEMU", bin, 1);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	snprintf(want, sizeof(want), "cannot run %s: No such file or directory",
	    bin);
	assert_string_equal(t->err, want);
	/* The failed child was reaped: no zombie, no child left. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	t_write_script(t, "not-executable", t_script, 0644);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "not-executable: Permission denied"));
}

static void
test_spawn_bad_input(void **state)
{
	struct tstate *t = *state;
	char logp[256];
	pid_t pid = 0;

	t_write_script(t, "fake-qemu", t_script, 0755);
	snprintf(logp, sizeof(logp), "%s/missing-dir/qemu.log", t->dir);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "cannot open"));
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	SET(t->spec->serial_log, "/log/a,b");
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err,
	    "cannot build QEMU command line: invalid VM description");
	assert_int_equal(pid, 0);
}

/* fd moved to 100 or above (close-on-exec); the original is closed. */
static int
t_high(int fd)
{
	int nfd;

	assert_true(fd >= 0);
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	assert_true(nfd >= 100);
	close(fd);
	return nfd;
}

/* Save what sits on fds lo..hi (to put our own there); t_fds_restore puts
 * it back. */
static void
t_fds_save(int lo, int hi, int saved[])
{
	int fd;

	for (fd = lo; fd <= hi; fd++)
		saved[fd - lo] = fcntl(fd, F_GETFD) < 0 ? -1 :
		    fcntl(fd, F_DUPFD_CLOEXEC, 200);
}

static void
t_fds_restore(int lo, int hi, const int saved[])
{
	int fd;

	for (fd = lo; fd <= hi; fd++) {
		close(fd);
		if (saved[fd - lo] >= 0) {
			dup2(saved[fd - lo], fd);
			close(saved[fd - lo]);
		}
	}
}

/* Point CVIRT_QEMU at a copy of this binary, in t->dir made traversable,
 * that any user may run; the copy runs as the stand-in (t_standin). */
static void
t_standin_setup(struct tstate *t)
{
	char self[4096], copy[256];
	ssize_t n;
	char *bin;
	size_t len;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	bin = util_read_file(self, 1 << 30, &len);
	assert_non_null(bin);
	snprintf(copy, sizeof(copy), "%s/standin", t->dir);
	assert_int_equal(util_write_file_atomic(copy, bin, len, 0755), 0);
	free(bin);
	assert_int_equal(chmod(t->dir, 0711), 0);
	setenv("CVIRT_QEMU", copy, 1);
	setenv("CVIRT_TEST_STANDIN", "1", 1);
}

/* Spawn the stand-in, wait for it, return what it reported (free it). */
static char *
t_standin_run(struct tstate *t)
{
	char logp[256], *log;
	int status;
	pid_t pid = 0;

	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	(void)unlink(logp);
	if (qemu_spawn(t->spec, logp, &pid, t->err, sizeof(t->err)) < 0)
		fail_msg("qemu_spawn: %s", t->err);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	log = util_read_file(logp, 1 << 20, NULL);
	assert_non_null(log);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
		fail_msg("the stand-in failed:\n%s", log);
	return log;
}

static void
t_assert_in(const char *log, const char *want)
{
	if (strstr(log, want) == NULL)
		fail_msg("missing \"%s\" in:\n%s", want, log);
}

/* QEMU gets exactly the fds passed, each at its slot, open on the same
 * file as ours (a listening socket, a read-only CD-ROM image, an
 * append-only log), also when ours sit on each other's slots (a naive
 * dup2 would clobber one), close-on-exec or not; and nothing else: an
 * inheritable fd of ours stays out. A CD-ROM image open for writing, a
 * closed fd: nothing starts. Guards qemu_child and qemu_check_pass
 * (src/qemu/qemu_spawn.c). */
static void
test_spawn_passes_fds(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	int saved[3], lfd, cd, log, leak, rw;
	char want[256], *out;
	struct stat st;
	pid_t pid = 0;

	t_standin_setup(t);
	assert_int_equal(util_write_file_atomic(qt_fmt("%s/cd.iso", t->dir,
	    NULL), "ISO-CONTENT", 11, 0600), 0);
	/* Ours far from the slots, to put copies exactly where we want. */
	lfd = t_high(qt_listen(t, "qmp.sock"));
	cd = t_high(qt_open_file(t, "cd.iso", O_RDONLY));
	log = t_high(qt_open_file(t, "serial.log", O_WRONLY | O_APPEND |
	    O_CREAT));
	leak = t_high(open(qt_fmt("%s/leak", t->dir, NULL), O_RDWR | O_CREAT,
	    0600));
	assert_int_equal(fcntl(leak, F_SETFD, 0), 0);	/* inheritable */
	assert_int_equal(fstat(lfd, &st), 0);
	/* Ours at 4 (CD-ROM), 5 (QMP), 6 (log); QEMU's order is QMP, log,
	 * CD-ROM. */
	t_fds_save(4, 6, saved);
	assert_int_equal(dup3(cd, 4, O_CLOEXEC), 4);
	assert_int_equal(dup3(lfd, 5, O_CLOEXEC), 5);
	assert_int_equal(dup2(log, 6), 6);	/* inheritable, for once */
	s->qmp_fd = qemu_spec_fd(s, 5);
	s->serial_path[0] = '\0';
	s->serial_log_fdset = qemu_spec_fdset(s, 6, "log");
	SET(s->disks[0].format, "raw");
	s->disks[0].cdrom = 1;
	s->disks[0].fdset = qemu_spec_fdset(s, 4, "cd");
	s->ndisks = 1;
	out = t_standin_run(t);
	t_fds_restore(4, 6, saved);
	snprintf(want, sizeof(want), "\nfd 4 -> socket:[%lu]\n",
	    (unsigned long)st.st_ino);
	t_assert_in(out, want);
	t_assert_in(out, qt_fmt("\nfd 5 -> %s/serial.log\n", t->dir, NULL));
	t_assert_in(out, qt_fmt("\nfd 6 -> %s/cd.iso\n", t->dir, NULL));
	t_assert_in(out, "\nfd 6 reads \"ISO-CONTENT\"\n");
	t_assert_in(out, "argv: ");
	t_assert_in(out, " -add-fd fd=5,set=1,opaque=log -add-fd "
	    "fd=6,set=2,opaque=cd ");
	/* 0-2 and the three slots; not 3 (close-on-exec), not the leak. */
	if (qt_count(out, "\nfd ") - qt_count(out, " reads ") != 6)
		fail_msg("unexpected open fds:\n%s", out);
	free(out);

	/* A CD-ROM image open read-write would stay writable in QEMU. */
	s->pass_fd[0] = lfd;
	s->pass_fd[1] = log;
	s->pass_fd[2] = rw = qt_open_file(t, "cd.iso", O_RDWR);
	assert_int_equal(qemu_spawn(s, qt_fmt("%s/qemu.log", t->dir, NULL),
	    &pid, t->err, sizeof(t->err)), -1);
	snprintf(want, sizeof(want), "cannot pass fd %d to QEMU: a read-only "
	    "device's file must be open read-only", rw);
	assert_string_equal(t->err, want);
	close(rw);
	/* A closed fd. */
	assert_int_equal(qemu_spawn(s, qt_fmt("%s/qemu.log", t->dir, NULL),
	    &pid, t->err, sizeof(t->err)), -1);
	snprintf(want, sizeof(want), "cannot pass fd %d to QEMU: Bad file "
	    "descriptor", rw);
	assert_string_equal(t->err, want);
	assert_int_equal(pid, 0);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	close(lfd);
	close(cd);
	close(log);
	close(leak);
}

/* QEMU started as an unprivileged user: its uid and gid, exactly the
 * supplementary groups given (ours are gone), no capability in any set
 * (bounding and ambient included), no_new_privs, cwd "/"; it reads a
 * root-only file through the fd passed and cannot open it by path. A
 * switch that cannot be made starts nothing. Guards proc_child_identity
 * (src/common/proc.c) and qemu_child (src/qemu/qemu_spawn.c). Needs root
 * (CI runs as root). */
static void
test_spawn_as_user(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char secret[256], why[128], *out;
	struct capenv save;
	int fd;
	pid_t pid = 0;

	if (geteuid() != 0)
		skip();
	t_standin_setup(t);
	snprintf(secret, sizeof(secret), "%s/secret", t->dir);
	assert_int_equal(util_write_file_atomic(secret, "ROOT-ONLY", 9, 0600),
	    0);
	fd = qt_open_file(t, "secret", O_RDONLY);
	SET(s->kernel, "/unused");
	s->kernel_fd = qemu_spec_fd(s, fd);
	setenv("CVIRT_TEST_STANDIN_OPEN", secret, 1);
	assert_int_equal(proc_identity_user("nobody", NULL, &s->user, t->err,
	    sizeof(t->err)), 0);
	assert_true(s->user.uid != 0 && s->user.gid != 0);
	/* Groups and capabilities of ours that must not reach QEMU. */
	assert_int_equal(capenv_hostile(&save), 0);
	out = t_standin_run(t);
	capenv_restore(&save);
	unsetenv("CVIRT_TEST_STANDIN_OPEN");
	if (capenv_dropped(out, &s->user, why, sizeof(why)) < 0)
		fail_msg("%s in:\n%s", why, out);
	t_assert_in(out, "\ncwd /\n");
	t_assert_in(out, "\nfd 4 reads \"ROOT-ONLY\"\n");
	t_assert_in(out, "\nopen by path: Permission denied\n");
	free(out);

	/* Root is no unprivileged user: nothing runs. */
	s->user.uid = 0;
	assert_int_equal(qemu_spawn(s, qt_fmt("%s/qemu.log", t->dir, NULL),
	    &pid, t->err, sizeof(t->err)), -1);
	assert_string_equal(t->err, qt_fmt("cannot run %s/standin as an "
	    "unprivileged user: Invalid argument", t->dir, NULL));
	assert_int_equal(pid, 0);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	close(fd);
}

/* 1 if prog is an executable in $PATH. */
static int
t_in_path(const char *prog)
{
	char path[4096], *p, *save = NULL, buf[8192];
	const char *env = getenv("PATH");

	snprintf(path, sizeof(path), "%s", env ? env : "/usr/bin:/bin");
	for (p = strtok_r(path, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		snprintf(buf, sizeof(buf), "%s/%s", p, prog);
		if (access(buf, X_OK) == 0)
			return 1;
	}
	return 0;
}

static void
t_real_spec(struct tstate *t)
{
	struct qemu_vm_spec *s = t->spec;
	char img[256];

	snprintf(img, sizeof(img), "%s/disk.raw", t->dir);
	assert_int_equal(util_write_file_atomic(img, "", 0, 0600), 0);
	assert_int_equal(truncate(img, 1 << 20), 0);
	snprintf(s->disks[0].path, sizeof(s->disks[0].path), "%s", img);
	snprintf(s->disks[0].format, sizeof(s->disks[0].format), "raw");
	/* The CD-ROM needs its own image: QEMU locks images. */
	s->disks[1] = s->disks[0];
	s->disks[1].cdrom = 1;
	snprintf(s->disks[1].path, sizeof(s->disks[1].path), "%s/cd.iso",
	    t->dir);
	assert_int_equal(util_write_file_atomic(s->disks[1].path, "", 0, 0600),
	    0);
	s->ndisks = 2;
	snprintf(s->nics[0].mac, sizeof(s->nics[0].mac), "52:54:00:00:00:01");
	snprintf(s->nics[0].type, sizeof(s->nics[0].type), "user");
	s->nnics = 1;
	s->memory_mib = 64;
	s->cpus = 1;
	s->panic_device = s->watchdog = s->start_paused = 1;
	snprintf(s->pidfile, sizeof(s->pidfile), "%s/qemu.pid", t->dir);
}

/* A real QEMU of t_real_spec, its pid in *pid (and t->qemu), QMP open. */
static struct qmp *
t_real_qemu(struct tstate *t, pid_t *pid)
{
	char logp[256], *log;
	struct qmp *q;

	t_real_spec(t);
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	assert_int_equal(qemu_spawn(t->spec, logp, pid, t->err,
	    sizeof(t->err)), 0);
	t->qemu = *pid;
	q = qmp_open(t->spec->qmp_path, 5000, NULL, NULL, t->err, sizeof(t->err));
	if (q == NULL) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		t->qemu = 0;
		log = util_read_file(logp, 1 << 20, NULL);
		fail_msg("%s; QEMU said: %s", t->err, log ? log : "?");
	}
	return q;
}

/* The command line is accepted by the real QEMU (skipped without one). */
static void
test_spawn_real_qemu(void **state)
{
	struct tstate *t = *state;
	char *pidtxt;
	struct qmp *q;
	json_t *ret = NULL;
	pid_t pid = 0;
	int status;

	if (!t_in_path("qemu-system-x86_64"))
		skip();
	q = t_real_qemu(t, &pid);
	assert_int_equal(qmp_command(q, "query-status", NULL, 5000, &ret,
	    t->err, sizeof(t->err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")),
	    "prelaunch");
	json_decref(ret);
	pidtxt = util_read_file(t->spec->pidfile, 64, NULL);
	assert_non_null(pidtxt);
	assert_int_equal(strtol(pidtxt, NULL, 10), pid);
	free(pidtxt);
	(void)qmp_command(q, "quit", NULL, 5000, NULL, t->err, sizeof(t->err));
	qmp_close(q);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	t->qemu = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* tls-creds-psk (endpoint server) of dir on q: 0, or -1 with err. */
static int
t_psk_server(struct qmp *q, const char *id, const char *dir, char *err,
    size_t errsz)
{
	json_t *args = json_pack("{s:s, s:s, s:s, s:s}", "qom-type",
	    "tls-creds-psk", "id", id, "dir", dir, "endpoint", "server");
	int rc = qmp_command(q, "object-add", args, 5000, NULL, err, errsz);

	json_decref(args);
	return rc;
}

/* A migration's receiving QEMU takes pki_dh_params' PEM as its
 * dh-params.pem (without one it generates parameters inside object-add:
 * ~0.8 s of CPU, past QMP's 5 s on a busy host), and reads that file: a
 * broken one fails the object-add. Guards pki.c pki_dh_params() and the
 * file migstream.c migstream_key() writes beside keys.psk. */
static void
test_migration_dh_params(void **state)
{
	struct tstate *t = *state;
	char dir[128], *pem;
	struct qmp *q;
	pid_t pid = 0;

	if (!t_in_path("qemu-system-x86_64"))
		skip();
	q = t_real_qemu(t, &pid);
	snprintf(dir, sizeof(dir), "%s/mig", t->dir);
	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	assert_int_equal(util_write_file_atomic(qt_fmt("%s/keys.psk", dir, NULL),
	    "cvirt:00112233445566778899aabbccddeeff\n", 38, 0600), 0);
	assert_non_null(pem = pki_dh_params(t->err, sizeof(t->err)));
	assert_non_null(strstr(pem, "-----BEGIN DH PARAMETERS-----"));
	assert_int_equal(util_write_file_atomic(qt_fmt("%s/dh-params.pem", dir, NULL),
	    pem, strlen(pem), 0600), 0);
	free(pem);
	if (t_psk_server(q, "good", dir, t->err, sizeof(t->err)) < 0)
		fail_msg("object-add with pki_dh_params: %s", t->err);
	assert_int_equal(util_write_file_atomic(qt_fmt("%s/dh-params.pem", dir, NULL),
	    "not a PEM\n", 10, 0600), 0);
	assert_int_equal(t_psk_server(q, "bad", dir, t->err, sizeof(t->err)),
	    -1);
	(void)qmp_command(q, "quit", NULL, 5000, NULL, t->err, sizeof(t->err));
	qmp_close(q);
	waitpid(pid, NULL, 0);
	t->qemu = 0;
}

/* The value of field (e.g. "Uid:") in /proc/PID/status: its first word
 * into out. */
static void
t_proc_status(pid_t pid, const char *field, char *out, size_t outsz)
{
	char path[64], *st, *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	st = util_read_file(path, 1 << 16, NULL);
	assert_non_null(st);
	out[0] = '\0';
	if ((p = strstr(st, field)) != NULL) {
		p += strlen(field);
		p += strspn(p, "\t ");
		snprintf(out, outsz, "%.*s", (int)strcspn(p, "\t \n"), p);
	}
	free(st);
}

/* 1 when pid has an fd open on path. */
static int
t_proc_has_file(pid_t pid, const char *path)
{
	char dir[64], link[400], target[4096];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int found = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		found |= strcmp(target, path) == 0;
	}
	closedir(d);
	return found;
}

static int
t_blockdev_add(struct qmp *q, const char *node, const char *file,
    char *err, size_t errsz)
{
	json_t *args = json_pack("{s:s, s:s, s:s, s:b}", "driver", "file",
	    "node-name", node, "filename", file, "read-only", 1);
	int rc;

	assert_non_null(args);
	rc = qmp_command(q, "blockdev-add", args, 5000, NULL, err, errsz);
	json_decref(args);
	return rc;
}

/* A TAP device of our own (not persistent: it goes with the last fd),
 * open as the agent opens one for QEMU; its name in ifname. */
static int
t_tap_open(char *ifname, size_t ifnamesz)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open /dev/net/tun: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "cvqt%%d");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		fail_msg("TUNSETIFF: %s", strerror(errno));
	snprintf(ifname, ifnamesz, "%s", ifr.ifr_name);
	return fd;
}

/* The smallest file QEMU's x86 loader takes as a Linux kernel (boot
 * protocol 2.02: qt_setup sectors, boot flag, "HdrS") with an initrd; it
 * is loaded at machine creation, never run here (-S). */
static void
t_write_kernel(const char *path)
{
	unsigned char k[8192] = { 0 };

	k[0x1f1] = 4;
	k[0x1fe] = 0x55;
	k[0x1ff] = 0xaa;
	memcpy(k + 0x202, "HdrS", 4);
	k[0x206] = 0x02;
	k[0x207] = 0x02;
	assert_int_equal(util_write_file_atomic(path, (char *)k, sizeof(k),
	    0644), 0);
}

/* The real QEMU as an unprivileged user, with everything it needs passed
 * open, all in a directory only root can enter: QMP, serial console and
 * guest agent listening sockets, the serial log, a disk and a CD-ROM
 * (root 0600), kernel and initrd (root 0644: QEMU reopens
 * /proc/self/fd/N with its own rights, docs/security.md), a TAP with
 * vnet headers; VNC with no socket. It starts under its sandbox and
 * answers QMP; it runs as that user with no capability and no_new_privs;
 * an fd we left inheritable did not reach it; it cannot open a root file
 * by path (blockdev-add: Permission denied) but opens one we pass by
 * add-fd (SCM_RIGHTS), takes a socket passed by getfd for netdev_add, and
 * serves VNC on a socket passed by getfd + add_client (the RFB greeting
 * comes back). Guards qemu_child (src/qemu/qemu_spawn.c), the fd options
 * of qemu_build_argv (src/qemu/qemu_cmd.c), proc_child_identity
 * (src/common/proc.c), qmp_add_fd and qmp_send_fd (src/qemu/qmp_fd.c)
 * against QEMU itself. Needs root and QEMU (CI has both). */
static void
test_spawn_real_qemu_unprivileged(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	int lq, ls, lg, log, disk, cd, kern, initrd, tap, other, leak;
	int sp[2], vp[2];
	char logp[256], val[64], other_path[256], file[64], *qlog;
	char ifname[IFNAMSIZ], rfb[13];
	struct timeval tv = { .tv_sec = 10 };
	int64_t set = -1;
	struct qmp *q;
	json_t *ret = NULL, *args;
	pid_t pid = 0;
	int status;

	if (!t_in_path("qemu-system-x86_64") || geteuid() != 0)
		skip();
	assert_int_equal(chmod(t->dir, 0700), 0);
	assert_int_equal(util_write_file_atomic(qt_fmt("%s/disk.raw", t->dir,
	    NULL), "", 0, 0600), 0);
	assert_int_equal(truncate(qt_fmt("%s/disk.raw", t->dir, NULL), 1 << 20),
	    0);
	assert_int_equal(util_write_file_atomic(qt_fmt("%s/cd.iso", t->dir,
	    NULL), "CD", 2, 0600), 0);
	snprintf(other_path, sizeof(other_path), "%s/other.img", t->dir);
	assert_int_equal(util_write_file_atomic(other_path, "OTHER", 5, 0600),
	    0);
	t_write_kernel(qt_fmt("%s/vmlinuz", t->dir, NULL));
	assert_int_equal(util_write_file_atomic(qt_fmt("%s/initrd.img", t->dir,
	    NULL), "INITRD", 6, 0644), 0);
	lq = qt_listen(t, "qmp.sock");
	ls = qt_listen(t, "serial.sock");
	lg = qt_listen(t, "qga.sock");
	log = qt_open_file(t, "serial.log", O_WRONLY | O_APPEND | O_CREAT);
	kern = qt_open_file(t, "vmlinuz", O_RDONLY);
	initrd = qt_open_file(t, "initrd.img", O_RDONLY);
	tap = t_tap_open(ifname, sizeof(ifname));
	disk = qt_open_file(t, "disk.raw", O_RDWR);
	cd = qt_open_file(t, "cd.iso", O_RDONLY);
	other = qt_open_file(t, "other.img", O_RDONLY);
	leak = open(qt_fmt("%s/leak", t->dir, NULL), O_RDWR | O_CREAT, 0600);
	assert_true(leak >= 0);
	s->qmp_fd = qemu_spec_fd(s, lq);
	s->serial_fd = qemu_spec_fd(s, ls);
	s->serial_log_fdset = qemu_spec_fdset(s, log, "serial-log");
	s->qga_fd = qemu_spec_fd(s, lg);
	SET(s->qga_path, qt_fmt("%s/qga.sock", t->dir, NULL));
	s->kernel_fd = qemu_spec_fd(s, kern);
	s->initrd_fd = qemu_spec_fd(s, initrd);
	SET(s->kernel, "/not/used/vmlinuz");
	SET(s->initrd, "/not/used/initrd.img");
	SET(s->cmdline, "console=ttyS0");
	SET(s->disks[0].format, "raw");
	s->disks[0].fdset = qemu_spec_fdset(s, disk, "disk0");
	SET(s->disks[1].format, "raw");
	s->disks[1].cdrom = 1;
	s->disks[1].fdset = qemu_spec_fdset(s, cd, "cdrom");
	s->ndisks = 2;
	SET(s->nics[0].mac, "52:54:00:00:00:01");
	SET(s->nics[0].type, "user");
	SET(s->nics[1].mac, "52:54:00:00:00:02");
	SET(s->nics[1].type, "tap");
	SET(s->nics[1].ifname, ifname);
	s->nics[1].port = 1;
	s->nics[1].fd = qemu_spec_fd(s, tap);
	s->nnics = 2;
	s->vnc_display = 0;
	s->memory_mib = 64;
	s->cpus = 1;
	s->start_paused = 1;
	assert_int_equal(proc_identity_user("nobody", "kvm", &s->user, t->err,
	    sizeof(t->err)), 0);
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	assert_int_equal(qemu_spawn(s, logp, &pid, t->err, sizeof(t->err)), 0);
	t->qemu = pid;
	/* The agent keeps the paths it bound: re-attach connects there. */
	q = qmp_open(s->qmp_path, 10000, NULL, NULL, t->err, sizeof(t->err));
	if (q == NULL) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		t->qemu = 0;
		qlog = util_read_file(logp, 1 << 20, NULL);
		fail_msg("%s; QEMU said: %s", t->err, qlog ? qlog : "?");
	}
	assert_int_equal(qmp_command(q, "query-status", NULL, 5000, &ret,
	    t->err, sizeof(t->err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")),
	    "prelaunch");
	json_decref(ret);
	t_proc_status(pid, "Uid:", val, sizeof(val));
	assert_int_equal(strtol(val, NULL, 10), (long)s->user.uid);
	t_proc_status(pid, "NoNewPrivs:", val, sizeof(val));
	assert_string_equal(val, "1");
	t_proc_status(pid, "CapEff:", val, sizeof(val));
	assert_string_equal(val, "0000000000000000");
	t_proc_status(pid, "CapBnd:", val, sizeof(val));
	assert_string_equal(val, "0000000000000000");
	t_proc_status(pid, "Seccomp:", val, sizeof(val));
	assert_string_equal(val, "2");
	assert_false(t_proc_has_file(pid, qt_fmt("%s/leak", t->dir, NULL)));
	assert_true(t_proc_has_file(pid, qt_fmt("%s/disk.raw", t->dir, NULL)));
	/* By path: QEMU's own rights, none here. */
	assert_int_equal(t_blockdev_add(q, "bypath", other_path, t->err,
	    sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "Permission denied"));
	/* By fd: an fdset QEMU opens through /dev/fdset. */
	assert_int_equal(qmp_add_fd(q, other, "other", 5000, &set, t->err,
	    sizeof(t->err)), 0);
	snprintf(file, sizeof(file), "/dev/fdset/%lld", (long long)set);
	if (t_blockdev_add(q, "byfd", file, t->err, sizeof(t->err)) < 0)
		fail_msg("blockdev-add %s: %s", file, t->err);
	/* A socket by getfd, taken by name. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sp), 0);
	assert_int_equal(qmp_send_fd(q, "sock0", sp[0], 5000, t->err,
	    sizeof(t->err)), 0);
	args = json_pack("{s:s, s:s, s:s}", "type", "socket", "id", "ns0",
	    "fd", "sock0");
	if (qmp_command(q, "netdev_add", args, 5000, NULL, t->err,
	    sizeof(t->err)) < 0)
		fail_msg("netdev_add with a passed socket: %s", t->err);
	json_decref(args);
	/* A VNC viewer on a socket passed by getfd: QEMU greets it. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    vp), 0);
	assert_int_equal(setsockopt(vp[1], SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	assert_int_equal(qmp_send_fd(q, "vnc0", vp[0], 5000, t->err,
	    sizeof(t->err)), 0);
	args = json_pack("{s:s, s:s, s:b}", "protocol", "vnc", "fdname",
	    "vnc0", "skipauth", 1);
	if (qmp_command(q, "add_client", args, 5000, NULL, t->err,
	    sizeof(t->err)) < 0)
		fail_msg("add_client with a passed socket: %s", t->err);
	json_decref(args);
	memset(rfb, 0, sizeof(rfb));
	assert_int_equal(recv(vp[1], rfb, 12, MSG_WAITALL), 12);
	assert_string_equal(rfb, "RFB 003.008\n");
	(void)qmp_command(q, "quit", NULL, 5000, NULL, t->err, sizeof(t->err));
	qmp_close(q);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	t->qemu = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(sp[0]);
	close(sp[1]);
	close(vp[0]);
	close(vp[1]);
	close(lq);
	close(ls);
	close(lg);
	close(log);
	close(kern);
	close(initrd);
	close(tap);
	close(disk);
	close(cd);
	close(other);
	close(leak);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, qt_setup, qt_teardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_spawn_detached),
		T(test_spawn_exec_failure),
		T(test_spawn_bad_input),
		T(test_spawn_passes_fds),
		T(test_spawn_as_user),
		T(test_spawn_real_qemu),
		T(test_spawn_real_qemu_unprivileged),
		T(test_migration_dh_params),
	};

	if (getenv("CVIRT_TEST_STANDIN"))
		return t_standin(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
