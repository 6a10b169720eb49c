/* sim.c - `cvirt sim`: N simulated hosts with M VMs each, for scale tests
 * and benchmarks. Hosts register and heartbeat through the real agent
 * protocol from a few threads; VMs are created and started through the
 * real API (placement, tasks, agent calls answered by sim_host.c). Prints
 * one line when the manager's view has converged, then heartbeats until
 * SIGTERM/SIGINT. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/httpc.h"
#include "common/log.h"
#include "sim/sim.h"
#include "sim/sim_int.h"

#define SIM_MAX_THREADS	64
#define SIM_CREATORS	6

struct sim_cfg sim_cfg;

static const char sim_usage[] =
    "usage: cvirt sim --manager URL[,URL...] --token-file FILE --hosts N\n"
    "                 --vms-per-host M [--listen HOST:PORT] [--prefix NAME]\n"
    "                 [--threads T]\n";

static int
sim_parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "manager", required_argument, NULL, 'm' },
		{ "token-file", required_argument, NULL, 't' },
		{ "hosts", required_argument, NULL, 'H' },
		{ "vms-per-host", required_argument, NULL, 'V' },
		{ "listen", required_argument, NULL, 'l' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tokfile = NULL;
	uint64_t v;
	int c, hosts = -1, vms = -1;

	snprintf(sim_cfg.listen, sizeof(sim_cfg.listen), "127.0.0.1:7990");
	snprintf(sim_cfg.prefix, sizeof(sim_cfg.prefix), "sim");
	sim_cfg.threads = 8;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': snprintf(sim_cfg.manager, sizeof(sim_cfg.manager), "%s", optarg); break;
		case 't': tokfile = optarg; break;
		case 'l': snprintf(sim_cfg.listen, sizeof(sim_cfg.listen), "%s", optarg); break;
		case 'p':
			if (util_fmt(sim_cfg.prefix, sizeof(sim_cfg.prefix), "%s",
			    optarg) < 0 || !util_name_valid(optarg)) {
				log_error("--prefix wants a short host name");
				return -1;
			}
			break;
		case 'H': case 'V': case 'T':
			if (util_parse_u64(optarg, c == 'T' ? 1 : 0, c == 'H' ?
			    99999 : c == 'V' ? 999 : SIM_MAX_THREADS, &v) < 0) {
				log_error("--%s: out of range", c == 'H' ? "hosts" :
				    c == 'V' ? "vms-per-host" : "threads");
				return -1;
			}
			if (c == 'H')
				hosts = (int)v;
			else if (c == 'V')
				vms = (int)v;
			else
				sim_cfg.threads = (int)v;
			break;
		case 'h': fputs(sim_usage, stdout); exit(0);
		default:
			log_error("unknown or incomplete option %s\n%s",
			    argv[optind - 1], sim_usage);
			return -1;
		}
	}
	if (optind < argc || !sim_cfg.manager[0] || !tokfile || hosts < 1 ||
	    vms < 0) {
		log_error("missing or unexpected arguments\n%s", sim_usage);
		return -1;
	}
	if (util_read_token(tokfile, sim_cfg.token, sizeof(sim_cfg.token)) < 0) {
		log_error("cannot read a token from %s", tokfile);
		return -1;
	}
	sim_cfg.hosts = hosts;
	sim_cfg.vms_per_host = vms;
	return 0;
}

/* An API call with the admin token; the reply's status (0: unreachable). */
static long
sim_api(const char *method, const char *path, json_t *body, json_t **out)
{
	struct httpc_resp resp;
	char url[1200];
	long st;

	sim_url(url, sizeof(url), path);
	if (httpc_request(method, url, sim_cfg.token, body, 60000, &resp) < 0 ||
	    resp.status == 503)
		sim_failover(resp.status);
	st = resp.status;
	if (out) {
		*out = resp.json;
		resp.json = NULL;
	}
	httpc_resp_free(&resp);
	return st;
}

static int
sim_host_index(const char *name)
{
	size_t pl = strlen(sim_cfg.prefix);
	long i;
	char *end;

	if (name == NULL || strncmp(name, sim_cfg.prefix, pl) != 0 ||
	    name[pl] != '-')
		return -1;
	i = strtol(name + pl + 1, &end, 10);
	if (*end != '\0' || i < 0 || i >= sim_cfg.hosts)
		return -1;
	return (int)i;
}

/* What the manager believes runs on our hosts runs (an agent restarted
 * re-attaches its VMs): returns how many of our VMs it lists. */
static int
sim_adopt(json_t *vms)
{
	json_t *v;
	size_t i;
	int k, n = 0;

	json_array_foreach(vms, i, v) {
		const char *st = json_string_value(json_object_get(v, "state"));

		k = sim_host_index(json_string_value(json_object_get(v, "host")));
		if (k >= 0 && st && (strcmp(st, "running") == 0 ||
		    strcmp(st, "paused") == 0))
			sim_vm_add(&sim_cfg.tab[k], json_string_value(
			    json_object_get(v, "uuid")), st);
		n++;
	}
	return n;
}

/* Creator thread c creates and starts VM j of host i for i = c mod K. */
static void *
sim_creator(void *arg)
{
	int c = (int)(intptr_t)arg, i, j;
	char name[UTIL_NAME_MAX + 1], path[128];
	json_t *body;
	long st;

	for (i = c; i < sim_cfg.hosts && !sim_quit; i += SIM_CREATORS) {
		for (j = 0; j < sim_cfg.vms_per_host && !sim_quit; j++) {
			snprintf(name, sizeof(name), "%s-vm%05d-%03d",
			    sim_cfg.prefix, i, j);
			body = json_pack("{s:s, s:i, s:i, s:s, s:s}", "name", name,
			    "cpus", 1, "memory_mib", 256, "host",
			    sim_cfg.tab[i].name, "storage", SIM_STORAGE);
			st = sim_api("POST", "/api/v1/vms", body, NULL);
			json_decref(body);
			if (st != 201 && st != 200 && st != 409) {
				log_warnx("creating %s: HTTP %ld", name, st);
				continue;
			}
			snprintf(path, sizeof(path), "/api/v1/vms/%s/start", name);
			body = json_object();
			st = sim_api("POST", path, body, NULL);
			json_decref(body);
			if (st != 202 && st != 409)
				log_warnx("starting %s: HTTP %ld", name, st);
		}
	}
	return NULL;
}

/* VMs our hosts run: created by this sim or adopted. */
static int
sim_vms_held(void)
{
	int i, n = 0;

	for (i = 0; i < sim_cfg.hosts; i++) {
		pthread_mutex_lock(&sim_cfg.tab[i].lock);
		n += (int)sim_cfg.tab[i].nvms;
		pthread_mutex_unlock(&sim_cfg.tab[i].lock);
	}
	return n;
}

/* 1 when every host is up, the VMs to create are there, and the manager
 * shows every VM our hosts run (created or adopted) running or paused
 * where we run it. *running counts those. */
static int
sim_converged(int *up, int *running)
{
	json_t *hosts = NULL, *vms = NULL, *v;
	int held = sim_vms_held();
	const char *st;
	size_t i;

	*up = *running = 0;
	if (sim_api("GET", "/api/v1/hosts", NULL, &hosts) == 200)
		json_array_foreach(hosts, i, v)
			if (sim_host_index(json_string_value(json_object_get(v,
			    "name"))) >= 0 && strcmp(json_string_value(
			    json_object_get(v, "state")), "up") == 0)
				(*up)++;
	if (sim_api("GET", "/api/v1/vms", NULL, &vms) == 200)
		json_array_foreach(vms, i, v)
			if (sim_host_index(json_string_value(json_object_get(v,
			    "host"))) >= 0 && (st = json_string_value(
			    json_object_get(v, "state"))) != NULL &&
			    (strcmp(st, "running") == 0 || strcmp(st, "paused") == 0))
				(*running)++;
	json_decref(hosts);
	json_decref(vms);
	return *up == sim_cfg.hosts && held >= sim_cfg.hosts *
	    sim_cfg.vms_per_host && *running == held;
}

static int
sim_run(sigset_t *set)
{
	pthread_t rep[SIM_MAX_THREADS], cr[SIM_CREATORS];
	int64_t t0 = util_mono_ms(), last = 0;
	int i, up, running, nrep = 0, ncr = 0, done = 0, sig;
	struct timespec tick = { 1, 0 };
	json_t *vms = NULL;

	if (sim_api("GET", "/api/v1/vms", NULL, &vms) == 200)
		sim_adopt(vms);
	json_decref(vms);
	for (i = 0; i < sim_cfg.threads; i++, nrep++)
		if (pthread_create(&rep[i], NULL, sim_reporter,
		    (void *)(intptr_t)i) != 0)
			break;
	/* VMs need their host registered (placement, the define call). */
	while (!done) {
		sim_converged(&up, &running);
		if (up == sim_cfg.hosts)
			break;
		if (sigtimedwait(set, NULL, &tick) > 0)
			goto stop;
	}
	log_info("%d hosts up after %lld ms; creating VMs", up,
	    (long long)(util_mono_ms() - t0));
	for (i = 0; i < SIM_CREATORS; i++, ncr++)
		if (pthread_create(&cr[i], NULL, sim_creator,
		    (void *)(intptr_t)i) != 0)
			break;
	/* A full VM list is not free at 20,000 VMs: look less often. */
	tick.tv_sec = sim_cfg.hosts * sim_cfg.vms_per_host > 2000 ? 5 : 1;
	for (;;) {
		if (!done && sim_converged(&up, &running)) {
			done = 1;
			printf("converged: %d hosts up, %d VMs running after %.1f s\n",
			    up, running, (double)(util_mono_ms() - t0) / 1000.0);
			fflush(stdout);
		} else if (!done && util_mono_ms() - last > 10000) {
			last = util_mono_ms();
			log_info("%d/%d hosts up, %d/%d VMs running", up,
			    sim_cfg.hosts, running, sim_cfg.hosts *
			    sim_cfg.vms_per_host);
		}
		if ((sig = sigtimedwait(set, NULL, &tick)) > 0)
			break;
	}
stop:
	sim_quit = 1;
	for (i = 0; i < ncr; i++)
		pthread_join(cr[i], NULL);
	for (i = 0; i < nrep; i++)
		pthread_join(rep[i], NULL);
	return done ? 0 : 1;
}

int
sim_main(int argc, char **argv)
{
	struct httpd_config hc;
	struct httpd *h = NULL;
	sigset_t set;
	int i, rc = 1;

	if (sim_parse(argc, argv) < 0)
		return 2;
	if ((sim_cfg.tab = calloc((size_t)sim_cfg.hosts,
	    sizeof(*sim_cfg.tab))) == NULL)
		return 1;
	for (i = 0; i < sim_cfg.hosts; i++) {
		pthread_mutex_init(&sim_cfg.tab[i].lock, NULL);
		snprintf(sim_cfg.tab[i].name, sizeof(sim_cfg.tab[i].name),
		    "%s-%05d", sim_cfg.prefix, i);
		sim_cfg.tab[i].interval_ms = 1000;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(&hc, 0, sizeof(hc));
	hc.listen = sim_cfg.listen;
	hc.threads = 16;
	hc.routes = sim_routes;
	hc.nroutes = sim_nroutes;
	if ((h = httpd_start(&hc)) == NULL) {
		log_error("cannot listen on %s", sim_cfg.listen);
		goto cleanup;
	}
	log_info("simulating %d hosts x %d VMs on %s", sim_cfg.hosts,
	    sim_cfg.vms_per_host, sim_cfg.listen);
	rc = sim_run(&set);
cleanup:
	httpd_stop(h);
	for (i = 0; i < sim_cfg.hosts; i++)
		free(sim_cfg.tab[i].vms);
	free(sim_cfg.tab);
	return rc;
}
