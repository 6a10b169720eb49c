/* hostlease.c - storage leases per (host, domain), as the manager sees
 * them: one reader thread per storage domain asks an up host that sees the
 * domain for every lease on it (a different host each round), and dates
 * what it learns by this manager's monotonic clock *after* the read
 * returns, never by an agent's wall clock (docs/ha.md, "Timing"). The
 * failover thread decides from this table without any I/O. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))

#define HL_POLL_MS	500	/* between reads of one domain */
#define HL_TRIES	3	/* hosts asked per round, until one answers */
#define HL_MAX_DOMAINS	64

struct hl_entry {
	char		host[UTIL_NAME_MAX + 1];
	char		domain[UTIL_NAME_MAX + 1];
	struct hlease	l;
};

struct hl_reader {
	char		domain[UTIL_NAME_MAX + 1];
	pthread_t	thread;
	unsigned	next;	/* round robin over the domain's hosts */
};

static pthread_mutex_t hl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hl_cond;
static int hl_quit, hl_running;
static pthread_t hl_thread;
/* Under hl_lock: the table (hl_idx: "host\x1fdomain" -> index), the last
 * isolation record per host, the hosts that may read each domain. */
static struct hl_entry *hl_tab;
static size_t hl_n, hl_cap;
static json_t *hl_idx, *hl_iso, *hl_cands;
/* Owned by the supervisor thread (hl_main); joined at stop. */
static struct hl_reader hl_readers[HL_MAX_DOMAINS];
static size_t hl_nreaders;

void
hlease_observe(struct hlease *l, int present, int64_t seq, int64_t sent,
    int64_t arrived, int64_t read_start_age_ms, int64_t read_ms)
{
	/* The earliest moment the storage read can have happened. */
	int64_t start = sent - read_start_age_ms;

	/* Not in the reply: the agent could not read or parse the record
	 * (a write in flight, a removed file). That proves nothing about
	 * renewals, so it is no observation. */
	if (!present)
		return;
	/* A seq a little below the one seen is an older snapshot (another
	 * reader's view that lags behind, a read that started earlier): no
	 * change, and no fresh read either. Taken as a change, it restarted
	 * first_seen, and the seq seen before it did so once more on the next
	 * round: a stopped lease was found expired up to ~2 s late. A keeper
	 * that starts without its predecessor's state draws a random 48-bit
	 * seq (docs/keeper.md), HLEASE_BACK_MAX below the last one only by a
	 * chance of 2^-42: that one counts as a change like any other. */
	if (l->seen && seq < l->seq && l->seq - seq <= HLEASE_BACK_MAX)
		return;
	if (!l->seen || seq != l->seq) {
		l->seen = 1;
		l->seq = seq;
		l->first_seen = arrived;
		l->fresh_from = start;
		l->fresh_at = arrived;
		l->read_ms = read_ms;
		return;
	}
	if (read_ms > HLEASE_READ_MAX_MS || start <= l->fresh_from)
		return;
	l->fresh_from = start;
	l->fresh_at = arrived;
	l->read_ms = read_ms;
}

int
hlease_expired(const struct hlease *l, int64_t now, int64_t lease_timeout_ms,
    int64_t fence_ms)
{
	return l->seen && now - l->first_seen >= lease_timeout_ms &&
	    l->fresh_from >= l->first_seen + fence_ms;
}

/* The entry of (host, domain), created when missing (under hl_lock). */
static struct hl_entry *
hl_entry(const char *host, const char *domain, int create)
{
	char key[2 * UTIL_NAME_MAX + 2];
	struct hl_entry *p;
	json_t *i;

	if (util_fmt(key, sizeof(key), "%s\x1f%s", host, domain) < 0)
		return NULL;
	if ((i = json_object_get(hl_idx, key)) != NULL)
		return &hl_tab[json_integer_value(i)];
	if (!create)
		return NULL;
	if (hl_n == hl_cap) {
		size_t cap = hl_cap ? hl_cap * 2 : 64;

		if ((p = realloc(hl_tab, cap * sizeof(*p))) == NULL)
			return NULL;
		hl_tab = p;
		hl_cap = cap;
	}
	p = &hl_tab[hl_n];
	memset(p, 0, sizeof(*p));
	snprintf(p->host, sizeof(p->host), "%s", host);
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	json_object_set_new(hl_idx, key, json_integer((json_int_t)hl_n));
	hl_n++;
	return p;
}

/* A host's isolation record as read via one reader (under hl_lock): the
 * readers that showed the same record are counted, so that one lying
 * host cannot make the manager restart another host's VMs. */
static void
hl_iso_note(const char *host, json_t *rec, const char *via)
{
	json_t *e = json_object_get(hl_iso, host);

	if (e == NULL || !json_equal(json_object_get(e, "rec"), rec)) {
		e = json_pack("{s:O, s:{}}", "rec", rec, "via");
		json_object_set_new(hl_iso, host, e);
	}
	json_object_set_new(json_object_get(e, "via"), via, json_true());
}

int
hlease_apply(const char *domain, const char *via, json_t *reply,
    int64_t sent, int64_t arrived)
{
	json_t *leases = json_object_get(reply, "leases"), *h, *l;
	json_t *age = json_object_get(reply, "read_start_age_ms");
	json_t *rms = json_object_get(reply, "read_ms");
	int64_t a = 0, r = arrived - sent;
	const char *host;

	if (!json_is_object(leases) || (age && (!json_is_integer(age) ||
	    json_integer_value(age) < 0 || json_integer_value(age) >
	    HLEASE_SNAP_MAX_MS)) || (rms && (!json_is_integer(rms) ||
	    json_integer_value(rms) < 0)))
		return -1;
	/* Without them (agents before issue 14) the agent read the files
	 * while we waited: after sent, for at most the whole call. */
	if (age)
		a = json_integer_value(age);
	if (rms)
		r = json_integer_value(rms);
	pthread_mutex_lock(&hl_lock);
	json_object_foreach(leases, host, h) {
		struct hl_entry *e;
		json_t *seq, *end;

		if (!util_name_valid(host) || !json_is_object(h))
			continue;
		l = json_object_get(h, "lease");
		seq = json_object_get(l, "seq");
		end = json_object_get(l, "seq_end");
		if (json_is_object(json_object_get(h, "isolation")))
			hl_iso_note(host, json_object_get(h, "isolation"), via);
		/* A torn or unreadable record is no observation. */
		if (!json_is_integer(seq) || (end && (!json_is_integer(end) ||
		    json_integer_value(end) != json_integer_value(seq))))
			continue;
		if ((e = hl_entry(host, domain, 1)) == NULL)
			continue;
		hlease_observe(&e->l, 1, json_integer_value(seq), sent, arrived,
		    a, r);
		snprintf(e->l.via, sizeof(e->l.via), "%s", via);
	}
	pthread_mutex_unlock(&hl_lock);
	return 0;
}

int
hlease_get(const char *host, const char *domain, struct hlease *out)
{
	struct hl_entry *e;
	int rc = -1;

	pthread_mutex_lock(&hl_lock);
	if (hl_idx && (e = hl_entry(host, domain, 0)) != NULL) {
		*out = e->l;
		rc = 0;
	}
	pthread_mutex_unlock(&hl_lock);
	return rc;
}

json_t *
hlease_isolation(const char *host, size_t *nvia)
{
	json_t *e, *o = NULL;

	*nvia = 0;
	pthread_mutex_lock(&hl_lock);
	if (hl_iso && (e = json_object_get(hl_iso, host)) != NULL) {
		o = json_incref(json_object_get(e, "rec"));
		*nvia = json_object_size(json_object_get(e, "via"));
	}
	pthread_mutex_unlock(&hl_lock);
	return o;
}

/* Sleep until the monotonic deadline (ms) or stop; 1 when stopping. */
static int
hl_wait_until(int64_t deadline)
{
	int quit;

	pthread_mutex_lock(&hl_lock);
	while (!hl_quit && util_mono_ms() < deadline)
		if (util_cond_wait_until(&hl_cond, &hl_lock, deadline) != 0)
			break;
	quit = hl_quit;
	pthread_mutex_unlock(&hl_lock);
	return quit;
}

/* One round of a domain: up to HL_TRIES hosts that see it, from the next
 * one in turn, until one answers with a snapshot young enough. No lock is
 * held across a call. */
static void
hl_read_round(struct hl_reader *rd)
{
	char path[UTIL_NAME_MAX + 64], err[256];
	json_t *cands;
	size_t n, k;

	pthread_mutex_lock(&hl_lock);
	cands = json_deep_copy(json_object_get(hl_cands, rd->domain));
	pthread_mutex_unlock(&hl_lock);
	n = json_array_size(cands);
	snprintf(path, sizeof(path), "/agent/v1/leases?storage=%s", rd->domain);
	for (k = 0; k < n && k < HL_TRIES; k++) {
		const char *via = json_string_value(json_array_get(cands,
		    (rd->next + k) % n));
		json_t *reply = NULL;
		int64_t sent = util_mono_ms(), arrived;
		int status = 0, ok;

		ok = agentc_call(via, "GET", path, NULL, HLEASE_READ_MAX_MS,
		    &status, &reply, err, sizeof(err)) == 0 && status == 200;
		arrived = util_mono_ms();
		if (ok && hlease_apply(rd->domain, via, reply, sent, arrived) ==
		    0) {
			json_decref(reply);
			rd->next = (unsigned)((rd->next + k + 1) % n);
			break;
		}
		log_debug("lease read of storage %s via %s failed: %s",
		    rd->domain, via, ok ? "bad reply" : err);
		json_decref(reply);
	}
	json_decref(cands);
}

static void *
hl_reader_main(void *arg)
{
	struct hl_reader *rd = arg;
	int64_t next = util_mono_ms();

	do {
		hl_read_round(rd);
		next += HL_POLL_MS;
		if (next < util_mono_ms())
			next = util_mono_ms();
	} while (!hl_wait_until(next));
	return NULL;
}

/* Which up hosts see each domain (they read it for us); a reader thread
 * for each domain not read yet. */
static void
hl_refresh(void)
{
	json_t *rows, *h, *s, *cands = json_object();
	const char *d;
	json_t *v;
	size_t i, j;

	rows = db_query("SELECT name, state, info FROM hosts ORDER BY name",
	    NULL);
	json_array_foreach(rows, i, h) {
		json_t *info;

		if (strcmp(JS(h, "state"), "up") != 0 || JS(h, "info") == NULL)
			continue;
		info = json_loads(JS(h, "info"), 0, NULL);
		json_array_foreach(json_object_get(info, "storage"), j, s) {
			const char *n = JS(s, "name");
			json_t *a;

			if (n == NULL || !util_name_valid(n) ||
			    !json_is_true(json_object_get(s, "ok")))
				continue;
			if ((a = json_object_get(cands, n)) == NULL) {
				a = json_array();
				json_object_set_new(cands, n, a);
			}
			json_array_append(a, json_object_get(h, "name"));
		}
		json_decref(info);
	}
	json_decref(rows);
	pthread_mutex_lock(&hl_lock);
	json_decref(hl_cands);
	hl_cands = cands;
	pthread_mutex_unlock(&hl_lock);
	json_object_foreach(cands, d, v) {
		struct hl_reader *rd;

		for (i = 0; i < hl_nreaders; i++)
			if (strcmp(hl_readers[i].domain, d) == 0)
				break;
		if (i < hl_nreaders)
			continue;
		if (hl_nreaders == HL_MAX_DOMAINS) {
			log_warn("more than %d storage domains: leases of %s are "
			    "not read", HL_MAX_DOMAINS, d);
			continue;
		}
		rd = &hl_readers[hl_nreaders];
		memset(rd, 0, sizeof(*rd));
		snprintf(rd->domain, sizeof(rd->domain), "%s", d);
		if (pthread_create(&rd->thread, NULL, hl_reader_main, rd) == 0)
			hl_nreaders++;
	}
}

static void *
hl_main(void *arg)
{
	int64_t next = util_mono_ms();

	(void)arg;
	do {
		hl_refresh();
		next += HL_POLL_MS;
		if (next < util_mono_ms())
			next = util_mono_ms();
	} while (!hl_wait_until(next));
	return NULL;
}

int
hlease_init(void)
{
	if (util_cond_init_mono(&hl_cond) != 0)
		return -1;
	pthread_mutex_lock(&hl_lock);
	hl_idx = json_object();
	hl_iso = json_object();
	hl_cands = json_object();
	hl_quit = 0;
	pthread_mutex_unlock(&hl_lock);
	return 0;
}

int
hlease_start(void)
{
	if (hlease_init() < 0 || pthread_create(&hl_thread, NULL, hl_main,
	    NULL) != 0)
		return -1;
	hl_running = 1;
	return 0;
}

void
hlease_stop(void)
{
	size_t i;

	pthread_mutex_lock(&hl_lock);
	hl_quit = 1;
	pthread_cond_broadcast(&hl_cond);
	pthread_mutex_unlock(&hl_lock);
	if (hl_running)
		pthread_join(hl_thread, NULL);
	hl_running = 0;
	for (i = 0; i < hl_nreaders; i++)
		pthread_join(hl_readers[i].thread, NULL);
	hl_nreaders = 0;
	pthread_mutex_lock(&hl_lock);
	json_decref(hl_idx);
	json_decref(hl_iso);
	json_decref(hl_cands);
	hl_idx = hl_iso = hl_cands = NULL;
	free(hl_tab);
	hl_tab = NULL;
	hl_n = hl_cap = 0;
	pthread_mutex_unlock(&hl_lock);
	pthread_cond_destroy(&hl_cond);
}
