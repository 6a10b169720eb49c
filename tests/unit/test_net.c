/* test_net.c - unit tests for the network payload checks, names, peer
 * diffing and the DHCP configuration (src/net, the pure parts). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/proc.h"
#include "common/util.h"
#include "net/net.h"
#include "net/net_int.h"

/* Parse a payload given as JSON text; asserts the envelope is accepted. */
static void
parse_ok(const char *text, struct net_payload *p)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	char err[256];

	assert_non_null(j);
	memset(p, 0, sizeof(*p));
	assert_int_equal(net_payload_parse(j, p, err, sizeof(err)), 0);
	json_decref(j);
}

/* The error of the only network of a payload with that network. */
static void
net_err(const char *netjson, char *out, size_t outsz)
{
	char text[4096];
	struct net_payload p;

	snprintf(text, sizeof(text), "{\"gen\": \"g\", \"local\": \"10.0.0.1\", "
	    "\"networks\": [%s]}", netjson);
	parse_ok(text, &p);
	assert_int_equal(p.nnets, 1);
	snprintf(out, outsz, "%s", p.nets[0].err);
	net_payload_free(&p);
}

static void
test_names(void **state)
{
	char n[16];

	(void)state;
	assert_int_equal(net_ifname('b', 3, n, sizeof(n)), 0);
	assert_string_equal(n, "cvnb3");
	assert_int_equal(net_ifname('x', NET_MAX_ID, n, sizeof(n)), 0);
	assert_string_equal(n, "cvnx9999999");
	assert_true(strlen(n) <= 15);
	assert_int_equal(net_ifname('b', 0, n, sizeof(n)), -1);
	assert_int_equal(net_ifname('b', NET_MAX_ID + 1L, n, sizeof(n)), -1);
	assert_int_equal(net_ifname('z', 1, n, sizeof(n)), -1);
	/* The trunk end of an eBPF VLAN network's veth pair. */
	assert_int_equal(net_ifname('q', 1, n, sizeof(n)), 0);
	assert_string_equal(n, "cvnq1");
	assert_int_equal(net_tap_name("52:54:00:AB:cd:EF", n, sizeof(n)), 0);
	assert_string_equal(n, "cvntabcdef");
	assert_int_equal(net_tap_name("52:54:00:ab:cd", n, sizeof(n)), -1);
	assert_int_equal(net_tap_name("52-54-00-ab-cd-ef", n, sizeof(n)), -1);
	assert_int_equal(net_tap_name(NULL, n, sizeof(n)), -1);
	assert_int_equal(net_tap_name("52:54:00:ab:cd:ef", n, 8), -1);
}

static void
test_validators(void **state)
{
	uint32_t a;
	int p;

	(void)state;
	assert_true(net_mac_valid("02:00:c7:00:00:03"));
	assert_false(net_mac_valid("01:00:5e:00:00:01"));	/* multicast */
	assert_false(net_mac_valid("02:00:c7:00:00:0g"));
	assert_false(net_mac_valid("02:00:c7:00:00:03 "));
	assert_true(net_ifname_valid("eth0"));
	assert_true(net_ifname_valid("br-lan.100"));
	assert_false(net_ifname_valid(""));
	assert_false(net_ifname_valid("a234567890123456"));	/* 16 chars */
	assert_false(net_ifname_valid("eth0 up"));
	assert_false(net_ifname_valid("eth0;reboot"));
	assert_false(net_ifname_valid("../x"));
	assert_false(net_ifname_valid("-x"));
	assert_int_equal(net_cidr_parse("10.50.0.0/24", &a, &p), 0);
	assert_int_equal(a, 0x0a320000u);
	assert_int_equal(p, 24);
	assert_int_equal(net_cidr_parse("10.50.0.1/24", &a, &p), -1);
	assert_int_equal(net_cidr_parse("10.50.0.0/31", &a, &p), -1);
	assert_int_equal(net_cidr_parse("10.50.0.0/7", &a, &p), -1);
	assert_int_equal(net_cidr_parse("10.50.0.0", &a, &p), -1);
	assert_int_equal(net_cidr_parse("10.50.0.0/24x", &a, &p), -1);
	assert_int_equal(net_cidr_parse("10.50.0.256/24", &a, &p), -1);
	assert_int_equal(net_cidr_parse("10.50.0.0/+24", &a, &p), -1);
	assert_true(net_path_safe("/var/lib/cvirt/run/net"));
	assert_false(net_path_safe("run/net"));
	assert_false(net_path_safe("/srv/my vms/run/net"));
	assert_false(net_path_safe("/srv/a\"b"));
	assert_false(net_path_safe("/srv/a\nb"));
	assert_int_equal(net_ipv4_parse("1.2.3.4", &a), 0);
	assert_int_equal(net_ipv4_parse("1.2.3", &a), -1);
	assert_int_equal(net_ipv4_parse("1.2.3.4.5", &a), -1);
}

static void
test_payload_good(void **state)
{
	struct net_payload p;
	const struct net_def *n;

	(void)state;
	parse_ok("{\"gen\": \"7-abc\", \"local\": \"10.231.0.2\", \"networks\": ["
	    "{\"name\": \"blue\", \"id\": 3, \"type\": \"vxlan\", \"subnet\": "
	    "\"10.50.0.0/24\", \"gateway\": \"10.50.0.1\", \"dhcp\": true, "
	    "\"mtu\": 1450, \"vni\": 10001, \"vlan\": null, \"uplink\": null, "
	    "\"mac\": \"02:00:c7:00:00:03\", \"peers\": [\"10.231.0.4\", "
	    "\"10.231.0.3\", \"10.231.0.4\"], \"leases\": [{\"mac\": "
	    "\"52:54:00:aa:bb:cc\", \"ip\": \"10.50.0.12\", \"vm\": \"web1\"}]},"
	    "{\"name\": \"out\", \"id\": 4, \"type\": \"nat\", \"subnet\": "
	    "\"192.168.7.0/24\", \"gateway\": \"192.168.7.1\", \"mac\": "
	    "\"02:00:c7:00:00:04\"},"
	    "{\"name\": \"lan\", \"id\": 5, \"type\": \"bridge\", \"uplink\": "
	    "\"br0\"}]}", &p);
	assert_string_equal(p.gen, "7-abc");
	assert_string_equal(p.local, "10.231.0.2");
	assert_int_equal(p.nnets, 3);
	n = net_payload_find(&p, "blue");
	assert_non_null(n);
	assert_string_equal(n->err, "");
	assert_int_equal(n->type, NET_VXLAN);
	assert_int_equal(n->vni, 10001);
	assert_int_equal(n->mtu, 1450);
	assert_true(n->dhcp);
	/* Sorted and without the duplicate. */
	assert_int_equal(n->npeers, 2);
	assert_string_equal(n->peers[0], "10.231.0.3");
	assert_string_equal(n->peers[1], "10.231.0.4");
	assert_int_equal(n->nleases, 1);
	assert_string_equal(n->leases[0].vm, "web1");
	n = net_payload_find(&p, "out");
	assert_string_equal(n->err, "");
	assert_true(n->dhcp);		/* nat: DHCP by default */
	assert_int_equal(n->mtu, 1500);
	n = net_payload_find(&p, "lan");
	assert_string_equal(n->err, "");
	assert_false(n->dhcp);
	assert_null(net_payload_find(&p, "nope"));
	net_payload_free(&p);
	net_payload_free(&p);	/* twice: a zeroed struct is fine */
	net_payload_free(NULL);
}

static void
test_payload_envelope(void **state)
{
	static const char *bad[] = {
		"[]",
		"{\"networks\": []}",
		"{\"gen\": \"\", \"networks\": []}",
		"{\"gen\": 5, \"networks\": []}",
		"{\"gen\": \"a b\", \"networks\": []}",
		"{\"gen\": \"g\", \"networks\": {}}",
		"{\"gen\": \"g\"}",
		"{\"gen\": \"g\", \"local\": \"10.0.0\", \"networks\": []}",
		"{\"gen\": \"g\", \"local\": 7, \"networks\": []}",
		("{\"gen\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxx\", \"networks\": []}"),
	};
	struct net_payload p;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);

		assert_non_null(j);
		memset(&p, 0, sizeof(p));
		err[0] = '\0';
		assert_int_equal(net_payload_parse(j, &p, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
		assert_null(strchr(err, '\n'));
		assert_null(p.nets);
		json_decref(j);
	}
	/* "" local: the manager knows no IPv4 address of this host. */
	parse_ok("{\"gen\": \"g\", \"local\": \"\", \"networks\": []}", &p);
	assert_string_equal(p.local, "");
	net_payload_free(&p);
}

static void
test_payload_bad_networks(void **state)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{ "{\"id\": 1, \"type\": \"nat\"}", "invalid network name" },
		{ "{\"name\": \"a/b\", \"id\": 1}", "invalid network name" },
		{ "{\"name\": \"n\", \"id\": 0, \"type\": \"vxlan\"}", "id:" },
		{ "{\"name\": \"n\", \"id\": \"1\", \"type\": \"vxlan\"}", "id:" },
		{ "{\"name\": \"n\", \"id\": 10000000, \"type\": \"vxlan\"}",
		    "id:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"user\"}", "type:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vxlan\"}",
		    "needs a vni" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vxlan\", \"vni\": "
		    "16777216}", "vni:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vlan\", \"vlan\": 4095, "
		    "\"uplink\": \"eth0\"}", "vlan:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vlan\", \"vlan\": 5}",
		    "needs a vlan id and an uplink" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vlan\", \"vlan\": 5, "
		    "\"uplink\": \"eth0 down\"}", "uplink:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"bridge\", \"uplink\": "
		    "\"cvnb2\"}", "uplink:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"bridge\"}",
		    "needs an uplink" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"bridge\", \"uplink\": "
		    "\"br0\", \"dhcp\": true}", "DHCP needs a subnet" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.0.1\"}", "needs a subnet "
		    "and a mac" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.1.1\", \"mac\": "
		    "\"02:00:00:00:00:01\"}", "gateway:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.0.255\", \"mac\": "
		    "\"02:00:00:00:00:01\"}", "gateway:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.0.1\", \"mac\": "
		    "\"02:00:00:00:00:01\", \"mtu\": 100}", "mtu:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.0.1\", \"mac\": "
		    "\"02:00:00:00:00:01\", \"dhcp\": \"yes\"}", "dhcp:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vxlan\", \"vni\": 5, "
		    "\"peers\": [\"10.0.0.1\", \"10.0.0.2;x\"]}", "peers[1]" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vxlan\", \"vni\": 5, "
		    "\"peers\": [\"224.0.0.1\"]}", "peers[0]" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"vxlan\", \"vni\": 5, "
		    "\"peers\": \"10.0.0.1\"}", "peers:" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.0.1\", \"mac\": "
		    "\"02:00:00:00:00:01\", \"leases\": [{\"mac\": \"52:54:00:00:00:"
		    "01\", \"ip\": \"10.0.1.5\"}]}", "leases[0]: address" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.0.1\", \"mac\": "
		    "\"02:00:00:00:00:01\", \"leases\": [{\"mac\": \"52:54:00:00:00\","
		    " \"ip\": \"10.0.0.5\"}]}", "leases[0]" },
		{ "{\"name\": \"n\", \"id\": 1, \"type\": \"nat\", \"subnet\": "
		    "\"10.0.0.0/24\", \"gateway\": \"10.0.0.1\", \"mac\": "
		    "\"02:00:00:00:00:01\", \"leases\": [{\"mac\": \"52:54:00:00:00:"
		    "01\", \"ip\": \"10.0.0.5\", \"vm\": \"a\\nb\"}]}",
		    "invalid VM name" },
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		net_err(cases[i].json, err, sizeof(err));
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err,
			    cases[i].want);
	}
}

static void
test_payload_unique(void **state)
{
	struct net_payload p;

	(void)state;
	parse_ok("{\"gen\": \"g\", \"networks\": ["
	    "{\"name\": \"a\", \"id\": 1, \"type\": \"vxlan\", \"vni\": 7},"
	    "{\"name\": \"b\", \"id\": 2, \"type\": \"vxlan\", \"vni\": 7},"
	    "{\"name\": \"c\", \"id\": 1, \"type\": \"vxlan\", \"vni\": 8},"
	    "{\"name\": \"a\", \"id\": 3, \"type\": \"vxlan\", \"vni\": 9},"
	    "{\"name\": \"d\", \"id\": 4, \"type\": \"vlan\", \"vlan\": 5, "
	    "\"uplink\": \"eth0\"},"
	    "{\"name\": \"e\", \"id\": 5, \"type\": \"vlan\", \"vlan\": 5, "
	    "\"uplink\": \"eth0\"},"
	    "{\"name\": \"f\", \"id\": 6, \"type\": \"vlan\", \"vlan\": 5, "
	    "\"uplink\": \"eth1\"}]}", &p);
	assert_int_equal(p.nnets, 7);
	assert_string_equal(p.nets[0].err, "");
	assert_non_null(strstr(p.nets[1].err, "vni 7"));
	assert_non_null(strstr(p.nets[2].err, "id 1"));
	/* The second "a" has no status of its own and keeps no objects. */
	assert_string_equal(p.nets[3].name, "");
	assert_int_equal(p.nets[3].id, 0);
	assert_string_equal(net_payload_find(&p, "a")->err, "");
	assert_string_equal(p.nets[4].err, "");
	assert_non_null(strstr(p.nets[5].err, "vlan 5 on eth0"));
	assert_string_equal(p.nets[6].err, "");
	net_payload_free(&p);
}

static void
test_peers_diff(void **state)
{
	char have[4][16] = { "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9" };
	char want[3][16] = { "10.0.0.2", "10.0.0.4", "10.0.0.9" };
	const char **add, **del;
	size_t nadd, ndel;

	(void)state;
	assert_int_equal(net_peers_diff(have, 4, want, 3, &add, &nadd, &del,
	    &ndel), 0);
	assert_int_equal(nadd, 1);
	assert_string_equal(add[0], "10.0.0.4");
	assert_int_equal(ndel, 2);
	assert_string_equal(del[0], "10.0.0.1");
	assert_string_equal(del[1], "10.0.0.3");
	free(add);
	free(del);
	/* Equal sets: nothing to do; empty sets work. */
	assert_int_equal(net_peers_diff(want, 3, want, 3, &add, &nadd, &del,
	    &ndel), 0);
	assert_int_equal(nadd + ndel, 0);
	free(add);
	free(del);
	assert_int_equal(net_peers_diff(NULL, 0, want, 3, &add, &nadd, &del,
	    &ndel), 0);
	assert_int_equal(nadd, 3);
	assert_int_equal(ndel, 0);
	free(add);
	free(del);
	assert_int_equal(net_peers_diff(have, 4, NULL, 0, &add, &nadd, &del,
	    &ndel), 0);
	assert_int_equal(nadd, 0);
	assert_int_equal(ndel, 4);
	free(add);
	free(del);
}

static void
test_dhcp_conf(void **state)
{
	struct net_payload p;
	char *c;

	(void)state;
	parse_ok("{\"gen\": \"g\", \"networks\": ["
	    "{\"name\": \"out\", \"id\": 4, \"type\": \"nat\", \"subnet\": "
	    "\"192.168.6.0/23\", \"gateway\": \"192.168.7.1\", \"mac\": "
	    "\"02:00:c7:00:00:04\", \"leases\": [{\"mac\": \"52:54:00:aa:bb:cc\","
	    " \"ip\": \"192.168.6.20\", \"vm\": \"web1\"}]},"
	    "{\"name\": \"blue\", \"id\": 3, \"type\": \"vxlan\", \"vni\": 9, "
	    "\"subnet\": \"10.50.0.0/24\", \"gateway\": \"10.50.0.1\", \"mac\": "
	    "\"02:00:c7:00:00:03\"}]}", &p);
	assert_string_equal(p.nets[0].err, "");
	assert_string_equal(p.nets[1].err, "");
	c = dhcp_conf_text(&p.nets[0], "cvnb4", "/r/dhcp4.pid",
	    "/r/dhcp4.leases");
	assert_non_null(c);
	assert_non_null(strstr(c, "\ninterface=cvnb4\n"));
	assert_non_null(strstr(c, "\nbind-interfaces\n"));
	assert_non_null(strstr(c, "\nport=0\n"));
	assert_non_null(strstr(c,
	    "\ndhcp-range=192.168.6.0,static,255.255.254.0,1h\n"));
	assert_non_null(strstr(c, "\ndhcp-option=option:router,192.168.7.1\n"));
	assert_non_null(strstr(c, "\ndhcp-option=option:mtu,1500\n"));
	assert_non_null(strstr(c, "\ndhcp-host=52:54:00:aa:bb:cc,192.168.6.20\n"));
	assert_non_null(strstr(c, "\npid-file=/r/dhcp4.pid\n"));
	free(c);
	c = dhcp_conf_text(&p.nets[1], "cvne3", "/r/p", "/r/l");
	assert_non_null(c);
	/* vxlan: no router at all, the overlay's MTU, a late interface. */
	assert_non_null(strstr(c, "\ndhcp-option=option:router\n"));
	assert_non_null(strstr(c, "\ndhcp-option=option:mtu,1450\n"));
	assert_non_null(strstr(c, "\nbind-dynamic\n"));
	assert_null(strstr(c, "dhcp-host="));
	free(c);
	net_payload_free(&p);
}

/* The run directory holds what root runs (dnsmasq configurations, nft
 * batches): one others can write into, or a symlink, is refused. */
static void
test_run_dir_private(void **state)
{
	struct net_config cfg;
	char tmpl[] = "/tmp/cvnet-rundir.XXXXXX", link[64];

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.host, sizeof(cfg.host), "h1");
	snprintf(cfg.data, sizeof(cfg.data), "%s", tmpl);
	snprintf(cfg.run, sizeof(cfg.run), "%s", tmpl);
	snprintf(cfg.owner, sizeof(cfg.owner), "cvirt:unit");
	assert_int_equal(chmod(tmpl, 0777), 0);
	assert_int_equal(net_init(&cfg), -1);
	assert_int_equal(chmod(tmpl, 0700), 0);
	snprintf(link, sizeof(link), "%s.link", tmpl);
	assert_int_equal(symlink(tmpl, link), 0);
	snprintf(cfg.run, sizeof(cfg.run), "%s", link);
	assert_int_equal(net_init(&cfg), -1);
	unlink(link);
	rmdir(tmpl);
}

/* ---- net_tap_attach / net_tap_detach against the kernel, as root in a
 * network namespace of this process (skipped otherwise) ---- */

static int syncs;

/* The "manager": a sync request is answered with the payload. */
static void
answer_sync(void)
{
	json_t *j = json_loads("{\"gen\": \"g1\", \"local\": \"10.9.0.1\", "
	    "\"networks\": [{\"name\": \"blue\", \"id\": 3, \"type\": "
	    "\"vxlan\", \"vni\": 4003, \"mtu\": 1450, \"peers\": "
	    "[\"10.9.0.2\"]}]}", 0, NULL);

	syncs++;
	net_submit(j);
	json_decref(j);
}

/* `ip -d -j link show dev` as JSON (new reference) or NULL when absent. */
static json_t *
link_of(const char *dev)
{
	char *argv[] = { "ip", "-d", "-j", "link", "show", "dev", (char *)dev,
	    NULL };
	char out[16384];
	json_t *j;

	if (proc_run(argv, out, sizeof(out), 10000) != 0)
		return NULL;
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	return j;
}

static void
test_tap_attach(void **state)
{
	struct net_config cfg;
	char tmpl[] = "/tmp/cvnet-unit.XXXXXX", ifname[16], err[256];
	char gen[NET_GEN_MAX + 1];
	json_t *arr, *l, *st;
	int64_t t0;

	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		skip();
		return;
	}
	assert_non_null(mkdtemp(tmpl));
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.host, sizeof(cfg.host), "h1");
	snprintf(cfg.data, sizeof(cfg.data), "%s", tmpl);
	snprintf(cfg.run, sizeof(cfg.run), "%s/net", tmpl);
	snprintf(cfg.owner, sizeof(cfg.owner), "cvirt:unit");
	cfg.sync = answer_sync;
	assert_int_equal(net_init(&cfg), 0);
	net_gen(gen, sizeof(gen));
	assert_string_equal(gen, "");

	/* Not realized yet: attach asks for a sync and waits for it. */
	assert_int_equal(net_tap_attach("blue", "52:54:00:AB:CD:EF", ifname,
	    sizeof(ifname), err, sizeof(err)), 0);
	assert_string_equal(ifname, "cvntabcdef");
	assert_int_equal(syncs >= 1, 1);
	arr = link_of("cvntabcdef");
	assert_non_null(arr);
	l = json_array_get(arr, 0);
	assert_non_null(l);
	assert_string_equal(json_string_value(json_object_get(l, "master")),
	    "cvnb3");
	assert_int_equal(json_integer_value(json_object_get(l, "mtu")), 1450);
	assert_string_equal(json_string_value(json_object_get(l, "ifalias")),
	    "cvirt:unit");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    json_object_get(l, "linkinfo"), "info_data"), "type")), "tap");
	json_decref(arr);
	net_gen(gen, sizeof(gen));
	assert_string_equal(gen, "g1");
	st = net_status();
	assert_string_equal(json_string_value(json_object_get(st, "blue")),
	    "ok");
	json_decref(st);

	/* The bridge deleted behind the agent's back: attach has it made
	 * again (an immediate re-apply) and the TAP joins it. */
	{
		char *argv[] = { "ip", "link", "del", "dev", "cvnb3", NULL };
		char out[512];

		assert_int_equal(proc_run(argv, out, sizeof(out), 10000), 0);
	}
	assert_int_equal(net_tap_attach("blue", "52:54:00:ab:cd:ef", ifname,
	    sizeof(ifname), err, sizeof(err)), 0);
	arr = link_of("cvntabcdef");
	assert_non_null(arr);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    arr, 0), "master")), "cvnb3");
	json_decref(arr);

	/* Again: the same TAP is reused. */
	assert_int_equal(net_tap_attach("blue", "52:54:00:ab:cd:ef", ifname,
	    sizeof(ifname), err, sizeof(err)), 0);
	/* Bad arguments and the user network. */
	assert_int_equal(net_tap_attach("user", "52:54:00:ab:cd:ef", ifname,
	    sizeof(ifname), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "user network"));
	assert_int_equal(net_tap_attach("blue", "52:54:00:ab:cd", ifname,
	    sizeof(ifname), err, sizeof(err)), -1);
	assert_int_equal(net_tap_attach("blue", "52:54:00:ab:cd:ef", ifname,
	    8, err, sizeof(err)), -1);
	/* A network the manager does not know: a clear error after ~5 s. */
	t0 = util_mono_ms();
	assert_int_equal(net_tap_attach("nope", "52:54:00:00:00:01", ifname,
	    sizeof(ifname), err, sizeof(err)), -1);
	assert_string_equal(err, "network nope is not known on host h1");
	assert_true(util_mono_ms() - t0 >= 4500);
	assert_null(link_of("cvnt000001"));

	assert_int_equal(net_tap_detach("52:54:00:ab:cd:ef"), 0);
	assert_null(link_of("cvntabcdef"));
	assert_int_equal(net_tap_detach("52:54:00:ab:cd:ef"), 0);
	assert_int_equal(net_tap_detach("garbage"), 0);
	net_stop();
	net_stop();
	util_rm_rf(tmpl);
}

/* A payload with one vxlan network, red (id 2, DHCP), and nleases
 * reservations, submitted as generation gen; waits until it is applied. */
static void
apply_red(const char *gen, int nleases, int with_red)
{
	char text[4096], leases[1024] = "", g[NET_GEN_MAX + 1];
	size_t len = 0;
	json_t *j, *st;
	int i;

	for (i = 0; i < nleases; i++)
		len += (size_t)snprintf(leases + len, sizeof(leases) - len,
		    "%s{\"mac\": \"52:54:00:00:00:%02d\", \"ip\": "
		    "\"10.50.0.%d\", \"vm\": \"vm%d\"}", i ? ", " : "", i + 1,
		    i + 11, i + 1);
	snprintf(text, sizeof(text), "{\"gen\": \"%s\", \"local\": "
	    "\"10.9.0.1\", \"networks\": [%s%s%s]}", gen, with_red ?
	    "{\"name\": \"red\", \"id\": 2, \"type\": \"vxlan\", "
	    "\"vni\": 4002, \"subnet\": \"10.50.0.0/24\", \"gateway\": "
	    "\"10.50.0.1\", \"dhcp\": true, \"mtu\": 1450, \"mac\": "
	    "\"02:00:c7:00:00:02\", \"peers\": [], \"leases\": [" : "",
	    with_red ? leases : "", with_red ? "]}" : "");
	assert_non_null(j = json_loads(text, 0, NULL));
	net_submit(j);
	json_decref(j);
	for (i = 0; i < 300; i++) {
		net_gen(g, sizeof(g));
		if (strcmp(g, gen) == 0)
			break;
		util_sleep_ms(100);
	}
	assert_string_equal(g, gen);
	if (with_red) {
		st = net_status();
		assert_string_equal(json_string_value(json_object_get(st,
		    "red")), "ok");
		json_decref(st);
	}
}

/* ifindex of dev in our namespace (master must be cvnb2), -1 if absent. */
static long
veth_index(const char *dev)
{
	json_t *arr = link_of(dev), *l;
	long idx;

	if (arr == NULL)
		return -1;
	l = json_array_get(arr, 0);
	assert_string_equal(json_string_value(json_object_get(l, "master")),
	    "cvnb2");
	idx = (long)json_integer_value(json_object_get(l, "ifindex"));
	json_decref(arr);
	return idx;
}

/* The pid in RUN/dhcp2.pid when that process is alive, else 0. */
static pid_t
dnsmasq_pid(const char *run)
{
	char path[256], *s;
	long v;

	snprintf(path, sizeof(path), "%s/dhcp2.pid", run);
	if ((s = util_read_file(path, 64, NULL)) == NULL)
		return 0;
	v = strtol(s, NULL, 10);
	free(s);
	return v > 1 && util_pid_alive((pid_t)v) ? (pid_t)v : 0;
}

/* Network namespaces this process holds open (leaked fds). */
static int
netns_fds(void)
{
	char path[300], target[64];
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	ssize_t k;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		k = readlink(path, target, sizeof(target) - 1);
		target[k < 0 ? 0 : k] = '\0';
		if (strncmp(target, "net:[", 5) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* A new reservation restarts the network's anycast DHCP server, and only
 * it: its veth cvnd2 (a port of red's bridge) stays the very same link,
 * never deleted and made anew; the new server has the new reservation and
 * the gateway address once. Guards dhcp_apply and dhcp_ns_hold
 * (src/net/dhcp.c): killing dnsmasq used to take its namespace, and with
 * it cvnd2, away (seen as a VM deletion removing cvnd2 in
 * test_network.py). Needs root, dnsmasq and nsenter (skipped otherwise). */
static char dhcp_tmpl[64];

/* Whatever the test left: its dnsmasq, the worker, the directory. */
static int
dhcp_teardown(void **state)
{
	char run[128];
	pid_t pid;

	(void)state;
	if (dhcp_tmpl[0] == '\0')
		return 0;
	snprintf(run, sizeof(run), "%s/net", dhcp_tmpl);
	if ((pid = dnsmasq_pid(run)) > 0)
		kill(pid, SIGKILL);
	net_stop();
	util_rm_rf(dhcp_tmpl);
	dhcp_tmpl[0] = '\0';
	return 0;
}

static void
test_dhcp_restart_keeps_veth(void **state)
{
	char *addr[] = { "nsenter", "-t", NULL, "-n", "ip", "-4", "-o", "addr",
	    "show", "dev", "cvne2", NULL };
	char conf[4200], num[16], out[4096];
	struct net_config cfg;
	pid_t pid1, pid2;
	long idx;
	char *c;

	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0 ||
	    access("/usr/sbin/dnsmasq", X_OK) != 0) {
		skip();
		return;
	}
	snprintf(dhcp_tmpl, sizeof(dhcp_tmpl), "/tmp/cvnet-dhcp.XXXXXX");
	assert_non_null(mkdtemp(dhcp_tmpl));
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.host, sizeof(cfg.host), "h1");
	snprintf(cfg.data, sizeof(cfg.data), "%s", dhcp_tmpl);
	snprintf(cfg.run, sizeof(cfg.run), "%s/net", dhcp_tmpl);
	snprintf(cfg.owner, sizeof(cfg.owner), "cvirt:unit");
	assert_int_equal(net_init(&cfg), 0);

	apply_red("dh1", 1, 1);
	pid1 = dnsmasq_pid(cfg.run);
	assert_true(pid1 > 0);
	idx = veth_index("cvnd2");
	assert_true(idx > 0);

	apply_red("dh2", 2, 1);
	pid2 = dnsmasq_pid(cfg.run);
	assert_true(pid2 > 0 && pid2 != pid1);
	assert_false(util_pid_alive(pid1));
	snprintf(conf, sizeof(conf), "%s/dhcp2.conf", cfg.run);
	assert_non_null(c = util_read_file(conf, 1 << 20, NULL));
	assert_non_null(strstr(c, "\ndhcp-host=52:54:00:00:00:02,10.50.0.12\n"));
	free(c);
	if (veth_index("cvnd2") != idx)
		fail_msg("cvnd2 was made anew (ifindex %ld, now %ld)", idx,
		    veth_index("cvnd2"));
	snprintf(num, sizeof(num), "%d", (int)pid2);
	addr[2] = num;
	assert_int_equal(proc_run(addr, out, sizeof(out), 10000), 0);
	assert_non_null(strstr(out, " inet 10.50.0.1/24 "));
	assert_null(strstr(strstr(out, " inet ") + 1, " inet "));
	assert_int_equal(netns_fds(), 0);

	/* Without red: its server, namespace and veth go. */
	apply_red("dh3", 0, 0);
	assert_false(util_pid_alive(pid2));
	assert_int_equal(veth_index("cvnd2"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_validators),
		cmocka_unit_test(test_payload_good),
		cmocka_unit_test(test_payload_envelope),
		cmocka_unit_test(test_payload_bad_networks),
		cmocka_unit_test(test_payload_unique),
		cmocka_unit_test(test_peers_diff),
		cmocka_unit_test(test_dhcp_conf),
		cmocka_unit_test(test_run_dir_private),
		cmocka_unit_test(test_tap_attach),
		cmocka_unit_test_teardown(test_dhcp_restart_keeps_veth,
		    dhcp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
