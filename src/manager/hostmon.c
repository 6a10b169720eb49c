/* hostmon.c - host liveness: a host whose reports stop is marked down,
 * by the manager's monotonic clock. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

static pthread_t hostmon_thread;
static pthread_mutex_t hostmon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hostmon_cond;	/* CLOCK_MONOTONIC (hostmon_start) */
static int hostmon_quit;

/* Who the host is (docs/security.md): its certificate's fingerprint and
 * the addresses approved for and asked for by its certificate. */
static void
host_json_identity(json_t *row, json_t *o)
{
	static const char *const lists[][2] = {
		{ "approved", "approved_addresses" },
		{ "pending", "pending_addresses" },
	};
	const char *s;
	json_t *l;
	size_t i;

	json_object_set(o, "cert_fingerprint", json_object_get(row,
	    "cert_fp") ? json_object_get(row, "cert_fp") : json_null());
	json_object_set_new(o, "registered_key", json_boolean(
	    json_is_string(json_object_get(row, "agent_key"))));
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		s = json_string_value(json_object_get(row, lists[i][0]));
		l = s ? json_loads(s, 0, NULL) : NULL;
		json_object_set_new(o, lists[i][1], json_is_array(l) ? l :
		    json_array());
		if (l != NULL && !json_is_array(l))
			json_decref(l);
	}
}

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
	json_object_set(o, "fence", json_object_get(row, "fence") ?
	    json_object_get(row, "fence") : json_null());
	if (json_is_integer(json_object_get(row, "confirmed_off"))) {
		util_time_iso(json_integer_value(json_object_get(row,
		    "confirmed_off")), seen, sizeof(seen));
		json_object_set_new(o, "confirmed_off", json_string(seen));
	} else {
		json_object_set_new(o, "confirmed_off", json_null());
	}
	/* set_new of a reference: what the host did not report is a new
	 * empty array, which json_object_set would have leaked. */
	json_object_set_new(o, "storage", json_object_get(info, "storage") ?
	    json_incref(json_object_get(info, "storage")) : json_array());
	/* --media-dir: where else it takes boot media from (media.c) */
	json_object_set_new(o, "media_dirs", json_object_get(info,
	    "media_dirs") ? json_incref(json_object_get(info, "media_dirs")) :
	    json_array());
	json_object_set(o, "version", json_object_get(info, "version") ?
	    json_object_get(info, "version") : json_null());
	json_decref(info);
	host_json_identity(row, o);
	return o;
}

/* Under hostmon_lock: host -> mono ms of its last report; hosts already
 * marked down since (not checked again until they report). Hosts not in
 * hostmon_last count from the start of monitoring (the manager's start or
 * its take-over as leader), never from a wall time stored in the DB. */
static json_t *hostmon_last, *hostmon_down;
static int64_t hostmon_since;

void
hostmon_seen(const char *host)
{
	pthread_mutex_lock(&hostmon_lock);
	if (hostmon_last) {
		json_object_set_new(hostmon_last, host,
		    json_integer(util_mono_ms()));
		json_object_del(hostmon_down, host);
	}
	pthread_mutex_unlock(&hostmon_lock);
}

int64_t
hostmon_silence_ms(const char *host)
{
	json_t *t;
	int64_t last;

	pthread_mutex_lock(&hostmon_lock);
	t = hostmon_last ? json_object_get(hostmon_last, host) : NULL;
	last = t ? json_integer_value(t) : hostmon_since;
	pthread_mutex_unlock(&hostmon_lock);
	return util_mono_ms() - last;
}

/* Hosts silent for longer than the timeout, not yet marked: from memory,
 * so a quiet round reads nothing from the database. */
static json_t *
hostmon_stale(int64_t timeout)
{
	json_t *out = json_array(), *v;
	int64_t now = util_mono_ms();
	const char *host;

	pthread_mutex_lock(&hostmon_lock);
	json_object_foreach(hostmon_last, host, v)
		if (now - json_integer_value(v) > timeout &&
		    !json_object_get(hostmon_down, host))
			json_array_append_new(out, json_string(host));
	pthread_mutex_unlock(&hostmon_lock);
	return out;
}

static void
hostmon_check(void)
{
	int64_t timeout = hb_timeout_ms();
	json_t *rows, *h;
	size_t i;

	rows = hostmon_stale(timeout);
	json_array_foreach(rows, i, h) {
		const char *name = json_string_value(h);
		int64_t age = hostmon_silence_ms(name);

		pthread_mutex_lock(&hostmon_lock);
		json_object_set_new(hostmon_down, name, json_true());
		pthread_mutex_unlock(&hostmon_lock);
		if (db_exec("UPDATE hosts SET state = 'down' WHERE name = ? AND "
		    "state = 'up'", "s", name) == 1)
			event_add("warning", "host.down", name, "host %s is down: "
			    "no report for %lld ms (timeout %lld ms)", name,
			    (long long)age, (long long)timeout);
		/* A report in between: it is up again, check it again. */
		if (hostmon_silence_ms(name) <= timeout) {
			db_exec("UPDATE hosts SET state = 'up' WHERE name = ? AND "
			    "state = 'down'", "s", name);
			pthread_mutex_lock(&hostmon_lock);
			json_object_del(hostmon_down, name);
			pthread_mutex_unlock(&hostmon_lock);
		}
	}
	json_decref(rows);
}

static void *
hostmon_main(void *arg)
{
	int64_t next = util_mono_ms();

	(void)arg;
	pthread_mutex_lock(&hostmon_lock);
	while (!hostmon_quit) {
		pthread_mutex_unlock(&hostmon_lock);
		if (ha_is_leader())	/* else our lease ran out */
			hostmon_check();
		pthread_mutex_lock(&hostmon_lock);
		next += 250;
		if (next < util_mono_ms())
			next = util_mono_ms();
		if (!hostmon_quit)
			(void)util_cond_wait_until(&hostmon_cond, &hostmon_lock,
			    next);
	}
	pthread_mutex_unlock(&hostmon_lock);
	return NULL;
}

int
hostmon_start(void)
{
	json_t *rows, *h;
	size_t i;

	if (util_cond_init_mono(&hostmon_cond) != 0)
		return -1;
	rows = db_query("SELECT name FROM hosts WHERE state = 'up'", NULL);
	pthread_mutex_lock(&hostmon_lock);
	hostmon_last = json_object();
	hostmon_down = json_object();
	hostmon_since = util_mono_ms();
	json_array_foreach(rows, i, h)
		json_object_set_new(hostmon_last, json_string_value(
		    json_object_get(h, "name")), json_integer(hostmon_since));
	pthread_mutex_unlock(&hostmon_lock);
	json_decref(rows);
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
	pthread_mutex_lock(&hostmon_lock);
	json_decref(hostmon_last);
	json_decref(hostmon_down);
	hostmon_last = hostmon_down = NULL;
	pthread_mutex_unlock(&hostmon_lock);
}
