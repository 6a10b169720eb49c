/* domwatch.c - one thread per storage domain does the agent's periodic
 * storage I/O there, so that a hung domain blocks that thread and nothing
 * else (docs/concurrency.md).
 *
 * Every 500 ms each thread checks its domain (store_domain_check: there,
 * vms/ writable, its space) into a cache, reads every host's lease record
 * into a snapshot, runs the jobs others submitted (the isolation record);
 * once at start it probes O_DIRECT. Each resolves the domain's path once
 * and the rest relative to it (store.c, leasefile.c). The serial logs
 * have threads of their own (serialcopy.c). The report and HTTP threads
 * read the cache only. A domain does not answer when a storage call of
 * its thread has been under way for over 3000 ms (the keeper's default
 * fence delay: a silence it would fence on): requests that need it then
 * fail at once (503) instead of waiting on it; one that comes while a
 * call has been under way for 1500 ms waits for that call, up to the
 * bound. Slow storage, each call under the bound,
 * still answers: on a GlusterFS volume beside busy guests a lease read
 * took 1.0-1.7 s, and the age of the last check, the bound before,
 * counted the round's other calls and its pause as silence (a 503 for
 * `vm serial`, in CI). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "storage/store.h"

#define DW_PERIOD_MS		500	/* one round per domain */
#define DW_STALE_MS		3000	/* a call under way longer: no answer */
#define DW_SLOW_MS		1500	/* a call this long is logged */
#define DW_PROBE_WAIT_MS	2000	/* start-up waits for the probes */

#define DW_JOB_ISO_WRITE	1
#define DW_JOB_ISO_CLEAR	2

struct dw_dom {
	int		 idx;		/* agent_cfg.storage[idx] */
	/* under dw_lock */
	int		 probed;	/* the O_DIRECT probe has ended */
	int		 checked;	/* a check has ended */
	int		 ok;
	char		 error[192];
	uint64_t	 total, avail;
	int64_t		 busy_since;	/* start of the call under way, or 0 */
	const char	*busy_what;	/* what that call is */
	json_t		*leases;	/* the last snapshot, or NULL */
	char		 lease_err[192];
	int64_t		 read_start, read_ms;
	int		 jobs;		/* DW_JOB_* */
	json_t		*iso;		/* the isolation record to write */
};

static pthread_mutex_t dw_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dw_cond;		/* CLOCK_MONOTONIC */
static struct dw_dom dw[AGENT_MAX_STORAGE];
static int dw_n;

static struct dw_dom *
dw_find(const char *name)
{
	int i;

	for (i = 0; name && i < dw_n; i++)
		if (strcmp(agent_cfg.storage[i].name, name) == 0)
			return &dw[i];
	return NULL;
}

/* The thread starts (what != NULL) or ends a storage call on d. An end
 * wakes the requests waiting in dw_wait; one that took DW_SLOW_MS or more
 * is logged, the sign of a slow domain before it stops answering. */
static void
dw_busy(struct dw_dom *d, const char *what)
{
	int64_t now = util_mono_ms(), took = 0;
	const char *was;

	pthread_mutex_lock(&dw_lock);
	was = d->busy_what;
	if (what == NULL && d->busy_since != 0)
		took = now - d->busy_since;
	d->busy_since = what ? now : 0;
	d->busy_what = what;
	if (what == NULL)
		pthread_cond_broadcast(&dw_cond);
	pthread_mutex_unlock(&dw_lock);
	if (took >= DW_SLOW_MS)
		log_warnx("storage %s: %s took %lld ms on host %s",
		    agent_cfg.storage[d->idx].name, was ? was : "a call",
		    (long long)took, agent_cfg.name);
}

/* Wait (dw_lock held) while the call of d under way at entry, already
 * slow (DW_SLOW_MS), goes on, until it has for DW_STALE_MS: what a
 * request then reads of d is an answer or a silence, not a hang caught
 * in its first seconds. A call under way for less is not waited for: on
 * a busy volume one is under way most of the time, and every request
 * would take as long as the storage's round. The calls after it are not
 * waited for: the wait is bounded by one call's. */
static void
dw_wait(struct dw_dom *d)
{
	int64_t since = d->busy_since;

	if (since == 0 || util_mono_ms() - since < DW_SLOW_MS)
		return;
	while (d->busy_since == since && util_cond_wait_until(&dw_cond,
	    &dw_lock, since + DW_STALE_MS + 1) == 0)
		;
}

/* How long d's call under way has been (dw_lock held), or 0. */
static int64_t
dw_silent_ms(const struct dw_dom *d, int64_t now)
{
	return d->busy_since != 0 ? now - d->busy_since : 0;
}

static void
dw_probe(struct dw_dom *d)
{
	const struct agent_storage *st = &agent_cfg.storage[d->idx];
	char err[192];
	int r;

	dw_busy(d, "the O_DIRECT probe");
	r = store_domain_probe_direct(st->path, agent_cfg.name, err,
	    sizeof(err));
	dw_busy(d, NULL);
	if (r == 1)
		log_info("storage %s: O_DIRECT works: VM disks there bypass "
		    "the page cache", st->name);
	else
		log_warnx("storage %s: %s: VMs there use the page cache; a "
		    "fence there waits for a flush", st->name, err);
	pthread_mutex_lock(&dw_lock);
	d->probed = r == 1 ? 2 : 1;	/* 2: direct */
	pthread_cond_broadcast(&dw_cond);
	pthread_mutex_unlock(&dw_lock);
}

static void
dw_check(struct dw_dom *d)
{
	const struct agent_storage *st = &agent_cfg.storage[d->idx];
	uint64_t total = 0, avail = 0;
	char err[192];
	int ok;

	dw_busy(d, "the check");
	ok = store_domain_check(st->path, &total, &avail, err,
	    sizeof(err)) == 0;
	dw_busy(d, NULL);
	pthread_mutex_lock(&dw_lock);
	d->checked = 1;
	d->ok = ok;
	snprintf(d->error, sizeof(d->error), "%s", ok ? "" : err);
	d->total = total;
	d->avail = avail;
	pthread_mutex_unlock(&dw_lock);
}

static void
dw_read_leases(struct dw_dom *d)
{
	char err[192] = "";
	int64_t t0, t1;
	json_t *l;

	dw_busy(d, "the lease read");
	t0 = util_mono_ms();
	l = lease_read_all(agent_cfg.storage[d->idx].path, err, sizeof(err));
	t1 = util_mono_ms();
	dw_busy(d, NULL);

	pthread_mutex_lock(&dw_lock);
	if (l != NULL) {
		json_decref(d->leases);
		d->leases = l;
		d->read_start = t0;
		d->read_ms = t1 - t0;
		d->lease_err[0] = '\0';
	} else {
		snprintf(d->lease_err, sizeof(d->lease_err), "%s", err);
	}
	pthread_mutex_unlock(&dw_lock);
}

static void
dw_jobs(struct dw_dom *d)
{
	const char *root = agent_cfg.storage[d->idx].path;
	json_t *iso;
	int jobs;

	pthread_mutex_lock(&dw_lock);
	jobs = d->jobs;
	iso = d->iso;
	d->jobs = 0;
	d->iso = NULL;
	pthread_mutex_unlock(&dw_lock);
	if (jobs)
		dw_busy(d, "the isolation record");
	if ((jobs & DW_JOB_ISO_WRITE) && lease_isolation_write(root, iso) < 0)
		log_warn("storage %s: cannot record the isolation",
		    agent_cfg.storage[d->idx].name);
	if (jobs & DW_JOB_ISO_CLEAR)
		lease_isolation_remove(root);
	if (jobs)
		dw_busy(d, NULL);
	json_decref(iso);
}

static void *
dw_main(void *arg)
{
	struct dw_dom *d = arg;
	int64_t t0;

	dw_probe(d);
	for (;;) {
		t0 = util_mono_ms();
		dw_check(d);
		dw_read_leases(d);
		dw_jobs(d);
		pthread_mutex_lock(&dw_lock);
		while (d->jobs == 0 && util_cond_wait_until(&dw_cond, &dw_lock,
		    t0 + DW_PERIOD_MS) == 0)
			;
		pthread_mutex_unlock(&dw_lock);
	}
	return NULL;
}

int
domwatch_start(void)
{
	int64_t deadline = util_mono_ms() + DW_PROBE_WAIT_MS;
	pthread_attr_t attr;
	pthread_t t;
	int i, pending;

	if (util_cond_init_mono(&dw_cond) != 0)
		return -1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (i = 0; i < agent_cfg.nstorage; i++) {
		dw[i].idx = i;
		/* Nobody joins these: a hung one must not stop the agent. */
		if (pthread_create(&t, &attr, dw_main, &dw[i]) != 0) {
			pthread_attr_destroy(&attr);
			return -1;
		}
		dw_n = i + 1;
	}
	pthread_attr_destroy(&attr);
	if (serialcopy_start() < 0)
		return -1;
	/* What the probes say goes to the keeper's configuration and to
	 * every QEMU started later: decided once, here. */
	pthread_mutex_lock(&dw_lock);
	for (;;) {
		for (pending = 0, i = 0; i < dw_n; i++)
			pending += dw[i].probed == 0;
		if (pending == 0 || util_cond_wait_until(&dw_cond, &dw_lock,
		    deadline) != 0)
			break;
	}
	for (i = 0; i < dw_n; i++) {
		agent_cfg.storage[i].direct = dw[i].probed == 2;
		if (dw[i].probed == 0)
			log_warnx("storage %s: the O_DIRECT probe has not ended "
			    "in %d ms: VMs there use the page cache",
			    agent_cfg.storage[i].name, DW_PROBE_WAIT_MS);
	}
	pthread_mutex_unlock(&dw_lock);
	return 0;
}

/* Is d usable now (dw_lock held)? -1 with why in err. */
static int
dw_usable(struct dw_dom *d, int64_t now, char *err, size_t errsz)
{
	const char *name = agent_cfg.storage[d->idx].name;

	if (!d->checked) {
		snprintf(err, errsz, "storage %s has not answered on host %s "
		    "since the agent started", name, agent_cfg.name);
		return -1;
	}
	if (dw_silent_ms(d, now) > DW_STALE_MS) {
		snprintf(err, errsz, "storage %s does not answer on host %s "
		    "(for %lld ms)", name, agent_cfg.name,
		    (long long)dw_silent_ms(d, now));
		return -1;
	}
	if (!d->ok) {
		snprintf(err, errsz, "%s", d->error);
		return -1;
	}
	return 0;
}

int
domwatch_ok(const char *name, char *err, size_t errsz)
{
	struct dw_dom *d = dw_find(name);
	int rc;

	if (d == NULL) {
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    name ? name : "(none)", agent_cfg.name);
		return -1;
	}
	pthread_mutex_lock(&dw_lock);
	dw_wait(d);
	rc = dw_usable(d, util_mono_ms(), err, errsz);
	pthread_mutex_unlock(&dw_lock);
	return rc;
}

int
domwatch_ready(json_t *spec, char *err, size_t errsz)
{
	unsigned mask;
	int i;

	if (vmhost_domains(spec, &mask, err, errsz) < 0)
		return -1;
	for (i = 0; i < agent_cfg.nstorage; i++)
		if ((mask & (1u << i)) && domwatch_ok(agent_cfg.storage[i].name,
		    err, errsz) < 0)
			return -1;
	return 0;
}

json_t *
domwatch_storage_json(void)
{
	json_t *out = json_array();
	int64_t now = util_mono_ms();
	char err[256];
	int i, ok;

	pthread_mutex_lock(&dw_lock);
	for (i = 0; out && i < dw_n; i++) {
		ok = dw_usable(&dw[i], now, err, sizeof(err)) == 0;
		json_array_append_new(out, json_pack("{s:s, s:s, s:b, s:s, s:b, "
		    "s:I, s:I}", "name", agent_cfg.storage[i].name, "path",
		    agent_cfg.storage[i].path, "ok", ok, "error", ok ? "" : err,
		    "direct", agent_cfg.storage[i].direct, "total_bytes",
		    (json_int_t)dw[i].total, "free_bytes",
		    (json_int_t)dw[i].avail));
	}
	pthread_mutex_unlock(&dw_lock);
	return out;
}

json_t *
domwatch_leases(const char *name, char *err, size_t errsz, int *status)
{
	struct dw_dom *d = dw_find(name);
	int64_t age, now;
	json_t *out = NULL;

	if (d == NULL) {
		snprintf(err, errsz, "unknown storage");
		*status = 400;
		return NULL;
	}
	*status = 503;
	/* No wait: the manager's read has a deadline of its own (1000 ms)
	 * and dates what it gets by its age, so an older snapshot only makes
	 * it later, never wrong (docs/ha.md). */
	pthread_mutex_lock(&dw_lock);
	now = util_mono_ms();
	age = now - d->read_start;
	if (d->leases == NULL)
		snprintf(err, errsz, "storage %s: %s", name, d->lease_err[0] ?
		    d->lease_err : "its leases have not been read yet");
	else if (dw_silent_ms(d, now) > DW_STALE_MS)
		snprintf(err, errsz, "storage %s: lease read stalled for %lld ms",
		    name, (long long)age);
	else
		out = json_pack("{s:O, s:I, s:I}", "leases", d->leases,
		    "read_start_age_ms", (json_int_t)age, "read_ms",
		    (json_int_t)d->read_ms);
	pthread_mutex_unlock(&dw_lock);
	if (out)
		*status = 200;
	return out;
}

/* Queue job (with rec, borrowed, for a write) on every domain. */
static void
dw_submit(int job, json_t *rec)
{
	int i;

	pthread_mutex_lock(&dw_lock);
	for (i = 0; i < dw_n; i++) {
		if (job == DW_JOB_ISO_WRITE) {
			json_decref(dw[i].iso);
			dw[i].iso = json_incref(rec);
			dw[i].jobs &= ~DW_JOB_ISO_CLEAR;
		} else {
			json_decref(dw[i].iso);
			dw[i].iso = NULL;
			dw[i].jobs &= ~DW_JOB_ISO_WRITE;
		}
		dw[i].jobs |= job;
	}
	pthread_cond_broadcast(&dw_cond);
	pthread_mutex_unlock(&dw_lock);
}

void
domwatch_isolation(json_t *stopped)
{
	json_t *rec = json_pack("{s:s, s:b, s:O, s:I}", "host", agent_cfg.name,
	    "isolated", 1, "stopped", stopped, "time",
	    (json_int_t)util_wall_ms());

	if (rec == NULL) {
		log_warnx("cannot record the isolation: out of memory");
		return;
	}
	dw_submit(DW_JOB_ISO_WRITE, rec);
	json_decref(rec);
}

void
domwatch_isolation_clear(void)
{
	dw_submit(DW_JOB_ISO_CLEAR, NULL);
}
