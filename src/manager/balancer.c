/* balancer.c - DRS-like load balancing: when hosts' memory load differs
 * beyond a threshold, propose (advise) or perform (automatic) the move that
 * narrows the gap most; never the same VM twice within a cooldown; every
 * decision explained in the event log. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

static pthread_t bal_thread;
static pthread_mutex_t bal_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bal_cond;	/* CLOCK_MONOTONIC (balancer_start) */
static pthread_once_t bal_cond_once = PTHREAD_ONCE_INIT;

static void
bal_cond_init(void)
{
	if (util_cond_init_mono(&bal_cond) != 0)
		abort();	/* only with a broken libc */
}
static int bal_quit;
static json_t *bal_moved;	/* vm name -> mono ms of its last move */
static char bal_last_advice[512];

static double
bal_load(json_t *h)
{
	int64_t cap = JI(h, "memory_mib");

	return cap > 0 ? (double)JI(h, "mem_used_mib") / (double)cap : 0.0;
}

/* Choose the VM on `from` whose move to `to` leaves the smallest gap. */
static json_t *
bal_choose(json_t *from, json_t *to, int64_t cooldown_ms)
{
	json_t *vms, *v, *best = NULL;
	double lf = bal_load(from), lt = bal_load(to), best_gap = lf - lt;
	int64_t now = util_mono_ms();
	size_t i;

	vms = db_query("SELECT * FROM vms WHERE host = ? AND state = 'running' "
	    "AND task_id IS NULL ORDER BY name", "s", JS(from, "name"));
	json_array_foreach(vms, i, v) {
		json_t *spec = vm_spec(v), *last;
		double mem, gap;

		if (spec == NULL)
			continue;
		mem = (double)JI(spec, "memory_mib");
		last = json_object_get(bal_moved, JS(v, "name"));
		/* Pinned VMs and VMs moved recently stay where they are. */
		if (JS(spec, "host") || (last && now - json_integer_value(last) <
		    cooldown_ms)) {
			json_decref(spec);
			continue;
		}
		gap = (lf - mem / (double)JI(from, "memory_mib")) -
		    (lt + mem / (double)JI(to, "memory_mib"));
		if (gap < 0)
			gap = -gap;
		if (gap < best_gap) {
			best_gap = gap;
			json_decref(best);
			best = json_incref(v);
		}
		json_decref(spec);
	}
	json_decref(vms);
	return best;
}

static void
bal_round(const struct cluster_settings *cs)
{
	json_t *loads = sched_loads(), *h, *from = NULL, *to = NULL, *vm = NULL;
	char advice[512], dest[UTIL_NAME_MAX + 1], err[512];
	size_t i;

	json_array_foreach(loads, i, h) {
		if (strcmp(JS(h, "state"), "up") != 0 ||
		    json_is_true(json_object_get(h, "maintenance")))
			continue;
		if (from == NULL || bal_load(h) > bal_load(from))
			from = h;
		if (to == NULL || bal_load(h) < bal_load(to))
			to = h;
	}
	if (from == NULL || from == to ||
	    (bal_load(from) - bal_load(to)) * 100.0 < cs->balancer_threshold_pct)
		goto cleanup;
	vm = bal_choose(from, to, (int64_t)cs->balancer_cooldown_s * 1000);
	if (vm == NULL || sched_pick(vm, JS(to, "name"), JS(from, "name"), dest,
	    sizeof(dest), err, sizeof(err)) < 0)
		goto cleanup;
	snprintf(advice, sizeof(advice), "move vm %s from %s (memory load %.0f%%)"
	    " to %s (%.0f%%): the difference exceeds %d%%", JS(vm, "name"),
	    JS(from, "name"), bal_load(from) * 100, dest, bal_load(to) * 100,
	    cs->balancer_threshold_pct);
	if (strcmp(cs->balancer_mode, "advise") == 0) {
		if (strcmp(advice, bal_last_advice) != 0)
			event_add("info", "balancer.advice", JS(vm, "name"),
			    "balancer advises: %s", advice);
		snprintf(bal_last_advice, sizeof(bal_last_advice), "%s", advice);
	} else {
		json_t *p = json_pack("{s:s, s:s}", "to", dest, "reason",
		    "balancer");
		if (task_submit("vm.migrate", JS(vm, "name"), p, "balancer", err,
		    sizeof(err)) >= 0) {
			json_object_set_new(bal_moved, JS(vm, "name"),
			    json_integer(util_mono_ms()));
			event_add("info", "balancer.move", JS(vm, "name"),
			    "balancer: %s", advice);
		}
		json_decref(p);
	}
cleanup:
	json_decref(vm);
	json_decref(loads);
}

static void *
bal_main(void *arg)
{
	struct cluster_settings cs;
	int64_t next = 0;

	(void)arg;
	pthread_mutex_lock(&bal_lock);
	while (!bal_quit) {
		pthread_mutex_unlock(&bal_lock);
		cluster_get(&cs);
		if (strcmp(cs.balancer_mode, "off") != 0 && util_mono_ms() >= next &&
		    ha_is_leader()) {
			bal_round(&cs);
			next = util_mono_ms() + (int64_t)cs.balancer_interval_s * 1000;
		}
		pthread_mutex_lock(&bal_lock);
		if (!bal_quit)
			(void)util_cond_wait_until(&bal_cond, &bal_lock,
			    util_mono_ms() + 250);
	}
	pthread_mutex_unlock(&bal_lock);
	return NULL;
}

int
balancer_start(void)
{
	bal_moved = json_object();
	pthread_once(&bal_cond_once, bal_cond_init);
	return pthread_create(&bal_thread, NULL, bal_main, NULL) == 0 ? 0 : -1;
}

void
balancer_stop(void)
{
	pthread_mutex_lock(&bal_lock);
	bal_quit = 1;
	pthread_cond_signal(&bal_cond);
	pthread_mutex_unlock(&bal_lock);
	pthread_join(bal_thread, NULL);
	json_decref(bal_moved);
	bal_moved = NULL;
}
