"""Networks in the inventory (docs/network.md): validation of types,
subnets, VNIs and VLAN ids, IPAM and MAC allocation, NICs of stopped VMs,
deleting a network in use, and the client commands. No guest runs here:
test_network.py runs VMs on the networks in namespaces."""

import cvirt

# This module's agents realize networks in this machine's own network
# namespace: one worker at a time (conftest.py).
XDIST_GROUP = "hostnet"


def create(cl, body, status=201):
    st, reply = cl.http("POST", "/api/v1/networks", body)
    assert st == status, (body, reply)
    return reply


def nic_refused(cl, vm, nic, status, words):
    """nic is refused with status (and words in the error) when added to
    vm, and when a new VM is created with it: that leaves nothing behind."""
    st, reply = cl.http("POST", "/api/v1/vms/%s/nics" % vm, nic)
    assert st == status and words in reply["error"], (nic, reply)
    st, reply = cl.http("POST", "/api/v1/vms", {
        "name": "nic-refused", "cpus": 1, "memory_mib": 64, "nics": [nic]})
    assert st == status, (nic, reply)
    assert cl.http("GET", "/api/v1/vms/nic-refused")[0] == 404


def test_network_validation(cluster):
    cl = cluster
    bad = [
        ({"name": "a"}, 400, "type"),
        ({"name": "a", "type": "ovs"}, 400, "type"),
        ({"name": "a", "type": "nat"}, 400, "subnet"),
        ({"name": "a", "type": "nat", "subnet": "10.9.0.1/24"}, 400,
         "host bits"),
        ({"name": "a", "type": "nat", "subnet": "10.9.0.0"}, 400, "prefix"),
        ({"name": "a", "type": "nat", "subnet": "10.9.0.0/8"}, 400, "prefix"),
        ({"name": "a", "type": "nat", "subnet": "10.9.0.0/33"}, 400,
         "prefix"),
        ({"name": "a", "type": "nat", "subnet": "300.9.0.0/24"}, 400,
         "CIDR"),
        ({"name": "a", "type": "vlan", "uplink": "eth0"}, 400, "vlan id"),
        ({"name": "a", "type": "vlan", "vlan": 5000, "uplink": "eth0"}, 400,
         "vlan"),
        # 802.1Q: 0 is a priority tag, 4095 reserved (src/manager/
        # api_network.c api_net_create: vlan 1..4094).
        ({"name": "a", "type": "vlan", "vlan": 0, "uplink": "eth0"}, 400,
         "vlan must be between 1 and 4094"),
        ({"name": "a", "type": "vlan", "vlan": 4095, "uplink": "eth0"}, 400,
         "vlan must be between 1 and 4094"),
        ({"name": "a", "type": "vlan", "vlan": -1, "uplink": "eth0"}, 400,
         "vlan must be between 1 and 4094"),
        ({"name": "a", "type": "vlan", "vlan": 2 ** 62, "uplink": "eth0"},
         400, "vlan must be between 1 and 4094"),
        ({"name": "a", "type": "vlan", "vlan": "100", "uplink": "eth0"}, 400,
         "vlan must be an integer"),
        ({"name": "a", "type": "vlan", "vlan": 100.5, "uplink": "eth0"}, 400,
         "vlan must be an integer"),
        ({"name": "a", "type": "vlan", "vlan": True, "uplink": "eth0"}, 400,
         "vlan must be an integer"),
        ({"name": "a", "type": "vlan", "vlan": 5}, 400, "uplink"),
        ({"name": "a", "type": "bridge"}, 400, "uplink"),
        ({"name": "a", "type": "bridge", "uplink": "../etc"}, 400, "uplink"),
        ({"name": "a", "type": "bridge", "uplink": "cvnb1"}, 400, "uplink"),
        # Names every agent would refuse (an option to ip(8)).
        ({"name": "a", "type": "bridge", "uplink": "-x"}, 400, "uplink"),
        ({"name": "a", "type": "vlan", "vlan": 5, "uplink": ".x"}, 400,
         "uplink"),
        ({"name": "a", "type": "vxlan", "vni": 0}, 400, "vni"),
        ({"name": "a", "type": "nat", "subnet": "10.9.0.0/24", "vni": 5},
         400, "vxlan"),
        ({"name": "a", "type": "vxlan", "dhcp": True}, 400, "subnet"),
        ({"name": "a", "type": "vxlan", "mtu": 100}, 400, "mtu"),
        ({"name": "a/b", "type": "vxlan"}, 400, "name"),
        ({"name": "user", "type": "vxlan"}, 409, "built in"),
        ({"name": "a", "type": "vxlan", "extra": 1}, 400, "unknown field"),
        ({"name": "a", "type": "vxlan", "vni": "5"}, 400, "integer"),
    ]
    for body, status, words in bad:
        st, reply = cl.http("POST", "/api/v1/networks", body)
        assert st == status, (body, reply)
        assert words.lower() in reply["error"].lower(), (body, reply)
        assert "\n" not in reply["error"], (body, reply)
    st, nets = cl.http("GET", "/api/v1/networks")
    assert [n["name"] for n in nets] == ["user"]


def test_vni_vlan_subnet_rules(cluster):
    cl = cluster
    a = create(cl, {"name": "ov-a", "type": "vxlan", "subnet":
                    "10.60.0.0/24"})
    assert a["vni"] == 10000 and a["mtu"] == 1450 and a["dhcp"] is True
    assert a["gateway"] == "10.60.0.1"
    # Overlays may share a subnet (they are isolated from each other)...
    b = create(cl, {"name": "ov-b", "type": "vxlan", "subnet":
                    "10.60.0.0/24"})
    assert b["vni"] == 10001
    # ...but not a VNI.
    st, reply = cl.http("POST", "/api/v1/networks", {
        "name": "ov-c", "type": "vxlan", "vni": 10001})
    assert st == 409 and "10001" in reply["error"] and "ov-b" in \
        reply["error"]
    # A nat subnet is routed on the hosts: no overlap either way.
    create(cl, {"name": "nat1", "type": "nat", "subnet": "10.61.0.0/24"})
    for body in ({"name": "nat2", "type": "nat", "subnet": "10.61.0.128/25"},
                 {"name": "ov-d", "type": "vxlan", "subnet": "10.61.0.0/16"},
                 {"name": "nat3", "type": "nat", "subnet": "10.60.0.0/24"}):
        st, reply = cl.http("POST", "/api/v1/networks", body)
        assert st == 409 and "overlaps" in reply["error"], (body, reply)
    # VLAN ids are unique per uplink.
    create(cl, {"name": "v100", "type": "vlan", "vlan": 100,
                "uplink": "eth1"})
    st, reply = cl.http("POST", "/api/v1/networks", {
        "name": "v100b", "type": "vlan", "vlan": 100, "uplink": "eth1"})
    assert st == 409 and "v100" in reply["error"]
    create(cl, {"name": "v100c", "type": "vlan", "vlan": 100,
                "uplink": "eth2"})
    st, reply = cl.http("POST", "/api/v1/networks", {
        "name": "ov-a", "type": "vxlan"})
    assert st == 409 and "exists" in reply["error"]
    for n in ("ov-b", "v100", "v100c"):
        assert cl.http("DELETE", "/api/v1/networks/" + n)[0] == 200
    st, reply = cl.http("DELETE", "/api/v1/networks/user")
    assert st == 409
    assert cl.http("DELETE", "/api/v1/networks/nosuch")[0] == 404


def test_ipam_macs_and_nics_of_stopped_vms(cluster):
    cl = cluster
    create(cl, {"name": "small", "type": "vxlan", "subnet": "10.62.0.0/29"})
    # A /29 has 8 addresses: network, gateway, broadcast, 5 for VMs.
    st, vm = cl.http("POST", "/api/v1/vms", {
        "name": "ipam1", "cpus": 1, "memory_mib": 64,
        "nics": [{"network": "small"}, {"network": "user"},
                 {"network": "small", "ip": "10.62.0.6",
                  "mac": "52:54:00:aa:00:01"}]})
    assert st == 201, vm
    nics = vm["nics"]
    assert [n["network"] for n in nics] == ["small", "user", "small"]
    assert nics[0]["ip"] == "10.62.0.2" and nics[1]["ip"] is None
    assert nics[2]["ip"] == "10.62.0.6" and nics[2]["mac"] == \
        "52:54:00:aa:00:01"
    assert len({n["mac"] for n in nics}) == 3
    # Taken address, taken MAC, address outside the subnet, the gateway.
    for nic, status, words in (
            ({"network": "small", "ip": "10.62.0.6"}, 409, "in use"),
            ({"network": "small", "mac": "52:54:00:aa:00:01"}, 409, "in use"),
            ({"network": "small", "ip": "10.62.1.3"}, 400, "usable"),
            ({"network": "small", "ip": "10.62.0.1"}, 400, "gateway"),
            ({"network": "small", "mac": "01:00:5e:00:00:01"}, 400,
             "unicast"),
            ({"network": "user", "ip": "10.0.2.15"}, 400, "IPAM"),
            ({"network": "nosuch"}, 404, "not found")):
        nic_refused(cl, "ipam1", nic, status, words)
    # Fill the subnet: .3, .4, .5 are left.
    st, vm = cl.http("POST", "/api/v1/vms/ipam1/nics", {"network": "small"})
    assert st == 201 and vm["nics"][-1]["ip"] == "10.62.0.3"
    st, vm2 = cl.http("POST", "/api/v1/vms", {
        "name": "ipam2", "cpus": 1, "memory_mib": 64,
        "nics": [{"network": "small"}, {"network": "small"}]})
    assert st == 201, vm2
    assert [n["ip"] for n in vm2["nics"]] == ["10.62.0.4", "10.62.0.5"]
    st, reply = cl.http("POST", "/api/v1/vms", {
        "name": "ipam3", "cpus": 1, "memory_mib": 64, "network": "small"})
    assert st == 409 and "no free address" in reply["error"]
    assert cl.http("GET", "/api/v1/vms/ipam3")[0] == 404
    # Removing a NIC frees its address; the next one reuses it.
    mac = vm["nics"][0]["mac"]
    st, vm = cl.http("DELETE", "/api/v1/vms/ipam1/nics/" + mac)
    assert st == 200 and mac not in [n["mac"] for n in vm["nics"]]
    st, reply = cl.http("DELETE", "/api/v1/vms/ipam1/nics/" + mac)
    assert st == 404
    st, vm3 = cl.http("POST", "/api/v1/vms", {
        "name": "ipam3", "cpus": 1, "memory_mib": 64, "network": "small"})
    assert st == 201 and vm3["nics"][0]["ip"] == "10.62.0.2"
    # A network in use cannot be deleted; once its VMs are gone it can.
    st, reply = cl.http("DELETE", "/api/v1/networks/small")
    assert st == 409 and "in use" in reply["error"]
    st, net = cl.http("GET", "/api/v1/networks/small")
    assert net["vms"] == ["ipam1", "ipam2", "ipam3"]
    for name in ("ipam1", "ipam2", "ipam3"):
        cl.cli("vm", "delete", name)
    assert cl.http("DELETE", "/api/v1/networks/small")[0] == 200


def test_cli(cluster):
    cl = cluster
    out = cl.cli("network", "create", "clinet", "--type", "vxlan",
                 "--subnet", "10.63.0.0/24", "--vni", 4242, json=True)
    assert out["vni"] == 4242 and out["type"] == "vxlan"
    rc, text, _ = cl.cli("network", "list")
    assert "clinet" in text and "4242" in text and "user" in text
    rc, text, _ = cl.cli("network", "show", "clinet")
    assert "10.63.0.1" in text
    rc, _, err = cl.cli("network", "create", "x", "--type", "vxlan",
                        "--vni", "abc", check=False)
    assert rc == 1 and "--vni" in err and len(err.strip().splitlines()) == 1
    # VLAN ids outside 1..4094: one line, nothing sent (src/cli/
    # cli_network.c cli_network_create's range), nothing made.
    for vid in ("0", "4095", "-1", "0x10", "1e3", "100abc", "", " 5",
                "18446744073709551617"):
        rc, _, err = cl.cli("network", "create", "x", "--type", "vlan",
                            "--uplink", "eth0", "--vlan", vid, check=False)
        assert rc == 1 and "--vlan" in err and \
            len(err.strip().splitlines()) == 1, (vid, rc, err)
    assert cl.http("GET", "/api/v1/networks/x")[0] == 404
    rc, _, err = cl.cli("network", "create", "x", check=False)
    assert rc == 2 and "--type" in err
    cl.cli("vm", "create", "clivm", "--cpus", 1, "--memory", 64,
           "--net", "clinet,user")
    nics = cl.cli("nic", "list", "clivm", json=True)
    assert [n["network"] for n in nics] == ["clinet", "user"]
    assert nics[0]["ip"] == "10.63.0.2"
    cl.cli("nic", "add", "clivm", "--net", "clinet", "--ip", "10.63.0.9")
    rc, text, _ = cl.cli("vm", "show", "clivm")
    assert "10.63.0.9" in text
    cl.cli("nic", "remove", "clivm", nics[1]["mac"])
    nics = cl.cli("nic", "list", "clivm", json=True)
    assert [n["network"] for n in nics] == ["clinet", "clinet"]
    rc, _, err = cl.cli("nic", "remove", "clivm", "zz", check=False)
    assert rc == 1 and "MAC" in err, err
    rc, _, err = cl.cli("network", "delete", "clinet", check=False)
    assert rc == 1 and "in use" in err, err
    cl.cli("vm", "delete", "clivm")
    cl.cli("network", "delete", "clinet")
    rc, text, _ = cl.cli("network", "list")
    assert "clinet" not in text


def test_viewer_cannot_change_networks(cluster):
    cl = cluster
    out = cl.cli("user", "create", "netviewer", "--role", "viewer",
                 json=True)
    tok = out["token"]
    st, _ = cl.http("GET", "/api/v1/networks", token=tok)
    assert st == 200
    st, _ = cl.http("POST", "/api/v1/networks", {"name": "vv", "type":
                                                 "vxlan"}, token=tok)
    assert st == 403
    st, _ = cl.http("DELETE", "/api/v1/networks/ov-a", token=tok)
    assert st == 403


def register(cl, name, ip, storage=True):
    """A host registered by hand (as cvirt sim does): its agent key."""
    st, reply = cl.register_host({
        "name": name, "url": "http://%s:7901" % ip, "accel": "tcg",
        "cpus": 2, "memory_mib": 2048, "vms": [],
        "storage": [{"name": "local", "path": "/nonexistent", "ok": True}]
        if storage else []})
    assert st == 200, reply
    return reply["agent_key"]


def report(cl, name, key, gen, status=None):
    body = {"name": name, "vms": [], "exits": [], "net_gen": gen}
    if status is not None:
        body["net_status"] = status
    st, reply = cl.http("POST", "/api/v1/agent/report", body, token=key)
    assert st == 200, reply
    return reply


def test_desired_state_for_agents_and_host_delete(cluster):
    """What a host is told to realize: every network, VXLAN peers = the
    other hosts, DHCP reservations; sent only when the agent's generation
    is old; a deleted host leaves the peer lists."""
    cl = cluster
    ka = register(cl, "fake-a", "10.240.0.1")
    kb = register(cl, "fake-b", "10.240.0.2")
    create(cl, {"name": "peers", "type": "vxlan", "subnet": "10.64.0.0/24",
                "vni": 6400})
    reply = report(cl, "fake-a", ka, "")
    net = reply["net"]
    assert net["local"] == "10.240.0.1"
    mine = [n for n in net["networks"] if n["name"] == "peers"][0]
    assert mine["vni"] == 6400 and mine["mtu"] == 1450
    assert "10.240.0.2" in mine["peers"]
    assert "10.240.0.1" not in mine["peers"]
    assert mine["mac"].startswith("02:00:c7:")
    assert mine["leases"] == []
    # Up to date: nothing more.
    assert "net" not in report(cl, "fake-a", ka, net["gen"])
    # A VM on the network: a new generation with its reservation.
    st, vm = cl.http("POST", "/api/v1/vms", {
        "name": "leasevm", "cpus": 1, "memory_mib": 64, "network": "peers",
        "host": "h1"})
    assert st == 201, vm
    reply = report(cl, "fake-a", ka, net["gen"])
    mine = [n for n in reply["net"]["networks"] if n["name"] == "peers"][0]
    assert mine["leases"] == [{"mac": vm["nics"][0]["mac"], "ip":
                               "10.64.0.2", "vm": "leasevm"}]
    gen = reply["net"]["gen"]
    # Placement waits for hosts that realized the network: fake-b says
    # it cannot, so a start pinned there is refused with the reason.
    report(cl, "fake-b", kb, gen, {"peers": "uplink eth9 missing"})
    st, net_show = cl.http("GET", "/api/v1/networks/peers")
    assert net_show["hosts"]["fake-b"] == "uplink eth9 missing"
    # The change is an event, once (not at every report).
    report(cl, "fake-b", kb, gen, {"peers": "uplink eth9 missing"})
    st, events = cl.http("GET", "/api/v1/events?limit=50")
    failed = [e for e in events if e["kind"] == "network.failed"]
    assert len(failed) == 1 and "fake-b" in failed[0]["message"] and \
        "uplink eth9 missing" in failed[0]["message"]
    rc, _, err = cl.cli("vm", "start", "leasevm", "--host", "fake-b",
                        check=False)
    assert rc == 1 and "uplink eth9 missing" in err, err
    # (The fakes cannot delete VM files: they stop claiming the storage.)
    ka = register(cl, "fake-a", "10.240.0.1", storage=False)
    kb = register(cl, "fake-b", "10.240.0.2", storage=False)
    cl.cli("vm", "delete", "leasevm")
    # Deleting a host: refused while it reports, then it leaves the peers.
    st, reply = cl.http("DELETE", "/api/v1/hosts/fake-b")
    assert st == 409 and "up" in reply["error"]
    cvirt.wait_for(lambda: cl.http("GET", "/api/v1/hosts/fake-b")[1]
                   ["state"] != "up", 30, "fake-b down")
    rc, out, _ = cl.cli("host", "delete", "fake-b")
    assert "deleted" in out
    assert cl.http("GET", "/api/v1/hosts/fake-b")[0] == 404
    reply = report(cl, "fake-a", ka, gen)
    mine = [n for n in reply["net"]["networks"] if n["name"] == "peers"][0]
    assert "10.240.0.2" not in mine["peers"]
    assert mine["leases"] == []
    assert cl.http("DELETE", "/api/v1/hosts/nosuch")[0] == 404


def test_metrics_count_networks(cluster):
    cl = cluster
    create(cl, {"name": "metricnet", "type": "vxlan"})
    st, nets = cl.http("GET", "/api/v1/networks")
    assert st == 200, nets
    want = {}
    for n in nets:
        if n["builtin"]:
            continue        # "user": always there, not counted
        key = 'cvirt_networks{type="%s"}' % n["type"]
        want[key] = want.get(key, 0) + 1
    st, text = cl.http("GET", "/metrics")
    assert st == 200, text
    counts = {l.split()[0]: int(l.split()[1]) for l in text.splitlines()
              if l.startswith("cvirt_networks{")}
    assert counts == want, (counts, nets)



def test_user_networks(cluster):
    """Named user-mode networks: QEMU's slirp in each VM, so no VNI,
    VLAN, uplink or IPAM, always DHCP, subnets that overlap nothing, and
    nothing for the agents to realize."""
    cl = cluster
    lab = create(cl, {"name": "ulab", "type": "user",
                      "subnet": "10.67.0.0/24"})
    assert lab["type"] == "user" and lab["subnet"] == "10.67.0.0/24"
    # Slirp's gateway is the second address; its DHCP always runs.
    assert lab["gateway"] == "10.67.0.2" and lab["dhcp"] is True
    assert lab["mtu"] == 1500 and lab["builtin"] is False
    assert lab["vni"] is None and lab["vlan"] is None and \
        lab["uplink"] is None
    plain = create(cl, {"name": "uplain", "type": "user", "dhcp": True,
                        "mtu": 1500})
    assert plain["subnet"] is None and plain["gateway"] is None
    for body, words in (
            ({"vni": 5}, "no vni"),
            ({"vlan": 5}, "no vlan"),
            ({"uplink": "eth0"}, "no uplink"),
            ({"dhcp": False}, "always has DHCP"),
            ({"mtu": 1400}, "MTU is 1500"),
            ({"subnet": "10.68.0.0/28"}, "/16 to /27"),
            ({"subnet": "10.68.0.1/24"}, "host bits"),
            ({"subnet": "10.68.0.0/8"}, "prefix")):
        body = dict(body, name="ubad", type="user")
        st, reply = cl.http("POST", "/api/v1/networks", body)
        assert st == 400 and words in reply["error"], (body, reply)
        assert "\n" not in reply["error"]
    assert cl.http("GET", "/api/v1/networks/ubad")[0] == 404
    # Its subnet lives inside each QEMU: no overlap, either way.
    create(cl, {"name": "unat", "type": "nat", "subnet": "10.67.0.0/24"})
    create(cl, {"name": "ulab2", "type": "user", "subnet": "10.67.0.0/16"})
    st, nets = cl.http("GET", "/api/v1/networks")
    types = {n["name"]: n["type"] for n in nets}
    assert types["ulab"] == types["uplain"] == types["ulab2"] == "user"
    assert types["user"] == "user" and types["unat"] == "nat"

    # NICs: no address (slirp's DHCP picks it), the network's type (and
    # subnet) stamped on the NIC for the agent.
    st, vm = cl.http("POST", "/api/v1/vms", {
        "name": "uvm", "cpus": 1, "memory_mib": 64,
        "nics": [{"network": "ulab"}, {"network": "uplain"},
                 {"network": "unat"}, {"network": "user"}]})
    assert st == 201, vm
    nics = vm["nics"]
    assert [n["ip"] for n in nics] == [None, None, "10.67.0.2", None]
    assert [n["type"] for n in nics] == ["user", "user", "nat", "user"]
    assert nics[0]["subnet"] == "10.67.0.0/24"
    assert all("subnet" not in n for n in nics[1:])
    assert len({n["mac"] for n in nics}) == 4
    for nic, status, words in (
            ({"network": "ulab", "ip": "10.67.0.15"}, 400, "no ip"),
            ({"network": "uplain", "ip": "10.0.2.15"}, 400, "no ip"),
            ({"network": "ulab", "mac": nics[2]["mac"]}, 409, "in use")):
        nic_refused(cl, "uvm", nic, status, words)
    # A NIC added later (the VM is stopped: only the spec changes).
    st, vm = cl.http("POST", "/api/v1/vms/uvm/nics", {"network": "ulab2"})
    assert st == 201, vm
    assert vm["nics"][-1]["type"] == "user" and \
        vm["nics"][-1]["subnet"] == "10.67.0.0/16" and \
        vm["nics"][-1]["ip"] is None

    # Nothing to realize: not in the hosts' desired state, "ok" on every
    # host (h1 realizes unat, so it has reported its networks).
    key = register(cl, "fake-u", "10.240.0.9", storage=False)
    names = [n["name"] for n in report(cl, "fake-u", key, "")["net"]
             ["networks"]]
    assert "unat" in names
    assert not {"ulab", "uplain", "ulab2", "user"} & set(names)
    cvirt.wait_for(lambda: "h1" in cl.http(
        "GET", "/api/v1/networks/unat")[1]["hosts"], 30, "h1's report")
    st, show = cl.http("GET", "/api/v1/networks/ulab")
    assert show["vms"] == ["uvm"]
    assert "h1" in show["hosts"] and \
        set(show["hosts"].values()) == {"ok"}, show

    # In use: not deleted; once the VM is gone it can be.
    for name in ("ulab", "uplain", "ulab2"):
        st, reply = cl.http("DELETE", "/api/v1/networks/" + name)
        assert st == 409 and "in use" in reply["error"], reply
    cl.cli("vm", "delete", "uvm")
    for name in ("ulab", "uplain", "ulab2", "unat"):
        assert cl.http("DELETE", "/api/v1/networks/" + name)[0] == 200

    # The client: created and listed like the other types.
    rc, text, _ = cl.cli("network", "create", "ucli", "--type", "user",
                         "--subnet", "10.69.0.0/24")
    assert "ucli" in text and "user" in text and "10.69.0.2" in text
    rc, text, _ = cl.cli("network", "list")
    row = [l.split() for l in text.splitlines() if l.startswith("ucli ")]
    assert row and row[0][1:3] == ["user", "10.69.0.0/24"], text
    rc, _, err = cl.cli("network", "create", "ucli2", "--type", "user",
                        "--vni", 7, check=False)
    assert rc == 1 and "no vni" in err and len(err.strip().splitlines()) == 1
    cl.cli("network", "delete", "ucli")
