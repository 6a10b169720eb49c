/* test_vmexit.c - unit tests for how the agent learns that a QEMU ended
 * (src/agent/vmexit.c): only its pidfd counts. A QEMU that was killed but
 * cannot exit (a thread in uninterruptible storage I/O) is reported
 * "unknown" after VMEXIT_KILL_WAIT_MS and no exit is recorded for it (so
 * the manager starts no second copy) until it is really gone.
 *
 * The stuck QEMU is real, not simulated: the fake QEMU (vmfake.c) holds a
 * file open on a FUSE filesystem served by this test (fusestall.c); once
 * that filesystem stops answering, the killed process hangs in D state at
 * its exit, in the kernel's FLUSH of the file, exactly as QEMU does on a
 * hung FUSE storage domain. Aborting the FUSE connection lets it go. The
 * waits are the product's own (VMEXIT_KILL_WAIT_MS, 5 s): no test seam.
 * Needs root (mount); skipped otherwise, like test_privdrop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"
#include "fake_qmp.h"
#include "fusestall.h"
#include "vmfake.h"

/* An attach takes one try (VMADOPT_ATTACH_MS at most); "unknown" comes
 * VMEXIT_KILL_WAIT_MS after the kill is seen, which the monitor looks for
 * every 250 ms: 2.5 s of margin for a loaded sanitizer build. */
#define T_ATTACH_MS	5000
#define T_UNKNOWN_MS	(VMEXIT_KILL_WAIT_MS + 2500)
#define T_EXIT_MS	5000

struct tstate {
	char			 dir[64];
	char			 mnt[128];
	char			 file[160];
	pid_t			 qemu;
	char			 uuid[UTIL_UUID_LEN + 1];
	char			 qmp[108];
	struct fusestall	*fs;
};

static int
setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	vmfake_agent("/tmp/cvirt-vmexit.XXXXXX", t->dir, sizeof(t->dir),
	    t->uuid, t->qmp, sizeof(t->qmp));
	snprintf(t->mnt, sizeof(t->mnt), "%s/fuse", t->dir);
	snprintf(t->file, sizeof(t->file), "%s/f", t->mnt);
	assert_int_equal(util_mkdir_p(t->mnt, 0700), 0);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tstate *t = *state;

	fusestall_stop(t->fs);		/* lets a stuck fake QEMU go */
	vmfake_reap(&t->qemu);
	util_rm_rf(t->dir);
	agent_cfg.nstorage = 0;
	free(t);
	return 0;
}

/* The fake QEMU of t with t->file open, adopted and attached to the
 * fake QMP f plays. */
static struct fake_qmp *
t_running(struct tstate *t, const struct fake_step *steps)
{
	struct fake_qmp *f;

	assert_non_null(t->fs = fusestall_start(t->mnt));
	t->qemu = vmfake_qemu(t->uuid, t->qmp, t->file);
	vmfake_record(t->uuid, t->qemu, t->qmp);
	assert_non_null(f = fake_qmp_start(t->qmp, steps, 0));
	vmadopt_start();
	vmfake_wait_state(t->uuid, "running", T_ATTACH_MS);
	return f;
}

/* 1 when pid is in uninterruptible sleep (its /proc stat says D). */
static int
t_in_d(pid_t pid)
{
	char path[64], *buf, *p;
	size_t len;
	int d = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((buf = util_read_file(path, 4096, &len)) == NULL)
		return 0;
	if ((p = strrchr(buf, ')')) != NULL && p[1] == ' ')
		d = p[2] == 'D';
	free(buf);
	return d;
}

/* Killed by someone else (the keeper's fence) while its storage hangs:
 * the VM stays in the table, "unknown" with the reason, and no exit is
 * recorded while the process lives; once it is gone the exit is recorded
 * (a failure) and the VM leaves the table. Guards vmexit.c
 * vmexit_monitor() (pidfd in the poll, util_pid_dying, vmexit_unexited):
 * before it the monitor left the VM "running" for as long as QEMU hung. */
static void
test_killed_but_stuck_is_unknown(void **state)
{
	static const struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_RETURN, "{\"status\": \"running\", \"running\": true}"),
		FQ(FQ_HOLD, NULL),
	};
	struct tstate *t = *state;
	struct fake_qmp *f;
	char err[256], st[16];
	json_t *v, *e;
	int64_t until;
	pid_t pid = 0;

	if (geteuid() != 0)
		skip();
	f = t_running(t, steps);
	fusestall_stall(t->fs);
	assert_int_equal(kill(t->qemu, SIGKILL), 0);
	for (until = util_mono_ms() + 2000; !t_in_d(t->qemu) &&
	    util_mono_ms() < until; )
		util_sleep_ms(10);
	assert_true(t_in_d(t->qemu));
	vmfake_wait_state(t->uuid, "unknown", T_UNKNOWN_MS);
	vmfake_state(t->uuid, st, sizeof(st), &pid);
	assert_int_equal(pid, t->qemu);
	v = vmfake_listed(t->uuid);
	assert_non_null(v);
	snprintf(err, sizeof(err), "QEMU pid %d does not exit (uninterruptible "
	    "I/O)", (int)t->qemu);
	assert_string_equal(json_string_value(json_object_get(v, "state")),
	    "unknown");
	assert_string_equal(json_string_value(json_object_get(v, "reason")),
	    err);
	json_decref(v);
	assert_null(vmfake_exit(t->uuid));
	/* Still stuck a while later: still unknown, still no exit. */
	util_sleep_ms(1500);
	assert_true(t_in_d(t->qemu));
	vmfake_state(t->uuid, st, sizeof(st), NULL);
	assert_string_equal(st, "unknown");
	assert_null(vmfake_exit(t->uuid));

	/* The storage answers (here: its daemon dies): QEMU is gone. */
	fusestall_stop(t->fs);
	t->fs = NULL;
	vmfake_wait_state(t->uuid, "", T_EXIT_MS);
	assert_non_null(e = vmfake_exit(t->uuid));
	assert_string_equal(json_string_value(json_object_get(e, "state")),
	    "failed");
	json_decref(e);
	assert_int_equal(fake_qmp_finish(f, err, sizeof(err)), 0);
	vmfake_reap(&t->qemu);
}

/* vm stop --force of a QEMU that cannot exit: quit closes QMP, SIGKILL
 * does not end it; the stop fails with "does not exit (uninterruptible
 * I/O)", the VM is unknown and no exit is recorded (before: the monitor
 * recorded one 10 s after QMP closed, whether QEMU was gone or not, and
 * the stop succeeded); the exit comes once QEMU is gone. Guards vmhost.c
 * vmhost_stop() and vmexit.c vmexit_ended(). */
static void
test_stop_force_of_stuck_qemu_fails(void **state)
{
	static const struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_RETURN, "{\"status\": \"running\", \"running\": true}"),
		FQ(FQ_EXPECT, "quit"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_CLOSE, NULL),
	};
	struct tstate *t = *state;
	struct fake_qmp *f;
	char err[256], st[16];
	json_t *e;
	int status = 0;

	if (geteuid() != 0)
		skip();
	f = t_running(t, steps);
	fusestall_stall(t->fs);
	assert_int_equal(vmhost_stop(t->uuid, 1, 0, err, sizeof(err), &status),
	    -1);
	assert_int_equal(status, 500);
	assert_non_null(strstr(err, "does not exit (uninterruptible I/O)"));
	assert_true(t_in_d(t->qemu));
	vmfake_state(t->uuid, st, sizeof(st), NULL);
	assert_string_equal(st, "unknown");
	/* The monitor (QMP closed) does not record the exit either, after
	 * its own wait and kill. */
	util_sleep_ms(VMEXIT_KILL_WAIT_MS + 1000);
	vmfake_state(t->uuid, st, sizeof(st), NULL);
	assert_string_equal(st, "unknown");
	assert_null(vmfake_exit(t->uuid));

	fusestall_stop(t->fs);
	t->fs = NULL;
	vmfake_wait_state(t->uuid, "", T_EXIT_MS);
	assert_non_null(e = vmfake_exit(t->uuid));
	assert_string_equal(json_string_value(json_object_get(e, "state")),
	    "stopped");
	json_decref(e);
	assert_int_equal(fake_qmp_finish(f, err, sizeof(err)), 0);
	vmfake_reap(&t->qemu);
}

int
main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_killed_but_stuck_is_unknown),
		T(test_stop_force_of_stuck_qemu_fails),
	};

	vmfake_main(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (vmhost_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
