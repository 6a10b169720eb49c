/* manager.c - `cvirt manager`: options, start-up in order, shutdown in reverse. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/util.h"
#include "manager/manager.h"
#include "manager/manager_int.h"

struct mgr_cfg mgr_cfg;

static const char manager_usage[] =
    "usage: cvirt manager --data DIR --listen HOST:PORT [--db URL]\n"
    "                     [--config FILE (default /etc/cvirt/manager.conf)]\n"
    "                     [--tls-cert FILE --tls-key FILE]\n"
    "                     [--heartbeat-interval MS] [--heartbeat-timeout MS]\n"
    "                     [--web-root DIR] [--login-window S]\n"
    "                     [--upload-max-mib N]\n";

static int
manager_parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "db", required_argument, NULL, 'b' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "web-root", required_argument, NULL, 'w' },
		{ "heartbeat-interval", required_argument, NULL, 'i' },
		{ "heartbeat-timeout", required_argument, NULL, 't' },
		{ "upload-max-mib", required_argument, NULL, 'U' },
		{ "login-window", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	mgr_cfg.heartbeat_interval_ms = 1000;
	mgr_cfg.heartbeat_timeout_ms = 5000;
	mgr_cfg.upload_max = INT64_C(16384) << 20;
	mgr_cfg.login_window_ms = 60000;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': snprintf(mgr_cfg.data, sizeof(mgr_cfg.data), "%s", optarg); break;
		case 'l': snprintf(mgr_cfg.listen, sizeof(mgr_cfg.listen), "%s", optarg); break;
		case 'b': snprintf(mgr_cfg.db_url, sizeof(mgr_cfg.db_url), "%s", optarg); break;
		case 'c': snprintf(mgr_cfg.tls_cert, sizeof(mgr_cfg.tls_cert), "%s", optarg); break;
		case 'k': snprintf(mgr_cfg.tls_key, sizeof(mgr_cfg.tls_key), "%s", optarg); break;
		case 'w': snprintf(mgr_cfg.web_root, sizeof(mgr_cfg.web_root), "%s", optarg); break;
		case 'i':
		case 't':
			if (util_parse_u64(optarg, 100, 600000, &v) < 0) {
				log_error("--heartbeat-%s wants 100..600000 ms",
				    c == 'i' ? "interval" : "timeout");
				return -1;
			}
			if (c == 'i')
				mgr_cfg.heartbeat_interval_ms = (int64_t)v;
			else
				mgr_cfg.heartbeat_timeout_ms = (int64_t)v;
			break;
		case 'U':
			if (util_parse_u64(optarg, 1, UINT64_C(1) << 30, &v) < 0) {
				log_error("--upload-max-mib wants 1..1073741824");
				return -1;
			}
			mgr_cfg.upload_max = (int64_t)v << 20;
			break;
		case 'L':
			/* Failed logins count this long (docs/security.md). */
			if (util_parse_u64(optarg, 1, 86400, &v) < 0) {
				log_error("--login-window wants 1..86400 s");
				return -1;
			}
			mgr_cfg.login_window_ms = (int64_t)v * 1000;
			break;
		case 'h': fputs(manager_usage, stdout); exit(0);
		default:
			log_error("unknown or incomplete option %s\n%s",
			    argv[optind - 1], manager_usage);
			return -1;
		}
	}
	if (optind < argc || !mgr_cfg.data[0] || !mgr_cfg.listen[0]) {
		log_error("missing or unexpected arguments\n%s", manager_usage);
		return -1;
	}
	if (!mgr_cfg.tls_cert[0] != !mgr_cfg.tls_key[0]) {
		log_error("--tls-cert and --tls-key go together");
		return -1;
	}
	if (mgr_cfg.heartbeat_timeout_ms <= mgr_cfg.heartbeat_interval_ms) {
		log_error("--heartbeat-timeout must exceed --heartbeat-interval");
		return -1;
	}
	return 0;
}

static int
manager_db_path(char *out, size_t outsz)
{
	if (mgr_cfg.db_url[0] == '\0')
		return util_fmt(out, outsz, "%s/cvirt.db", mgr_cfg.data);
	if ((strncmp(mgr_cfg.db_url, "sqlite:", 7) == 0 && mgr_cfg.db_url[7]) ||
	    strncmp(mgr_cfg.db_url, "postgresql://", 13) == 0 ||
	    strncmp(mgr_cfg.db_url, "postgres://", 11) == 0)
		return util_fmt(out, outsz, "%s", mgr_cfg.db_url);
	log_error("unsupported --db URL: want sqlite:PATH or postgresql://...");
	return -1;
}

/* The stored lease timeout keeps the margin over a keeper with default
 * settings (docs/ha.md, "Timing"), or the manager does not start. */
static int
manager_check_timing(void)
{
	struct cluster_settings cs;
	char err[256];

	cluster_get(&cs);
	if (failover_timing_check(NULL, "watchdog", NULL, cs.ha_lease_timeout_ms,
	    err, sizeof(err)) == 0)
		return 0;
	log_error("cluster setting ha_lease_timeout_ms is unsafe: %s (the "
	    "default keeper's; see docs/ha.md)", err);
	return -1;
}

/* The leader's background services (ha.c calls this once it leads). */
static int lead_tasks, lead_mon, lead_bal, lead_fo;

static int
manager_lead(void)
{
	if (task_init(4) < 0)
		return -1;
	lead_tasks = 1;
	storops_recover();
	if (hostmon_start() < 0)
		return -1;
	lead_mon = 1;
	if (balancer_start() < 0)
		return -1;
	lead_bal = 1;
	if (failover_start() < 0)
		return -1;
	lead_fo = 1;
	return 0;
}

int
manager_main(int argc, char **argv)
{
	struct httpd_config hc;
	struct httpd_route *routes = NULL;
	struct httpd *h = NULL;
	char dbpath[PATH_MAX];
	int sig, rc = 1;
	sigset_t set;

	/* The server's threads would each get a malloc arena: at 20,000 VMs
	 * that fragmentation alone doubles the resident size. A fixed mmap
	 * threshold keeps big replies (MiBs of VM list) out of the heaps,
	 * so their memory goes back to the system when freed. */
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	if (config_args("manager", &argc, &argv) < 0 ||
	    manager_parse(argc, argv) < 0)
		return 2;
	if (util_mkdir_p(mgr_cfg.data, 0700) < 0) {
		log_error("cannot create %s: %s", mgr_cfg.data, strerror(errno));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (manager_db_path(dbpath, sizeof(dbpath)) < 0 || db_open(dbpath) < 0 ||
	    auth_init() < 0)
		goto cleanup;
	vnet_backfill();	/* MACs of VMs from before the nics table */
	if (cluster_load() < 0 || manager_check_timing() < 0 ||
	    ha_start(dbpath, manager_lead) < 0)
		goto cleanup;
	memset(&hc, 0, sizeof(hc));
	if ((routes = api_routes_join(&hc.nroutes)) == NULL)
		goto cleanup;
	hc.listen = mgr_cfg.listen;
	/* Worker classes (httpd.h): the API's, agents' reports', live
	 * streams' and consoles' (STREAM_MAX + CONSOLE_MAX), uploads'. */
	hc.threads = 24;
	hc.agent_threads = 8;
	hc.long_threads = 8 + 32;
	hc.bulk_threads = 4;
	hc.agent_prefix = "/api/v1/agent/";
	hc.routes = routes;
	hc.ws = &console_ws_route;
	hc.nws = 1;
	hc.auth = ha_auth;
	if (mgr_cfg.web_root[0] && web_root_check(mgr_cfg.web_root) < 0)
		goto cleanup;
	if (!mgr_cfg.web_root[0] &&
	    web_root_find(mgr_cfg.web_root, sizeof(mgr_cfg.web_root)) < 0)
		log_info("no web UI files found: the UI is not served");
	hc.static_root = mgr_cfg.web_root[0] ? mgr_cfg.web_root : NULL;
	hc.done = audit_request;
	if (mgr_cfg.tls_cert[0]) {
		hc.tls_cert = mgr_cfg.tls_cert;
		hc.tls_key = mgr_cfg.tls_key;
		if (pki_mgr_init(&hc) < 0)
			goto cleanup;
	}
	if ((h = httpd_start(&hc)) == NULL) {
		log_error("cannot listen on %s", mgr_cfg.listen);
		goto cleanup;
	}
	log_info("manager listening on %s (data %s)", mgr_cfg.listen,
	    mgr_cfg.data);
	do {
		if (sigwait(&set, &sig) != 0)
			break;
	} while (sig == SIGHUP);
	log_info("signal %d: stopping the manager", sig);
	/* A leader that lost its lock failed: Restart=on-failure brings it
	 * back, as a standby. */
	rc = ha_lost_lock() ? 1 : 0;
cleanup:
	api_web_shutdown();
	ha_stop();
	httpd_stop(h);
	if (lead_fo)
		failover_stop();
	if (lead_bal)
		balancer_stop();
	if (lead_mon)
		hostmon_stop();
	if (lead_tasks)
		task_shutdown();
	ha_close();
	db_close();
	free(routes);
	return rc;
}
