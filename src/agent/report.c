/* report.c - registration with the manager and heartbeats (state reports). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "agent/keeper.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"
#include "net/net.h"

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t report_cond;	/* CLOCK_MONOTONIC (report_start) */
static int report_kicked, report_quit;
/* The manager refused this host for good: the agent stops, status 1. */
static atomic_int report_refused;
static char report_key[128];		/* the agent key, "" before register */
static char report_secret[72];		/* DATA/agent.secret, set at start */
static char report_next[72];		/* DATA/agent.secret.next or "" */
static int64_t report_interval_ms = 1000;
static pthread_t report_thread;
static size_t report_mgr;		/* which of --manager URL1,URL2,... */

void
report_agent_key(char *out, size_t outsz)
{
	pthread_mutex_lock(&report_lock);
	snprintf(out, outsz, "%s", report_key);
	pthread_mutex_unlock(&report_lock);
}

#define REPORT_SECRET_LEN	64

/* A key file's path: DATA/agent.secret, or DATA/agent.secret.next. */
static int
report_secret_path(char *out, size_t outsz, int next)
{
	return util_fmt(out, outsz, "%s/agent.secret%s", agent_cfg.data,
	    next ? ".next" : "");
}

static int
report_secret_valid(const char *k)
{
	return strlen(k) == REPORT_SECRET_LEN &&
	    strspn(k, "0123456789abcdef") == REPORT_SECRET_LEN;
}

int
report_secret_init(void)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], line[sizeof(report_secret) + 2];
	int rc = -1;

	if (report_secret_path(path, sizeof(path), 0) < 0 ||
	    util_fmt(tmp, sizeof(tmp), "%s.new", path) < 0 ||
	    util_mkdir_p(agent_cfg.data, 0700) < 0)
		goto cleanup;
	if (util_read_token(path, report_secret, sizeof(report_secret)) == 0)
		goto check;
	if (errno != ENOENT)
		goto cleanup;
	/* Made once: link() never replaces a key another start wrote. */
	util_random_hex(report_secret, REPORT_SECRET_LEN / 2);
	snprintf(line, sizeof(line), "%s\n", report_secret);
	if (util_write_file_atomic(tmp, line, strlen(line), 0600) < 0)
		goto cleanup;
	if (link(tmp, path) < 0 && errno != EEXIST) {
		unlink(tmp);
		goto cleanup;
	}
	unlink(tmp);
	if (util_read_token(path, report_secret, sizeof(report_secret)) < 0)
		goto cleanup;
	log_info("made this host's key %s", path);
check:
	if (!report_secret_valid(report_secret)) {
		errno = EINVAL;
		goto cleanup;
	}
	/* A key offered with a token before a stop, maybe accepted. */
	if (report_secret_path(tmp, sizeof(tmp), 1) == 0 &&
	    (util_read_token(tmp, report_next, sizeof(report_next)) < 0 ||
	    !report_secret_valid(report_next)))
		report_next[0] = '\0';
	rc = 0;
cleanup:
	if (rc < 0)
		log_error("cannot use this host's key %s: %s", path,
		    strerror(errno));
	return rc;
}

const char *
report_next_key(void)
{
	char path[PATH_MAX], line[sizeof(report_next) + 2], next[72];

	if (report_next[0] != '\0')
		return report_next;
	if (report_secret_path(path, sizeof(path), 1) < 0)
		return NULL;
	util_random_hex(next, REPORT_SECRET_LEN / 2);
	snprintf(line, sizeof(line), "%s\n", next);
	if (util_write_file_atomic(path, line, strlen(line), 0600) < 0) {
		log_error("cannot write %s: %s", path, strerror(errno));
		return NULL;
	}
	snprintf(report_next, sizeof(report_next), "%s", next);
	return report_next;
}

void
report_key_accepted(const char *key)
{
	char path[PATH_MAX], next[PATH_MAX];

	if (key == NULL || report_next[0] == '\0' ||
	    strcmp(key, report_next) != 0 ||
	    report_secret_path(path, sizeof(path), 0) < 0 ||
	    report_secret_path(next, sizeof(next), 1) < 0)
		return;
	if (rename(next, path) < 0) {
		log_error("cannot make %s this host's key: %s", next,
		    strerror(errno));
		return;
	}
	snprintf(report_secret, sizeof(report_secret), "%s", report_next);
	report_next[0] = '\0';
	log_info("the manager took this host's new key (%s)", path);
}

const char *
report_cred(int i)
{
	const char *c[3];
	int n = 0;

	c[n++] = report_secret;
	if (report_next[0] != '\0')
		c[n++] = report_next;
	if (strcmp(agent_cfg.token, report_secret) != 0 &&
	    strcmp(agent_cfg.token, report_next) != 0)
		c[n++] = agent_cfg.token;
	return i >= 0 && i < n ? c[i] : NULL;
}

int
report_cred_is_token(const char *cred)
{
	return cred == agent_cfg.token;
}

void
report_kick(void)
{
	pthread_mutex_lock(&report_lock);
	report_kicked = 1;
	pthread_cond_signal(&report_cond);
	pthread_mutex_unlock(&report_lock);
}

/* Isolation: cut off from the manager and from every peer. The settings
 * and peer list come with the manager's replies; the report thread owns
 * them. */
static json_t *iso_peers;
static int64_t iso_after_ms = 5000, iso_last_ok;
static char iso_response[16] = "poweroff";
static int iso_isolated, iso_noted;

/* ha_storage_loss_response=leave (docs/ha.md, "Storage lost by a live
 * host"): the VMs of a domain this host lost stay (frozen) while the
 * manager hears the host. After each report the manager acknowledged,
 * sent at monotonic time S, the keeper holds the kill of a lost domain's
 * VMs until S + H - W - M - T: H the manager's heartbeat timeout
 * (isolation_ms), W the watchdog's timeout, M the margin, T the keeper's
 * tick. The manager restarts the VMs no sooner than H after it received
 * the last report (>= S); by then the keeper has killed them (at the
 * hold's end) or stopped petting, and the host resets by S + H - M. */
#define REPORT_HOLD_MARGIN_MS	500	/* M, as the manager's (failover.c) */
static char loss_response[16] = "restart";
static int hold_set;			/* a hold may be in force */

static void
report_take_settings(json_t *reply)
{
	json_t *p = json_object_get(reply, "peers");
	const char *resp = json_string_value(json_object_get(reply,
	    "isolation_response"));

	if (json_is_array(p)) {
		json_decref(iso_peers);
		iso_peers = json_incref(p);
	}
	if (json_is_integer(json_object_get(reply, "isolation_ms")))
		iso_after_ms = json_integer_value(json_object_get(reply,
		    "isolation_ms"));
	if (resp && (strcmp(resp, "poweroff") == 0 || strcmp(resp, "leave") == 0))
		snprintf(iso_response, sizeof(iso_response), "%s", resp);
	resp = json_string_value(json_object_get(reply,
	    "ha_storage_loss_response"));
	if (resp && (strcmp(resp, "restart") == 0 || strcmp(resp, "leave") == 0))
		snprintf(loss_response, sizeof(loss_response), "%s", resp);
	if (json_is_integer(json_object_get(reply, "monitor_interval_ms")) &&
	    json_is_integer(json_object_get(reply, "monitor_misses")))
		health_settings((int)json_integer_value(json_object_get(reply,
		    "monitor_interval_ms")), (int)json_integer_value(
		    json_object_get(reply, "monitor_misses")));
}

static int
report_peer_answers(void)
{
	struct httpc_resp r;
	char url[640];
	json_t *p;
	size_t i;
	int ok = 0;

	json_array_foreach(iso_peers, i, p) {
		if (i >= 5 || ok || !json_is_string(p))
			break;
		snprintf(url, sizeof(url), "%s/agent/v1/ping", json_string_value(p));
		ok = httpc_request("GET", url, NULL, NULL, 1000, &r) == 0 &&
		    r.status == 200;
		httpc_resp_free(&r);
	}
	return ok;
}

static void
report_isolation_check(int ok)
{
	int64_t now = util_mono_ms();
	json_t *stopped;

	if (ok) {
		if (iso_isolated)
			log_info("the manager answers again: isolation over");
		if (iso_isolated || iso_noted)
			domwatch_isolation_clear();	/* no storage I/O here */
		iso_isolated = iso_noted = 0;
		iso_last_ok = now;
		return;
	}
	if (iso_isolated || iso_last_ok == 0 || now - iso_last_ok < iso_after_ms)
		return;
	if (json_array_size(iso_peers) == 0 || report_peer_answers()) {
		if (!iso_noted)
			log_warnx("the manager has not answered for %lld ms, but "
			    "%s: not isolated, VMs keep running",
			    (long long)(now - iso_last_ok),
			    json_array_size(iso_peers) ? "peers answer" :
			    "no peer is known to ask");
		iso_noted = 1;
		return;
	}
	iso_isolated = 1;
	if (strcmp(iso_response, "leave") == 0) {
		stopped = json_array();
		log_error("isolated from the manager and every peer for %lld ms: "
		    "leaving VMs running (isolation response: leave)",
		    (long long)(now - iso_last_ok));
	} else {
		stopped = vmhost_isolate();
		log_error("isolated from the manager and every peer for %lld ms: "
		    "powered off %zu HA VM(s) (isolation response: poweroff)",
		    (long long)(now - iso_last_ok), json_array_size(stopped));
	}
	domwatch_isolation(stopped);	/* written by each domain's thread */
	json_decref(stopped);
}

static void *
report_stop_one(void *arg)
{
	char err[256];
	int status;

	if (vmhost_stop(arg, 1, 0, err, sizeof(err), &status) < 0)
		log_warnx("stopping a stale copy of VM %s: %s", (char *)arg, err);
	free(arg);
	return NULL;
}

/* The manager may tell us to end copies it knows run elsewhere (a source
 * left paused after a migration whose end we missed). */
static void
report_apply_reply(json_t *reply)
{
	json_t *v;
	size_t i;

	report_take_settings(reply);
	/* Networks to realize: applied by the network worker, not here. */
	if (json_is_object(json_object_get(reply, "net")))
		net_submit(json_object_get(reply, "net"));
	json_array_foreach(json_object_get(reply, "stop"), i, v) {
		pthread_t t;
		char *uuid;

		if (!json_is_string(v) || !util_uuid_valid(json_string_value(v)))
			continue;
		log_warnx("the manager says VM %s runs elsewhere: stopping this "
		    "copy", json_string_value(v));
		if ((uuid = strdup(json_string_value(v))) == NULL)
			continue;
		if (pthread_create(&t, NULL, report_stop_one, uuid) != 0)
			free(uuid);
		else
			pthread_detach(t);
	}
}

/* After a report acknowledged (sent at sent_ms): with leave, a hold on
 * every domain until sent_ms + H - W - M - T; one that would already be
 * over, or restart after leave, ends the holds (until 0). */
static void
report_hold(int64_t sent_ms)
{
	int64_t until = sent_ms + iso_after_ms - agent_cfg.watchdog_ms -
	    REPORT_HOLD_MARGIN_MS - KEEPER_TICK_MS;
	int i, leave = strcmp(loss_response, "leave") == 0;

	if (!leave && !hold_set)
		return;
	if (!leave || until <= util_mono_ms())
		until = 0;
	for (i = 0; i < agent_cfg.nstorage; i++)
		if (keeperctl_hold(agent_cfg.storage[i].name, until) < 0)
			log_debug("keeper: no hold on %s",
			    agent_cfg.storage[i].name);
	hold_set = until > 0;
}

/* The current manager's URL + path; only the report thread calls this. */
static void
report_url(char *out, size_t outsz, const char *path)
{
	char base[512];

	if (util_list_item(agent_cfg.manager, report_mgr, base, sizeof(base)) < 0) {
		report_mgr = 0;
		util_list_item(agent_cfg.manager, 0, base, sizeof(base));
	}
	snprintf(out, outsz, "%s%s", base, path);
}

/* Unreachable or a standby (503): try the next manager of the list. */
static void
report_failover(const struct httpc_resp *resp)
{
	char next[512];

	if (resp->status != 0 && resp->status != 503)
		return;
	if (util_list_item(agent_cfg.manager, report_mgr + 1, next,
	    sizeof(next)) == 0)
		report_mgr++;
	else if (report_mgr == 0)
		return;		/* a single manager */
	else
		report_mgr = 0;
	util_list_item(agent_cfg.manager, report_mgr, next, sizeof(next));
	log_info("trying the manager at %s", next);
}

/* One registration attempt with credential cred: 0 registered, -1 retry
 * later, -2 refused with this credential (the manager's reason in why). */
static int
report_register_with(const char *cred, json_t *body, char *why, size_t whysz)
{
	struct httpc_resp resp;
	char url[640];
	json_t *key;
	int rc = -1;

	report_url(url, sizeof(url), "/api/v1/agent/register");
	if (httpc_request("POST", url, cred, body, 10000, &resp) < 0) {
		log_warnx("cannot reach the manager at %s: %s", url, resp.err);
		resp.status = 0;
		report_failover(&resp);
		goto cleanup;
	}
	if (resp.status == 503) {
		report_failover(&resp);
		goto cleanup;
	}
	if (resp.status == 400 || resp.status == 401 || resp.status == 403 ||
	    resp.status == 409) {
		snprintf(why, whysz, "%s", resp.err);
		rc = -2;
		goto cleanup;
	}
	key = json_object_get(resp.json, "agent_key");
	if (resp.status != 200 || !json_is_string(key)) {
		log_warnx("registration failed: %s", resp.err[0] ? resp.err :
		    "unexpected reply");
		goto cleanup;
	}
	report_key_accepted(json_string_value(key));
	pthread_mutex_lock(&report_lock);
	snprintf(report_key, sizeof(report_key), "%s", json_string_value(key));
	if (json_is_integer(json_object_get(resp.json, "heartbeat_interval_ms")))
		report_interval_ms = json_integer_value(json_object_get(resp.json,
		    "heartbeat_interval_ms"));
	if (report_interval_ms < 100 || report_interval_ms > 60000)
		report_interval_ms = 1000;
	pthread_mutex_unlock(&report_lock);
	log_info("registered with the manager at %s as host %s", url,
	    agent_cfg.name);
	report_apply_reply(resp.json);
	rc = 0;
cleanup:
	httpc_resp_free(&resp);
	return rc;
}

/* 0 registered; -1 retry later; -2 refused for good. With the host's own
 * key first (a known host), then with the token file's token (a new
 * host, or one an admin reset), the key going along as the one the
 * manager is to keep. A registration whose answer was lost (a manager
 * that restarted after committing it) so succeeds on the retry with the
 * key, although the join token is used up. */
static int
report_register(void)
{
	char why[3][256];
	json_t *body = agent_info(), *pend;
	const char *cred, *key;
	int i, rc = -2;

	json_object_set_new(body, "version", json_string("1"));
	if ((pend = agent_tls_pending()) != NULL)
		json_object_set_new(body, "pending_addresses", pend);
	for (i = 0; rc == -2 && i < 3 && (cred = report_cred(i)) != NULL;
	    i++) {
		/* With a token goes a new key (whoever may hold the old one:
		 * an admin reset the host), made this host's only once the
		 * manager took it: a refusal by mistake (a manager between
		 * databases) costs no key. */
		key = report_cred_is_token(cred) ? report_next_key() : cred;
		if (key == NULL)
			break;
		json_object_set_new(body, "agent_key", json_string(key));
		rc = report_register_with(cred, body, why[i], sizeof(why[i]));
	}
	if (rc == -2 && i > 0)
		log_error("the manager refused this host: %s%s%s", why[i - 1],
		    i > 1 ? "; with its key: " : "", i > 1 ? why[0] : "");
	json_decref(body);
	return rc;
}

/* 0 sent; -1 transport error; -2 the manager no longer knows us. */
static int
report_send(const char *key)
{
	struct httpc_resp resp;
	char url[640], gen[NET_GEN_MAX + 1];
	json_t *exits = vmhost_exits(), *body;
	int64_t sent_ms;
	int rc = -1;

	/* scan: whether a VM missing from vms is truly not running here;
	 * storage: each domain's state and lease (the manager restarts VMs
	 * of a domain this host reports lost), from caches only. */
	body = json_pack("{s:s, s:o, s:O, s:s, s:o}", "name", agent_cfg.name,
	    "vms", vmhost_list(), "exits", exits, "scan", vmadopt_scan(),
	    "storage", agent_storage());
	if (body)
		keeperctl_info(body);	/* fence, timing, keeper, leases */
	json_object_set_new(body, "stats", stats_json(json_object_get(body,
	    "vms")));
	net_gen(gen, sizeof(gen));
	json_object_set_new(body, "net_gen", json_string(gen));
	json_object_set_new(body, "net_status", net_status());
	json_object_set_new(body, "net_datapath", net_datapath());
	report_url(url, sizeof(url), "/api/v1/agent/report");
	sent_ms = util_mono_ms();
	if (httpc_request("POST", url, key, body, 5000, &resp) < 0) {
		log_debug("report: %s", resp.err);
		resp.status = 0;
		report_failover(&resp);
		goto cleanup;
	}
	if (resp.status == 503) {
		report_failover(&resp);
		goto cleanup;
	}
	if (resp.status == 401 || resp.status == 404) {
		rc = -2;
		goto cleanup;
	}
	if (resp.status != 200) {
		log_warnx("report refused: %s", resp.err);
		goto cleanup;
	}
	vmhost_exits_ack(exits);
	report_apply_reply(resp.json);
	report_hold(sent_ms);
	/* A large cluster asks its hosts to report less often. */
	if (json_is_integer(json_object_get(resp.json, "heartbeat_interval_ms"))) {
		json_int_t iv = json_integer_value(json_object_get(resp.json,
		    "heartbeat_interval_ms"));
		pthread_mutex_lock(&report_lock);
		if (iv >= 100 && iv <= 60000)
			report_interval_ms = iv;
		pthread_mutex_unlock(&report_lock);
	}
	rc = 0;
cleanup:
	httpc_resp_free(&resp);
	json_decref(exits);
	json_decref(body);
	return rc;
}

static void *
report_main(void *arg)
{
	char key[128];
	int64_t wait_ms;
	int rc;

	(void)arg;
	for (;;) {
		report_agent_key(key, sizeof(key));
		if (key[0] == '\0') {
			rc = report_register();
			report_isolation_check(rc == 0);
			if (rc == -2) {
				log_error("exiting: fix the token file (or have an "
				    "admin reset the host) and start the agent "
				    "again");
				/* Through the agent's own stop, not exit(): its
				 * keeper and listener go too. */
				atomic_store(&report_refused, 1);
				kill(getpid(), SIGTERM);
				break;
			}
			wait_ms = rc == 0 ? 0 : 1000;
		} else {
			rc = report_send(key);
			report_isolation_check(rc == 0);
			if (rc == -2) {
				log_info("the manager does not know this host; "
				    "registering again");
				pthread_mutex_lock(&report_lock);
				report_key[0] = '\0';
				pthread_mutex_unlock(&report_lock);
				continue;
			}
			pthread_mutex_lock(&report_lock);
			wait_ms = report_interval_ms;
			pthread_mutex_unlock(&report_lock);
		}
		pthread_mutex_lock(&report_lock);
		/* Monotonic: a wall clock stepped back sleeps no longer. */
		if (!report_kicked && !report_quit && wait_ms > 0)
			(void)util_cond_wait_until(&report_cond, &report_lock,
			    util_mono_ms() + wait_ms);
		report_kicked = 0;
		if (report_quit) {
			pthread_mutex_unlock(&report_lock);
			break;
		}
		pthread_mutex_unlock(&report_lock);
	}
	return NULL;
}

static void
report_cond_init(void)
{
	if (util_cond_init_mono(&report_cond) != 0)
		abort();	/* only with a broken libc */
}

int
report_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, report_cond_init);
	return pthread_create(&report_thread, NULL, report_main, NULL) == 0 ?
	    0 : -1;
}

int
report_was_refused(void)
{
	return atomic_load(&report_refused);
}

void
report_stop(void)
{
	pthread_mutex_lock(&report_lock);
	report_quit = 1;
	pthread_cond_signal(&report_cond);
	pthread_mutex_unlock(&report_lock);
	pthread_join(report_thread, NULL);
}
