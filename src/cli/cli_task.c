/* cli_task.c - tasks and events, and waiting on a long operation's task
 * with a progress bar (every lifecycle command ends here). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/util.h"

#define CLI_POLL_FIRST_MS	5	/* tasks often end within milliseconds */
#define CLI_POLL_MAX_MS		100
#define CLI_BAR_WIDTH		24
#define CLI_ID_MAX		((uint64_t)INT64_MAX)

static volatile sig_atomic_t cli_task_sigint;

static void
cli_task_onsig(int sig)
{
	(void)sig;
	cli_task_sigint = 1;
}

static int
cli_task_ended(json_t *task)
{
	const char *st = cli_json_str(task, "state", "");

	return strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
	    strcmp(st, "cancelled") == 0;
}

/* "vm.start t1 [#########               ]  40%  1.2s" on one stderr line. */
static void
cli_task_bar(json_t *task, int64_t t0)
{
	char bar[CLI_BAR_WIDTH + 1], what[96], vm[64];
	json_t *p = json_object_get(task, "progress");
	long long pct = json_is_integer(p) ? json_integer_value(p) : 0;
	int i, fill;

	if (pct < 0)
		pct = 0;
	if (pct > 100)
		pct = 100;
	fill = (int)(pct * CLI_BAR_WIDTH / 100);
	for (i = 0; i < CLI_BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : ' ';
	bar[CLI_BAR_WIDTH] = '\0';
	cli_out_clean(cli_json_str(task, "vm", ""), vm, sizeof(vm));
	snprintf(what, sizeof(what), "%.30s%s%.63s", cli_json_str(task, "kind",
	    "task"), vm[0] ? " " : "", vm);
	fprintf(stderr, "\r%s [%s] %3lld%% %5.1fs\033[K", what, bar, pct,
	    (double)(util_mono_ms() - t0) / 1000.0);
	fflush(stderr);
}

static void
cli_task_bar_clear(int *drawn)
{
	if (*drawn) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
		*drawn = 0;
	}
}

/* The one line for a task that ended without success. */
static void
cli_task_failed(json_t *task, long long id)
{
	const char *st = cli_json_str(task, "state", "?");
	const char *err = cli_json_str(task, "error", NULL);

	if (strcmp(st, "cancelled") == 0)
		cli_err("task %lld (%s) was cancelled", id,
		    cli_json_str(task, "kind", "?"));
	else if (err != NULL && err[0] != '\0')
		cli_err("%s", err);
	else
		cli_err("task %lld (%s) failed", id,
		    cli_json_str(task, "kind", "?"));
}

static int
cli_task_poll(struct cli_ctx *c, long long id, json_t **cur, int *drawn)
{
	char path[64], err[512];
	json_t *next = NULL;

	snprintf(path, sizeof(path), "/tasks/%lld", id);
	err[0] = '\0';
	if (cli_api_try(c, "GET", path, NULL, &next, err, sizeof(err)) != 0 ||
	    !json_is_object(next)) {
		cli_task_bar_clear(drawn);
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "unexpected reply from the "
			    "manager for task %lld", id);
		cli_err("%s", err);
		json_decref(next);
		return -1;
	}
	json_decref(*cur);
	*cur = next;
	return 0;
}

int
cli_task_wait(struct cli_ctx *c, json_t *task, json_t **final)
{
	struct sigaction sa, old;
	json_t *cur = json_incref(task), *idv = json_object_get(task, "id");
	long long id = json_is_integer(idv) ? json_integer_value(idv) : -1;
	int tty = isatty(STDERR_FILENO), drawn = 0, rc = -1;
	int64_t delay = CLI_POLL_FIRST_MS, t0 = util_mono_ms();

	*final = NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli_task_onsig;
	sigemptyset(&sa.sa_mask);
	cli_task_sigint = 0;
	sigaction(SIGINT, &sa, &old);
	if (id < 0) {
		cli_err("unexpected reply from the manager (no task id)");
		goto cleanup;
	}
	while (!cli_task_ended(cur)) {
		if (tty) {
			cli_task_bar(cur, t0);
			drawn = 1;
		}
		util_sleep_ms(delay);
		delay = delay * 2 > CLI_POLL_MAX_MS ? CLI_POLL_MAX_MS :
		    delay * 2;
		if (cli_task_sigint) {
			cli_task_bar_clear(&drawn);
			c->interrupted = 1;
			cli_err("interrupted; task %lld goes on (cvirt task "
			    "wait %lld)", id, id);
			goto cleanup;
		}
		if (cli_task_poll(c, id, &cur, &drawn) != 0)
			goto cleanup;
	}
	cli_task_bar_clear(&drawn);
	if (strcmp(cli_json_str(cur, "state", ""), "succeeded") != 0) {
		cli_task_failed(cur, id);
		goto cleanup;
	}
	rc = 0;
cleanup:
	cli_task_bar_clear(&drawn);
	sigaction(SIGINT, &old, NULL);
	*final = cur;
	return rc;
}

int
cli_task_finish(struct cli_ctx *c, json_t *task, int no_wait,
    cli_done_fn done, void *arg)
{
	json_t *final = NULL, *idv = json_object_get(task, "id");
	int rc = CLI_EXIT_FAIL;

	if (no_wait) {
		if (c->json)
			cli_out_json(task);
		else if (json_is_integer(idv))
			printf("%lld\n", (long long)json_integer_value(idv));
		else
			cli_out_json(idv);
		return CLI_EXIT_OK;
	}
	if (cli_task_wait(c, task, &final) != 0) {
		if (c->json && !c->interrupted && final != NULL)
			cli_out_json(final);
		rc = cli_fail(c);
		goto cleanup;
	}
	if (c->json)
		cli_out_json(final);
	else if (done != NULL)
		done(c, final, arg);
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(final);
	return rc;
}

int
cli_task_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "ID", "id", CLI_F_STR }, { "KIND", "kind", CLI_F_STR },
		{ "VM", "vm", CLI_F_STR }, { "STATE", "state", CLI_F_STR },
		{ "PROGRESS", "progress", CLI_F_PCT },
		{ "UPDATED", "updated", CLI_F_STR },
		{ "ERROR", "error", CLI_F_STR },
	};
	const char *limit = NULL;
	const struct cli_opt opts[] = {
		{ "limit", CLI_OPT_STR, &limit }, { NULL, CLI_OPT_FLAG, NULL },
	};
	char path[64] = "/tasks";
	uint64_t n;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	if (limit != NULL) {
		if (cli_parse_num("--limit", limit, 1, 100000, &n) != 0)
			return CLI_EXIT_FAIL;
		snprintf(path, sizeof(path), "/tasks?limit=%llu",
		    (unsigned long long)n);
	}
	return cli_out_list(c, path, cols, sizeof(cols) / sizeof(cols[0]));
}

/* GET /tasks/ID for the ID in word; *out is the task. */
static int
cli_task_get(struct cli_ctx *c, const char *word, json_t **out)
{
	char path[64];
	uint64_t id;

	*out = NULL;
	if (cli_parse_num("task ID", word, 1, CLI_ID_MAX, &id) != 0)
		return -1;
	snprintf(path, sizeof(path), "/tasks/%llu", (unsigned long long)id);
	if (cli_api(c, "GET", path, NULL, out) != 0)
		return -1;
	if (!json_is_object(*out)) {
		cli_err("unexpected reply from the manager for task %s", word);
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int
cli_task_show(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col fields[] = {
		{ "id", "id", CLI_F_STR }, { "kind", "kind", CLI_F_STR },
		{ "vm", "vm", CLI_F_STR }, { "state", "state", CLI_F_STR },
		{ "progress", "progress", CLI_F_PCT },
		{ "error", "error", CLI_F_STR },
		{ "result", "result", CLI_F_STR },
		{ "created", "created", CLI_F_STR },
		{ "updated", "updated", CLI_F_STR },
	};
	json_t *task = NULL;
	char *pos[1];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_task_get(c, pos[0], &task) != 0)
		return CLI_EXIT_FAIL;
	if (c->json)
		cli_out_json(task);
	else
		cli_out_kv(task, fields, sizeof(fields) / sizeof(fields[0]));
	json_decref(task);
	return CLI_EXIT_OK;
}

static void
cli_task_done(struct cli_ctx *c, json_t *task, void *arg)
{
	const char *vm = cli_json_str(task, "vm", NULL);
	char line[256];

	(void)c;
	(void)arg;
	snprintf(line, sizeof(line), "task %s (%s%s%s) succeeded",
	    (const char *)arg, cli_json_str(task, "kind", "?"),
	    vm ? " " : "", vm ? vm : "");
	cli_out_clean(line, line, sizeof(line));
	printf("%s\n", line);
}

int
cli_task_waitcmd(struct cli_ctx *c, int argc, char **argv)
{
	json_t *task = NULL;
	char *pos[1];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_task_get(c, pos[0], &task) != 0)
		return CLI_EXIT_FAIL;
	rc = cli_task_finish(c, task, 0, cli_task_done, pos[0]);
	json_decref(task);
	return rc;
}

int
cli_event_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "ID", "id", CLI_F_STR }, { "TIME", "time", CLI_F_STR },
		{ "SEVERITY", "severity", CLI_F_STR },
		{ "KIND", "kind", CLI_F_STR }, { "OBJECT", "object", CLI_F_STR },
		{ "MESSAGE", "message", CLI_F_STR },
	};
	const char *limit = NULL, *since = NULL;
	const struct cli_opt opts[] = {
		{ "limit", CLI_OPT_STR, &limit }, { "since", CLI_OPT_STR, &since },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char path[128];
	uint64_t n = 0, s = 0;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	if (limit != NULL &&
	    cli_parse_num("--limit", limit, 1, 100000, &n) != 0)
		return CLI_EXIT_FAIL;
	if (since != NULL &&
	    cli_parse_num("--since", since, 0, CLI_ID_MAX, &s) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/events%s", limit || since ? "?" : "");
	if (limit != NULL)
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
		    "limit=%llu%s", (unsigned long long)n, since ? "&" : "");
	if (since != NULL)
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
		    "since=%llu", (unsigned long long)s);
	return cli_out_list(c, path, cols, sizeof(cols) / sizeof(cols[0]));
}
