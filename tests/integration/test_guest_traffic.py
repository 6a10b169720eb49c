"""Bridge and VLAN networks carry real guest traffic between hosts
(docs/network.md, "Types" and "On each host"). Two hosts in network
namespaces (netns.py) get, besides their management link, two "physical"
NICs each, cabled to two switches in the switch namespace:

    h1: ethb --- [ swb ] --- ethb :h2     the bridge network's segment
        (port of the operator's bridge vmbr0 on each host)
    h1: etht --- [ swt ] --- etht :h2     a trunk for the vlan networks

Guests on different hosts ping each other and one fetches a page that
the other serves. On vlan networks, two VLAN ids with the same subnet on
one trunk stay apart, the guests' frames cross the trunk tagged with
their network's id, and deleting the networks leaves each host as it was.
A kernel with 802.1Q (CONFIG_VLAN_8021Q) carries them on VLAN devices,
one without (this machine's) on the agent's eBPF datapath: either way the
same test runs (docs/network.md)."""

import json
import os
import re
import shutil
import subprocess

import pytest

import l2frames
from cvirt import NotYet, kernel_has_vlan, wait_for
from netns import NetnsCluster, _ip

# sqlite_only: what is checked is frames between guests on the hosts'
# kernel datapaths; the manager's database only holds the networks'
# definitions, which test_network_api checks in both passes.
pytestmark = [pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft"),
    reason="needs root and nft (scripts/install-deps)"),
    pytest.mark.sqlite_only]

BR_NET = "10.71.0"
VL_NET = "10.72.0"


def cable(cl, host, nic, switch, port):
    """A veth from host's namespace (named nic) to the switch namespace's
    bridge `switch` (named port there)."""
    sw = cl.nsnames[0]
    _ip("link", "add", nic, "netns", cl.ns[host], "type", "veth", "peer",
        "name", port, "netns", sw)
    _ip("-n", sw, "link", "set", port, "master", switch, "up")
    _ip("-n", cl.ns[host], "link", "set", nic, "up")


@pytest.fixture(scope="module")
def tc(request, guest, cvirt_bin):
    cl = NetnsCluster(("h1", "h2"), bin=cvirt_bin)
    request.addfinalizer(cl.stop)
    sw = cl.nsnames[0]
    for switch in ("swb", "swt"):
        _ip("-n", sw, "link", "add", switch, "type", "bridge")
        _ip("-n", sw, "link", "set", switch, "up")
    for i, h in enumerate(("h1", "h2")):
        cable(cl, h, "ethb", "swb", "b%d" % i)
        cable(cl, h, "etht", "swt", "t%d" % i)
        # The operator's bridge for VMs on the physical network.
        _ip("-n", cl.ns[h], "link", "add", "vmbr0", "type", "bridge")
        _ip("-n", cl.ns[h], "link", "set", "ethb", "master", "vmbr0")
        _ip("-n", cl.ns[h], "link", "set", "vmbr0", "up")
    mem = ["--memory", "1024"]
    cl.start(hosts=("h1", "h2"), agent_extra={"h1": mem, "h2": mem})
    return cl


def net_state(cl, name):
    """{host: "ok" or its one-line error} of a network."""
    return cl.cli("network", "show", name, json=True)["hosts"]


def wait_realized(cl, name):
    return wait_for(lambda: (lambda s: s if len(s) == 2 and all(
        v == "ok" for v in s.values()) else None)(net_state(cl, name)),
        30, "network %s realized on both hosts" % name)


def guest(cl, g, name, net, ip, host, extra):
    """A test guest with one NIC on net at ip (static in the guest too),
    started on host."""
    status, body = cl.http("POST", "/api/v1/vms", {
        "name": name, "cpus": 1, "memory_mib": 128, "kernel": g.kernel,
        "initrd": g.initrd, "nics": [{"network": net, "ip": ip}],
        "cmdline": "console=ttyS0 cvirt.ip=%s/24 %s" % (ip, extra)})
    assert status == 201, body
    cl.cli("vm", "start", name, "--host", host)
    assert cl.vm(name)["host"] == host


def pings(cl, name, target):
    """[ok: bool] of the guest's pings of target, in order."""
    return [m == "ok" for m in re.findall(
        r"cvirt-guest: ping %s (ok|fail) \d+" % re.escape(target),
        cl.serial(name))]


def switch_macs(cl, switch):
    """MAC addresses the switch has learned (bridge fdb of `switch`)."""
    out = subprocess.run(["ip", "netns", "exec", cl.nsnames[0], "bridge",
                          "fdb", "show", "br", switch], capture_output=True,
                         text=True, check=True).stdout
    return {ln.split()[0].lower() for ln in out.splitlines() if ln.strip()}


def talk_across(cl, g, net, subnet, names):
    """Guest names[0] on h1 serves a page and pings names[1] on h2, which
    pings back and fetches the page; both must get through, over the
    cables (the guests' MACs are learned by a switch)."""
    a, b = names
    guest(cl, g, a, net, subnet + ".11", "h1",
          "cvirt.listen=8080 cvirt.ping=%s.12" % subnet)
    guest(cl, g, b, net, subnet + ".12", "h2",
          "cvirt.ping=%s.11 cvirt.fetch=http://%s.11:8080/"
          % (subnet, subnet))
    cl.wait_serial(a, "cvirt-guest: ping %s.12 ok" % subnet, 90)
    cl.wait_serial(b, "cvirt-guest: ping %s.11 ok" % subnet, 90)
    cl.wait_serial(b, "cvirt-guest: fetched ok", 60)
    return {cl.vm(n)["nics"][0]["mac"].lower() for n in names}


def test_bridge_network_guests_talk_across_hosts(tc, guest_):
    """Guards src/net/netapply.c net_bridge_of(), which makes a bridge
    network's uplink (the operator's bridge) the one each vNIC's TAP
    joins, and src/net/net.c net_tap_attach(), which puts the TAP in it
    (`master BRIDGE`), so the guests are on the physical segment. Fails
    with either broken (a TAP left out of the bridge: no ping gets
    through)."""
    tc.cli("network", "create", "phys", "--type", "bridge", "--uplink",
           "vmbr0", "--subnet", BR_NET + ".0/24")
    wait_realized(tc, "phys")
    macs = talk_across(tc, guest_, "phys", BR_NET, ("p1", "p2"))
    assert macs <= switch_macs(tc, "swb"), \
        "the guests' frames did not cross the bridge network's cable"
    for n in ("p1", "p2"):
        tc.cli("vm", "delete", n, "--force")


def make_vlan_networks(tc):
    tc.cli("network", "create", "v100", "--type", "vlan", "--vlan", 100,
           "--uplink", "etht", "--subnet", VL_NET + ".0/24")
    tc.cli("network", "create", "v200", "--type", "vlan", "--vlan", 200,
           "--uplink", "etht", "--subnet", VL_NET + ".0/24")


def host_objects(cl, host):
    """A host namespace's links (name, kind, master) and, on each link,
    its qdiscs and tc filters (prio, handle, kind or eBPF program)."""
    ns = cl.ns[host]
    out = {}
    links = json.loads(subprocess.run(
        ["ip", "-n", ns, "-d", "-j", "link", "show"], capture_output=True,
        text=True, check=True).stdout)
    for ln in links:
        dev = ln["ifname"]
        tc = []
        for what in (["qdisc", "show", "dev", dev],
                     ["filter", "show", "dev", dev, "ingress"],
                     ["filter", "show", "dev", dev, "egress"]):
            p = subprocess.run(["tc", "-n", ns, "-j"] + what,
                               capture_output=True, text=True)
            if p.returncode != 0 and "Cannot find device" in p.stderr:
                tc = None       # gone since the listing: as if not listed
                break
            assert p.returncode == 0, p.stderr
            for e in json.loads(p.stdout or "[]"):
                o = e.get("options") or {}
                tc.append((what[0], what[-1], e.get("kind"), e.get("pref"),
                           o.get("handle"), (o.get("prog") or {}).get(
                               "name")))
        if tc is not None:
            out[dev] = (ln.get("linkinfo", {}).get("info_kind"),
                        ln.get("master"), tuple(sorted(tc, key=str)))
    return out


def objects_as(cl, host, want):
    """A wait_for condition: host_objects(cl, host) is want (NotYet
    naming the links that differ)."""
    def check():
        now = host_objects(cl, host)
        if now != want:
            raise NotYet("; ".join("%s: %r -> %r" % (d, want.get(d),
                                                     now.get(d))
                                   for d in sorted(set(want) | set(now))
                                   if want.get(d) != now.get(d)))
        return True
    return check


def no_taps(cl, host):
    """A wait_for condition: no VM's TAP is left on host (a VM's TAP
    goes when its QEMU has ended, after `vm delete` returned)."""
    def check():
        taps = [d for d in host_objects(cl, host) if d.startswith("cvnt")]
        if taps:
            raise NotYet("TAPs %r" % taps)
        return True
    return check


def trunk_tags(cl, host, mac, seconds):
    """The tags of the frames from mac that the switch's port of host's
    trunk cable (t0: h1, t1: h2) receives within seconds."""
    port = "t%d" % ("h1", "h2").index(host)
    cap = l2frames.Capture(cl.nsnames[0], port, "src=" + mac.lower(),
                           seconds)
    return cap.result()


def test_vlan_networks_carry_traffic_and_stay_apart(tc, guest_):
    """Guards src/net/netapply.c net_vlan(): where the kernel has 802.1Q,
    the VLAN device (`link UPLINK type vlan id N`) that net_port_up() puts
    in the network's bridge; where it has none (this machine's kernel),
    net_vlan_ebpf(): a veth pair into the bridge and src/net/netbpf.c's
    two eBPF filters, tagging towards the trunk and untagging its VLAN's
    frames from it. Real guests on two hosts talk across the trunk, their
    frames tagged with their network's id (captured at the switch); two
    VLAN ids on one trunk are two segments (a guest on vlan 200 with the
    same subnet gets no answer from vlan 100); `network show` says which
    datapath each host uses; deleting the networks removes their links
    and filters and nothing else."""
    dp = "8021q" if kernel_has_vlan() else "ebpf"
    for h in ("h1", "h2"):      # the bridge test's VMs are gone
        wait_for(no_taps(tc, h), 20, "no TAP on %s" % h)
    before = {h: host_objects(tc, h) for h in ("h1", "h2")}
    make_vlan_networks(tc)
    for net in ("v100", "v200"):
        wait_realized(tc, net)
        show = tc.cli("network", "show", net, json=True)
        assert show["datapaths"] == {"h1": dp, "h2": dp}, show
    _, text, _ = tc.cli("network", "show", "v100")
    assert "h1: ok (datapath %s)" % dp in text, text
    macs = talk_across(tc, guest_, "v100", VL_NET, ("q1", "q2"))
    assert macs <= switch_macs(tc, "swt"), \
        "the guests' frames did not cross the trunk"
    # q1 pings q2 once a second: its frames reach the switch tagged 100.
    q1 = tc.vm("q1")["nics"][0]["mac"]
    tags = trunk_tags(tc, "h1", q1, 3)
    assert tags and all(t == [(0x8100, 100)] for t in tags), tags
    # q3 on vlan 200, same subnet, on h2 like q2: it asks for q1's
    # address and must get no answer, while q1 and q2 go on talking.
    guest(tc, guest_, "q3", "v200", VL_NET + ".13", "h2",
          "cvirt.ping=%s.11" % VL_NET)
    wait_for(lambda: len(pings(tc, "q3", VL_NET + ".11")) >= 5, 60,
             "q3 to try 5 pings")
    assert not any(pings(tc, "q3", VL_NET + ".11")), \
        "a guest on vlan 200 reached one on vlan 100"
    q3 = tc.vm("q3")["nics"][0]["mac"]
    tags = trunk_tags(tc, "h2", q3, 3)
    assert tags and all(t == [(0x8100, 200)] for t in tags), tags
    n = sum(pings(tc, "q1", VL_NET + ".12"))
    wait_for(lambda: sum(pings(tc, "q1", VL_NET + ".12")) > n + 1, 20,
             "q1's pings of q2 to go on")
    for name in ("q1", "q2", "q3"):
        tc.cli("vm", "delete", name, "--force")
    # Deleted networks leave each host as it was before them: links,
    # qdiscs and tc filters (the trunk's included). The hosts apply the
    # new state with their next heartbeat (1 s); 20 s for a loaded
    # machine.
    for net in ("v100", "v200"):
        tc.cli("network", "delete", net)
    for h in ("h1", "h2"):
        wait_for(objects_as(tc, h, before[h]), 20,
                 "%s's links and filters as before the vlan networks" % h)


@pytest.fixture
def guest_(guest):
    """conftest's test guest, under a name that does not shadow guest()."""
    return guest
