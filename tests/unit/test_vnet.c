/* test_vnet.c - unit tests for the manager's network arithmetic: CIDR
 * parsing, overlap, usable host addresses, MAC and interface names, the
 * VLAN datapaths agents report. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "manager/manager_int.h"

static void
test_cidr_parse(void **state)
{
	struct vnet_cidr c;
	char err[160], ip[16];

	(void)state;
	assert_int_equal(vnet_cidr_parse("10.1.0.0/24", &c, err, sizeof(err)), 0);
	assert_int_equal(c.prefix, 24);
	vnet_ip_fmt(c.net, ip, sizeof(ip));
	assert_string_equal(ip, "10.1.0.0");
	assert_int_equal(vnet_cidr_parse("192.168.128.0/17", &c, err,
	    sizeof(err)), 0);
	assert_int_equal(vnet_cidr_parse("10.1.0.5/24", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "did you mean 10.1.0.0/24"));
	assert_int_equal(vnet_cidr_parse("10.1.0.0/15", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse("10.1.0.0/30", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse("10.1.0.0/", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse("10.1.0.0/24x", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse("10.1.0/24", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse("10.1.0.0", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse("::1/64", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse("10.1.0.0/-24", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse(
	    "10.1.0.0/24444444444444444444444444444", &c, err, sizeof(err)), -1);
	assert_int_equal(vnet_cidr_parse(NULL, &c, err, sizeof(err)), -1);
}

static void
test_overlap_and_hosts(void **state)
{
	struct vnet_cidr a, b;
	char err[160];
	uint32_t ip;

	(void)state;
	vnet_cidr_parse("10.1.0.0/16", &a, err, sizeof(err));
	vnet_cidr_parse("10.1.200.0/24", &b, err, sizeof(err));
	assert_true(vnet_cidr_overlap(&a, &b));
	assert_true(vnet_cidr_overlap(&b, &a));
	vnet_cidr_parse("10.2.0.0/24", &b, err, sizeof(err));
	assert_false(vnet_cidr_overlap(&a, &b));
	vnet_cidr_parse("10.1.0.0/29", &a, err, sizeof(err));
	vnet_ip_parse("10.1.0.0", &ip);
	assert_false(vnet_cidr_host_ok(&a, ip));	/* network */
	vnet_ip_parse("10.1.0.1", &ip);
	assert_false(vnet_cidr_host_ok(&a, ip));	/* gateway */
	vnet_ip_parse("10.1.0.2", &ip);
	assert_true(vnet_cidr_host_ok(&a, ip));
	vnet_ip_parse("10.1.0.6", &ip);
	assert_true(vnet_cidr_host_ok(&a, ip));
	vnet_ip_parse("10.1.0.7", &ip);
	assert_false(vnet_cidr_host_ok(&a, ip));	/* broadcast */
	vnet_ip_parse("10.1.0.8", &ip);
	assert_false(vnet_cidr_host_ok(&a, ip));	/* outside */
	assert_int_equal(vnet_ip_parse("10.1.0.256", &ip), -1);
	assert_int_equal(vnet_mask(24), 0xffffff00u);
	assert_int_equal(vnet_mask(0), 0);
}

static void
test_mac_and_ifname(void **state)
{
	(void)state;
	assert_true(vnet_mac_valid("52:54:00:12:34:56"));
	assert_true(vnet_mac_valid("02:00:c7:00:00:01"));
	assert_false(vnet_mac_valid("52:54:00:12:34:5"));
	assert_false(vnet_mac_valid("52:54:00:12:34:5G"));
	assert_false(vnet_mac_valid("52:54:00:AB:34:56"));	/* upper case */
	assert_false(vnet_mac_valid("52-54-00-12-34-56"));
	assert_false(vnet_mac_valid("01:00:5e:00:00:01"));	/* multicast */
	assert_false(vnet_mac_valid("ff:ff:ff:ff:ff:ff"));
	assert_false(vnet_mac_valid("00:00:00:00:00:00"));
	assert_false(vnet_mac_valid(NULL));
	assert_true(vnet_ifname_valid("eth0"));
	assert_true(vnet_ifname_valid("br-lan.100"));
	assert_false(vnet_ifname_valid(""));
	assert_false(vnet_ifname_valid("a23456789012345x"));	/* 16 */
	assert_false(vnet_ifname_valid("."));
	assert_false(vnet_ifname_valid(".."));
	assert_false(vnet_ifname_valid("eth0/1"));
	assert_false(vnet_ifname_valid("eth 0"));
	assert_false(vnet_ifname_valid("cvnb1"));	/* ours */
	/* The agents' rule (net_ifname_valid): a name the manager accepts
	 * must not fail on every host. */
	assert_false(vnet_ifname_valid("-x"));
	assert_false(vnet_ifname_valid(".hidden"));
	assert_true(vnet_ifname_valid("eth0-"));
	assert_false(vnet_ifname_valid(NULL));
}

/* Guards src/manager/vnet.c vnet_dp_known (through vnet_host_status):
 * network show names only datapaths we know, for well-formed network
 * names; an agent's other words (a line break, a long text, a number) and
 * a report without net_datapath leave nothing behind. */
static void
test_datapaths_reported(void **state)
{
	static const char *const bad[] = { "v3", "v4", "v/5", "v6" };
	json_t *st = json_object(), *dp, *dp2, *got;
	size_t i;

	(void)state;
	dp = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "v1", "ebpf", "v2",
	    "8021q", "v3", "ebpf\nh9: ok", "v4", 1, "v/5", "ebpf", "v6",
	    "xdp");
	vnet_host_status("h1", st, dp);
	dp2 = json_pack("{s:s}", "v1", "8021q");
	vnet_host_status("h2", st, dp2);
	got = vnet_datapaths_of("v1");
	assert_int_equal(json_object_size(got), 2);
	assert_string_equal(json_string_value(json_object_get(got, "h1")),
	    "ebpf");
	assert_string_equal(json_string_value(json_object_get(got, "h2")),
	    "8021q");
	json_decref(got);
	got = vnet_datapaths_of("v2");
	assert_int_equal(json_object_size(got), 1);
	json_decref(got);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		got = vnet_datapaths_of(bad[i]);
		assert_int_equal(json_object_size(got), 0);
		json_decref(got);
	}
	/* A report without it (an older agent): h1 says nothing any more. */
	vnet_host_status("h1", st, NULL);
	got = vnet_datapaths_of("v1");
	assert_int_equal(json_object_size(got), 1);
	json_decref(got);
	vnet_host_forget("h1");
	vnet_host_forget("h2");
	got = vnet_datapaths_of("v1");
	assert_int_equal(json_object_size(got), 0);
	json_decref(got);
	json_decref(dp);
	json_decref(dp2);
	json_decref(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_overlap_and_hosts),
		cmocka_unit_test(test_mac_and_ifname),
		cmocka_unit_test(test_datapaths_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
