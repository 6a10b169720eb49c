/* net.c - the agent's networks: desired state, the apply worker, TAPs. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "net/net_int.h"

#define NET_TAP_WAIT_MS		5000
#define NET_TAP_GRACE_MS	120000	/* a new TAP before QEMU opens it */
#define NET_RETRY_MS		10000	/* re-apply while a network fails */
#define NET_HEAL_MS		300000	/* re-apply anyway: undo drift */
#define NET_MAX_RECENT		64

static struct net_config net_cfg;
/* net_lock: the applied payload, its status, the pending payload. */
static pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t net_cond;	/* CLOCK_MONOTONIC (net_init) */
static pthread_once_t net_cond_once = PTHREAD_ONCE_INIT;
static struct net_payload net_cur;
static json_t *net_stat;		/* {name: "ok" | error} */
static json_t *net_dp;			/* {vlan network: "8021q" | "ebpf"} */
static json_t *net_pending;		/* a payload not yet applied */
static int net_applied, net_quit, net_started, net_root;
static char net_busy_gen[NET_GEN_MAX + 1];	/* being applied */
static int net_heal_now;			/* re-apply the last one now */
static pthread_t net_thread;
/* net_kern_lock: every change of kernel objects, and net_recent. */
static pthread_mutex_t net_kern_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char	name[16];
	int64_t	at;
} net_recent[NET_MAX_RECENT];

/* CAP_NET_ADMIN (bit 12) in the effective set. */
static int
net_has_cap(void)
{
	char *s = util_read_file("/proc/self/status", 65536, NULL), *p;
	unsigned long long caps = 0;

	if (s == NULL)
		return geteuid() == 0;
	if ((p = strstr(s, "\nCapEff:")) != NULL)
		caps = strtoull(p + 8, NULL, 16);
	free(s);
	return (caps >> 12) & 1;
}

static void
net_needs_root(char *err, size_t errsz)
{
	snprintf(err, errsz, "needs root (CAP_NET_ADMIN) on host %s",
	    net_cfg.host);
}

static int
net_tap_recent(const char *name)
{
	int64_t now = util_mono_ms();
	int i;

	for (i = 0; i < NET_MAX_RECENT; i++) {
		if (strcmp(net_recent[i].name, name) == 0 &&
		    now - net_recent[i].at < NET_TAP_GRACE_MS)
			return 1;
	}
	return 0;
}

static void
net_tap_note(const char *name, int add)
{
	int i, slot = 0;

	for (i = 0; i < NET_MAX_RECENT; i++) {
		if (strcmp(net_recent[i].name, name) == 0 || (add &&
		    net_recent[i].at < net_recent[slot].at))
			slot = i;
		if (strcmp(net_recent[i].name, name) == 0)
			break;
	}
	if (add) {
		snprintf(net_recent[slot].name, sizeof(net_recent[0].name), "%s",
		    name);
		net_recent[slot].at = util_mono_ms();
	} else if (i < NET_MAX_RECENT) {
		net_recent[i].name[0] = '\0';
		net_recent[i].at = 0;
	}
}

/* A TAP stays while a QEMU holds it (carrier) or was just made for one. */
static int
net_keep_tap(json_t *link)
{
	const char *name = json_string_value(json_object_get(link, "ifname"));

	return netk_has_flag(link, "LOWER_UP") || (name && net_tap_recent(name));
}

/* Realize every network of p and delete what it does not want. Called
 * with net_kern_lock held; status gets one entry per named network, dp
 * one per VLAN network realized (its datapath). */
static void
net_apply_kernel(const struct net_payload *p, json_t *status, json_t *dp)
{
	struct net_ctx c = { &net_cfg, p, NULL, dp };
	char err[256], lerr[256] = "";
	json_t *prev = net_status();
	const char *was;
	size_t i;

	/* One listing serves every network: each looks at its own links. */
	if (net_root && (c.links = netk_links(lerr, sizeof(lerr))) == NULL)
		log_warnx("network apply: %s", lerr);
	for (i = 0; i < p->nnets; i++) {
		const struct net_def *n = &p->nets[i];

		if (n->name[0] == '\0')
			continue;
		if (n->err[0]) {
			snprintf(err, sizeof(err), "invalid network: %s", n->err);
		} else if (!net_root) {
			net_needs_root(err, sizeof(err));
		} else if (c.links == NULL) {
			snprintf(err, sizeof(err), "%s", lerr);
		} else if (net_realize(&c, n, err, sizeof(err)) == 0) {
			snprintf(err, sizeof(err), "ok");
		}
		/* Once per change, not at every retry. */
		was = json_string_value(json_object_get(prev, n->name));
		if (strcmp(err, "ok") != 0 && (was == NULL || strcmp(was,
		    err) != 0))
			log_warnx("network %s: %s", n->name, err);
		json_object_set_new(status, n->name, json_string(err));
	}
	json_decref(prev);
	if (net_root) {
		json_decref(c.links);
		if ((c.links = netk_links(err, sizeof(err))) == NULL)
			log_warnx("network reconcile: %s", err);
		else
			net_reconcile(&c, net_keep_tap);
	}
	json_decref(c.links);
}

static void
net_save(json_t *raw)
{
	char path[4096];
	char *s = json_dumps(raw, JSON_COMPACT);

	if (s == NULL || util_fmt(path, sizeof(path), "%s/net.json",
	    net_cfg.data) < 0 || util_write_file_atomic(path, s, strlen(s),
	    0600) < 0)
		log_warn("cannot save the network payload");
	free(s);
}

/* Apply raw (borrowed): 1 when some network is not ok, 0 when all are,
 * -1 when the payload is malformed (nothing changes). */
static int
net_apply(json_t *raw, int save)
{
	static int64_t logged;
	struct net_payload p;
	char err[256];
	json_t *status = json_object(), *dp = json_object(), *v;
	const char *k;
	int failing = 0;

	memset(&p, 0, sizeof(p));
	if (net_payload_parse(raw, &p, err, sizeof(err)) < 0) {
		/* The manager sends it again with every heartbeat. */
		if (logged == 0 || util_mono_ms() - logged > 60000) {
			log_warnx("ignoring the manager's network payload: %s",
			    err);
			logged = util_mono_ms();
		}
		json_decref(status);
		json_decref(dp);
		return -1;
	}
	pthread_mutex_lock(&net_kern_lock);
	net_apply_kernel(&p, status, dp);
	pthread_mutex_unlock(&net_kern_lock);
	json_object_foreach(status, k, v) {
		if (strcmp(json_string_value(v), "ok") != 0)
			failing = 1;
	}
	if (save)
		net_save(raw);
	pthread_mutex_lock(&net_lock);
	if (!net_applied || strcmp(net_cur.gen, p.gen) != 0 || save)
		log_info("networks: applied generation %s (%zu network(s)%s)",
		    p.gen, p.nnets, failing ? ", some failing" : "");
	net_payload_free(&net_cur);
	net_cur = p;
	json_decref(net_stat);
	net_stat = status;
	json_decref(net_dp);
	net_dp = dp;
	net_applied = 1;
	pthread_mutex_unlock(&net_lock);
	return failing;
}

/* The worker: applies what arrives; re-applies the last payload soon
 * while a network fails and now and then anyway (a deleted bridge comes
 * back, a leaked TAP goes). */
static void *
net_main(void *arg)
{
	json_t *raw, *last = NULL;
	int64_t wait_ms;
	int rc = 0;

	(void)arg;
	pthread_mutex_lock(&net_lock);
	while (!net_quit) {
		if (net_pending == NULL && net_heal_now && last != NULL) {
			net_heal_now = 0;
			net_pending = json_incref(last);
			continue;
		}
		if (net_pending == NULL) {
			if (last == NULL) {
				pthread_cond_wait(&net_cond, &net_lock);
				continue;
			}
			wait_ms = rc > 0 ? NET_RETRY_MS : NET_HEAL_MS;
			if (util_cond_wait_until(&net_cond, &net_lock,
			    util_mono_ms() + wait_ms) == ETIMEDOUT &&
			    net_pending == NULL && !net_quit)
				net_pending = json_incref(last);
			continue;
		}
		raw = net_pending;
		net_pending = NULL;
		snprintf(net_busy_gen, sizeof(net_busy_gen), "%s",
		    json_string_value(json_object_get(raw, "gen")) ?
		    json_string_value(json_object_get(raw, "gen")) : "");
		pthread_mutex_unlock(&net_lock);
		rc = net_apply(raw, raw != last);
		if (rc >= 0) {
			json_decref(last);
			last = json_incref(raw);
		} else {
			rc = 0;
		}
		json_decref(raw);
		if (net_cfg.sync)
			net_cfg.sync();
		pthread_mutex_lock(&net_lock);
		net_busy_gen[0] = '\0';
	}
	pthread_mutex_unlock(&net_lock);
	json_decref(last);
	return NULL;
}

static void
net_cond_init(void)
{
	if (util_cond_init_mono(&net_cond) != 0)
		abort();	/* only with a broken libc */
}

int
net_init(const struct net_config *cfg)
{
	char path[4096];
	json_error_t je;
	json_t *saved = NULL;
	struct stat st;

	pthread_once(&net_cond_once, net_cond_init);
	net_cfg = *cfg;
	if (!net_path_safe(net_cfg.run) || strpbrk(net_cfg.owner, " \t\n") ||
	    net_cfg.owner[0] == '\0') {
		log_warnx("networks: unusable run directory or owner mark");
		return -1;
	}
	net_root = net_has_cap();
	if (!net_root)
		log_info("networks: no CAP_NET_ADMIN, only user-mode "
		    "networking on this host");
	if (util_mkdir_p(net_cfg.run, 0700) < 0) {
		log_warn("cannot create %s", net_cfg.run);
		return -1;
	}
	/* dnsmasq configurations and nft batches are written there and run
	 * as root: nobody else may have made it or be able to swap files in
	 * (the fallback /tmp/cvirt-net-HASH has a name anyone can guess). */
	if (lstat(net_cfg.run, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		log_warnx("networks: %s is not a private directory of this "
		    "user", net_cfg.run);
		return -1;
	}
	if (util_fmt(path, sizeof(path), "%s/net.json", net_cfg.data) == 0 &&
	    access(path, F_OK) == 0 &&
	    (saved = json_load_file(path, 0, &je)) == NULL)
		log_warnx("ignoring %s: %s", path, je.text);
	pthread_mutex_lock(&net_lock);
	net_quit = 0;
	net_pending = saved;	/* reconcile against what was last applied */
	pthread_mutex_unlock(&net_lock);
	if (pthread_create(&net_thread, NULL, net_main, NULL) != 0) {
		log_warnx("cannot start the network worker");
		return -1;
	}
	net_started = 1;
	return 0;
}

void
net_stop(void)
{
	if (!net_started)
		return;
	pthread_mutex_lock(&net_lock);
	net_quit = 1;
	pthread_cond_signal(&net_cond);
	pthread_mutex_unlock(&net_lock);
	pthread_join(net_thread, NULL);
	net_started = 0;
	pthread_mutex_lock(&net_lock);
	json_decref(net_pending);
	net_pending = NULL;
	pthread_mutex_unlock(&net_lock);
}

void
net_submit(json_t *net)
{
	json_t *copy;
	const char *gen = json_string_value(json_object_get(net, "gen"));

	if (!json_is_object(net) || (copy = json_deep_copy(net)) == NULL)
		return;
	pthread_mutex_lock(&net_lock);
	/* The generation queued, being applied or applied: nothing new (the
	 * reports said the old one until the apply ended). */
	if (gen && ((net_pending && json_equal(json_object_get(net_pending,
	    "gen"), json_object_get(net, "gen"))) || strcmp(net_busy_gen,
	    gen) == 0 || (net_applied && strcmp(net_cur.gen, gen) == 0))) {
		json_decref(copy);
	} else {
		json_decref(net_pending);
		net_pending = copy;
		pthread_cond_signal(&net_cond);
	}
	pthread_mutex_unlock(&net_lock);
}

void
net_gen(char *out, size_t outsz)
{
	pthread_mutex_lock(&net_lock);
	snprintf(out, outsz, "%s", net_applied ? net_cur.gen : "");
	pthread_mutex_unlock(&net_lock);
}

json_t *
net_status(void)
{
	json_t *s;

	pthread_mutex_lock(&net_lock);
	s = net_stat ? json_deep_copy(net_stat) : json_object();
	pthread_mutex_unlock(&net_lock);
	return s ? s : json_object();
}

json_t *
net_datapath(void)
{
	json_t *s;

	pthread_mutex_lock(&net_lock);
	s = net_dp ? json_deep_copy(net_dp) : json_object();
	pthread_mutex_unlock(&net_lock);
	return s ? s : json_object();
}

/* Ask the worker to re-apply the last payload at once. */
static void
net_heal(void)
{
	pthread_mutex_lock(&net_lock);
	net_heal_now = 1;
	pthread_cond_signal(&net_cond);
	pthread_mutex_unlock(&net_lock);
}

/* The bridge and MTU of a realized network; 1 ok, 0 not (yet), -1 failed
 * for good (err set). */
static int
net_tap_target(const char *network, char *br, size_t brsz, int *mtu,
    char *err, size_t errsz)
{
	const struct net_def *n;
	const char *st;
	int rc = 0;

	pthread_mutex_lock(&net_lock);
	n = net_payload_find(&net_cur, network);
	st = n ? json_string_value(json_object_get(net_stat, network)) : NULL;
	if (n == NULL) {
		snprintf(err, errsz, "network %s is not known on host %s",
		    network, net_cfg.host);
	} else if (st == NULL || strcmp(st, "ok") != 0) {
		snprintf(err, errsz, "network %s: %s", network, st ? st :
		    "not realized");
		rc = net_pending ? 0 : -1;
	} else if (net_bridge_of(n, br, brsz) < 0) {
		snprintf(err, errsz, "network %s has no bridge", network);
		rc = -1;
	} else {
		*mtu = n->mtu;
		rc = 1;
	}
	pthread_mutex_unlock(&net_lock);
	return rc;
}

/* Wait (up to NET_TAP_WAIT_MS) until network is realized and its bridge
 * exists: a failing network may be fixed by a payload on its way, a bridge
 * deleted behind our back by a re-apply. 0 with net_kern_lock held and
 * *links (new reference) listed under it; -1 with err. */
static int
net_tap_wait(const char *network, char *br, size_t brsz, int *mtu,
    json_t **links, char *err, size_t errsz)
{
	int64_t deadline = util_mono_ms() + NET_TAP_WAIT_MS;
	int asked = 0, healed = 0;

	*links = NULL;
	for (;;) {
		if (net_tap_target(network, br, brsz, mtu, err, errsz) == 1) {
			pthread_mutex_lock(&net_kern_lock);
			if ((*links = netk_links(err, errsz)) != NULL &&
			    netk_link(*links, br) != NULL)
				return 0;
			pthread_mutex_unlock(&net_kern_lock);
			if (*links == NULL)
				return -1;
			json_decref(*links);
			*links = NULL;
			snprintf(err, errsz, "bridge %s of network %s is missing "
			    "on host %s", br, network, net_cfg.host);
			if (!healed)
				net_heal();
			healed = 1;
		} else if (!asked && net_cfg.sync) {
			net_cfg.sync();	/* the manager may have news */
			asked = 1;
		}
		if (util_mono_ms() > deadline)
			return -1;
		util_sleep_ms(100);
	}
}

int
net_tap_attach(const char *network, const char *mac, char *ifname,
    size_t ifsz, char *err, size_t errsz)
{
	char br[16], tap[16];
	json_t *links = NULL, *l;
	int mtu = 1500, rc = -1, locked = 0;

	if (network == NULL || strcmp(network, "user") == 0) {
		snprintf(err, errsz, "the user network has no TAP");
		goto cleanup;
	}
	if (net_tap_name(mac, tap, sizeof(tap)) < 0) {
		snprintf(err, errsz, "invalid MAC address");
		goto cleanup;
	}
	if (!net_root) {
		net_needs_root(err, errsz);
		goto cleanup;
	}
	if (net_tap_wait(network, br, sizeof(br), &mtu, &links, err,
	    errsz) < 0)
		goto cleanup;
	locked = 1;
	l = netk_link(links, tap);
	if (l != NULL && (strcmp(netk_kind(l), "tun") != 0 ||
	    !netk_owned(l, net_cfg.owner))) {
		snprintf(err, errsz, "%s on host %s is not a TAP of this agent",
		    tap, net_cfg.host);
		goto cleanup;
	}
	if (l == NULL && netk_run(err, errsz, "ip tuntap add dev %s mode tap "
	    "user %u", tap, (unsigned)geteuid()) < 0)
		goto cleanup;
	if (l == NULL && netk_run(err, errsz, "ip link set dev %s alias %s", tap,
	    net_cfg.owner) < 0) {
		char e2[256];

		/* Unmarked, it would be no TAP of ours for good. */
		netk_run(e2, sizeof(e2), "ip tuntap del dev %s mode tap", tap);
		goto cleanup;
	}
	net_tap_note(tap, 1);
	net_no_ipv6(tap);
	if (netk_run(err, errsz, "ip link set dev %s mtu %d master %s up", tap,
	    mtu, br) < 0)
		goto cleanup;
	if (util_fmt(ifname, ifsz, "%s", tap) < 0) {
		snprintf(err, errsz, "interface name buffer too small");
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (locked)
		pthread_mutex_unlock(&net_kern_lock);
	json_decref(links);
	return rc;
}

int
net_tap_detach(const char *mac)
{
	char tap[16], err[256];
	json_t *links;
	int rc = 0;

	if (net_tap_name(mac, tap, sizeof(tap)) < 0 || !net_root)
		return 0;
	pthread_mutex_lock(&net_kern_lock);
	net_tap_note(tap, 0);
	if ((links = netk_links(err, sizeof(err))) == NULL) {
		rc = -1;
	} else if (netk_link(links, tap) != NULL &&
	    strcmp(netk_kind(netk_link(links, tap)), "tun") == 0 &&
	    netk_owned(netk_link(links, tap), net_cfg.owner) &&
	    netk_run(err, sizeof(err), "ip link del dev %s", tap) < 0) {
		log_warnx("cannot delete %s: %s", tap, err);
		rc = -1;
	}
	pthread_mutex_unlock(&net_kern_lock);
	json_decref(links);
	return rc;
}
