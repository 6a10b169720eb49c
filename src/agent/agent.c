/* agent.c - `cvirt agent`: start-up, options, signals, shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/agent_int.h"
#include "agent/keeper.h"
#include "common/config.h"
#include "common/httpc.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/util.h"
#include "net/net.h"
#include "storage/store.h"

struct agent_cfg agent_cfg;

static const char agent_usage[] =
    "usage: cvirt agent --data DIR --manager URL[,URL...] --token-file FILE --name NAME\n"
    "                   --listen HOST:PORT --storage NAME=PATH [--storage ...]\n"
    "                   [--config FILE (default /etc/cvirt/agent.conf)]\n"
    "                   [--accel auto|kvm|tcg] [--stop-timeout SECONDS]\n"
    "                   [--memory MIB] [--migration-address IP]\n"
    "                   [--ca-file FILE] [--watchdog auto|none|DEVICE|unix:PATH]\n"
    "                   [--watchdog-timeout-ms N] [--fence-ms N] [--renew-ms N]\n"
    "                   [--media-dir DIR ...]\n";

static int
agent_add_storage(const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct agent_storage *st;
	char err[256];
	int i;

	if (eq == NULL || eq == arg || eq[1] != '/') {
		log_error("--storage wants NAME=/absolute/path, not \"%s\"", arg);
		return -1;
	}
	if (agent_cfg.nstorage >= AGENT_MAX_STORAGE) {
		log_error("at most %d storage domains", AGENT_MAX_STORAGE);
		return -1;
	}
	st = &agent_cfg.storage[agent_cfg.nstorage];
	if ((size_t)(eq - arg) > UTIL_NAME_MAX) {
		log_error("storage name too long");
		return -1;
	}
	snprintf(st->name, sizeof(st->name), "%.*s", (int)(eq - arg), arg);
	if (!util_name_valid(st->name) ||
	    util_fmt(st->path, sizeof(st->path), "%s", eq + 1) < 0) {
		log_error("invalid storage \"%s\"", arg);
		return -1;
	}
	for (i = 0; i < agent_cfg.nstorage; i++) {
		if (strcmp(agent_cfg.storage[i].name, st->name) == 0) {
			log_error("storage %s given twice", st->name);
			return -1;
		}
	}
	if (store_domain_init(st->path, st->name, err, sizeof(err)) < 0)
		log_warnx("storage %s: %s", st->name, err);
	agent_cfg.nstorage++;
	return 0;
}

/* One agent per data directory: a second one (same --data) killed the
 * first one's lease keeper, started its own and re-attached to the same
 * VMs. Held until exit; O_CLOEXEC keeps it out of QEMU, helpers and the
 * keeper (exec'd). */
static int
agent_lock(void)
{
	char path[PATH_MAX];
	int fd = -1;

	agent_cfg.lock_fd = -1;
	if (util_fmt(path, sizeof(path), "%s/agent.lock", agent_cfg.data) < 0 ||
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
	    (agent_cfg.lock_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		log_error("cannot open %s/agent.lock: %s", agent_cfg.data,
		    strerror(errno));
		goto cleanup;
	}
	if (flock(agent_cfg.lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_error(errno == EWOULDBLOCK ? "%s is in use by another agent" :
		    "cannot lock %s", agent_cfg.data);
		close(agent_cfg.lock_fd);
		agent_cfg.lock_fd = -1;
	}
cleanup:
	if (fd >= 0)
		close(fd);
	return agent_cfg.lock_fd >= 0 ? 0 : -1;
}

/* Unix socket paths are limited to 108 bytes: use a short run dir. */
static int
agent_run_dir(void)
{
	char hash[UTIL_HASH_LEN + 1];
	const char *base = getenv("XDG_RUNTIME_DIR");

	if (util_fmt(agent_cfg.run, sizeof(agent_cfg.run), "%s/run",
	    agent_cfg.data) == 0 && strlen(agent_cfg.run) < 80)
		return util_mkdir_p(agent_cfg.run, 0700);
	util_hash_hex(agent_cfg.data, hash);
	if (geteuid() == 0 || base == NULL || base[0] != '/')
		base = "/tmp";
	if (util_fmt(agent_cfg.run, sizeof(agent_cfg.run), "%s/cvirt-%.12s",
	    base, hash) < 0)
		return -1;
	return util_mkdir_p(agent_cfg.run, 0700);
}

/* --watchdog: auto, none, a device path or unix:/PATH (the keeper opens
 * it: docs/keeper.md). */
static int
agent_watchdog_spec(const char *spec)
{
	if ((strcmp(spec, "auto") != 0 && strcmp(spec, "none") != 0 &&
	    spec[0] != '/' && strncmp(spec, "unix:/", 6) != 0) ||
	    util_fmt(agent_cfg.watchdog, sizeof(agent_cfg.watchdog), "%s",
	    spec) < 0) {
		log_error("--watchdog wants auto, none, a device path or "
		    "unix:/PATH, not \"%s\"", spec);
		return -1;
	}
	return 0;
}

static int
agent_parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "manager", required_argument, NULL, 'm' },
		{ "token-file", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "storage", required_argument, NULL, 's' },
		{ "accel", required_argument, NULL, 'a' },
		{ "stop-timeout", required_argument, NULL, 'T' },
		{ "migration-address", required_argument, NULL, 'M' },
		{ "memory", required_argument, NULL, 'R' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "watchdog", required_argument, NULL, 'W' },
		{ "watchdog-timeout-ms", required_argument, NULL, 'w' },
		{ "fence-ms", required_argument, NULL, 'F' },
		{ "renew-ms", required_argument, NULL, 'r' },
		{ "media-dir", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tokfile = NULL, *accel = "auto";
	struct ktiming t;
	char err[256];
	uint64_t v;
	int c;

	agent_cfg.stop_timeout_s = 60;
	agent_cfg.serial_max = 1024 * 1024;
	snprintf(agent_cfg.watchdog, sizeof(agent_cfg.watchdog), "auto");
	agent_cfg.renew_ms = 500;
	agent_cfg.fence_ms = 3000;
	agent_cfg.kill_grace_ms = KEEPER_KILL_GRACE_MS;
	agent_cfg.watchdog_ms = 1000;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': snprintf(agent_cfg.data, sizeof(agent_cfg.data), "%s", optarg); break;
		case 'm': snprintf(agent_cfg.manager, sizeof(agent_cfg.manager), "%s", optarg); break;
		case 't': tokfile = optarg; break;
		case 'n': snprintf(agent_cfg.name, sizeof(agent_cfg.name), "%s", optarg); break;
		case 'l': snprintf(agent_cfg.listen, sizeof(agent_cfg.listen), "%s", optarg); break;
		case 's': if (agent_add_storage(optarg) < 0) return -1; break;
		case 'D': if (media_add_dir(optarg) < 0) return -1; break;
		case 'a': accel = optarg; break;
		case 'C': httpc_set_cafile(optarg); break;
		case 'T':
			if (util_parse_u64(optarg, 0, 3600, &v) < 0) {
				log_error("--stop-timeout wants 0..3600 seconds");
				return -1;
			}
			agent_cfg.stop_timeout_s = (int)v;
			break;
		case 'M':
			if (util_fmt(agent_cfg.migration_addr,
			    sizeof(agent_cfg.migration_addr), "%s", optarg) < 0) {
				log_error("--migration-address too long");
				return -1;
			}
			break;
		case 'R':
			if (util_parse_u64(optarg, 64, UINT64_C(1) << 32, &v) < 0) {
				log_error("--memory wants MiB for VMs, 64..4294967296");
				return -1;
			}
			agent_cfg.memory_mib = (int64_t)v;
			break;
		case 'W':
			if (agent_watchdog_spec(optarg) < 0)
				return -1;
			break;
		case 'w':
		case 'F':
		case 'r':
			if (util_parse_u64(optarg, 0, 600000, &v) < 0) {
				log_error("%s wants milliseconds", argv[optind - 1]);
				return -1;
			}
			*(c == 'w' ? &agent_cfg.watchdog_ms : c == 'F' ?
			    &agent_cfg.fence_ms : &agent_cfg.renew_ms) = (int64_t)v;
			break;
		case 'h': fputs(agent_usage, stdout); exit(0);
		default:
			log_error("unknown or incomplete option %s", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument %s", argv[optind]);
		return -1;
	}
	if (!agent_cfg.data[0] || !agent_cfg.manager[0] || !tokfile ||
	    !agent_cfg.name[0] || !agent_cfg.listen[0] || agent_cfg.nstorage == 0) {
		log_error("missing options\n%s", agent_usage);
		return -1;
	}
	if (!util_name_valid(agent_cfg.name)) {
		log_error("invalid host name \"%s\"", agent_cfg.name);
		return -1;
	}
	t.renew_ms = agent_cfg.renew_ms;
	t.fence_ms = agent_cfg.fence_ms;
	t.kill_grace_ms = agent_cfg.kill_grace_ms;
	t.tick_ms = KEEPER_TICK_MS;
	t.watchdog_ms = agent_cfg.watchdog_ms;
	if (keeper_timing_check(&t, err, sizeof(err)) < 0) {
		log_error("lease timing refused: %s", err);
		return -1;
	}
	if (util_read_token(tokfile, agent_cfg.token, sizeof(agent_cfg.token)) < 0) {
		log_error("cannot read a token from %s: %s", tokfile,
		    errno ? strerror(errno) : "empty file");
		return -1;
	}
	if (accel_detect(accel, agent_cfg.accel, sizeof(agent_cfg.accel),
	    agent_cfg.accel_reason, sizeof(agent_cfg.accel_reason)) < 0) {
		log_error("--accel wants auto, kvm or tcg");
		return -1;
	}
	return 0;
}

static int
agent_net_init(void)
{
	struct net_config nc;
	char hash[UTIL_HASH_LEN + 1];

	memset(&nc, 0, sizeof(nc));
	snprintf(nc.host, sizeof(nc.host), "%s", agent_cfg.name);
	/* One agent's objects: its data directory names it on this machine. */
	util_hash_hex(agent_cfg.data, hash);
	snprintf(nc.owner, sizeof(nc.owner), "cvirt:%.16s", hash);
	nc.sync = report_kick;
	/* Its files are named on helpers' command lines: a run directory
	 * with blanks or quotes gets a plain one instead. */
	if (util_fmt(nc.run, sizeof(nc.run), "%s/net", agent_cfg.run) < 0 ||
	    !net_path_safe(nc.run))
		snprintf(nc.run, sizeof(nc.run), "/tmp/cvirt-net-%.16s", hash);
	if (util_fmt(nc.data, sizeof(nc.data), "%s", agent_cfg.data) < 0 ||
	    net_init(&nc) < 0) {
		log_error("cannot start the network module");
		return -1;
	}
	return 0;
}

int
agent_main(int argc, char **argv)
{
	struct httpd_config hc;
	struct httpd_ws_route ws[2];
	struct httpd *h = NULL;
	struct httpd_config tls;
	struct sysinfo si;
	char path[PATH_MAX];
	sigset_t set;
	int sig, rc = 1, vms_known = 0;

	if (config_args("agent", &argc, &argv) < 0 ||
	    agent_parse(argc, argv) < 0)
		return 2;
	if (util_fmt(agent_cfg.url, sizeof(agent_cfg.url), "http://%s",
	    agent_cfg.listen) < 0)
		return 2;
	agent_cfg.cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	/* Migrations arrive on the address the manager reaches us on. */
	if (agent_cfg.migration_addr[0] == '\0') {
		const char *colon = strrchr(agent_cfg.listen, ':');
		int n = colon ? (int)(colon - agent_cfg.listen) : 0;
		snprintf(agent_cfg.migration_addr, sizeof(agent_cfg.migration_addr),
		    "%.*s", n, agent_cfg.listen);
		if (n == 0 || strcmp(agent_cfg.migration_addr, "0.0.0.0") == 0)
			snprintf(agent_cfg.migration_addr,
			    sizeof(agent_cfg.migration_addr), "127.0.0.1");
	}
	if (agent_cfg.memory_mib == 0 && sysinfo(&si) == 0)
		agent_cfg.memory_mib = (int64_t)((uint64_t)si.totalram *
		    si.mem_unit / (1024 * 1024));
	if (util_mkdir_p(agent_cfg.data, 0700) < 0 ||
	    util_fmt(path, sizeof(path), "%s/vms", agent_cfg.data) < 0 ||
	    util_mkdir_p(path, 0700) < 0 ||
	    util_fmt(path, sizeof(path), "%s/logs", agent_cfg.data) < 0 ||
	    util_mkdir_p(path, 0700) < 0 || agent_run_dir() < 0) {
		log_error("cannot prepare %s: %s", agent_cfg.data, strerror(errno));
		return 1;
	}
	if (agent_lock() < 0)
		return 1;
	/* This host's key, then, in a cluster with certificates, one (or a
	 * renewed one) and TLS: only the agent that holds the data
	 * directory touches them. */
	if (report_secret_init() < 0 || agent_tls_setup(&tls) < 0)
		return 1;
	/* QEMU runs as the agent until the switch (issue 15, B2) passes a
	 * user here. */
	if (agent_qemu_user_init(NULL, path, sizeof(path)) < 0) {
		log_error("%s", path);
		return 1;
	}
	log_info("host %s: accel %s (%s)", agent_cfg.name, agent_cfg.accel,
	    agent_cfg.accel_reason);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The domains' threads first: their O_DIRECT probes decide what the
	 * keeper's configuration says of each domain. */
	if (domwatch_start() < 0) {
		log_error("cannot start the storage domain threads");
		return 1;
	}
	/* No VM starts here without a live keeper: none at all, none now. */
	if (keeperctl_start() < 0)
		return 1;
	/* Before the re-attach, which may delete the TAPs of VMs that ended
	 * meanwhile; the TAPs of running VMs are held open and stay. */
	if (agent_net_init() < 0)
		goto cleanup;
	if (vmhost_init() < 0)
		goto cleanup;
	vmadopt_start();
	vms_known = 1;
	memset(&hc, 0, sizeof(hc));
	hc.listen = agent_cfg.listen;
	hc.threads = 16;
	hc.long_threads = 32;	/* consoles: the manager's CONSOLE_MAX */
	hc.bulk_threads = 2;
	hc.routes = agent_routes;
	hc.nroutes = agent_nroutes;
	ws[0] = serial_ws_route;
	ws[1] = vnc_ws_route;
	hc.ws = ws;
	hc.nws = 2;
	hc.auth = agent_auth;
	hc.tls_cert = tls.tls_cert;
	hc.tls_key = tls.tls_key;
	hc.tls_client_ca = tls.tls_client_ca;
	hc.tls_require_client = tls.tls_require_client;
	if ((h = httpd_start(&hc)) == NULL) {
		log_error("cannot listen on %s", agent_cfg.listen);
		goto cleanup;
	}
	if (report_start() < 0)
		goto cleanup;
	log_info("agent %s listening on %s", agent_cfg.name, agent_cfg.listen);
	do {
		if (sigwait(&set, &sig) != 0)
			break;
	} while (sig == SIGHUP);
	/* Set before the report thread's SIGTERM. */
	if (report_was_refused())
		log_info("refused by the manager: stopping the agent");
	else
		log_info("signal %d: stopping the agent (VMs keep running)",
		    sig);
	report_stop();
	net_stop();	/* networks and TAPs stay for the running VMs */
	rc = report_was_refused() ? 1 : 0;
cleanup:
	httpd_stop(h);
	/* With no VM left the host leaves (also when this agent could not
	 * start, e.g. its port was taken): its leases go too. VMs of an
	 * earlier agent that still run keep theirs renewed. */
	if (vms_known) {
		json_t *vms = vmhost_list();
		keeperctl_stop(json_array_size(vms) == 0);
		json_decref(vms);
	} else {
		keeperctl_stop(0);
	}
	return rc;
}
