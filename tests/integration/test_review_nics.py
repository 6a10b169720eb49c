"""NIC changes of one VM at the same time (review): every NIC is accepted
and in the VM's spec afterwards, and each removal sticks."""

import threading

import cvirt

# This module's agents realize networks in this machine's own network
# namespace: one worker at a time (conftest.py).
XDIST_GROUP = "hostnet"


def test_concurrent_nic_adds_and_removes_keep_the_spec(cluster):
    cl = cluster
    st, vm = cl.http("POST", "/api/v1/vms", {
        "name": "rv-nics", "cpus": 1, "memory_mib": 64})
    assert st == 201, vm
    base = len(vm["nics"])
    for rnd in range(16):
        macs = ["52:54:00:7e:%02x:%02x" % (rnd, i) for i in range(8 - base)]
        results = {}

        def add(mac):
            results[mac] = cl.http("POST", "/api/v1/vms/rv-nics/nics",
                                   {"network": "user", "mac": mac})

        threads = [threading.Thread(target=add, args=(m,)) for m in macs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Each change is one transaction on the spec as it is then
        # (api_nic_save): all fit (8 NICs at most), all are kept.
        assert {m: results[m][0] for m in macs} == {m: 201 for m in macs}, \
            results
        ok = macs
        st, vm = cl.http("GET", "/api/v1/vms/rv-nics")
        have = [n["mac"] for n in vm["nics"]]
        assert sorted(have[base:]) == sorted(macs) and len(have) == 8, \
            (have, results)

        def remove(mac):
            results[mac] = cl.http("DELETE", "/api/v1/vms/rv-nics/nics/" + mac)

        threads = [threading.Thread(target=remove, args=(m,)) for m in ok]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        st, vm = cl.http("GET", "/api/v1/vms/rv-nics")
        have = [n["mac"] for n in vm["nics"]]
        for m in ok:
            assert results[m][0] == 200, results[m]
            assert m not in have, (m, have)
        assert len(have) == base, have
    cl.cli("vm", "delete", "rv-nics")


def test_tap_nics_differ_in_their_last_three_mac_bytes(cluster):
    """A host names a NIC's TAP cvnt<last 6 hex digits of the MAC>: two
    NICs on TAP networks whose MACs end alike would share one TAP."""
    cl = cluster
    st, net = cl.http("POST", "/api/v1/networks", {
        "name": "rv-ov", "type": "vxlan", "subnet": "10.77.0.0/24"})
    assert st == 201, net
    st, vm = cl.http("POST", "/api/v1/vms", {
        "name": "rv-tap1", "cpus": 1, "memory_mib": 64,
        "nics": [{"network": "rv-ov", "mac": "52:54:00:ab:cd:ef"}]})
    assert st == 201, vm
    st, reply = cl.http("POST", "/api/v1/vms", {
        "name": "rv-tap2", "cpus": 1, "memory_mib": 64,
        "nics": [{"network": "rv-ov", "mac": "02:00:00:ab:cd:ef"}]})
    assert st == 409 and "TAP" in reply["error"], reply
    assert cl.http("GET", "/api/v1/vms/rv-tap2")[0] == 404
    st, reply = cl.http("POST", "/api/v1/vms/rv-tap1/nics",
                        {"network": "rv-ov", "mac": "52:54:02:ab:cd:ef"})
    assert st == 409 and "TAP" in reply["error"], reply
    # The user network has no TAP: any MAC there is fine.
    st, vm = cl.http("POST", "/api/v1/vms/rv-tap1/nics",
                     {"network": "user", "mac": "52:54:03:ab:cd:ef"})
    assert st == 201, vm
    cl.cli("vm", "delete", "rv-tap1")
    assert cl.http("DELETE", "/api/v1/networks/rv-ov")[0] == 200


def test_deleted_host_leaves_network_show(cluster):
    """network show lists each host's state of the network; a deleted
    host is no longer among them."""
    cl = cluster
    st, reply = cl.register_host({
        "name": "rv-gone", "url": "http://10.241.0.9:7901", "accel": "tcg",
        "cpus": 2, "memory_mib": 2048, "vms": [], "storage": []})
    assert st == 200, reply
    key = reply["agent_key"]
    st, net = cl.http("POST", "/api/v1/networks", {
        "name": "rv-show", "type": "vxlan"})
    assert st == 201, net
    st, reply = cl.http("POST", "/api/v1/agent/report", {
        "name": "rv-gone", "vms": [], "exits": [], "net_gen": "",
        "net_status": {"rv-show": "ok"}}, token=key)
    assert st == 200, reply
    st, shown = cl.http("GET", "/api/v1/networks/rv-show")
    assert shown["hosts"].get("rv-gone") == "ok", shown
    cvirt.wait_for(lambda: cl.http("GET", "/api/v1/hosts/rv-gone")[1]
                   ["state"] != "up", 30, "rv-gone down")
    st, reply = cl.http("DELETE", "/api/v1/hosts/rv-gone")
    assert st == 200, reply
    st, shown = cl.http("GET", "/api/v1/networks/rv-show")
    assert "rv-gone" not in shown["hosts"], shown
    assert cl.http("DELETE", "/api/v1/networks/rv-show")[0] == 200


def test_nic_remove_takes_an_upper_case_mac(cluster):
    """cvirt nic remove accepts a MAC in upper case; so does the API."""
    cl = cluster
    st, vm = cl.http("POST", "/api/v1/vms", {
        "name": "rv-upper", "cpus": 1, "memory_mib": 64,
        "nics": [{"network": "user", "mac": "52:54:00:7f:ab:cd"}]})
    assert st == 201, vm
    st, vm = cl.http("DELETE", "/api/v1/vms/rv-upper/nics/52:54:00:7F:AB:CD")
    assert st == 200, vm
    assert vm["nics"] == []
    cl.cli("vm", "delete", "rv-upper")


def test_vni_given_high_up_leaves_the_rest_usable(cluster):
    """Without --vni the lowest free VNI from 10000 is taken, also after a
    network took the highest VNI by hand."""
    cl = cluster
    st, top = cl.http("POST", "/api/v1/networks", {
        "name": "rv-top", "type": "vxlan", "vni": 16777215})
    assert st == 201, top
    st, a = cl.http("POST", "/api/v1/networks", {
        "name": "rv-auto1", "type": "vxlan"})
    assert st == 201 and a["vni"] == 10000, a
    st, b = cl.http("POST", "/api/v1/networks", {
        "name": "rv-auto2", "type": "vxlan"})
    assert st == 201 and b["vni"] == 10001, b
    assert cl.http("DELETE", "/api/v1/networks/rv-auto1")[0] == 200
    st, c = cl.http("POST", "/api/v1/networks", {
        "name": "rv-auto3", "type": "vxlan"})
    assert st == 201 and c["vni"] == 10000, c
    for n in ("rv-top", "rv-auto2", "rv-auto3"):
        assert cl.http("DELETE", "/api/v1/networks/" + n)[0] == 200
