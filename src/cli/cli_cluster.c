/* cli_cluster.c - `vm migrate` and the cluster settings (`cluster show|set`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "common/util.h"

static void
cli_migrate_done(struct cli_ctx *c, json_t *task, void *arg)
{
	json_t *res = json_object_get(task, "result");
	char line[256];

	(void)c;
	snprintf(line, sizeof(line), "vm %s migrated from %s to %s: "
	    "downtime_ms %lld, total_ms %lld, transferred_bytes %lld",
	    (const char *)arg, cli_json_str(res, "from", "?"),
	    cli_json_str(res, "to", "?"),
	    (long long)json_integer_value(json_object_get(res, "downtime_ms")),
	    (long long)json_integer_value(json_object_get(res, "total_ms")),
	    (long long)json_integer_value(json_object_get(res,
	    "transferred_bytes")));
	cli_out_clean(line, line, sizeof(line));
	printf("%s\n", line);
}

int
cli_vm_migrate(struct cli_ctx *c, int argc, char **argv)
{
	const char *to = NULL, *downtime = NULL, *bw = NULL, *timeout = NULL;
	int no_wait = 0, no_ac = 0, rc;
	struct cli_opt opts[] = {
		{ "to", CLI_OPT_STR, &to },
		{ "downtime-ms", CLI_OPT_STR, &downtime },
		{ "bandwidth", CLI_OPT_STR, &bw },
		{ "timeout", CLI_OPT_STR, &timeout },
		{ "no-auto-converge", CLI_OPT_FLAG, &no_ac },
		{ "no-wait", CLI_OPT_FLAG, &no_wait },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	json_t *body = json_object(), *task = NULL;
	char *pos[1], path[160];
	uint64_t v;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		goto out;
	rc = CLI_EXIT_FAIL;
	if (cli_check_name("VM", pos[0]) != 0 ||
	    (to && cli_check_name("host", to) != 0))
		goto out;
	if (to)
		json_object_set_new(body, "to", json_string(to));
	if (downtime) {
		if (cli_parse_num("--downtime-ms", downtime, 1, 60000, &v) != 0)
			goto out;
		json_object_set_new(body, "downtime_ms", json_integer((json_int_t)v));
	}
	if (bw) {
		if (cli_parse_num("--bandwidth (MiB/s)", bw, 0, 1000000, &v) != 0)
			goto out;
		json_object_set_new(body, "bandwidth_mibs", json_integer((json_int_t)v));
	}
	if (timeout) {
		if (cli_parse_num("--timeout (seconds)", timeout, 5, 86400, &v) != 0)
			goto out;
		json_object_set_new(body, "timeout_s", json_integer((json_int_t)v));
	}
	if (no_ac)
		json_object_set_new(body, "auto_converge", json_false());
	snprintf(path, sizeof(path), "/vms/%s/migrate", pos[0]);
	if (cli_api(c, "POST", path, body, &task) != 0)
		goto out;
	rc = cli_task_finish(c, task, no_wait, cli_migrate_done, pos[0]);
out:
	json_decref(body);
	json_decref(task);
	return rc;
}

int
cli_cluster_show(struct cli_ctx *c, int argc, char **argv)
{
	json_t *s = NULL;
	const char *key;
	json_t *v;
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	if (cli_api(c, "GET", "/cluster", NULL, &s) != 0)
		return CLI_EXIT_FAIL;
	if (c->json) {
		cli_out_json(s);
	} else {
		json_object_foreach(s, key, v) {
			char buf[128];
			cli_out_value(v, CLI_F_STR, buf, sizeof(buf));
			printf("%-26s %s\n", key, buf);
		}
	}
	json_decref(s);
	return CLI_EXIT_OK;
}

/* cluster set KEY=VALUE ...: numbers stay numbers, the rest are strings. */
int
cli_cluster_set(struct cli_ctx *c, int argc, char **argv)
{
	json_t *body = json_object(), *reply = NULL;
	char *pos[16];
	int npos = 0, rc, i;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 16, &npos, &rc) != 0)
		goto out;
	rc = CLI_EXIT_FAIL;
	for (i = 0; i < npos; i++) {
		char *eq = strchr(pos[i], '=');
		uint64_t v;

		if (eq == NULL || eq == pos[i]) {
			cli_err("settings are KEY=VALUE, not \"%s\"", pos[i]);
			goto out;
		}
		*eq = '\0';
		if (util_parse_u64(eq + 1, 0, INT64_MAX, &v) == 0)
			json_object_set_new(body, pos[i], json_integer((json_int_t)v));
		else
			json_object_set_new(body, pos[i], json_string(eq + 1));
	}
	if (cli_api(c, "PUT", "/cluster", body, &reply) != 0)
		goto out;
	if (c->json)
		cli_out_json(reply);
	else
		printf("cluster settings updated\n");
	rc = CLI_EXIT_OK;
out:
	json_decref(body);
	json_decref(reply);
	return rc;
}
