#!/usr/bin/env python3
"""Network benchmark: VM-to-VM TCP throughput between two hosts (network
namespaces) over a vxlan network, side by side with the same pair of VMs
over a plain bridge network (type bridge on a bridge this benchmark makes
in each host namespace, the two joined by a veth pair: L2 with no
encapsulation). The guests are the test guest: the sender pipes MIB MiB of
zeros into busybox nc, the receiver discards them; each start of the
sender VM is one transfer, alternating between the two networks; the
figure is the median of RUNS transfers. Under TCG the guests' own CPU
bounds both figures; the ratio is what the overlay costs on top (and,
on a shared machine, noise).

env: CVIRT_BIN, BENCH_NET_RUNS (default 3), BENCH_NET_MIB (default 16).
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cvirt  # noqa: E402
from netns import NetnsCluster  # noqa: E402

RUNS = int(os.environ.get("BENCH_NET_RUNS", "3"))
MIB = int(os.environ.get("BENCH_NET_MIB", "16"))
KERNEL = cvirt.GUEST_KERNEL
INITRD = cvirt.GUEST_INITRD
SENT_RE = re.compile(r"cvirt-guest: sent (\d+) MiB in (\d+) ms")
UPLINK = "bnbr0"


def log(msg):
    print("bench_network: " + msg, file=sys.stderr, flush=True)


def figure(samples, unit, peer=None, peer_name=None):
    f = {"value": round(statistics.median(samples), 3),
         "min": round(min(samples), 3), "max": round(max(samples), 3),
         "runs": len(samples), "unit": unit}
    if peer is not None:
        f["peer"] = round(peer, 3)
        f["peer_name"] = peer_name
        f["ratio"] = round(f["value"] / peer, 3) if peer else None
    return f


def ip(*args):
    subprocess.run(["ip"] + list(args), check=True, capture_output=True)


def plain_bridge(cl):
    """A bridge in each host namespace, joined by a veth pair."""
    for h in ("h1", "h2"):
        ip("-n", cl.ns[h], "link", "add", UPLINK, "type", "bridge")
        ip("-n", cl.ns[h], "link", "set", UPLINK, "up")
    ip("link", "add", "bnv1", "netns", cl.ns["h1"], "type", "veth", "peer",
       "name", "bnv2", "netns", cl.ns["h2"])
    for h, v in (("h1", "bnv1"), ("h2", "bnv2")):
        ip("-n", cl.ns[h], "link", "set", v, "master", UPLINK)
        ip("-n", cl.ns[h], "link", "set", v, "up")


def realized(cl, net):
    hosts = cl.cli("network", "show", net, json=True).get("hosts", {})
    return len(hosts) == 2 and all(v == "ok" for v in hosts.values())


def vm(cl, name, net, ip_addr, cmdline):
    status, body = cl.http("POST", "/api/v1/vms", {
        "name": name, "cpus": 1, "memory_mib": 256, "kernel": KERNEL,
        "initrd": INITRD, "cmdline": "console=ttyS0 " + cmdline,
        "nics": [{"network": net, "ip": ip_addr}]})
    if status not in (200, 201):
        raise cvirt.CvirtError("vm create %s: %s" % (name, body))


def pair(cl, net, subnet, mtu):
    """A receiver on h2 (running) and a sender for h1 (defined: each start
    sends MIB MiB once and prints how long it took)."""
    vm(cl, net + "-rx", net, subnet + ".12", "cvirt.ip=%s.12/24 cvirt.mtu=%d "
       "cvirt.sink=5001" % (subnet, mtu))
    vm(cl, net + "-tx", net, subnet + ".11", "cvirt.ip=%s.11/24 cvirt.mtu=%d "
       "cvirt.send=%s.12:5001:%d" % (subnet, mtu, subnet, MIB))
    cl.cli("vm", "start", net + "-rx", "--host", "h2")
    cl.wait_serial(net + "-rx", "cvirt-guest: sink on", 60)


def transfer(cl, net, k):
    """Boot the sender for its k-th (1-based) transfer; Mbit/s."""
    tx = net + "-tx"
    cl.cli("vm", "start", tx, "--host", "h1")
    deadline = time.monotonic() + 120
    while True:
        serial = cl.serial(tx)
        if "cvirt-guest: send failed" in serial:
            raise cvirt.CvirtError("%s: the sender's nc failed (transfer %d)"
                                   % (net, k))
        if len(SENT_RE.findall(serial)) >= k:
            break
        if time.monotonic() > deadline:
            raise cvirt.CvirtError("%s: transfer %d not done in 120 s" % (
                net, k))
        time.sleep(0.2)
    cl.cli("vm", "stop", tx, "--force")
    ms = int(SENT_RE.findall(serial)[k - 1][1])
    mbps = MIB * 8 * 1048576 / 1e6 / (ms / 1000.0)
    log("%s: %d MiB in %d ms -> %.1f Mbit/s" % (net, MIB, ms, mbps))
    return mbps


def main():
    cl = NetnsCluster(("h1", "h2"))
    try:
        cl.start(hosts=("h1", "h2"))
        plain_bridge(cl)
        cl.cli("network", "create", "bvx", "--type", "vxlan", "--subnet",
               "10.70.0.0/24")
        cl.cli("network", "create", "bbr", "--type", "bridge", "--uplink",
               UPLINK, "--subnet", "10.71.0.0/24")
        for net in ("bvx", "bbr"):
            cvirt.wait_for(lambda: realized(cl, net), 30,
                           "network %s on both hosts" % net)
        pair(cl, "bvx", "10.70.0", 1450)
        pair(cl, "bbr", "10.71.0", 1500)
        # Alternate the two, so that the shared machine's load drifts over
        # both alike.
        vx, br = [], []
        for k in range(1, RUNS + 1):
            vx.append(transfer(cl, "bvx", k))
            br.append(transfer(cl, "bbr", k))
    finally:
        cl.cleanup()
    vxf = figure(vx, "Mbit/s", statistics.median(br), "plain bridge")
    print(json.dumps({
        "net_throughput_mbps_vxlan": figure(vx, "Mbit/s"),
        "net_throughput_mbps_bridge": figure(br, "Mbit/s"),
        "net_throughput_ratio_vxlan_vs_bridge": vxf["ratio"],
    }))


if __name__ == "__main__":
    main()
