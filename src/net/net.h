/* net.h - virtual networks on one host: bridges, VXLAN/VLAN devices, TAPs,
 * NAT and DHCP, realized from the manager's desired state (docs/network.md). */
#ifndef CVIRT_NET_H
#define CVIRT_NET_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "common/util.h"

/* --- the agent's interface (net.c) --- */

struct net_config {
	char	 host[UTIL_NAME_MAX + 1];	/* for error texts */
	char	 data[4096];	/* persistent: DATA/net.json, the last payload */
	char	 run[4096];	/* RUN/net: dnsmasq pid/conf/lease files */
	/* Written into every link's alias and nft table's comment: objects
	 * without it belong to someone else (another agent in this network
	 * namespace) and are never changed or deleted. */
	char	 owner[64];
	void	(*sync)(void);	/* ask for a report now (may be NULL) */
};

/* Start the worker thread. When a payload was saved by an earlier run,
 * it is applied at once (reconcile after a restart); otherwise nothing
 * is touched before the first payload arrives. */
int	 net_init(const struct net_config *cfg);
/* Stop the worker; every network and TAP stays in place. NULL-safe. */
void	 net_stop(void);
/* Hand over a heartbeat reply's "net" object (borrowed; copied). Returns
 * at once; the worker applies it and asks for a report when done. */
void	 net_submit(json_t *net);
/* The generation last applied ("" before any); into out. */
void	 net_gen(char *out, size_t outsz);
/* {"<network>": "ok" | "<one-line error>"}; new reference. */
json_t	*net_status(void);
/* {"<vlan network>": "8021q" | "ebpf"}: the datapath of each VLAN network
 * realized on this host; new reference. */
json_t	*net_datapath(void);

/* Create (or reuse) the TAP for this MAC on the network's bridge, owned
 * by the user QEMU runs as, with the network's MTU; waits up to ~5 s for
 * the network to be realized (asking for a sync). The TAP's name goes to
 * ifname (>= 16 bytes). "user" is an error: the caller handles it. */
int	 net_tap_attach(const char *network, const char *mac, char *ifname,
	    size_t ifsz, char *err, size_t errsz);
/* Delete the TAP of this MAC; no error when absent. */
int	 net_tap_detach(const char *mac);

/* --- the desired state, parsed and checked (netcfg.c; pure) --- */

#define NET_MAX_NETWORKS	4096
#define NET_MAX_PEERS		1024
#define NET_MAX_LEASES		65536
#define NET_MAX_ID		9999999	/* cvnb<id> fits IFNAMSIZ */
#define NET_GEN_MAX		64

enum net_type { NET_NAT = 1, NET_BRIDGE, NET_VLAN, NET_VXLAN };

struct net_lease {
	char		 mac[18];
	char		 ip[16];
	char		 vm[UTIL_NAME_MAX + 1];	/* "" when absent */
};

struct net_def {
	char		 name[UTIL_NAME_MAX + 1];
	long		 id;		/* 0 when the network is unusable */
	enum net_type	 type;
	int		 has_subnet;
	char		 subnet[19];	/* "10.50.0.0/24" */
	uint32_t	 net_addr;	/* host order */
	int		 prefix;
	char		 gateway[16];
	int		 dhcp;
	int		 mtu;
	long		 vni;
	int		 vlan;
	char		 uplink[16];	/* "" when absent */
	char		 mac[18];
	char		 (*peers)[16];	/* sorted, unique */
	size_t		 npeers;
	struct net_lease *leases;
	size_t		 nleases;
	char		 err[160];	/* why it is invalid, "" when valid */
};

struct net_payload {
	char		 gen[NET_GEN_MAX + 1];
	char		 local[16];	/* "" when absent */
	struct net_def	*nets;
	size_t		 nnets;
};

/* Check every field of a "net" object. A malformed envelope is -1 with
 * err; a malformed network is kept with its err set (and id 0 when even
 * the id is unusable). out is filled only on success; free it with
 * net_payload_free (NULL-safe, also on a zeroed struct). */
int	 net_payload_parse(json_t *j, struct net_payload *out, char *err,
	    size_t errsz);
void	 net_payload_free(struct net_payload *p);
const struct net_def *net_payload_find(const struct net_payload *p,
	    const char *name);
const char *net_type_name(enum net_type t);

/* Interface names (into out, >= 16 bytes); -1 on a bad argument. */
int	 net_ifname(char kind, long id, char *out, size_t outsz);
/* "cvnt" + the last 6 hex digits of the MAC (lower case). */
int	 net_tap_name(const char *mac, char *out, size_t outsz);
/* 1 when the absolute path s has only [A-Za-z0-9._/-] (safe as one word
 * of a helper's command line or a dnsmasq option). */
int	 net_path_safe(const char *s);
/* 1 when s is a kernel-acceptable interface name we are willing to use. */
int	 net_ifname_valid(const char *s);
/* 1 for "xx:xx:xx:xx:xx:xx" (any case), unicast. */
int	 net_mac_valid(const char *s);
/* Parse a dotted IPv4 address (host order); -1 when invalid. */
int	 net_ipv4_parse(const char *s, uint32_t *out);
/* "a.b.c.d/p" with no host bits set, p in 8..30. */
int	 net_cidr_parse(const char *s, uint32_t *addr, int *prefix);

/* Which of want[] are missing from have[] (add) and which of have[] are
 * not wanted (del); arrays of IPv4 strings. The results point into the
 * inputs; free the two arrays (not the strings) with free(). */
int	 net_peers_diff(char (*have)[16], size_t nhave, char (*want)[16],
	    size_t nwant, const char ***add, size_t *nadd, const char ***del,
	    size_t *ndel);

#endif
