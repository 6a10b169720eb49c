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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

#define FO_TICK_MS	500
#define FO_RETRY_MS	3000	/* between restart attempts of one VM */

static pthread_t fo_thread;
static pthread_mutex_t fo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fo_cond;	/* on CLOCK_MONOTONIC (failover_start) */
static int fo_quit;
/* Owned by the failover thread, except fo_vms (under fo_lock):
 * fo_iso: host -> {iso_time} of the isolation record acted on
 * fo_vms: vm name -> {host, fails: [mono ms], next (mono ms)} */
static json_t *fo_iso, *fo_vms;
/* CVIRT_FAULTS contains "failover.fenced:exit" (read once at start). */
static int fo_fault_fenced;

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

/* How a host fences itself, from its own registration (never from what
 * another host reads on storage). FO_NONE: it does not say (cvirt sim,
 * an agent from before issue 14's keeper). Nothing proves such a host
 * has a fence that holds when its storage hangs, so, like a kill-only
 * host, it is never failed on lease age alone: its VMs move once it
 * reports them gone or an operator confirms it is off (docs/ha.md,
 * "Hosts that do not say how they fence"). */
enum { FO_NONE, FO_WATCHDOG, FO_KILLONLY };
#define FO_NONE_FENCE_MS	3000	/* the keeper's default deadline */

struct fo_host {
	const char	*name;
	int		 down;		/* down or fenced: not reporting */
	int		 fenced;	/* state fenced already */
	int		 fence;		/* FO_* */
	int64_t		 fence_ms;	/* its keeper's deadline */
	int64_t		 confirmed;	/* mono ms of confirm-off, or 0 */
	json_t		*lost;		/* domains it reports lost: name -> true */
	json_t		*fine;		/* domains it reports usable */
	json_t		*doms;		/* domains it has: name -> true */
};

/* Owned by the failover thread: "host\x1fdomain" -> seq already warned
 * about ("storage views differ"). Under fo_lock: host -> mono ms of the
 * operator's confirm-off. */
static json_t *fo_warned, *fo_confirmed;
/* The monotonic clock of the fence decisions (a fake one in unit tests). */
static int64_t (*fo_clock)(void) = util_mono_ms;

void
failover_set_clock(int64_t (*fn)(void))
{
	fo_clock = fn ? fn : util_mono_ms;
}

void
failover_confirm_off(const char *host)
{
	pthread_mutex_lock(&fo_lock);
	if (fo_confirmed)
		json_object_set_new(fo_confirmed, host,
		    json_integer(fo_clock()));
	pthread_cond_signal(&fo_cond);
	pthread_mutex_unlock(&fo_lock);
}

void
failover_host_registered(const char *host)
{
	pthread_mutex_lock(&fo_lock);
	if (fo_confirmed)
		json_object_del(fo_confirmed, host);
	pthread_mutex_unlock(&fo_lock);
}

/* The storage domains holding a VM's metadata and disks: name -> true. */
json_t *
failover_vm_domains(json_t *spec)
{
	json_t *out = json_object(), *d;
	size_t i;

	if (JS(spec, "storage"))
		json_object_set_new(out, JS(spec, "storage"), json_true());
	json_array_foreach(json_object_get(spec, "disks"), i, d)
		if (JS(d, "storage"))
			json_object_set_new(out, JS(d, "storage"), json_true());
	return out;
}

static void
fo_host_load(json_t *row, const struct cluster_settings *cs,
    struct fo_host *h)
{
	json_t *info, *timing, *s;
	const char *fence = JS(row, "fence"), *ts = JS(row, "timing");
	size_t i;

	memset(h, 0, sizeof(*h));
	h->name = JS(row, "name");
	h->down = strcmp(JS(row, "state"), "up") != 0;
	h->fenced = strcmp(JS(row, "state"), "fenced") == 0;
	h->fence = fence == NULL ? FO_NONE : strcmp(fence, "kill-only") == 0 ?
	    FO_KILLONLY : FO_WATCHDOG;
	h->fence_ms = FO_NONE_FENCE_MS;
	timing = ts ? json_loads(ts, 0, NULL) : NULL;
	if (json_is_integer(json_object_get(timing, "fence_ms")))
		h->fence_ms = JI(timing, "fence_ms");
	json_decref(timing);
	h->lost = json_object();
	h->fine = json_object();
	h->doms = json_object();
	info = json_loads(JS(row, "info") ? JS(row, "info") : "{}", 0, NULL);
	json_array_foreach(json_object_get(info, "storage"), i, s) {
		if (!JS(s, "name"))
			continue;
		json_object_set_new(h->doms, JS(s, "name"), json_true());
		if (json_is_true(json_object_get(s, "ok")) && !(JS(s, "lease") &&
		    strcmp(JS(s, "lease"), "ok") != 0))
			json_object_set_new(h->fine, JS(s, "name"), json_true());
		/* leave: a host that reports holds its VMs (frozen) */
		if (!h->down && JS(s, "lease") && strcmp(JS(s, "lease"),
		    "lost") == 0 && strcmp(cs->ha_storage_loss_response,
		    "restart") == 0)
			json_object_set_new(h->lost, JS(s, "name"), json_true());
	}
	json_decref(info);
	pthread_mutex_lock(&fo_lock);
	if (json_object_get(fo_confirmed, h->name))
		h->confirmed = json_integer_value(json_object_get(fo_confirmed,
		    h->name));
	pthread_mutex_unlock(&fo_lock);
}

static void
fo_host_free(struct fo_host *h)
{
	json_decref(h->lost);
	json_decref(h->fine);
	json_decref(h->doms);
}

/* May host h's VMs on domain d run elsewhere now? Its lease there expired
 * (hostlease.c), the host is down or says it lost d, and a host without a
 * watchdog (kill-only, or one that does not say) was confirmed off by an
 * operator after we last saw the lease change. */
static int
fo_domain_gone(const struct fo_host *h, const char *d, int64_t now,
    const struct cluster_settings *cs, struct hlease *l)
{
	if (hlease_get(h->name, d, l) < 0 ||
	    !hlease_expired(l, now, cs->ha_lease_timeout_ms, h->fence_ms))
		return 0;
	if (!h->down && !json_object_get(h->lost, d))
		return 0;
	if (h->fence != FO_WATCHDOG && (!h->down || h->confirmed == 0 ||
	    h->confirmed <= l->first_seen))
		return 0;
	return 1;
}

/* Record (once per lease seq) that host h lost domain d. */
static void
fo_domain_fail(const struct fo_host *h, const char *d, const struct hlease *l,
    int64_t now, const struct cluster_settings *cs)
{
	json_t *row = db_row("SELECT state, fenced_seq FROM host_domains WHERE "
	    "host = ? AND storage = ?", "ss", h->name, d);
	/* A read that ended after this round's "now" is 0 s old, not -0.0. */
	int64_t fresh_ms = now > l->fresh_at ? now - l->fresh_at : 0;

	if (row && strcmp(JS(row, "state"), "fenced") == 0 &&
	    JI(row, "fenced_seq") == l->seq) {
		json_decref(row);
		return;
	}
	json_decref(row);
	db_exec("INSERT INTO host_domains (host, storage, state, lease_seq, "
	    "fenced_seq, updated) VALUES (?, ?, 'fenced', ?, ?, ?) ON CONFLICT"
	    "(host, storage) DO UPDATE SET state = 'fenced', lease_seq = "
	    "excluded.lease_seq, fenced_seq = excluded.fenced_seq, updated = "
	    "excluded.updated", "ssiii", h->name, d, l->seq, l->seq,
	    util_wall_ms());
	event_add("error", "host.domain_failed", h->name, "host %s lost storage "
	    "%s: lease seq %lld unchanged for %lld ms (timeout %d ms), read "
	    "fresh via %s %.1f s ago%s; %s", h->name, d, (long long)l->seq,
	    (long long)(now - l->first_seen), cs->ha_lease_timeout_ms, l->via,
	    (double)fresh_ms / 1000.0, h->down ? "" :
	    ", and it reports the domain lost", h->fence != FO_WATCHDOG ?
	    "an operator confirmed it is off" : "its keeper has killed its "
	    "VMs there or reset the host");
}

/* An up host whose lease on d stopped while it says d is fine: the hosts
 * see the storage differently. Restarting would run its VMs twice. */
static void
fo_views_differ(const struct fo_host *h, const char *d,
    const struct hlease *l)
{
	char key[2 * UTIL_NAME_MAX + 2];

	if (util_fmt(key, sizeof(key), "%s\x1f%s", h->name, d) < 0 ||
	    JI(fo_warned, key) == l->seq + 1)
		return;
	json_object_set_new(fo_warned, key, json_integer(l->seq + 1));
	event_add("warning", "host.storage_views_differ", h->name, "storage "
	    "views differ: host %s reports storage %s usable but its lease "
	    "there (seq %lld, read via %s) has not changed; its VMs stay",
	    h->name, d, (long long)l->seq, l->via);
}

/* Whether failing host h's gone domains changes anything: a domain not
 * yet recorded fenced at this seq, a VM whose every domain is gone (marked
 * "failed" in vms), or a down host to mark fenced. Nothing: no
 * transaction, every round, for a host fenced long ago. */
static int
fo_host_changes(const struct fo_host *h, json_t *vms, json_t *gone, int all)
{
	json_t *v, *t, *vd, *row;
	struct hlease l;
	const char *d, *k;
	size_t i;
	int changes = h->down && all && !h->fenced;

	json_object_foreach(gone, d, t) {
		if (hlease_get(h->name, d, &l) < 0)
			continue;
		row = db_row("SELECT fenced_seq FROM host_domains WHERE host = ? "
		    "AND storage = ? AND state = 'fenced'", "ss", h->name, d);
		if (row == NULL || JI(row, "fenced_seq") != l.seq)
			changes = 1;
		json_decref(row);
	}
	json_array_foreach(vms, i, v) {
		json_t *spec = vm_spec(v);
		int every = 1;

		vd = failover_vm_domains(spec);
		json_object_foreach(vd, k, t)
			if (!json_object_get(gone, k))
				every = 0;
		if (every && json_object_size(vd) > 0) {
			json_object_set_new(v, "failed", json_true());
			changes = 1;
		}
		json_decref(vd);
		json_decref(spec);
	}
	return changes;
}

/* Per domain of host h: fail what lost its storage, in one transaction:
 * the host's domains, its VMs whose every domain is gone, and the host
 * when all of them are. Restarts follow from the DB state. */
static void
fo_host_round(struct fo_host *h, int64_t now,
    const struct cluster_settings *cs)
{
	json_t *vms = NULL, *v, *gone = json_object(), *vd, *t;
	struct hlease l;
	const char *d;
	size_t i, ngone = 0, ndoms, nfailed = 0;

	/* A host that reports: only the domains it says it lost can fail, so
	 * a quiet round reads no VM rows (1,000 hosts, every 500 ms). */
	if (!h->down) {
		json_object_foreach(h->fine, d, t)
			if (hlease_get(h->name, d, &l) == 0 && hlease_expired(&l,
			    now, cs->ha_lease_timeout_ms, h->fence_ms))
				fo_views_differ(h, d, &l);
		json_object_foreach(h->lost, d, t)
			if (fo_domain_gone(h, d, now, cs, &l))
				ngone++;
		if (ngone == 0)
			goto cleanup;
		ngone = 0;
	}
	vms = db_query("SELECT name, uuid, state, spec FROM vms WHERE host = ?",
	    "s", h->name);
	json_array_foreach(vms, i, v) {
		json_t *spec = vm_spec(v);

		vd = failover_vm_domains(spec);
		json_object_update_missing(h->doms, vd);
		json_decref(vd);
		json_decref(spec);
	}
	ndoms = json_object_size(h->doms);
	json_object_foreach(h->doms, d, t)
		if (fo_domain_gone(h, d, now, cs, &l)) {
			json_object_set_new(gone, d, json_true());
			ngone++;
		}
	if (ngone == 0 || !fo_host_changes(h, vms, gone, ngone == ndoms))
		goto cleanup;
	db_begin();
	json_object_foreach(gone, d, t)
		if (hlease_get(h->name, d, &l) == 0)
			fo_domain_fail(h, d, &l, now, cs);
	json_array_foreach(vms, i, v)
		if (json_is_true(json_object_get(v, "failed"))) {
			vm_set_state(JS(v, "uuid"), "failed", NULL, 0);
			nfailed++;
		}
	if (h->down && ngone == ndoms && db_exec("UPDATE hosts SET state = "
	    "'fenced' WHERE name = ? AND state = 'down'", "s", h->name) == 1)
		event_add("error", "host.fenced", h->name, "host %s failed: no "
		    "report for %lld ms and its storage lease not renewed on %zu "
		    "domain(s) (lease timeout %d ms); %s", h->name,
		    (long long)hostmon_silence_ms(h->name), ngone,
		    cs->ha_lease_timeout_ms, h->fence != FO_WATCHDOG ?
		    "an operator confirmed it is off" : "its keeper has stopped "
		    "its VMs");
	db_commit();
	/* Test hook (docs/testing.md): a manager that dies right here must
	 * still restart these VMs once, from the DB, after its restart. Only
	 * a fence that failed a VM: a domain or host of no VM fenced first
	 * (another fault of the same test) is not the moment under test. */
	if (fo_fault_fenced && nfailed > 0)
		_exit(97);
	json_array_foreach(vms, i, v)
		if (json_is_true(json_object_get(v, "failed")))
			failover_vm_failed(JS(v, "name"), h->name, "host failed "
			    "(fenced)");
cleanup:
	json_decref(gone);
	json_decref(vms);
}

static void
fo_isolated(const char *name, json_t *iso, int64_t hb_age)
{
	json_t *t = json_object_get(fo_iso, name), *u;
	json_int_t when = JI(iso, "time");
	size_t i, n = 0;

	if (t == NULL) {
		t = json_object();
		json_object_set_new(fo_iso, name, t);
	}
	if (json_object_get(t, "iso_time") && JI(t, "iso_time") == when)
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

/* A fenced (host, domain) whose lease shows another seq: the host's keeper
 * renews there again (a new keeper, a rebuilt host), so it takes VMs on
 * that domain again. Never on a manager restart alone: the seq it learns
 * again is the fenced one. */
static void
fo_unfence(void)
{
	json_t *rows = db_query("SELECT host, storage, fenced_seq FROM "
	    "host_domains WHERE state = 'fenced'", NULL), *r;
	struct hlease l;
	size_t i;

	json_array_foreach(rows, i, r)
		if (hlease_get(JS(r, "host"), JS(r, "storage"), &l) == 0 &&
		    l.seq != JI(r, "fenced_seq") && db_exec("UPDATE host_domains "
		    "SET state = 'ok', lease_seq = ?, updated = ? WHERE host = ? "
		    "AND storage = ? AND state = 'fenced'", "iiss", l.seq,
		    util_wall_ms(), JS(r, "host"), JS(r, "storage")) == 1)
			event_add("info", "host.domain_ok", JS(r, "host"), "host %s "
			    "renews its lease on storage %s again (seq %lld)",
			    JS(r, "host"), JS(r, "storage"), (long long)l.seq);
	json_decref(rows);
}

void
failover_fence_round(void)
{
	struct cluster_settings cs;
	json_t *hosts, *row;
	int64_t now = fo_clock();
	size_t i, nup = 0;

	cluster_get(&cs);
	hosts = db_query("SELECT name, state, info, fence, timing FROM hosts",
	    NULL);
	json_array_foreach(hosts, i, row)
		if (strcmp(JS(row, "state"), "up") == 0)
			nup++;
	json_array_foreach(hosts, i, row) {
		struct fo_host h;
		size_t nvia;
		json_t *iso;

		/* An isolation record stops VMs on the word of the hosts that
		 * read it: two of them when two can (one may lie). */
		if (strcmp(JS(row, "state"), "down") == 0 &&
		    (iso = hlease_isolation(JS(row, "name"), &nvia)) != NULL) {
			if (json_is_true(json_object_get(iso, "isolated")) &&
			    nvia >= (nup >= 2 ? 2 : 1))
				fo_isolated(JS(row, "name"), iso,
				    hostmon_silence_ms(JS(row, "name")));
			json_decref(iso);
		}
		fo_host_load(row, &cs, &h);
		fo_host_round(&h, now, &cs);
		fo_host_free(&h);
	}
	json_decref(hosts);
	fo_unfence();
}

static void
fo_round(void)
{
	struct cluster_settings cs;

	if (!ha_is_leader())
		return;		/* our lease ran out: another manager may lead */
	failover_fence_round();
	cluster_get(&cs);
	fo_restart_ha_vms(&cs);
}

static void *
fo_main(void *arg)
{
	int64_t next = util_mono_ms();

	(void)arg;
	pthread_mutex_lock(&fo_lock);
	while (!fo_quit) {
		pthread_mutex_unlock(&fo_lock);
		fo_round();
		pthread_mutex_lock(&fo_lock);
		next += FO_TICK_MS;
		if (next < util_mono_ms())
			next = util_mono_ms();
		if (!fo_quit)
			(void)util_cond_wait_until(&fo_cond, &fo_lock, next);
	}
	pthread_mutex_unlock(&fo_lock);
	return NULL;
}

void
failover_init(void)
{
	json_decref(fo_iso);
	json_decref(fo_warned);
	fo_iso = json_object();
	fo_warned = json_object();
	pthread_mutex_lock(&fo_lock);
	json_decref(fo_vms);
	json_decref(fo_confirmed);
	fo_vms = json_object();
	fo_confirmed = json_object();
	pthread_mutex_unlock(&fo_lock);
}

int
failover_start(void)
{
	const char *f = getenv("CVIRT_FAULTS");

	/* Waits on the monotonic clock: a stepped wall clock changes nothing. */
	if (util_cond_init_mono(&fo_cond) != 0)
		return -1;
	fo_fault_fenced = f && strstr(f, "failover.fenced:exit") != NULL;
	if (fo_fault_fenced)
		log_warn("CVIRT_FAULTS: the manager exits (97) after its next "
		    "fence");
	failover_init();
	if (hlease_start() < 0)
		return -1;
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
	hlease_stop();
	json_decref(fo_iso);
	json_decref(fo_warned);
	fo_iso = fo_warned = NULL;
	pthread_mutex_lock(&fo_lock);
	json_decref(fo_vms);
	json_decref(fo_confirmed);
	fo_vms = fo_confirmed = NULL;
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
	/* leave: the keeper holds a lost domain's VMs while we hear it */
	json_object_set_new(reply, "ha_storage_loss_response",
	    json_string(cs.ha_storage_loss_response));
	json_object_set_new(reply, "monitor_interval_ms",
	    json_integer(cs.ha_monitor_interval_ms));
	json_object_set_new(reply, "monitor_misses",
	    json_integer(cs.ha_monitor_misses));
}

int
failover_timing_check(const char *host, const char *fence, json_t *timing,
    int64_t lease_timeout_ms, char *err, size_t errsz)
{
	json_t *f = json_object_get(timing, "fence_ms");
	json_t *t = json_object_get(timing, "tick_ms");
	json_t *w = json_object_get(timing, "watchdog_ms");
	int64_t fm = json_is_integer(f) ? json_integer_value(f) :
	    FAILOVER_FENCE_MS, tm = json_is_integer(t) ? json_integer_value(t) :
	    FAILOVER_TICK_MS, wm = json_is_integer(w) ? json_integer_value(w) :
	    FAILOVER_WATCHDOG_MS, need;
	int wd;

	if (fence == NULL)
		return 0;	/* an agent from before issue 14: as it was */
	if (strcmp(fence, "watchdog") != 0 && strcmp(fence, "kill-only") != 0) {
		snprintf(err, errsz, "host %s: fence must be watchdog or "
		    "kill-only", host ? host : "?");
		return -1;
	}
	if (fm < 0 || fm > 600000 || tm < 0 || tm > 60000 || wm < 0 ||
	    wm > 600000) {
		snprintf(err, errsz, "host %s: timing out of range (fence_ms "
		    "0..600000, tick_ms 0..60000, watchdog_ms 0..600000)",
		    host ? host : "?");
		return -1;
	}
	wd = strcmp(fence, "watchdog") == 0;
	need = fm + tm + (wd ? wm : 0) + FAILOVER_MARGIN_MS;
	if (need <= lease_timeout_ms)
		return 0;
	if (wd)
		snprintf(err, errsz, "%s%s%sfence %lld ms + tick %lld ms + watchdog "
		    "%lld ms + margin %d ms = %lld ms > lease timeout %lld ms",
		    host ? "host " : "", host ? host : "", host ? ": " : "",
		    (long long)fm, (long long)tm, (long long)wm, FAILOVER_MARGIN_MS,
		    (long long)need, (long long)lease_timeout_ms);
	else
		snprintf(err, errsz, "%s%s%sfence %lld ms + tick %lld ms + margin "
		    "%d ms = %lld ms > lease timeout %lld ms", host ? "host " :
		    "", host ? host : "", host ? ": " : "", (long long)fm,
		    (long long)tm, FAILOVER_MARGIN_MS, (long long)need,
		    (long long)lease_timeout_ms);
	return -1;
}

int
failover_timing_check_all(int64_t lease_timeout_ms, char *err, size_t errsz)
{
	json_t *rows, *r, *timing;
	size_t i;
	int rc;

	if ((rc = failover_timing_check(NULL, "watchdog", NULL,
	    lease_timeout_ms, err, errsz)) < 0)
		return -1;
	rows = db_query("SELECT name, fence, timing FROM hosts WHERE fence IS "
	    "NOT NULL", NULL);
	json_array_foreach(rows, i, r) {
		timing = JS(r, "timing") ? json_loads(JS(r, "timing"), 0, NULL) :
		    NULL;
		rc = failover_timing_check(JS(r, "name"), JS(r, "fence"), timing,
		    lease_timeout_ms, err, errsz);
		json_decref(timing);
		if (rc < 0)
			break;
	}
	json_decref(rows);
	return rc;
}

int
failover_vm_released(const char *host, json_t *spec)
{
	struct cluster_settings cs;
	struct fo_host h;
	json_t *row, *doms, *t;
	struct hlease l;
	const char *d;
	int64_t now = fo_clock();
	int gone = 1;

	cluster_get(&cs);
	if ((row = db_row("SELECT name, state, info, fence, timing FROM hosts "
	    "WHERE name = ?", "s", host)) == NULL)
		return 1;	/* no such host: nothing can run there */
	fo_host_load(row, &cs, &h);
	doms = failover_vm_domains(spec);
	if (json_object_size(doms) == 0)
		gone = 0;
	json_object_foreach(doms, d, t)
		if (!fo_domain_gone(&h, d, now, &cs, &l))
			gone = 0;
	json_decref(doms);
	fo_host_free(&h);
	json_decref(row);
	return gone;
}
