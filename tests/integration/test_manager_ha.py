"""Manager HA on PostgreSQL (docs/operations.md): a leader that loses its
database connection stops leading within its lease (3 s) and then stops,
with a failure status so systemd's Restart=on-failure brings it back as a
standby; the standby takes over only once that lease has run out; a
leader stopped cleanly ends its lease. Two managers never act as leader
at once. The network between a manager and PostgreSQL is a TCP proxy in
this process that can stall (forward nothing, keep the connections: a
network that drops every packet) and cut (reset every connection). Runs
in the PostgreSQL pass only (manager HA needs PostgreSQL)."""

import json as jsonlib
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cvirt import Daemon, boot_ids, free_port, qemu_pid, wait_for

pytestmark = pytest.mark.pg_only     # manager HA needs PostgreSQL

CMDLINE = "console=ttyS0 cvirt.tick=1"
STANDBY_APP = "cvirt-standby"


def role(url):
    """The role a manager reports, or None when it does not answer."""
    try:
        with urllib.request.urlopen(url + "/api/v1/health", timeout=1) as r:
            return jsonlib.loads(r.read()).get("role")
    except Exception:  # noqa: BLE001 - down or restarting: no role
        return None


class RoleSampler:
    """Asks each manager for its role every 20 ms, one thread per manager:
    samples[i] holds (sent, answered, role) for urls[i] (monotonic s)."""

    def __init__(self, urls):
        self.urls = urls
        self.samples = [[] for _ in urls]
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(len(urls))]
        for t in self.threads:
            t.start()

    def run(self, i):
        while not self.stop_ev.is_set():
            sent = time.monotonic()
            r = role(self.urls[i])
            self.samples[i].append((sent, time.monotonic(), r))
            time.sleep(0.02)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join()
        return self.samples

    def check_handover(self, old, new):
        """Asserts manager `old` never answered "leader" to a request sent
        after manager `new` had answered "leader" (so no moment had both
        leading); returns (the send time of old's last "leader" answer,
        the answer time of new's first)."""
        old_led = [s for s, _, r in self.samples[old] if r == "leader"]
        new_led = [a for _, a, r in self.samples[new] if r == "leader"]
        assert old_led and new_led, self.samples
        both = [s for s in old_led if s > new_led[0]]
        assert not both, "both managers led (%d samples, %.2f s after the " \
            "new leader's first answer)" % (len(both), both[-1] - new_led[0])
        return old_led[-1], new_led[0]


class Proxy:
    """A TCP proxy from 127.0.0.1:port to PostgreSQL. stall(): nothing more
    is forwarded either way and every connection stays open (new ones are
    accepted and stall too), as when the network drops every packet.
    cut(): every connection is reset and forwarding resumes (a network
    back after both ends gave up). upstream_ports(): the local ports of its
    connections to the server (pg_stat_activity.client_port)."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.lock = threading.Lock()
        self.pairs = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                continue
            u.settimeout(None)
            with self.lock:
                self.pairs.append((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b),
                                 daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                self.flowing.wait()
                if not select.select([a], [], [], 0.05)[0]:
                    continue
                if not self.flowing.is_set():
                    continue    # stalled while waiting: leave it queued
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except (OSError, ValueError):   # ValueError: closed by cut()
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def upstream_ports(self):
        with self.lock:
            ports = []
            for _, u in self.pairs:
                try:
                    ports.append(u.getsockname()[1])
                except OSError:
                    pass
            return ports

    def stall(self):
        self.flowing.clear()

    def cut(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
                s.close()
        self.flowing.set()

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()


def status_of(url, path):
    """The HTTP status of GET url+path (None: no answer within 2 s)."""
    try:
        with urllib.request.urlopen(url + path, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:  # noqa: BLE001 - no answer
        return None


def psql(cl, sql):
    p = subprocess.run(["psql", "-At", cl.db_url, "-c", sql],
                       capture_output=True, text=True, timeout=30,
                       env=cl.env)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.mark.parametrize("server_drops", [False, True],
                         ids=["stall", "stall-server-drops"])
def test_leader_behind_a_stalled_network(make_cluster, server_drops):
    """Manager 1 leads; manager 2 reaches PostgreSQL through a proxy.
    Manager 1 stopped cleanly (SIGTERM) ends its lease (cvirt_leader's
    until_ms is 0 once it has exited) and manager 2 leads within 2 s (a
    poll interval, maybe a reconnect after its pause; less than the 3 s
    lease it would wait out otherwise). Manager 1 starts again as the standby.
    Then the proxy stalls: manager 2 stops leading (role standby, 503 on
    the API) at most 3 s (its lease) after the stall, and manager 1 leads
    only after that; no request finds both leading. "stall": PostgreSQL
    ends the stalled session after 3 s idle, so manager 1 gets the lock
    then and leads within 8 s of the stall (3 s idle, a 500 ms poll, 4.5 s
    of slack for this shared 2-core machine). "stall-server-drops": the
    server ends manager 2's sessions at once (as when it sees the
    connections reset): manager 1 gets the lock within a poll but must
    wait out manager 2's lease. Once the proxy cuts the connections,
    manager 2 exits with status 1 ("lost the leader lock").

    Guards src/manager/ha.c: ha_is_leader() (no leading HA_LEASE_MS after
    the last renewal was sent), ha_standby_round() with ha_lease_left()
    (lead only once the recorded lease is over by the server's clock),
    ha_connect() (idle_session_timeout: the server frees a stalled
    leader's lock), ha_exec() (no lock query waits forever), ha_close()
    (a clean stop ends the lease) and src/manager/manager.c
    manager_main() (exit 1 after ha_lost_lock())."""
    cl = make_cluster(hosts=())
    url1 = cl.url
    wait_for(lambda: role(url1) == "leader", 10, "manager 1 to lead")
    srv = urllib.parse.urlsplit(os.environ["CVIRT_TEST_PG"])
    pg_port = int(urllib.parse.parse_qs(srv.query).get("port",
                                                       [srv.port])[0])
    proxy = Proxy("127.0.0.1", pg_port)
    port2 = free_port()
    url2 = "http://127.0.0.1:%d" % port2
    m2 = Daemon("manager2", [cl.bin, "manager", "--data",
                             os.path.join(cl.base, "m2"), "--listen",
                             "127.0.0.1:%d" % port2, "--db",
                             "postgresql://postgres@127.0.0.1:%d%s"
                             % (proxy.port,
                                urllib.parse.urlsplit(cl.db_url).path)],
                os.path.join(cl.logdir, "manager2.log"), cl.env)
    m2.start()
    sampler = None
    try:
        wait_for(lambda: role(url2) == "standby", 20, "manager 2 standby")
        # A clean stop ends the lease (manager 2 paused meanwhile, so the
        # record is read before anyone renews it): the standby leads at
        # once.
        m2.signal(signal.SIGSTOP)
        try:
            assert cl.manager.stop() == 0, cl.manager.log_tail()
            assert psql(cl, "SELECT until_ms FROM cvirt_leader") == "0"
        finally:
            m2.signal(signal.SIGCONT)
        t0 = time.monotonic()
        wait_for(lambda: role(url2) == "leader", 10, "manager 2 to lead")
        assert time.monotonic() - t0 < 2.0, "manager 2 waited out a lease"
        cl.start_manager(lead=False)
        wait_for(lambda: role(url1) == "standby", 10, "manager 1 standby")

        sampler = RoleSampler([url1, url2])
        time.sleep(1)
        m2.declare_exit("cut off from its database, it stops with status 1 "
                        "(checked below)")
        t_stall = time.monotonic()
        proxy.stall()
        if server_drops:
            ports = proxy.upstream_ports()
            assert int(psql(cl, "SELECT count(pg_terminate_backend(pid)) "
                            "FROM pg_stat_activity WHERE client_port IN "
                            "(%s)" % ",".join(map(str, ports)))) >= 2
        wait_for(lambda: role(url1) == "leader", 8, "manager 1 to lead")
        # The stalled leader answers, as a standby.
        assert role(url2) == "standby"
        assert status_of(url2, "/api/v1/vms") == 503
        time.sleep(0.5)
        sampler.stop()
        last_old, first_new = sampler.check_handover(1, 0)
        sampler = None
        assert last_old - t_stall < 3.0, last_old - t_stall
        if server_drops:
            assert "the last leader's lease runs" in \
                cl.manager.log_tail(), cl.manager.log_tail()
            # It held the lock early and waited out the lease.
            assert first_new - t_stall > 2.0, first_new - t_stall

        proxy.cut()
        assert m2.wait(15), "manager 2 did not stop once cut off"
        assert m2.proc.returncode == 1, m2.log_tail()
        assert "lost the leader lock" in m2.log_tail()
        assert role(url1) == "leader"
        assert any(e["kind"] == "manager.takeover"
                   for e in cl.cli("event", "list", json=True))
    finally:
        if sampler is not None:
            sampler.stop()
        m2.stop()
        proxy.close()


def test_leader_that_loses_its_database_stops(make_cluster, guest):
    """Every PostgreSQL session of the leader is terminated (the server
    saw its connections break): the leader stops with status 1 within
    3 s (its next lock check, every 500 ms), the standby takes over (after
    the rest of the lease: within 10 s, generous for this shared machine),
    no request finds both leading, and the VM under the agent runs on
    untouched (same QEMU, one boot).

    Guards src/manager/ha.c ha_loop() (the leader's renewal fails once
    its lock is gone: it stops, and ha_lost_lock() makes
    src/manager/manager.c manager_main() exit 1) and the lease
    (ha_is_leader(), ha_standby_round())."""
    cl = make_cluster(hosts=())
    url1 = cl.url
    wait_for(lambda: role(url1) == "leader", 10, "manager 1 to lead")
    port2 = free_port()
    url2 = "http://127.0.0.1:%d" % port2
    m2 = Daemon("manager2", [cl.bin, "manager", "--data",
                             os.path.join(cl.base, "m2"), "--listen",
                             "127.0.0.1:%d" % port2, "--db",
                             cl.db_url + "&application_name=" + STANDBY_APP],
                os.path.join(cl.logdir, "manager2.log"), cl.env)
    m2.start()
    sampler = None
    try:
        wait_for(lambda: role(url2) == "standby", 20, "manager 2 standby")
        assert role(url1) == "leader"
        cl.url = url1 + "," + url2
        cl.start_agent("h1")
        cl.cli("vm", "create", "mh1", "--cpus", 1, "--memory", 128,
               "--kernel", guest.kernel, "--initrd", guest.initrd,
               "--cmdline", CMDLINE)
        cl.cli("vm", "start", "mh1")
        cl.wait_serial("mh1", "cvirt-guest: tick 1", 60)
        uuid = cl.vm("mh1")["uuid"]
        pid = qemu_pid(uuid)

        sampler = RoleSampler([url1, url2])
        time.sleep(0.3)
        cl.manager.declare_exit("its database sessions are terminated: it "
                                "stops with status 1 (checked below)")
        t0 = time.monotonic()
        p = subprocess.run(
            ["psql", "-At", cl.db_url, "-c",
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = current_database() AND pid <> "
             "pg_backend_pid() AND application_name <> '%s'" % STANDBY_APP],
            capture_output=True, text=True, timeout=30, env=cl.env)
        assert p.returncode == 0, p.stderr
        assert int(p.stdout.strip()) >= 2, p.stdout   # its lock's and its own
        # It notices at its next lock check (every 500 ms) and stops.
        assert cl.manager.wait(10), "the leader did not stop"
        stopped = time.monotonic() - t0
        assert cl.manager.proc.returncode == 1, cl.manager.log_tail()
        assert "lost the leader lock" in cl.manager.log_tail()
        wait_for(lambda: role(url2) == "leader", 15, "manager 2 to lead")
        took = time.monotonic() - t0
        time.sleep(0.3)
        sampler.stop()
        sampler.check_handover(0, 1)
        sampler = None
        assert stopped < 3 and took < 10, (stopped, took)

        cl.url = url2
        cl.wait_host("h1", "up", 20)
        v = cl.wait_state("mh1", "running", 10)
        assert v["pid"] == pid and qemu_pid(uuid) == pid, v
        assert len(boot_ids(cl.serial("mh1"))) == 1
        assert any(e["kind"] == "manager.takeover"
                   for e in cl.cli("event", "list", json=True))
        cl.cli("vm", "stop", "mh1", "--force")
        assert cl.vm("mh1")["state"] == "stopped"
    finally:
        if sampler is not None:
            sampler.stop()
        assert m2.stop() == 0
        cl.url = url1
