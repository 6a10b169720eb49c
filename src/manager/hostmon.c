/* hostmon.c - host liveness: a host whose reports stop is marked down. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

static pthread_t hostmon_thread;
static pthread_mutex_t hostmon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hostmon_cond = PTHREAD_COND_INITIALIZER;
static int hostmon_quit;

json_t *
host_json(json_t *row)
{
	json_t *info = NULL, *o;
	const char *is = json_string_value(json_object_get(row, "info"));
	const char *state = json_string_value(json_object_get(row, "state"));
	char seen[40];

	if (is)
		info = json_loads(is, 0, NULL);
	util_time_iso(json_integer_value(json_object_get(row, "last_seen")),
	    seen, sizeof(seen));
	if (strcmp(state, "up") == 0 &&
	    json_integer_value(json_object_get(row, "maintenance")))
		state = "maintenance";
	o = json_pack("{s:O, s:s, s:O, s:O, s:O, s:O, s:I, s:O, s:s, s:b}",
	    "name", json_object_get(row, "name"), "state", state,
	    "accel", json_object_get(row, "accel"),
	    "accel_reason", json_object_get(row, "accel_reason"),
	    "cpus", json_object_get(row, "cpus"),
	    "memory_mib", json_object_get(row, "memory_mib"),
	    "vms", json_integer_value(json_object_get(row, "vms")),
	    "url", json_object_get(row, "url"), "last_seen", seen,
	    "maintenance", json_integer_value(json_object_get(row,
	    "maintenance")) != 0);
	json_object_set(o, "storage", json_object_get(info, "storage") ?
	    json_object_get(info, "storage") : json_array());
	json_object_set(o, "version", json_object_get(info, "version") ?
	    json_object_get(info, "version") : json_null());
	json_decref(info);
	return o;
}

static void
hostmon_check(void)
{
	int64_t timeout = hb_timeout_ms();
	int64_t cutoff = util_wall_ms() - timeout;
	json_t *rows, *h;
	size_t i;

	rows = db_query("SELECT name, last_seen FROM hosts WHERE state = 'up' "
	    "AND last_seen < ?", "i", cutoff);
	json_array_foreach(rows, i, h) {
		const char *name = json_string_value(json_object_get(h, "name"));
		int64_t age = util_wall_ms() -
		    json_integer_value(json_object_get(h, "last_seen"));

		if (db_exec("UPDATE hosts SET state = 'down' WHERE name = ? AND "
		    "state = 'up' AND last_seen < ?", "si", name, cutoff) == 1)
			event_add("warning", "host.down", name, "host %s is down: "
			    "no report for %lld ms (timeout %lld ms)", name,
			    (long long)age, (long long)timeout);
	}
	json_decref(rows);
}

static void *
hostmon_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&hostmon_lock);
	while (!hostmon_quit) {
		struct timespec ts;

		pthread_mutex_unlock(&hostmon_lock);
		if (ha_is_leader())	/* else our lease ran out */
			hostmon_check();
		pthread_mutex_lock(&hostmon_lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!hostmon_quit)
			pthread_cond_timedwait(&hostmon_cond, &hostmon_lock, &ts);
	}
	pthread_mutex_unlock(&hostmon_lock);
	return NULL;
}

int
hostmon_start(void)
{
	return pthread_create(&hostmon_thread, NULL, hostmon_main, NULL) == 0 ?
	    0 : -1;
}

void
hostmon_stop(void)
{
	pthread_mutex_lock(&hostmon_lock);
	hostmon_quit = 1;
	pthread_cond_signal(&hostmon_cond);
	pthread_mutex_unlock(&hostmon_lock);
	pthread_join(hostmon_thread, NULL);
}
