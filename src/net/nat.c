/* nat.c - nat networks: gateway address, forwarding, nftables masquerade. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc.h"
#include "net/net_int.h"

/* The bridge carries exactly one IPv4 address: gateway/prefix. */
static int
nat_address(const struct net_def *n, const char *br, char *err,
    size_t errsz)
{
	char *argv[] = { "ip", "-j", "-4", "addr", "show", "dev", (char *)br,
	    NULL };
	char out[16384], want[24];
	json_t *j = NULL, *a, *ai;
	json_error_t je;
	size_t i, k;
	int have = 0, rc = -1;

	snprintf(want, sizeof(want), "%s/%d", n->gateway, n->prefix);
	if (proc_run(argv, out, sizeof(out), 15000) != 0 ||
	    (j = json_loads(out, 0, &je)) == NULL) {
		proc_last_line(out, err, errsz);
		goto cleanup;
	}
	json_array_foreach(j, i, a) {
		json_array_foreach(json_object_get(a, "addr_info"), k, ai) {
			const char *ip = json_string_value(json_object_get(ai,
			    "local"));
			char cur[24];

			if (ip == NULL)
				continue;
			snprintf(cur, sizeof(cur), "%s/%d", ip, (int)
			    json_integer_value(json_object_get(ai,
			    "prefixlen")));
			if (strcmp(cur, want) == 0)
				have = 1;
			else if (netk_run(err, errsz, "ip addr del %s dev %s",
			    cur, br) < 0)
				goto cleanup;
		}
	}
	if (!have && netk_run(err, errsz, "ip addr add %s dev %s", want,
	    br) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	json_decref(j);
	return rc;
}

static int
nat_forwarding(char *err, size_t errsz)
{
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	int rc = -1;

	if (fd < 0 || write(fd, "1\n", 2) != 2)
		snprintf(err, errsz, "cannot enable IPv4 forwarding: %s",
		    strerror(errno));
	else
		rc = 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* One transaction: create the table if absent, drop it, write it anew. */
static int
nat_table(struct net_ctx *c, const struct net_def *n, const char *br,
    char *err, size_t errsz)
{
	char text[2048], table[32];

	snprintf(table, sizeof(table), "cvirt_nat%ld", n->id);
	if (netk_nft_owned("ip", table, c->cfg->owner) == 0)
		return net_errf(err, errsz, "nftables table ip %s on host %s "
		    "belongs to another cvirt agent", table, c->cfg->host);
	if (util_fmt(text, sizeof(text),
	    "table ip cvirt_nat%ld\n"
	    "delete table ip cvirt_nat%ld\n"
	    "table ip cvirt_nat%ld {\n"
	    "\tcomment \"%s\"\n"
	    "\tchain postrouting {\n"
	    "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
	    "\t\tip saddr %s ip daddr != %s masquerade\n"
	    "\t}\n"
	    "\tchain forward {\n"
	    "\t\ttype filter hook forward priority filter; policy accept;\n"
	    "\t\tiifname \"%s\" accept\n"
	    "\t\toifname \"%s\" ct state established,related accept\n"
	    "\t}\n"
	    "}\n", n->id, n->id, n->id, c->cfg->owner, n->subnet, n->subnet,
	    br, br) < 0)
		return net_errf(err, errsz, "nft rules too long");
	return netk_batch("nft", c->cfg->run, text, err, errsz);
}

int
nat_apply(struct net_ctx *c, const struct net_def *n, char *err,
    size_t errsz)
{
	char br[16];

	if (net_ifname('b', n->id, br, sizeof(br)) < 0)
		return net_errf(err, errsz, "bad network id");
	if (nat_address(n, br, err, errsz) < 0 ||
	    nat_forwarding(err, errsz) < 0 ||
	    nat_table(c, n, br, err, errsz) < 0)
		return -1;
	return 0;
}

void
nat_reconcile(struct net_ctx *c)
{
	char err[256];
	json_t *tables, *t;
	size_t i, k;

	if ((tables = netk_nft_tables("ip", "cvirt_nat", err,
	    sizeof(err))) == NULL) {
		/* No nft at all: there is no table of ours either. */
		if (strstr(err, "cannot run") == NULL)
			log_warnx("net: cannot list nftables tables: %s", err);
		return;
	}
	json_array_foreach(tables, i, t) {
		const char *name = json_string_value(t);
		uint64_t id;
		int wanted = 0;

		if (util_parse_u64(name + strlen("cvirt_nat"), 1, NET_MAX_ID,
		    &id) < 0)
			continue;
		for (k = 0; k < c->p->nnets; k++) {
			const struct net_def *n = &c->p->nets[k];
			if (n->id == (long)id && (n->err[0] || n->type ==
			    NET_NAT))
				wanted = 1;
		}
		if (wanted || netk_nft_owned("ip", name, c->cfg->owner) != 1)
			continue;
		log_info("net: deleting nftables table ip %s", name);
		if (netk_run(err, sizeof(err), "nft delete table ip %s",
		    name) < 0)
			log_warnx("net: cannot delete table %s: %s", name, err);
	}
	json_decref(tables);
}
