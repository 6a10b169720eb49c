/* sched.c - placement: filter the hosts that can run a VM, then score them. */
#include <stdio.h>
#include <string.h>

#include "manager/manager_int.h"

/* Why the host cannot run the VM, or NULL when it can. */
static const char *
sched_filter(json_t *host, json_t *spec, int64_t used_mib, char *why,
    size_t whysz)
{
	const char *state = json_string_value(json_object_get(host, "state"));
	const char *st = json_string_value(json_object_get(spec, "storage"));
	int64_t mem = json_integer_value(json_object_get(host, "memory_mib"));
	int64_t need = json_integer_value(json_object_get(spec, "memory_mib"));
	json_t *info, *s;
	size_t i;
	int has = 0;

	if (strcmp(state, "up") != 0) {
		snprintf(why, whysz, "%s", state);
		return why;
	}
	if (json_integer_value(json_object_get(host, "maintenance"))) {
		snprintf(why, whysz, "in maintenance");
		return why;
	}
	if (mem - used_mib < need) {
		snprintf(why, whysz, "not enough memory (need %lld MiB, free "
		    "%lld MiB)", (long long)need, (long long)(mem - used_mib));
		return why;
	}
	info = json_loads(json_string_value(json_object_get(host, "info")), 0,
	    NULL);
	json_array_foreach(json_object_get(info, "storage"), i, s) {
		const char *n = json_string_value(json_object_get(s, "name"));
		if (n && st && strcmp(n, st) == 0 &&
		    json_is_true(json_object_get(s, "ok")))
			has = 1;
	}
	json_decref(info);
	if (!has) {
		snprintf(why, whysz, "no storage %s", st ? st : "?");
		return why;
	}
	return NULL;
}

int
sched_pick(json_t *vm, const char *want, char *out, size_t outsz, char *err,
    size_t errsz)
{
	json_t *hosts, *h, *spec;
	char why[160], reasons[1024] = "";
	int64_t best_free = -1;
	size_t i, len = 0;
	int rc = -1;

	spec = json_loads(json_string_value(json_object_get(vm, "spec")), 0, NULL);
	hosts = db_query("SELECT h.*, (SELECT COALESCE(SUM(v.memory_mib), 0) "
	    "FROM vms v WHERE v.host = h.name AND v.uuid != ?)"
	    " AS used_mib FROM hosts h ORDER BY h.name", "s",
	    json_string_value(json_object_get(vm, "uuid")));
	json_array_foreach(hosts, i, h) {
		const char *name = json_string_value(json_object_get(h, "name"));
		int64_t used = json_integer_value(json_object_get(h, "used_mib"));
		int64_t freem = json_integer_value(json_object_get(h, "memory_mib")) - used;

		if (want && strcmp(want, name) != 0)
			continue;
		if (sched_filter(h, spec, used, why, sizeof(why))) {
			int n = snprintf(reasons + len, sizeof(reasons) - len,
			    "%s%s: %s", len ? "; " : "", name, why);
			if (n > 0 && (size_t)n < sizeof(reasons) - len)
				len += (size_t)n;
			continue;
		}
		/* Balanced load: the host with the most free memory. */
		if (freem > best_free) {
			best_free = freem;
			snprintf(out, outsz, "%s", name);
			rc = 0;
		}
	}
	if (rc < 0) {
		if (want && len == 0)
			snprintf(err, errsz, "host %s not found", want);
		else if (len == 0)
			snprintf(err, errsz, "no host is registered");
		else
			snprintf(err, errsz, "no host can run vm %s: %s",
			    json_string_value(json_object_get(vm, "name")), reasons);
	}
	json_decref(hosts);
	json_decref(spec);
	return rc;
}
