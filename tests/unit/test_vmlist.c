/* test_vmlist.c - the streamed VM list (vmlist.c) gives byte for byte what
 * vm_json() + json_dumps(JSON_COMPACT) give for every row, whether the
 * spec is copied span by span (canonical jansson text) or goes through
 * jansson (anything else); and jspan's scanner accepts exactly the
 * canonical compact form. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jspan.h"
#include "common/util.h"
#include "manager/manager_int.h"
#include "unit_db.h"

static int
setup(void **state)
{
	(void)state;
	return unit_db_open("vmlist");
}

static int
teardown(void **state)
{
	(void)state;
	unit_db_close();
	return 0;
}

/* What the list gave before it was streamed: every row through vm_json. */
static char *
expected_list(void)
{
	json_t *rows = db_query("SELECT * FROM vms ORDER BY name", NULL), *row;
	size_t i, len = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(rows);
	fputc('[', f);
	json_array_foreach(rows, i, row) {
		json_t *o = vm_json(row);
		char *js = json_dumps(o, JSON_COMPACT);

		if (i)
			fputc(',', f);
		fputs(js, f);
		free(js);
		json_decref(o);
	}
	fputc(']', f);
	fclose(f);
	json_decref(rows);
	return buf;
}

static void
add_vm(const char *name, const char *state, const char *host, int64_t pid,
    const char *spec)
{
	char uuid[UTIL_UUID_LEN + 1];

	util_uuid_gen(uuid);
	if (pid > 0)
		assert_int_equal(db_exec("INSERT INTO vms (uuid, name, state, host,"
		    " pid, spec, created, desired) VALUES (?, ?, ?, ?, ?, ?, ?, "
		    "'running')", "ssssisi", uuid, name, state, host, pid, spec,
		    (int64_t)1795554529715 + (int64_t)strlen(spec)), 1);
	else
		assert_int_equal(db_exec("INSERT INTO vms (uuid, name, state, host,"
		    " spec, created, task_id) VALUES (?, ?, ?, ?, ?, ?, 7)",
		    "sssssi", uuid, name, state, host, spec, (int64_t)1000), 1);
}

static void
test_same_as_vm_json(void **state)
{
	static const char *const specs[] = {
		/* as the API writes them */
		"{\"uuid\":\"u\",\"name\":\"a\",\"cpus\":1,\"memory_mib\":256,"
		"\"storage\":\"sim\",\"disks\":[],\"nics\":[{\"mac\":"
		"\"52:54:00:9c:14:d9\",\"network\":\"user\",\"model\":\"virtio\"}],"
		"\"ha\":false,\"ha_monitor\":\"process\",\"host\":\"h1\"}",
		"{\"cpus\":2,\"memory_mib\":512,\"ha\":true,\"display\":\"vnc\","
		"\"kernel\":\"/boot/vmlinuz\",\"cmdline\":\"console=ttyS0 a=\\\"b\\\"\","
		"\"disks\":[{\"name\":\"disk0\",\"size_mib\":-3,\"snapshots\":"
		"[{\"a\":{\"b\":[null,true,0]}}]}],\"affinity\":\"g1\"}",
		"{}",
		/* jansson folds these, so they go through it */
		"{\"cpus\": 1, \"memory_mib\":256}",
		"{\"cpus\":1.5,\"display\":7}",
		"{\"cmdline\":\"caf\\u00e9\",\"kernel\":\"a\\/b\"}",
		"{\"cmdline\":\"caf\xc3\xa9\"}",
		"{\"cpus\":1,\"cpus\":2}",
		"{\"disks\":[{\"a\":1,\"a\":2}]}",
		"{\"cpus\":-0,\"memory_mib\":007}",
		"[1,2]",
		"not json",
		"{\"cpus\":1}trailing",
		"{\"cpus\":12345678901234567890}",
		"{\"ha\":\"true\",\"display\":null,\"host\":null}",
	};
	char name[32], *want, *got = NULL;
	size_t i, len, n;

	(void)state;
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		snprintf(name, sizeof(name), "vm%03zu", i);
		add_vm(name, i % 2 ? "running" : "stopped", i % 3 ? "h1" : NULL,
		    i % 2 ? (int64_t)(1000 + i) : 0, specs[i]);
	}
	/* a name that needs escaping goes through jansson too */
	add_vm("we\"ird", "running", "h\\1", 5, specs[0]);
	want = expected_list();
	assert_int_equal(vm_list_json(&got, &len, &n), 0);
	assert_int_equal(n, sizeof(specs) / sizeof(specs[0]) + 1);
	assert_int_equal(len, strlen(got));
	assert_string_equal(got, want);
	free(got);
	free(want);
}

/* Pages of 1,000 rows join into one array, in name order. */
static void
test_pages(void **state)
{
	char name[32], *want, *got = NULL;
	size_t i, len, n;
	json_t *arr;

	(void)state;
	db_exec("DELETE FROM vms", NULL);
	assert_int_equal(vm_list_json(&got, &len, &n), 0);
	assert_string_equal(got, "[]");
	assert_int_equal(n, 0);
	free(got);
	assert_int_equal(db_begin(), 0);
	for (i = 0; i < 2500; i++) {
		snprintf(name, sizeof(name), "p%05zu", 2499 - i);
		add_vm(name, "running", "h1", 10, "{\"cpus\":1,\"nics\":[]}");
	}
	assert_int_equal(db_commit(), 0);
	want = expected_list();
	assert_int_equal(vm_list_json(&got, &len, &n), 0);
	assert_int_equal(n, 2500);
	assert_string_equal(got, want);
	arr = json_loads(got, 0, NULL);
	assert_int_equal(json_array_size(arr), 2500);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    arr, 1000), "name")), "p01000");
	json_decref(arr);
	free(got);
	free(want);
}

static void
test_jspan(void **state)
{
	static const char *const keys[] = { "a", "b" };
	struct jspan sp[2];
	const char *s = "{\"b\":[1,{\"a\":2}],\"a\":\"x\\\"y\",\"c\":null}";

	(void)state;
	assert_int_equal(jspan_members(s, strlen(s), keys, 2, sp), 0);
	assert_int_equal(sp[0].len, 6);
	assert_memory_equal(sp[0].p, "\"x\\\"y\"", 6);
	assert_int_equal(sp[1].len, 11);
	assert_memory_equal(sp[1].p, "[1,{\"a\":2}]", 11);
	s = "{\"c\":1}";
	assert_int_equal(jspan_members(s, strlen(s), keys, 2, sp), 0);
	assert_null(sp[0].p);
	assert_null(sp[1].p);
	/* not canonical or not JSON: refused, spans cleared */
	s = "{\"a\":1,\"b\":[1, 2]}";
	assert_int_equal(jspan_members(s, strlen(s), keys, 2, sp), -1);
	assert_null(sp[0].p);
	s = "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}";
	assert_int_equal(jspan_members(s, strlen(s), keys, 2, sp), -1);
	s = "{\"a\":\"unterminated}";
	assert_int_equal(jspan_members(s, strlen(s), keys, 2, sp), -1);
	s = "{\"a\":tru}";
	assert_int_equal(jspan_members(s, strlen(s), keys, 2, sp), -1);
	s = "{\"a\":1,}";
	assert_int_equal(jspan_members(s, strlen(s), keys, 2, sp), -1);
	assert_int_equal(jspan_members("{", 1, keys, 2, sp), -1);
	assert_int_equal(jspan_members("", 0, keys, 2, sp), -1);
	assert_int_equal(jspan_plain("sim-vm00001", 11), 1);
	assert_int_equal(jspan_plain("a\"b", 3), 0);
	assert_int_equal(jspan_plain("caf\xc3\xa9", 5), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_vm_json),
		cmocka_unit_test(test_pages),
		cmocka_unit_test(test_jspan),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
