/* dhcp.c - dnsmasq per network: static reservations only, no DNS. nat:
 * on the bridge; vxlan, vlan, bridge: in a private namespace behind a veth
 * whose address and MAC are the gateway's on every host, seen only by this
 * host's VMs (an anycast server).
 * That namespace lives as long as its dnsmasq (no bind mount, which a
 * private mount namespace would hide from the next agent); a restart (new
 * reservations) starts the new dnsmasq in the old one's namespace, so the
 * veth pair stays. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "net/net_int.h"

#define DHCP_LEASE_TIME	"1h"

struct dhcp_paths {
	char	conf[4096];
	char	pid[4096];
	char	leases[4096];
	char	arg[4200];	/* "--conf-file=CONF": how we know our dnsmasq */
};

static int
dhcp_paths(const struct net_config *cfg, long id, struct dhcp_paths *p)
{
	if (util_fmt(p->conf, sizeof(p->conf), "%s/dhcp%ld.conf", cfg->run,
	    id) < 0 || util_fmt(p->pid, sizeof(p->pid), "%s/dhcp%ld.pid",
	    cfg->run, id) < 0 || util_fmt(p->leases, sizeof(p->leases),
	    "%s/dhcp%ld.leases", cfg->run, id) < 0 ||
	    util_fmt(p->arg, sizeof(p->arg), "--conf-file=%s", p->conf) < 0)
		return -1;
	return 0;
}

char *
dhcp_conf_text(const struct net_def *n, const char *iface, const char *pidfile,
    const char *leasefile)
{
	uint32_t mask;
	size_t cap = 1024 + n->nleases * 48, len, i;
	char *s;
	int w;

	if (!n->has_subnet || n->prefix < 8 || n->prefix > 30 ||
	    (s = malloc(cap)) == NULL)
		return NULL;
	mask = 0xffffffffu << (32 - n->prefix);
	w = snprintf(s, cap,
	    "# cvirt network %s (generated; do not edit)\n"
	    "interface=%s\n"
	    "%s\n"
	    "except-interface=lo\n"
	    "port=0\n"
	    "pid-file=%s\n"
	    "dhcp-leasefile=%s\n"
	    "dhcp-authoritative\n"
	    "dhcp-range=%u.%u.%u.%u,static,%u.%u.%u.%u,%s\n"
	    "dhcp-option=option:mtu,%d\n",
	    n->name, iface,
	    /* anycast: dnsmasq starts before its interface exists. */
	    n->type != NET_NAT ? "bind-dynamic" : "bind-interfaces",
	    pidfile, leasefile,
	    n->net_addr >> 24, (n->net_addr >> 16) & 255,
	    (n->net_addr >> 8) & 255, n->net_addr & 255,
	    mask >> 24, (mask >> 16) & 255, (mask >> 8) & 255, mask & 255,
	    DHCP_LEASE_TIME, n->mtu);
	if (w < 0 || (size_t)w >= cap)
		goto fail;
	len = (size_t)w;
	/* nat: the bridge is the router; vxlan: no router at all. */
	if (n->type == NET_NAT)
		w = snprintf(s + len, cap - len, "dhcp-option=option:router,%s\n",
		    n->gateway);
	else
		w = snprintf(s + len, cap - len, "dhcp-option=option:router\n");
	if (w < 0 || (size_t)w >= cap - len)
		goto fail;
	len += (size_t)w;
	for (i = 0; i < n->nleases; i++) {
		w = snprintf(s + len, cap - len, "dhcp-host=%s,%s\n",
		    n->leases[i].mac, n->leases[i].ip);
		if (w < 0 || (size_t)w >= cap - len)
			goto fail;
		len += (size_t)w;
	}
	return s;
fail:
	free(s);
	return NULL;
}

/* The pid of our dnsmasq for these paths, or 0. */
static pid_t
dhcp_running(const struct dhcp_paths *p)
{
	char *s = util_read_file(p->pid, 64, NULL);
	uint64_t v;
	pid_t pid = 0;

	if (s != NULL) {
		s[strcspn(s, "\r\n")] = '\0';
		if (util_parse_u64(s, 2, 4194304, &v) == 0 &&
		    util_pid_alive((pid_t)v) && util_pid_has_arg((pid_t)v,
		    p->arg))
			pid = (pid_t)v;
	}
	free(s);
	return pid;
}

static void
dhcp_kill(const struct dhcp_paths *p)
{
	pid_t pid = dhcp_running(p);
	int i;

	if (pid > 0) {
		kill(pid, SIGTERM);
		for (i = 0; i < 40 && util_pid_alive(pid); i++)
			util_sleep_ms(50);
		if (util_pid_alive(pid))
			kill(pid, SIGKILL);
	}
	unlink(p->pid);
}

/* The veth pair cvnd<id> (bridge) / cvne<id> (the namespace of dnsmasq
 * pid: the gateway's address and MAC). */
static int
dhcp_veth(struct net_ctx *c, const struct net_def *n, pid_t pid, char *err,
    size_t errsz)
{
	char d[16], e[16], br[16], e2[256];
	json_t *l;

	if (net_ifname('d', n->id, d, sizeof(d)) < 0 ||
	    net_ifname('e', n->id, e, sizeof(e)) < 0 ||
	    net_bridge_of(n, br, sizeof(br)) < 0)
		return -1;
	if ((l = netk_link(c->links, d)) != NULL &&
	    !netk_owned(l, c->cfg->owner))
		return net_errf(err, errsz, "%s on host %s belongs to another "
		    "cvirt agent", d, c->cfg->host);
	/* A pair whose other end went with an earlier dnsmasq: start over. */
	if (netk_run(e2, sizeof(e2), "nsenter -t %d -n ip link show dev %s",
	    (int)pid, e) < 0) {
		netk_run(e2, sizeof(e2), "ip link del dev %s", d);
		if (netk_link_add(d, c->cfg->owner, err, errsz, "name %s mtu %d "
		    "type veth peer name %s netns %d", d, n->mtu, e,
		    (int)pid) < 0)
			return -1;
	}
	net_no_ipv6(d);
	if (netk_run(err, errsz, "ip link set dev %s mtu %d master %s up", d,
	    n->mtu, br) < 0 ||
	    netk_run(err, errsz, "nsenter -t %d -n ip link set dev lo up",
	    (int)pid) < 0 ||
	    netk_run(err, errsz, "nsenter -t %d -n ip link set dev %s address "
	    "%s mtu %d up", (int)pid, e, n->mac, n->mtu) < 0 ||
	    netk_run(err, errsz, "nsenter -t %d -n ip addr replace %s/%d dev %s",
	    (int)pid, n->gateway, n->prefix, e) < 0)
		return -1;
	return 0;
}

/* nft table bridge cvirt_dhcp: an anycast server (cvnd<id>) talks with
 * this host's VMs (the cvnt TAPs) only: nothing of it leaves through the
 * overlay, the VLAN or the uplink, nothing from there reaches it; so each
 * host answers its own VMs, also right after a live migration. */
static int
dhcp_filter(struct net_ctx *c, char *err, size_t errsz)
{
	size_t cap = 512 + c->p->nnets * 160, len, i;
	char *s = malloc(cap), d[16];
	json_t *tables;
	int w, any = 0, rc = -1;

	if (s == NULL)
		return net_errf(err, errsz, "out of memory");
	if (netk_nft_owned("bridge", "cvirt_dhcp", c->cfg->owner) == 0) {
		free(s);
		return net_errf(err, errsz, "nftables table bridge cvirt_dhcp "
		    "on host %s belongs to another cvirt agent", c->cfg->host);
	}
	len = (size_t)snprintf(s, cap, "table bridge cvirt_dhcp\n"
	    "delete table bridge cvirt_dhcp\n"
	    "table bridge cvirt_dhcp {\n\tcomment \"%s\"\n"
	    "\tchain forward {\n\t\ttype filter hook forward priority "
	    "filter; policy accept;\n", c->cfg->owner);
	for (i = 0; i < c->p->nnets; i++) {
		const struct net_def *n = &c->p->nets[i];

		if (n->err[0] || n->type == NET_NAT || !n->dhcp ||
		    net_ifname('d', n->id, d, sizeof(d)) < 0)
			continue;
		any = 1;
		w = snprintf(s + len, cap - len,
		    "\t\tiifname \"%s\" oifname != \"cvnt*\" drop\n"
		    "\t\toifname \"%s\" iifname != \"cvnt*\" drop\n", d, d);
		if (w < 0 || (size_t)w >= cap - len)
			goto cleanup;
		len += (size_t)w;
	}
	w = snprintf(s + len, cap - len, "\t}\n}\n");
	if (w < 0 || (size_t)w >= cap - len)
		goto cleanup;
	if (any) {
		rc = netk_batch("nft", c->cfg->run, s, err, errsz);
	} else if ((tables = netk_nft_tables("bridge", "cvirt_dhcp", err,
	    errsz)) != NULL) {
		rc = json_array_size(tables) == 0 || netk_nft_owned("bridge",
		    "cvirt_dhcp", c->cfg->owner) != 1 ? 0 : netk_run(err, errsz,
		    "nft delete table bridge cvirt_dhcp");
		json_decref(tables);
	} else if (strstr(err, "cannot run") != NULL) {
		rc = 0;		/* no nft at all: no table of ours either */
	}
cleanup:
	if (rc < 0 && err[0] == '\0')
		snprintf(err, errsz, "nft rules too long");
	free(s);
	return rc;
}

/* An anycast server is restarted (new reservations): hold its network
 * namespace so that it outlives the old dnsmasq. Its veth pair (cvnd<id>,
 * a port of the network's bridge, and cvne<id>) stays with it instead of
 * vanishing with the namespace and being made anew: other objects keep
 * theirs, the bridge keeps its port. An fd (close-on-exec) or -1. */
static int
dhcp_ns_hold(pid_t pid, long id)
{
	char path[64], e[16], e2[256];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	/* dhcp_veth writes the address anew: none of the old may stay. */
	if (net_ifname('e', id, e, sizeof(e)) == 0)
		netk_run(e2, sizeof(e2), "nsenter -t %d -n ip addr flush dev %s",
		    (int)pid, e);
	return fd;
}

int
dhcp_apply(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	struct dhcp_paths p;
	char iface[16], *conf = NULL, *old = NULL;
	pid_t pid;
	int rc = -1, vx = n->type != NET_NAT;	/* anycast */
	int nsfd = -1, restart;

	err[0] = '\0';
	if (dhcp_paths(c->cfg, n->id, &p) < 0 ||
	    net_ifname(vx ? 'e' : 'b', n->id, iface, sizeof(iface)) < 0) {
		snprintf(err, errsz, "run directory path too long");
		goto cleanup;
	}
	if (vx && dhcp_filter(c, err, errsz) < 0)
		goto cleanup;
	if ((conf = dhcp_conf_text(n, iface, p.pid, p.leases)) == NULL) {
		snprintf(err, errsz, "DHCP configuration too large");
		goto cleanup;
	}
	old = util_read_file(p.conf, 64 * 1024 * 1024, NULL);
	pid = dhcp_running(&p);
	if (pid > 0 && old != NULL && strcmp(old, conf) == 0) {
		/* Running with this very configuration. */
		rc = vx ? dhcp_veth(c, n, pid, err, errsz) : 0;
		goto cleanup;
	}
	if ((restart = pid > 0) && vx)
		nsfd = dhcp_ns_hold(pid, n->id);
	dhcp_kill(&p);
	if (util_write_file_atomic(p.conf, conf, strlen(conf), 0600) < 0) {
		snprintf(err, errsz, "cannot write %s: %s", p.conf,
		    strerror(errno));
		goto cleanup;
	}
	/* anycast: the namespace held above, or a new one that lives as long
	 * as dnsmasq. */
	if (nsfd >= 0) {
		if (netk_run(err, errsz, "nsenter --net=/proc/%d/fd/%d dnsmasq %s",
		    (int)getpid(), nsfd, p.arg) < 0)
			goto cleanup;
	} else if (netk_run(err, errsz, "%sdnsmasq %s", vx ? "unshare -n " :
	    "", p.arg) < 0)
		goto cleanup;
	if (vx && ((pid = dhcp_running(&p)) <= 0 ||
	    dhcp_veth(c, n, pid, err, errsz) < 0)) {
		if (pid <= 0)
			snprintf(err, errsz, "dnsmasq for network %s did not "
			    "start", n->name);
		goto cleanup;
	}
	rc = 0;
	log_info("net: DHCP for network %s %s (%zu reservation(s))",
	    n->name, restart ? "restarted" : "started", n->nleases);
cleanup:
	if (nsfd >= 0)
		close(nsfd);
	free(conf);
	free(old);
	return rc;
}

void
dhcp_stop(const struct net_config *cfg, long id)
{
	struct dhcp_paths p;

	if (dhcp_paths(cfg, id, &p) < 0)
		return;
	if (access(p.conf, F_OK) != 0 && access(p.pid, F_OK) != 0)
		return;
	log_info("net: stopping DHCP of network id %ld", id);
	/* vxlan: the namespace, its veth and so cvnd<id> go with dnsmasq. */
	dhcp_kill(&p);
	unlink(p.conf);
	unlink(p.leases);
}

/* Which DHCP servers (by id) the payload wants. */
static int
dhcp_wanted(const struct net_payload *pl, long id)
{
	size_t i;

	for (i = 0; i < pl->nnets; i++) {
		if (pl->nets[i].id == id)
			return pl->nets[i].err[0] || pl->nets[i].dhcp;
	}
	return 0;
}

void
dhcp_reconcile(struct net_ctx *c)
{
	char err[256];
	struct dirent *de;
	DIR *d = opendir(c->cfg->run);
	uint64_t id;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char num[32];
		const char *s = de->d_name;
		size_t k;

		/* dhcp<id>.conf, dhcp<id>.pid, dhcp<id>.leases */
		if (strncmp(s, "dhcp", 4) != 0)
			continue;
		s += 4;
		k = strspn(s, "0123456789");
		if (k == 0 || k >= sizeof(num))
			continue;
		snprintf(num, sizeof(num), "%.*s", (int)k, s);
		if (util_parse_u64(num, 1, NET_MAX_ID, &id) < 0 ||
		    dhcp_wanted(c->p, (long)id))
			continue;
		dhcp_stop(c->cfg, (long)id);
	}
	if (d != NULL)
		closedir(d);
	err[0] = '\0';
	if (dhcp_filter(c, err, sizeof(err)) < 0)
		log_warnx("net: DHCP filter: %s", err);
}
