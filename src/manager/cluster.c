/* cluster.c - cluster-wide settings (placement overcommit, migration
 * defaults, balancer), kept in the meta table, validated in one place. */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

struct cluster_key {
	const char	*name;
	int		 min, max, def;
	size_t		 off;		/* int field; or the mode string */
};

#define CK(n, lo, hi, d) { #n, lo, hi, d, offsetof(struct cluster_settings, n) }
static const struct cluster_key cluster_keys[] = {
	CK(mem_overcommit_pct, 50, 1000, 100),
	CK(cpu_overcommit_pct, 100, 3200, 400),
	CK(migration_downtime_ms, 1, 60000, 10),
	CK(migration_bandwidth_mibs, 0, 1000000, 0),
	CK(migration_timeout_s, 5, 86400, 300),
	CK(balancer_threshold_pct, 1, 100, 20),
	CK(balancer_interval_s, 1, 86400, 60),
	CK(balancer_cooldown_s, 0, 86400, 300),
	CK(ha_lease_timeout_ms, 2000, 600000, 5000),
	CK(ha_max_restarts, 0, 100, 3),
	CK(ha_restart_window_s, 10, 86400, 600),
	CK(ha_reserve_hosts, 0, 100, 0),
	CK(ha_monitor_interval_ms, 500, 60000, 2000),
	CK(ha_monitor_misses, 1, 100, 3),
};

/* Settings that take one of a few words. */
struct cluster_word {
	const char		*name;
	const char *const	*allowed;
	const char		*def;
	size_t			 off;
};
static const char *const balancer_modes[] = { "off", "advise", "automatic",
    NULL };
static const char *const isolation_responses[] = { "poweroff", "leave", NULL };
static const char *const storage_loss_responses[] = { "restart", "leave",
    NULL };
static const struct cluster_word cluster_words[] = {
	{ "balancer_mode", balancer_modes, "off",
	    offsetof(struct cluster_settings, balancer_mode) },
	{ "ha_isolation_response", isolation_responses, "poweroff",
	    offsetof(struct cluster_settings, ha_isolation_response) },
	{ "ha_storage_loss_response", storage_loss_responses, "restart",
	    offsetof(struct cluster_settings, ha_storage_loss_response) },
};
#define NWORDS (sizeof(cluster_words) / sizeof(cluster_words[0]))

static pthread_mutex_t cluster_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cluster_settings cluster_cur;

static int *
cluster_field(struct cluster_settings *s, const struct cluster_key *k)
{
	return (int *)(void *)((char *)s + k->off);
}

int
cluster_load(void)
{
	struct cluster_settings s;
	char key[80];
	json_t *row;
	size_t i;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < sizeof(cluster_keys) / sizeof(cluster_keys[0]); i++) {
		const struct cluster_key *k = &cluster_keys[i];
		uint64_t v;

		*cluster_field(&s, k) = k->def;
		snprintf(key, sizeof(key), "cluster.%s", k->name);
		row = db_row("SELECT value FROM meta WHERE key = ?", "s", key);
		if (row && util_parse_u64(json_string_value(json_object_get(row,
		    "value")), (uint64_t)k->min, (uint64_t)k->max, &v) == 0)
			*cluster_field(&s, k) = (int)v;
		json_decref(row);
	}
	for (i = 0; i < NWORDS; i++) {
		char *dst = (char *)&s + cluster_words[i].off;
		const char *v;
		size_t k;

		snprintf(dst, 16, "%s", cluster_words[i].def);
		snprintf(key, sizeof(key), "cluster.%s", cluster_words[i].name);
		row = db_row("SELECT value FROM meta WHERE key = ?", "s", key);
		v = row ? json_string_value(json_object_get(row, "value")) : NULL;
		for (k = 0; v && cluster_words[i].allowed[k]; k++)
			if (strcmp(v, cluster_words[i].allowed[k]) == 0)
				snprintf(dst, 16, "%s", v);
		json_decref(row);
	}
	pthread_mutex_lock(&cluster_lock);
	cluster_cur = s;
	pthread_mutex_unlock(&cluster_lock);
	return 0;
}

void
cluster_get(struct cluster_settings *out)
{
	pthread_mutex_lock(&cluster_lock);
	*out = cluster_cur;
	pthread_mutex_unlock(&cluster_lock);
}

json_t *
cluster_json(void)
{
	struct cluster_settings s;
	json_t *o = json_object();
	size_t i;

	cluster_get(&s);
	for (i = 0; i < sizeof(cluster_keys) / sizeof(cluster_keys[0]); i++)
		json_object_set_new(o, cluster_keys[i].name,
		    json_integer(*cluster_field(&s, &cluster_keys[i])));
	for (i = 0; i < NWORDS; i++)
		json_object_set_new(o, cluster_words[i].name,
		    json_string((char *)&s + cluster_words[i].off));
	return o;
}

static int
cluster_store(const char *name, const char *value)
{
	char key[80];

	snprintf(key, sizeof(key), "cluster.%s", name);
	return db_exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT"
	    "(key) DO UPDATE SET value = excluded.value", "ss", key, value);
}

/* Check every field first, then store them in one transaction. */
int
cluster_update(json_t *body, char *err, size_t errsz)
{
	char why[256];
	const char *key;
	json_t *v;
	size_t i;
	int rc = -1;

	json_object_foreach(body, key, v) {
		for (i = 0; i < NWORDS; i++)
			if (strcmp(cluster_words[i].name, key) == 0)
				break;
		if (i < NWORDS) {
			const char *const *a = cluster_words[i].allowed;
			size_t k;

			for (k = 0; a[k]; k++)
				if (json_is_string(v) &&
				    strcmp(json_string_value(v), a[k]) == 0)
					break;
			if (a[k] == NULL) {
				snprintf(err, errsz, "%s must be %s%s%s", key, a[0],
				    a[1] ? " or " : "", a[1] ? a[1] : "");
				if (a[1] && a[2])
					snprintf(err, errsz, "%s must be %s, %s or %s",
					    key, a[0], a[1], a[2]);
				return -1;
			}
			continue;
		}
		for (i = 0; i < sizeof(cluster_keys) / sizeof(cluster_keys[0]); i++)
			if (strcmp(cluster_keys[i].name, key) == 0)
				break;
		if (i == sizeof(cluster_keys) / sizeof(cluster_keys[0])) {
			snprintf(err, errsz, "unknown setting \"%.64s\"", key);
			return -1;
		}
		if (!json_is_integer(v) || json_integer_value(v) <
		    cluster_keys[i].min || json_integer_value(v) >
		    cluster_keys[i].max) {
			snprintf(err, errsz, "%s must be an integer %d..%d", key,
			    cluster_keys[i].min, cluster_keys[i].max);
			return -1;
		}
		/* The margin of docs/ha.md ("Timing") for every keeper. */
		if (strcmp(key, "ha_lease_timeout_ms") == 0 &&
		    failover_timing_check_all(json_integer_value(v), why,
		    sizeof(why)) < 0) {
			snprintf(err, errsz, "ha_lease_timeout_ms %lld is too "
			    "short: %s", (long long)json_integer_value(v), why);
			return -1;
		}
	}
	if (db_begin() < 0) {
		snprintf(err, errsz, "cannot store the settings");
		return -1;
	}
	json_object_foreach(body, key, v) {
		char num[32];

		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		if (cluster_store(key, json_is_string(v) ? json_string_value(v) :
		    num) < 0) {
			db_rollback();
			snprintf(err, errsz, "cannot store the settings");
			return -1;
		}
	}
	if (db_commit() == 0)
		rc = cluster_load();
	return rc;
}

static int
api_cluster_get(struct httpd_req *r)
{
	return httpd_reply_json(r, 200, cluster_json());
}

static int
api_cluster_put(struct httpd_req *r)
{
	char err[256];

	if (r->body == NULL)
		return httpd_reply_error(r, 400, "a JSON object of settings is "
		    "required");
	if (cluster_update(r->body, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 400, "%s", err);
	event_add("info", "cluster.settings", NULL, "cluster settings changed "
	    "by %s", r->principal);
	return httpd_reply_json(r, 200, cluster_json());
}

const struct httpd_route api_cluster_routes[] = {
	{ "GET", "/api/v1/cluster", api_cluster_get, 0, ROLE_VIEWER },
	{ "PUT", "/api/v1/cluster", api_cluster_put, 0, ROLE_ADMIN },
};
const size_t api_cluster_nroutes = sizeof(api_cluster_routes) /
    sizeof(api_cluster_routes[0]);
