/* test_klegacy.c - the first keeper start after an upgrade
 * (src/agent/klegacy.c, docs/keeper.md "Upgrade"): the keeper of the
 * previous version (forked inside the agent, src/agent/lease.c before
 * issue 14) still runs and guards the VMs; the new keeper finds it through
 * DATA/keeper.pid, watches its DATA/keeper.status for a renewal, takes
 * those times over and stops it. Its stand-in (keeper_proc.c: kp_legacy)
 * is that keeper's loop. Faults: the old keeper dead, stuck, failing one
 * domain, of another data directory; the new keeper killed mid-way; the
 * status files dated by a wall clock that jumped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/keeper.h"
#include "common/util.h"
#include "keeper_proc.h"

/* Keeper start with the takeover: watch, stop, then its usual start. */
#define KL_START_MS	(KEEPER_LEGACY_SEE_MS + KEEPER_LEGACY_STOP_MS + 2000)

static struct kp kl;

static int
kl_teardown(void **state)
{
	kp_stop(&kl);
	return 0;
}

/* Guards klegacy.c: klegacy_bound(): the bound is `before` minus the
 * domain's age; anything else in the old status gives none. */
static void
test_legacy_bound(void **state)
{
	int64_t b = -1;

	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":12},"
	    "\"d1\":{\"ok\":false,\"age_ms\":4000}}", "d0", 100000, &b), 0);
	assert_int_equal(b, 100000 - 12);
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":12},"
	    "\"d1\":{\"ok\":false,\"age_ms\":4000}}", "d1", 100000, &b), 0);
	assert_int_equal(b, 100000 - 4000);
	b = -1;
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":12}}",
	    "d9", 100000, &b), -1);
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":-5}}",
	    "d0", 100000, &b), -1);
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":1.5}}",
	    "d0", 100000, &b), -1);
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":"
	    "99999999999}}", "d0", 100000, &b), -1);
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":200000}}",
	    "d0", 100000, &b), -1);	/* before the boot */
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":tr", "d0", 100000, &b),
	    -1);	/* torn */
	assert_int_equal(klegacy_bound("", "d0", 100000, &b), -1);
	assert_int_equal(klegacy_bound("[1]", "d0", 100000, &b), -1);
	assert_int_equal(klegacy_bound("{\"d0\":{\"ok\":true,\"age_ms\":1},"
	    "\"d0\":{\"ok\":true,\"age_ms\":1}}", "d0", 100000, &b), -1);
	assert_int_equal(b, -1);
}

static int
kl_exists(struct kp *k, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", k->data, name);
	return access(path, F_OK) == 0;
}

/* A host as the previous version leaves it: two VMs (stand-ins) and
 * their records, and its keeper running in mode (kp_legacy). */
static void
kl_host(struct kp *k, const char *mode)
{
	kp_setup(k, "none", 1);
	kp_vms(k);
	k->legacy = kp_legacy(k, mode, NULL);
}

/* Start the new keeper right after one of the old keeper's rounds (the
 * longest watch: a whole round) and wait until it answers. */
static void
kl_upgrade(struct kp *k)
{
	kp_legacy_round(k);
	k->keeper = kp_keeper(k->data);
	if (kp_wait_sock(k, KL_START_MS) < 0)
		fail_msg("the new keeper did not answer within %d ms",
		    KL_START_MS);
}

/* The old keeper's stand-in ended (reaped): 1 when it is gone. */
static int
kl_legacy_gone(struct kp *k, int64_t ms)
{
	int64_t end = util_mono_ms() + ms;

	do {
		if (waitpid(k->legacy, NULL, WNOHANG) == k->legacy) {
			k->legacy = 0;
			return 1;
		}
		util_sleep_ms(1);
	} while (util_mono_ms() < end);
	return 0;
}

static void
kl_alive_for(struct kp *k, int64_t ms)
{
	util_sleep_ms(ms);
	assert_true(util_pid_alive(k->vm[0]));
	assert_true(util_pid_alive(k->vm[1]));
}

static void
kl_both_ok(struct kp *k, int nvm)
{
	json_t *r = kp_call(k, "{\"op\":\"status\"}");

	assert_int_equal(json_integer_value(json_object_get(r, "vms")), nvm);
	json_decref(r);
	assert_string_equal(kp_domstate(k, 0), "ok");
	assert_string_equal(kp_domstate(k, 1), "ok");
}

/* Guards klegacy.c: keeper_legacy_takeover(): with the old keeper
 * running, the new one takes over its renewal times: both VMs live on
 * through more than a fence time, the old keeper is gone, its files too;
 * then a hang of d0 kills d0's QEMU within F + T and leaves d1's (the VMs
 * are guarded, not only spared). Without the takeover (keeper_main not
 * calling it) both QEMUs are killed at start: "no previous state". */
static void
test_process_upgrade_keeps_vms(void **state)
{
	struct kp *k = &kl;

	kl_host(k, "ok");
	kl_upgrade(k);
	assert_true(kl_legacy_gone(k, 1000));
	assert_false(kl_exists(k, "keeper.pid"));
	assert_false(kl_exists(k, "keeper.status"));
	kl_both_ok(k, 2);
	kl_alive_for(k, KP_F + 3 * KEEPER_TICK_MS);
	kl_both_ok(k, 2);
	kp_fence_hung(k);
	kp_stop(k);
}

/* Guards klegacy.c: klegacy_same(): a new status file is any change of
 * the file (inode, size, dates), not a newer date: each one the old keeper
 * writes is dated 2001 (as after a wall clock step back), yet its renewals
 * are seen and the VMs kept. (Watching for a newer mtime, no renewal is
 * seen and both QEMUs are killed.) */
static void
test_process_upgrade_wall_clock_step(void **state)
{
	struct kp *k = &kl;

	kl_host(k, "fixed-mtime");
	kl_upgrade(k);
	assert_true(kl_legacy_gone(k, 1000));
	kl_alive_for(k, KP_F + 3 * KEEPER_TICK_MS);
	kl_both_ok(k, 2);
	kp_stop(k);
}

/* Guards klegacy.c: the bound is per domain and dated by the old
 * keeper's own age: its renewals of d0 have failed for 10 s, so d0's QEMU
 * is killed at once; d1's lives on. */
static void
test_process_upgrade_stale_domain(void **state)
{
	struct kp *k = &kl;
	int fd;

	kl_host(k, "stale-d0");
	fd = util_pidfd_open(k->vm[0]);
	kl_upgrade(k);
	assert_int_equal(util_pidfd_exited(fd, 500), 1);
	close(fd);
	util_sleep_ms(KP_F + 3 * KEEPER_TICK_MS);
	assert_true(util_pid_alive(k->vm[1]));
	assert_string_equal(kp_domstate(k, 1), "ok");
	kp_stop(k);
}

/* Guards klegacy.c: klegacy_observe() looks once more when the old
 * keeper ends: one that writes its status and exits at once (between two
 * of the new keeper's looks) still hands its renewal times over, and the
 * VMs live on. (Stopping the watch at its exit without that look, both
 * QEMUs are killed.) */
static void
test_process_upgrade_old_keeper_ends_after_a_round(void **state)
{
	struct kp *k = &kl;

	kl_host(k, "last-round");	/* its first round is done */
	k->keeper = kp_keeper(k->data);
	assert_int_equal(kp_wait_sock(k, KL_START_MS), 0);
	assert_true(kl_legacy_gone(k, 1000));
	kl_alive_for(k, KP_F + 3 * KEEPER_TICK_MS);
	kl_both_ok(k, 2);
	kp_stop(k);
}

/* Guards klegacy.c: an old keeper that shows no renewal within
 * KEEPER_LEGACY_SEE_MS (its round hangs; deaf to SIGTERM) proves nothing:
 * it is killed and every QEMU it guarded is killed too. */
static void
test_process_upgrade_stuck_old_keeper(void **state)
{
	struct kp *k = &kl;
	int fd[2], i;

	kl_host(k, "silent");
	for (i = 0; i < 2; i++)
		fd[i] = util_pidfd_open(k->vm[i]);
	k->keeper = kp_keeper(k->data);
	assert_int_equal(kp_wait_sock(k, KL_START_MS), 0);
	assert_true(kl_legacy_gone(k, 1000));
	for (i = 0; i < 2; i++) {
		assert_int_equal(util_pidfd_exited(fd[i], 1000), 1);
		close(fd[i]);
	}
	kp_stop(k);
}

/* Guards klegacy.c: klegacy_find(): keeper.pid naming a dead process, an
 * old keeper of another data directory, or a process that is no keeper:
 * none is signalled, no renewal is taken from anywhere, the VMs are killed
 * (the safe default without state) and keeper.pid goes. */
static void
test_process_upgrade_no_old_keeper(void **state)
{
	static const char *const cases[] = { "dead", "other", "standin" };
	char path[PATH_MAX], num[32];
	struct kp *k = &kl;
	pid_t other = 0;
	size_t c;
	int fd, i;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		kp_setup(k, "none", 1);
		kp_vms(k);
		if (strcmp(cases[c], "dead") == 0) {
			k->legacy = kp_legacy(k, "ok", NULL);
			kill(k->legacy, SIGKILL);
			assert_true(kl_legacy_gone(k, 1000));
		} else if (strcmp(cases[c], "other") == 0) {
			k->legacy = kp_legacy(k, "ok", "/var/lib/cvirt/other");
			other = k->legacy;
		} else {
			other = kp_standin("5e0e0000-0000-4000-8000-0000000000aa");
			snprintf(path, sizeof(path), "%s/keeper.pid", k->data);
			snprintf(num, sizeof(num), "%d\n", (int)other);
			assert_int_equal(util_write_file_atomic(path, num,
			    strlen(num), 0600), 0);
		}
		fd = util_pidfd_open(k->vm[0]);
		k->keeper = kp_keeper(k->data);
		assert_int_equal(util_pidfd_exited(fd, 1000), 1);
		close(fd);
		for (i = 0; i < 50 && util_pid_alive(k->vm[1]); i++)
			util_sleep_ms(10);
		assert_false(util_pid_alive(k->vm[1]));
		assert_false(kl_exists(k, "keeper.pid"));
		if (other > 0) {
			assert_true(util_pid_alive(other));
			if (other != k->legacy) {
				kill(other, SIGKILL);
				waitpid(other, NULL, 0);
			}
		}
		other = 0;
		kp_stop(k);
	}
}

/* Guards kmain.c/klegacy.c: the renewal times are saved in keeper.state
 * before the old keeper is stopped. A new keeper killed while it watches
 * leaves the old one guarding; one killed the moment the old one is gone
 * leaves its successor the times: either way the third keeper keeps both
 * VMs. (Saving after the stop, the third keeper finds no state and kills
 * them.) */
static void
test_process_upgrade_keeper_dies_midway(void **state)
{
	struct kp *k = &kl;

	kl_host(k, "ok");
	kp_legacy_round(k);
	k->keeper = kp_keeper(k->data);
	util_sleep_ms(300);	/* it watches (the old keeper's round is 1 s) */
	kill(k->keeper, SIGKILL);
	waitpid(k->keeper, NULL, 0);
	assert_int_equal(waitpid(k->legacy, NULL, WNOHANG), 0);
	assert_true(util_pid_alive(k->vm[0]));
	assert_true(kl_exists(k, "keeper.pid"));

	k->keeper = kp_keeper(k->data);
	assert_true(kl_legacy_gone(k, KEEPER_LEGACY_SEE_MS + 1000));
	kill(k->keeper, SIGKILL);
	waitpid(k->keeper, NULL, 0);

	k->keeper = kp_keeper(k->data);
	assert_int_equal(kp_wait_sock(k, 2000), 0);
	kl_alive_for(k, KP_F + 3 * KEEPER_TICK_MS);
	kl_both_ok(k, 2);
	kp_stop(k);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_legacy_bound),
		cmocka_unit_test_teardown(test_process_upgrade_keeps_vms,
		    kl_teardown),
		cmocka_unit_test_teardown(test_process_upgrade_wall_clock_step,
		    kl_teardown),
		cmocka_unit_test_teardown(test_process_upgrade_stale_domain,
		    kl_teardown),
		cmocka_unit_test_teardown(
		    test_process_upgrade_old_keeper_ends_after_a_round,
		    kl_teardown),
		cmocka_unit_test_teardown(test_process_upgrade_stuck_old_keeper,
		    kl_teardown),
		cmocka_unit_test_teardown(test_process_upgrade_no_old_keeper,
		    kl_teardown),
		cmocka_unit_test_teardown(test_process_upgrade_keeper_dies_midway,
		    kl_teardown),
	};

	kp_child(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
