/* cli_host.c - `cvirt host ...` and `cvirt storage ...`. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_int.h"
#include "common/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

int
cli_host_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "STATE", "state", CLI_F_STR },
		{ "ACCEL", "accel", CLI_F_STR }, { "CPUS", "cpus", CLI_F_STR },
		{ "MEMORY", "memory_mib", CLI_F_MIB },
		{ "VMS", "vms", CLI_F_COUNT },
		{ "LAST_SEEN", "last_seen", CLI_F_STR },
	};
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	return cli_out_list(c, "/hosts", cols, NELEM(cols));
}

static void
cli_host_print(json_t *host)
{
	static const struct cli_col fields[] = {
		{ "name", "name", CLI_F_STR }, { "state", "state", CLI_F_STR },
		{ "accel", "accel", CLI_F_STR }, { "cpus", "cpus", CLI_F_STR },
		{ "memory", "memory_mib", CLI_F_MIB },
		{ "vms", "vms", CLI_F_COUNT }, { "url", "url", CLI_F_STR },
		{ "last_seen", "last_seen", CLI_F_STR },
		{ "version", "version", CLI_F_STR },
		{ "fence", "fence", CLI_F_STR },
		{ "confirmed_off", "confirmed_off", CLI_F_STR },
		{ "certificate", "cert_fingerprint", CLI_F_STR },
		{ "approved", "approved_addresses", CLI_F_NAMES },
		{ "pending", "pending_addresses", CLI_F_NAMES },
	};
	static const struct cli_col storage[] = {
		{ "NAME", "name", CLI_F_STR }, { "PATH", "path", CLI_F_STR },
		{ "OK", "ok", CLI_F_BOOL },
	};

	cli_out_kv(host, fields, NELEM(fields));
	cli_out_sublist("storage", json_object_get(host, "storage"), storage,
	    NELEM(storage));
}

int
cli_host_show(struct cli_ctx *c, int argc, char **argv)
{
	json_t *host = NULL;
	char *pos[1], path[128];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("host", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/hosts/%s", pos[0]);
	rc = CLI_EXIT_FAIL;
	if (cli_api(c, "GET", path, NULL, &host) != 0)
		goto cleanup;
	if (!json_is_object(host)) {
		cli_err("unexpected reply from the manager for host %s",
		    pos[0]);
		goto cleanup;
	}
	if (c->json)
		cli_out_json(host);
	else
		cli_host_print(host);
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(host);
	return rc;
}

int
cli_host_maintenance(struct cli_ctx *c, int argc, char **argv)
{
	json_t *body = NULL, *reply = NULL;
	char *pos[2], path[160];
	int rc, on;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 2, 2, NULL, &rc) != 0)
		return rc;
	rc = CLI_EXIT_FAIL;
	if (cli_check_name("host", pos[0]) != 0)
		goto cleanup;
	if (strcmp(pos[1], "on") != 0 && strcmp(pos[1], "off") != 0) {
		cli_err("maintenance takes on or off, not \"%s\"", pos[1]);
		goto cleanup;
	}
	on = strcmp(pos[1], "on") == 0;
	snprintf(path, sizeof(path), "/hosts/%s/maintenance", pos[0]);
	body = json_pack("{s:b}", "enabled", on);
	if (cli_api(c, "POST", path, body, &reply) != 0)
		goto cleanup;
	/* Entering maintenance may evacuate VMs: a task then, else the host. */
	if (json_is_integer(json_object_get(reply, "id")) &&
	    json_object_get(reply, "progress") != NULL) {
		if ((rc = cli_task_finish(c, reply, 0, NULL, NULL)) != 0)
			goto cleanup;
	} else if (c->json) {
		cli_out_json(reply);
	}
	if (!c->json)
		printf("host %s is %s maintenance\n", pos[0],
		    on ? "in" : "out of");
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(body);
	json_decref(reply);
	return rc;
}

int
cli_host_delete(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[1], path[128];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("host", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/hosts/%s", pos[0]);
	return cli_call(c, "DELETE", path, NULL, NULL, "host %s deleted\n",
	    pos[0]);
}

static void
cli_host_confirmed(json_t *reply)
{
	json_t *v;
	size_t i;

	printf("host %s confirmed off", json_string_value(json_object_get(reply,
	    "host")));
	if (json_array_size(json_object_get(reply, "vms")) == 0) {
		printf("; no VM restarts yet (its storage leases have not "
		    "expired)\n");
		return;
	}
	printf("; restarting elsewhere:");
	json_array_foreach(json_object_get(reply, "vms"), i, v)
		printf(" %s", json_string_value(v));
	printf("\n");
}

/* POST /hosts/HOST/ACTION: host confirm-off, host reset. */
static int
cli_host_post(struct cli_ctx *c, int argc, char **argv, const char *action,
    void (*print)(json_t *), const char *done)
{
	char *pos[1], path[160];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("host", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/hosts/%s/%s", pos[0], action);
	return cli_call(c, "POST", path, NULL, print, done, pos[0]);
}

int
cli_host_confirm_off(struct cli_ctx *c, int argc, char **argv)
{
	return cli_host_post(c, argc, argv, "confirm-off", cli_host_confirmed,
	    NULL);
}

int
cli_host_reset(struct cli_ctx *c, int argc, char **argv)
{
	return cli_host_post(c, argc, argv, "reset", NULL, "host %s reset: its "
	    "agent joins again with a token\n");
}

int
cli_host_approve_address(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[2], path[160];
	json_t *body;
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 2, 2, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("host", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/hosts/%s/addresses", pos[0]);
	body = json_pack("{s:s}", "address", pos[1]);
	rc = cli_call(c, "POST", path, body, NULL, "address approved for host "
	    "%s: its certificate names it from its agent's next start\n",
	    pos[0]);
	json_decref(body);
	return rc;
}

int
cli_storage_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "PATH", "path", CLI_F_STR },
		{ "HOSTS", "hosts", CLI_F_NAMES },
		{ "TOTAL", "total_bytes", CLI_F_BYTES },
		{ "FREE", "free_bytes", CLI_F_BYTES },
	};
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	return cli_out_list(c, "/storage", cols, NELEM(cols));
}
