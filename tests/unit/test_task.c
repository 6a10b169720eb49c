/* test_task.c - the task engine (src/manager/task.c) writes nothing while
 * its manager does not lead: a queued task waits for the lease to come
 * back, or stays queued for the next leader, which fails it with a clear
 * reason; a running task's progress and outcome are not written once its
 * manager stopped leading or a take-over failed it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
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
/* unit.block: reports 50 %, waits for a byte on block_pipe, reports 80 %
 * and succeeds. */
static int block_pipe[2] = { -1, -1 };

static int
unit_block(struct task *t)
{
	char c;

	task_progress(t, 50);
	while (read(block_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	task_progress(t, 80);
	t->result = json_pack("{s:b}", "done", 1);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	if (block_pipe[0] < 0 && (pipe(block_pipe) < 0 ||
	    task_kind_add("unit.block", unit_block) < 0))
		return -1;
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
submit_kind(const char *kind)
{
	char err[256];
	int64_t id = task_submit(kind, NULL, NULL, "admin", err, sizeof(err));

	if (id < 0)
		fail_msg("task_submit: %s", err);
	return id;
}

static int64_t
submit(void)
{
	return submit_kind("unit.nosuch");
}

static int
task_progress_of(int64_t id)
{
	json_t *row = db_row("SELECT progress FROM tasks WHERE id = ?", "i", id);
	int pct;

	assert_non_null(row);
	pct = (int)json_integer_value(json_object_get(row, "progress"));
	json_decref(row);
	return pct;
}

/* Submits unit.block and waits until it runs (its 50 %). */
static int64_t
start_block(void)
{
	char st[32], er[256];
	int64_t id = submit_kind("unit.block"), updated, end;

	end = util_mono_ms() + RUN_MS;
	do {
		usleep(20 * 1000);
		task_row(id, st, sizeof(st), er, sizeof(er), &updated);
	} while ((strcmp(st, "running") != 0 || task_progress_of(id) != 50) &&
	    util_mono_ms() < end);
	assert_string_equal(st, "running");
	assert_int_equal(task_progress_of(id), 50);
	return id;
}

static void
release_block(void)
{
	assert_int_equal(write(block_pipe[1], "x", 1), 1);
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

/* Guards task_progress() and task_finish(): the task runs while its
 * manager leads, then the lease lapses (ha_close) and the task ends. Its
 * 80 % and its success are not written: the row stays as the leader left
 * it, and the manager that stops leaves it for the next leader, which
 * fails it saying why. Before, the ended task was marked succeeded by a
 * manager that no longer led. */
static void
test_running_task_ends_after_leading(void **state)
{
	char st[32], er[256];
	int64_t id, before, after;

	(void)state;
	assert_int_equal(ha_start("unused", lead_with_tasks), 0);
	id = start_block();
	task_row(id, st, sizeof(st), er, sizeof(er), &before);
	ha_close();				/* the lease lapses */
	assert_int_equal(ha_is_leader(), 0);
	release_block();
	usleep(SETTLE_MS * 1000);
	task_row(id, st, sizeof(st), er, sizeof(er), &after);
	assert_string_equal(st, "running");
	assert_int_equal(task_progress_of(id), 50);
	assert_int_equal(after, before);
	task_shutdown();	/* the waiting worker gives up, writing nothing */
	task_row(id, st, sizeof(st), er, sizeof(er), &after);
	assert_string_equal(st, "running");
	assert_int_equal(after, before);

	assert_int_equal(ha_start("unused", lead_with_tasks), 0);
	task_row(id, st, sizeof(st), er, sizeof(er), &after);
	assert_string_equal(st, "failed");
	assert_string_equal(er, "the task was running when its manager "
	    "stopped leading (a restart or a take-over): the agents tell what "
	    "became of its VM");
	task_shutdown();
}

/* Guards task_finish() and task_progress(): while the task ran, a
 * take-over (another manager's task_init()) failed it. The old worker's
 * later progress and success do not overwrite that. */
static void
test_running_task_failed_by_take_over(void **state)
{
	char st[32], er[256];
	int64_t id, updated;

	(void)state;
	assert_int_equal(ha_start("unused", lead_with_tasks), 0);
	id = start_block();
	assert_int_equal(db_exec("UPDATE tasks SET state = 'failed', error = "
	    "'taken over', updated = 1 WHERE id = ?", "i", id), 1);
	release_block();
	task_shutdown();	/* waits for the worker: the task has ended */
	task_row(id, st, sizeof(st), er, sizeof(er), &updated);
	assert_string_equal(st, "failed");
	assert_string_equal(er, "taken over");
	assert_int_equal(updated, 1);
	assert_int_equal(task_progress_of(id), 50);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_waits_while_not_leading,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_left_for_the_next_leader,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_running_task_ends_after_leading, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_running_task_failed_by_take_over, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
