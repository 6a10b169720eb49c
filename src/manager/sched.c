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

/* A host as placement sees it, and what it carries: the VMs placed on it
 * (running or on their way). */
struct sched_host {
	char	 name[UTIL_NAME_MAX + 1];
	char	 state[16], accel[16];
	int	 maintenance;
	int64_t	 cpus, memory_mib;
	size_t	 info;		/* its info JSON text: offset in infos */
	int64_t	 mem_used, cpus_used;
	json_t	*groups;	/* affinity/anti-affinity groups present, or NULL */
	double	 load;		/* memory load with the VM there */
};

/* One allocation for the hosts and one for their info texts, whatever
 * their number: a decision at 1,000 hosts leaves no small blocks behind
 * in the heap. */
struct sched_hosts {
	struct sched_host	*h;
	size_t			 n, cap;
	char			*infos;		/* NUL-separated texts */
	size_t			 ilen, icap;
	struct sched_host	**byname;	/* sorted by strcmp, for lookups */
	int			 failed;
};

static void
sched_hosts_free(struct sched_hosts *hs)
{
	size_t i;

	for (i = 0; i < hs->n; i++)
		json_decref(hs->h[i].groups);
	free(hs->h);
	free(hs->infos);
	free(hs->byname);
}

static int64_t
sched_int(const struct db_col *c)
{
	return c->type == DB_INT ? strtoll(c->val, NULL, 10) : 0;
}

static void
sched_copy(char *dst, size_t sz, const struct db_col *c)
{
	snprintf(dst, sz, "%s", c->type == DB_NULL ? "" : c->val);
}

/* Column order of sched_hosts_load's query. */
static int
sched_host_row(void *arg, const struct db_col *c, int n)
{
	struct sched_hosts *hs = arg;
	struct sched_host *h, *p;
	const char *info = c[6].type == DB_NULL ? "{}" : c[6].val;
	size_t ilen = strlen(info) + 1;
	char *q;

	if (n != 7)
		return -1;
	if (hs->n == hs->cap) {
		hs->cap = hs->cap ? hs->cap * 2 : 1024;
		if ((p = realloc(hs->h, hs->cap * sizeof(*p))) == NULL) {
			hs->failed = 1;
			return -1;
		}
		hs->h = p;
	}
	if (hs->ilen + ilen > hs->icap) {
		for (hs->icap = hs->icap ? hs->icap : 256 * 1024;
		    hs->icap < hs->ilen + ilen; hs->icap *= 2)
			;
		if ((q = realloc(hs->infos, hs->icap)) == NULL) {
			hs->failed = 1;
			return -1;
		}
		hs->infos = q;
	}
	h = &hs->h[hs->n++];
	memset(h, 0, sizeof(*h));
	sched_copy(h->name, sizeof(h->name), &c[0]);
	sched_copy(h->state, sizeof(h->state), &c[1]);
	sched_copy(h->accel, sizeof(h->accel), &c[2]);
	h->maintenance = c[3].type == DB_INT && strcmp(c[3].val, "0") != 0;
	h->cpus = sched_int(&c[4]);
	h->memory_mib = sched_int(&c[5]);
	memcpy(hs->infos + hs->ilen, info, ilen);
	h->info = hs->ilen;
	hs->ilen += ilen;
	return 0;
}

static int
sched_cmp_name(const void *a, const void *b)
{
	return strcmp((*(struct sched_host *const *)a)->name,
	    (*(struct sched_host *const *)b)->name);
}

static struct sched_host *
sched_host_find(struct sched_hosts *hs, const char *name)
{
	struct sched_host key, *kp = &key, **f;

	if (name == NULL || hs->n == 0)
		return NULL;
	snprintf(key.name, sizeof(key.name), "%s", name);
	f = bsearch(&kp, hs->byname, hs->n, sizeof(*hs->byname),
	    sched_cmp_name);
	return f ? *f : NULL;
}

/* Every host in name order, read as columns (no JSON rows). */
static int
sched_hosts_load(struct sched_hosts *hs)
{
	size_t i;

	memset(hs, 0, sizeof(*hs));
	if (db_each("SELECT name, state, accel, maintenance, cpus, memory_mib,"
	    " info FROM hosts ORDER BY name", sched_host_row, hs, NULL) < 0 ||
	    hs->failed || (hs->byname = calloc(hs->n ? hs->n : 1,
	    sizeof(*hs->byname))) == NULL)
		return -1;
	for (i = 0; i < hs->n; i++)
		hs->byname[i] = &hs->h[i];
	qsort(hs->byname, hs->n, sizeof(*hs->byname), sched_cmp_name);
	return 0;
}

static void
sched_group_add(struct sched_host *h, json_t *spec, const char *key,
    const char *kind)
{
	const char *g = JS(spec, key);

	if (g == NULL)
		return;
	if (h->groups == NULL)
		h->groups = json_object();
	json_object_set_new(h->groups, g, json_string(kind));
}

/* Column order of sched_tally's query: host, cpus, memory_mib, spec. */
static int
sched_tally_row(void *arg, const struct db_col *c, int n)
{
	struct sched_hosts *hs = arg;
	struct sched_host *h;
	json_t *spec;

	if (n != 4 || (h = sched_host_find(hs, c[0].val)) == NULL)
		return 0;
	if (c[3].type == DB_NULL) {
		h->cpus_used += sched_int(&c[1]);
		h->mem_used += sched_int(&c[2]);
		return 0;
	}
	if ((spec = json_loadb(c[3].val, c[3].len, 0, NULL)) == NULL)
		return 0;
	h->mem_used += JI(spec, "memory_mib");
	h->cpus_used += JI(spec, "cpus");
	sched_group_add(h, spec, "affinity", "affinity");
	sched_group_add(h, spec, "anti_affinity", "anti");
	json_decref(spec);
	return 0;
}

/* Per-host sums of the VMs in no group, sorted by host name (strcmp), as
 * of db_vms_gen() == sched_cache_gen; read and written under the DB lock
 * only. Kept current by sched_move_*() around vm_set_state (the only
 * writer of vms.host), rebuilt by one GROUP BY after any other change.
 * SQLite only: there the manager is the file's one writer, while a
 * PostgreSQL database may have been written by another manager. */
struct sched_sum {
	char	name[UTIL_NAME_MAX + 1];
	int64_t	cpus, mem;
};

struct sched_sums {
	struct sched_sum	*s;
	size_t			 n, cap;
	int			 failed;
};

static struct sched_sums sched_cache;
static int sched_cache_valid;
static uint64_t sched_cache_gen;

static int
sched_cache_on(void)
{
	return strcmp(db_backend_name(), "sqlite") == 0;
}

static int
sched_cmp_sum(const void *a, const void *b)
{
	return strcmp(((const struct sched_sum *)a)->name,
	    ((const struct sched_sum *)b)->name);
}

/* Room for one more entry; -1 when out of memory. */
static int
sched_sums_grow(struct sched_sums *ss)
{
	struct sched_sum *p;
	size_t cap;

	if (ss->n < ss->cap)
		return 0;
	cap = ss->cap ? ss->cap * 2 : 1024;
	if ((p = realloc(ss->s, cap * sizeof(*p))) == NULL)
		return -1;
	ss->s = p;
	ss->cap = cap;
	return 0;
}

static int
sched_sum_row(void *arg, const struct db_col *c, int n)
{
	struct sched_sums *ss = arg;
	struct sched_sum *e;

	if (n != 3 || c[0].type == DB_NULL)
		return 0;
	if (sched_sums_grow(ss) < 0) {
		ss->failed = 1;
		return -1;
	}
	e = &ss->s[ss->n++];
	snprintf(e->name, sizeof(e->name), "%s", c[0].val);
	e->cpus = sched_int(&c[1]);
	e->mem = sched_int(&c[2]);
	return 0;
}

/* 0 when sched_cache is current (under the DB lock). */
static int
sched_cache_ready(void)
{
	struct sched_sums ss = { NULL, 0, 0, 0 };

	if (!sched_cache_on())
		return -1;
	if (sched_cache_valid && sched_cache_gen == db_vms_gen())
		return 0;
	/* Into the old array: rebuilding allocates nothing once it fits. */
	ss.s = sched_cache.s;
	ss.cap = sched_cache.cap;
	sched_cache_valid = 0;
	if (db_each("SELECT host, SUM(cpus) AS cpus, SUM(memory_mib) AS "
	    "memory_mib FROM vms WHERE grouped = 0 AND host IS NOT NULL AND "
	    "cpus IS NOT NULL AND memory_mib IS NOT NULL GROUP BY host",
	    sched_sum_row, &ss, NULL) < 0 || ss.failed) {
		sched_cache = (struct sched_sums){ ss.s, 0, ss.cap, 0 };
		return -1;
	}
	/* No running VM yet: ss.s may still be NULL, which qsort must not
	 * get (UBSan's nonnull-attribute aborts the sanitizer build). */
	if (ss.n > 1)
		qsort(ss.s, ss.n, sizeof(*ss.s), sched_cmp_sum);
	sched_cache = ss;
	sched_cache_gen = db_vms_gen();
	sched_cache_valid = 1;
	return 0;
}

static struct sched_sum *
sched_cache_find(const char *host)
{
	struct sched_sum key;

	if (host == NULL || sched_cache.n == 0 ||
	    util_fmt(key.name, sizeof(key.name), "%s", host) < 0)
		return NULL;
	return bsearch(&key, sched_cache.s, sched_cache.n,
	    sizeof(*sched_cache.s), sched_cmp_sum);
}

/* -1 when the host cannot be added (the cache is then dropped). */
static int
sched_cache_add(const char *host, int64_t cpus, int64_t mem)
{
	struct sched_sum *e;
	size_t i;

	if (host == NULL)
		return 0;
	if ((e = sched_cache_find(host)) == NULL) {
		if (strlen(host) > UTIL_NAME_MAX ||
		    sched_sums_grow(&sched_cache) < 0)
			return -1;
		for (i = 0; i < sched_cache.n &&
		    strcmp(sched_cache.s[i].name, host) < 0; i++)
			;
		memmove(&sched_cache.s[i + 1], &sched_cache.s[i],
		    (sched_cache.n - i) * sizeof(*sched_cache.s));
		e = &sched_cache.s[i];
		memset(e, 0, sizeof(*e));
		snprintf(e->name, sizeof(e->name), "%s", host);
		sched_cache.n++;
	}
	e->cpus += cpus;
	e->mem += mem;
	return 0;
}

/* A VM's row as the cache counts it: NULL when it is not counted there. */
static json_t *
sched_cache_vm(const char *uuid)
{
	json_t *row = db_row("SELECT host, cpus, memory_mib, grouped FROM vms "
	    "WHERE uuid = ?", "s", uuid);

	if (row && (!json_is_integer(json_object_get(row, "cpus")) ||
	    !json_is_integer(json_object_get(row, "memory_mib")) ||
	    !json_is_integer(json_object_get(row, "grouped")) ||
	    JI(row, "grouped") != 0)) {
		json_decref(row);
		row = NULL;
	}
	return row;
}

void
sched_move_begin(struct sched_move *mv, const char *uuid)
{
	memset(mv, 0, sizeof(*mv));
	db_hold();
	if (sched_cache_valid && sched_cache_on() &&
	    sched_cache_gen == db_vms_gen()) {
		mv->gen = sched_cache_gen;
		mv->row = sched_cache_vm(uuid);
		mv->known = 1;
	}
}

void
sched_move_end(struct sched_move *mv, const char *host)
{
	uint64_t now = db_vms_gen();

	/* Only this VM's update since mv->gen: move its size in the cache. */
	if (mv->known && sched_cache_valid && sched_cache_gen == mv->gen &&
	    now == mv->gen + 1) {
		sched_cache_gen = now;
		if (mv->row && (sched_cache_add(JS(mv->row, "host"),
		    -JI(mv->row, "cpus"), -JI(mv->row, "memory_mib")) < 0 ||
		    sched_cache_add(host, JI(mv->row, "cpus"),
		    JI(mv->row, "memory_mib")) < 0))
			sched_cache_valid = 0;
	}
	json_decref(mv->row);
	mv->row = NULL;
	db_release();
}

static void
sched_tally_cached(struct sched_hosts *hs, const char *skip_uuid)
{
	struct sched_host *h;
	json_t *self;
	size_t i;

	for (i = 0; i < sched_cache.n; i++)
		if ((h = sched_host_find(hs, sched_cache.s[i].name)) != NULL) {
			h->cpus_used += sched_cache.s[i].cpus;
			h->mem_used += sched_cache.s[i].mem;
		}
	/* The VM placed does not count against its own placement. */
	if (skip_uuid && (self = sched_cache_vm(skip_uuid)) != NULL) {
		if ((h = sched_host_find(hs, JS(self, "host"))) != NULL) {
			h->cpus_used -= JI(self, "cpus");
			h->mem_used -= JI(self, "memory_mib");
		}
		json_decref(self);
	}
}

/* What every host carries. The VMs in no group come from the cache (or
 * one GROUP BY over the vms_placement index); rows that name a group, or
 * are not yet classified, are read one by one and their specs parsed. */
static int
sched_tally(struct sched_hosts *hs, const char *skip_uuid)
{
	const char *skip = skip_uuid ? skip_uuid : "";
	int rc;

	db_hold();
	if (sched_cache_ready() == 0) {
		sched_tally_cached(hs, skip_uuid);
		rc = db_each("SELECT host, cpus, memory_mib, spec FROM vms WHERE "
		    "(grouped IS NULL OR grouped = 1) AND host IS NOT NULL AND "
		    "uuid != ?", sched_tally_row, hs, "s", skip);
	} else {
		rc = db_each("SELECT host, SUM(cpus) AS cpus, SUM(memory_mib) AS "
		    "memory_mib, NULL AS spec FROM vms WHERE grouped = 0 AND host "
		    "IS NOT NULL AND uuid != ? AND cpus IS NOT NULL AND memory_mib "
		    "IS NOT NULL GROUP BY host UNION ALL SELECT host, cpus, "
		    "memory_mib, spec FROM vms WHERE (grouped IS NULL OR grouped = "
		    "1) AND host IS NOT NULL AND uuid != ?", sched_tally_row, hs,
		    "ss", skip, skip);
	}
	db_release();
	return rc;
}

/* Is the affinity group g already placed on some other host than h? */
static int
sched_group_elsewhere(struct sched_hosts *hs, struct sched_host *h,
    const char *g)
{
	size_t k;

	for (k = 0; k < hs->n; k++)
		if (&hs->h[k] != h && json_object_get(hs->h[k].groups, g))
			return 1;
	return 0;
}

/* Why host h cannot take the VM for its state and size, or NULL. */
static const char *
sched_filter_cheap(struct sched_host *h, json_t *spec,
    const struct cluster_settings *cs, char *why, size_t whysz)
{
	const char *acc = JS(spec, "accel");
	int64_t cap = h->memory_mib * cs->mem_overcommit_pct / 100;
	int64_t cpucap = h->cpus * cs->cpu_overcommit_pct / 100;

	if (strcmp(h->state, "up") != 0)
		return snprintf(why, whysz, "%s", h->state), why;
	if (h->maintenance)
		return snprintf(why, whysz, "in maintenance"), why;
	if (acc && strcmp(acc, h->accel) != 0)
		return snprintf(why, whysz, "accel %s, the VM needs %s",
		    h->accel[0] ? h->accel : "(null)", acc), why;
	if (cap - h->mem_used < JI(spec, "memory_mib"))
		return snprintf(why, whysz, "not enough memory (need %lld MiB, "
		    "free %lld MiB)", (long long)JI(spec, "memory_mib"),
		    (long long)(cap - h->mem_used)), why;
	if (cpucap - h->cpus_used < JI(spec, "cpus"))
		return snprintf(why, whysz, "not enough vCPUs (need %lld, free "
		    "%lld)", (long long)JI(spec, "cpus"),
		    (long long)(cpucap - h->cpus_used)), why;
	return NULL;
}

/* Why host h cannot take the VM, or NULL when it can: the cheap checks,
 * then storage, networks and groups. */
static const char *
sched_filter(struct sched_hosts *hs, struct sched_host *h, json_t *spec,
    const struct cluster_settings *cs, char *why, size_t whysz)
{
	const char *st = JS(spec, "storage");
	json_t *info, *s, *row;
	size_t i;
	int has = 0;

	if (sched_filter_cheap(h, spec, cs, why, whysz))
		return why;
	info = json_loads(hs->infos + h->info, 0, NULL);
	json_array_foreach(json_object_get(info, "storage"), i, s)
		if (st && JS(s, "name") && strcmp(JS(s, "name"), st) == 0 &&
		    json_is_true(json_object_get(s, "ok")))
			has = 1;
	json_decref(info);
	if (!has)
		return snprintf(why, whysz, "no storage %s", st ? st : "?"), why;
	/* The manager fenced the host on it (docs/ha.md) and has not seen
	 * its lease renewed there since. */
	if ((row = db_row("SELECT state FROM host_domains WHERE host = ? AND "
	    "storage = ? AND state = 'fenced'", "ss", h->name, st)) != NULL) {
		json_decref(row);
		return snprintf(why, whysz, "storage %s fenced there", st), why;
	}
	if (vnet_host_check(h->name, spec, why, whysz) < 0)
		return why;
	if (JS(spec, "anti_affinity") &&
	    json_object_get(h->groups, JS(spec, "anti_affinity")))
		return snprintf(why, whysz, "anti-affinity group %s is there",
		    JS(spec, "anti_affinity")), why;
	if (JS(spec, "affinity") && !json_object_get(h->groups,
	    JS(spec, "affinity")) && sched_group_elsewhere(hs, h,
	    JS(spec, "affinity")))
		return snprintf(why, whysz, "affinity group %s runs elsewhere",
		    JS(spec, "affinity")), why;
	return NULL;
}

/* Lowest load first; equal loads in name order (the hosts array's). */
static int
sched_cmp_load(const void *a, const void *b)
{
	const struct sched_host *x = *(struct sched_host *const *)a;
	const struct sched_host *y = *(struct sched_host *const *)b;

	if (x->load != y->load)
		return x->load < y->load ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int sched_pick_one(json_t *vm, const char *want, const char *prefer,
    const char *exclude, char *out, size_t outsz, char *err, size_t errsz);

int
sched_pick(json_t *vm, const char *want, const char *exclude, char *out,
    size_t outsz, char *err, size_t errsz)
{
	return sched_place(vm, want, NULL, exclude, out, outsz, err, errsz);
}

/* Placement, timed for /metrics (cvirt_placement_duration_seconds). */
int
sched_place(json_t *vm, const char *want, const char *prefer,
    const char *exclude, char *out, size_t outsz, char *err, size_t errsz)
{
	struct timespec t0, t1;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = sched_pick_one(vm, want, prefer, exclude, out, outsz, err, errsz);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_observe(METRICS_SCHED, rc == 0 ? "placed" : "refused", "",
	    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec -
	    t0.tv_nsec) / 1e9);
	return rc;
}

/* Why the host the caller demands (want) cannot take the VM: one line
 * naming it, "not found" only when no such host is registered. */
static void
sched_want_error(struct sched_hosts *hs, json_t *vm, json_t *spec,
    const struct cluster_settings *cs, const char *want, const char *exclude,
    char *err, size_t errsz)
{
	struct sched_host *h = sched_host_find(hs, want);
	char why[160];

	if (h == NULL)
		snprintf(err, errsz, "host \"%s\" not found", want);
	else if (exclude && strcmp(exclude, want) == 0)
		snprintf(err, errsz, "host %s is excluded: vm %s failed there",
		    want, JS(vm, "name"));
	else if (strcmp(h->state, "up") != 0)
		snprintf(err, errsz, "host %s is %s", want, h->state);
	else if (h->maintenance)
		snprintf(err, errsz, "host %s is in maintenance", want);
	else if (sched_filter(hs, h, spec, cs, why, sizeof(why)) != NULL)
		snprintf(err, errsz, "no host can run vm %s: %s: %s",
		    JS(vm, "name"), want, why);	/* as without --host */
	else
		snprintf(err, errsz, "host %s cannot run vm %s", want,
		    JS(vm, "name"));
}

/* The least loaded host that passes every filter: the cheap filters and
 * the loads for all hosts, the others (info JSON, networks, groups) from
 * the least loaded candidate on until one passes. want: only that host;
 * prefer: that host first when it passes (a creation-time --host, never a
 * pin); exclude: never that host. */
static int
sched_pick_one(json_t *vm, const char *want, const char *prefer,
    const char *exclude, char *out, size_t outsz, char *err, size_t errsz)
{
	struct cluster_settings cs;
	struct sched_hosts hs;
	struct sched_host **cand = NULL, *h;
	json_t *spec;
	char why[160], reasons[1024] = "";
	size_t i, nc = 0, len = 0;
	int rc = -1, considered = 0;

	memset(&hs, 0, sizeof(hs));
	cluster_get(&cs);
	spec = vm_spec(vm);
	if (spec == NULL || sched_hosts_load(&hs) < 0 ||
	    (cand = calloc(hs.n ? hs.n : 1, sizeof(*cand))) == NULL ||
	    sched_tally(&hs, JS(vm, "uuid")) < 0) {
		snprintf(err, errsz, spec ? "cannot read the inventory" :
		    "out of memory");
		goto cleanup;
	}
	for (i = 0; i < hs.n; i++) {
		h = &hs.h[i];
		if ((want && strcmp(want, h->name) != 0) ||
		    (exclude && strcmp(exclude, h->name) == 0))
			continue;
		considered++;
		if (sched_filter_cheap(h, spec, &cs, why, sizeof(why)))
			continue;
		/* Balanced load: the lowest memory load once the VM is there. */
		h->load = (double)(h->mem_used + JI(spec, "memory_mib")) /
		    (double)(h->memory_mib ? h->memory_mib : 1);
		cand[nc++] = h;
	}
	qsort(cand, nc, sizeof(*cand), sched_cmp_load);
	/* The preferred host first, when it is a candidate that passes. */
	for (i = 0; prefer && want == NULL && i < nc && rc < 0; i++)
		if (strcmp(cand[i]->name, prefer) == 0 && sched_filter(&hs,
		    cand[i], spec, &cs, why, sizeof(why)) == NULL) {
			snprintf(out, outsz, "%s", cand[i]->name);
			rc = 0;
		}
	for (i = 0; i < nc && rc < 0; i++)
		if (sched_filter(&hs, cand[i], spec, &cs, why, sizeof(why)) ==
		    NULL) {
			snprintf(out, outsz, "%s", cand[i]->name);
			rc = 0;
		}
	if (rc < 0) {
		for (i = 0; i < hs.n; i++) {
			h = &hs.h[i];
			if ((want && strcmp(want, h->name) != 0) ||
			    (exclude && strcmp(exclude, h->name) == 0) ||
			    sched_filter(&hs, h, spec, &cs, why, sizeof(why)) ==
			    NULL)
				continue;
			int k = snprintf(reasons + len, sizeof(reasons) - len,
			    "%s%s: %s", len ? "; " : "", h->name, why);
			if (k > 0 && (size_t)k < sizeof(reasons) - len)
				len += (size_t)k;
		}
		if (want)
			sched_want_error(&hs, vm, spec, &cs, want, exclude, err,
			    errsz);
		else if (considered == 0)
			snprintf(err, errsz, "no other host is registered");
		else
			snprintf(err, errsz, "no host can run vm %s: %s", JS(vm,
			    "name"), reasons);
	}
cleanup:
	sched_hosts_free(&hs);
	free(cand);
	json_decref(spec);
	return rc;
}

/* Whether another host could restart the VM now: up, seeing its storage
 * (and not fenced there), with room and its networks, by the filters of
 * placement (the VM not counted against its own host). Not protected:
 * one line per other host saying why not. New reference:
 * {"protected": B, "protection_reasons": [..]}. */
json_t *
sched_protection(json_t *vm)
{
	struct cluster_settings cs;
	struct sched_hosts hs;
	struct sched_host *h;
	json_t *spec, *reasons = json_array();
	const char *cur = JS(vm, "host");
	char why[160], line[UTIL_NAME_MAX + 200];
	size_t i;
	int ok = 0, others = 0;

	memset(&hs, 0, sizeof(hs));
	cluster_get(&cs);
	spec = vm_spec(vm);
	if (spec == NULL || sched_hosts_load(&hs) < 0 ||
	    sched_tally(&hs, JS(vm, "uuid")) < 0) {
		json_array_append_new(reasons, json_string("cannot read the "
		    "inventory"));
		goto cleanup;
	}
	for (i = 0; i < hs.n && !ok; i++) {
		h = &hs.h[i];
		if (cur && strcmp(cur, h->name) == 0)
			continue;
		others++;
		if (sched_filter(&hs, h, spec, &cs, why, sizeof(why)) == NULL) {
			ok = 1;
			continue;
		}
		snprintf(line, sizeof(line), "%s: %s", h->name, why);
		json_array_append_new(reasons, json_string(line));
	}
	if (ok)
		json_array_clear(reasons);
	else if (others == 0)
		json_array_append_new(reasons, json_string(cur ? "no other host "
		    "is registered" : "no host is registered"));
cleanup:
	sched_hosts_free(&hs);
	json_decref(spec);
	return json_pack("{s:b, s:o}", "protected", ok, "protection_reasons",
	    reasons);
}

json_t *
sched_loads(void)
{
	struct sched_hosts hs;
	json_t *out = json_array();
	size_t i;

	if (sched_hosts_load(&hs) == 0 && sched_tally(&hs, NULL) == 0)
		for (i = 0; i < hs.n; i++)
			json_array_append_new(out, json_pack("{s:s, s:s, s:b, "
			    "s:I, s:I, s:I}", "name", hs.h[i].name, "state",
			    hs.h[i].state, "maintenance", hs.h[i].maintenance,
			    "memory_mib", (json_int_t)hs.h[i].memory_mib,
			    "mem_used_mib", (json_int_t)hs.h[i].mem_used,
			    "cpus_used", (json_int_t)hs.h[i].cpus_used));
	sched_hosts_free(&hs);
	return out;
}
