/* sim_host.c - what each simulated host does: answers the manager's agent
 * calls from a table of VMs, and registers and reports (heartbeats with
 * every VM's state and usage counters) like src/agent/report.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/httpc.h"
#include "common/log.h"
#include "sim/sim_int.h"

volatile int sim_quit;
static pthread_mutex_t sim_url_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t sim_mgr;

void
sim_url(char *out, size_t outsz, const char *path)
{
	char base[512];

	pthread_mutex_lock(&sim_url_lock);
	if (util_list_item(sim_cfg.manager, sim_mgr, base, sizeof(base)) < 0) {
		sim_mgr = 0;
		util_list_item(sim_cfg.manager, 0, base, sizeof(base));
	}
	pthread_mutex_unlock(&sim_url_lock);
	snprintf(out, outsz, "%s%s", base, path);
}

/* Unreachable (0) or a standby (503): the next manager of the list. */
void
sim_failover(long status)
{
	char next[512];

	if (status != 0 && status != 503)
		return;
	pthread_mutex_lock(&sim_url_lock);
	if (util_list_item(sim_cfg.manager, sim_mgr + 1, next,
	    sizeof(next)) == 0)
		sim_mgr++;
	else
		sim_mgr = 0;
	pthread_mutex_unlock(&sim_url_lock);
}

static struct sim_host *
sim_host_find(const char *name)
{
	int i;

	/* Names are PREFIX-%05d: the index is in the name. */
	if (strncmp(name, sim_cfg.prefix, strlen(sim_cfg.prefix)) != 0 ||
	    name[strlen(sim_cfg.prefix)] != '-')
		return NULL;
	i = (int)strtol(name + strlen(sim_cfg.prefix) + 1, NULL, 10);
	if (i < 0 || i >= sim_cfg.hosts || strcmp(sim_cfg.tab[i].name, name) != 0)
		return NULL;
	return &sim_cfg.tab[i];
}

/* Caller holds h->lock. */
static struct sim_vm *
sim_vm_find(struct sim_host *h, const char *uuid)
{
	size_t i;

	for (i = 0; i < h->nvms; i++)
		if (strcmp(h->vms[i].uuid, uuid) == 0)
			return &h->vms[i];
	return NULL;
}

void
sim_vm_add(struct sim_host *h, const char *uuid, const char *state)
{
	struct sim_vm *v;

	pthread_mutex_lock(&h->lock);
	if ((v = sim_vm_find(h, uuid)) == NULL) {
		if (h->nvms == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 8;
			struct sim_vm *n = realloc(h->vms, cap * sizeof(*n));
			if (n == NULL)
				goto cleanup;
			h->vms = n;
			h->cap = cap;
		}
		v = &h->vms[h->nvms++];
		memset(v, 0, sizeof(*v));
		snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
		v->pid = 100000 + (int64_t)(rand() % 800000);
	}
	snprintf(v->state, sizeof(v->state), "%s", state);
cleanup:
	pthread_mutex_unlock(&h->lock);
}

/* The host and VM of a call, checking the manager used this host's key. */
static struct sim_host *
sim_req_host(struct httpd_req *r)
{
	struct sim_host *h = sim_host_find(r->params[0]);
	int ok;

	if (h == NULL) {
		httpd_reply_error(r, 404, "no simulated host %s", r->params[0]);
		return NULL;
	}
	pthread_mutex_lock(&h->lock);
	ok = h->key[0] && r->token && strcmp(h->key, r->token) == 0;
	pthread_mutex_unlock(&h->lock);
	if (!ok) {
		httpd_reply_error(r, 401, "wrong agent key");
		return NULL;
	}
	if (r->nparams > 1 && !util_uuid_valid(r->params[1])) {
		httpd_reply_error(r, 400, "invalid VM uuid");
		return NULL;
	}
	return h;
}

static int
sim_ok(struct httpd_req *r)
{
	return httpd_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static int
sim_define(struct httpd_req *r)
{
	return sim_req_host(r) ? sim_ok(r) : 0;
}

static int
sim_start(struct httpd_req *r)
{
	struct sim_host *h = sim_req_host(r);
	struct sim_vm *v;
	int64_t pid = 0;

	if (h == NULL)
		return 0;
	sim_vm_add(h, r->params[1], "running");
	pthread_mutex_lock(&h->lock);
	if ((v = sim_vm_find(h, r->params[1])) != NULL)
		pid = v->pid;
	pthread_mutex_unlock(&h->lock);
	return httpd_reply_json(r, 200, json_pack("{s:s, s:I}", "state",
	    "running", "pid", (json_int_t)pid));
}

static int
sim_stop(struct httpd_req *r)
{
	struct sim_host *h = sim_req_host(r);
	struct sim_vm *v;

	if (h == NULL)
		return 0;
	pthread_mutex_lock(&h->lock);
	if ((v = sim_vm_find(h, r->params[1])) != NULL)
		*v = h->vms[--h->nvms];
	pthread_mutex_unlock(&h->lock);
	return httpd_reply_json(r, 200, json_pack("{s:s}", "state", "stopped"));
}

/* pause, resume, reboot */
static int
sim_op(struct httpd_req *r)
{
	struct sim_host *h = sim_req_host(r);
	const char *op = r->params[2];
	struct sim_vm *v;
	int found;

	if (h == NULL)
		return 0;
	if (strcmp(op, "pause") != 0 && strcmp(op, "resume") != 0 &&
	    strcmp(op, "reboot") != 0)
		return httpd_reply_error(r, 404, "operation %s is not simulated",
		    op);
	pthread_mutex_lock(&h->lock);
	if ((v = sim_vm_find(h, r->params[1])) != NULL &&
	    strcmp(op, "reboot") != 0)
		snprintf(v->state, sizeof(v->state), "%s",
		    strcmp(op, "pause") == 0 ? "paused" : "running");
	found = v != NULL;
	pthread_mutex_unlock(&h->lock);
	if (!found)
		return httpd_reply_error(r, 409, "vm %s is not running here",
		    r->params[1]);
	return sim_ok(r);
}

static json_t *
sim_storage(void)
{
	return json_pack("[{s:s, s:s, s:b, s:s, s:I, s:I}]", "name",
	    SIM_STORAGE, "path", "/sim", "ok", 1, "error", "", "total_bytes",
	    (json_int_t)1 << 42, "free_bytes", (json_int_t)1 << 41);
}

static int
sim_info(struct httpd_req *r)
{
	if (sim_req_host(r) == NULL)
		return 0;
	return httpd_reply_json(r, 200, json_pack("{s:s, s:o}", "name",
	    r->params[0], "storage", sim_storage()));
}

const struct httpd_route sim_routes[] = {
	{ "GET",    "/sim/{}/agent/v1/info",          sim_info, 0, 0 },
	{ "PUT",    "/sim/{}/agent/v1/vms/{}",        sim_define, 0, 0 },
	{ "DELETE", "/sim/{}/agent/v1/vms/{}",        sim_define, 0, 0 },
	{ "POST",   "/sim/{}/agent/v1/vms/{}/start",  sim_start, 0, 0 },
	{ "POST",   "/sim/{}/agent/v1/vms/{}/stop",   sim_stop, 0, 0 },
	{ "POST",   "/sim/{}/agent/v1/vms/{}/{}",     sim_op, 0, 0 },
};
const size_t sim_nroutes = sizeof(sim_routes) / sizeof(sim_routes[0]);

/* The report body: VMs with their state, and usage counters that grow
 * like a lightly loaded host's. */
static json_t *
sim_report_body(struct sim_host *h, int64_t now)
{
	json_t *vms = json_array(), *per = json_object();
	size_t i;

	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->nvms; i++) {
		struct sim_vm *v = &h->vms[i];

		v->cpu_ms += h->interval_ms / 20;
		json_array_append_new(vms, json_pack("{s:s, s:s, s:I}", "uuid",
		    v->uuid, "state", v->state, "pid", (json_int_t)v->pid));
		json_object_set_new(per, v->uuid, json_pack("{s:I, s:I, s:I, "
		    "s:I}", "cpu_ms", (json_int_t)v->cpu_ms, "rss_kib",
		    (json_int_t)262144, "disk_read_bytes", (json_int_t)v->cpu_ms
		    * 100, "disk_write_bytes", (json_int_t)v->cpu_ms * 10));
	}
	pthread_mutex_unlock(&h->lock);
	return json_pack("{s:s, s:o, s:[], s:{s:{s:I, s:I, s:I, s:I}, s:o}}",
	    "name", h->name, "vms", vms, "exits", "stats", "host",
	    "cpu_busy_ticks", (json_int_t)(now / 100), "cpu_total_ticks",
	    (json_int_t)(now / 10) * SIM_HOST_CPUS, "mem_total_kib",
	    (json_int_t)SIM_HOST_MIB * 1024, "mem_used_kib",
	    (json_int_t)(h->nvms * 262144 + 1048576), "vms", per);
}

/* A simulated host's key: the BLAKE2b of the token and its name (64 hex
 * digits), so a restarted sim registers its hosts again as themselves (a
 * token admits only new hosts; docs/security.md). */
static void
sim_host_key(const struct sim_host *h, char *out, size_t outsz)
{
	crypto_generichash_state st;
	unsigned char md[32];
	size_t i;

	crypto_generichash_init(&st, NULL, 0, sizeof(md));
	crypto_generichash_update(&st, (const unsigned char *)sim_cfg.token,
	    strlen(sim_cfg.token) + 1);
	crypto_generichash_update(&st, (const unsigned char *)h->name,
	    strlen(h->name));
	crypto_generichash_final(&st, md, sizeof(md));
	out[0] = '\0';
	for (i = 0; i < sizeof(md) && 2 * i + 2 < outsz; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Registration lists the host's VMs as a report does (an agent that
 * re-registers lists those it re-attached to): with none, the manager
 * would take every VM placed on the host as ended. With the host's key
 * first (a host this sim, or one before it, registered), then the
 * token. */
static void
sim_register(struct sim_host *h)
{
	struct httpc_resp resp;
	char url[1200], self[600], mine[72];
	const char *cred[2] = { mine, sim_cfg.token };
	json_t *body, *key, *vms = json_array();
	int64_t iv;
	size_t i;
	int c;

	pthread_mutex_lock(&h->lock);
	for (i = 0; i < h->nvms; i++)
		json_array_append_new(vms, json_pack("{s:s, s:s, s:I}", "uuid",
		    h->vms[i].uuid, "state", h->vms[i].state, "pid",
		    (json_int_t)h->vms[i].pid));
	pthread_mutex_unlock(&h->lock);
	sim_host_key(h, mine, sizeof(mine));
	snprintf(self, sizeof(self), "http://%s/sim/%s", sim_cfg.listen, h->name);
	body = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:o, s:o, s:s, s:s}",
	    "name", h->name, "url", self, "accel", "kvm", "accel_reason",
	    "simulated host", "cpus", SIM_HOST_CPUS, "memory_mib",
	    (json_int_t)SIM_HOST_MIB, "storage", sim_storage(), "vms", vms,
	    "version", "1", "agent_key", mine);
	sim_url(url, sizeof(url), "/api/v1/agent/register");
	for (c = 0; c < 2; c++) {
		if (httpc_request("POST", url, cred[c], body, 30000, &resp) < 0 ||
		    resp.status != 401 || c == 1)
			break;
		httpc_resp_free(&resp);	/* not known by its key: the token */
	}
	if (resp.status == 0 || resp.status == 503) {
		sim_failover(resp.status);
	} else if (resp.status == 200 &&
	    json_is_string(key = json_object_get(resp.json, "agent_key"))) {
		iv = json_integer_value(json_object_get(resp.json,
		    "heartbeat_interval_ms"));
		pthread_mutex_lock(&h->lock);
		snprintf(h->key, sizeof(h->key), "%s", json_string_value(key));
		h->interval_ms = iv >= 100 && iv <= 600000 ? iv : 1000;
		pthread_mutex_unlock(&h->lock);
	} else {
		log_warnx("host %s: registration refused (%ld): %s", h->name,
		    resp.status, resp.err);
		if (resp.status == 401 || resp.status == 403 ||
		    resp.status == 409)
			exit(1);
	}
	httpc_resp_free(&resp);
	json_decref(body);
}

static void
sim_report(struct sim_host *h, int64_t now)
{
	struct httpc_resp resp;
	char url[1200], key[128];
	json_t *body = sim_report_body(h, now);

	pthread_mutex_lock(&h->lock);
	snprintf(key, sizeof(key), "%s", h->key);
	pthread_mutex_unlock(&h->lock);
	sim_url(url, sizeof(url), "/api/v1/agent/report");
	if (httpc_request("POST", url, key, body, 30000, &resp) < 0 ||
	    resp.status == 503) {
		sim_failover(resp.status);
	} else if (resp.status == 401 || resp.status == 404) {
		pthread_mutex_lock(&h->lock);
		h->key[0] = '\0';	/* unknown to this manager: register */
		pthread_mutex_unlock(&h->lock);
	} else if (resp.status == 200) {
		/* A large cluster asks its hosts to report less often. */
		json_int_t iv = json_integer_value(json_object_get(resp.json,
		    "heartbeat_interval_ms"));
		if (iv >= 100 && iv <= 600000)
			h->interval_ms = iv;
	}
	httpc_resp_free(&resp);
	json_decref(body);
}

void *
sim_reporter(void *arg)
{
	int t = (int)(intptr_t)arg, i, any;
	int64_t now;

	while (!sim_quit) {
		any = 0;
		for (i = t; i < sim_cfg.hosts && !sim_quit; i += sim_cfg.threads) {
			struct sim_host *h = &sim_cfg.tab[i];

			now = util_mono_ms();
			if (now < h->next_report)
				continue;
			any = 1;
			if (h->key[0] == '\0') {
				sim_register(h);
				/* Spread the first reports over an interval. */
				h->next_report = now + (h->key[0] ? (int64_t)
				    (rand() % (int)h->interval_ms) : 1000);
			} else {
				sim_report(h, util_wall_ms());
				h->next_report += h->interval_ms;
				if (h->next_report < now)	/* fell behind */
					h->next_report = now + h->interval_ms;
			}
		}
		if (!any)
			util_sleep_ms(5);
	}
	return NULL;
}
