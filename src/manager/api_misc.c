/* api_misc.c - health, the OpenAPI document (built from the route tables)
 * and Prometheus metrics. */
#include <stdio.h>
#include <string.h>

#include "manager/manager_int.h"
#include "version.h"

static int
api_health(struct httpd_req *r)
{
	return httpd_reply_json(r, 200, json_pack("{s:s, s:s, s:s}", "status",
	    "ok", "version", CVIRT_VERSION, "role", ha_is_leader() ? "leader" :
	    "standby"));
}

/* "/api/v1/vms/{}/{}" -> "/vms/{vm}/{action}" with its parameter names. */
static void
api_openapi_path(const char *pattern, char *out, size_t outsz, json_t *params)
{
	const char *p = pattern + strlen("/api/v1"), *prev = "";
	size_t len = 0;
	int n;

	out[0] = '\0';
	while (*p && len + 1 < outsz) {
		if (p[0] == '{' && p[1] == '}') {
			char name[32];
			size_t l = strcspn(prev, "/");
			if (l > 1 && prev[l - 1] == 's')
				l--;
			if (l == 0 || l >= sizeof(name) || prev[0] == '{')
				snprintf(name, sizeof(name), "action");
			else
				snprintf(name, sizeof(name), "%.*s", (int)l, prev);
			n = snprintf(out + len, outsz - len, "{%s}", name);
			if (n < 0 || (size_t)n >= outsz - len)
				break;
			len += (size_t)n;
			json_array_append_new(params, json_pack("{s:s, s:s, s:b, "
			    "s:{s:s}}", "name", name, "in", "path", "required", 1,
			    "schema", "type", "string"));
			p += 2;
			continue;
		}
		if (*p == '/' )
			prev = p + 1;
		out[len++] = *p++;
		out[len] = '\0';
	}
}

static void
api_openapi_add(json_t *paths, const struct httpd_route *rt, size_t n)
{
	char path[256], method[8];
	size_t i, k;

	for (i = 0; i < n; i++) {
		json_t *params = json_array(), *item, *op;

		api_openapi_path(rt[i].pattern, path, sizeof(path), params);
		for (k = 0; rt[i].method[k] && k + 1 < sizeof(method); k++)
			method[k] = (char)(rt[i].method[k] | 0x20);
		method[k] = '\0';
		if ((item = json_object_get(paths, path)) == NULL) {
			item = json_object();
			json_object_set_new(paths, path, item);
		}
		op = json_pack("{s:s, s:o, s:{s:{s:s}, s:{s:s}}}", "operationId",
		    rt[i].pattern, "parameters", params, "responses",
		    "200", "description", "success",
		    "default", "description", "error: {\"error\": \"...\"}");
		if (rt[i].flags & HTTPD_NOAUTH)
			json_object_set_new(op, "security", json_array());
		json_object_set_new(item, method, op);
	}
}

static int
api_openapi(struct httpd_req *r)
{
	json_t *paths = json_object();
	size_t i;

	/* Every route the server has (the UI offers what is listed here). */
	for (i = 0; i < api_route_ntables; i++)
		api_openapi_add(paths, api_route_tables[i].routes,
		    *api_route_tables[i].n);
	return httpd_reply_json(r, 200, json_pack("{s:s, s:{s:s, s:s}, "
	    "s:[{s:s}], s:o, s:{s:{s:{s:s, s:s}}}, s:[{s:[]}]}",
	    "openapi", "3.0.3", "info", "title", "cvirt API", "version",
	    CVIRT_VERSION, "servers", "url", "/api/v1", "paths", paths,
	    "components", "securitySchemes", "bearer", "type", "http",
	    "scheme", "bearer", "security", "bearer"));
}

static void
api_metrics_group(FILE *f, const char *metric,
    const char *help, const char *sql, const char *label)
{
	json_t *rows = db_query(sql, NULL), *row;
	size_t i;

	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", metric, help, metric);
	json_array_foreach(rows, i, row)
		fprintf(f, "%s{%s=\"%s\"} %lld\n", metric, label,
		    json_string_value(json_object_get(row, "k")),
		    (long long)json_integer_value(json_object_get(row, "n")));
	json_decref(rows);
}

static int
api_metrics(struct httpd_req *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return httpd_reply_error(r, 500, "out of memory");
	api_metrics_group(f, "cvirt_hosts", "Hosts by state.",
	    "SELECT CASE WHEN maintenance <> 0 AND state = 'up' THEN "
	    "'maintenance' ELSE state END AS k, COUNT(*) AS n FROM hosts "
	    "GROUP BY k", "state");
	api_metrics_group(f, "cvirt_vms", "VMs by state.",
	    "SELECT state AS k, COUNT(*) AS n FROM vms GROUP BY state", "state");
	api_metrics_group(f, "cvirt_tasks", "Tasks by state.",
	    "SELECT state AS k, COUNT(*) AS n FROM tasks GROUP BY state", "state");
	api_metrics_write(f);
	fclose(f);
	httpd_reply_raw(r, 200, "text/plain; version=0.0.4", buf, len);
	free(buf);
	return 0;
}

const struct httpd_route api_misc_routes[] = {
	{ "GET", "/api/v1/health",       api_health,  HTTPD_NOAUTH, 0 },
	{ "GET", "/api/v1/openapi.json", api_openapi, HTTPD_NOAUTH, 0 },
	{ "GET", "/metrics",             api_metrics, 0, ROLE_VIEWER },
};
const size_t api_misc_nroutes = sizeof(api_misc_routes) / sizeof(api_misc_routes[0]);
