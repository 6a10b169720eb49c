/* fuzz_netpayload.c - libFuzzer target: the network payload an agent gets
 * from the manager (net_payload_parse), then what the agent derives from
 * an accepted network: interface names, the TAP names of its leases and
 * its dnsmasq configuration, none of which may carry anything unchecked
 * (a newline or a space would inject a directive or an argument). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "net/net.h"
#include "net/net_int.h"

static void
fuzz_word(const char *s)
{
	if (strpbrk(s, " \t\r\n\"'\\;") != NULL)
		abort();
}

static void
fuzz_net(const struct net_def *n)
{
	char name[16], *conf;
	size_t i, lines = 0;
	uint32_t a;

	if (n->err[0] || n->name[0] == '\0')
		return;
	if (n->id < 1 || n->id > NET_MAX_ID || net_ifname('b', n->id, name,
	    sizeof(name)) < 0 || net_ifname('x', n->id, name,
	    sizeof(name)) < 0 || strlen(name) > 15)
		abort();
	if (n->uplink[0] && (!net_ifname_valid(n->uplink) ||
	    strncmp(n->uplink, "cvn", 3) == 0))
		abort();
	if (n->mac[0] && !net_mac_valid(n->mac))
		abort();
	fuzz_word(n->name);
	fuzz_word(n->uplink);
	fuzz_word(n->gateway);
	fuzz_word(n->subnet);
	for (i = 0; i < n->npeers; i++) {
		fuzz_word(n->peers[i]);
		if (net_ipv4_parse(n->peers[i], &a) < 0)
			abort();
	}
	for (i = 0; i < n->nleases; i++) {
		fuzz_word(n->leases[i].mac);
		fuzz_word(n->leases[i].ip);
		if (net_tap_name(n->leases[i].mac, name, sizeof(name)) < 0)
			abort();
	}
	if (!n->dhcp)
		return;
	if ((conf = dhcp_conf_text(n, "cvnb1", "/r/p", "/r/l")) == NULL)
		abort();
	for (i = 0; conf[i]; i++)
		lines += conf[i] == '\n';
	/* 11 fixed lines plus one per reservation: nothing else. */
	if (lines != 11 + n->nleases)
		abort();
	free(conf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_payload p;
	char err[256];
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	size_t i;

	if (j == NULL)
		return 0;
	memset(&p, 0, sizeof(p));
	if (net_payload_parse(j, &p, err, sizeof(err)) == 0) {
		/* The generation only goes into logs and JSON. */
		for (i = 0; p.gen[i]; i++)
			if ((unsigned char)p.gen[i] <= ' ' ||
			    (unsigned char)p.gen[i] >= 127)
				abort();
		for (i = 0; i < p.nnets; i++)
			fuzz_net(&p.nets[i]);
		net_payload_free(&p);
	} else if (err[0] == '\0' || strchr(err, '\n') != NULL) {
		abort();
	}
	json_decref(j);
	return 0;
}
