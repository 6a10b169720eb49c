/* netapply.c - realize one network's links and reconcile every cvn link. */
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "net/net_int.h"

#define NET_VXLAN_PORT	4789

int
net_bridge_of(const struct net_def *n, char *out, size_t outsz)
{
	if (n->type == NET_BRIDGE)
		return util_fmt(out, outsz, "%s", n->uplink);
	return net_ifname('b', n->id, out, outsz);
}

/* The link called name (*l, NULL when absent); -1 when someone else
 * (another agent in this namespace) made it: never touched then. */
static int
net_mine(struct net_ctx *c, const char *name, json_t **l, char *err,
    size_t errsz)
{
	*l = netk_link(c->links, name);
	if (*l != NULL && !netk_owned(*l, c->cfg->owner))
		return net_errf(err, errsz, "%s on host %s belongs to another "
		    "cvirt agent", name, c->cfg->host);
	return 0;
}

/* Delete link name when it exists but is not what we want. */
static int
net_drop_link(struct net_ctx *c, const char *name, char *err, size_t errsz)
{
	log_info("net: replacing %s (its settings changed)", name);
	return netk_run(err, errsz, "ip link del dev %s", name);
}

/* A pure L2 device sends nothing of its own: no IPv6 link-local address,
 * whose router solicitations and MLD reports would cross the overlay.
 * Best effort: a kernel without IPv6 has nothing to turn off. */
void
net_no_ipv6(const char *dev)
{
	char path[96];
	int fd;

	if (util_fmt(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/"
	    "disable_ipv6", dev) < 0 || (fd = open(path, O_WRONLY |
	    O_CLOEXEC)) < 0)
		return;
	if (write(fd, "1\n", 2) != 2)
		log_debug("net: cannot turn IPv6 off on %s", dev);
	close(fd);
}

/* The network's bridge: created when missing, MTU (and for nat the
 * gateway's MAC) set, up. */
static int
net_bridge(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	char br[16];
	json_t *l;

	if (net_ifname('b', n->id, br, sizeof(br)) < 0)
		return net_errf(err, errsz, "bad network id");
	if (net_mine(c, br, &l, err, errsz) < 0)
		return -1;
	if (l != NULL && strcmp(netk_kind(l), "bridge") != 0) {
		if (net_drop_link(c, br, err, errsz) < 0)
			return -1;
		l = NULL;
	}
	if (l == NULL && netk_link_add(br, c->cfg->owner, err, errsz, "name %s "
	    "type bridge stp_state 0 forward_delay 0", br) < 0)
		return -1;
	if (n->type == NET_NAT && netk_run(err, errsz, "ip link set dev %s "
	    "address %s", br, n->mac) < 0)
		return -1;
	if (n->type != NET_NAT)
		net_no_ipv6(br);
	return netk_run(err, errsz, "ip link set dev %s mtu %d up", br, n->mtu);
}

/* A port device (vlan, vxlan) into the bridge, with the network's MTU. */
static int
net_port_up(const struct net_def *n, const char *dev, char *err, size_t errsz)
{
	char br[16];

	if (net_ifname('b', n->id, br, sizeof(br)) < 0)
		return -1;
	net_no_ipv6(dev);
	return netk_run(err, errsz, "ip link set dev %s mtu %d master %s up",
	    dev, n->mtu, br);
}

static int
net_uplink_check(struct net_ctx *c, const char *up, char *err, size_t errsz)
{
	if (netk_link(c->links, up) == NULL)
		return net_errf(err, errsz, "uplink %s not found on host %s", up,
		    c->cfg->host);
	return 0;
}

/* The VLAN datapaths: the kernel's 802.1Q devices first, the eBPF
 * programs (netbpf.c) where the kernel has no 802.1Q. Found out once per
 * agent process, by asking the kernel, never assumed. */
enum { NET_DP_UNKNOWN, NET_DP_8021Q, NET_DP_EBPF };
static int net_vlan_dp;

int
net_no_link_type(const char *err)
{
	return strstr(err, "Unknown device type") != NULL ||
	    strstr(err, "Operation not supported") != NULL;
}

/* Does the kernel know the "vlan" link type? A VLAN device without a
 * lower device: a kernel with 802.1Q refuses it for that (and makes
 * nothing), one without says it does not know the type. Anything else
 * counts as 802.1Q: creating the real device finds out for sure. */
static int
net_vlan_probe(void)
{
	char err[256];

	if (net_vlan_dp != NET_DP_UNKNOWN)
		return net_vlan_dp;
	if (netk_run(err, sizeof(err), "ip link add name cvnvprobe type vlan "
	    "id 1") == 0) {
		netk_run(err, sizeof(err), "ip link del dev cvnvprobe");
		net_vlan_dp = NET_DP_8021Q;
	} else {
		net_vlan_dp = net_no_link_type(err) ? NET_DP_EBPF : NET_DP_8021Q;
	}
	log_info("net: VLAN networks use %s", net_vlan_dp == NET_DP_EBPF ?
	    "the eBPF datapath (no 802.1Q in the kernel)" :
	    "802.1Q devices");
	return net_vlan_dp;
}

/* 802.1Q: the VLAN device cvnv<id> on the uplink, a port of the bridge.
 * 1 when the kernel turns out to have no 802.1Q after all (nothing
 * made), 0 done, -1 with err. */
static int
net_vlan_8021q(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	char dev[16];
	json_t *l, *d;
	const char *link;

	if (net_ifname('v', n->id, dev, sizeof(dev)) < 0 ||
	    net_mine(c, dev, &l, err, errsz) < 0)
		return -1;
	d = netk_data(l);
	link = json_string_value(json_object_get(l, "link"));
	if (l != NULL && (strcmp(netk_kind(l), "vlan") != 0 || link == NULL ||
	    strcmp(link, n->uplink) != 0 || json_integer_value(json_object_get(
	    d, "id")) != n->vlan)) {
		if (net_drop_link(c, dev, err, errsz) < 0)
			return -1;
		l = NULL;
	}
	if (l == NULL && netk_link_add(dev, c->cfg->owner, err, errsz, "link %s "
	    "name %s type vlan id %d", n->uplink, dev, n->vlan) < 0) {
		char why[160];

		/* Only the kernel's own words: an old ip(8)'s "Operation not
		 * supported" may also mean an uplink that cannot do VLANs. */
		if (strstr(err, "Unknown device type") != NULL)
			return 1;
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errsz, "cannot create VLAN device %s on host %s: "
		    "%s", dev, c->cfg->host, why);
		return -1;
	}
	return net_port_up(n, dev, err, errsz);
}

/* eBPF: a veth pair, cvnv<id> a port of the bridge and cvnq<id> the
 * trunk end, and netbpf's two filters between cvnq<id> and the uplink. */
static int
net_vlan_ebpf(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	char dev[16], trunk[16], why[160];
	json_t *l, *q, *up = netk_link(c->links, n->uplink);
	const char *peer;
	json_int_t upmtu = json_integer_value(json_object_get(up, "mtu"));

	/* A tagged frame is 4 bytes longer than its payload allows for: the
	 * uplink carries the network's MTU the way it would under 802.1Q
	 * (a VLAN device's MTU is at most its lower device's). */
	if (upmtu > 0 && n->mtu > upmtu)
		return net_errf(err, errsz, "the network's MTU %d is above the "
		    "MTU %lld of uplink %s on host %s", n->mtu, (long long)upmtu,
		    n->uplink, c->cfg->host);
	if (netbpf_probe(why, sizeof(why)) < 0)
		return net_errf(err, errsz, "cannot realize VLAN %d on host %s: "
		    "no 802.1Q support in the kernel, and eBPF programs do not "
		    "load there (%s)", n->vlan, c->cfg->host, why);
	if (net_ifname('v', n->id, dev, sizeof(dev)) < 0 ||
	    net_ifname('q', n->id, trunk, sizeof(trunk)) < 0 ||
	    net_mine(c, dev, &l, err, errsz) < 0 ||
	    net_mine(c, trunk, &q, err, errsz) < 0)
		return -1;
	peer = json_string_value(json_object_get(l, "link"));
	if (l != NULL && (strcmp(netk_kind(l), "veth") != 0 || q == NULL ||
	    peer == NULL || strcmp(peer, trunk) != 0)) {
		if (net_drop_link(c, dev, err, errsz) < 0)
			return -1;
		l = NULL;
	}
	if (l == NULL && netk_link(c->links, trunk) != NULL &&
	    netk_run(err, errsz, "ip link del dev %s", trunk) < 0)
		return -1;
	if (l == NULL && (netk_link_add(dev, c->cfg->owner, err, errsz, "name "
	    "%s type veth peer name %s", dev, trunk) < 0 || netk_run(err,
	    errsz, "ip link set dev %s alias %s", trunk, c->cfg->owner) < 0)) {
		char e2[256];

		netk_run(e2, sizeof(e2), "ip link del dev %s", dev);
		return -1;
	}
	net_no_ipv6(trunk);
	if (netk_run(err, errsz, "ip link set dev %s mtu %d up", trunk,
	    n->mtu) < 0 || net_port_up(n, dev, err, errsz) < 0)
		return -1;
	if (netbpf_vlan_apply(c->cfg->owner, n->id, n->vlan, n->uplink, trunk,
	    why, sizeof(why)) < 0)
		return net_errf(err, errsz, "eBPF VLAN datapath on host %s: %s",
		    c->cfg->host, why);
	return 0;
}

static int
net_vlan(struct net_ctx *c, const struct net_def *n, char *err, size_t errsz)
{
	int rc = 1;

	if (net_uplink_check(c, n->uplink, err, errsz) < 0)
		return -1;
	if (net_vlan_probe() == NET_DP_8021Q &&
	    (rc = net_vlan_8021q(c, n, err, errsz)) == 1) {
		log_info("net: no 802.1Q in the kernel after all: VLAN "
		    "networks use the eBPF datapath");
		net_vlan_dp = NET_DP_EBPF;
	}
	if (rc == 1)
		rc = net_vlan_ebpf(c, n, err, errsz);
	if (rc == 0 && c->datapath != NULL)
		json_object_set_new(c->datapath, n->name, json_string(
		    net_vlan_dp == NET_DP_EBPF ? "ebpf" : "8021q"));
	return rc;
}

/* Does the existing VXLAN device match what n wants? */
static int
net_vxlan_same(json_t *l, const struct net_def *n, const char *local)
{
	json_t *d = netk_data(l);
	const char *lo = json_string_value(json_object_get(d, "local"));
	const char *up = json_string_value(json_object_get(d, "link"));

	return strcmp(netk_kind(l), "vxlan") == 0 &&
	    json_integer_value(json_object_get(d, "id")) == n->vni &&
	    json_integer_value(json_object_get(d, "port")) == NET_VXLAN_PORT &&
	    json_is_false(json_object_get(d, "learning")) &&
	    lo != NULL && strcmp(lo, local) == 0 &&
	    (n->uplink[0] ? up != NULL && strcmp(up, n->uplink) == 0 :
	    up == NULL);
}

/* The all-zero fdb entries of the VXLAN device = the peers (flooding of
 * broadcast and unknown unicast to every other host). */
static int
net_vxlan_fdb(struct net_ctx *c, const char *dev, const struct net_def *n,
    char *err, size_t errsz)
{
	char (*have)[16] = NULL, *text = NULL;
	const char **add = NULL, **del = NULL;
	size_t nhave = 0, nadd = 0, ndel = 0, i, len = 0, cap;
	int rc = -1;

	if (netk_fdb_dsts(dev, &have, &nhave, err, errsz) < 0)
		goto cleanup;
	if (net_peers_diff(have, nhave, n->peers, n->npeers, &add, &nadd,
	    &del, &ndel) < 0) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	if (nadd + ndel == 0) {
		rc = 0;
		goto cleanup;
	}
	cap = (nadd + ndel) * 96 + 1;
	if ((text = malloc(cap)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	text[0] = '\0';
	for (i = 0; i < ndel; i++)
		len += (size_t)snprintf(text + len, cap - len, "fdb del "
		    "00:00:00:00:00:00 dev %s dst %s\n", dev, del[i]);
	for (i = 0; i < nadd; i++)
		len += (size_t)snprintf(text + len, cap - len, "fdb append "
		    "00:00:00:00:00:00 dev %s dst %s\n", dev, add[i]);
	log_info("net: %s: %zu peer(s) added, %zu removed", dev, nadd, ndel);
	rc = netk_batch("bridge", c->cfg->run, text, err, errsz);
cleanup:
	free(have);
	free(add);
	free(del);
	free(text);
	return rc;
}

static int
net_vxlan(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	char dev[16], via[32] = "";
	json_t *l;

	if (c->p->local[0] == '\0')
		return net_errf(err, errsz, "no VXLAN source address for host "
		    "%s (the manager sent none)", c->cfg->host);
	if (n->uplink[0] && net_uplink_check(c, n->uplink, err, errsz) < 0)
		return -1;
	if (net_ifname('x', n->id, dev, sizeof(dev)) < 0 ||
	    net_mine(c, dev, &l, err, errsz) < 0)
		return -1;
	if (l != NULL && !net_vxlan_same(l, n, c->p->local)) {
		if (net_drop_link(c, dev, err, errsz) < 0)
			return -1;
		l = NULL;
	}
	if (n->uplink[0])
		snprintf(via, sizeof(via), " dev %s", n->uplink);
	if (l == NULL && netk_link_add(dev, c->cfg->owner, err, errsz, "name %s "
	    "type vxlan id %ld dstport %d local %s nolearning%s", dev, n->vni,
	    NET_VXLAN_PORT, c->p->local, via) < 0)
		return -1;
	if (net_port_up(n, dev, err, errsz) < 0)
		return -1;
	return net_vxlan_fdb(c, dev, n, err, errsz);
}

static int
net_bridge_check(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	json_t *l = netk_link(c->links, n->uplink);

	if (l == NULL)
		return net_errf(err, errsz, "bridge %s not found on host %s",
		    n->uplink, c->cfg->host);
	if (strcmp(netk_kind(l), "bridge") != 0)
		return net_errf(err, errsz, "%s is not a bridge on host %s",
		    n->uplink, c->cfg->host);
	return 0;
}

int
net_realize(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	int rc;

	if (n->type != NET_BRIDGE && net_bridge(c, n, err, errsz) < 0)
		return -1;
	switch (n->type) {
	case NET_NAT:
		rc = nat_apply(c, n, err, errsz);
		break;
	case NET_BRIDGE:
		rc = net_bridge_check(c, n, err, errsz);
		break;
	case NET_VLAN:
		rc = net_vlan(c, n, err, errsz);
		break;
	case NET_VXLAN:
		rc = net_vxlan(c, n, err, errsz);
		break;
	default:
		snprintf(err, errsz, "unknown network type");
		rc = -1;
		break;
	}
	if (rc < 0)
		return -1;
	if (n->dhcp)
		return dhcp_apply(c, n, err, errsz);
	dhcp_stop(c->cfg, n->id);
	return 0;
}

/* Is the link name (cvn<kind><id>) wanted by the payload? Networks that
 * failed validation but have an id keep their links untouched. */
static int
net_link_wanted(const struct net_payload *p, char kind, long id)
{
	size_t i;

	for (i = 0; i < p->nnets; i++) {
		const struct net_def *n = &p->nets[i];

		if (n->id != id)
			continue;
		if (n->err[0])
			return 1;
		switch (kind) {
		case 'b': return n->type != NET_BRIDGE;
		case 'x': return n->type == NET_VXLAN;
		case 'v': return n->type == NET_VLAN;
		case 'd': return n->type != NET_NAT && n->dhcp;
		default: return 0;
		}
	}
	return 0;
}

/* "cvn" + kind + decimal id; 0 when name is not one of ours. */
static int
net_parse_ifname(const char *name, char *kind, long *id)
{
	uint64_t v;

	if (strncmp(name, "cvn", 3) != 0 || name[3] == '\0' ||
	    strchr("bxvd", name[3]) == NULL || util_parse_u64(name + 4, 1,
	    NET_MAX_ID, &v) < 0)
		return 0;
	*kind = name[3];
	*id = (long)v;
	return 1;
}

/* Is network id's eBPF uplink filter on ifindex still wanted? Kept
 * while its network is invalid (like its links) or the datapath is not
 * known yet. */
static int
net_vlan_filter_wanted(void *arg, long id, unsigned ifindex)
{
	const struct net_payload *p = ((struct net_ctx *)arg)->p;
	size_t i;

	for (i = 0; i < p->nnets; i++) {
		const struct net_def *n = &p->nets[i];

		if (n->id != id)
			continue;
		if (n->err[0] || net_vlan_dp == NET_DP_UNKNOWN)
			return 1;
		return n->type == NET_VLAN && net_vlan_dp == NET_DP_EBPF &&
		    if_nametoindex(n->uplink) == ifindex;
	}
	return 0;
}

void
net_reconcile(struct net_ctx *c, int (*keep_tap)(json_t *link))
{
	char err[256], kind;
	json_t *l;
	size_t i;
	long id;

	/* The uplink filters first: none may outlive the veth it sends to. */
	netbpf_reconcile(c->cfg->owner, net_vlan_filter_wanted, c);

	json_array_foreach(c->links, i, l) {
		const char *name = json_string_value(json_object_get(l,
		    "ifname"));

		if (name == NULL || !netk_owned(l, c->cfg->owner))
			continue;
		if (strncmp(name, "cvnt", 4) == 0 && strcmp(netk_kind(l),
		    "tun") == 0) {
			if (keep_tap(l))
				continue;
			log_info("net: deleting %s (no VM uses it)", name);
		} else if (net_parse_ifname(name, &kind, &id)) {
			if (net_link_wanted(c->p, kind, id))
				continue;
			log_info("net: deleting %s (its network is gone)", name);
		} else {
			continue;
		}
		if (netk_run(err, sizeof(err), "ip link del dev %s", name) < 0)
			log_warnx("net: cannot delete %s: %s", name, err);
	}
	nat_reconcile(c);
	dhcp_reconcile(c);
}
