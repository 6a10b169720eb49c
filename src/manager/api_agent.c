/* api_agent.c - what agents call: registration and state reports. The
 * manager's view converges to the agents' truth through these. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/beneath.h"
#include "common/log.h"
#include "common/pki.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
/* A report built before a task changed the VM may still be in flight:
 * leave a freshly changed VM alone this long. */
#define REPORT_SETTLE_MS 2000

static int
api_vm_settled(json_t *row, int64_t now)
{
	return json_is_null(json_object_get(row, "task_id")) &&
	    now - json_integer_value(json_object_get(row, "updated")) >=
	    REPORT_SETTLE_MS;
}

static void
api_apply_exit(const char *host, json_t *e, int64_t now)
{
	json_t *row = db_row("SELECT * FROM vms WHERE uuid = ?", "s",
	    JS(e, "uuid"));
	const char *state = JS(e, "state");

	if (row == NULL || !json_is_null(json_object_get(row, "task_id")) ||
	    JS(row, "host") == NULL || strcmp(JS(row, "host"), host) != 0 ||
	    state == NULL)
		goto cleanup;
	/* A source that handed its VM over, or a destination whose incoming
	 * migration failed, did not end the VM. */
	if (strcmp(state, "migrated") == 0 || strcmp(state, "incoming-failed") == 0)
		goto cleanup;
	if (strcmp(state, "failed") != 0)
		state = "stopped";
	vm_set_state(JS(row, "uuid"), state, NULL, 0);
	event_add(strcmp(state, "failed") == 0 ? "error" : "info", "vm.state",
	    JS(row, "name"), "vm %s on host %s: %s (%s)", JS(row, "name"), host,
	    state, JS(e, "reason") ? JS(e, "reason") : "exited");
	/* A failure is HA's to handle; a guest that shut itself down meant it. */
	if (strcmp(state, "failed") == 0)
		failover_vm_failed(JS(row, "name"), host, JS(e, "reason"));
	else
		db_exec("UPDATE vms SET desired = 'stopped' WHERE uuid = ?", "s",
		    JS(row, "uuid"));
cleanup:
	json_decref(row);
}

static int
api_host_up(const char *name)
{
	json_t *h = db_row("SELECT name FROM hosts WHERE name = ? AND state = "
	    "'up'", "s", name);
	int up = h != NULL;

	json_decref(h);
	return up;
}

/* The host the VM row is recorded on can no longer run it (failover.c's
 * lease rules), so another host's report may claim it. */
static int
api_vm_released(json_t *row)
{
	json_t *full = db_row("SELECT * FROM vms WHERE uuid = ?", "s",
	    JS(row, "uuid")), *spec = full ? vm_spec(full) : NULL;
	int gone = spec != NULL && failover_vm_released(JS(row, "host"), spec);

	json_decref(spec);
	json_decref(full);
	return gone;
}

/* row: the VM's inventory row (borrowed), NULL when unknown. */
static void
api_apply_running(const char *host, json_t *v, json_t *row, int64_t now,
    json_t *stop)
{
	static const char *const ok[] = { "running", "paused", "starting",
	    "stopping", "failed", "unknown", NULL };
	const char *state = JS(v, "state");
	int64_t pid = json_integer_value(json_object_get(v, "pid"));
	size_t i;

	if (row == NULL) {
		log_debug("host %s runs unknown VM %s", host, JS(v, "uuid"));
		return;
	}
	/* A paused source copy left after a migration that completed while
	 * its agent was away: the VM runs elsewhere, end this copy. */
	if (state && strcmp(state, "postmigrate") == 0 && JS(row, "host") &&
	    strcmp(JS(row, "host"), host) != 0 &&
	    strcmp(JS(row, "state"), "running") == 0) {
		json_array_append_new(stop, json_string(JS(v, "uuid")));
		return;
	}
	for (i = 0; state && ok[i] && strcmp(ok[i], state) != 0; i++)
		;
	if (state == NULL || ok[i] == NULL || !api_vm_settled(row, now))
		return;
	/* Recorded as running on another host that is up: this copy is one
	 * too many (a VM never runs twice). Whatever state the copy is in
	 * (stopping once told to stop, ...), it does not move the VM's
	 * record: its exit would then read as the VM's own shutdown. */
	if (JS(row, "host") && strcmp(JS(row, "host"), host) != 0 &&
	    (strcmp(JS(row, "state"), "running") == 0 ||
	    strcmp(JS(row, "state"), "paused") == 0 ||
	    strcmp(JS(row, "state"), "unknown") == 0) &&
	    api_host_up(JS(row, "host"))) {
		if (strcmp(state, "running") != 0 && strcmp(state, "paused") != 0 &&
		    strcmp(state, "unknown") != 0)
			return;
		json_array_append_new(stop, json_string(JS(v, "uuid")));
		event_add("error", "vm.duplicate", JS(row, "name"), "vm %s "
		    "reported %s on %s while it runs on %s: stopping the "
		    "copy on %s", JS(row, "name"), state, host, JS(row, "host"),
		    host);
		return;
	}
	/* Recorded on another host that does not report: that host's copy
	 * may still run until its leases expired under the fence rules, and
	 * this report may be a lie; taking the VM over here would let its
	 * exit restart it while the first copy runs. */
	if (JS(row, "host") && strcmp(JS(row, "host"), host) != 0 &&
	    !api_vm_released(row)) {
		log_warn("host %s reports vm %s %s while it is recorded on host "
		    "%s, which may still run it: ignored", host, JS(row, "name"),
		    state, JS(row, "host"));
		return;
	}
	if (strcmp(JS(row, "state"), state) != 0 || JS(row, "host") == NULL ||
	    strcmp(JS(row, "host"), host) != 0 ||
	    json_integer_value(json_object_get(row, "pid")) != pid) {
		vm_set_state(JS(row, "uuid"), state, host, pid);
		if (strcmp(state, "unknown") == 0 && strcmp(JS(row, "state"),
		    state) != 0)
			event_add("warning", "vm.unknown", JS(row, "name"), "vm %s "
			    "is unknown on host %s: %s (QEMU pid %lld)",
			    JS(row, "name"), host, JS(v, "reason") ? JS(v,
			    "reason") : "the agent cannot attach to it",
			    (long long)pid);
		else if (strcmp(JS(row, "state"), state) != 0)
			event_add("info", "vm.state", JS(row, "name"),
			    "vm %s on host %s: %s (was %s)", JS(row, "name"), host,
			    state, JS(row, "state"));
	}
}

/* The columns reconciliation reads (not the spec: reports are hot). */
#define REPORT_COLS "SELECT uuid, name, state, host, pid, task_id, updated " \
	"FROM vms "

/* Apply one host's report: its VMs, its exits, and what it no longer runs.
 * One query for the VMs the inventory places on the host; one more only
 * per reported VM placed elsewhere; writes only for changes. */
/* scan: the agent's word on its scan of its run directory and processes
 * ("complete", "partial"; NULL from agents before issue 14, which mean
 * complete). */
static void
api_apply_report(const char *host, json_t *vms, json_t *exits, json_t *stop,
    const char *scan)
{
	json_t *rows, *row, *v, *seen = json_object(), *byuuid = json_object();
	int64_t now = util_wall_ms();
	size_t i;

	json_array_foreach(exits, i, v)
		if (JS(v, "uuid"))
			api_apply_exit(host, v, now);
	rows = db_query(REPORT_COLS "WHERE host = ?", "s", host);
	json_array_foreach(rows, i, row)
		json_object_set(byuuid, JS(row, "uuid"), row);
	json_array_foreach(vms, i, v) {
		if (!JS(v, "uuid"))
			continue;
		json_object_set_new(seen, JS(v, "uuid"), json_true());
		if ((row = json_object_get(byuuid, JS(v, "uuid"))) != NULL) {
			api_apply_running(host, v, row, now, stop);
			continue;
		}
		row = db_row(REPORT_COLS "WHERE uuid = ?", "s", JS(v, "uuid"));
		api_apply_running(host, v, row, now, stop);
		json_decref(row);
	}
	json_decref(byuuid);
	/* What a partial scan did not see may still run there. */
	if (scan && strcmp(scan, "complete") != 0)
		json_array_clear(rows);
	json_array_foreach(rows, i, row) {
		/* unknown: a QEMU the host saw and could not attach to; only
		 * the lease rules (failover.c) end that. */
		if (json_object_get(seen, JS(row, "uuid")) ||
		    !api_vm_settled(row, now) ||
		    strcmp(JS(row, "state"), "unknown") == 0)
			continue;
		vm_set_state(JS(row, "uuid"), "stopped", NULL, 0);
		event_add("warning", "vm.state", JS(row, "name"), "vm %s is no "
		    "longer running on host %s", JS(row, "name"), host);
	}
	json_decref(rows);
	json_decref(seen);
}

/* The report's "scan": NULL when absent (agents before issue 14). */
static const char *
api_scan(json_t *body)
{
	json_t *v = json_object_get(body, "scan");

	if (v == NULL)
		return NULL;
	return json_is_string(v) ? json_string_value(v) : "partial";
}

/* How the host fences itself ("fence", "timing"), checked against the
 * lease timeout (docs/ha.md, "Timing"); *timing_s a malloc'd JSON text
 * or NULL. -1 with err when the host's settings would break the margin. */
static int
api_agent_fence(struct httpd_req *r, const char *name, const char **fence,
    char **timing_s, char *err, size_t errsz)
{
	struct cluster_settings cs;
	json_t *f = json_object_get(r->body, "fence");
	json_t *t = json_object_get(r->body, "timing");
	const char *keys[] = { "renew_ms", "fence_ms", "kill_grace_ms",
	    "tick_ms", "watchdog_ms" };
	json_t *clean;
	size_t i;

	*fence = NULL;
	*timing_s = NULL;
	if (f == NULL)
		return 0;
	if (!json_is_string(f) || (t != NULL && !json_is_object(t))) {
		snprintf(err, errsz, "fence must be a string and timing an object");
		return -1;
	}
	cluster_get(&cs);
	if (failover_timing_check(name, json_string_value(f), t,
	    cs.ha_lease_timeout_ms, err, errsz) < 0)
		return -1;
	clean = json_object();
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(t, keys[i]);

		if (v == NULL)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 600000) {
			snprintf(err, errsz, "timing.%s must be an integer "
			    "0..600000", keys[i]);
			json_decref(clean);
			return -1;
		}
		json_object_set(clean, keys[i], v);
	}
	*fence = json_string_value(f);
	*timing_s = json_dumps(clean, JSON_COMPACT);
	json_decref(clean);
	return 0;
}

/* A report's storage status (per domain: ok, lease, fence, ...) into the
 * host's info, written only when it changed. */
static void
api_agent_storage(const char *host, json_t *storage)
{
	json_t *row, *info;
	char *old = NULL, *now = NULL;

	if (!json_is_array(storage))
		return;
	row = db_row("SELECT info FROM hosts WHERE name = ?", "s", host);
	info = row && JS(row, "info") ? json_loads(JS(row, "info"), 0, NULL) :
	    NULL;
	if (info == NULL)
		info = json_object();
	old = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
	json_object_set(info, "storage", storage);
	now = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
	if (old && now && strcmp(old, now) != 0)
		db_exec("UPDATE hosts SET info = ? WHERE name = ?", "ss", now,
		    host);
	free(old);
	free(now);
	json_decref(info);
	json_decref(row);
}

/* Networks: the host's realized state in, the desired state out when the
 * agent's generation is not the current one (agents that do not speak
 * of networks, like cvirt sim, get none). */
static void
api_agent_net(const char *host, json_t *body, json_t *reply)
{
	json_t *have = json_object_get(body, "net_gen"), *net;

	vnet_host_status(host, json_object_get(body, "net_status"),
	    json_object_get(body, "net_datapath"));
	if (!json_is_string(have))
		return;
	if ((net = vnet_payload(host, json_string_value(have))) != NULL)
		json_object_set_new(reply, "net", net);
}

/* The key the agent chose (body "agent_key": HOSTID_KEY_LEN lowercase
 * hex digits) into key, or a new one when it sent none (agents before
 * issue 15); *source says which. -1 when it sent something else. */
static int
api_agent_key(struct httpd_req *r, char *key, size_t keysz,
    const char **source)
{
	json_t *k = json_object_get(r->body, "agent_key");
	const char *s = json_string_value(k);

	if (k == NULL) {
		util_random_hex(key, UTIL_TOKEN_LEN / 2);
		*source = "manager";
		return 0;
	}
	if (s == NULL || strlen(s) != HOSTID_KEY_LEN ||
	    strspn(s, "0123456789abcdef") != HOSTID_KEY_LEN || keysz <=
	    HOSTID_KEY_LEN)
		return -1;
	snprintf(key, keysz, "%s", s);
	*source = "agent";
	return 0;
}

/* The key the host keeps: its own when it registers with it, else the
 * one it sent (or a new one), which no other host may have. 0, or -1
 * after replying. */
static int
api_agent_key_for(struct httpd_req *r, const struct hostid *id,
    const char *name, char *key, size_t keysz, const char **source)
{
	json_t *taken;

	if (id->how == HOSTID_SAME) {
		snprintf(key, keysz, "%s", JS(id->row, "agent_key"));
		*source = JS(id->row, "key_source") ? JS(id->row,
		    "key_source") : "manager";
		return 0;
	}
	if (api_agent_key(r, key, keysz, source) < 0) {
		httpd_reply_error(r, 400, "agent_key must be %d lowercase hex "
		    "digits", HOSTID_KEY_LEN);
		return -1;
	}
	if ((taken = db_row("SELECT name FROM hosts WHERE agent_key = ? AND "
	    "name <> ?", "ss", key, name)) != NULL) {
		json_decref(taken);
		httpd_reply_error(r, 409, "agent_key is another host's");
		return -1;
	}
	return 0;
}

/* The host's row as this registration leaves it (in the caller's
 * transaction); 0 or -1. */
static int
api_agent_record(struct httpd_req *r, const struct hostid *id,
    const char *name, const char *url, const char *accel,
    const char *reason, int64_t cpus, int64_t mem, const char *key,
    const char *source, const char *infos)
{
	/* The certificate it registered with: its reports must present it. */
	const char *fp = r->peer_fp[0] && strcmp(r->peer_cn, name) == 0 ?
	    r->peer_fp : NULL;
	int64_t now = util_wall_ms();

	if (id->row == NULL)
		return db_exec("INSERT INTO hosts (name, url, state, accel, "
		    "accel_reason, cpus, memory_mib, agent_key, last_seen, info, "
		    "registered, key_source, cert_fp) VALUES (?, ?, 'up', ?, ?, "
		    "?, ?, ?, ?, ?, ?, ?, ?)", "ssssiisisiss", name, url, accel,
		    reason, cpus, mem, key, now, infos, now, source, fp) < 0 ?
		    -1 : 0;
	return db_exec("UPDATE hosts SET url = ?, state = 'up', accel = ?, "
	    "accel_reason = ?, cpus = ?, memory_mib = ?, agent_key = ?, "
	    "last_seen = ?, info = ?, registered = ?, key_source = ?, "
	    "cert_fp = COALESCE(?, cert_fp) WHERE name = ?", "sssiisisisss",
	    url, accel, reason, cpus, mem, key, now, infos, now, source, fp,
	    name) == 1 ? 0 : -1;
}

/* Where the host registered from and its migration address, into its
 * info: migrate.c names both as the sources a migration stream to
 * another host may come from. */
static void
api_agent_addresses(struct httpd_req *r, json_t *info)
{
	const char *m = json_string_value(json_object_get(r->body,
	    "migration_addr"));

	json_object_set_new(info, "address", json_string(r->remote));
	if (m != NULL && strlen(m) < 64 && strchr(m, ',') == NULL &&
	    pki_san_valid(m))
		json_object_set_new(info, "migration_addr", json_string(m));
}

/* The directories besides its domains' media areas that the host takes
 * boot media, kernels and import sources from (--media-dir): absolute,
 * clean, at most 8. */
static void
api_agent_media_dirs(struct httpd_req *r, json_t *info)
{
	json_t *d = json_object_get(r->body, "media_dirs"), *clean, *v;
	size_t i;

	if (!json_is_array(d))
		return;
	clean = json_array();
	json_array_foreach(d, i, v)
		if (i < 8 && json_is_string(v) && json_string_value(v)[0] == '/'
		    && json_string_length(v) < 4096 &&
		    beneath_name_ok(json_string_value(v) + 1))
			json_array_append(clean, v);
	json_object_set_new(info, "media_dirs", clean);
}

/* With a certificate: the addresses it asked for that the certificate
 * does not name (the agent passes on the manager's answer; only an
 * admin's approval puts them in a certificate). */
static void
api_agent_pending(struct httpd_req *r, const char *name)
{
	json_t *p = json_object_get(r->body, "pending_addresses"), *clean, *v;
	char *s;
	size_t i;

	if (r->peer_fp[0] == '\0' || !json_is_array(p) ||
	    json_array_size(p) > PKI_SAN_MAX)
		return;
	clean = json_array();
	json_array_foreach(p, i, v)
		if (json_is_string(v) && strchr(json_string_value(v), ',') ==
		    NULL && pki_san_valid(json_string_value(v)))
			json_array_append(clean, v);
	s = json_dumps(clean, JSON_COMPACT);
	db_exec("UPDATE hosts SET pending = ? WHERE name = ?", "ss",
	    json_array_size(clean) ? s : NULL, name);
	free(s);
	json_decref(clean);
}

/* Registration: a new host with an admin or join token (the token is
 * used up), or a known host with its own key or certificate; never an
 * existing name with a token (hostid.c). */
static int
api_agent_register(struct httpd_req *r)
{
	const char *name, *url, *accel, *reason, *fence, *source;
	char key[UTIL_TOKEN_LEN + 1], ferr[256];
	int64_t cpus = 0, mem = 0;
	json_t *info = NULL, *stop = NULL;
	char *infos = NULL, *timing = NULL;
	struct hostid id;
	int st;

	memset(&id, 0, sizeof(id));
	if (r->body == NULL ||
	    api_str_field(r, "name", 255, &name) < 0 ||
	    api_str_field(r, "url", 255, &url) < 0 ||
	    api_str_field(r, "accel", 8, &accel) < 0 ||
	    api_str_field(r, "accel_reason", 255, &reason) < 0 ||
	    api_int_field(r, "cpus", 1, 65536, &cpus, NULL) < 0 ||
	    api_int_field(r, "memory_mib", 1, INT64_C(1) << 40, &mem, NULL) < 0)
		return r->status ? 0 : httpd_reply_error(r, 400, "body required");
	if (name == NULL || !util_name_valid(name))
		return httpd_reply_error(r, 400, "invalid host name");
	if (url == NULL || (strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "https://", 8) != 0))
		return httpd_reply_error(r, 400, "url must be http(s)://HOST:PORT");
	if (accel == NULL || (strcmp(accel, "kvm") != 0 && strcmp(accel, "tcg") != 0))
		return httpd_reply_error(r, 400, "accel must be kvm or tcg");
	if (!json_is_array(json_object_get(r->body, "storage")) ||
	    !json_is_array(json_object_get(r->body, "vms")))
		return httpd_reply_error(r, 400, "storage and vms must be lists");
	if (api_agent_fence(r, name, &fence, &timing, ferr, sizeof(ferr)) < 0)
		return httpd_reply_error(r, 400, "%s", ferr);
	if ((st = hostid_admit(r, name, 0, &id, ferr, sizeof(ferr))) != 0) {
		log_warnx("registration of host %s by %s refused: %s", name,
		    r->principal, ferr);
		httpd_reply_error(r, st, "%s", ferr);
		goto cleanup;
	}
	/* A host with a certificate is called over mutual TLS only. */
	if ((r->peer_fp[0] || JS(id.row, "cert_fp")) &&
	    strncmp(url, "https://", 8) != 0) {
		httpd_reply_error(r, 400, "host %s has a certificate: its url "
		    "must be https://", name);
		goto cleanup;
	}
	if (api_agent_key_for(r, &id, name, key, sizeof(key), &source) < 0)
		goto cleanup;
	stop = json_array();	/* after the checks: they return at once */
	info = json_pack("{s:O, s:O}", "storage", json_object_get(r->body,
	    "storage"), "version", json_object_get(r->body, "version") ?
	    json_object_get(r->body, "version") : json_null());
	api_agent_addresses(r, info);
	api_agent_media_dirs(r, info);
	infos = json_dumps(info, JSON_COMPACT);
	db_begin();
	if (api_agent_record(r, &id, name, url, accel, reason, cpus, mem, key,
	    source, infos) < 0) {
		db_rollback();
		httpd_reply_error(r, 500, "cannot record host %s", name);
		goto cleanup;
	}
	/* The join token is used up with the host's creation, or neither. */
	if (hostid_consume(&id, name) < 0) {
		db_rollback();
		httpd_reply_error(r, 401, "join token already used or expired");
		goto cleanup;
	}
	api_agent_pending(r, name);
	/* A confirm-off was about the host as it was: it is back now. */
	db_exec("UPDATE hosts SET fence = ?, timing = ?, confirmed_off = NULL "
	    "WHERE name = ?", "sss", fence, timing, name);
	failover_host_registered(name);
	hostmon_seen(name);
	api_apply_report(name, json_object_get(r->body, "vms"), NULL, stop,
	    api_scan(r->body));
	event_add("info", "host.up", name, "host %s registered (%s, accel %s)%s",
	    name, url, accel, id.row == NULL ? ", new host" :
	    id.how == HOSTID_NEW ? ", after a reset" : id.how == HOSTID_REKEY ?
	    ", new key" : "");
	db_commit();
	vnet_changed();		/* VXLAN peers: a new host or a new address */
	{
		json_t *reply = json_pack("{s:s, s:I, s:O}", "agent_key", key,
		    "heartbeat_interval_ms", (json_int_t)hb_interval_ms(),
		    "stop", stop);
		failover_agent_hints(name, reply);
		api_agent_net(name, r->body, reply);
		httpd_reply_json(r, 200, reply);
	}
cleanup:
	hostid_free(&id);
	free(infos);
	free(timing);
	json_decref(info);
	json_decref(stop);
	return 0;
}

static int
api_agent_report(struct httpd_req *r)
{
	const char *name = NULL, *self = r->principal + 5;	/* "host:" */
	json_t *old, *stop, *reply;

	if (r->body == NULL || api_str_field(r, "name", 255, &name) < 0)
		return r->status ? 0 : httpd_reply_error(r, 400, "body required");
	if (name == NULL || strcmp(name, self) != 0)
		return httpd_reply_error(r, 403, "a host may only report on itself");
	if (!json_is_array(json_object_get(r->body, "vms")) ||
	    !json_is_array(json_object_get(r->body, "exits")))
		return httpd_reply_error(r, 400, "vms and exits must be lists");
	old = db_row("SELECT state FROM hosts WHERE name = ?", "s", self);
	db_begin();
	db_exec("UPDATE hosts SET last_seen = ?, state = 'up' WHERE name = ?",
	    "is", util_wall_ms(), self);
	hostmon_seen(self);
	api_agent_storage(self, json_object_get(r->body, "storage"));
	stop = json_array();
	api_apply_report(self, json_object_get(r->body, "vms"),
	    json_object_get(r->body, "exits"), stop, api_scan(r->body));
	if (old && strcmp(JS(old, "state"), "up") != 0)
		event_add("info", "host.up", self, "host %s is reporting again",
		    self);
	db_commit();
	json_decref(old);
	stats_record(self, json_object_get(r->body, "stats"));
	usage_record(self, json_object_get(r->body, "stats"));
	reply = json_pack("{s:b, s:o, s:I}", "ok", 1, "stop", stop,
	    "heartbeat_interval_ms", (json_int_t)hb_interval_ms());
	failover_agent_hints(self, reply);
	api_agent_net(self, r->body, reply);
	return httpd_reply_json(r, 200, reply);
}

const struct httpd_route api_agent_routes[] = {
	{ "POST", "/api/v1/agent/register", api_agent_register, 0, ROLE_JOIN },
	{ "POST", "/api/v1/agent/report",   api_agent_report,   0, ROLE_AGENT },
};
const size_t api_agent_nroutes = sizeof(api_agent_routes) / sizeof(api_agent_routes[0]);
