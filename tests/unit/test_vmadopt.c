/* test_vmadopt.c - unit tests for re-attaching after an agent restart
 * (src/agent/vmadopt.c): a QEMU whose QMP does not answer stays in the
 * table as "unknown" and is attached once QMP answers; one that exited is
 * a failure; one without a record is found in /proc; an unknown VM is
 * stopped through its pidfd and cannot be started twice.
 *
 * QEMU is played by this test binary run again as "fake-qemu" (vmfake.c);
 * its QMP by the scripted fake server (fake_qmp.c). */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"
#include "fake_qmp.h"
#include "vmfake.h"
#include "storage/store.h"

/* Bounds of the waits below: an attach attempt takes at most 2 s
 * (VMADOPT_ATTACH_MS) and the next one comes 2 s later (VMADOPT_RETRY_MS),
 * so 7 s covers one retry with margin under a loaded sanitizer build. */
#define T_ATTACH_MS	7000
#define T_EXIT_MS	5000

struct tstate {
	char	 dir[64];
	pid_t	 qemu;		/* the fake QEMU, or 0 */
	pid_t	 other;		/* another agent's fake QEMU, or 0 */
	char	 uuid[UTIL_UUID_LEN + 1];
	char	 qmp[108];
};

static int
setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	vmfake_agent("/tmp/cvirt-adopt.XXXXXX", t->dir, sizeof(t->dir), t->uuid,
	    t->qmp, sizeof(t->qmp));
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tstate *t = *state;

	vmfake_reap(&t->qemu);
	vmfake_reap(&t->other);
	util_rm_rf(t->dir);
	agent_cfg.nstorage = 0;
	free(t);
	return 0;
}

/* QMP never answers: the VM stays "unknown" with its pid (and a reason),
 * start of the same uuid is refused; once QMP answers it is "running"
 * with the same pid. Guards vmadopt.c vmadopt_one() (never drops a live
 * QEMU) and vmadopt_main() (the retry). */
static void
test_unknown_then_running(void **state)
{
	static const struct fake_step hang[] = { FQ(FQ_HANG, NULL) };
	static const struct fake_step answer[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_RETURN, "{\"status\": \"running\", \"running\": true}"),
		FQ(FQ_HANG, NULL),
	};
	struct tstate *t = *state;
	struct fake_qmp *f;
	json_t *v, *e;
	char err[256], st[16];
	pid_t pid = 0;
	int status = 0;

	t->qemu = vmfake_qemu(t->uuid, t->qmp, NULL);
	vmfake_record(t->uuid, t->qemu, t->qmp);
	assert_non_null(f = fake_qmp_start(t->qmp, hang, 0));
	vmadopt_start();
	vmfake_state(t->uuid, st, sizeof(st), &pid);
	assert_string_equal(st, "unknown");
	assert_int_equal(pid, t->qemu);
	assert_string_equal(vmadopt_scan(), "complete");
	v = vmfake_listed(t->uuid);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "state")),
	    "unknown");
	assert_int_equal(json_integer_value(json_object_get(v, "pid")),
	    t->qemu);
	assert_non_null(strstr(json_string_value(json_object_get(v, "reason")),
	    "does not answer"));
	json_decref(v);
	/* A second QEMU of the VM on this host: the table, which every
	 * start passes (vmhost_start), refuses the uuid while unknown. */
	assert_null(vmhost_insert(t->uuid, "web1", "local", err, sizeof(err),
	    &status));
	assert_int_equal(status, 409);
	assert_non_null(strstr(err, "is unknown on host h1"));
	assert_null(vmfake_exit(t->uuid));
	assert_int_equal(fake_qmp_finish(f, err, sizeof(err)), 0);

	/* QMP answers now: running, same QEMU. */
	assert_non_null(f = fake_qmp_start(t->qmp, answer, 0));
	vmfake_wait_state(t->uuid, "running", T_ATTACH_MS);
	vmfake_state(t->uuid, st, sizeof(st), &pid);
	assert_int_equal(pid, t->qemu);
	v = vmfake_listed(t->uuid);
	assert_null(json_object_get(v, "reason"));
	json_decref(v);

	/* It ends: the monitor records a failure. */
	kill(t->qemu, SIGKILL);
	vmfake_wait_state(t->uuid, "", T_EXIT_MS);
	assert_int_equal(fake_qmp_finish(f, err, sizeof(err)), 0);
	assert_non_null(e = vmfake_exit(t->uuid));
	assert_string_equal(json_string_value(json_object_get(e, "state")),
	    "failed");
	json_decref(e);
}

/* A recorded QEMU that exited while the agent was down: a failure (HA
 * restarts it), not a stop. Guards vmadopt.c vmadopt_one(). */
static void
test_gone_is_failed(void **state)
{
	struct tstate *t = *state;
	char path[PATH_MAX], st[16];
	json_t *e;
	pid_t pid = vmfake_qemu(t->uuid, t->qmp, NULL);

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	vmfake_record(t->uuid, pid, t->qmp);
	vmadopt_start();
	vmfake_state(t->uuid, st, sizeof(st), NULL);
	assert_string_equal(st, "");
	assert_non_null(e = vmfake_exit(t->uuid));
	assert_string_equal(json_string_value(json_object_get(e, "state")),
	    "failed");
	assert_string_equal(json_string_value(json_object_get(e, "reason")),
	    "QEMU exited while the agent was down");
	json_decref(e);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/vms/%s.json",
	    agent_cfg.data, t->uuid), 0);
	assert_int_equal(access(path, F_OK), -1);
}

/* A live QEMU of this agent without a record is found in /proc (its argv
 * names the run dir) and adopted; a stop acts on its pidfd and the exit
 * is recorded once it is gone. A QEMU of another agent (another run dir)
 * is left alone. Guards vmadopt.c vmadopt_proc_scan() and vmadopt_stop(). */
static void
test_orphan_found_and_stopped(void **state)
{
	struct tstate *t = *state;
	char other[UTIL_UUID_LEN + 1], err[256], st[16];
	pid_t pid = 0;
	json_t *e;
	int status = 0;

	assert_int_equal(util_uuid_gen(other), 0);
	t->other = vmfake_qemu(other, "/tmp/cvirt-elsewhere/x.qmp", NULL);
	t->qemu = vmfake_qemu(t->uuid, t->qmp, NULL);	/* no record, no QMP */
	vmadopt_start();
	vmfake_state(t->uuid, st, sizeof(st), &pid);
	assert_string_equal(st, "unknown");
	assert_int_equal(pid, t->qemu);
	vmfake_state(other, st, sizeof(st), NULL);
	assert_string_equal(st, "");
	vmfake_reap(&t->other);

	assert_int_equal(vmhost_stop(t->uuid, 1, 0, err, sizeof(err),
	    &status), 0);
	assert_int_equal(status, 200);
	/* Done once the exit is recorded; out of the table right after. */
	vmfake_wait_state(t->uuid, "", T_EXIT_MS);
	assert_int_equal(waitpid(t->qemu, NULL, WNOHANG), t->qemu);
	t->qemu = 0;
	assert_non_null(e = vmfake_exit(t->uuid));
	assert_string_equal(json_string_value(json_object_get(e, "state")),
	    "stopped");
	json_decref(e);
}

int
main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_unknown_then_running),
		T(test_gone_is_failed),
		T(test_orphan_found_and_stopped),
	};

	vmfake_main(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (vmhost_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
