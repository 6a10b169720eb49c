/* vm.c - VM objects: rows in the inventory, their JSON, state updates. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

json_t *
vm_find(const char *name)
{
	return db_row("SELECT * FROM vms WHERE name = ?", "s", name);
}

json_t *
vm_spec(json_t *row)
{
	const char *s = json_string_value(json_object_get(row, "spec"));

	return s ? json_loads(s, 0, NULL) : NULL;
}

json_t *
vm_json(json_t *row)
{
	json_t *spec = vm_spec(row), *o;
	char created[40];
	static const char *const copy[] = { "cpus", "memory_mib", "storage",
	    "disks", "nics", "kernel", "initrd", "cmdline", "ha_monitor",
	    "affinity", "anti_affinity", NULL };
	size_t i;

	if (spec == NULL)
		spec = json_object();
	util_time_iso(json_integer_value(json_object_get(row, "created")),
	    created, sizeof(created));
	o = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:s, s:b}",
	    "name", json_object_get(row, "name"),
	    "uuid", json_object_get(row, "uuid"),
	    "state", json_object_get(row, "state"),
	    "host", json_object_get(row, "host"),
	    "pid", json_object_get(row, "pid"),
	    "task", json_object_get(row, "task_id"),
	    "desired", json_object_get(row, "desired") ?
	    json_object_get(row, "desired") : json_null(),
	    "created", created,
	    "ha", json_is_true(json_object_get(spec, "ha")));
	for (i = 0; copy[i]; i++) {
		json_t *v = json_object_get(spec, copy[i]);
		json_object_set(o, copy[i], v ? v : json_null());
	}
	json_object_set_new(o, "display", json_string(json_is_string(
	    json_object_get(spec, "display")) ? json_string_value(
	    json_object_get(spec, "display")) : "none"));
	json_object_set(o, "placement", json_object_get(spec, "host") ?
	    json_object_get(spec, "host") : json_null());
	json_decref(spec);
	return o;
}

/* The update goes between sched_move_begin and _end, which keep
 * placement's per-host sums current (and hold the DB lock meanwhile). */
void
vm_set_state(const char *uuid, const char *state, const char *host,
    int64_t pid)
{
	struct sched_move mv;

	sched_move_begin(&mv, uuid);
	if (pid > 0)
		db_exec("UPDATE vms SET state = ?, host = ?, pid = ?, updated = ? "
		    "WHERE uuid = ?", "ssiis", state, host, pid, util_wall_ms(),
		    uuid);
	else
		db_exec("UPDATE vms SET state = ?, host = ?, pid = NULL, "
		    "updated = ? WHERE uuid = ?", "ssis", state, host,
		    util_wall_ms(), uuid);
	sched_move_end(&mv, host);
}
