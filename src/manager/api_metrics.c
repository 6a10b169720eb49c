/* api_metrics.c - what /metrics adds to the inventory counts: per-host and
 * per-VM usage, tasks by kind, events (HA among them), the manager's role,
 * its memory, and the in-process histograms (API latency, task time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/metrics.h"
#include "common/util.h"
#include "manager/manager_int.h"
#include "version.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

/* rows of {k1, k2, n} as metric{l1="k1",l2="k2"} n */
static void
api_metrics_rows(FILE *f, const char *metric, const char *type,
    const char *help, const char *sql, const char *l1, const char *l2)
{
	json_t *rows = db_query(sql, NULL), *row;
	char a[256], b[256];
	size_t i;

	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
	json_array_foreach(rows, i, row) {
		metrics_escape(JS(row, "k1"), a, sizeof(a));
		if (l2) {
			metrics_escape(JS(row, "k2"), b, sizeof(b));
			fprintf(f, "%s{%s=\"%s\",%s=\"%s\"} %lld\n", metric, l1,
			    a, l2, b, (long long)JI(row, "n"));
		} else {
			fprintf(f, "%s{%s=\"%s\"} %lld\n", metric, l1, a,
			    (long long)JI(row, "n"));
		}
	}
	json_decref(rows);
}

static long long
api_metrics_rss(void)
{
	char *s = util_read_file("/proc/self/statm", 4096, NULL);
	long long pages = -1;

	if (s == NULL || sscanf(s, "%*s %lld", &pages) != 1)
		pages = -1;
	free(s);
	return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

static void
api_metrics_manager(FILE *f)
{
	fprintf(f, "# HELP cvirt_manager_info The manager's version and "
	    "inventory backend.\n# TYPE cvirt_manager_info gauge\n"
	    "cvirt_manager_info{version=\"%s\",db=\"%s\"} 1\n", CVIRT_VERSION,
	    db_backend_name());
	fprintf(f, "# HELP cvirt_manager_leader 1 on the manager that serves "
	    "(holds the leader lease), 0 on a standby.\n"
	    "# TYPE cvirt_manager_leader gauge\ncvirt_manager_leader %d\n",
	    ha_is_leader());
	fprintf(f, "# HELP cvirt_heartbeat_interval_seconds How often agents "
	    "are asked to report.\n# TYPE cvirt_heartbeat_interval_seconds "
	    "gauge\ncvirt_heartbeat_interval_seconds %.3f\n"
	    "# HELP cvirt_heartbeat_timeout_seconds Silence after which a host "
	    "is down.\n# TYPE cvirt_heartbeat_timeout_seconds gauge\n"
	    "cvirt_heartbeat_timeout_seconds %.3f\n",
	    (double)hb_interval_ms() / 1000.0, (double)hb_timeout_ms() / 1000.0);
	fprintf(f, "# HELP cvirt_manager_resident_memory_bytes Resident memory "
	    "of the manager process.\n"
	    "# TYPE cvirt_manager_resident_memory_bytes gauge\n"
	    "cvirt_manager_resident_memory_bytes %lld\n", api_metrics_rss());
}

void
api_metrics_write(FILE *f)
{
	json_t *rows, *row, *names = json_object();
	size_t i;

	api_metrics_rows(f, "cvirt_host_vms", "gauge", "VMs placed on each "
	    "host, by state.", "SELECT host AS k1, state AS k2, COUNT(*) AS n "
	    "FROM vms WHERE host IS NOT NULL GROUP BY host, state", "host",
	    "state");
	api_metrics_rows(f, "cvirt_tasks_by_kind", "gauge", "Tasks in the "
	    "inventory, by kind and state.", "SELECT kind AS k1, state AS k2, "
	    "COUNT(*) AS n FROM tasks GROUP BY kind, state", "kind", "state");
	api_metrics_rows(f, "cvirt_events_total", "counter", "Events recorded, "
	    "by kind.", "SELECT kind AS k1, COUNT(*) AS n FROM events GROUP BY "
	    "kind", "kind", NULL);
	api_metrics_rows(f, "cvirt_ha_events_total", "counter", "High-"
	    "availability events (VM restarts, fencing, host loss, manager "
	    "take-overs), by kind.", "SELECT kind AS k1, COUNT(*) AS n FROM "
	    "events WHERE kind LIKE 'ha.%' OR kind LIKE 'manager.%' OR kind IN "
	    "('host.down', 'host.fenced') GROUP BY kind", "kind", NULL);
	api_metrics_rows(f, "cvirt_networks", "gauge", "Virtual networks, by "
	    "type (the built-in user network not counted).", "SELECT type AS "
	    "k1, COUNT(*) AS n FROM networks GROUP BY type", "type", NULL);
	api_metrics_rows(f, "cvirt_network_nics", "gauge", "vNICs on each "
	    "network.", "SELECT network AS k1, COUNT(*) AS n FROM nics GROUP BY "
	    "network", "network", NULL);
	api_metrics_manager(f);
	rows = db_query("SELECT uuid, name FROM vms", NULL);
	json_array_foreach(rows, i, row)
		json_object_set(names, JS(row, "uuid"), json_object_get(row,
		    "name"));
	json_decref(rows);
	usage_write_metrics(f, names);
	json_decref(names);
	metrics_write(f);
}
