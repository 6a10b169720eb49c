/* test_hostlease.c - storage leases per (host, domain) on a fake clock
 * (src/manager/hostlease.c): a change is dated when the reply arrives,
 * never before; the agent's snapshot age is subtracted; a slow read is not
 * fresh; a torn or too old read is no observation; a domain still renewed
 * keeps its VMs (src/manager/failover.c: failover_fence_round), a VM runs
 * elsewhere only when every domain of it expired, a kill-only host needs
 * an operator's confirm-off given after the lease last changed; a fenced
 * domain keeps VMs off the host until its lease there changes again; the
 * timing arithmetic of docs/ha.md (failover_timing_check). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "manager/manager_int.h"
#include "unit_db.h"

#define L	5000	/* ha_lease_timeout_ms */
#define F	3000	/* the host's fence_ms */

/* Guards hostlease.c: hlease_observe dates a new seq by the reply's
 * arrival. Dated by the request's send time (Why 2: the round's start),
 * the lease would expire 2 s early after a 2 s read. */
static void
test_dated_after_the_read(void **state)
{
	struct hlease l;

	(void)state;
	memset(&l, 0, sizeof(l));
	/* seq 7 read by a call sent at 1000 that returned at 3000 */
	hlease_observe(&l, 1, 7, 1000, 3000, 0, 5);
	assert_int_equal(l.first_seen, 3000);
	/* fresh reads all along, nothing changes */
	hlease_observe(&l, 1, 7, 7000, 7010, 0, 5);
	assert_false(hlease_expired(&l, 7999, L, F));
	assert_true(hlease_expired(&l, 8000, L, F));
}

/* Guards hlease_observe: the snapshot's read_start_age_ms is subtracted,
 * and hlease_expired needs a read started fence_ms after first_seen. */
static void
test_snapshot_age_and_fresh_read(void **state)
{
	struct hlease l;

	(void)state;
	memset(&l, 0, sizeof(l));
	hlease_observe(&l, 1, 7, 1000, 1010, 0, 5);
	/* a reply at 6100, but from a snapshot read 1200 ms before the
	 * request: it started at 4000 - 1200 = 2800 < 1010 + F */
	hlease_observe(&l, 1, 7, 4000, 6100, 1200, 5);
	assert_int_equal(l.fresh_from, 2800);
	assert_false(hlease_expired(&l, 6100, L, F));
	/* a snapshot that started at 4100 >= 4010 */
	hlease_observe(&l, 1, 7, 4200, 6200, 100, 5);
	assert_true(hlease_expired(&l, 6200, L, F));
}

/* Guards hlease_observe: a read that took over HLEASE_READ_MAX_MS does
 * not count as fresh; a seq change restarts the clock. */
static void
test_slow_read_and_seq_change(void **state)
{
	struct hlease l;

	(void)state;
	memset(&l, 0, sizeof(l));
	hlease_observe(&l, 1, 7, 0, 10, 0, 5);
	hlease_observe(&l, 1, 7, 5000, 5100, 0, HLEASE_READ_MAX_MS + 1);
	assert_false(hlease_expired(&l, 6000, L, F));
	hlease_observe(&l, 1, 7, 5200, 5300, 0, HLEASE_READ_MAX_MS);
	assert_true(hlease_expired(&l, 6000, L, F));
	hlease_observe(&l, 1, 8, 6000, 6050, 0, 5);
	assert_int_equal(l.first_seen, 6050);
	assert_false(hlease_expired(&l, 11049, L, F));
	hlease_observe(&l, 1, 8, 10000, 10010, 0, 5);
	assert_true(hlease_expired(&l, 11050, L, F));
	/* a record missing from a reply (unreadable, torn, removed) is no
	 * observation: it proves nothing about renewals */
	hlease_observe(&l, 0, 0, 20000, 20010, 0, 5);
	assert_int_equal(l.seq, 8);
	assert_int_equal(l.fresh_from, 10000);
	/* never seen and absent: nothing to go by */
	memset(&l, 0, sizeof(l));
	hlease_observe(&l, 0, 0, 0, 10, 0, 5);
	assert_false(l.seen);
	assert_false(hlease_expired(&l, 100000, L, F));
}

/* Guards hlease_observe: a snapshot older than the one already seen (a
 * seq a little below, from a reader whose view lags) is no change. Taken
 * as one, seq 7 -> 6 -> 7 restarted first_seen twice, and the stopped
 * lease was found expired only L after the last flip, not L after 7 was
 * first seen. A seq far below (a keeper that started afresh with a
 * random seq) is a change. */
static void
test_older_snapshot_is_no_change(void **state)
{
	struct hlease l;

	(void)state;
	memset(&l, 0, sizeof(l));
	hlease_observe(&l, 1, 7, 1000, 1010, 0, 5);
	hlease_observe(&l, 1, 6, 1500, 1510, 0, 5);
	assert_int_equal(l.seq, 7);
	assert_int_equal(l.first_seen, 1010);
	assert_int_equal(l.fresh_from, 1000);
	hlease_observe(&l, 1, 7, 2000, 2010, 0, 5);
	assert_int_equal(l.first_seen, 1010);
	hlease_observe(&l, 1, 7 - HLEASE_BACK_MAX, 3000, 3010, 0, 5);
	hlease_observe(&l, 1, 7, 4500, 4510, 0, 5);
	assert_true(hlease_expired(&l, 6010, L, F));
	/* a fresh keeper's random seq, far below: a renewal */
	hlease_observe(&l, 1, 7 - HLEASE_BACK_MAX - 1, 5000, 5010, 0, 5);
	assert_int_equal(l.seq, 7 - HLEASE_BACK_MAX - 1);
	assert_int_equal(l.first_seen, 5010);
	assert_false(hlease_expired(&l, 6010, L, F));
}

static json_t *
reply(const char *host, long long seq, long long seq_end, long long age)
{
	json_t *r = json_pack("{s:{s:{s:{s:I}}}}", "leases", host, "lease",
	    "seq", (json_int_t)seq);

	if (seq_end >= 0)
		json_object_set_new(json_object_get(json_object_get(
		    json_object_get(r, "leases"), host), "lease"), "seq_end",
		    json_integer(seq_end));
	if (age >= 0) {
		json_object_set_new(r, "read_start_age_ms", json_integer(age));
		json_object_set_new(r, "read_ms", json_integer(4));
	}
	return r;
}

/* Guards hlease_apply: a torn record (seq != seq_end) and a snapshot
 * older than HLEASE_SNAP_MAX_MS are no observation; without the new
 * fields (agents before issue 14) the read happened after the send. */
static void
test_apply_torn_and_old(void **state)
{
	struct hlease l;
	json_t *r;

	(void)state;
	hlease_init();
	r = reply("h1", 5, 4, 10);
	assert_int_equal(hlease_apply("A", "h2", r, 100, 110), 0);
	json_decref(r);
	assert_int_equal(hlease_get("h1", "A", &l), -1);
	r = reply("h1", 5, -1, HLEASE_SNAP_MAX_MS + 1);
	assert_int_equal(hlease_apply("A", "h2", r, 100, 110), -1);
	json_decref(r);
	assert_int_equal(hlease_get("h1", "A", &l), -1);
	r = reply("h1", 5, -1, -1);
	assert_int_equal(hlease_apply("A", "h2", r, 100, 160), 0);
	json_decref(r);
	assert_int_equal(hlease_get("h1", "A", &l), 0);
	assert_int_equal(l.first_seen, 160);
	assert_int_equal(l.fresh_from, 100);
	assert_int_equal(l.read_ms, 60);
	assert_string_equal(l.via, "h2");
	hlease_stop();
}

/* The fake monotonic clock of failover.c's decisions. */
static int64_t fake_now;

static int64_t
fake_clock(void)
{
	return fake_now;
}

/* host h1's lease on domain d read via h2: seq, the reply arriving at
 * `at` ms (a 5 ms call, a snapshot taken when asked) */
static void
feed(const char *d, long long seq, int64_t at)
{
	json_t *r = reply("h1", seq, seq, 0);

	assert_int_equal(hlease_apply(d, "h2", r, at - 5, at), 0);
	json_decref(r);
}

static const char *
vm_state(const char *name, char *host, size_t hostsz)
{
	static char st[32];
	json_t *row = vm_find(name);

	assert_non_null(row);
	snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(row,
	    "state")));
	snprintf(host, hostsz, "%s", json_string_value(json_object_get(row,
	    "host")) ? json_string_value(json_object_get(row, "host")) : "-");
	json_decref(row);
	return st;
}

/* An HA VM on h1 with its metadata on storage, and a disk on disk_storage
 * when not NULL. */
static void
add_vm2(const char *name, const char *storage, const char *disk_storage)
{
	char uuid[UTIL_UUID_LEN + 1], *s;
	json_t *spec;

	util_uuid_gen(uuid);
	spec = json_pack("{s:s, s:s, s:i, s:i, s:s, s:b}", "uuid", uuid, "name",
	    name, "cpus", 1, "memory_mib", 64, "storage", storage, "ha", 1);
	if (disk_storage)
		json_object_set_new(spec, "disks", json_pack("[{s:s, s:s}]",
		    "name", "disk1", "storage", disk_storage));
	s = json_dumps(spec, JSON_COMPACT);
	assert_int_equal(db_exec("INSERT INTO vms (uuid, name, state, host, "
	    "spec, cpus, memory_mib, grouped, desired, created) VALUES (?, ?, "
	    "'running', 'h1', ?, 1, 64, 0, 'running', 0)", "sss", uuid, name, s),
	    1);
	free(s);
	json_decref(spec);
}

static void
add_vm(const char *name, const char *storage)
{
	add_vm2(name, storage, NULL);
}

static int
events(const char *kind)
{
	json_t *row = db_row("SELECT COUNT(*) AS n FROM events WHERE kind = ?",
	    "s", kind);
	int n = (int)json_integer_value(json_object_get(row, "n"));

	json_decref(row);
	return n;
}

static void
setup_cluster(const char *fence)
{
	assert_int_equal(unit_db_open("hostlease"), 0);
	assert_int_equal(cluster_load(), 0);
	failover_init();
	hlease_init();
	assert_int_equal(db_exec("INSERT INTO hosts (name, url, state, accel, "
	    "cpus, memory_mib, info, fence, timing) VALUES ('h1', 'http://x', "
	    "'down', 'tcg', 2, 4096, '{\"storage\":[{\"name\":\"A\",\"ok\":"
	    "true},{\"name\":\"B\",\"ok\":true}]}', ?, '{\"fence_ms\":3000}')",
	    "s", fence), 1);
	add_vm("va", "A");
	add_vm("vb", "B");
	add_vm2("vab", "A", "B");	/* metadata on A, a disk on B */
	failover_set_clock(fake_clock);
	fake_now = 0;
}

static void
teardown_cluster(void)
{
	hlease_stop();
	failover_set_clock(NULL);
	unit_db_close();
}

/* Guards failover.c: fo_host_round / fo_domain_gone (Why 4): h1 is down,
 * its lease on A stopped at +0 while B is still renewed: only va (on A)
 * fails, vb stays, h1 is not fenced; once B stops too, vb fails and h1 is
 * fenced. With one lease per host (main), the domain read last decided
 * for both VMs. */
static void
test_fence_per_domain(void **state)
{
	char host[UTIL_NAME_MAX + 1], out[UTIL_NAME_MAX + 1], err[512];
	json_t *row;
	int64_t t;

	(void)state;
	setup_cluster("watchdog");
	feed("A", 100, 0);
	for (t = 0; t <= 19000; t += 500) {
		feed("A", 100, t);
		feed("B", 200 + t / 500, t);	/* renewed every 500 ms */
	}
	fake_now = 19000;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "failed");
	assert_string_equal(host, "-");
	assert_string_equal(vm_state("vb", host, sizeof(host)), "running");
	assert_string_equal(host, "h1");
	/* its disk on B is still in use there */
	assert_string_equal(vm_state("vab", host, sizeof(host)), "running");
	assert_int_equal(events("host.domain_failed"), 1);
	assert_int_equal(events("host.fenced"), 0);
	/* once per seq: the next round writes nothing new */
	failover_fence_round();
	assert_int_equal(events("host.domain_failed"), 1);
	/* placement keeps VMs of A off h1 while A is fenced there, even once
	 * h1 reports again (sched.c: sched_filter) ... */
	db_exec("UPDATE hosts SET state = 'up'", NULL);
	row = vm_find("va");
	assert_int_equal(sched_place(row, NULL, NULL, NULL, out, sizeof(out),
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "h1: storage A fenced there"));
	/* ... until its lease there shows another seq (fo_unfence) */
	feed("A", 101, 19500);
	fake_now = 19500;
	failover_fence_round();
	assert_int_equal(events("host.domain_ok"), 1);
	assert_int_equal(sched_place(row, NULL, NULL, NULL, out, sizeof(out),
	    err, sizeof(err)), 0);
	assert_string_equal(out, "h1");
	json_decref(row);
	teardown_cluster();
}

/* Guards fo_domain_gone: a host that reports (up) is never failed on
 * lease age alone; B stops later: both fail, the host is fenced. */
static void
test_fence_all_domains_and_up_host(void **state)
{
	char host[UTIL_NAME_MAX + 1];
	int64_t t;

	(void)state;
	setup_cluster("watchdog");
	db_exec("UPDATE hosts SET state = 'up'", NULL);
	for (t = 0; t <= 19000; t += 500) {
		feed("A", 100, t);
		feed("B", 200, t);
	}
	/* not yet: 4999 ms after A and B were first seen */
	fake_now = 4999;
	failover_fence_round();
	assert_int_equal(events("host.storage_views_differ"), 0);
	fake_now = 19000;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "running");
	assert_string_equal(vm_state("vb", host, sizeof(host)), "running");
	assert_int_equal(events("host.storage_views_differ"), 2);
	/* the host reports A lost (Why 8): A's VMs go, B's stay */
	db_exec("UPDATE hosts SET info = '{\"storage\":[{\"name\":\"A\","
	    "\"ok\":false,\"lease\":\"lost\"},{\"name\":\"B\",\"ok\":true,"
	    "\"lease\":\"ok\"}]}'", NULL);
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "failed");
	assert_string_equal(vm_state("vb", host, sizeof(host)), "running");
	assert_int_equal(events("host.fenced"), 0);
	/* down now: B's VM goes and the host is fenced */
	db_exec("UPDATE hosts SET state = 'down'", NULL);
	failover_fence_round();
	assert_string_equal(vm_state("vb", host, sizeof(host)), "failed");
	assert_string_equal(vm_state("vab", host, sizeof(host)), "failed");
	assert_int_equal(events("host.fenced"), 1);
	assert_int_equal(events("host.domain_failed"), 2);
	teardown_cluster();
}

/* Guards fo_domain_gone for ha_storage_loss_response=leave: a host that
 * reports holds its VMs even on a domain it lost. */
static void
test_storage_loss_leave(void **state)
{
	char host[UTIL_NAME_MAX + 1], err[128];
	json_t *body;
	int64_t t;

	(void)state;
	setup_cluster("watchdog");
	body = json_pack("{s:s}", "ha_storage_loss_response", "leave");
	assert_int_equal(cluster_update(body, err, sizeof(err)), 0);
	json_decref(body);
	db_exec("UPDATE hosts SET state = 'up', info = '{\"storage\":[{\"name\":"
	    "\"A\",\"ok\":false,\"lease\":\"lost\"}]}'", NULL);
	for (t = 0; t <= 19000; t += 500)
		feed("A", 100, t);
	fake_now = 19000;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "running");
	assert_int_equal(events("host.domain_failed"), 0);
	assert_int_equal(events("host.storage_views_differ"), 0);
	teardown_cluster();
}

/* Guards fo_domain_gone for kill-only hosts: lease expiry alone is not
 * enough; a confirm-off counts only when given after the lease was last
 * seen changing, and no longer once the host registered again. */
static void
test_kill_only_needs_confirm(void **state)
{
	char host[UTIL_NAME_MAX + 1];
	int64_t t;

	(void)state;
	setup_cluster("kill-only");
	fake_now = 500;		/* too early: A changes at 1000 */
	failover_confirm_off("h1");
	for (t = 0; t <= 19000; t += 500) {
		feed("A", t < 1000 ? 100 : 101, t);
		feed("B", 200, t);
	}
	fake_now = 19000;
	failover_fence_round();
	/* A changed after the confirmation, B did not */
	assert_string_equal(vm_state("va", host, sizeof(host)), "running");
	assert_string_equal(vm_state("vb", host, sizeof(host)), "failed");
	assert_int_equal(events("host.fenced"), 0);
	/* given after the crash, but the host registered since */
	failover_confirm_off("h1");
	failover_host_registered("h1");
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "running");
	failover_confirm_off("h1");
	fake_now = 19500;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "failed");
	assert_int_equal(events("host.fenced"), 1);
	teardown_cluster();
}

/* Guards failover.c: fo_host_load / fo_domain_gone for hosts that send
 * no "fence" (cvirt sim, an agent from before issue 14's keeper): nothing
 * proves they fence, so they are never failed on lease age alone, down
 * or not (docs/ha.md, "Hosts that do not say how they fence"); like a
 * kill-only host, an operator's confirm-off releases their VMs. Taking a
 * missing fence for a watchdog would restart VMs such a host may still
 * run. */
static void
test_no_fence_field_is_never_fenced_automatically(void **state)
{
	char host[UTIL_NAME_MAX + 1];
	int64_t t;

	(void)state;
	setup_cluster(NULL);
	db_exec("UPDATE hosts SET state = 'up', timing = NULL", NULL);
	for (t = 0; t <= 19000; t += 500) {
		feed("A", 100, t);
		feed("B", 200, t);
	}
	fake_now = 19000;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "running");
	assert_int_equal(events("host.domain_failed"), 0);
	db_exec("UPDATE hosts SET state = 'down'", NULL);
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "running");
	assert_string_equal(vm_state("vb", host, sizeof(host)), "running");
	assert_string_equal(vm_state("vab", host, sizeof(host)), "running");
	assert_int_equal(events("host.domain_failed"), 0);
	assert_int_equal(events("host.fenced"), 0);
	failover_confirm_off("h1");
	fake_now = 19500;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "failed");
	assert_string_equal(vm_state("vb", host, sizeof(host)), "failed");
	assert_string_equal(vm_state("vab", host, sizeof(host)), "failed");
	assert_int_equal(events("host.domain_failed"), 2);
	assert_int_equal(events("host.fenced"), 1);
	teardown_cluster();
}

/* Guards hostlease.c: hl_iso_note and failover.c: failover_fence_round
 * (isolation): h1's isolation record stops its VMs only once two hosts
 * have read the same record, so one lying reader cannot make the manager
 * restart a VM that h1 may still run. */
static void
test_isolation_needs_two_readers(void **state)
{
	char host[UTIL_NAME_MAX + 1];
	json_t *row = NULL, *r;
	int64_t t;

	(void)state;
	setup_cluster("watchdog");
	db_exec("INSERT INTO hosts (name, url, state, accel, cpus, memory_mib)"
	    " VALUES ('h2', 'http://x', 'up', 'tcg', 2, 4096), ('h3', "
	    "'http://x', 'up', 'tcg', 2, 4096)", NULL);
	row = vm_find("va");
	for (t = 0; t <= 2000; t += 500) {
		feed("A", 100 + t, t);		/* renewed: not expired */
		feed("B", 200 + t, t);
	}
	r = json_pack("{s:{s:{s:{s:i}, s:{s:b, s:[O], s:i}}}}", "leases", "h1",
	    "lease", "seq", 9999, "isolation", "isolated", 1, "stopped",
	    json_object_get(row, "uuid"), "time", 123);
	assert_int_equal(hlease_apply("A", "h2", r, 2495, 2500), 0);
	fake_now = 2500;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "running");
	assert_int_equal(hlease_apply("A", "h3", r, 2995, 3000), 0);
	fake_now = 3000;
	failover_fence_round();
	assert_string_equal(vm_state("va", host, sizeof(host)), "failed");
	assert_string_equal(vm_state("vb", host, sizeof(host)), "running");
	assert_int_equal(events("host.isolated"), 1);
	json_decref(r);
	json_decref(row);
	teardown_cluster();
}

/* Guards failover.c: failover_timing_check (docs/ha.md, "Timing"). */
static void
test_timing_check(void **state)
{
	char err[256];
	json_t *t;

	(void)state;
	assert_int_equal(failover_timing_check(NULL, "watchdog", NULL, 5000, err,
	    sizeof(err)), 0);
	assert_int_equal(failover_timing_check(NULL, "watchdog", NULL, 4599, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "fence 3000 ms + tick 100 ms + watchdog 1000 ms "
	    "+ margin 500 ms = 4600 ms > lease timeout 4599 ms");
	t = json_pack("{s:i, s:i, s:i}", "fence_ms", 3000, "tick_ms", 100,
	    "watchdog_ms", 4000);
	assert_int_equal(failover_timing_check("h1", "watchdog", t, 5000, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "host h1: fence 3000 ms + tick 100 ms + "
	    "watchdog 4000 ms + margin 500 ms = 7600 ms > lease timeout 5000 ms");
	/* kill-only: no watchdog in the sum */
	assert_int_equal(failover_timing_check("h1", "kill-only", t, 3600, err,
	    sizeof(err)), 0);
	assert_int_equal(failover_timing_check("h1", "kill-only", t, 3599, err,
	    sizeof(err)), -1);
	json_decref(t);
	/* agents before issue 14 say nothing: as they were */
	assert_int_equal(failover_timing_check("h1", NULL, NULL, 2000, err,
	    sizeof(err)), 0);
	assert_int_equal(failover_timing_check("h1", "magic", NULL, 5000, err,
	    sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dated_after_the_read),
		cmocka_unit_test(test_snapshot_age_and_fresh_read),
		cmocka_unit_test(test_slow_read_and_seq_change),
		cmocka_unit_test(test_older_snapshot_is_no_change),
		cmocka_unit_test(test_apply_torn_and_old),
		cmocka_unit_test(test_fence_per_domain),
		cmocka_unit_test(test_fence_all_domains_and_up_host),
		cmocka_unit_test(test_storage_loss_leave),
		cmocka_unit_test(test_kill_only_needs_confirm),
		cmocka_unit_test(test_no_fence_field_is_never_fenced_automatically),
		cmocka_unit_test(test_isolation_needs_two_readers),
		cmocka_unit_test(test_timing_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
