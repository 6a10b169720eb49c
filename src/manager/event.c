/* event.c - the event log: what happened, to what, why. */
#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"
#include "manager/manager_int.h"

void
event_add(const char *severity, const char *kind, const char *object,
    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("event %s %s: %s", kind, object ? object : "-", msg);
	db_exec("INSERT INTO events (time, severity, kind, object, message) "
	    "VALUES (?, ?, ?, ?, ?)", "issss", util_wall_ms(), severity, kind,
	    object, msg);
}

json_t *
event_json(json_t *row)
{
	char t[40];

	util_time_iso(json_integer_value(json_object_get(row, "time")), t,
	    sizeof(t));
	return json_pack("{s:O, s:s, s:O, s:O, s:O, s:O}",
	    "id", json_object_get(row, "id"), "time", t,
	    "severity", json_object_get(row, "severity"),
	    "kind", json_object_get(row, "kind"),
	    "object", json_object_get(row, "object"),
	    "message", json_object_get(row, "message"));
}
