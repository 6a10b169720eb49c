/* test_task.c - the task engine (src/manager/task.c) writes nothing while
 * its manager does not lead: a queued task waits for the lease to come
 * back, or stays queued for the next leader, which fails it with a clear
 * reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "manager/manager_int.h"
#include "unit_db.h"

/* A worker takes a queued task within microseconds; this is ages. */
#define SETTLE_MS	300
/* A leading worker runs an unknown kind at once; bound for a loaded box. */
#define RUN_MS		5000

static int lead_calls;

static int
setup(void **state)
{
	(void)state;
	return unit_db_open("task");
}

static int
teardown(void **state)
{
	(void)state;
	ha_close();
	unit_db_close();
	return 0;
}

/* What manager_lead() does first: the task engine starts. */
static int
lead_with_tasks(void)
{
	lead_calls++;
	return task_init(1);
}

static int
lead_only(void)
{
	lead_calls++;
	return 0;
}

/* The task's state, error (or ""), and updated time. */
static void
task_row(int64_t id, char *state, size_t statesz, char *error,
    size_t errorsz, int64_t *updated)
{
	json_t *row = db_row("SELECT state, error, updated FROM tasks "
	    "WHERE id = ?", "i", id);
	json_t *e;

	assert_non_null(row);
	snprintf(state, statesz, "%s", json_string_value(json_object_get(row,
	    "state")));
	e = json_object_get(row, "error");
	snprintf(error, errorsz, "%s", json_is_string(e) ?
	    json_string_value(e) : "");
	*updated = json_integer_value(json_object_get(row, "updated"));
	json_decref(row);
}

static int64_t
submit(void)
{
	char err[256];
	int64_t id = task_submit("unit.nosuch", NULL, NULL, "admin", err,
	    sizeof(err));

	if (id < 0)
		fail_msg("task_submit: %s", err);
	return id;
}

/* Guards task_run(): with the lease lapsed (ha_is_leader() 0) the worker
 * waits and writes nothing; once the manager leads again it runs the
 * task (here: fails it as an unknown kind, a leader's write). Before,
 * the worker marked the task failed, a write from a manager that no
 * longer led. */
static void
test_waits_while_not_leading(void **state)
{
	char st[32], er[256];
	int64_t id, created, updated, end;

	(void)state;
	assert_int_equal(ha_is_leader(), 0);	/* ha_start not called yet */
	assert_int_equal(task_init(1), 0);
	id = submit();
	task_row(id, st, sizeof(st), er, sizeof(er), &created);
	usleep(SETTLE_MS * 1000);
	task_row(id, st, sizeof(st), er, sizeof(er), &updated);
	assert_string_equal(st, "queued");
	assert_string_equal(er, "");
	assert_int_equal(updated, created);

	/* SQLite: the manager leads at once. The waiting worker runs it. */
	lead_calls = 0;
	assert_int_equal(ha_start("unused", lead_only), 0);
	assert_int_equal(lead_calls, 1);
	end = util_mono_ms() + RUN_MS;
	do {
		usleep(20 * 1000);
		task_row(id, st, sizeof(st), er, sizeof(er), &updated);
	} while (strcmp(st, "queued") == 0 && util_mono_ms() < end);
	assert_string_equal(st, "failed");
	assert_string_equal(er, "unknown task kind unit.nosuch");
	task_shutdown();
}

/* Guards task_run() and task_init(): a manager that stops while not
 * leading leaves its queued task queued (its worker quits without a
 * write), and the next leader's task_init() fails it, saying why. */
static void
test_left_for_the_next_leader(void **state)
{
	char st[32], er[256];
	int64_t id, created, updated, t0;

	(void)state;
	assert_int_equal(ha_start("unused", lead_only), 0);
	assert_int_equal(task_init(1), 0);
	ha_close();				/* the lease lapses */
	assert_int_equal(ha_is_leader(), 0);
	id = submit();
	usleep(SETTLE_MS * 1000);
	t0 = util_mono_ms();
	task_shutdown();
	/* The waiting worker sees the stop within its poll. */
	assert_true(util_mono_ms() - t0 < 1000);
	task_row(id, st, sizeof(st), er, sizeof(er), &created);
	assert_string_equal(st, "queued");
	assert_string_equal(er, "");

	/* The next leader starts its task engine. */
	assert_int_equal(ha_start("unused", lead_with_tasks), 0);
	task_row(id, st, sizeof(st), er, sizeof(er), &updated);
	assert_string_equal(st, "failed");
	assert_string_equal(er, "the task was pending when its manager stopped "
	    "leading (a restart or a take-over): it never started");
	assert_true(updated >= created);
	task_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_waits_while_not_leading,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_left_for_the_next_leader,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
