/* stats.c - the last minutes of per-host and per-VM usage for the UI's
 * charts: a ring buffer per object, fed by agent reports (raw counters),
 * turned into rates here. Kept in memory only; a restart starts empty. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/manager_int.h"

#define STATS_SERIES   256		/* hosts + VMs tracked at once */
#define STATS_SAMPLES  300		/* 5 minutes at one per second */
#define STATS_MIN_GAP  800		/* ms between kept samples */
#define STATS_FRESH_MS 10000		/* a newer sample counts as current */

enum { S_CPU, S_MEM, S_DISK_RD, S_DISK_WR, S_NET_RX, S_NET_TX, S_NFIELDS };
static const char *const stats_names[S_NFIELDS] = {
	"cpu_pct", "mem_mib", "disk_read_bps", "disk_write_bps",
	"net_rx_bps", "net_tx_bps",
};

struct stats_sample {
	int64_t	t;
	double	v[S_NFIELDS];		/* < 0: unknown */
};

struct stats_series {
	char			 key[UTIL_NAME_MAX + UTIL_UUID_LEN + 8]; /* "vm:UUID" */
	char			 name[UTIL_NAME_MAX + 1];
	int64_t			 last_used;
	json_t			*prev;		/* the raw counters last seen */
	int64_t			 prev_t;
	int			 head, count;
	struct stats_sample	 s[STATS_SAMPLES];
};

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stats_series *series[STATS_SERIES];

/* Caller holds stats_lock. Reuses the least recently fed slot when full. */
static struct stats_series *
stats_slot(const char *key, int create)
{
	int i, victim = -1;

	for (i = 0; i < STATS_SERIES; i++) {
		if (series[i] && strcmp(series[i]->key, key) == 0)
			return series[i];
		if (victim < 0 || (series[victim] && (series[i] == NULL ||
		    series[i]->last_used < series[victim]->last_used)))
			victim = i;
	}
	if (!create)
		return NULL;
	if (series[victim] == NULL &&
	    (series[victim] = calloc(1, sizeof(*series[victim]))) == NULL)
		return NULL;
	json_decref(series[victim]->prev);
	memset(series[victim], 0, sizeof(*series[victim]));
	snprintf(series[victim]->key, sizeof(series[victim]->key), "%s", key);
	return series[victim];
}

static double
stats_rate(json_t *cur, json_t *prev, const char *k, double dt_s, double scale)
{
	json_t *a = json_object_get(cur, k), *b = json_object_get(prev, k);
	double d;

	if (!json_is_integer(a) || !json_is_integer(b) || dt_s <= 0)
		return -1;
	d = (double)(json_integer_value(a) - json_integer_value(b));
	return d < 0 ? -1 : d / dt_s * scale;
}

/* Caller holds stats_lock. cpus: the VM's vCPUs (0 for a host). */
static void
stats_add(const char *key, const char *name, json_t *raw, int cpus,
    int64_t now)
{
	struct stats_series *s = stats_slot(key, 1);
	struct stats_sample *x;
	json_t *kib;
	double dt, busy, total;

	if (s == NULL)
		return;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->last_used = now;
	if (s->prev && now - s->prev_t < STATS_MIN_GAP)
		return;
	x = &s->s[s->head];
	x->t = now;
	dt = s->prev ? (double)(now - s->prev_t) / 1000.0 : 0;
	if (cpus > 0) {
		x->v[S_CPU] = stats_rate(raw, s->prev, "cpu_ms", dt, 0.1 / cpus);
	} else {
		busy = stats_rate(raw, s->prev, "cpu_busy_ticks", 1, 1);
		total = stats_rate(raw, s->prev, "cpu_total_ticks", 1, 1);
		x->v[S_CPU] = busy >= 0 && total > 0 ? busy * 100.0 / total : -1;
	}
	kib = json_object_get(raw, cpus > 0 ? "rss_kib" : "mem_used_kib");
	x->v[S_MEM] = json_is_integer(kib) ?
	    (double)json_integer_value(kib) / 1024.0 : -1;
	x->v[S_DISK_RD] = stats_rate(raw, s->prev, "disk_read_bytes", dt, 1);
	x->v[S_DISK_WR] = stats_rate(raw, s->prev, "disk_write_bytes", dt, 1);
	x->v[S_NET_RX] = stats_rate(raw, s->prev, "net_rx_bytes", dt, 1);
	x->v[S_NET_TX] = stats_rate(raw, s->prev, "net_tx_bytes", dt, 1);
	if (x->v[S_CPU] > 100.0)
		x->v[S_CPU] = 100.0;
	json_decref(s->prev);
	s->prev = json_deep_copy(raw);
	s->prev_t = now;
	s->head = (s->head + 1) % STATS_SAMPLES;
	if (s->count < STATS_SAMPLES)
		s->count++;
}

void
stats_record(const char *host, json_t *stats)
{
	json_t *rows, *row, *raw;
	char key[sizeof(((struct stats_series *)0)->key)];
	int64_t now = util_wall_ms();
	size_t i;

	if (!json_is_object(stats))
		return;
	/* The database first: no I/O under stats_lock. */
	rows = db_query("SELECT uuid, name, cpus FROM vms WHERE host = ?", "s",
	    host);
	pthread_mutex_lock(&stats_lock);
	if (json_is_object(json_object_get(stats, "host")) &&
	    util_fmt(key, sizeof(key), "host:%s", host) == 0)
		stats_add(key, host, json_object_get(stats, "host"), 0, now);
	json_array_foreach(rows, i, row) {
		const char *uuid = json_string_value(json_object_get(row, "uuid"));
		int cpus = (int)json_integer_value(json_object_get(row, "cpus"));

		raw = json_object_get(json_object_get(stats, "vms"), uuid);
		if (json_is_object(raw) && cpus > 0 &&
		    util_fmt(key, sizeof(key), "vm:%s", uuid) == 0)
			stats_add(key, json_string_value(json_object_get(row,
			    "name")), raw, cpus, now);
	}
	pthread_mutex_unlock(&stats_lock);
	json_decref(rows);
}

static json_t *
stats_sample_json(const struct stats_sample *x)
{
	json_t *o = json_pack("{s:I}", "t", (json_int_t)x->t);
	int k;

	for (k = 0; k < S_NFIELDS; k++)
		json_object_set_new(o, stats_names[k], x->v[k] < 0 ? json_null() :
		    json_real((double)(int64_t)(x->v[k] * 10.0) / 10.0));
	return o;
}

json_t *
stats_series_json(const char *key)
{
	struct stats_series *s;
	json_t *arr = json_array();
	int i;

	pthread_mutex_lock(&stats_lock);
	if ((s = stats_slot(key, 0)) != NULL)
		for (i = 0; i < s->count; i++)
			json_array_append_new(arr, stats_sample_json(&s->s[
			    (s->head - s->count + i + STATS_SAMPLES) % STATS_SAMPLES]));
	pthread_mutex_unlock(&stats_lock);
	return json_pack("{s:i, s:o}", "max_samples", STATS_SAMPLES, "samples",
	    arr);
}

json_t *
stats_all_json(void)
{
	json_t *hosts = json_object(), *vms = json_object();
	int64_t now = util_wall_ms();
	struct stats_sample *x;
	int i;

	pthread_mutex_lock(&stats_lock);
	for (i = 0; i < STATS_SERIES; i++) {
		if (series[i] == NULL || series[i]->count == 0)
			continue;
		x = &series[i]->s[(series[i]->head - 1 + STATS_SAMPLES) %
		    STATS_SAMPLES];
		if (now - x->t > STATS_FRESH_MS)
			continue;
		json_object_set_new(strncmp(series[i]->key, "vm:", 3) == 0 ?
		    vms : hosts, series[i]->name, stats_sample_json(x));
	}
	pthread_mutex_unlock(&stats_lock);
	return json_pack("{s:o, s:o}", "hosts", hosts, "vms", vms);
}
