"""The watchdog stand-in of the integration clusters (docs/testing.md).

Every agent a Cluster starts gets `--watchdog unix:BASE/wd/HOST.sock`:
its lease keeper pets this stand-in instead of a device, so the host is
fence=watchdog for the manager (docs/ha.md) and no test ever arms a real
/dev/watchdog (which `--watchdog auto`, the agent's default, would open
on a machine that has one, and which would reset the machine).

One thread per cluster reads the datagrams (docs/keeper.md): `pet W`
arms the host with the deadline now + W ms, `disarm` (a keeper that
leaves on purpose) stops watching it. It drains every socket before it
looks at deadlines, so a stand-in that was itself starved never sees an
expiry the keeper did not cause. A deadline that passes means the host's
keeper stopped petting while it was alive (a fence it could not confirm,
or a decision loop late by W/2), or died and was not replaced within W:
a real watchdog would reset the host there. That is a problem for the
test (harness.add_problem), unless the test said the host goes down
(forget(), which Cluster.crash_host-style helpers call). The stand-in
resets nothing itself, unless a test gave it what a reset of that host
is (on_expiry[host] = fn: the fault suite's reset kills every process of
the host and its storage client, test_faults.py); then an expiry calls
fn(host) in a thread of its own and is no problem.
"""

import os
import select
import socket
import threading
import time

import harness

TICK_S = 0.02


class Watchdogs:
    def __init__(self, directory, label):
        self.dir = directory
        self.label = label
        os.makedirs(directory, exist_ok=True)
        self.lock = threading.Lock()
        self.hosts = {}         # name -> _Host
        self.expiries = []      # (host, last_pet, late_ms)
        # host -> fn(host): what an expiry does instead of failing the
        # test (the fault suite resets the host: test_faults.py).
        self.on_expiry = {}
        self.wake_r, self.wake_w = os.pipe()
        self.quit = False
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="watchdog stand-in")
        self.thread.start()

    def spec(self, host):
        """The --watchdog argument for host's agent; pets count again from
        now on (after a forget())."""
        with self.lock:
            h = self.hosts.get(host)
            if h is None:
                h = self.hosts[host] = _Host(host, os.path.join(
                    self.dir, host + ".sock"))
                os.write(self.wake_w, b"x")
            h.forgotten = None
            return "unix:" + h.path

    def forget(self, host, why):
        """host goes down on the test's purpose (why): disarmed, and its
        pets are ignored until its agent is started again (spec())."""
        with self.lock:
            h = self.hosts.get(host)
            if h is not None:
                h.armed, h.deadline, h.forgotten = False, None, why

    def status(self, host):
        with self.lock:
            h = self.hosts[host]
            return {"armed": h.armed, "pets": h.pets, "last_pet":
                    h.last_pet, "disarms": h.disarms}

    def stop(self):
        self.quit = True
        os.write(self.wake_w, b"x")
        self.thread.join(5)
        for h in self.hosts.values():
            h.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _run(self):
        while not self.quit:
            with self.lock:
                socks = {h.sock.fileno(): h for h in self.hosts.values()}
            r, _, _ = select.select([self.wake_r] + list(socks), [], [],
                                    TICK_S)
            if self.wake_r in r:
                os.read(self.wake_r, 64)
            now = time.monotonic()
            resets = []
            with self.lock:
                for fd in r:
                    if fd in socks:
                        socks[fd].drain(now)
                for h in self.hosts.values():
                    if not h.armed or now < h.deadline:
                        continue
                    h.armed = False
                    late = (now - h.deadline) * 1000.0
                    self.expiries.append((h.name, h.last_pet, late))
                    if h.name in self.on_expiry:
                        resets.append((self.on_expiry[h.name], h.name))
                        continue
                    harness.add_problem(
                        "watchdog stand-in of %s: host %s's lease keeper "
                        "stopped petting: no pet for %.0f ms, its watchdog "
                        "timeout is %d ms; a real watchdog resets the host "
                        "here (a test that takes a host down says so: "
                        "Watchdogs.forget)" % (self.label, h.name,
                                               (now - h.last_pet) * 1000.0,
                                               h.timeout_ms))
            # Outside the lock (a reset forgets the host) and this loop
            # (a reset takes a while): the other hosts stay watched.
            for fn, name in resets:
                threading.Thread(target=fn, args=(name,), daemon=True,
                                 name="watchdog reset of " + name).start()


class _Host:
    def __init__(self, name, path):
        self.name = name
        self.path = path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.armed = False
        self.deadline = None
        self.last_pet = None
        self.timeout_ms = 0
        self.pets = 0
        self.disarms = 0
        self.forgotten = None

    def drain(self, now):
        while True:
            try:
                msg = self.sock.recv(256)
            except BlockingIOError:
                return
            words = msg.decode(errors="replace").split()
            if self.forgotten is not None:
                continue
            if len(words) == 2 and words[0] == "pet" and words[1].isdigit():
                self.timeout_ms = int(words[1])
                self.armed, self.last_pet = True, now
                self.deadline = now + self.timeout_ms / 1000.0
                self.pets += 1
            elif words == ["disarm"]:
                self.armed, self.deadline = False, None
                self.disarms += 1
            else:
                harness.add_problem("watchdog stand-in: host %s sent %r, "
                                    "neither 'pet W' nor 'disarm'"
                                    % (self.name, msg))
