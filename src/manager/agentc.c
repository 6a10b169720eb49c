/* agentc.c - the manager's calls to agents (their key, their URL). */
#include <stdio.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "manager/manager_int.h"

int
agentc_call(const char *host, const char *method, const char *path,
    json_t *body, long timeout_ms, int *status, json_t **reply, char *err,
    size_t errsz)
{
	return agentc_call_stream(host, method, path, body, NULL, timeout_ms,
	    status, reply, err, errsz);
}

int
agentc_call_stream(const char *host, const char *method, const char *path,
    json_t *body, const struct httpc_opts *stream, long timeout_ms,
    int *status, json_t **reply, char *err, size_t errsz)
{
	/* Whatever address the URL names, the agent there must be host. */
	struct httpc_opts opts = { .expect_name = host };
	struct httpc_resp resp;
	char url[1024];
	json_t *row;
	const char *u;
	int rc = -1;

	memset(&resp, 0, sizeof(resp));
	row = db_row("SELECT url, agent_key, state, cert_fp FROM hosts WHERE "
	    "name = ?", "s", host);
	if (row == NULL || !json_is_string(json_object_get(row, "agent_key"))) {
		snprintf(err, errsz, "host %s is not registered", host);
		goto cleanup;
	}
	u = json_string_value(json_object_get(row, "url"));
	if (u == NULL || util_fmt(url, sizeof(url), "%s%s", u, path) < 0) {
		snprintf(err, errsz, "agent URL too long");
		goto cleanup;
	}
	/* Never the key of a host with a certificate in clear text. */
	if (json_is_string(json_object_get(row, "cert_fp")) &&
	    strncmp(u, "https://", 8) != 0) {
		snprintf(err, errsz, "host %s has a certificate but no https:// "
		    "URL", host);
		goto cleanup;
	}
	if (stream) {
		opts.body_read = stream->body_read;
		opts.body_arg = stream->body_arg;
		opts.body_len = stream->body_len;
	}
	if (httpc_request_opts(method, url, json_string_value(json_object_get(
	    row, "agent_key")), body, timeout_ms, &opts, &resp) < 0) {
		snprintf(err, errsz, "host %s is unreachable: %s", host, resp.err);
		goto cleanup;
	}
	*status = (int)resp.status;
	if (resp.status >= 400)
		snprintf(err, errsz, "%s", resp.err);
	if (reply) {
		*reply = resp.json;
		resp.json = NULL;
	}
	rc = 0;
cleanup:
	httpc_resp_free(&resp);
	json_decref(row);
	return rc;
}

int
agentc_host_with_storage(const char *st, const char *prefer, char *out,
    size_t outsz)
{
	json_t *rows, *h, *s;
	size_t i, j;
	int rc = -1;

	rows = db_query("SELECT name, info FROM hosts WHERE state IN ('up', "
	    "'maintenance') ORDER BY (name = ?) DESC, name", "s",
	    prefer ? prefer : "");
	json_array_foreach(rows, i, h) {
		json_t *info = json_loads(json_string_value(json_object_get(h,
		    "info")) ? json_string_value(json_object_get(h, "info")) : "{}",
		    0, NULL);
		json_array_foreach(json_object_get(info, "storage"), j, s) {
			const char *n = json_string_value(json_object_get(s, "name"));
			if (n && strcmp(n, st) == 0 &&
			    json_is_true(json_object_get(s, "ok"))) {
				snprintf(out, outsz, "%s", json_string_value(
				    json_object_get(h, "name")));
				rc = 0;
				break;
			}
		}
		json_decref(info);
		if (rc == 0)
			break;
	}
	json_decref(rows);
	return rc;
}
