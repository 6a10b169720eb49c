/* net_int.h - internal interfaces of the network module (src/net). */
#ifndef CVIRT_NET_INT_H
#define CVIRT_NET_INT_H

#include <stddef.h>
#include <jansson.h>

#include "net/net.h"
#include "net/netbpf_prog.h"

/* netcfg.c: format a one-line error into err; returns -1. */
int	 net_errf(char *err, size_t errsz, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* netk.c: kernel objects through ip(8), bridge(8) and nft(8) */
/* Run one command line of space-separated words (every word is a checked
 * name, address or number: nothing here is quoted). 0 or -1 with the
 * tool's last output line in err. */
int	 netk_run(char *err, size_t errsz, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Run `tool -batch FILE` (ip, bridge) or `nft -f FILE` with text written
 * to a temporary file under dir. */
int	 netk_batch(const char *tool, const char *dir, const char *text,
	    char *err, size_t errsz);
/* `ip -d -j link show` as a JSON array (new reference) or NULL. */
json_t	*netk_links(char *err, size_t errsz);
/* The link called name in links (borrowed) or NULL. */
json_t	*netk_link(json_t *links, const char *name);
/* Its linkinfo.info_kind ("" when none) and info_data (may be NULL). */
const char *netk_kind(json_t *link);
json_t	*netk_data(json_t *link);
/* 1 when the link's alias is owner (we made it). */
int	 netk_owned(json_t *link, const char *owner);
/* Create a link with `ip link add ARGS` and mark it ours (alias). */
int	 netk_link_add(const char *name, const char *owner, char *err,
	    size_t errsz, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
/* Table family/name: 1 ours (its comment is owner), 0 someone else's,
 * -1 absent or unreadable. */
int	 netk_nft_owned(const char *family, const char *table,
	    const char *owner);
/* 1 when the link's flags list has flag (e.g. "LOWER_UP"). */
int	 netk_has_flag(json_t *link, const char *flag);
/* IPv4 "dst" addresses of the all-zero fdb entries of dev; sorted. */
int	 netk_fdb_dsts(const char *dev, char (**out)[16], size_t *n,
	    char *err, size_t errsz);
/* Names of the tables of family ("ip", "bridge") whose name starts with
 * prefix; JSON array of strings (new reference) or NULL. */
json_t	*netk_nft_tables(const char *family, const char *prefix, char *err,
	    size_t errsz);

/* `tc -j filter show dev DEV DIR` (DIR ingress or egress): how many
 * entries it lists (0: none, or no clsact qdisc), -1 with err. */
int	 netk_tc_filters(const char *dev, const char *dir, char *err,
	    size_t errsz);

/* netbpf.c: the eBPF VLAN datapath for kernels without 802.1Q. Per VLAN
 * network id two direct-action cls_bpf filters (handle id, prio
 * NETBPF_PRIO): on the trunk veth's ingress one tags and sends to the
 * uplink, on the uplink's ingress one untags its VLAN id's frames and
 * sends them to the trunk veth (docs/network.md). */
#define NETBPF_PRIO	0xc7
enum { NETBPF_ATTACH, NETBPF_KEEP, NETBPF_REPLACE, NETBPF_FOREIGN };
/* A program configuration (zero-filled, owner truncated to fit). */
void	 netbpf_cfg_make(struct netbpf_cfg *c, int role, const char *owner,
	    long id, int vid, unsigned target, unsigned attached);
/* What to do about the filter where want belongs: none there (exists
 * 0): ATTACH; one whose program is not a cvirt VLAN program (have NULL)
 * or another owner's: FOREIGN; ours doing what want says: KEEP; ours
 * otherwise: REPLACE. Pure. */
int	 netbpf_plan(int exists, const struct netbpf_cfg *have,
	    const struct netbpf_cfg *want);
/* 0 when an eBPF program loads here (remembered once it did), -1 with
 * the reason (no bpf(2), no permission). */
int	 netbpf_probe(char *err, size_t errsz);
/* Network id's two filters, vid between the uplink and trunk (the veth
 * end outside the bridge): attached, kept when already right (an agent
 * restart adds nothing), replaced when ours but different; -1 with err. */
int	 netbpf_vlan_apply(const char *owner, long id, int vid,
	    const char *uplink, const char *trunk, char *err, size_t errsz);
/* Detach every uplink filter of owner's for which wanted(arg, network
 * id, uplink ifindex) is 0, then the clsact qdisc of each device that
 * has no filter left. */
void	 netbpf_reconcile(const char *owner, int (*wanted)(void *arg, long id,
	    unsigned ifindex), void *arg);

/* netapply.c: one network at a time, then the reconcile */
struct net_ctx {
	const struct net_config	*cfg;
	const struct net_payload *p;
	json_t			*links;		/* refreshed by the caller */
	json_t			*datapath;	/* {vlan network: "8021q" | "ebpf"} */
};
/* Create what is missing, fix what differs. 0, or -1 with a one-line
 * error for the network's status. */
int	 net_realize(struct net_ctx *c, const struct net_def *n, char *err,
	    size_t errsz);
/* 1 when an `ip link add` error (its last line) says the kernel does
 * not know the link type: no 802.1Q for type vlan. Pure. */
int	 net_no_link_type(const char *err);
/* Turn IPv6 off on a pure L2 device (best effort). */
void	 net_no_ipv6(const char *dev);
/* The bridge a network's TAPs join ("" when the type has none). */
int	 net_bridge_of(const struct net_def *n, char *out, size_t outsz);
/* Delete every cvn link, cvirt_ nft table, dnsmasq and namespace that
 * the payload does not want; TAPs only when keep_tap says no. */
void	 net_reconcile(struct net_ctx *c, int (*keep_tap)(json_t *link));

/* nat.c: masquerade and forwarding for nat networks */
int	 nat_apply(struct net_ctx *c, const struct net_def *n, char *err,
	    size_t errsz);
/* Drop cvirt_nat<id> tables of networks that are not in the payload. */
void	 nat_reconcile(struct net_ctx *c);

/* dhcp.c: dnsmasq per network (nat: on the bridge; vxlan: in a private
 * namespace behind a veth, the anycast gateway) */
int	 dhcp_apply(struct net_ctx *c, const struct net_def *n, char *err,
	    size_t errsz);
/* Stop the dnsmasq of id (only one this agent started) and drop its files. */
void	 dhcp_stop(const struct net_config *cfg, long id);
void	 dhcp_reconcile(struct net_ctx *c);
/* The dnsmasq configuration text for n (new string; pure, for tests). */
char	*dhcp_conf_text(const struct net_def *n, const char *iface,
	    const char *pidfile, const char *leasefile);

#endif
