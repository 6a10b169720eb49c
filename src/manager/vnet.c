/* vnet.c - virtual networks in the inventory: address arithmetic, vNIC
 * MAC and IP allocation (IPAM), the desired state each agent realizes and
 * whether a host has realized a VM's networks (docs/network.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

#define VNET_TRIES 32

static pthread_mutex_t vnet_lock = PTHREAD_MUTEX_INITIALIZER;
static char vnet_epoch[17];
static unsigned long long vnet_counter;
static json_t *vnet_status;	/* host name -> {network: "ok" | error} */
static json_t *vnet_dp;		/* host name -> {vlan network: datapath} */

/* ---- addresses ------------------------------------------------------------ */

int
vnet_ip_parse(const char *s, uint32_t *ip)
{
	struct in_addr a;

	if (s == NULL || inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*ip = ntohl(a.s_addr);
	return 0;
}

void
vnet_ip_fmt(uint32_t ip, char *out, size_t outsz)
{
	struct in_addr a = { .s_addr = htonl(ip) };

	if (inet_ntop(AF_INET, &a, out, (socklen_t)outsz) == NULL && outsz)
		out[0] = '\0';
}

int
vnet_cidr_parse(const char *s, struct vnet_cidr *c, char *err, size_t errsz)
{
	char buf[32], *slash, *end;
	uint32_t mask;
	long p;

	if (s == NULL || strlen(s) >= sizeof(buf)) {
		snprintf(err, errsz, "subnet must be an IPv4 CIDR like 10.1.0.0/24");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	if ((slash = strchr(buf, '/')) == NULL) {
		snprintf(err, errsz, "subnet %s has no prefix length (like "
		    "10.1.0.0/24)", s);
		return -1;
	}
	*slash++ = '\0';
	errno = 0;
	p = strtol(slash, &end, 10);
	if (vnet_ip_parse(buf, &c->net) < 0 || *slash == '\0' || *end != '\0' ||
	    errno != 0) {
		snprintf(err, errsz, "subnet must be an IPv4 CIDR like "
		    "10.1.0.0/24");
		return -1;
	}
	if (p < VNET_PREFIX_MIN || p > VNET_PREFIX_MAX) {
		snprintf(err, errsz, "subnet prefix must be /%d to /%d",
		    VNET_PREFIX_MIN, VNET_PREFIX_MAX);
		return -1;
	}
	c->prefix = (int)p;
	mask = vnet_mask(c->prefix);
	if ((c->net & ~mask) != 0) {
		vnet_ip_fmt(c->net & mask, buf, sizeof(buf));
		snprintf(err, errsz, "subnet %s has host bits set (did you mean "
		    "%s/%d?)", s, buf, c->prefix);
		return -1;
	}
	return 0;
}

uint32_t
vnet_mask(int prefix)
{
	return prefix <= 0 ? 0 : 0xffffffffu << (32 - prefix);
}

int
vnet_cidr_overlap(const struct vnet_cidr *a, const struct vnet_cidr *b)
{
	uint32_t m = vnet_mask(a->prefix < b->prefix ? a->prefix : b->prefix);

	return (a->net & m) == (b->net & m);
}

/* A usable host address of c: not the network, gateway or broadcast. */
int
vnet_cidr_host_ok(const struct vnet_cidr *c, uint32_t ip)
{
	uint32_t m = vnet_mask(c->prefix);

	return (ip & m) == c->net && ip != c->net && ip != c->net + 1 &&
	    ip != (c->net | ~m);
}

/* "52:54:00:ab:cd:ef": six lower-case hex pairs, unicast, not zero. */
int
vnet_mac_valid(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (s == NULL || strlen(s) != 17)
		return 0;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return 0;
		} else if (strchr(hex, s[i]) == NULL || s[i] == '\0') {
			return 0;
		}
	}
	if (strchr("13579bdf", s[1]) != NULL)	/* multicast bit */
		return 0;
	return strcmp(s, "00:00:00:00:00:00") != 0;
}

/* A host interface name the kernel accepts and that is not ours. */
int
vnet_ifname_valid(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (n == 0 || n > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 ||
	    strncmp(s, "cvn", 3) == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' ||
		    s[i] == '.'))
			return 0;
	/* As the agents' net_ifname_valid: never an option to ip(8). */
	return s[0] != '-' && s[0] != '.';
}

/* ---- the generation agents follow ------------------------------------------ */

void
vnet_changed(void)
{
	pthread_mutex_lock(&vnet_lock);
	vnet_counter++;
	pthread_mutex_unlock(&vnet_lock);
}

/* "<epoch>-<counter>": a new epoch per manager process, so a standby that
 * takes over (or a restarted manager) resends every host its state. */
static void
vnet_gen(char *out, size_t outsz)
{
	pthread_mutex_lock(&vnet_lock);
	if (vnet_epoch[0] == '\0')
		util_random_hex(vnet_epoch, 8);
	snprintf(out, outsz, "%s-%llu", vnet_epoch, vnet_counter);
	pthread_mutex_unlock(&vnet_lock);
}

/* ---- MACs and addresses ------------------------------------------------------ */

static json_t *
vnet_find(const char *name)
{
	return db_row("SELECT * FROM networks WHERE name = ?", "s", name);
}

/* The lowest free host address of the network, or -1 when it is full. */
static int
vnet_pick_ip(const char *network, const struct vnet_cidr *c, char *out,
    size_t outsz)
{
	uint32_t size = 1u << (32 - c->prefix), ip, i;
	unsigned char *used;
	json_t *rows, *row;
	size_t k;
	int rc = -1;

	if ((used = calloc(size / 8 + 1, 1)) == NULL)
		return -1;
	rows = db_query("SELECT ip FROM nics WHERE network = ? AND ip IS NOT "
	    "NULL", "s", network);
	json_array_foreach(rows, k, row)
		if (vnet_ip_parse(JS(row, "ip"), &ip) == 0 &&
		    (ip & vnet_mask(c->prefix)) == c->net) {
			i = ip - c->net;
			used[i / 8] |= (unsigned char)(1u << (i % 8));
		}
	json_decref(rows);
	for (i = 2; i < size - 1; i++)
		if (!(used[i / 8] & (1u << (i % 8)))) {
			vnet_ip_fmt(c->net + i, out, outsz);
			rc = 0;
			break;
		}
	free(used);
	return rc;
}

/* Reserve one vNIC: nic {network, mac?, ip?, model?} gets its mac (and ip
 * on a network with a subnet) filled in; the row is the reservation.
 * Returns 0, or -1 with an HTTP status and a message. */
static int
vnet_nic_reserve(const char *vm, json_t *nic, int *status, char *err,
    size_t errsz)
{
	const char *name = JS(nic, "network"), *want_mac = JS(nic, "mac"),
	    *want_ip = JS(nic, "ip");
	char mac[18], ip[INET_ADDRSTRLEN] = "", hex[7];
	struct vnet_cidr c;
	json_t *net = NULL, *row;
	uint32_t a;
	int tries, has_subnet = 0, user = 0, n, rc = -1;

	*status = 400;
	if (name == NULL || strcmp(name, "user") == 0) {
		name = "user";
		user = 1;
	} else if ((net = vnet_find(name)) == NULL) {
		*status = 404;
		snprintf(err, errsz, "network \"%.64s\" not found", name);
		goto cleanup;
	} else if (strcmp(JS(net, "type"), "user") == 0) {
		user = 1;
	} else if (JS(net, "subnet") && vnet_cidr_parse(JS(net, "subnet"), &c,
	    err, errsz) == 0) {
		has_subnet = 1;
	}
	/* Slirp's DHCP hands out addresses in order and cannot reserve one
	 * per MAC. */
	if (user && want_ip) {
		snprintf(err, errsz, "network %s is user-mode and has no IPAM "
		    "(QEMU's DHCP picks the address): no ip may be given", name);
		goto cleanup;
	}
	if (want_ip && !has_subnet) {
		snprintf(err, errsz, "network %s has no subnet: no ip may be "
		    "given", name);
		goto cleanup;
	}
	if (want_ip && (vnet_ip_parse(want_ip, &a) < 0 ||
	    !vnet_cidr_host_ok(&c, a))) {
		snprintf(err, errsz, "ip %.64s is not a usable address of %s's "
		    "subnet %s (the first address is the gateway)", want_ip, name,
		    JS(net, "subnet"));
		goto cleanup;
	}
	if (want_mac && !vnet_mac_valid(want_mac)) {
		snprintf(err, errsz, "mac %.64s is not a unicast MAC like "
		    "52:54:00:12:34:56 (lower case)", want_mac);
		goto cleanup;
	}
	if (want_ip)
		snprintf(ip, sizeof(ip), "%s", want_ip);
	for (tries = 0; tries < VNET_TRIES; tries++) {
		if (want_mac) {
			snprintf(mac, sizeof(mac), "%s", want_mac);
		} else {
			util_random_hex(hex, 3);
			snprintf(mac, sizeof(mac), "52:54:00:%.2s:%.2s:%.2s", hex,
			    hex + 2, hex + 4);
		}
		if (has_subnet && !want_ip && vnet_pick_ip(name, &c, ip,
		    sizeof(ip)) < 0) {
			*status = 409;
			snprintf(err, errsz, "network %s has no free address left "
			    "in %s", name, JS(net, "subnet"));
			goto cleanup;
		}
		/* A host names a NIC's TAP after the MAC's last three bytes
		 * (cvnt<6 hex digits>): two TAP NICs that share them would
		 * share one TAP wherever they meet. */
		if (!user && (row = db_row("SELECT mac FROM nics WHERE network "
		    "<> 'user' AND network NOT IN (SELECT name FROM networks "
		    "WHERE type = 'user') AND substr(mac, 10) = ? AND mac <> ?",
		    "ss", mac + 9, mac)) != NULL) {
			if (want_mac) {
				*status = 409;
				snprintf(err, errsz, "mac %s ends like %s's (the "
				    "last three bytes name the NIC's TAP on a "
				    "host)", mac, JS(row, "mac"));
				json_decref(row);
				goto cleanup;
			}
			json_decref(row);
			continue;
		}
		/* Only while the network exists: a delete between the lookup
		 * above and here (it saw no NIC on it) would leave this one on
		 * a network that is gone. */
		n = db_exec("INSERT INTO nics (mac, vm, network, ip) SELECT ?, ?, "
		    "?, ? WHERE ? = 'user' OR EXISTS (SELECT 1 FROM networks "
		    "WHERE name = ?)", "ssssss", mac, vm, name, ip[0] ? ip : NULL,
		    name, name);
		if (n == 0) {
			*status = 404;
			snprintf(err, errsz, "network \"%.64s\" not found", name);
			goto cleanup;
		}
		if (n > 0) {
			rc = 0;
			break;
		}
		if (errno != EEXIST) {
			*status = 500;
			snprintf(err, errsz, "cannot record the vNIC");
			goto cleanup;
		}
		/* Taken: say which when the user chose it, else pick again. */
		if (want_mac && (row = db_row("SELECT vm FROM nics WHERE mac = ?",
		    "s", mac)) != NULL) {
			json_decref(row);
			*status = 409;
			snprintf(err, errsz, "mac %s is already in use", mac);
			goto cleanup;
		}
		if (want_ip) {
			*status = 409;
			snprintf(err, errsz, "ip %s is already in use on network "
			    "%s", ip, name);
			goto cleanup;
		}
	}
	if (rc < 0) {
		*status = 503;
		snprintf(err, errsz, "no free MAC address found");
		goto cleanup;
	}
	json_object_set_new(nic, "network", json_string(name));
	json_object_set_new(nic, "mac", json_string(mac));
	json_object_set_new(nic, "ip", ip[0] ? json_string(ip) : json_null());
	if (JS(nic, "model") == NULL)
		json_object_set_new(nic, "model", json_string("virtio"));
	/* What the agent builds the NIC from, kept in the spec (and vm.json)
	 * so a restart, an HA restart and both ends of a migration agree. */
	json_object_set_new(nic, "type", json_string(net ? JS(net, "type") :
	    "user"));
	if (user && net && JS(net, "subnet"))
		json_object_set_new(nic, "subnet", json_string(JS(net,
		    "subnet")));
	else
		json_object_del(nic, "subnet");
	if (!user)
		vnet_changed();
cleanup:
	json_decref(net);
	return rc;
}

/* Rows of VMs that no longer exist (a failed clone or restore): their
 * addresses go back to the pool. */
static void
vnet_sweep(void)
{
	if (db_exec("DELETE FROM nics WHERE vm NOT IN (SELECT uuid FROM vms)",
	    NULL) > 0)
		vnet_changed();
}

int
vnet_nics_reserve(json_t *spec, int *status, char *err, size_t errsz)
{
	json_t *nic;
	size_t i;

	vnet_sweep();
	json_array_foreach(json_object_get(spec, "nics"), i, nic)
		if (vnet_nic_reserve(JS(spec, "uuid"), nic, status, err,
		    errsz) < 0) {
			vnet_nics_release(JS(spec, "uuid"), NULL);
			return -1;
		}
	return 0;
}

int
vnet_nic_add(json_t *spec, json_t *nic, int *status, char *err, size_t errsz)
{
	return vnet_nic_reserve(JS(spec, "uuid"), nic, status, err, errsz);
}

void
vnet_nics_release(const char *vm, const char *mac)
{
	int n;

	if (mac)
		n = db_exec("DELETE FROM nics WHERE vm = ? AND mac = ?", "ss", vm,
		    mac);
	else
		n = db_exec("DELETE FROM nics WHERE vm = ?", "s", vm);
	if (n > 0)
		vnet_changed();
}

/* VMs created before the nics table: record their MACs once, so new
 * MACs never collide with them. */
void
vnet_backfill(void)
{
	json_t *rows = db_query("SELECT uuid, spec FROM vms WHERE uuid NOT IN "
	    "(SELECT vm FROM nics)", NULL), *row, *spec, *nic;
	size_t i, j;

	json_array_foreach(rows, i, row) {
		if ((spec = vm_spec(row)) == NULL)
			continue;
		json_array_foreach(json_object_get(spec, "nics"), j, nic)
			if (vnet_mac_valid(JS(nic, "mac")))
				db_exec("INSERT INTO nics (mac, vm, network, ip) "
				    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
				    "ssss", JS(nic, "mac"), JS(row, "uuid"),
				    JS(nic, "network") ? JS(nic, "network") : "user",
				    JS(nic, "ip"));
		json_decref(spec);
	}
	json_decref(rows);
}

/* ---- what agents realize ------------------------------------------------------- */

/* The IPv4 address of a registered agent URL ("http://10.0.0.2:7901"). */
static int
vnet_url_ipv4(const char *url, char *out, size_t outsz)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *p = url ? strstr(url, "://") : NULL;
	size_t n;
	int rc = -1;

	if (p == NULL)
		return -1;
	p += 3;
	n = strcspn(p, ":/");
	if (n == 0 || n >= sizeof(host) || *p == '[')
		return -1;
	memcpy(host, p, n);
	host[n] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	if (getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL) {
		struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
		if (inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)outsz))
			rc = 0;
	}
	if (res)
		freeaddrinfo(res);
	return rc;
}

/* A network as REST shows it (without the agent-only fields). */
json_t *
vnet_json(json_t *row)
{
	char mac[18];
	int64_t id = JI(row, "id");

	snprintf(mac, sizeof(mac), "02:00:c7:%02x:%02x:%02x",
	    (unsigned)((id >> 16) & 0xff), (unsigned)((id >> 8) & 0xff),
	    (unsigned)(id & 0xff));
	return json_pack("{s:O, s:I, s:O, s:O, s:O, s:b, s:I, s:O, s:O, s:O, "
	    "s:s}", "name", json_object_get(row, "name"), "id", (json_int_t)id,
	    "type", json_object_get(row, "type"),
	    "subnet", json_object_get(row, "subnet"),
	    "gateway", json_object_get(row, "gateway"),
	    "dhcp", JI(row, "dhcp") != 0, "mtu", (json_int_t)JI(row, "mtu"),
	    "vni", json_object_get(row, "vni"),
	    "vlan", json_object_get(row, "vlan"),
	    "uplink", json_object_get(row, "uplink"), "mac", mac);
}

/* {gen, local, networks} for host, or NULL when its gen is current.
 * have: the generation the agent says it applied. */
json_t *
vnet_payload(const char *host, const char *have)
{
	json_t *nets = NULL, *hosts = NULL, *leases = NULL, *out = NULL, *list;
	json_t *row, *h, *l;
	char gen[48], local[INET_ADDRSTRLEN] = "", addr[INET_ADDRSTRLEN];
	size_t i, j;

	vnet_gen(gen, sizeof(gen));
	if (have && strcmp(have, gen) == 0)
		return NULL;
	nets = db_query("SELECT * FROM networks ORDER BY id", NULL);
	hosts = db_query("SELECT name, url FROM hosts ORDER BY name", NULL);
	leases = db_query("SELECT n.mac, n.ip, n.network, v.name AS vm FROM "
	    "nics n JOIN vms v ON v.uuid = n.vm WHERE n.ip IS NOT NULL ORDER BY "
	    "n.ip", NULL);
	if (nets == NULL || hosts == NULL || leases == NULL)
		goto cleanup;
	list = json_array();
	json_array_foreach(nets, i, row) {
		json_t *n, *peers, *ls;

		/* User-mode networks live inside each QEMU: nothing to
		 * realize on a host. */
		if (strcmp(JS(row, "type"), "user") == 0)
			continue;
		n = vnet_json(row);
		peers = json_array();
		ls = json_array();
		if (strcmp(JS(row, "type"), "vxlan") == 0)
			json_array_foreach(hosts, j, h)
				if (strcmp(JS(h, "name"), host) != 0 &&
				    vnet_url_ipv4(JS(h, "url"), addr,
				    sizeof(addr)) == 0)
					json_array_append_new(peers,
					    json_string(addr));
		if (JI(row, "dhcp"))
			json_array_foreach(leases, j, l)
				if (strcmp(JS(l, "network"), JS(row, "name")) == 0)
					json_array_append_new(ls, json_pack(
					    "{s:O, s:O, s:O}", "mac",
					    json_object_get(l, "mac"), "ip",
					    json_object_get(l, "ip"), "vm",
					    json_object_get(l, "vm")));
		json_object_set_new(n, "peers", peers);
		json_object_set_new(n, "leases", ls);
		json_array_append_new(list, n);
	}
	json_array_foreach(hosts, j, h)
		if (strcmp(JS(h, "name"), host) == 0)
			vnet_url_ipv4(JS(h, "url"), local, sizeof(local));
	out = json_pack("{s:s, s:s, s:o}", "gen", gen, "local", local,
	    "networks", list);
cleanup:
	json_decref(nets);
	json_decref(hosts);
	json_decref(leases);
	return out;
}

/* ---- which hosts can run which networks ------------------------------------- */

/* The entries of an agent's net_datapath that name a datapath we know:
 * nothing else an agent sends reaches network show. New reference. */
static json_t *
vnet_dp_known(json_t *dp)
{
	json_t *out = json_object(), *v;
	const char *net, *s;

	json_object_foreach(dp, net, v) {
		s = json_string_value(v);
		if (s != NULL && (strcmp(s, "8021q") == 0 ||
		    strcmp(s, "ebpf") == 0) && util_name_valid(net))
			json_object_set(out, net, v);
	}
	return out;
}

/* Keep the host's network states (and its VLAN networks' datapaths); a
 * network that fails or recovers on a host is an event (not every report:
 * only changes). */
void
vnet_host_status(const char *host, json_t *st, json_t *dp)
{
	json_t *old, *changed = json_object(), *v;
	const char *net;

	if (!json_is_object(st)) {
		json_decref(changed);
		return;
	}
	pthread_mutex_lock(&vnet_lock);
	if (vnet_status == NULL)
		vnet_status = json_object();
	old = json_object_get(vnet_status, host);
	json_object_foreach(st, net, v) {
		json_t *was = json_object_get(old, net);
		if (json_is_string(v) && (!json_is_string(was) ||
		    strcmp(json_string_value(was), json_string_value(v)) != 0))
			json_object_set(changed, net, v);
	}
	json_object_set_new(vnet_status, host, json_deep_copy(st));
	if (vnet_dp == NULL)
		vnet_dp = json_object();
	if (json_is_object(dp))
		json_object_set_new(vnet_dp, host, vnet_dp_known(dp));
	else
		json_object_del(vnet_dp, host);
	pthread_mutex_unlock(&vnet_lock);
	json_object_foreach(changed, net, v) {
		if (strcmp(json_string_value(v), "ok") == 0)
			event_add("info", "network.ready", net, "network %s is "
			    "ready on host %s", net, host);
		else
			event_add("warning", "network.failed", net, "network %s "
			    "failed on host %s: %s", net, host,
			    json_string_value(v));
	}
	json_decref(changed);
}

void
vnet_host_forget(const char *host)
{
	pthread_mutex_lock(&vnet_lock);
	json_object_del(vnet_status, host);
	json_object_del(vnet_dp, host);
	pthread_mutex_unlock(&vnet_lock);
}

/* The status of network on host: "ok", an error, or NULL when unknown. */
static const char *
vnet_host_state(const char *host, const char *network, char *buf, size_t bufsz)
{
	const char *s;

	pthread_mutex_lock(&vnet_lock);
	s = json_string_value(json_object_get(json_object_get(vnet_status,
	    host), network));
	if (s)
		snprintf(buf, bufsz, "%s", s);
	pthread_mutex_unlock(&vnet_lock);
	return s ? buf : NULL;
}

int
vnet_host_check(const char *host, json_t *spec, char *why, size_t whysz)
{
	char st[160];
	const char *name;
	json_t *nic;
	size_t i;

	json_array_foreach(json_object_get(spec, "nics"), i, nic) {
		name = JS(nic, "network");
		/* User-mode (built in or named): present on every host. */
		if (name == NULL || strcmp(name, "user") == 0 ||
		    (JS(nic, "type") && strcmp(JS(nic, "type"), "user") == 0))
			continue;
		if (vnet_host_state(host, name, st, sizeof(st)) == NULL) {
			snprintf(why, whysz, "network %s not realized yet", name);
			return -1;
		}
		if (strcmp(st, "ok") != 0) {
			snprintf(why, whysz, "network %s: %s", name, st);
			return -1;
		}
	}
	return 0;
}

/* {host: status} of one network, for network show; a user-mode network
 * (user set) needs nothing on a host and is "ok" on every one. */
json_t *
vnet_hosts_of(const char *network, int user)
{
	json_t *out = json_object(), *v;
	const char *host;

	pthread_mutex_lock(&vnet_lock);
	json_object_foreach(vnet_status, host, v) {
		json_t *s = json_object_get(v, network);
		json_object_set_new(out, host, json_string(user ? "ok" :
		    json_is_string(s) ? json_string_value(s) : "not realized"));
	}
	pthread_mutex_unlock(&vnet_lock);
	return out;
}

/* {host: "8021q" | "ebpf"} of a VLAN network, for network show: which
 * datapath each host that realized it uses. */
json_t *
vnet_datapaths_of(const char *network)
{
	json_t *out = json_object(), *v, *d;
	const char *host;

	pthread_mutex_lock(&vnet_lock);
	json_object_foreach(vnet_dp, host, v) {
		if (json_is_string(d = json_object_get(v, network)))
			json_object_set(out, host, d);
	}
	pthread_mutex_unlock(&vnet_lock);
	return out;
}
