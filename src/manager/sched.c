/* sched.c - placement: filter the hosts that can run a VM, then score them
 * (balanced memory load by default). Affinity groups keep VMs together,
 * anti-affinity groups keep them apart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

/* What one host carries: the VMs placed on it (running or on their way). */
struct sched_host {
	json_t	*row;
	int64_t	 mem_used, cpus_used;
	json_t	*groups;	/* affinity/anti-affinity groups present */
};

/* At 20,000 VMs this runs in milliseconds: sizes come from the vms.cpus
 * and vms.memory_mib columns, and only specs that may name a group (or
 * rows without the columns) are parsed. */
static void
sched_tally(struct sched_host *hs, size_t n, const char *skip_uuid)
{
	json_t *vms, *v, *byname = json_object();
	size_t i, k;

	for (k = 0; k < n; k++)
		json_object_set_new(byname, JS(hs[k].row, "name"),
		    json_integer((json_int_t)k));
	/* VMs in no group summed per host from the vms_placement index
	 * alone; the others (or rows not yet classified) one by one. */
	vms = db_query("SELECT host, SUM(cpus) AS cpus, SUM(memory_mib) AS "
	    "memory_mib, NULL AS spec FROM vms WHERE grouped = 0 AND host IS "
	    "NOT NULL AND uuid != ? AND cpus IS NOT NULL AND memory_mib IS NOT "
	    "NULL GROUP BY host UNION ALL SELECT host, cpus, memory_mib, spec "
	    "FROM vms WHERE (grouped IS NULL OR grouped = 1) AND host IS NOT "
	    "NULL AND uuid != ?", "ss",
	    skip_uuid ? skip_uuid : "", skip_uuid ? skip_uuid : "");
	json_array_foreach(vms, i, v) {
		json_t *spec = NULL, *idx = json_object_get(byname, JS(v, "host"));

		if (idx == NULL)
			continue;
		k = (size_t)json_integer_value(idx);
		if (JS(v, "spec") == NULL) {
			hs[k].mem_used += JI(v, "memory_mib");
			hs[k].cpus_used += JI(v, "cpus");
			continue;
		}
		if ((spec = vm_spec(v)) == NULL)
			continue;
		hs[k].mem_used += JI(spec, "memory_mib");
		hs[k].cpus_used += JI(spec, "cpus");
		if (JS(spec, "affinity"))
			json_object_set_new(hs[k].groups, JS(spec, "affinity"),
			    json_string("affinity"));
		if (JS(spec, "anti_affinity"))
			json_object_set_new(hs[k].groups, JS(spec, "anti_affinity"),
			    json_string("anti"));
		json_decref(spec);
	}
	json_decref(vms);
	json_decref(byname);
}

/* Is the affinity group g already placed on some other host than h? */
static int
sched_group_elsewhere(struct sched_host *hs, size_t n, size_t h, const char *g)
{
	size_t k;

	for (k = 0; k < n; k++)
		if (k != h && json_object_get(hs[k].groups, g))
			return 1;
	return 0;
}

/* Why host h cannot take the VM, or NULL when it can. */
static const char *
sched_filter(struct sched_host *hs, size_t n, size_t h, json_t *spec,
    const struct cluster_settings *cs, char *why, size_t whysz)
{
	json_t *row = hs[h].row, *info, *s;
	const char *st = JS(spec, "storage"), *acc = JS(spec, "accel");
	int64_t cap = JI(row, "memory_mib") * cs->mem_overcommit_pct / 100;
	int64_t cpucap = JI(row, "cpus") * cs->cpu_overcommit_pct / 100;
	size_t i;
	int has = 0;

	if (strcmp(JS(row, "state"), "up") != 0)
		return snprintf(why, whysz, "%s", JS(row, "state")), why;
	if (JI(row, "maintenance"))
		return snprintf(why, whysz, "in maintenance"), why;
	if (acc && strcmp(acc, JS(row, "accel") ? JS(row, "accel") : "") != 0)
		return snprintf(why, whysz, "accel %s, the VM needs %s",
		    JS(row, "accel"), acc), why;
	if (cap - hs[h].mem_used < JI(spec, "memory_mib"))
		return snprintf(why, whysz, "not enough memory (need %lld MiB, "
		    "free %lld MiB)", (long long)JI(spec, "memory_mib"),
		    (long long)(cap - hs[h].mem_used)), why;
	if (cpucap - hs[h].cpus_used < JI(spec, "cpus"))
		return snprintf(why, whysz, "not enough vCPUs (need %lld, free "
		    "%lld)", (long long)JI(spec, "cpus"),
		    (long long)(cpucap - hs[h].cpus_used)), why;
	info = json_loads(JS(row, "info") ? JS(row, "info") : "{}", 0, NULL);
	json_array_foreach(json_object_get(info, "storage"), i, s)
		if (st && JS(s, "name") && strcmp(JS(s, "name"), st) == 0 &&
		    json_is_true(json_object_get(s, "ok")))
			has = 1;
	json_decref(info);
	if (!has)
		return snprintf(why, whysz, "no storage %s", st ? st : "?"), why;
	if (vnet_host_check(JS(row, "name"), spec, why, whysz) < 0)
		return why;
	if (JS(spec, "anti_affinity") &&
	    json_object_get(hs[h].groups, JS(spec, "anti_affinity")))
		return snprintf(why, whysz, "anti-affinity group %s is there",
		    JS(spec, "anti_affinity")), why;
	if (JS(spec, "affinity") && !json_object_get(hs[h].groups,
	    JS(spec, "affinity")) && sched_group_elsewhere(hs, n, h,
	    JS(spec, "affinity")))
		return snprintf(why, whysz, "affinity group %s runs elsewhere",
		    JS(spec, "affinity")), why;
	return NULL;
}

static int sched_pick_one(json_t *vm, const char *want, const char *exclude,
    char *out, size_t outsz, char *err, size_t errsz);

/* Placement, timed for /metrics (cvirt_placement_duration_seconds). */
int
sched_pick(json_t *vm, const char *want, const char *exclude, char *out,
    size_t outsz, char *err, size_t errsz)
{
	struct timespec t0, t1;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = sched_pick_one(vm, want, exclude, out, outsz, err, errsz);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_observe(METRICS_SCHED, rc == 0 ? "placed" : "refused", "",
	    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec -
	    t0.tv_nsec) / 1e9);
	return rc;
}

static int
sched_pick_one(json_t *vm, const char *want, const char *exclude, char *out,
    size_t outsz, char *err, size_t errsz)
{
	struct cluster_settings cs;
	struct sched_host *hs = NULL;
	json_t *hosts, *spec;
	char why[160], reasons[1024] = "";
	double best = 1e18;
	size_t i, n, len = 0;
	int rc = -1, considered = 0;

	cluster_get(&cs);
	spec = vm_spec(vm);
	hosts = db_query("SELECT * FROM hosts ORDER BY name", NULL);
	n = json_array_size(hosts);
	if (spec == NULL || (hs = calloc(n ? n : 1, sizeof(*hs))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		hs[i].row = json_array_get(hosts, i);
		hs[i].groups = json_object();
	}
	sched_tally(hs, n, JS(vm, "uuid"));
	for (i = 0; i < n; i++) {
		const char *name = JS(hs[i].row, "name");
		double load;

		if ((want && strcmp(want, name) != 0) ||
		    (exclude && strcmp(exclude, name) == 0))
			continue;
		considered++;
		if (sched_filter(hs, n, i, spec, &cs, why, sizeof(why))) {
			int k = snprintf(reasons + len, sizeof(reasons) - len,
			    "%s%s: %s", len ? "; " : "", name, why);
			if (k > 0 && (size_t)k < sizeof(reasons) - len)
				len += (size_t)k;
			continue;
		}
		/* Balanced load: the lowest memory load once the VM is there. */
		load = (double)(hs[i].mem_used + JI(spec, "memory_mib")) /
		    (double)(JI(hs[i].row, "memory_mib") ?
		    JI(hs[i].row, "memory_mib") : 1);
		if (load < best) {
			best = load;
			snprintf(out, outsz, "%s", name);
			rc = 0;
		}
	}
	if (rc < 0) {
		if (want && considered == 0)
			snprintf(err, errsz, "host %s not found", want);
		else if (considered == 0)
			snprintf(err, errsz, "no other host is registered");
		else
			snprintf(err, errsz, "no host can run vm %s: %s", JS(vm,
			    "name"), reasons);
	}
cleanup:
	for (i = 0; hs && i < n; i++)
		json_decref(hs[i].groups);
	free(hs);
	json_decref(hosts);
	json_decref(spec);
	return rc;
}

json_t *
sched_loads(void)
{
	struct sched_host *hs;
	json_t *hosts = db_query("SELECT * FROM hosts ORDER BY name", NULL);
	json_t *out = json_array();
	size_t i, n = json_array_size(hosts);

	if ((hs = calloc(n ? n : 1, sizeof(*hs))) == NULL)
		goto cleanup;
	for (i = 0; i < n; i++) {
		hs[i].row = json_array_get(hosts, i);
		hs[i].groups = json_object();
	}
	sched_tally(hs, n, NULL);
	for (i = 0; i < n; i++) {
		json_array_append_new(out, json_pack("{s:s, s:s, s:b, s:I, s:I, "
		    "s:I}", "name", JS(hs[i].row, "name"), "state",
		    JS(hs[i].row, "state"), "maintenance",
		    JI(hs[i].row, "maintenance") != 0, "memory_mib",
		    (json_int_t)JI(hs[i].row, "memory_mib"), "mem_used_mib",
		    (json_int_t)hs[i].mem_used, "cpus_used",
		    (json_int_t)hs[i].cpus_used));
		json_decref(hs[i].groups);
	}
	free(hs);
cleanup:
	json_decref(hosts);
	return out;
}
