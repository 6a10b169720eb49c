/* task.c - long operations as tasks: queued, run by workers, with progress.
 * Kinds dispatch from a table; a VM has at most one task at a time. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "manager/manager_int.h"

#define TASK_QUEUE 4096
#define TASK_MAX_WORKERS 16
/* How often a worker looks whether a lapsed lease is back (ha.c renews
 * it every 500 ms) or the manager is stopping. */
#define TASK_LEAD_POLL_MS 50

static const struct {
	const char	*kind;
	task_fn		 fn;
} task_kinds[] = {
	{ "host.evacuate", hostops_evacuate },
	{ "backup.create", storops_backup_create },
	{ "backup.restore", storops_backup_restore },
	{ "backup.verify", storops_backup_verify },
	{ "disk.add",	storops_disk_add },
	{ "disk.resize", storops_disk_resize },
	{ "image.import", storops_image_import },
	{ "snapshot.create", storops_snapshot_create },
	{ "snapshot.delete", storops_snapshot_delete },
	{ "snapshot.revert", storops_snapshot_revert },
	{ "vm.clone",	storops_vm_clone },
	{ "vm.delete",	vmops_delete },
	{ "vm.migrate",	vmops_migrate },
	{ "vm.pause",	vmops_pause },
	{ "vm.reboot",	vmops_reboot },
	{ "vm.resume",	vmops_resume },
	{ "vm.start",	vmops_start },
	{ "vm.stop",	vmops_stop },
};

#define TASK_EXTRA 4
static struct {
	char	 kind[32];
	task_fn	 fn;
} task_extra[TASK_EXTRA];
static int task_nextra;

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static int64_t q_ids[TASK_QUEUE];
static size_t q_head, q_len;
static int q_quit;
static pthread_t workers[TASK_MAX_WORKERS];
static int nworkers;

static task_fn
task_lookup(const char *kind)
{
	size_t i;

	for (i = 0; i < sizeof(task_kinds) / sizeof(task_kinds[0]); i++)
		if (strcmp(task_kinds[i].kind, kind) == 0)
			return task_kinds[i].fn;
	for (i = 0; i < (size_t)task_nextra; i++)
		if (strcmp(task_extra[i].kind, kind) == 0)
			return task_extra[i].fn;
	return NULL;
}

int
task_kind_add(const char *kind, task_fn fn)
{
	if (task_nextra == TASK_EXTRA || task_lookup(kind) != NULL ||
	    util_fmt(task_extra[task_nextra].kind,
	    sizeof(task_extra[task_nextra].kind), "%s", kind) < 0)
		return -1;
	task_extra[task_nextra++].fn = fn;
	return 0;
}

static int task_await_lead(int64_t id, const char *what);

/* The outcome is written by a manager that leads (it waits while its lease
 * has lapsed) and only over its own running task: a manager that stopped
 * leading, or whose task a take-over failed meanwhile, writes nothing. */
static void
task_finish(struct task *t, int ok)
{
	char *res = t->result ? json_dumps(t->result, JSON_COMPACT) : NULL;
	int n = 0;

	if (!ha_is_leader() && task_await_lead(t->id, "running") < 0) {
		log_warnx("task %lld (%s) ended (%s) after this manager stopped "
		    "leading: not recorded", (long long)t->id, t->kind,
		    ok ? "succeeded" : "failed");
		goto cleanup;
	}
	db_begin();
	n = db_exec("UPDATE tasks SET state = ?, progress = ?, error = ?, "
	    "result = ?, updated = ? WHERE id = ? AND state = 'running'",
	    "sissii", ok ? "succeeded" : "failed", (int64_t)(ok ? 100 : 0),
	    ok ? NULL : t->err, res, util_wall_ms(), t->id);
	if (n > 0)
		db_exec("UPDATE vms SET task_id = NULL WHERE task_id = ?", "i",
		    t->id);
	db_commit();
	if (n <= 0)
		log_warnx("task %lld (%s) ended (%s) but is no longer running "
		    "here (a take-over failed it): not recorded",
		    (long long)t->id, t->kind, ok ? "succeeded" : "failed");
	else if (!ok)
		event_add("error", "task.failed", t->vm[0] ? t->vm : NULL,
		    "task %lld (%s) failed: %s", (long long)t->id, t->kind, t->err);
cleanup:
	free(res);
}

/* Waits while this manager may not lead (its lease has lapsed: ha.c
 * pauses the leader until a renewal succeeds): a manager that may no
 * longer lead writes nothing, so the task stays queued for whichever
 * manager leads next. 0 once leading, -1 when the manager is stopping. */
static int
task_await_lead(int64_t id, const char *what)
{
	int quit, said = 0;

	for (;;) {
		pthread_mutex_lock(&q_lock);
		quit = q_quit;
		pthread_mutex_unlock(&q_lock);
		if (quit) {
			if (said)
				log_info("task %lld left %s for the next "
				    "leader", (long long)id, what);
			return -1;
		}
		if (ha_is_leader())
			return 0;
		if (!said++)
			log_info("task %lld waits: this manager's leader lease "
			    "has lapsed", (long long)id);
		usleep(TASK_LEAD_POLL_MS * 1000);
	}
}

static void
task_run(int64_t id)
{
	struct task t;
	json_t *row;
	task_fn fn;
	int ok;

	memset(&t, 0, sizeof(t));
	t.id = id;
	if (task_await_lead(id, "queued") < 0)
		return;
	row = db_row("SELECT * FROM tasks WHERE id = ?", "i", id);
	if (row == NULL)
		return;
	if (strcmp(json_string_value(json_object_get(row, "state")), "queued") != 0)
		goto cleanup;	/* cancelled while queued */
	snprintf(t.kind, sizeof(t.kind), "%s",
	    json_string_value(json_object_get(row, "kind")));
	if (json_is_string(json_object_get(row, "vm")))
		snprintf(t.vm, sizeof(t.vm), "%s",
		    json_string_value(json_object_get(row, "vm")));
	t.params = json_loads(json_is_string(json_object_get(row, "params")) ?
	    json_string_value(json_object_get(row, "params")) : "{}", 0, NULL);
	if (t.params == NULL)
		t.params = json_object();
	db_exec("UPDATE tasks SET state = 'running', updated = ? WHERE id = ?",
	    "ii", util_wall_ms(), id);
	if ((fn = task_lookup(t.kind)) == NULL) {
		snprintf(t.err, sizeof(t.err), "unknown task kind %s", t.kind);
		ok = 0;
	} else {
		ok = fn(&t) == 0;
	}
	if (!ok && t.err[0] == '\0')
		snprintf(t.err, sizeof(t.err), "%s failed", t.kind);
	task_finish(&t, ok);
	metrics_observe(METRICS_TASK, t.kind, ok ? "succeeded" : "failed",
	    (double)(util_wall_ms() - json_integer_value(json_object_get(row,
	    "created"))) / 1000.0);
cleanup:
	json_decref(t.params);
	json_decref(t.result);
	json_decref(row);
}

static void *
task_worker(void *arg)
{
	int64_t id;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&q_lock);
		while (q_len == 0 && !q_quit)
			pthread_cond_wait(&q_cond, &q_lock);
		if (q_quit) {
			pthread_mutex_unlock(&q_lock);
			break;
		}
		id = q_ids[q_head];
		q_head = (q_head + 1) % TASK_QUEUE;
		q_len--;
		pthread_mutex_unlock(&q_lock);
		task_run(id);
	}
	return NULL;
}

int
task_init(int n)
{
	/* This manager starts leading: whatever was queued or ran under the
	 * last leader (this one before a restart, or another before a
	 * take-over) did not finish; the agents' reports tell the truth
	 * about the VMs. */
	db_exec("UPDATE tasks SET state = 'failed', error = 'the task was "
	    "pending when its manager stopped leading (a restart or a "
	    "take-over): it never started', updated = ? WHERE state = "
	    "'queued'", "i", util_wall_ms());
	db_exec("UPDATE tasks SET state = 'failed', error = 'the task was "
	    "running when its manager stopped leading (a restart or a "
	    "take-over): the agents tell what became of its VM', updated = ? "
	    "WHERE state = 'running'", "i", util_wall_ms());
	db_exec("UPDATE vms SET task_id = NULL", NULL);
	pthread_mutex_lock(&q_lock);
	q_quit = 0;		/* a task_shutdown() before (unit tests) */
	pthread_mutex_unlock(&q_lock);
	if (n > TASK_MAX_WORKERS)
		n = TASK_MAX_WORKERS;
	for (nworkers = 0; nworkers < n; nworkers++)
		if (pthread_create(&workers[nworkers], NULL, task_worker, NULL) != 0)
			return -1;
	return 0;
}

void
task_shutdown(void)
{
	int i;

	pthread_mutex_lock(&q_lock);
	q_quit = 1;
	pthread_cond_broadcast(&q_cond);
	pthread_mutex_unlock(&q_lock);
	for (i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	nworkers = 0;
}

int64_t
task_submit(const char *kind, const char *vm, json_t *params,
    const char *owner, char *err, size_t errsz)
{
	char *p = params ? json_dumps(params, JSON_COMPACT) : strdup("{}");
	json_t *row = NULL;
	int64_t id = -1, now = util_wall_ms();

	if (p == NULL || db_begin() < 0) {
		snprintf(err, errsz, "cannot queue the task");
		goto cleanup;
	}
	if (vm) {
		row = db_row("SELECT task_id FROM vms WHERE name = ?", "s", vm);
		if (row == NULL) {
			db_rollback();
			snprintf(err, errsz, "vm \"%s\" not found", vm);
			errno = ENOENT;
			goto cleanup;
		}
		if (json_is_integer(json_object_get(row, "task_id"))) {
			db_rollback();
			snprintf(err, errsz, "vm \"%s\" is busy with task %lld", vm,
			    (long long)json_integer_value(json_object_get(row,
			    "task_id")));
			errno = EBUSY;
			goto cleanup;
		}
	}
	if (db_exec("INSERT INTO tasks (kind, state, progress, vm, params, owner,"
	    " created, updated) VALUES (?, 'queued', 0, ?, ?, ?, ?, ?)",
	    "ssssii", kind, vm, p, owner, now, now) < 0) {
		db_rollback();
		snprintf(err, errsz, "cannot record the task");
		goto cleanup;
	}
	id = db_last_id();
	if (vm)
		db_exec("UPDATE vms SET task_id = ? WHERE name = ?", "is", id, vm);
	if (db_commit() < 0) {
		id = -1;
		snprintf(err, errsz, "cannot record the task");
		goto cleanup;
	}
	pthread_mutex_lock(&q_lock);
	if (q_len < TASK_QUEUE) {
		q_ids[(q_head + q_len) % TASK_QUEUE] = id;
		q_len++;
		pthread_cond_signal(&q_cond);
	}
	pthread_mutex_unlock(&q_lock);
cleanup:
	json_decref(row);
	free(p);
	return id;
}

void
task_progress(struct task *t, int pct)
{
	if (ha_is_leader())
		db_exec("UPDATE tasks SET progress = ?, updated = ? WHERE id = ? "
		    "AND state = 'running'", "iii", (int64_t)pct,
		    util_wall_ms(), t->id);
}

json_t *
task_json(json_t *row)
{
	char c[40], u[40];
	json_t *res = NULL, *rs = json_object_get(row, "result");

	if (json_is_string(rs))
		res = json_loads(json_string_value(rs), 0, NULL);
	util_time_iso(json_integer_value(json_object_get(row, "created")), c,
	    sizeof(c));
	util_time_iso(json_integer_value(json_object_get(row, "updated")), u,
	    sizeof(u));
	return json_pack("{s:O, s:O, s:O, s:O, s:O, s:o, s:O, s:O, s:s, s:s}",
	    "id", json_object_get(row, "id"), "kind", json_object_get(row, "kind"),
	    "state", json_object_get(row, "state"),
	    "progress", json_object_get(row, "progress"),
	    "error", json_object_get(row, "error"),
	    "result", res ? res : json_null(), "vm", json_object_get(row, "vm"),
	    "owner", json_object_get(row, "owner"), "created", c, "updated", u);
}

json_t *
task_get(int64_t id)
{
	json_t *row = db_row("SELECT * FROM tasks WHERE id = ?", "i", id), *t;

	if (row == NULL)
		return NULL;
	t = task_json(row);
	json_decref(row);
	return t;
}
