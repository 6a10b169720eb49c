/* test_stats.c - the manager's usage ring buffers: counters from agent
 * reports become rates per host and VM, samples closer than the minimum gap
 * are dropped, and only fresh samples count as current. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "manager/manager_int.h"
#include "unit_db.h"

#define UUID "0b7a3c1e-3f5d-4d2a-9a0b-1c2d3e4f5a6b"

static int
setup(void **state)
{
	(void)state;
	if (unit_db_open("stats") < 0)
		return -1;
	return db_exec("INSERT INTO vms (uuid, name, state, host, spec, created, "
	    "cpus, memory_mib) VALUES (?, 'v1', 'running', 'h1', '{}', 0, 2, 128)",
	    "s", UUID) == 1 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	unit_db_close();
	return 0;
}

static json_t *
report(long long cpu_ms, long long rss_kib, long long rd, long long busy,
    long long total)
{
	return json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:{s:I, s:I, "
	    "s:I, s:I}}}", "host", "cpu_busy_ticks", (json_int_t)busy,
	    "cpu_total_ticks", (json_int_t)total, "mem_total_kib",
	    (json_int_t)(8 << 20), "mem_used_kib", (json_int_t)(2 << 20),
	    "net_rx_bytes", (json_int_t)0, "net_tx_bytes", (json_int_t)0,
	    "disk_read_bytes", (json_int_t)0, "vms", UUID, "cpu_ms",
	    (json_int_t)cpu_ms, "rss_kib", (json_int_t)rss_kib,
	    "disk_read_bytes", (json_int_t)rd, "disk_write_bytes", (json_int_t)0);
}

static double
num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_null(v) || v == NULL ? -1 : json_number_value(v);
}

static void
test_rates(void **state)
{
	json_t *r, *s, *samples, *last, *all;

	(void)state;
	r = report(1000, 102400, 0, 100, 1000);
	stats_record("h1", r);
	json_decref(r);
	/* Too soon after the first: dropped. */
	r = report(1100, 102400, 0, 150, 1100);
	stats_record("h1", r);
	json_decref(r);
	s = stats_series_json("vm:" UUID);
	assert_int_equal(json_array_size(json_object_get(s, "samples")), 1);
	last = json_array_get(json_object_get(s, "samples"), 0);
	assert_true(num(last, "cpu_pct") < 0);		/* no previous counters */
	assert_true(num(last, "mem_mib") == 100.0);
	json_decref(s);

	util_sleep_ms(1000);
	/* 2 vCPUs; 1000 ms of CPU in ~1 s is ~50 %; 1 MiB read. */
	r = report(2000, 204800, 1 << 20, 200, 1200);
	stats_record("h1", r);
	json_decref(r);
	s = stats_series_json("vm:" UUID);
	samples = json_object_get(s, "samples");
	assert_int_equal(json_array_size(samples), 2);
	last = json_array_get(samples, 1);
	assert_true(num(last, "cpu_pct") > 40 && num(last, "cpu_pct") <= 50);
	assert_true(num(last, "mem_mib") == 200.0);
	assert_true(num(last, "disk_read_bps") > 800000 &&
	    num(last, "disk_read_bps") <= 1048576);
	assert_true(num(last, "net_rx_bps") < 0);	/* not reported for VMs */
	json_decref(s);

	s = stats_series_json("host:h1");
	last = json_array_get(json_object_get(s, "samples"), 1);
	assert_true(num(last, "cpu_pct") == 50.0);	/* (200-100)/(1200-1000) */
	assert_true(num(last, "mem_mib") == 2048.0);
	json_decref(s);

	all = stats_all_json();
	assert_non_null(json_object_get(json_object_get(all, "vms"), "v1"));
	assert_non_null(json_object_get(json_object_get(all, "hosts"), "h1"));
	json_decref(all);

	s = stats_series_json("vm:no-such");
	assert_int_equal(json_array_size(json_object_get(s, "samples")), 0);
	json_decref(s);
}

/* A report without stats, or with garbage, changes nothing. */
static void
test_bad_input(void **state)
{
	json_t *s, *bad = json_pack("{s:s, s:[]}", "host", "x", "vms");

	(void)state;
	stats_record("h1", NULL);
	stats_record("h1", bad);
	stats_record("nohost", bad);
	json_decref(bad);
	s = stats_series_json("host:nohost");
	assert_int_equal(json_array_size(json_object_get(s, "samples")), 0);
	json_decref(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
