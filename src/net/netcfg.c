/* netcfg.c - the manager's network payload: parsing, checks, names (pure). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/net_int.h"

static const char *net_types[] = { NULL, "nat", "bridge", "vlan", "vxlan" };

int
net_errf(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -1;
}

const char *
net_type_name(enum net_type t)
{
	return t >= NET_NAT && t <= NET_VXLAN ? net_types[t] : "?";
}

int
net_ifname(char kind, long id, char *out, size_t outsz)
{
	if (strchr("bxvdeq", kind) == NULL || id < 1 || id > NET_MAX_ID)
		return -1;
	return util_fmt(out, outsz, "cvn%c%ld", kind, id);
}

int
net_mac_valid(const char *s)
{
	int i;

	if (s == NULL || strlen(s) != 17)
		return 0;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	/* The group bit of the first octet: multicast is no NIC address. */
	return (strtoul(s, NULL, 16) & 1) == 0;
}

int
net_tap_name(const char *mac, char *out, size_t outsz)
{
	char hex[7];
	int i;

	if (!net_mac_valid(mac))
		return -1;
	snprintf(hex, sizeof(hex), "%c%c%c%c%c%c", mac[9], mac[10], mac[12],
	    mac[13], mac[15], mac[16]);
	for (i = 0; hex[i]; i++)
		hex[i] = (char)tolower((unsigned char)hex[i]);
	return util_fmt(out, outsz, "cvnt%s", hex);
}

int
net_ifname_valid(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (n == 0 || n > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			return 0;
	}
	return s[0] != '-' && s[0] != '.';
}

int
net_path_safe(const char *s)
{
	size_t i;

	if (s == NULL || s[0] != '/' || strlen(s) > 200)
		return 0;
	for (i = 0; s[i]; i++) {
		if (!isalnum((unsigned char)s[i]) && strchr("._/-", s[i]) == NULL)
			return 0;
	}
	return 1;
}

int
net_ipv4_parse(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (s == NULL || strlen(s) > 15 || inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

int
net_cidr_parse(const char *s, uint32_t *addr, int *prefix)
{
	char ip[16];
	const char *slash = s ? strchr(s, '/') : NULL;
	uint64_t p;
	uint32_t a, mask;

	if (slash == NULL || slash - s > 15)
		return -1;
	snprintf(ip, sizeof(ip), "%.*s", (int)(slash - s), s);
	if (net_ipv4_parse(ip, &a) < 0 || util_parse_u64(slash + 1, 8, 30,
	    &p) < 0)
		return -1;
	mask = 0xffffffffu << (32 - p);
	if ((a & ~mask) != 0)
		return -1;
	*addr = a;
	*prefix = (int)p;
	return 0;
}

static int
net_in_subnet(const struct net_def *n, uint32_t a)
{
	uint32_t mask = 0xffffffffu << (32 - n->prefix);

	/* Neither the network nor the broadcast address. */
	return (a & mask) == n->net_addr && a != n->net_addr &&
	    a != (n->net_addr | ~mask);
}

static int
net_str_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* An optional string field: absent or null -> NULL; wrong type -> -1. */
static int
net_opt_str(json_t *o, const char *key, const char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	return 0;
}

/* An optional integer in [min, max]: absent or null -> 0. */
static int
net_opt_int(json_t *o, const char *key, long min, long max, long *out)
{
	json_t *v = json_object_get(o, key);

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return -1;
	*out = (long)json_integer_value(v);
	return 0;
}

static int
net_parse_peers(json_t *o, struct net_def *n)
{
	json_t *arr = json_object_get(o, "peers"), *v;
	uint32_t a;
	size_t i, k = 0;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > NET_MAX_PEERS)
		return net_errf(n->err, sizeof(n->err), "peers: want at most "
		    "%d IPv4 addresses", NET_MAX_PEERS);
	if ((n->peers = calloc(json_array_size(arr) + 1, 16)) == NULL)
		return net_errf(n->err, sizeof(n->err), "out of memory");
	json_array_foreach(arr, i, v) {
		if (net_ipv4_parse(json_string_value(v), &a) < 0 || a == 0 ||
		    (a >> 28) >= 14)
			return net_errf(n->err, sizeof(n->err), "peers[%zu]: "
			    "not a unicast IPv4 address", i);
		snprintf(n->peers[k++], 16, "%s", json_string_value(v));
	}
	qsort(n->peers, k, 16, net_str_cmp);
	for (i = 0; i < k; i++) {
		if (n->npeers == 0 || strcmp(n->peers[n->npeers - 1],
		    n->peers[i]) != 0)
			memmove(n->peers[n->npeers++], n->peers[i], 16);
	}
	return 0;
}

static int
net_parse_leases(json_t *o, struct net_def *n)
{
	json_t *arr = json_object_get(o, "leases"), *v;
	const char *mac, *ip, *vm;
	uint32_t a;
	size_t i;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > NET_MAX_LEASES)
		return net_errf(n->err, sizeof(n->err), "leases: not a list");
	if ((n->leases = calloc(json_array_size(arr) + 1,
	    sizeof(*n->leases))) == NULL)
		return net_errf(n->err, sizeof(n->err), "out of memory");
	json_array_foreach(arr, i, v) {
		if (!json_is_object(v) || net_opt_str(v, "mac", &mac) < 0 ||
		    net_opt_str(v, "ip", &ip) < 0 || net_opt_str(v, "vm",
		    &vm) < 0 || !net_mac_valid(mac))
			return net_errf(n->err, sizeof(n->err), "leases[%zu]: "
			    "want {mac, ip, vm}", i);
		if (!n->has_subnet || net_ipv4_parse(ip, &a) < 0 ||
		    !net_in_subnet(n, a))
			return net_errf(n->err, sizeof(n->err), "leases[%zu]: "
			    "address not in the subnet", i);
		if (vm != NULL && !util_name_valid(vm))
			return net_errf(n->err, sizeof(n->err), "leases[%zu]: "
			    "invalid VM name", i);
		snprintf(n->leases[i].mac, sizeof(n->leases[i].mac), "%s", mac);
		snprintf(n->leases[i].ip, sizeof(n->leases[i].ip), "%s", ip);
		snprintf(n->leases[i].vm, sizeof(n->leases[i].vm), "%s",
		    vm ? vm : "");
		n->nleases++;
	}
	return 0;
}

static int
net_parse_type(json_t *o, struct net_def *n)
{
	const char *t;
	int i;

	if (net_opt_str(o, "type", &t) < 0 || t == NULL)
		return -1;
	for (i = NET_NAT; i <= NET_VXLAN; i++) {
		if (strcmp(t, net_types[i]) == 0) {
			n->type = (enum net_type)i;
			return 0;
		}
	}
	return -1;
}

/* The addressing fields: subnet, gateway, mac, mtu, dhcp. */
static int
net_parse_addr(json_t *o, struct net_def *n)
{
	const char *subnet, *gw, *mac;
	json_t *dhcp = json_object_get(o, "dhcp");
	uint32_t a;
	long mtu;

	if (net_opt_str(o, "subnet", &subnet) < 0 || (subnet != NULL &&
	    (net_cidr_parse(subnet, &n->net_addr, &n->prefix) < 0)))
		return net_errf(n->err, sizeof(n->err), "subnet: want an IPv4 "
		    "network a.b.c.d/8..30");
	if (subnet) {
		n->has_subnet = 1;
		snprintf(n->subnet, sizeof(n->subnet), "%s", subnet);
	}
	if (net_opt_str(o, "gateway", &gw) < 0 || (gw == NULL) !=
	    (subnet == NULL) || (gw && (net_ipv4_parse(gw, &a) < 0 ||
	    !net_in_subnet(n, a))))
		return net_errf(n->err, sizeof(n->err), "gateway: want an "
		    "address of the subnet");
	snprintf(n->gateway, sizeof(n->gateway), "%s", gw ? gw : "");
	if (net_opt_str(o, "mac", &mac) < 0 || (mac && !net_mac_valid(mac)))
		return net_errf(n->err, sizeof(n->err), "mac: want a unicast "
		    "MAC address");
	snprintf(n->mac, sizeof(n->mac), "%s", mac ? mac : "");
	if (net_opt_int(o, "mtu", 576, 9000, &mtu) < 0)
		return net_errf(n->err, sizeof(n->err), "mtu: want 576..9000");
	n->mtu = mtu ? (int)mtu : n->type == NET_VXLAN ? 1450 : 1500;
	if (dhcp != NULL && !json_is_null(dhcp) && !json_is_boolean(dhcp))
		return net_errf(n->err, sizeof(n->err), "dhcp: want true or "
		    "false");
	n->dhcp = dhcp && !json_is_null(dhcp) ? json_is_true(dhcp) :
	    n->type == NET_NAT || (n->type == NET_VXLAN && n->has_subnet);
	if (n->type == NET_NAT && (!n->has_subnet || !n->mac[0]))
		return net_errf(n->err, sizeof(n->err), "a nat network needs "
		    "a subnet and a mac");
	if (n->dhcp && (!n->has_subnet || !n->mac[0]))
		return net_errf(n->err, sizeof(n->err), "DHCP needs a subnet "
		    "and a mac");
	return 0;
}

/* The type-specific fields: vni, vlan, uplink. */
static int
net_parse_link(json_t *o, struct net_def *n)
{
	const char *up;
	long v;

	if (net_opt_int(o, "vni", 1, 16777215, &n->vni) < 0)
		return net_errf(n->err, sizeof(n->err), "vni: want "
		    "1..16777215");
	if (net_opt_int(o, "vlan", 1, 4094, &v) < 0)
		return net_errf(n->err, sizeof(n->err), "vlan: want 1..4094");
	n->vlan = (int)v;
	if (net_opt_str(o, "uplink", &up) < 0 || (up && (!net_ifname_valid(up)
	    || strncmp(up, "cvn", 3) == 0)))
		return net_errf(n->err, sizeof(n->err), "uplink: want a host "
		    "interface name");
	snprintf(n->uplink, sizeof(n->uplink), "%s", up ? up : "");
	if (n->type == NET_VXLAN && n->vni == 0)
		return net_errf(n->err, sizeof(n->err), "a vxlan network needs "
		    "a vni");
	if (n->type == NET_VLAN && (n->vlan == 0 || !n->uplink[0]))
		return net_errf(n->err, sizeof(n->err), "a vlan network needs "
		    "a vlan id and an uplink");
	if (n->type == NET_BRIDGE && !n->uplink[0])
		return net_errf(n->err, sizeof(n->err), "a bridge network "
		    "needs an uplink bridge");
	return 0;
}

/* One network; its problems go to n->err (the payload stays usable). */
static void
net_parse_one(json_t *o, struct net_def *n)
{
	const char *name;
	long id;

	if (!json_is_object(o) || net_opt_str(o, "name", &name) < 0 ||
	    name == NULL || !util_name_valid(name)) {
		snprintf(n->err, sizeof(n->err), "invalid network name");
		return;
	}
	snprintf(n->name, sizeof(n->name), "%s", name);
	if (net_opt_int(o, "id", 1, NET_MAX_ID, &id) < 0 || id == 0) {
		snprintf(n->err, sizeof(n->err), "id: want 1..%d", NET_MAX_ID);
		return;
	}
	n->id = id;
	if (net_parse_type(o, n) < 0) {
		snprintf(n->err, sizeof(n->err), "type: want nat, bridge, vlan "
		    "or vxlan");
		return;
	}
	if (net_parse_addr(o, n) < 0 || net_parse_link(o, n) < 0 ||
	    net_parse_peers(o, n) < 0 || net_parse_leases(o, n) < 0)
		return;
}

/* Names, ids, VNIs and (uplink, vlan) pairs are unique: later ones lose. */
static void
net_check_unique(struct net_payload *p)
{
	size_t i, k;

	for (i = 0; i < p->nnets; i++) {
		struct net_def *n = &p->nets[i];

		for (k = 0; k < i && n->name[0]; k++) {
			const struct net_def *o = &p->nets[k];

			if (strcmp(o->name, n->name) == 0)
				snprintf(n->err, sizeof(n->err), "network name "
				    "given twice");
			else if (o->id && o->id == n->id)
				snprintf(n->err, sizeof(n->err), "id %ld is "
				    "also network %s", n->id, o->name);
			else if (!o->err[0] && !n->err[0] && o->vni &&
			    o->vni == n->vni)
				snprintf(n->err, sizeof(n->err), "vni %ld is "
				    "also network %s", n->vni, o->name);
			else if (!o->err[0] && !n->err[0] && o->vlan &&
			    o->vlan == n->vlan && strcmp(o->uplink,
			    n->uplink) == 0)
				snprintf(n->err, sizeof(n->err), "vlan %d on %s "
				    "is also network %s", n->vlan, n->uplink,
				    o->name);
			if (n->err[0] && strcmp(o->name, n->name) == 0) {
				n->name[0] = '\0';	/* no status of its own */
				n->id = 0;
			}
		}
	}
}

int
net_payload_parse(json_t *j, struct net_payload *out, char *err,
    size_t errsz)
{
	struct net_payload p;
	const char *gen, *local;
	json_t *nets, *v;
	uint32_t a;
	size_t i;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	if (!json_is_object(j)) {
		snprintf(err, errsz, "net: want an object");
		goto cleanup;
	}
	if (net_opt_str(j, "gen", &gen) < 0 || gen == NULL || gen[0] == '\0' ||
	    strlen(gen) > NET_GEN_MAX) {
		snprintf(err, errsz, "net.gen: want a string of 1..%d "
		    "characters", NET_GEN_MAX);
		goto cleanup;
	}
	for (i = 0; gen[i]; i++) {
		if (!isgraph((unsigned char)gen[i])) {
			snprintf(err, errsz, "net.gen: printable characters "
			    "only");
			goto cleanup;
		}
	}
	snprintf(p.gen, sizeof(p.gen), "%s", gen);
	/* "" when the manager knows no IPv4 address of this host. */
	if (net_opt_str(j, "local", &local) < 0 || (local && local[0] &&
	    net_ipv4_parse(local, &a) < 0)) {
		snprintf(err, errsz, "net.local: want an IPv4 address");
		goto cleanup;
	}
	snprintf(p.local, sizeof(p.local), "%s", local ? local : "");
	nets = json_object_get(j, "networks");
	if (!json_is_array(nets) || json_array_size(nets) > NET_MAX_NETWORKS) {
		snprintf(err, errsz, "net.networks: want a list of at most %d",
		    NET_MAX_NETWORKS);
		goto cleanup;
	}
	if ((p.nets = calloc(json_array_size(nets) + 1,
	    sizeof(*p.nets))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	json_array_foreach(nets, i, v) {
		net_parse_one(v, &p.nets[i]);
		p.nnets++;
	}
	net_check_unique(&p);
	*out = p;
	memset(&p, 0, sizeof(p));
	rc = 0;
cleanup:
	net_payload_free(&p);
	return rc;
}

void
net_payload_free(struct net_payload *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nnets; i++) {
		free(p->nets[i].peers);
		free(p->nets[i].leases);
	}
	free(p->nets);
	memset(p, 0, sizeof(*p));
}

const struct net_def *
net_payload_find(const struct net_payload *p, const char *name)
{
	size_t i;

	for (i = 0; p && i < p->nnets; i++) {
		if (p->nets[i].name[0] && strcmp(p->nets[i].name, name) == 0)
			return &p->nets[i];
	}
	return NULL;
}

int
net_peers_diff(char (*have)[16], size_t nhave, char (*want)[16],
    size_t nwant, const char ***add, size_t *nadd, const char ***del,
    size_t *ndel)
{
	size_t i, k;

	*nadd = *ndel = 0;
	*add = calloc(nwant + 1, sizeof(**add));
	*del = calloc(nhave + 1, sizeof(**del));
	if (*add == NULL || *del == NULL) {
		free(*add);
		free(*del);
		*add = *del = NULL;
		return -1;
	}
	for (i = 0; i < nwant; i++) {
		for (k = 0; k < nhave && strcmp(want[i], have[k]) != 0; k++)
			;
		if (k == nhave)
			(*add)[(*nadd)++] = want[i];
	}
	for (i = 0; i < nhave; i++) {
		for (k = 0; k < nwant && strcmp(want[k], have[i]) != 0; k++)
			;
		if (k == nwant)
			(*del)[(*ndel)++] = have[i];
	}
	return 0;
}
