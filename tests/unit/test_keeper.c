/* test_keeper.c - the lease keeper (docs/keeper.md): keeper_decide() on
 * synthetic clocks (src/agent/keeper.c), then the real `cvirt keeper`
 * process (src/agent/kmain.c, kdomain.c) with a domain whose storage
 * hangs: its lease file replaced by a FIFO, whose open() never returns,
 * and stand-in QEMUs (this binary re-executed with "-uuid U"). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

#include <jansson.h>

#include "agent/agent_int.h"
#include "agent/keeper.h"
#include "common/util.h"
#include "keeper_proc.h"

#define R	KP_R	/* the process tests' timing (keeper_proc.h) */
#define F	KP_F
#define K	KP_K
#define T	KEEPER_TICK_MS
#define W	KP_W

static const struct ktiming tim = { 500, 3000, 250, 100, 1000 };

/* ---- keeper_decide on synthetic clocks --------------------------------- */

static void
kinit(struct kstate *s, int ndom, int nvm, int direct)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->t = tim;
	s->ndom = ndom;
	for (i = 0; i < ndom; i++) {
		snprintf(s->dom[i].name, sizeof(s->dom[i].name), "d%d", i);
		s->dom[i].direct = direct;
		s->dom[i].state = KD_OK;
		s->dom[i].last_ok = s->dom[i].io_last_ok = 1000;
		s->dom[i].io_last_done = 1000;
	}
	s->nvm = nvm;
	for (i = 0; i < nvm; i++) {
		snprintf(s->vm[i].uuid, sizeof(s->vm[i].uuid),
		    "00000000-0000-0000-0000-00000000000%d", i);
		s->vm[i].pid = 100 + i;
		s->vm[i].pidfd = 200 + i;
		s->vm[i].mask = 1u << (i % ndom);
	}
	s->watchdog = 1;
}

static void
decide(struct kstate *s, int64_t now, struct kacts *a)
{
	int closed[KEEPER_MAX_VMS], n;

	keeper_decide(s, now, a, closed, &n);
}

/* Guards keeper.c: keeper_absorb(): the kill comes at last_ok + F - K
 * exactly (2750 ms with the defaults), not a tick or a round later. */
static void
test_decide_kill_at_f_minus_k(void **state)
{
	struct kstate s;
	struct kacts a;

	kinit(&s, 1, 1, 1);
	decide(&s, 1000 + 2749, &a);
	assert_int_equal(a.nkill, 0);
	assert_int_equal(s.dom[0].state, KD_LATE);
	decide(&s, 1000 + 2750, &a);
	assert_int_equal(a.nkill, 1);
	assert_int_equal(a.kill[0], 0);
	assert_int_equal(s.dom[0].state, KD_FENCING);
	/* Sent once: the next tick does not kill it again. */
	decide(&s, 1000 + 2850, &a);
	assert_int_equal(a.nkill, 0);
}

/* Guards keeper.c: keeper_confirm(): fenced only when the pidfd says the
 * QEMU is gone; at last_ok + F without that, unconfirmed and no pet; a
 * late confirmation resumes the pets. */
static void
test_decide_confirmed_vs_unconfirmed(void **state)
{
	struct kstate s;
	struct kacts a;

	kinit(&s, 1, 1, 1);
	decide(&s, 3750, &a);		/* kill; still petted: not late yet */
	assert_int_equal(a.pet, 1);
	decide(&s, 3999, &a);
	assert_int_equal(s.dom[0].state, KD_FENCING);
	decide(&s, 4000, &a);		/* last_ok + F, still there */
	assert_int_equal(s.dom[0].state, KD_UNCONFIRMED);
	decide(&s, 4300, &a);
	assert_int_equal(a.pet, 0);
	decide(&s, 5000, &a);
	assert_int_equal(a.pet, 0);
	s.vm[0].exited = 1;		/* gone at last */
	decide(&s, 5100, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);
	assert_int_equal(s.nvm, 0);
	assert_int_equal(a.pet, 1);

	/* Confirmed in time: fenced, never unconfirmed. */
	kinit(&s, 1, 1, 1);
	decide(&s, 3750, &a);
	s.vm[0].exited = 1;
	decide(&s, 3850, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);
	decide(&s, 4100, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);
}

/* Guards keeper.c: keeper_absorb() (and kdomain.c's counting rule): once
 * fencing, a renewal that completes does not stop the fence; only one
 * that started after the kill makes the domain ok again, and only for
 * new VMs once the old ones are gone. */
static void
test_decide_late_success_does_not_revive(void **state)
{
	struct kstate s;
	struct kacts a;

	kinit(&s, 1, 1, 1);
	decide(&s, 3750, &a);
	assert_int_equal(a.nkill, 1);
	s.dom[0].io_last_ok = s.dom[0].io_last_done = 3800;
	decide(&s, 3800, &a);
	assert_int_equal(s.dom[0].state, KD_FENCING);
	assert_int_equal(s.dom[0].last_ok, 1000);
	s.vm[0].exited = 1;
	decide(&s, 3900, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);
	decide(&s, 4000, &a);
	/* That renewal started after the kill (3750): ok again. */
	assert_int_equal(s.dom[0].state, KD_OK);
	assert_int_equal(s.dom[0].last_ok, 3800);
	assert_true(a.revive & 1u);

	/* One that started before the kill does not revive it. */
	kinit(&s, 1, 1, 1);
	decide(&s, 3750, &a);
	s.vm[0].exited = 1;
	s.dom[0].io_last_done = 3700;
	decide(&s, 3850, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);
}

/* Guards keeper.c: keeper_decide() per domain: a hung domain's QEMUs are
 * killed, the other domain's are left alone and it stays ok. */
static void
test_decide_one_domain_leaves_the_other(void **state)
{
	struct kstate s;
	struct kacts a;
	int64_t now;

	kinit(&s, 2, 2, 1);		/* vm0 on d0, vm1 on d1 */
	for (now = 1100; now <= 5000; now += 100) {
		s.dom[1].io_last_ok = s.dom[1].io_last_done = now - 50;
		decide(&s, now, &a);
		if (a.nkill)
			assert_string_equal(s.vm[a.kill[0]].uuid,
			    "00000000-0000-0000-0000-000000000000");
	}
	assert_int_equal(s.dom[0].state, KD_UNCONFIRMED);
	assert_int_equal(s.dom[1].state, KD_OK);
	assert_int_equal(s.vm[1].killed_at, 0);
}

/* Guards keeper.c: keeper_confirm(): without O_DIRECT the page cache may
 * hold the killed QEMU's writes: fenced only after a syncfs that started
 * after its exit. */
static void
test_decide_page_cache_needs_syncfs(void **state)
{
	struct kstate s;
	struct kacts a;

	kinit(&s, 1, 1, 0);
	decide(&s, 3750, &a);
	s.vm[0].exited = 1;
	decide(&s, 3850, &a);
	assert_int_equal(s.dom[0].state, KD_FENCING);
	assert_true(a.sync & 1u);
	s.dom[0].io_sync_done = 3000;	/* an older syncfs counts for nothing */
	decide(&s, 3950, &a);
	assert_int_equal(s.dom[0].state, KD_FENCING);
	decide(&s, 4000, &a);
	assert_int_equal(s.dom[0].state, KD_UNCONFIRMED);
	s.dom[0].io_sync_done = 3900;
	decide(&s, 4100, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);
}

/* Guards keeper.c: keeper_absorb()'s hold (leave mode): no kill before
 * hold_until, the kill right after. */
static void
test_decide_hold(void **state)
{
	struct kstate s;
	struct kacts a;

	kinit(&s, 1, 1, 1);
	s.dom[0].hold_until = 5000;
	decide(&s, 3750, &a);
	decide(&s, 4900, &a);
	assert_int_equal(a.nkill, 0);
	decide(&s, 5000, &a);
	assert_int_equal(a.nkill, 1);
}

/* Guards keeper.c: the pet rule: none while the loop itself is late by
 * W/2 or more, none without a watchdog, one per P (250 ms) otherwise. */
static void
test_decide_pets(void **state)
{
	struct kstate s;
	struct kacts a;

	kinit(&s, 1, 0, 1);
	s.dom[0].io_last_ok = s.dom[0].io_last_done = 1000;
	decide(&s, 1100, &a);
	assert_int_equal(a.pet, 1);
	decide(&s, 1200, &a);
	assert_int_equal(a.pet, 0);	/* 100 ms after the last: not yet */
	decide(&s, 1350, &a);
	assert_int_equal(a.pet, 1);
	s.tick_late = 500;		/* W / 2 */
	decide(&s, 1700, &a);
	assert_int_equal(a.pet, 0);
	s.tick_late = 0;
	s.watchdog = 0;
	decide(&s, 1800, &a);
	assert_int_equal(a.pet, 0);
}

/* Guards keeper.c: a QEMU found on a fenced domain (a keeper restarted
 * without its state starts every domain fenced) is killed at once and,
 * no renewal being known (its deadline may have passed), the fence is
 * unconfirmed (no pets) until it is gone; the domain is ok again only
 * after a renewal that started after the kill, whatever came before. */
static void
test_decide_found_on_fenced_domain_is_killed(void **state)
{
	struct kstate s;
	struct kacts a;

	kinit(&s, 1, 1, 1);
	s.dom[0].state = KD_FENCED;
	s.dom[0].last_ok = s.dom[0].io_last_ok = 0;
	s.dom[0].fence_at = 900;
	s.dom[0].io_last_done = 950;	/* renewed since the keeper started */
	decide(&s, 1000, &a);
	assert_int_equal(a.nkill, 1);
	/* No renewal known: its deadline may have passed, no pets. */
	assert_int_equal(s.dom[0].state, KD_UNCONFIRMED);
	assert_int_equal(s.dom[0].fence_at, 1000);
	assert_int_equal(a.pet, 0);
	s.vm[0].exited = 1;
	decide(&s, 1100, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);
	assert_int_equal(a.pet, 1);
	decide(&s, 1200, &a);
	assert_int_equal(s.dom[0].state, KD_FENCED);	/* 950: before the kill */
	s.dom[0].io_last_done = 1050;
	decide(&s, 1300, &a);
	assert_int_equal(s.dom[0].state, KD_OK);
}

/* Guards keeper.c: keeper_state_take(): a predecessor's entry is taken
 * only when plausible; a torn or corrupt one (last_ok in the future or
 * unset, an unknown state) leaves the domain fenced. */
static void
test_state_take(void **state)
{
	static const struct { int32_t st; int64_t last_ok; int rc, want; }
	    cases[] = {
		{ KD_OK, 900, 0, KD_OK },
		{ KD_LATE, 900, 0, KD_OK },
		{ KD_FENCING, 900, 0, KD_FENCING },
		{ KD_FENCED, 900, 0, KD_FENCING },
		{ KD_UNCONFIRMED, 900, 0, KD_FENCING },
		{ KD_OK, 1001, -1, KD_FENCED },		/* the future */
		{ KD_OK, INT64_MAX, -1, KD_FENCED },
		{ KD_OK, 0, -1, KD_FENCED },
		{ KD_OK, -5, -1, KD_FENCED },
		{ KD_UNCONFIRMED + 1, 900, -1, KD_FENCED },
		{ -1, 900, -1, KD_FENCED },
	};
	struct kdstate d;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&d, 0, sizeof(d));
		d.state = KD_FENCED;
		assert_int_equal(keeper_state_take(&d, cases[i].st,
		    cases[i].last_ok, 1000), cases[i].rc);
		assert_int_equal(d.state, cases[i].want);
		assert_int_equal(d.last_ok, cases[i].rc == 0 ? cases[i].last_ok : 0);
	}
}

/* Guards keeper.c: keeper_record(): one 4096-byte record, one JSON text
 * with seq == seq_end (a torn read shows a difference). */
static void
test_record(void **state)
{
	char buf[KEEPER_RECORD_SIZE];
	json_t *o;

	assert_int_equal(keeper_record(buf, sizeof(buf), "h1", 81234, "b-1",
	    "watchdog", &tim, 1796531710123), 0);
	assert_int_equal(buf[sizeof(buf) - 1], '\n');
	o = json_loadb(buf, sizeof(buf), 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 81234);
	assert_int_equal(json_integer_value(json_object_get(o, "seq_end")),
	    81234);
	assert_string_equal(json_string_value(json_object_get(o, "fence")),
	    "watchdog");
	assert_int_equal(json_integer_value(json_object_get(o, "fence_ms")),
	    3000);
	json_decref(o);
}

/* Guards kdomain.c: kdom_counted(): a renewal that completes at or after
 * the previous one's kill time (last_ok + F - K) does not count. */
static void
test_renewal_counting_rule(void **state)
{
	assert_true(kdom_counted(&tim, 1000, 1000 + 2749, 0));
	assert_false(kdom_counted(&tim, 1000, 1000 + 2750, 0));
	assert_false(kdom_counted(&tim, 0, 5000, 0));	/* fenced at start */
	/* Leave mode: before hold_until it counts (the kill is held), not
	 * at or after it, nor without a counted renewal before. */
	assert_true(kdom_counted(&tim, 1000, 6000, 6001));
	assert_false(kdom_counted(&tim, 1000, 6001, 6001));
	assert_false(kdom_counted(&tim, 0, 5000, 9000));
}

/* Guards kmain.c: keeper_timing_check(): the start-up refusals. */
static void
test_timing_check(void **state)
{
	struct ktiming t = tim;
	char err[256];

	assert_int_equal(keeper_timing_check(&t, err, sizeof(err)), 0);
	t.fence_ms = 2249;	/* < 2R + K + 1000 = 2250 */
	assert_int_equal(keeper_timing_check(&t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2250"));
	t = tim;
	t.renew_ms = 50;
	assert_int_equal(keeper_timing_check(&t, err, sizeof(err)), -1);
	t = tim;
	t.watchdog_ms = 999;
	assert_int_equal(keeper_timing_check(&t, err, sizeof(err)), -1);
	t = tim;
	t.kill_grace_ms = 1000;	/* > F/4 */
	assert_int_equal(keeper_timing_check(&t, err, sizeof(err)), -1);
}

/* Guards util.c: util_pidfd_exited() and util_pidfd_kill(): a pidfd is
 * readable once the process has exited (zombie included), not before. */
static void
test_util_pidfd(void **state)
{
	pid_t pid = fork();
	int fd, st;

	assert_true(pid >= 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	fd = util_pidfd_open(pid);
	assert_true(fd >= 0);
	assert_int_equal(util_pidfd_exited(fd, 50), 0);
	assert_int_equal(util_pidfd_kill(fd, SIGKILL), 0);
	assert_int_equal(util_pidfd_exited(fd, 2000), 1);	/* a zombie */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	close(fd);
	assert_int_equal(util_pidfd_open(-1), -1);
}

/* Guards util.c: util_cond_wait_until() and util_sleep_until_ms() wait
 * on the monotonic clock, to the deadline. */
static void
test_util_mono_waits(void **state)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c;
	int64_t t0 = util_mono_ms();

	assert_int_equal(util_cond_init_mono(&c), 0);
	pthread_mutex_lock(&m);
	while (util_cond_wait_until(&c, &m, t0 + 100) == 0)
		;
	pthread_mutex_unlock(&m);
	assert_true(util_mono_ms() - t0 >= 100);
	assert_true(util_mono_ms() - t0 < 1000);
	t0 = util_mono_ms();
	util_sleep_until_ms(t0 + 80);
	assert_true(util_mono_ms() - t0 >= 80);
	pthread_cond_destroy(&c);
}

/* ---- the keeper process (keeper_proc.c) --------------------------------- */

static struct kp kp_cur;

static int
kp_teardown(void **state)
{
	kp_stop(&kp_cur);
	return 0;
}

/* Guards kdomain.c (the I/O thread per domain) and kmain.c/keeper.c (the
 * decision loop that never touches storage): with d0's storage hung in
 * open(), its QEMU stand-in is killed and confirmed within F + T, the
 * other domain keeps renewing, and the watchdog stand-in keeps getting
 * pets (every fence confirmed). On the old keeper (one thread doing the
 * I/O of all domains) this test hangs with both QEMUs alive. */
static void
test_process_hung_domain_is_fenced(void **state)
{
	struct kp *k = &kp_cur;

	kp_start(k, "unix", 1, 0);
	kp_fence_hung(k);
	kp_drain(k);
	assert_true(kp_pets(k, 600) >= 1);
	kp_stop(k);
}

/* Guards kmain.c: fence=kill-only (watchdog none): the same fence, and
 * status says kill-only with no watchdog. */
static void
test_process_kill_only(void **state)
{
	struct kp *k = &kp_cur;
	json_t *r;

	kp_start(k, "none", 1, 0);
	r = kp_call(k, "{\"op\":\"status\"}");
	assert_string_equal(json_string_value(json_object_get(r, "fence")),
	    "kill-only");
	assert_string_equal(json_string_value(json_object_get(r, "watchdog")),
	    "none");
	json_decref(r);
	kp_fence_hung(k);
	kp_stop(k);
}

/* Guards keeper.c: keeper_confirm() and the pet rule, in the process: a
 * QEMU the keeper cannot make go (the keeper runs as nobody, the stand-in
 * as root: its SIGKILL fails) leaves the fence unconfirmed and the
 * watchdog stand-in gets no more pets; status says "unpetted" and a new
 * VM is refused. Needs root (setuid). */
static void
test_process_unconfirmed_stops_pets(void **state)
{
	struct kp *k = &kp_cur;
	json_t *r;
	int64_t t0;

	if (geteuid() != 0)
		skip();
	kp_start(k, "unix", 1, 65534);
	t0 = kp_hang(k, 0);
	util_sleep_ms(F + 2 * T);
	(void)t0;
	assert_true(util_pid_alive(k->vm[0]));
	assert_string_equal(kp_domstate(k, 0), "unconfirmed");
	kp_drain(k);
	assert_int_equal(kp_pets(k, 700), 0);
	r = kp_call(k, "{\"op\":\"status\"}");
	assert_string_equal(json_string_value(json_object_get(r, "watchdog")),
	    "unpetted");
	json_decref(r);
	/* Once it is gone (killed by us, root), the fence is confirmed and
	 * the pets resume. */
	kill(k->vm[0], SIGKILL);
	waitpid(k->vm[0], NULL, 0);
	util_sleep_ms(2 * T);
	assert_string_equal(kp_domstate(k, 0), "fenced");
	kp_drain(k);
	assert_true(kp_pets(k, 600) >= 1);
	kp_stop(k);
}

/* Guards kdomain.c: kdom_main()'s syncfs step: on a domain without
 * O_DIRECT whose storage hangs, the QEMU is killed but the fence stays
 * unconfirmed (the page cache cannot be flushed), so pets stop. */
static void
test_process_page_cache_hang_unconfirmed(void **state)
{
	struct kp *k = &kp_cur;
	int fd;

	kp_start(k, "unix", 0, 0);
	fd = util_pidfd_open(k->vm[0]);
	kp_hang(k, 0);
	assert_int_equal(util_pidfd_exited(fd, F + T + 500), 1);
	close(fd);
	util_sleep_ms(F);
	assert_string_equal(kp_domstate(k, 0), "unconfirmed");
	kp_drain(k);
	assert_int_equal(kp_pets(k, 700), 0);
	kp_stop(k);
}

/* Guards kmain.c: the control socket: mode 0600; a message over 4096
 * bytes, a non-object, an unknown op, a bad vm_add (uuid, pid, a pid that
 * is not that VM's QEMU, an unknown domain) are refused with one line;
 * stop is refused while VMs are guarded. */
static void
test_process_control_socket(void **state)
{
	char big[5000], err[256];
	struct stat st;
	struct kp *k = &kp_cur;
	json_t *r, *req;

	kp_start(k, "none", 1, 0);
	assert_int_equal(stat(k->sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"op\":\"status\"", 14);
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	req = json_pack("{s:s, s:s}", "op", "status", "pad", big);
	r = keeperctl_call_at(k->sock, req, 1000, err, sizeof(err));
	json_decref(req);
	assert_non_null(r);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
	    "4096"));
	json_decref(r);
	r = kp_call(k, "[1,2]");
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	r = kp_call(k, "{\"op\":\"format-disk\"}");
	assert_string_equal(json_string_value(json_object_get(r, "error")),
	    "unknown op");
	json_decref(r);
	r = kp_call(k, "{\"op\":\"vm_add\",\"uuid\":\"x\",\"pid\":1,"
	    "\"domains\":[\"d0\"]}");
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	/* pid 1 is not the QEMU of that uuid. */
	r = kp_call(k, "{\"op\":\"vm_add\",\"uuid\":\"%s\",\"pid\":1,"
	    "\"domains\":[\"d0\"]}", "5e0e0000-0000-4000-8000-0000000000ff");
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
	    "is not the QEMU"));
	json_decref(r);
	r = kp_call(k, "{\"op\":\"vm_add\",\"uuid\":\"%s\",\"pid\":%d,"
	    "\"domains\":[\"nosuch\"]}", k->uuid[0], (int)k->vm[0]);
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	r = kp_call(k, "{\"op\":\"stop\"}");
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	/* A lost domain takes no VM. */
	kp_hang(k, 0);
	util_sleep_ms(F);
	r = kp_call(k, "{\"op\":\"vm_add\",\"uuid\":\"%s\",\"pid\":%d,"
	    "\"domains\":[\"d0\"]}", k->uuid[1], (int)k->vm[1]);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")),
	    "storage d0: lease not renewed"));
	json_decref(r);
	kp_stop(k);
}

/* Guards kmain.c: keeper_state_open() and the records scan: a keeper
 * that replaces another (SIGTERM) takes over its renewal times and finds
 * the recorded QEMU (DATA/vms/UUID.json), killing nothing; one started
 * without that state kills a QEMU it finds (the safe default). */
static void
test_process_takeover(void **state)
{
	char path[PATH_MAX], rec[256];
	struct kp *k = &kp_cur;
	json_t *r;
	int i;

	kp_start(k, "none", 1, 0);
	snprintf(path, sizeof(path), "%s/vms", k->data);
	kp_mkdir(path);
	snprintf(path, sizeof(path), "%s/vms/%s.json", k->data, k->uuid[0]);
	snprintf(rec, sizeof(rec), "{\"uuid\":\"%s\",\"pid\":%d,\"storage\":"
	    "\"d0\"}", k->uuid[0], (int)k->vm[0]);
	assert_int_equal(util_write_file_atomic(path, rec, strlen(rec), 0644),
	    0);
	kill(k->keeper, SIGTERM);
	waitpid(k->keeper, NULL, 0);
	k->keeper = kp_keeper(k->data);
	for (i = 0; i < 200 && access(k->sock, F_OK) < 0; i++)
		util_sleep_ms(10);
	r = kp_call(k, "{\"op\":\"status\"}");
	assert_int_equal(json_integer_value(json_object_get(r, "vms")), 1);
	json_decref(r);
	assert_string_equal(kp_domstate(k, 0), "ok");
	util_sleep_ms(F);
	assert_true(util_pid_alive(k->vm[0]));

	/* Without the state: the recorded QEMU is killed at once. */
	kill(k->keeper, SIGTERM);
	waitpid(k->keeper, NULL, 0);
	snprintf(path, sizeof(path), "%s/keeper.state", k->run);
	assert_int_equal(unlink(path), 0);
	k->keeper = kp_keeper(k->data);
	i = util_pidfd_open(k->vm[0]);
	assert_int_equal(util_pidfd_exited(i, 2000), 1);
	close(i);
	kp_stop(k);
}

/* Guards kmain.c: keeper_state_open() with keeper_state_take(): a
 * keeper.state whose d0 entry is corrupt (its last renewal in the future,
 * as a torn or foreign write could leave it) is not trusted: d0's QEMU is
 * killed at once, d1's entry is taken and its QEMU kept. */
static void
test_process_corrupt_state(void **state)
{
	char path[PATH_MAX], rec[256];
	struct kp *k = &kp_cur;
	int64_t future = util_mono_ms() + 3600000;
	int i, fd;

	kp_start(k, "none", 1, 0);
	snprintf(path, sizeof(path), "%s/vms", k->data);
	kp_mkdir(path);
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/vms/%s.json", k->data, k->uuid[i]);
		snprintf(rec, sizeof(rec), "{\"uuid\":\"%s\",\"pid\":%d,"
		    "\"storage\":\"d%d\"}", k->uuid[i], (int)k->vm[i], i);
		assert_int_equal(util_write_file_atomic(path, rec, strlen(rec),
		    0644), 0);
	}
	kill(k->keeper, SIGTERM);
	waitpid(k->keeper, NULL, 0);
	snprintf(path, sizeof(path), "%s/keeper.state", k->run);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &future, sizeof(future),
	    offsetof(struct kfile, dom[0].last_ok)), sizeof(future));
	close(fd);
	fd = util_pidfd_open(k->vm[0]);
	k->keeper = kp_keeper(k->data);
	assert_int_equal(util_pidfd_exited(fd, 1000), 1);
	close(fd);
	util_sleep_ms(F);
	assert_true(util_pid_alive(k->vm[1]));
	assert_string_equal(kp_domstate(k, 1), "ok");
	kp_stop(k);
}

static void
kp_state_read(struct kp *k, struct kfile *f)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/keeper.state", k->run);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, f, sizeof(*f), 0), sizeof(*f));
	close(fd);
}

/* Guards kmain.c: keeper_main()'s exit record in keeper.state, from which
 * the agent logs how its keeper ended (lease.c: keeperctl_log_end) for
 * the test harness (KEEPER_END_RE): a keeper that exits on SIGTERM records
 * status 0; one killed by a signal records nothing (exited stays 0). */
static void
test_process_exit_record(void **state)
{
	struct kp *k = &kp_cur;
	struct kfile f;
	int st;

	kp_start(k, "none", 1, 0);
	kp_state_read(k, &f);
	assert_int_equal(f.pid, k->keeper);
	assert_int_equal(f.exited, 0);
	kill(k->keeper, SIGTERM);
	assert_int_equal(waitpid(k->keeper, &st, 0), k->keeper);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	kp_state_read(k, &f);
	assert_int_equal(f.pid, k->keeper);
	assert_int_equal(f.exited, 1);
	assert_int_equal(f.status, 0);
	k->keeper = kp_keeper(k->data);
	assert_int_equal(kp_wait_sock(k, 2000), 0);
	kp_state_read(k, &f);
	assert_int_equal(f.pid, k->keeper);
	assert_int_equal(f.exited, 0);
	kill(k->keeper, SIGKILL);
	waitpid(k->keeper, NULL, 0);
	kp_state_read(k, &f);
	assert_int_equal(f.pid, k->keeper);
	assert_int_equal(f.exited, 0);
	kp_stop(k);
}

/* The agent's settings for k's keeper (as `cvirt agent` would have). */
static void
kp_agent_cfg(struct kp *k)
{
	int i;

	snprintf(agent_cfg.data, sizeof(agent_cfg.data), "%s", k->data);
	snprintf(agent_cfg.run, sizeof(agent_cfg.run), "%s", k->run);
	snprintf(agent_cfg.name, sizeof(agent_cfg.name), "h1");
	snprintf(agent_cfg.watchdog, sizeof(agent_cfg.watchdog), "none");
	agent_cfg.nstorage = 2;
	for (i = 0; i < 2; i++) {
		snprintf(agent_cfg.storage[i].name, sizeof(agent_cfg.storage[i].name),
		    "d%d", i);
		snprintf(agent_cfg.storage[i].path, sizeof(agent_cfg.storage[i].path),
		    "%s", k->d[i]);
		agent_cfg.storage[i].direct = 1;
	}
	agent_cfg.renew_ms = R;
	agent_cfg.fence_ms = F;
	agent_cfg.kill_grace_ms = K;
	agent_cfg.watchdog_ms = W;
}

/* Keeper processes of data: named cvirt-keeper, --data on their line. */
static int
kp_count_keepers(const char *data)
{
	struct dirent *e;
	DIR *d = opendir("/proc");
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], *comm;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		if ((comm = util_read_file(path, 64, NULL)) == NULL)
			continue;
		if (strcmp(comm, KEEPER_COMM "\n") == 0 &&
		    util_pid_has_arg(atoi(e->d_name), data))
			n++;
		free(comm);
	}
	closedir(d);
	return n;
}

/* Guards kctl.c: keeper_op_status() ("age_ms" null while no renewal is
 * known), lease.c: keeperctl_info() and keeperctl_ready() (no age made
 * up: lease_age_ms null), kmain.c: keeper_log_changes() and keeper.c:
 * keeper_decide() for a keeper started without keeper.state (docs/
 * keeper.md, "State across keepers"): d0's storage hangs from the start,
 * so it is never renewed; d1 has a recorded QEMU. d0 is fenced (nothing
 * to kill: no unconfirmed fence, pets go on), with no age; d1's QEMU is
 * killed, the log says why (never "-1 ms" or a made-up age), and d1 is
 * ok after its first renewal. Before, status gave d0 the monotonic clock
 * since boot as its age and the log "fence NOT confirmed -1 ms". */
static void
test_process_fresh_keeper(void **state)
{
	char path[PATH_MAX], rec[256], logp[PATH_MAX], err[256], *text;
	struct kp *k = &kp_cur;
	json_t *r, *d, *info, *e;
	int fd, saved, i;

	kp_setup(k, "unix", 1);
	snprintf(path, sizeof(path), "%s/leases/h1.json", k->d[0]);
	assert_int_equal(mkfifo(path, 0666), 0);	/* d0 hangs in open() */
	k->vm[1] = kp_standin(k->uuid[1]);
	snprintf(path, sizeof(path), "%s/vms", k->data);
	kp_mkdir(path);
	snprintf(path, sizeof(path), "%s/vms/%s.json", k->data, k->uuid[1]);
	snprintf(rec, sizeof(rec), "{\"uuid\":\"%s\",\"pid\":%d,\"storage\":"
	    "\"d1\"}", k->uuid[1], (int)k->vm[1]);
	assert_int_equal(util_write_file_atomic(path, rec, strlen(rec), 0644),
	    0);
	/* The keeper's log to a file of its own. */
	snprintf(logp, sizeof(logp), "%s/keeper.log", k->base);
	fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	saved = dup(2);
	dup2(fd, 2);
	k->keeper = kp_keeper(k->data);
	dup2(saved, 2);
	close(saved);
	close(fd);
	assert_int_equal(kp_wait_sock(k, 2000), 0);
	i = util_pidfd_open(k->vm[1]);
	assert_int_equal(util_pidfd_exited(i, 2000), 1);
	close(i);
	for (i = 0; i < 200 && strcmp(kp_domstate(k, 1), "ok") != 0; i++)
		util_sleep_ms(10);
	r = kp_call(k, "{\"op\":\"status\"}");
	d = json_object_get(json_object_get(r, "domains"), "d0");
	assert_string_equal(json_string_value(json_object_get(d, "state")),
	    "fenced");
	assert_true(json_is_null(json_object_get(d, "age_ms")));
	d = json_object_get(json_object_get(r, "domains"), "d1");
	assert_string_equal(json_string_value(json_object_get(d, "state")), "ok");
	assert_true(json_integer_value(json_object_get(d, "age_ms")) >= 0 &&
	    json_integer_value(json_object_get(d, "age_ms")) < 2 * R);
	assert_string_equal(json_string_value(json_object_get(r, "watchdog")),
	    "armed");
	json_decref(r);
	kp_drain(k);
	assert_true(kp_pets(k, 600) >= 1);

	/* What the agent reports and answers. */
	kp_agent_cfg(k);
	info = json_pack("{s:[{s:s}, {s:s}]}", "storage", "name", "d0", "name",
	    "d1");
	keeperctl_info(info);
	e = json_array_get(json_object_get(info, "storage"), 0);
	assert_true(json_is_null(json_object_get(e, "lease_age_ms")));
	assert_string_equal(json_string_value(json_object_get(e, "lease")),
	    "lost");
	assert_string_equal(json_string_value(json_object_get(e, "fence")),
	    "fenced");
	e = json_array_get(json_object_get(info, "storage"), 1);
	assert_true(json_is_integer(json_object_get(e, "lease_age_ms")));
	json_decref(info);
	assert_int_equal(keeperctl_ready("d0", err, sizeof(err)), -1);
	assert_string_equal(err, "storage d0: its lease is not renewed on host "
	    "h1 yet (fenced)");
	assert_int_equal(keeperctl_ready("d1", err, sizeof(err)), 0);

	text = util_read_file(logp, 65536, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "keeper: storage d1: no renewal of it is "
	    "known (this keeper started without its predecessor's state): "
	    "QEMU pids"));
	assert_null(strstr(text, "-1 ms"));
	assert_null(strstr(text, "NOT confirmed"));
	free(text);
	kp_stop(k);
}

static int kp_started_rc = -2;

static void *
kp_agent_start(void *arg)
{
	(void)arg;
	kp_started_rc = keeperctl_start();
	return NULL;
}

/* Guards lease.c: keeperctl_start() (keeperctl_holder): a restarted agent
 * whose keeper is alive but does not answer (here SIGSTOPped for 1.5 s,
 * seven times the agent's 200 ms status timeout; on a loaded host,
 * starved) waits for it and keeps it: no second keeper is ever started
 * beside it. The agent took a status timeout for "no keeper" and spawned
 * one, which then failed on the keeper lock (and the agent with it). */
static void
test_agent_keeps_a_slow_keeper(void **state)
{
	struct kp *k = &kp_cur;
	pthread_t th;
	json_t *r;
	pid_t pid;

	kp_setup(k, "none", 1);
	kp_agent_cfg(k);
	assert_int_equal(keeperctl_start(), 0);
	r = kp_call(k, "{\"op\":\"status\"}");
	pid = (pid_t)json_integer_value(json_object_get(r, "pid"));
	json_decref(r);
	k->keeper = pid;	/* not our child: kp_stop kills it all the same */
	keeperctl_stop(0);	/* the agent ends; its keeper runs on */
	assert_int_equal(kp_count_keepers(k->data), 1);

	assert_int_equal(kill(pid, SIGSTOP), 0);
	kp_started_rc = -2;
	assert_int_equal(pthread_create(&th, NULL, kp_agent_start, NULL), 0);
	util_sleep_ms(1500);
	assert_int_equal(kp_count_keepers(k->data), 1);
	assert_int_equal(kp_started_rc, -2);	/* still waiting for it */
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(kp_started_rc, 0);
	r = kp_call(k, "{\"op\":\"status\"}");
	assert_int_equal(json_integer_value(json_object_get(r, "pid")), pid);
	json_decref(r);
	assert_int_equal(kp_count_keepers(k->data), 1);
	keeperctl_stop(0);
	kp_stop(k);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_kill_at_f_minus_k),
		cmocka_unit_test(test_decide_confirmed_vs_unconfirmed),
		cmocka_unit_test(test_decide_late_success_does_not_revive),
		cmocka_unit_test(test_decide_one_domain_leaves_the_other),
		cmocka_unit_test(test_decide_page_cache_needs_syncfs),
		cmocka_unit_test(test_decide_hold),
		cmocka_unit_test(test_decide_pets),
		cmocka_unit_test(test_decide_found_on_fenced_domain_is_killed),
		cmocka_unit_test(test_state_take),
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_renewal_counting_rule),
		cmocka_unit_test(test_timing_check),
		cmocka_unit_test(test_util_pidfd),
		cmocka_unit_test(test_util_mono_waits),
		cmocka_unit_test_teardown(test_process_hung_domain_is_fenced, kp_teardown),
		cmocka_unit_test_teardown(test_process_kill_only, kp_teardown),
		cmocka_unit_test_teardown(test_process_unconfirmed_stops_pets, kp_teardown),
		cmocka_unit_test_teardown(test_process_page_cache_hang_unconfirmed, kp_teardown),
		cmocka_unit_test_teardown(test_process_control_socket, kp_teardown),
		cmocka_unit_test_teardown(test_process_takeover, kp_teardown),
		cmocka_unit_test_teardown(test_process_corrupt_state, kp_teardown),
		cmocka_unit_test_teardown(test_process_exit_record, kp_teardown),
		cmocka_unit_test_teardown(test_process_fresh_keeper, kp_teardown),
		cmocka_unit_test_teardown(test_agent_keeps_a_slow_keeper, kp_teardown),
	};
	kp_child(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
