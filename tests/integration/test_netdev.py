"""The agent's host side of virtual networks (src/net), against the kernel.

One agent runs as root in a throwaway network namespace and talks to a
small stand-in manager (in the same namespace) that answers its heartbeats
with the network payload of docs/network.md. The test changes the payload
and checks the kernel objects with ip, bridge and nft: creation, a reapply
with changed VXLAN peers, deletion, TAP clean-up, an agent restart (nothing
lost, nothing duplicated) and that objects the agent does not own are never
touched."""

import ctypes
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

import l2frames
from cvirt import Daemon, cvirt_bin, free_port, kernel_has_vlan, wait_for

# sqlite_only: the agent here talks to a stand-in manager, so no
# inventory database is involved; the PostgreSQL pass would run it again
# unchanged.
pytestmark = [pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or
    not shutil.which("dnsmasq"),
    reason="needs root, nft and dnsmasq (scripts/install-deps)"),
    pytest.mark.sqlite_only]

# The stand-in manager: register, then heartbeats; each reply carries the
# payload of DIR/payload.json when the agent's net_gen differs from it.
# It keeps the last report in DIR/report.json, numbered ("_n": 1, 2...).
FAKE_MANAGER = r'''
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, d = int(sys.argv[1]), sys.argv[2]
class H(BaseHTTPRequestHandler):
    n = 0
    def log_message(self, *a): pass
    def do_GET(self):
        self.reply({"status": "ok"})
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path.endswith("/agent/register"):
            return self.reply({"agent_key": "k1",
                               "heartbeat_interval_ms": 200})
        H.n += 1
        body["_n"] = H.n
        tmp = os.path.join(d, "report.tmp")
        with open(tmp, "w") as f:
            json.dump(body, f)
        os.rename(tmp, os.path.join(d, "report.json"))
        out = {"heartbeat_interval_ms": 200}
        try:
            with open(os.path.join(d, "payload.json")) as f:
                net = json.load(f)
            if body.get("net_gen") != net.get("gen"):
                out["net"] = net
        except FileNotFoundError:
            pass
        self.reply(out)
    def reply(self, obj):
        b = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''

# Holds a TAP open the way QEMU does (TUNSETIFF), until killed.
TAP_HOLDER = r'''
import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", sys.argv[1].encode(),
            0x0002 | 0x1000))
print("held", flush=True)
time.sleep(3600)
'''


def run(ns, *argv, check=True):
    p = subprocess.run(["ip", "netns", "exec", ns] + list(argv),
                       capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(argv), p.stderr))
    return p.stdout


def links(ns):
    return {l["ifname"]: l for l in
            json.loads(run(ns, "ip", "-d", "-j", "link", "show"))}


def addrs(ns, dev):
    out = json.loads(run(ns, "ip", "-j", "-4", "addr", "show", "dev", dev))
    return ["%s/%d" % (a["local"], a["prefixlen"])
            for i in out for a in i.get("addr_info", [])]


def addrs6(ns, dev):
    out = json.loads(run(ns, "ip", "-j", "-6", "addr", "show", "dev", dev))
    return [a["local"] for i in out for a in i.get("addr_info", [])]


def fdb_dsts(ns, dev):
    out = run(ns, "bridge", "-j", "fdb", "show", "dev", dev)
    return sorted(e["dst"] for e in json.loads(out or "[]")
                  if e.get("mac") == "00:00:00:00:00:00" and "dst" in e)


def tc_filters(ns, dev, direction="ingress"):
    """The tc filters on dev's clsact hook: sorted (prio, handle, kind or
    eBPF program name, program id or None); [] without a clsact."""
    out = run(ns, "tc", "-j", "filter", "show", "dev", dev, direction)
    res = []
    for e in json.loads(out or "[]"):
        o = e.get("options")
        if o is None:
            continue
        prog = o.get("prog") or {}
        res.append((e["pref"], o.get("handle"), prog.get("name", e["kind"]),
                    prog.get("id")))
    return sorted(res, key=str)


def bpf_prog_exists(prog_id):
    """Whether the kernel still has eBPF program prog_id (bpf(2)
    BPF_PROG_GET_FD_BY_ID; x86-64's syscall number): a program goes
    once no filter and no file descriptor holds it."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 32)()     # union bpf_attr, zero-filled
    attr[0] = prog_id
    fd = libc.syscall(321, 13, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return True
    assert ctypes.get_errno() == errno.ENOENT, os.strerror(ctypes.get_errno())
    return False


def bpf_fds(daemon):
    """The eBPF programs and maps daemon holds open (it should hold none:
    attached programs are held by their filters)."""
    d = "/proc/%d/fd" % daemon.proc.pid
    out = []
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if t.startswith("anon_inode:bpf"):
            out.append(t)
    return out


def tc_qdiscs(ns, dev):
    return sorted(q["kind"] for q in json.loads(
        run(ns, "tc", "-j", "qdisc", "show", "dev", dev) or "[]"))


# Someone else's filter on the uplink (classic BPF "return 0": no match,
# the next filter decides): never touched by the agent.
FOREIGN_FILTER = ("tc", "filter", "add", "dev", "up0", "ingress", "prio",
                  "3", "bpf", "bytecode", "1,6 0 0 0,")


def add_foreign_filter(ns):
    run(ns, "tc", "qdisc", "add", "dev", "up0", "clsact")
    run(ns, *FOREIGN_FILTER)
    return tc_filters(ns, "up0")


def nft_tables(ns):
    return set(l.strip() for l in run(ns, "nft", "list", "tables")
               .splitlines() if l.strip())


def alive(pid):
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def pid_of(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


class Host:
    """An agent in its own namespace, with its stand-in manager."""

    def __init__(self, tmp):
        self.ns = "cvndt%05d" % random.randint(0, 99999)
        self.dir = tempfile.mkdtemp(prefix="cvnd.", dir="/tmp")
        self.data = os.path.join(self.dir, "a")
        self.run_net = os.path.join(self.data, "run", "net")
        self.owner = "cvirt:" + hashlib.blake2b(
            self.data.encode(), digest_size=32).hexdigest()[:16]
        self.logdir = str(tmp)
        self.holders = []
        self.extra_ns = []
        self.agent = None
        self.mgr = None
        try:
            self._setup()
        except Exception:
            self.cleanup()
            raise

    def _setup(self):
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        run(self.ns, "ip", "link", "set", "lo", "up")
        # The underlay (VTEP address 10.77.0.1), an operator's bridge, and
        # a cvn-named bridge that some other agent owns.
        run(self.ns, "ip", "link", "add", "up0", "type", "veth", "peer",
            "name", "up0p")
        run(self.ns, "ip", "addr", "add", "10.77.0.1/24", "dev", "up0")
        run(self.ns, "ip", "link", "set", "up0", "up")
        run(self.ns, "ip", "link", "add", "vbr0", "type", "bridge")
        run(self.ns, "ip", "link", "add", "cvnb99", "type", "bridge")
        with open(os.path.join(self.dir, "fake.py"), "w") as f:
            f.write(FAKE_MANAGER)
        with open(os.path.join(self.dir, "holder.py"), "w") as f:
            f.write(TAP_HOLDER)
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write("t" * 64 + "\n")
        os.makedirs(os.path.join(self.dir, "storage"))
        self.mport, self.aport = free_port(), free_port()
        self.mgr = Daemon("fake manager", [
            "ip", "netns", "exec", self.ns, sys.executable,
            os.path.join(self.dir, "fake.py"), str(self.mport), self.dir],
            os.path.join(self.logdir, "fake-manager.log"), dict(os.environ))
        self.mgr.start()

    def start_agent(self, wrap=()):
        self.agent = Daemon("agent", [
            "ip", "netns", "exec", self.ns] + list(wrap) + [cvirt_bin(),
            "agent",
            "--data", self.data,
            "--manager", "http://127.0.0.1:%d" % self.mport,
            "--token-file", os.path.join(self.dir, "token"), "--name", "h1",
            "--listen", "127.0.0.1:%d" % self.aport,
            "--storage", "local=" + os.path.join(self.dir, "storage"),
            "--watchdog", "none"],
            os.path.join(self.logdir, "agent.log"), dict(os.environ))
        self.agent.start()

    def stop_agent(self):
        assert self.agent.stop(15) == 0, self.agent.log_tail()

    def push(self, gen, networks, local="10.77.0.1"):
        self.push_raw({"gen": gen, "local": local, "networks": networks})

    def push_raw(self, payload):
        """What the stand-in sends from now on, whole (by rename)."""
        p = os.path.join(self.dir, "payload.json")
        with open(p + ".tmp", "w") as f:
            json.dump(payload, f)
        os.rename(p + ".tmp", p)

    def report(self):
        """The agent's last report ({} until the next one is written: the
        stand-in writes it whole, by rename)."""
        try:
            with open(os.path.join(self.dir, "report.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def report_count(self):
        """How many reports the stand-in has had (0 before the first)."""
        return self.report().get("_n", 0)

    def wait_gen(self, gen, timeout=30):
        def check():
            if not self.agent.running():
                raise AssertionError("agent exited:\n" +
                                     self.agent.log_tail())
            return self.report().get("net_gen") == gen
        wait_for(check, timeout, "the agent to apply generation " + gen)
        # The status goes with the report after the one that named the
        # generation; read it from a fresh report.
        os.unlink(os.path.join(self.dir, "report.json"))
        wait_for(lambda: self.report().get("net_gen") == gen, 10,
                 "the next report")
        return self.report()["net_status"]

    def hold_tap(self, name):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns,
                              sys.executable,
                              os.path.join(self.dir, "holder.py"), name],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        self.holders.append(p)
        return p

    def dnsmasq_pids(self):
        pids = {}
        if os.path.isdir(self.run_net):
            for f in os.listdir(self.run_net):
                if f.endswith(".pid"):
                    pid = pid_of(os.path.join(self.run_net, f))
                    if pid:
                        pids[f] = pid
        return pids

    def cleanup(self):
        if self.agent:
            self.agent.stop(10)
        for pid in self.dnsmasq_pids().values():
            os.kill(pid, signal.SIGTERM)
        for p in self.holders:
            p.kill()
            p.wait()
        if self.mgr:
            self.mgr.stop(5)
        for ns in self.extra_ns + [self.ns]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def host(tmp_path, cvirt_bin):
    h = Host(tmp_path)
    yield h
    h.cleanup()


def net(name, id, type, **kw):
    n = {"name": name, "id": id, "type": type, "subnet": None,
         "gateway": None, "dhcp": False, "mtu": 1500, "vni": None,
         "vlan": None, "uplink": None,
         "mac": "02:00:c7:00:00:%02x" % id, "peers": [], "leases": []}
    n.update(kw)
    return n


NAT = net("natnet", 1, "nat", subnet="10.50.0.0/24", gateway="10.50.0.1",
          dhcp=True, leases=[{"mac": "52:54:00:00:00:11",
                              "ip": "10.50.0.11", "vm": "web1"}])
VLAN = net("vl", 2, "vlan", vlan=100, uplink="up0")
VX = net("vx", 3, "vxlan", vni=10003, mtu=1450, subnet="10.60.0.0/24",
         gateway="10.60.0.1", dhcp=True, peers=["10.77.0.2", "10.77.0.3"])
BR = net("br", 4, "bridge", uplink="vbr0")
BAD = net("nobr", 5, "bridge", uplink="nope0")

# 802.1Q devices where the kernel has them, the eBPF datapath elsewhere
# (src/net/netapply.c net_vlan); either way the network is realized.
VLAN_OK = "ok"
VLAN_DP = "8021q" if kernel_has_vlan() else "ebpf"
PRIO = 0xc7     # the agent's tc filters (src/net/net_int.h NETBPF_PRIO)


def check_first(h, foreign):
    ln = links(h.ns)
    b1 = ln["cvnb1"]
    assert b1["linkinfo"]["info_kind"] == "bridge"
    assert b1["address"] == "02:00:c7:00:00:01"
    assert b1.get("ifalias") == h.owner
    assert addrs(h.ns, "cvnb1") == ["10.50.0.1/24"]
    assert h.report()["net_datapath"] == {"vl": VLAN_DP}
    v = ln["cvnv2"]
    assert v["master"] == "cvnb2" and v["mtu"] == 1500
    if VLAN_DP == "8021q":
        assert v["linkinfo"]["info_kind"] == "vlan"
        assert v["linkinfo"]["info_data"]["id"] == 100
        assert v["link"] == "up0"
        assert tc_filters(h.ns, "up0") == foreign
    else:
        # A veth: cvnv2 in the bridge, its peer cvnq2 the trunk end; one
        # filter on each side (handle = network id).
        assert v["linkinfo"]["info_kind"] == "veth"
        assert v["link"] == "cvnq2"
        q = ln["cvnq2"]
        assert q.get("master") is None and q["mtu"] == 1500
        assert q.get("ifalias") == h.owner
        assert addrs6(h.ns, "cvnq2") == []
        assert [f[:3] for f in tc_filters(h.ns, "cvnq2")] == \
            [(PRIO, "0x2", "cvn_vlan_out")]
        mine = [f for f in tc_filters(h.ns, "up0") if f not in foreign]
        assert [f[:3] for f in mine] == [(PRIO, "0x2", "cvn_vlan_in")]
    x = ln["cvnx3"]
    d = x["linkinfo"]["info_data"]
    assert x["linkinfo"]["info_kind"] == "vxlan"
    assert (d["id"], d["local"], d["port"], d["learning"]) == \
        (10003, "10.77.0.1", 4789, False)
    assert x["mtu"] == 1450 and x["master"] == "cvnb3"
    assert ln["cvnb3"]["mtu"] == 1450
    # Pure L2: no IPv6 link-local chatter of the host into the overlay.
    for dev in ("cvnb3", "cvnx3", "cvnd3"):
        assert addrs6(h.ns, dev) == [], dev
    assert fdb_dsts(h.ns, "cvnx3") == ["10.77.0.2", "10.77.0.3"]
    # The anycast DHCP server's veth; its peer is in the private namespace.
    assert ln["cvnd3"]["master"] == "cvnb3"
    pid3 = pid_of(os.path.join(h.run_net, "dhcp3.pid"))
    assert pid3, "no dnsmasq for vx"
    inner = json.loads(subprocess.run(
        ["nsenter", "-t", str(pid3), "-n", "ip", "-j", "addr", "show", "dev",
         "cvne3"], capture_output=True, text=True, check=True).stdout)[0]
    assert inner["address"] == "02:00:c7:00:00:03"
    assert [a["local"] for a in inner["addr_info"]
            if a["family"] == "inet"] == ["10.60.0.1"]
    tables = nft_tables(h.ns)
    assert "table ip cvirt_nat1" in tables
    assert "table bridge cvirt_dhcp" in tables
    nat = run(h.ns, "nft", "list", "table", "ip", "cvirt_nat1")
    assert "ip saddr 10.50.0.0/24 ip daddr != 10.50.0.0/24 masquerade" in nat
    pids = h.dnsmasq_pids()
    assert set(pids) == {"dhcp1.pid", "dhcp3.pid"}, pids
    for pid in pids.values():
        # Nothing of the agent's signal mask (it blocks SIGTERM) sticks.
        with open("/proc/%d/status" % pid) as f:
            blk = [l for l in f if l.startswith("SigBlk:")][0]
        assert int(blk.split()[1], 16) & (1 << (signal.SIGTERM - 1)) == 0
    with open(os.path.join(h.run_net, "dhcp1.conf")) as f:
        conf = f.read()
    assert "dhcp-host=52:54:00:00:00:11,10.50.0.11" in conf
    assert "dhcp-option=option:router,10.50.0.1" in conf
    assert "dhcp-option=option:mtu,1500" in conf
    assert "cvnb99" in ln and "ifalias" not in ln["cvnb99"]
    return pids


def test_apply_reapply_restart_remove(host):
    """Guards src/net (netapply.c net_realize, net_reconcile; netbpf.c for
    the eBPF VLAN datapath): what each network type makes, a reapply, an
    agent restart that neither loses nor makes anything twice (the same
    links, the same tc filters running the same eBPF programs), and the
    removal of everything owned -- VLAN filters included -- while an
    operator's tc filter on the uplink stays."""
    h = host
    foreign = add_foreign_filter(h.ns)
    qdiscs = tc_qdiscs(h.ns, "up0")
    h.push("g1", [NAT, VLAN, VX, BR, BAD])
    h.start_agent()
    st = h.wait_gen("g1")
    assert st == {"natnet": "ok", "vl": VLAN_OK, "vx": "ok", "br": "ok",
                  "nobr": "bridge nope0 not found on host h1"}, st
    pids = check_first(h, foreign)
    assert bpf_fds(h.agent) == []

    # A leaked TAP of this agent (no VM holds it) and one a "QEMU" holds;
    # another agent's TAP.
    for t in ("cvnt0000aa", "cvnt0000bb", "cvnt0000cc"):
        run(h.ns, "ip", "tuntap", "add", "dev", t, "mode", "tap")
        run(h.ns, "ip", "link", "set", t, "master", "cvnb3", "up")
    run(h.ns, "ip", "link", "set", "cvnt0000aa", "alias", h.owner)
    run(h.ns, "ip", "link", "set", "cvnt0000bb", "alias", h.owner)
    h.hold_tap("cvnt0000bb")

    # Peers change, the nat network goes away, a lease is added elsewhere.
    vx2 = dict(VX, peers=["10.77.0.3", "10.77.0.4"])
    h.push("g2", [VLAN, vx2, BR])
    st = h.wait_gen("g2")
    assert st == {"vl": VLAN_OK, "vx": "ok", "br": "ok"}, st
    ln = links(h.ns)
    assert fdb_dsts(h.ns, "cvnx3") == ["10.77.0.3", "10.77.0.4"]
    assert "cvnb1" not in ln
    assert ln["cvnx3"]["ifindex"] > 0 and "cvnv2" in ln
    assert "table ip cvirt_nat1" not in nft_tables(h.ns)
    assert not alive(pids["dhcp1.pid"])
    assert not os.path.exists(os.path.join(h.run_net, "dhcp1.conf"))
    # The DHCP server of vx kept running (its configuration is the same).
    assert h.dnsmasq_pids() == {"dhcp3.pid": pids["dhcp3.pid"]}
    assert "cvnt0000aa" not in ln          # leaked: deleted
    assert "cvnt0000bb" in ln              # in use: kept
    assert "cvnt0000cc" in ln              # not ours: untouched
    assert "cvnb99" in ln

    # An agent restart: everything stays, nothing is made twice.
    before = {n: l["ifindex"] for n, l in links(h.ns).items()}
    filters = {d: tc_filters(h.ns, d) for d in ("up0", "cvnq2")
               if d in before}
    h.stop_agent()
    after_stop = {n: l["ifindex"] for n, l in links(h.ns).items()}
    assert after_stop == before
    assert h.dnsmasq_pids() == {"dhcp3.pid": pids["dhcp3.pid"]}
    h.start_agent()
    st = h.wait_gen("g2")
    assert st["vx"] == "ok" and st["vl"] == VLAN_OK
    assert {n: l["ifindex"] for n, l in links(h.ns).items()} == before
    assert {d: tc_filters(h.ns, d) for d in filters} == filters
    assert bpf_fds(h.agent) == []
    assert fdb_dsts(h.ns, "cvnx3") == ["10.77.0.3", "10.77.0.4"]
    assert h.dnsmasq_pids() == {"dhcp3.pid": pids["dhcp3.pid"]}
    progs = [f[3] for fs in filters.values() for f in fs if f[3]]
    assert len(progs) == (2 if VLAN_DP == "ebpf" else 0), filters
    assert all(bpf_prog_exists(p) for p in progs)

    # Every network removed: every owned object goes, foreign ones stay,
    # the TAP a VM holds stays.
    h.push("g3", [])
    assert h.wait_gen("g3") == {}
    ln = links(h.ns)
    left = sorted(n for n in ln if n.startswith("cvn"))
    assert left == ["cvnb99", "cvnt0000bb", "cvnt0000cc"], left
    assert not any("cvirt" in t for t in nft_tables(h.ns))
    assert h.dnsmasq_pids() == {}
    assert not [f for f in os.listdir(h.run_net) if f.startswith("dhcp")]
    assert "vbr0" in ln and "up0" in ln
    assert tc_filters(h.ns, "up0") == foreign
    assert tc_qdiscs(h.ns, "up0") == qdiscs
    # Their programs are gone from the kernel, not only detached. A
    # deleted tc filter drops its program after an RCU grace period (the
    # kernel's cls_bpf, tcf_queue_work): milliseconds; 5 s for a loaded
    # machine.
    wait_for(lambda: not [p for p in progs if bpf_prog_exists(p)], 5,
             "the VLAN programs %r to leave the kernel" % progs)
    assert bpf_fds(h.agent) == []


# VLAN ids no network may have (802.1Q: 0 is a priority tag, 4095
# reserved) and what is not a VLAN id at all.
BAD_VLANS = {"vlan0": 0, "vlan4095": 4095, "vlanneg": -1, "vlanbig": 65636,
             "vlanstr": "100", "vlanreal": 100.0, "vlanbool": True}


def test_bad_payloads(host):
    """A payload's malformed networks are refused one by one, each with a
    one-line status, and nothing is made for them. Guards src/net/netcfg.c
    (net_parse_link's VLAN id range among them: the agent, as root, loads
    the VLAN id into its eBPF programs, src/net/netbpf.c) -- no VLAN port,
    no veth, no clsact or filter on the uplink for a VLAN id outside
    1..4094."""
    h = host
    qdiscs = tc_qdiscs(h.ns, "up0")
    h.push("b1", [
        net("ok1", 7, "vxlan", vni=7007, mtu=1450, uplink="up0"),
        net("badup", 8, "vlan", vlan=5, uplink="eth0;reboot"),
        net("badvni", 9, "vxlan", vni=0),
        net("badcidr", 10, "nat", subnet="10.1.2.3/24", gateway="10.1.2.1"),
        net("dupvni", 11, "vxlan", vni=7007),
        net("badpeer", 12, "vxlan", vni=7012, peers=["10.0.0.1; rm"]),
        net("badmac", 13, "nat", subnet="10.9.0.0/24", gateway="10.9.0.1",
            mac="01:00:5e:00:00:01"),
    ] + [net(name, 20 + i, "vlan", vlan=v, uplink="up0")
         for i, (name, v) in enumerate(sorted(BAD_VLANS.items()))])
    h.start_agent()
    st = h.wait_gen("b1")
    assert st["ok1"] == "ok"
    for name in ("badup", "badvni", "badcidr", "dupvni", "badpeer", "badmac"):
        assert st[name].startswith("invalid network: "), (name, st[name])
    for name in BAD_VLANS:
        assert st[name] == "invalid network: vlan: want 1..4094", \
            (name, st[name])
    ln = links(h.ns)
    assert sorted(n for n in ln if n.startswith("cvn")) == \
        ["cvnb7", "cvnb99", "cvnx7"]
    assert tc_qdiscs(h.ns, "up0") == qdiscs and \
        tc_filters(h.ns, "up0") == []
    assert h.report()["net_datapath"] == {}

    # A network that fails is tried again without a new generation.
    x7 = ln["cvnx7"]
    assert x7["linkinfo"]["info_data"]["link"] == "up0"
    h.push("b1b", [net("ok1", 7, "vxlan", vni=7007, mtu=1450, uplink="up0"),
                   net("late", 14, "bridge", uplink="late0")])
    assert h.wait_gen("b1b")["late"] == "bridge late0 not found on host h1"
    # Unchanged settings: the same device, not a new one.
    assert links(h.ns)["cvnx7"]["ifindex"] == x7["ifindex"]
    run(h.ns, "ip", "link", "add", "late0", "type", "bridge")
    wait_for(lambda: h.report().get("net_status", {}).get("late") == "ok",
             25, "the retry to find late0")
    assert h.report()["net_gen"] == "b1b"

    # A malformed envelope changes nothing: the last generation stays.
    # Judged once the agent has had it (it says so once a minute,
    # src/net/net.c net_apply(); the first malformed one of this agent)
    # and reported after it (heartbeats every 200 ms).
    with open(h.agent.log_path, errors="replace") as f:
        seen = len(f.read())
    h.push_raw({"gen": "b2", "networks": "all"})

    def ignored():
        with open(h.agent.log_path, errors="replace") as f:
            return "ignoring the manager's network payload" in f.read()[seen:]
    wait_for(ignored, 10, "the agent to refuse the malformed payload")
    reported = h.report_count()
    wait_for(lambda: h.report_count() >= reported + 2, 10,
             "two more reports")
    assert h.report()["net_gen"] == "b1b"
    assert "cvnx7" in links(h.ns)
    assert h.agent.running()


UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] && echo "BOUND ip=$ip mask=$subnet router=$router mtu=$mtu"
exit 0
"""


def guest_ns(h, name, bridge, mac):
    """A namespace standing in for a VM: eth0 (mac) on bridge, through a
    port named like a VM's TAP (cvnt...)."""
    ns = h.ns + name
    subprocess.run(["ip", "netns", "add", ns], check=True)
    h.extra_ns.append(ns)
    port = "cvnt" + name
    run(h.ns, "ip", "link", "add", port, "type", "veth", "peer", "name",
        "eth0", "netns", ns)
    run(h.ns, "ip", "link", "set", port, "master", bridge, "up")
    run(ns, "ip", "link", "set", "lo", "up")
    run(ns, "ip", "link", "set", "eth0", "address", mac, "up")
    return ns


def dhcp_lease(h, ns):
    script = os.path.join(h.dir, "udhcpc.sh")
    with open(script, "w") as f:
        f.write(UDHCPC_SCRIPT)
    os.chmod(script, 0o755)
    out = run(ns, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "6", "-T",
              "1", "-i", "eth0", "-O", "mtu", "-s", script, check=False)
    return [l for l in out.splitlines() if l.startswith("BOUND")]


@pytest.mark.skipif(not shutil.which("busybox"), reason="needs busybox")
def test_dhcp_and_nat(host):
    h = host
    # The world beyond the host: up0's peer in a namespace with no route
    # back to the nat subnet (only masquerading makes replies come back).
    world = h.ns + "w"
    subprocess.run(["ip", "netns", "add", world], check=True)
    h.extra_ns.append(world)
    run(h.ns, "ip", "link", "set", "up0p", "netns", world)
    run(world, "ip", "addr", "add", "10.77.0.2/24", "dev", "up0p")
    run(world, "ip", "link", "set", "up0p", "up")
    vx = dict(VX, leases=[{"mac": "52:54:00:00:00:33", "ip": "10.60.0.33",
                           "vm": "v3"}])
    # DHCP on the operator's bridge: the same anycast server, on vbr0.
    br = dict(BR, subnet="10.70.0.0/24", gateway="10.70.0.1", dhcp=True,
              leases=[{"mac": "52:54:00:00:00:44", "ip": "10.70.0.44"}])
    run(h.ns, "ip", "link", "set", "vbr0", "up")
    # A second nat network: its own server on the same host.
    nat6 = net("nat6", 6, "nat", subnet="10.51.0.0/24", gateway="10.51.0.1",
               dhcp=True, leases=[{"mac": "52:54:00:00:00:66",
                                   "ip": "10.51.0.66"}])
    h.push("d1", [NAT, vx, br, nat6])
    h.start_agent()
    assert h.wait_gen("d1") == {"natnet": "ok", "vx": "ok", "br": "ok",
                                "nat6": "ok"}
    g6 = guest_ns(h, "g6", "cvnb6", "52:54:00:00:00:66")
    assert dhcp_lease(h, g6) == [
        "BOUND ip=10.51.0.66 mask=255.255.255.0 router=10.51.0.1 mtu=1500"]

    g1 = guest_ns(h, "g1", "cvnb1", "52:54:00:00:00:11")
    assert dhcp_lease(h, g1) == [
        "BOUND ip=10.50.0.11 mask=255.255.255.0 router=10.50.0.1 mtu=1500"]
    run(g1, "ip", "addr", "add", "10.50.0.11/24", "dev", "eth0")
    run(g1, "ip", "route", "add", "default", "via", "10.50.0.1")
    run(g1, "busybox", "ping", "-c", "1", "-W", "5", "10.77.0.1")   # the host
    run(g1, "busybox", "ping", "-c", "1", "-W", "5", "10.77.0.2")   # masqueraded
    # A MAC without a reservation gets nothing (static leases only).
    g2 = guest_ns(h, "g2", "cvnb1", "52:54:00:00:00:99")
    assert dhcp_lease(h, g2) == []

    # vxlan: the anycast server in its namespace answers, with no router.
    g3 = guest_ns(h, "g3", "cvnb3", "52:54:00:00:00:33")
    assert dhcp_lease(h, g3) == [
        "BOUND ip=10.60.0.33 mask=255.255.255.0 router= mtu=1450"]
    g4 = guest_ns(h, "g4", "vbr0", "52:54:00:00:00:44")
    assert dhcp_lease(h, g4) == [
        "BOUND ip=10.70.0.44 mask=255.255.255.0 router= mtu=1500"]
    assert links(h.ns)["cvnd4"]["master"] == "vbr0"
    rules = run(h.ns, "nft", "list", "table", "bridge", "cvirt_dhcp")
    assert 'iifname "cvnd3" oifname != "cvnt*" drop' in rules
    assert 'oifname "cvnd3" iifname != "cvnt*" drop' in rules

    # A new reservation restarts only that network's server.
    pids = h.dnsmasq_pids()
    nat2 = dict(NAT, leases=NAT["leases"] + [
        {"mac": "52:54:00:00:00:99", "ip": "10.50.0.99", "vm": "w2"}])
    h.push("d2", [nat2, vx])
    assert h.wait_gen("d2") == {"natnet": "ok", "vx": "ok"}
    assert "cvnd4" not in links(h.ns)      # br is gone: its server too
    assert "dhcp4.pid" not in h.dnsmasq_pids()
    now = h.dnsmasq_pids()
    assert now["dhcp3.pid"] == pids["dhcp3.pid"]
    assert now["dhcp1.pid"] != pids["dhcp1.pid"]
    assert dhcp_lease(h, g2) == [
        "BOUND ip=10.50.0.99 mask=255.255.255.0 router=10.50.0.1 mtu=1500"]


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_without_net_admin(host):
    """Without CAP_NET_ADMIN every network says so and nothing is made;
    the agent keeps working (its heartbeats go on)."""
    h = host
    h.push("n1", [NAT, VX, BR])
    h.start_agent(wrap=["setpriv", "--bounding-set", "-net_admin",
                        "--inh-caps", "-net_admin"])
    want = "needs root (CAP_NET_ADMIN) on host h1"
    assert h.wait_gen("n1") == {"natnet": want, "vx": want, "br": want}
    assert sorted(n for n in links(h.ns) if n.startswith("cvn")) == \
        ["cvnb99"]
    assert not any("cvirt" in t for t in nft_tables(h.ns))
    assert h.dnsmasq_pids() == {}
    os.unlink(os.path.join(h.dir, "report.json"))
    wait_for(lambda: h.report().get("net_gen") == "n1", 10, "a heartbeat")


@pytest.fixture
def host2(tmp_path, cvirt_bin):
    (tmp_path / "b").mkdir()
    h = Host(tmp_path / "b")
    yield h
    h.cleanup()


@pytest.mark.skipif(not shutil.which("busybox"), reason="needs busybox")
def test_two_hosts_vxlan(host, host2):
    """Two hosts joined by an underlay link: guests on either host share
    the overlay, and each host's anycast DHCP server answers only its own
    guests (each host is given a different reservation for the same MAC:
    a request that crossed the overlay could get the other one)."""
    a, b = host, host2
    run(a.ns, "ip", "link", "add", "ul", "type", "veth", "peer", "name",
        "ul", "netns", b.ns)
    for h, ip in ((a, "10.78.0.1"), (b, "10.78.0.2")):
        run(h.ns, "ip", "addr", "add", ip + "/24", "dev", "ul")
        run(h.ns, "ip", "link", "set", "ul", "up")

    def vx(peer, lease_ip):
        return dict(VX, peers=[peer], leases=[
            {"mac": "52:54:00:00:00:33", "ip": lease_ip, "vm": "v3"},
            {"mac": "52:54:00:00:00:34", "ip": "10.60.0.34", "vm": "v4"}])
    a.push("t1", [vx("10.78.0.2", "10.60.0.33")], local="10.78.0.1")
    b.push("t1", [vx("10.78.0.1", "10.60.0.133")], local="10.78.0.2")
    a.start_agent()
    b.start_agent()
    assert a.wait_gen("t1") == {"vx": "ok"}
    assert b.wait_gen("t1") == {"vx": "ok"}
    assert fdb_dsts(a.ns, "cvnx3") == ["10.78.0.2"]

    ga = guest_ns(a, "ga", "cvnb3", "52:54:00:00:00:33")
    gb = guest_ns(b, "gb", "cvnb3", "52:54:00:00:00:34")
    for _ in range(6):      # without the filter, some would be .133
        assert dhcp_lease(a, ga) == [
            "BOUND ip=10.60.0.33 mask=255.255.255.0 router= mtu=1450"]
    assert dhcp_lease(b, gb) == [
        "BOUND ip=10.60.0.34 mask=255.255.255.0 router= mtu=1450"]
    run(ga, "ip", "addr", "add", "10.60.0.33/24", "dev", "eth0")
    run(gb, "ip", "addr", "add", "10.60.0.34/24", "dev", "eth0")
    for g in (ga, gb):
        run(g, "ip", "link", "set", "eth0", "mtu", "1450")
    # Across the overlay, with full-size frames of the overlay's MTU.
    run(ga, "busybox", "ping", "-c", "2", "-W", "5", "10.60.0.34")
    run(gb, "busybox", "ping", "-c", "1", "-W", "5", "-s", "1422",
        "10.60.0.33")
    # The gateway address answers locally (each host's own server).
    run(ga, "busybox", "ping", "-c", "1", "-W", "5", "10.60.0.1")

    # Without the peer, the overlay is cut.
    a.push("t2", [dict(vx("10.78.0.2", "10.60.0.33"), peers=[])],
           local="10.78.0.1")
    assert a.wait_gen("t2") == {"vx": "ok"}
    assert fdb_dsts(a.ns, "cvnx3") == []
    out = run(ga, "busybox", "ping", "-c", "1", "-W", "2", "10.60.0.34",
              check=False)
    assert "1 packets transmitted, 0 packets received" in out, out


def vlan_guests(a, b):
    """Two hosts a and b joined by a trunk (a veth named tr on both), two
    VLAN networks on it with the same subnet (v100: id 2, v200: id 5),
    and a guest namespace in each network on each host:
    {(host, vlan): guest namespace}, addresses .1/.2 (v100 on a/b) and
    .3/.4 (v200 on a/b) of 10.72.0.0/24."""
    run(a.ns, "ip", "link", "add", "tr", "type", "veth", "peer", "name",
        "tr", "netns", b.ns)
    for h in (a, b):
        run(h.ns, "ip", "link", "set", "tr", "up")
    nets = [net("v100", 2, "vlan", vlan=100, uplink="tr"),
            net("v200", 5, "vlan", vlan=200, uplink="tr")]
    for h in (a, b):
        h.push("t1", nets)
        h.start_agent()
    for h in (a, b):
        assert h.wait_gen("t1") == {"v100": "ok", "v200": "ok"}
        assert h.report()["net_datapath"] == {"v100": VLAN_DP,
                                              "v200": VLAN_DP}
    g = {}
    for i, (h, vid, br) in enumerate(((a, 100, "cvnb2"), (b, 100, "cvnb2"),
                                      (a, 200, "cvnb5"),
                                      (b, 200, "cvnb5"))):
        name = "g%d%d" % (vid, i % 2)
        ns = guest_ns(h, name, br, "52:54:00:00:%02x:%02x" % (vid // 100,
                                                               i + 1))
        run(ns, "ip", "addr", "add", "10.72.0.%d/24" % (i + 1), "dev",
            "eth0")
        g[(h, vid)] = ns
    return g


def pingable(ns, ip, size=56):
    out = run(ns, "busybox", "ping", "-c", "1", "-W", "2", "-s", str(size),
              ip, check=False)
    return "1 packets received" in out


@pytest.mark.skipif(not shutil.which("busybox"), reason="needs busybox")
def test_two_hosts_vlan(host, host2):
    """VLAN networks between two hosts, checked frame by frame on the
    trunk. Guards src/net/netapply.c net_vlan() (802.1Q devices, or where
    the kernel has none, as here, net_vlan_ebpf() and the eBPF programs of
    src/net/netbpf.bpf.c): guests on one VLAN reach each other with
    full-size frames, frames leave tagged with their network's id, two
    VLANs with one subnet stay apart, and nothing crafted on the trunk --
    another id, an 802.1ad tag, a priority tag, two tags -- reaches a
    network but through its own outer 802.1Q id (a double-tagged frame
    travels in its outer VLAN with its inner tag as payload, as 802.1Q
    devices do; a guest's own tag never lets it out on another id)."""
    a, b = host, host2
    g = vlan_guests(a, b)
    # Same VLAN: through, full-size frames too (MTU 1500: 1472 + 28).
    assert pingable(g[(a, 100)], "10.72.0.2")
    assert pingable(g[(a, 100)], "10.72.0.2", 1472)
    assert pingable(g[(b, 200)], "10.72.0.3", 1472)
    # Across VLANs, same subnet: nothing.
    assert not pingable(g[(a, 100)], "10.72.0.4")
    assert not pingable(g[(a, 200)], "10.72.0.2")

    at_b = {"b100": (g[(b, 100)], "eth0"), "b200": (g[(b, 200)], "eth0"),
            "wire": (b.ns, "tr")}
    Q, AD = 0x8100, 0x88a8

    def check(got, want, vid):
        """The eBPF datapath exactly as measured; 802.1Q devices (not on
        this kernel) at least keep every frame in the VLAN vid."""
        if VLAN_DP == "ebpf":
            assert got == want
        for k, kv in (("b100", 100), ("b200", 200)):
            assert not got[k] or kv == vid, (k, got)

    # From the guests: tagged with their network's id on the wire; a tag
    # of the guest's own stays inside it.
    cases = [
        (100, [], {"b100": [[]], "b200": [], "wire": [[(Q, 100)]]}),
        (200, [], {"b100": [], "b200": [[]], "wire": [[(Q, 200)]]}),
        (100, [(Q, 200)], {"b100": [[(Q, 200)]], "b200": [],
                           "wire": [[(Q, 100), (Q, 200)]]}),
        (100, [(AD, 200)], {"b100": [[(AD, 200)]], "b200": [],
                            "wire": [[(Q, 100), (AD, 200)]]}),
    ]
    for i, (vid, tags, want) in enumerate(cases):
        got = l2frames.deliveries(g[(a, vid)], "eth0", tags, "cvg%d" % i,
                                  at_b)
        assert got["wire"] and got["wire"][0][0] == (Q, vid), (tags, got)
        check(got, want, vid)

    # Crafted on the trunk (sent into a's end, arriving at b's): only the
    # outer 802.1Q id decides.
    del at_b["wire"]
    crafted = [
        ([(Q, 100)], 100, {"b100": [[]], "b200": []}),
        ([(Q, 200)], 200, {"b100": [], "b200": [[]]}),
        ([(Q, 200), (Q, 100)], 200, {"b100": [], "b200": [[(Q, 100)]]}),
        ([(Q, 100), (Q, 200)], 100, {"b100": [[(Q, 200)]], "b200": []}),
        ([(AD, 100)], None, {"b100": [], "b200": []}),
        ([(AD, 100), (Q, 100)], None, {"b100": [], "b200": []}),
        # A priority tag (id 0) outside: 802.1Q devices look inside it.
        ([(Q, 0), (Q, 100)], 100, {"b100": [], "b200": []}),
        ([(Q, 300)], None, {"b100": [], "b200": []}),
        ([], None, {"b100": [], "b200": []}),
    ]
    for i, (tags, vid, want) in enumerate(crafted):
        got = l2frames.deliveries(a.ns, "tr", tags, "cvt%d" % i, at_b)
        check(got, want, vid)
    for h in (a, b):
        h.stop_agent()


def test_vlan_mtu_above_the_uplink_refused(host):
    """A VLAN network whose MTU the uplink cannot carry says so in one
    line (src/net/netapply.c net_vlan_ebpf's check; 802.1Q refuses a VLAN
    device's MTU above its lower device's in the kernel's words) and makes
    no VLAN port; with the MTU lowered it is realized."""
    h = host
    big = net("big", 2, "vlan", vlan=100, uplink="up0", mtu=9000)
    h.push("m1", [big])
    h.start_agent()
    st = h.wait_gen("m1")["big"]
    if VLAN_DP == "ebpf":
        assert st == "the network's MTU 9000 is above the MTU 1500 of " \
            "uplink up0 on host h1", st
        assert "cvnv2" not in links(h.ns)
    else:
        assert st != "ok" and "\n" not in st, st
    h.push("m2", [dict(big, mtu=1500)])
    assert h.wait_gen("m2") == {"big": "ok"}
    assert links(h.ns)["cvnv2"]["mtu"] == 1500


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_vlan_without_a_datapath_refused(host):
    """An agent that may not load eBPF programs (CAP_BPF and CAP_SYS_ADMIN
    dropped, as in a container without them): on a kernel without 802.1Q
    it has no VLAN datapath at all, and the network says so in one line
    naming both causes, with nothing made on the uplink (no veth, no
    clsact); where the kernel has 802.1Q that is used and eBPF is not
    needed. Guards the datapath choice in src/net/netapply.c net_vlan()
    and net_vlan_ebpf()'s refusal (netbpf_probe before anything is made)."""
    h = host
    qdiscs = tc_qdiscs(h.ns, "up0")
    h.push("n1", [VLAN])
    h.start_agent(wrap=["setpriv", "--bounding-set", "-bpf,-sys_admin",
                        "--inh-caps", "-bpf,-sys_admin"])
    st = h.wait_gen("n1")["vl"]
    if VLAN_DP == "8021q":
        assert st == "ok", st
        assert h.report()["net_datapath"] == {"vl": "8021q"}
        return
    assert st.startswith("cannot realize VLAN 100 on host h1: no 802.1Q "
                         "support in the kernel, and eBPF programs do not "
                         "load there ("), st
    assert "\n" not in st
    assert h.report()["net_datapath"] == {}
    ln = links(h.ns)
    assert "cvnv2" not in ln and "cvnq2" not in ln
    assert tc_qdiscs(h.ns, "up0") == qdiscs and \
        tc_filters(h.ns, "up0") == []


def test_vlan_removed_while_the_agent_was_down(host):
    """A VLAN network deleted while its host's agent was stopped: the
    agent that comes back removes its links, its tc filters and their
    programs (the saved payload it starts from still has the network),
    and leaves an operator's filter on the uplink and the qdiscs as they
    were. Guards src/net/netapply.c net_reconcile ->
    src/net/netbpf.c netbpf_reconcile (the uplink filter: nothing else
    names it once the network is gone) and net_vlan_filter_wanted."""
    h = host
    foreign = add_foreign_filter(h.ns)
    qdiscs = tc_qdiscs(h.ns, "up0")
    h.push("d1", [VLAN])
    h.start_agent()
    assert h.wait_gen("d1") == {"vl": "ok"}
    progs = [f[3] for d in ("up0", "cvnq2") if d in links(h.ns)
             for f in tc_filters(h.ns, d) if f[3]]
    assert len(progs) == (2 if VLAN_DP == "ebpf" else 0), progs
    h.stop_agent()
    h.push("d2", [])
    h.start_agent()
    assert h.wait_gen("d2") == {}
    ln = links(h.ns)
    assert "cvnv2" not in ln and "cvnq2" not in ln and "cvnb2" not in ln
    assert tc_filters(h.ns, "up0") == foreign
    assert tc_qdiscs(h.ns, "up0") == qdiscs
    # A deleted filter's program goes after an RCU grace period
    # (cls_bpf's tcf_queue_work): milliseconds; 5 s for a loaded machine.
    wait_for(lambda: not [p for p in progs if bpf_prog_exists(p)], 5,
             "the VLAN programs %r to leave the kernel" % progs)
    assert bpf_fds(h.agent) == []
