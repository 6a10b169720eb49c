/* test_netbpf.c - unit tests for the eBPF VLAN datapath's loader
 * (src/net/netbpf.c): the attach plan (pure), and attach, keep, replace,
 * refuse and detach against the kernel in a private network namespace. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/proc.h"
#include "net/net.h"
#include "net/net_int.h"

#define OWNER	"cvirt:unit0000000000"

/* Guards netbpf_plan (src/net/netbpf.c): a filter that does what we
 * want is kept (an agent restart attaches nothing twice), ours but
 * different is replaced, anyone else's is never touched. */
static void
test_plan(void **state)
{
	struct netbpf_cfg want, have, other;
	char longer[100];

	(void)state;
	netbpf_cfg_make(&want, NETBPF_IN, OWNER, 7, 100, 12, 3);
	assert_int_equal(want.magic, NETBPF_MAGIC);
	assert_int_equal(netbpf_plan(0, NULL, &want), NETBPF_ATTACH);
	/* Something at our handle that is no cvirt VLAN program. */
	assert_int_equal(netbpf_plan(1, NULL, &want), NETBPF_FOREIGN);
	have = want;
	assert_int_equal(netbpf_plan(1, &have, &want), NETBPF_KEEP);
	have.magic = 0;
	assert_int_equal(netbpf_plan(1, &have, &want), NETBPF_FOREIGN);
	netbpf_cfg_make(&other, NETBPF_IN, "cvirt:someoneelse00", 7, 100, 12,
	    3);
	assert_int_equal(netbpf_plan(1, &other, &want), NETBPF_FOREIGN);
	netbpf_cfg_make(&have, NETBPF_IN, OWNER, 7, 200, 12, 3);
	assert_int_equal(netbpf_plan(1, &have, &want), NETBPF_REPLACE);
	netbpf_cfg_make(&have, NETBPF_IN, OWNER, 7, 100, 13, 3);
	assert_int_equal(netbpf_plan(1, &have, &want), NETBPF_REPLACE);
	netbpf_cfg_make(&have, NETBPF_IN, OWNER, 7, 100, 12, 4);
	assert_int_equal(netbpf_plan(1, &have, &want), NETBPF_REPLACE);
	netbpf_cfg_make(&have, NETBPF_OUT, OWNER, 7, 100, 12, 3);
	assert_int_equal(netbpf_plan(1, &have, &want), NETBPF_REPLACE);
	netbpf_cfg_make(&have, NETBPF_IN, OWNER, 8, 100, 12, 3);
	assert_int_equal(netbpf_plan(1, &have, &want), NETBPF_REPLACE);
	/* The owner is cut to fit, NUL-terminated. */
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	netbpf_cfg_make(&have, NETBPF_IN, longer, 7, 100, 12, 3);
	assert_int_equal(strlen(have.owner), NETBPF_OWNER_MAX - 1);
}

/* Guards net_no_link_type (src/net/netapply.c), which decides that the
 * kernel has no 802.1Q (the eBPF datapath then): only the kernel's "I do
 * not know this link type" counts, in iproute2's words old and new; a
 * VLAN device refused for another reason means the type exists. */
static void
test_no_link_type(void **state)
{
	(void)state;
	assert_true(net_no_link_type("Error: Unknown device type."));
	assert_true(net_no_link_type("RTNETLINK answers: Operation not "
	    "supported"));
	assert_false(net_no_link_type("Error: 8021q: link not specified."));
	assert_false(net_no_link_type("RTNETLINK answers: Invalid argument"));
	assert_false(net_no_link_type("RTNETLINK answers: File exists"));
	assert_false(net_no_link_type(""));
}

/* `tc -j filter show dev DEV ingress` entries that carry a filter:
 * "prio:handle:program name" in *out (a JSON array, new reference). */
static json_t *
filters(const char *dev)
{
	char *argv[] = { "tc", "-j", "filter", "show", "dev", (char *)dev,
	    "ingress", NULL };
	char out[16384], one[128];
	json_t *j, *e, *res = json_array();
	size_t i;

	assert_int_equal(proc_run(argv, out, sizeof(out), 10000), 0);
	j = strspn(out, " \n") == strlen(out) ? json_array() :
	    json_loads(out, 0, NULL);
	assert_non_null(j);
	json_array_foreach(j, i, e) {
		json_t *o = json_object_get(e, "options");
		json_t *prog = json_object_get(o, "prog");

		if (o == NULL)
			continue;
		snprintf(one, sizeof(one), "%lld:%s:%s:%lld", (long long)
		    json_integer_value(json_object_get(e, "pref")),
		    json_string_value(json_object_get(o, "handle")),
		    prog ? json_string_value(json_object_get(prog, "name")) :
		    json_string_value(json_object_get(e, "kind")),
		    (long long)json_integer_value(json_object_get(prog, "id")));
		json_array_append_new(res, json_string(one));
	}
	json_decref(j);
	return res;
}

/* The program id of the single filter on dev, which must be want
 * ("prio:handle:program name"). */
static long long
only_filter(const char *dev, const char *want)
{
	json_t *f = filters(dev);
	const char *s;
	char head[96];
	long long id;

	if (json_array_size(f) != 1)
		fail_msg("%s: %zu filters, want 1 (%s)", dev, json_array_size(f),
		    want);
	s = json_string_value(json_array_get(f, 0));
	snprintf(head, sizeof(head), "%s:", want);
	if (strncmp(s, head, strlen(head)) != 0)
		fail_msg("%s: filter %s, want %s", dev, s, want);
	id = strtoll(s + strlen(head), NULL, 10);
	json_decref(f);
	return id;
}

static size_t
nfilters(const char *dev)
{
	json_t *f = filters(dev);
	size_t n = json_array_size(f);

	json_decref(f);
	return n;
}

static int
has_clsact(const char *dev)
{
	char *argv[] = { "tc", "qdisc", "show", "dev", (char *)dev, NULL };
	char out[4096];

	assert_int_equal(proc_run(argv, out, sizeof(out), 10000), 0);
	return strstr(out, "clsact") != NULL;
}

static int
sh(const char *cmd)
{
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	char out[4096];

	return proc_run(argv, out, sizeof(out), 10000);
}

static int want_filters;

static int
wanted(void *arg, long id, unsigned ifindex)
{
	(void)arg;
	(void)id;
	(void)ifindex;
	return want_filters;
}

/* Guards netbpf_vlan_apply and netbpf_reconcile (src/net/netbpf.c)
 * against the kernel: the two filters land where they belong (handle =
 * network id, our prio), a second apply keeps the very same programs (no
 * second filter after an agent restart), a changed VLAN id replaces them
 * in place, another agent's filter is refused, and the reconcile detaches
 * only unwanted filters of ours and takes the clsact qdisc away only when
 * nobody else's filter is left on it. Root and eBPF needed (skipped
 * otherwise: the integration suite checks the same on every machine). */
static void
test_apply_keep_replace_detach(void **state)
{
	char err[256], want[64];
	long long in1, out1, in2;

	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		skip();
		return;
	}
	assert_int_equal(sh("ip link set lo up && "
	    "ip link add up0 type veth peer name up0p && "
	    "ip link add cvnv7 type veth peer name cvnq7 && "
	    "ip link add cvnv8 type veth peer name cvnq8 && "
	    "for d in up0 up0p cvnv7 cvnq7 cvnv8 cvnq8; do "
	    "ip link set $d up || exit 1; done"), 0);
	if (netbpf_probe(err, sizeof(err)) < 0)
		fail_msg("eBPF programs do not load: %s", err);

	assert_int_equal(netbpf_vlan_apply(OWNER, 7, 100, "up0", "cvnq7", err,
	    sizeof(err)), 0);
	snprintf(want, sizeof(want), "%d:0x7:cvn_vlan_in", NETBPF_PRIO);
	in1 = only_filter("up0", want);
	snprintf(want, sizeof(want), "%d:0x7:cvn_vlan_out", NETBPF_PRIO);
	out1 = only_filter("cvnq7", want);

	/* Again: nothing new. */
	assert_int_equal(netbpf_vlan_apply(OWNER, 7, 100, "up0", "cvnq7", err,
	    sizeof(err)), 0);
	snprintf(want, sizeof(want), "%d:0x7:cvn_vlan_in", NETBPF_PRIO);
	assert_int_equal(only_filter("up0", want), in1);
	snprintf(want, sizeof(want), "%d:0x7:cvn_vlan_out", NETBPF_PRIO);
	assert_int_equal(only_filter("cvnq7", want), out1);

	/* Another VLAN id: replaced in place, still one filter each. */
	assert_int_equal(netbpf_vlan_apply(OWNER, 7, 101, "up0", "cvnq7", err,
	    sizeof(err)), 0);
	snprintf(want, sizeof(want), "%d:0x7:cvn_vlan_in", NETBPF_PRIO);
	in2 = only_filter("up0", want);
	assert_true(in2 != in1);
	snprintf(want, sizeof(want), "%d:0x7:cvn_vlan_out", NETBPF_PRIO);
	assert_true(only_filter("cvnq7", want) != out1);

	/* Another agent's network 7 on the same uplink: refused, untouched. */
	assert_int_equal(netbpf_vlan_apply("cvirt:other00000000000", 7, 101,
	    "up0", "cvnq8", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not this agent's"));
	snprintf(want, sizeof(want), "%d:0x7:cvn_vlan_in", NETBPF_PRIO);
	assert_int_equal(only_filter("up0", want), in2);

	/* Wanted: the reconcile leaves it. Not wanted: it goes, and with
	 * nothing else on up0, its clsact too. */
	want_filters = 1;
	netbpf_reconcile(OWNER, wanted, NULL);
	assert_int_equal(only_filter("up0", want), in2);
	want_filters = 0;
	netbpf_reconcile("cvirt:other00000000000", wanted, NULL);
	assert_int_equal(only_filter("up0", want), in2);
	netbpf_reconcile(OWNER, wanted, NULL);
	assert_int_equal(nfilters("up0"), 0);
	assert_false(has_clsact("up0"));

	/* Someone else's filter on the uplink stays, and so does the clsact
	 * it needs. */
	assert_int_equal(sh("tc qdisc add dev up0 clsact && tc filter add dev "
	    "up0 ingress prio 3 bpf bytecode '1,6 0 0 0,'"), 0);
	assert_int_equal(netbpf_vlan_apply(OWNER, 7, 100, "up0", "cvnq7", err,
	    sizeof(err)), 0);
	assert_int_equal(nfilters("up0"), 2);
	netbpf_reconcile(OWNER, wanted, NULL);
	assert_int_equal(nfilters("up0"), 1);
	assert_true(has_clsact("up0"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_no_link_type),
		cmocka_unit_test(test_apply_keep_replace_detach),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
