/* failover.c - VM high availability. A host has failed only when both its
 * heartbeats (hostmon) and its storage lease (renewed by its keeper, read
 * through any peer that sees the same storage) have stopped; by then its
 * keeper has killed its QEMUs (self-fencing), so restarting them elsewhere
 * never runs a VM twice. A host cut off from the network records on its
 * lease which HA VMs it powered off (isolation); those restart at once.
 * HA VMs whose QEMU failed restart in place up to ha_max_restarts times in
 * ha_restart_window_s, then elsewhere. Every decision goes to the event
 * log with its evidence. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

#define FO_TICK_MS	500
#define FO_RETRY_MS	3000	/* between restart attempts of one VM */

static pthread_t fo_thread;
static pthread_mutex_t fo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fo_cond = PTHREAD_COND_INITIALIZER;
static int fo_quit;
/* Owned by the failover thread, except fo_vms (under fo_lock):
 * fo_leases: host -> {seq, changed (mono ms), iso_time}
 * fo_vms: vm name -> {host, fails: [mono ms], next (mono ms)} */
static json_t *fo_leases, *fo_vms;

void
failover_vm_failed(const char *name, const char *host, const char *reason)
{
	json_t *e, *fails;
	int64_t now = util_mono_ms();

	pthread_mutex_lock(&fo_lock);
	if (fo_vms == NULL)
		goto cleanup;
	if ((e = json_object_get(fo_vms, name)) == NULL) {
		e = json_pack("{s:[], s:I}", "fails", "next", (json_int_t)0);
		json_object_set_new(fo_vms, name, e);
	}
	json_object_set_new(e, "host", json_string(host));
	fails = json_object_get(e, "fails");
	json_array_append_new(fails, json_integer(now));
	json_object_set_new(e, "next", json_integer(0));
	/* Fenced or isolated: that host cannot take it back now. */
	json_object_set_new(e, "elsewhere", json_boolean(reason &&
	    (strstr(reason, "fenced") || strstr(reason, "isolated") ||
	    strstr(reason, "host failed"))));
	pthread_cond_signal(&fo_cond);
cleanup:
	pthread_mutex_unlock(&fo_lock);
}

/* Where to restart: in place while the policy allows, else elsewhere. */
static void
fo_restart_target(const char *name, const struct cluster_settings *cs,
    char *want, char *exclude, size_t sz, int64_t *next)
{
	int64_t now = util_mono_ms(), window = (int64_t)cs->ha_restart_window_s *
	    1000;
	json_t *e, *fails, *f;
	size_t i;
	int recent = 0;

	want[0] = exclude[0] = '\0';
	pthread_mutex_lock(&fo_lock);
	e = json_object_get(fo_vms, name);
	*next = e ? JI(e, "next") : 0;
	if (e && JS(e, "host")) {
		fails = json_object_get(e, "fails");
		json_array_foreach(fails, i, f)
			if (now - json_integer_value(f) < window)
				recent++;
		if (recent <= cs->ha_max_restarts &&
		    !json_is_true(json_object_get(e, "elsewhere")))
			snprintf(want, sz, "%s", JS(e, "host"));
		else
			snprintf(exclude, sz, "%s", JS(e, "host"));
	}
	pthread_mutex_unlock(&fo_lock);
}

static void
fo_set_next(const char *name, int64_t next)
{
	json_t *e;

	pthread_mutex_lock(&fo_lock);
	if ((e = json_object_get(fo_vms, name)) == NULL) {
		e = json_pack("{s:[]}", "fails");
		json_object_set_new(fo_vms, name, e);
	}
	json_object_set_new(e, "next", json_integer(next));
	pthread_mutex_unlock(&fo_lock);
}

/* HA VMs that should run but do not: start them (rate limited). */
static void
fo_restart_ha_vms(const struct cluster_settings *cs)
{
	char want[UTIL_NAME_MAX + 1], excl[UTIL_NAME_MAX + 1], err[512];
	json_t *rows, *row;
	int64_t next;
	size_t i;

	rows = db_query("SELECT name, spec FROM vms WHERE host IS NULL AND "
	    "task_id IS NULL AND desired = 'running' AND state IN ('stopped', "
	    "'failed') ORDER BY name", NULL);
	json_array_foreach(rows, i, row) {
		json_t *spec = vm_spec(row), *p;
		const char *name = JS(row, "name");
		int64_t id;

		if (spec == NULL || !json_is_true(json_object_get(spec, "ha"))) {
			json_decref(spec);
			continue;
		}
		json_decref(spec);
		fo_restart_target(name, cs, want, excl, sizeof(want), &next);
		if (util_mono_ms() < next)
			continue;
		/* In place only on a host that can still run it. */
		if (want[0]) {
			json_t *up = db_row("SELECT name FROM hosts WHERE name = ? "
			    "AND state = 'up'", "s", want);
			if (up == NULL)
				want[0] = '\0';
			json_decref(up);
		}
		p = json_pack("{s:s}", "reason", "ha");
		if (want[0])
			json_object_set_new(p, "host", json_string(want));
		if (excl[0])
			json_object_set_new(p, "exclude", json_string(excl));
		id = task_submit("vm.start", name, p, "ha", err, sizeof(err));
		json_decref(p);
		fo_set_next(name, util_mono_ms() + FO_RETRY_MS);
		if (id >= 0)
			event_add("warning", "ha.restart", name, "HA restarts vm "
			    "%s %s%s (task %lld)", name, want[0] ? "in place on " :
			    "on another host", want[0] ? want : excl[0] ? "" : "",
			    (long long)id);
	}
	json_decref(rows);
}

/* Every lease on the storage domains, read through one up host each. */
static json_t *
fo_read_leases(json_t *hosts)
{
	json_t *out = json_object(), *h, *s, *done = json_object();
	size_t i, j;

	json_array_foreach(hosts, i, h) {
		json_t *info;

		if (strcmp(JS(h, "state"), "up") != 0)
			continue;
		info = json_loads(JS(h, "info") ? JS(h, "info") : "{}", 0, NULL);
		json_array_foreach(json_object_get(info, "storage"), j, s) {
			json_t *reply = NULL, *l;
			char path[200], err[256];
			const char *key;
			int status = 0;

			if (!JS(s, "name") || json_object_get(done, JS(s, "name")) ||
			    !json_is_true(json_object_get(s, "ok")))
				continue;
			snprintf(path, sizeof(path), "/agent/v1/leases?storage=%s",
			    JS(s, "name"));
			if (agentc_call(JS(h, "name"), "GET", path, NULL, 2000,
			    &status, &reply, err, sizeof(err)) < 0 || status != 200) {
				json_decref(reply);
				continue;
			}
			json_object_set_new(done, JS(s, "name"), json_true());
			json_object_foreach(json_object_get(reply, "leases"), key, l)
				json_object_set(out, key, l);
			json_decref(reply);
		}
		json_decref(info);
	}
	json_decref(done);
	return out;
}

/* Track when each host's lease last changed, by our own clock. */
static void
fo_track_leases(json_t *leases, int64_t now)
{
	const char *host;
	json_t *l;

	json_object_foreach(leases, host, l) {
		json_int_t seq = JI(json_object_get(l, "lease"), "seq");
		json_t *t = json_object_get(fo_leases, host);

		if (t == NULL || JI(t, "seq") != seq)
			json_object_set_new(fo_leases, host, json_pack("{s:I, s:I, "
			    "s:I}", "seq", seq, "changed", (json_int_t)now,
			    "iso_time", t ? JI(t, "iso_time") : (json_int_t)0));
	}
}

static void
fo_fence(json_t *h, int64_t lease_age, json_int_t seq, int64_t hb_age,
    const struct cluster_settings *cs)
{
	const char *name = JS(h, "name");
	json_t *vms, *v;
	size_t i;

	if (db_exec("UPDATE hosts SET state = 'fenced' WHERE name = ? AND state "
	    "= 'down'", "s", name) != 1)
		return;
	event_add("error", "host.fenced", name, "host %s failed: no report for "
	    "%lld ms and its storage lease not renewed for %lld ms (seq %lld, "
	    "lease timeout %d ms); its keeper has stopped its VMs", name,
	    (long long)hb_age, (long long)lease_age, (long long)seq,
	    cs->ha_lease_timeout_ms);
	vms = db_query("SELECT name, uuid FROM vms WHERE host = ?", "s", name);
	json_array_foreach(vms, i, v) {
		vm_set_state(JS(v, "uuid"), "failed", NULL, 0);
		failover_vm_failed(JS(v, "name"), name, "host failed");
	}
	json_decref(vms);
}

static void
fo_isolated(json_t *h, json_t *iso, int64_t hb_age)
{
	const char *name = JS(h, "name");
	json_t *t = json_object_get(fo_leases, name), *u;
	json_int_t when = JI(iso, "time");
	size_t i, n = 0;

	if (t == NULL || JI(t, "iso_time") == when)
		return;
	json_object_set_new(t, "iso_time", json_integer(when));
	json_array_foreach(json_object_get(iso, "stopped"), i, u) {
		json_t *row;

		if (!json_is_string(u))
			continue;
		row = db_row("SELECT name, uuid FROM vms WHERE uuid = ? AND host = ?",
		    "ss", json_string_value(u), name);
		if (row) {
			vm_set_state(JS(row, "uuid"), "failed", NULL, 0);
			failover_vm_failed(JS(row, "name"), name, "isolated");
			n++;
		}
		json_decref(row);
	}
	event_add("warning", "host.isolated", name, "host %s is isolated: no "
	    "report for %lld ms while its lease is renewed; it powered off %zu "
	    "HA VM(s) and recorded them on storage", name, (long long)hb_age, n);
}

static void
fo_round(void)
{
	struct cluster_settings cs;
	json_t *hosts, *leases, *h;
	int64_t now = util_mono_ms();
	size_t i;

	if (!ha_is_leader())
		return;		/* our lease ran out: another manager may lead */
	cluster_get(&cs);
	hosts = db_query("SELECT name, state, info, last_seen FROM hosts", NULL);
	leases = fo_read_leases(hosts);
	fo_track_leases(leases, now);
	json_array_foreach(hosts, i, h) {
		json_t *l = json_object_get(leases, JS(h, "name")), *t;
		int64_t hb_age = util_wall_ms() - JI(h, "last_seen");

		if (strcmp(JS(h, "state"), "down") != 0 || l == NULL)
			continue;	/* unknown lease: cannot decide, wait */
		if (json_is_true(json_object_get(json_object_get(l, "isolation"),
		    "isolated")))
			fo_isolated(h, json_object_get(l, "isolation"), hb_age);
		t = json_object_get(fo_leases, JS(h, "name"));
		if (t && now - JI(t, "changed") >= cs.ha_lease_timeout_ms)
			fo_fence(h, now - JI(t, "changed"), JI(t, "seq"), hb_age, &cs);
	}
	fo_restart_ha_vms(&cs);
	json_decref(leases);
	json_decref(hosts);
}

static void *
fo_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&fo_lock);
	while (!fo_quit) {
		struct timespec ts;

		pthread_mutex_unlock(&fo_lock);
		fo_round();
		pthread_mutex_lock(&fo_lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += FO_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!fo_quit)
			pthread_cond_timedwait(&fo_cond, &fo_lock, &ts);
	}
	pthread_mutex_unlock(&fo_lock);
	return NULL;
}

int
failover_start(void)
{
	fo_leases = json_object();
	pthread_mutex_lock(&fo_lock);
	fo_vms = json_object();
	pthread_mutex_unlock(&fo_lock);
	return pthread_create(&fo_thread, NULL, fo_main, NULL) == 0 ? 0 : -1;
}

void
failover_stop(void)
{
	pthread_mutex_lock(&fo_lock);
	fo_quit = 1;
	pthread_cond_signal(&fo_cond);
	pthread_mutex_unlock(&fo_lock);
	pthread_join(fo_thread, NULL);
	json_decref(fo_leases);
	pthread_mutex_lock(&fo_lock);
	json_decref(fo_vms);
	fo_vms = NULL;
	pthread_mutex_unlock(&fo_lock);
}

int
failover_admit(json_t *vm, char *err, size_t errsz)
{
	struct cluster_settings cs;
	json_t *spec = vm_spec(vm), *hosts = NULL, *row = NULL, *h;
	int64_t total = 0, reserve = 0, need;
	size_t i;
	int rc = 0;

	cluster_get(&cs);
	if (cs.ha_reserve_hosts == 0 || spec == NULL ||
	    !json_is_true(json_object_get(spec, "ha")))
		goto cleanup;
	hosts = db_query("SELECT memory_mib FROM hosts WHERE state = 'up' AND "
	    "maintenance = 0 ORDER BY memory_mib DESC", NULL);
	json_array_foreach(hosts, i, h) {
		total += JI(h, "memory_mib");
		if ((int)i < cs.ha_reserve_hosts)
			reserve += JI(h, "memory_mib");
	}
	row = db_row("SELECT COALESCE(SUM(memory_mib), 0) AS m FROM vms WHERE "
	    "host IS NOT NULL AND spec LIKE '%\"ha\":true%' AND uuid != ?", "s",
	    JS(vm, "uuid"));
	need = (row ? JI(row, "m") : 0) + JI(spec, "memory_mib");
	if (need > total - reserve) {
		snprintf(err, errsz, "admission control: HA VMs would need %lld MiB, "
		    "but only %lld MiB remain if %d host(s) fail", (long long)need,
		    (long long)(total - reserve), cs.ha_reserve_hosts);
		rc = -1;
	}
cleanup:
	json_decref(row);
	json_decref(hosts);
	json_decref(spec);
	return rc;
}

void
failover_agent_hints(const char *host, json_t *reply)
{
	struct cluster_settings cs;
	json_t *rows, *r, *peers = json_array();
	size_t i;

	cluster_get(&cs);
	rows = db_query("SELECT url FROM hosts WHERE name != ? AND state = 'up' "
	    "ORDER BY last_seen DESC LIMIT 5", "s", host);
	json_array_foreach(rows, i, r)
		json_array_append(peers, json_object_get(r, "url"));
	json_decref(rows);
	json_object_set_new(reply, "peers", peers);
	json_object_set_new(reply, "isolation_ms",
	    json_integer(mgr_cfg.heartbeat_timeout_ms));
	json_object_set_new(reply, "isolation_response",
	    json_string(cs.ha_isolation_response));
	json_object_set_new(reply, "monitor_interval_ms",
	    json_integer(cs.ha_monitor_interval_ms));
	json_object_set_new(reply, "monitor_misses",
	    json_integer(cs.ha_monitor_misses));
}
