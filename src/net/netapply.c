/* netapply.c - realize one network's links and reconcile every cvn link. */
#include <fcntl.h>
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

static int
net_vlan(struct net_ctx *c, const struct net_def *n, char *err, size_t errsz)
{
	char dev[16];
	json_t *l, *d;
	const char *link;

	if (net_uplink_check(c, n->uplink, err, errsz) < 0 ||
	    net_ifname('v', n->id, dev, sizeof(dev)) < 0 ||
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

		/* "Unknown device type": a kernel without CONFIG_VLAN_8021Q. */
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errsz, "cannot create VLAN device %s on host %s: "
		    "%s%s", dev, c->cfg->host, why, strstr(why, "Unknown device")
		    ? " (no 802.1Q support in the kernel)" : "");
		return -1;
	}
	return net_port_up(n, dev, err, errsz);
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

void
net_reconcile(struct net_ctx *c, int (*keep_tap)(json_t *link))
{
	char err[256], kind;
	json_t *l;
	size_t i;
	long id;

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
