/* heartbeat.c - how often agents report and when silence means down. Past
 * HB_BUDGET_PER_S reports a second the interval grows with the number of
 * hosts (the manager tells agents in every register and report reply), and
 * the timeout keeps its ratio to the interval: 1,000 hosts report every
 * 4 s and are down after 20 s of silence instead of the manager falling
 * behind. */
#include <stdatomic.h>

#include "manager/manager_int.h"

#define HB_BUDGET_PER_S	250
#define HB_RECOUNT_MS	5000

static atomic_llong hb_hosts, hb_counted_at;

static int64_t
hb_host_count(void)
{
	int64_t now = util_mono_ms();
	json_t *row;

	if (now - atomic_load(&hb_counted_at) >= HB_RECOUNT_MS) {
		atomic_store(&hb_counted_at, now);
		if ((row = db_row("SELECT COUNT(*) AS n FROM hosts", NULL)) != NULL)
			atomic_store(&hb_hosts, json_integer_value(
			    json_object_get(row, "n")));
		json_decref(row);
	}
	return atomic_load(&hb_hosts);
}

int64_t
hb_interval_ms(void)
{
	int64_t scaled = hb_host_count() * 1000 / HB_BUDGET_PER_S;

	return scaled > mgr_cfg.heartbeat_interval_ms ? scaled :
	    mgr_cfg.heartbeat_interval_ms;
}

int64_t
hb_timeout_ms(void)
{
	int64_t iv = hb_interval_ms();

	if (iv == mgr_cfg.heartbeat_interval_ms)
		return mgr_cfg.heartbeat_timeout_ms;
	return iv * mgr_cfg.heartbeat_timeout_ms / mgr_cfg.heartbeat_interval_ms;
}
