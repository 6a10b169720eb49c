"""Clusters whose manager and hosts each live in their own network
namespace, joined by a bridge in a switch namespace: the manager <->
agent traffic and migration streams cross real (virtual) links. Every
address is inside namespaces this helper creates and deletes."""

import json as jsonlib
import os
import random
import signal
import subprocess

from cvirt import Cluster, CvirtError

SUBNET = "10.231.0"


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + [str(a) for a in args], capture_output=True,
                       text=True)
    if check and p.returncode != 0:
        raise CvirtError("ip %s: %s" % (" ".join(map(str, args)), p.stderr))
    return p


def kill_netns(ns):
    """SIGKILL to every process of network namespace ns, until a listing
    shows none not killed yet (a reset: nothing of the host runs on).
    Returns their pids. One listing was not enough: it left a keeper
    alive that the agent started between the listing and its own kill
    (the old keeper killed first), and that keeper went on renewing and
    petting after the "reset". A process that got SIGKILL forks no more,
    so a listing after the kills sees every child forked before them."""
    killed = []
    for _ in range(100):
        p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                           text=True)
        new = [int(x) for x in p.stdout.split() if int(x) not in killed]
        if not new:
            return killed
        for pid in new:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        killed += new
    raise CvirtError("netns %s: processes still appear after 100 rounds "
                     "of SIGKILL" % ns)


class NetnsCluster(Cluster):
    """A Cluster with one namespace per role ("manager", each host)."""

    def __init__(self, hosts, **kw):
        super().__init__(**kw)
        self.tag = "cv%05d" % random.randint(0, 99999)
        self.ns = {}
        self.ips = {}
        self.nsnames = []
        try:
            self._setup(["manager"] + list(hosts))
        except Exception:
            self._teardown()
            raise

    def _setup(self, roles):
        sw = self.tag + "-sw"
        _ip("netns", "add", sw)
        self.nsnames.append(sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for i, role in enumerate(roles):
            ns = "%s-%s" % (self.tag, role)
            _ip("netns", "add", ns)
            self.nsnames.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            a, b = "%sa%d" % (self.tag, i), "%sb%d" % (self.tag, i)
            _ip("link", "add", a, "netns", ns, "type", "veth", "peer", "name",
                b, "netns", sw)
            self.ips[role] = "%s.%d" % (SUBNET, i + 1)
            self.ns[role] = ns
            _ip("-n", ns, "addr", "add", self.ips[role] + "/24", "dev", a)
            _ip("-n", ns, "link", "set", a, "up")
            _ip("-n", sw, "link", "set", b, "master", "br0")
            _ip("-n", sw, "link", "set", b, "up")

    def addr(self, role):
        return self.ips[role]

    def wrap(self, role, argv):
        ns = self.ns["manager" if role == "client" else role]
        return self.host_mounts(role) + ["ip", "netns", "exec", ns] + \
            list(argv)

    def http(self, method, path, body=None, token=True, auth=True,
             headers=None, timeout=10):
        argv = ["curl", "-s", "-X", method, "-w", "\n%{http_code}",
                "--max-time", str(timeout)]
        if auth and token:
            tok = self.token() if token is True else token
            argv += ["-H", "Authorization: Bearer " + tok]
        data = None
        if body is not None:
            data = jsonlib.dumps(body) if isinstance(body, (dict, list)) \
                else body
            argv += ["-H", "Content-Type: application/json",
                     "--data-binary", "@-"]
        p = subprocess.run(self.wrap("client", argv + [self.url + path]),
                           input=data or "", capture_output=True, text=True)
        text, _, code = p.stdout.rpartition("\n")
        try:
            status = int(code)
        except ValueError:
            status = 0
        try:
            return status, jsonlib.loads(text)
        except ValueError:
            return status, text

    def crash_host(self, role):
        """Kills every process of the host at once (agent, keeper, QEMUs);
        the agent's end is declared (Daemon.declare_exit)."""
        self.agents[role].declare_exit("its host crashed (crash_host)")
        if self.watchdogs is not None:
            self.watchdogs.forget(role, "its host crashed (crash_host)")
        killed = kill_netns(self.ns[role])
        self.agents[role].wait(10)
        return killed

    def cut(self, role, up=False):
        """Takes the role's only network link down (or up again)."""
        i = list(self.ns).index(role)
        _ip("-n", self.ns[role], "link", "set", "%sa%d" % (self.tag, i),
            "up" if up else "down")

    def _teardown(self):
        for ns in reversed(self.nsnames):
            _ip("netns", "del", ns, check=False)
        self.nsnames = []

    def stop(self):
        try:
            super().stop()
        finally:
            self._teardown()


def start_netns_cluster(request, bin, hosts, memory_mib=None):
    """A NetnsCluster of hosts, started (each agent offering memory_mib
    MiB when given) and stopped when request's scope ends: what the
    multi-host modules' fixtures share."""
    cl = NetnsCluster(hosts, bin=bin)
    request.addfinalizer(cl.stop)
    extra = None
    if memory_mib is not None:
        extra = {h: ["--memory", str(memory_mib)] for h in hosts}
    cl.start(hosts=hosts, agent_extra=extra)
    return cl
