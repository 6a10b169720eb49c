"""Helpers for cvirt's integration tests: a throwaway cluster of real daemons.

A Cluster runs `cvirt manager` and one or more `cvirt agent` processes on
127.0.0.1 with every host sharing one storage directory, drives them through
the `cvirt` CLI, and on stop() leaves nothing running: daemons get SIGTERM,
then SIGKILL, and every QEMU process of this cluster's VMs is killed.
"""

import base64
import fcntl
import hashlib
import json as jsonlib
import os
import random
import re
import select
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import termios
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import harness
from watchdogs import Watchdogs

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# CVIRT_GUEST_DIR: another build of the test guest (vmlinuz, vmlinux,
# initrd.img).
GUEST_DIR = os.environ.get("CVIRT_GUEST_DIR") or os.path.join(
    REPO, "tests", "guest", "out")
# The kernel the tests boot: the uncompressed ELF, entered at its PVH
# entry point (half the CPU of a bzImage boot under TCG: build-guest.sh).
# OVMF boots only the bzImage (GUEST_BZIMAGE).
GUEST_KERNEL = os.path.join(GUEST_DIR, "vmlinux")
GUEST_BZIMAGE = os.path.join(GUEST_DIR, "vmlinuz")
GUEST_INITRD = os.path.join(GUEST_DIR, "initrd.img")
# The networked-storage pass (tests/run, docs/testing.md): every shared
# storage domain of a Cluster lives on CVIRT_TEST_SHARED, the suite's own
# mount of a shared filesystem (tests/gluster-server start). With
# CVIRT_TEST_SHARED_CLIENT, a command that mounts one more client of that
# filesystem at the path it is given and prints the client's pid
# ("tests/gluster-server mount DIR"), each host has a client of its own:
# its agent (and so its QEMUs and lease keeper) runs in a mount namespace
# of its own where that client is mounted over CVIRT_TEST_SHARED. Hosts
# then see one another's writes through the filesystem, as separate
# machines do, at the same path; the test reads them through the suite's
# mount, as one more machine.
SHARED = os.environ.get("CVIRT_TEST_SHARED") or None
SHARED_CLIENT = os.environ.get("CVIRT_TEST_SHARED_CLIENT") or None
UUID_RE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BOOT_ID_RE = re.compile(r"cvirt-guest: boot-id (" + UUID_RE.pattern + ")")
TICK_RE = re.compile(r"cvirt-guest: tick (\d+)")


def cvirt_bin():
    """The cvirt binary under test: $CVIRT_BIN or build/cvirt."""
    return os.environ.get("CVIRT_BIN") or os.path.join(REPO, "build", "cvirt")


class NotYet(Exception):
    """Raised by a wait_for condition: what it waits for is not there yet
    (a VM not listed yet, a ticket the server hands out again later).
    wait_for tries again; any other exception ends the wait at once."""


# What the CLI says when a daemon that is (re)starting cannot answer yet:
# the manager does not listen yet (src/common/httpc.c's words for a
# refused connect), or it exited with the request in flight (a test that
# has it exit on purpose), or, on PostgreSQL, it is a standby until the
# lease of the manager before it ran out (src/manager/ha.c); the manager
# relays a call to an agent that does not listen yet, or that has not
# registered yet (src/manager/agentc.c, src/agent/agent_api.c).
_STARTING_RE = re.compile(
    r"cvirt: (cannot reach the manager at \S+: (cannot connect to \S+ port "
    r"\d+: Connection refused|no answer: Connection reset by peer)"
    r"|this manager is a standby; ask the leader"
    r"|host \S+ is unreachable: cannot connect to \S+ port \d+: "
    r"Connection refused"
    r"|host \S+ is starting: its agent has not registered with the "
    r"manager yet)$", re.M)


def refused(e):
    """True when e says a daemon refused a connection because it is not
    up yet: a socket call's ConnectionRefusedError (also inside urllib's
    URLError), or a CvirtError from the CLI with one of the lines of
    _STARTING_RE on stderr."""
    if isinstance(e, urllib.error.URLError) and not \
            isinstance(e, urllib.error.HTTPError):
        e = e.reason
    if isinstance(e, ConnectionRefusedError):
        return True
    return isinstance(e, CvirtError) and \
        _STARTING_RE.search(str(e)) is not None


def wait_for(fn, timeout, what, interval=0.1, starting=False):
    """Calls fn until it returns something truthy and returns that.

    Only "not yet" is tried again: fn returning a falsy value or raising
    NotYet, and, with starting=True (the caller has just started or
    restarted the daemon fn talks to, which may not listen or have
    registered yet), a refusal refused() names. Anything else fn raises
    (an assert, an HTTP 5xx turned into CvirtError, a KeyError on a JSON
    error body, DaemonExited) propagates at once. On timeout raises
    AssertionError naming `what` and the last value or "not yet" seen.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = "last value: %r" % (value,)
        except NotYet as e:
            last = "not yet: %s" % (e,)
        except Exception as e:  # noqa: BLE001 - only a refusal is retried
            if not (starting and refused(e)):
                raise
            last = "connection refused: %s" % (e,)
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s (%s)"
                                 % (timeout, what, last))
        time.sleep(interval)


def expect_status(reply, want=200, pending=()):
    """The body of reply, a (status, body) pair from Cluster.http, when
    the status is want; NotYet when it is one of pending (what a wait_for
    condition sees until the awaited state is there: 404 for an object
    not listed yet, say); CvirtError for any other status."""
    status, body = reply
    if status == want:
        return body
    if status in pending:
        raise NotYet("HTTP %d: %r" % (status, body))
    raise CvirtError("HTTP %d (wanted %d): %r" % (status, want, body))


# Test daemons listen on ports below the kernel's ephemeral range
# (32768-60999 by default), so no outgoing connection takes one between
# the moment it is picked and the daemon's bind; each pytest-xdist worker
# (tests/run runs two) hands out its own share of the range, in turn.
PORT_RANGE = (20000, 32768)
_port_next = None


def _port_share():
    n = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    n = int(n) if n.isdigit() and int(n) > 0 else 1
    w = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    i = int(w) % n if w.isdigit() else 0
    span = (PORT_RANGE[1] - PORT_RANGE[0]) // n
    return PORT_RANGE[0] + i * span, span


def _port_free(p):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
    return True


def free_ports(count=1):
    """The first of `count` consecutive TCP ports on 127.0.0.1 that were
    free a moment ago and that this process has not handed out lately."""
    global _port_next
    lo, span = _port_share()
    if _port_next is None or not lo <= _port_next < lo + span - count:
        _port_next = random.randrange(lo, lo + span - count)
    for _ in range(span):
        p = _port_next
        _port_next = p + count
        if _port_next >= lo + span - count:
            _port_next = lo
        if all(_port_free(p + k) for k in range(count)):
            return p
    raise RuntimeError("no %d free port(s) in %d-%d" % (count, lo,
                                                       lo + span - 1))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)


def free_port_pair():
    """A port P with P and P+1 free on 127.0.0.1 (cvirt up's agent listens
    on the manager's port + 1)."""
    return free_ports(2)


def cpu_has_virt():
    """True when /proc/cpuinfo reports vmx or svm."""
    with open("/proc/cpuinfo") as f:
        return re.search(r"^flags\s*:.*\b(vmx|svm)\b", f.read(), re.M) \
            is not None


def expected_accel():
    return "kvm" if cpu_has_virt() and os.path.exists("/dev/kvm") else "tcg"


def proc_cmdline(pid):
    """argv of a process as a list, or None when it is gone or a zombie."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"



def _run_checked(argv):
    """Runs argv; its stdout, or CvirtError naming it with its stderr."""
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise CvirtError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                              p.stderr.strip()))
    return p.stdout


def kernel_has_vlan():
    """CONFIG_VLAN_8021Q: some kernels lack it (the development and CI
    machines' kernel does): VLAN networks cannot be realized there."""
    p = subprocess.run(["unshare", "-n", "sh", "-c",
                        "ip link add name t0 type veth peer name t1 && "
                        "ip link add link t0 name t0.5 type vlan id 5"],
                       capture_output=True)
    return p.returncode == 0


def qemu_pids(uuid=None):
    """Pids of live processes with `-uuid <uuid>` on their command line
    (any -uuid when uuid is None) as {pid: uuid}."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = proc_cmdline(int(entry))
        if not argv:
            continue
        for i, a in enumerate(argv[:-1]):
            if a == "-uuid" and (uuid is None or argv[i + 1] == uuid):
                found[int(entry)] = argv[i + 1]
    return found


def qemu_pid(uuid):
    """The one live QEMU pid of a VM, or None."""
    pids = sorted(qemu_pids(uuid))
    return pids[0] if pids else None


class Sampler:
    """Counts a VM's QEMU processes every 50 ms in a thread; stop() gives
    the most seen at once: 1 for a VM that ran all along, never twice
    (and was seen running at all). .pids: every pid seen."""

    def __init__(self, uuid):
        self.uuid, self.max, self.pids = uuid, 0, set()
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop_ev.is_set():
            found = qemu_pids(self.uuid)
            self.max = max(self.max, len(found))
            self.pids |= set(found)
            time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.t.join()
        return self.max


def boot_ids(serial):
    """Boot ids in order of appearance in a serial transcript."""
    return BOOT_ID_RE.findall(serial)


def ticks(serial):
    """The test guest's ticks (cvirt.tick=1: one a second) in a serial
    transcript, in order."""
    return [int(n) for n in TICK_RE.findall(serial)]


def last_tick(serial):
    """The last tick in a serial transcript, 0 before the first."""
    t = ticks(serial)
    return t[-1] if t else 0


def ws_upgrade(host, port, path, timeout=10, source=None):
    """Opens a websocket by hand: sends the upgrade request for path to
    host:port (from address source, when given) and reads the reply's
    head. Returns the socket (the caller closes it), the head and the
    bytes that came after it."""
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(source, 0) if source
                                 else None)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n"
               % (path, host, port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, head, rest


class Console:
    """`cvirt vm console NAME` as a user runs it: on a pseudo-terminal
    that is its controlling terminal (the client puts it in raw mode).
    out holds all it printed, last when it last printed (monotonic)."""

    def __init__(self, cl, name):
        self.master, slave = os.openpty()

        def ctty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            self.proc = subprocess.Popen(
                [cl.bin, "--url", cl.url, "--token-file", cl.token_file,
                 "vm", "console", name], stdin=slave, stdout=slave,
                stderr=slave, env=cl.env, preexec_fn=ctty, close_fds=True)
        finally:
            os.close(slave)
        self.out = bytearray()
        self.last = time.monotonic()

    def pump(self, seconds, until=None):
        """Reads what the client prints for up to seconds: True once
        `until` is in all it printed, or (until None) when it is still
        running after seconds; False when it exits first or seconds pass
        without `until`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until in self.out:
                return True
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:      # EIO: the client has exited
                    chunk = b""
                if not chunk:
                    break
                self.out.extend(chunk)
                self.last = time.monotonic()
            elif self.proc.poll() is not None:
                break
        else:
            return until is None or until in self.out
        return until is not None and until in self.out

    def write(self, data):
        os.write(self.master, data)

    def detach(self, timeout=10):
        """Ctrl-] as a user types it; the client's exit code."""
        self.write(b"\x1d")
        return self.proc.wait(timeout=timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master is not None:
            os.close(self.master)
            self.master = None


class CvirtError(AssertionError):
    """A cvirt command that should have worked did not."""


class DaemonExited(CvirtError):
    """A daemon the test needs has exited (wait_for gives up at once)."""


class Daemon:
    """One daemon process and its log file.

    A daemon that runs the cvirt binary (or any, with checked=True) is in
    the harness's net (harness.py): its sanitizer reports go to
    LOG-WITHOUT-.log.san.PID, its log is read for crash lines after every
    test phase, and its end is judged: it must exit 0, and only when asked
    (SIGTERM), unless the test declared otherwise (kill(), declare_exit()).
    """

    def __init__(self, name, argv, log_path, env, checked=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc = None
        self.run = None         # the current harness.Run
        self.log_start = 0      # where this run's lines begin in the log
        if checked is None:
            bin_ = os.path.realpath(cvirt_bin())
            checked = any(os.path.realpath(a) == bin_ for a in argv)
        self.checked = checked

    @property
    def san_prefix(self):
        """Sanitizer reports of this daemon (and of the processes it
        forks) land in san_prefix.PID."""
        return os.path.splitext(self.log_path)[0] + ".san"

    def start(self):
        _watchdog_check(self.argv)
        log = open(self.log_path, "ab")
        self.log_start = log.tell()
        log.write(("---- %s: %s\n" % (time.strftime("%H:%M:%S"),
                                      " ".join(self.argv))).encode())
        log.flush()
        env = self.env
        if self.checked:
            env = harness.sanitizer_env(env, self.san_prefix, self.name)
            harness.watch_log(self.log_path, self.name)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=env, start_new_session=True)
        log.close()
        if self.checked:
            self.run = harness.Run(self.name, self.proc, self.log_path)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        """Sends sig. SIGKILL is a deliberate kill (see kill()); after
        SIGTERM (or any other signal) the daemon must exit 0."""
        if sig == signal.SIGKILL:
            self.kill(sig)
            return
        if self.running():
            if self.run is not None and sig == signal.SIGTERM:
                self.run.termed = True
            self.proc.send_signal(sig)

    def kill(self, sig=None):
        """Kills the daemon on purpose (SIGKILL unless sig): its end is not
        judged (what it wrote before it is)."""
        sig = signal.SIGKILL if sig is None else sig
        self.declare_exit("killed by the test with %s" % (
            signal.Signals(sig).name))
        if self.running():
            self.proc.send_signal(sig)

    def declare_exit(self, why):
        """The test expects this run to end some other way than exit 0 on
        SIGTERM (it checks how itself): refused at start, killed, ..."""
        if self.run is not None:
            self.run.declared = why

    def wait(self, timeout):
        """Waits for exit; True if it exited."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout; returns the exit status
        (the harness fails the test on anything but 0 unless declared)."""
        if self.proc is None:
            return None
        if self.running():
            self.signal(signal.SIGTERM)
            if not self.wait(timeout):
                if self.run is not None:
                    self.run.forced = timeout
                self.proc.kill()
                self.wait(10)
        return self.proc.returncode

    def logged(self, text):
        """True when this run's part of the log has text."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start)
                return text.encode() in f.read()
        except OSError:
            return False

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def _watchdog_check(argv):
    """An agent a test starts names its watchdog: the agent's default,
    auto, would arm a real /dev/watchdog on a machine that has one, and
    the machine would reset when its keeper stops petting."""
    for i, a in enumerate(argv[1:], 1):
        if a == "agent" and os.path.basename(argv[i - 1]).startswith("cvirt"):
            spec = argv[argv.index("--watchdog") + 1] \
                if "--watchdog" in argv else "auto"
            if spec != "none" and not spec.startswith("unix:"):
                raise CvirtError("a test agent runs with --watchdog %s: give "
                                 "it the stand-in (Cluster.start_agent) or "
                                 "none (docs/testing.md)" % spec)


class Cluster:
    """A manager plus agents on 127.0.0.1, all hosts sharing D/storage.

    base: data directory D (kept short: QMP sockets live under it);
    logdir: where daemon logs go (the test's tmp dir).
    """

    # Every Cluster not yet stopped, so failing tests can show their logs.
    active = []

    def __init__(self, base=None, logdir=None, bin=None):
        self.bin = bin or cvirt_bin()
        self.own_base = base is None
        self.base = base or tempfile.mkdtemp(prefix="cvirt-it.", dir="/tmp")
        self.logdir = logdir or os.path.join(self.base, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        # Shared storage domains: under base, or on CVIRT_TEST_SHARED.
        self.shared_root = os.path.join(
            SHARED, os.path.basename(self.base)) if SHARED else self.base
        self.host_mntns = {}      # host -> (namespace file, client pid)
        self.storage = self.shared_dir("storage")
        self.mdir = os.path.join(self.base, "m")
        self.token_file = os.path.join(self.mdir, "admin.token")
        self.port = None
        self.url = None
        self.manager = None
        self.agents = {}          # name -> Daemon
        self.agent_ports = {}     # name -> port (kept across restarts)
        self.agent_extra = {}     # name -> extra argv
        self.host_keys = {}       # name -> key of a host registered by hand
        self.uuids = set()        # every VM uuid this cluster has seen
        self.db_url = None        # this cluster's PostgreSQL database
        self.watchdogs = None     # the hosts' watchdog stand-in
        self.env = self._env()
        Cluster.active.append(self)

    def _env(self):
        """The environment of every command this cluster runs; the
        sanitizer reports of client commands go to LOGDIR/client.san.PID
        (each daemon's own go beside its log, Daemon.start)."""
        env = dict(os.environ)
        for k in ("CVIRT_URL", "CVIRT_TOKEN", "CVIRT_TOKEN_FILE"):
            env.pop(k, None)
        env["HOME"] = self.base
        return harness.sanitizer_env(
            env, os.path.join(self.logdir, "client.san"),
            "client commands of cluster %s" % self.base)

    # ---- daemons ---------------------------------------------------------

    def db_args(self):
        """["--db", URL] when the suite runs on PostgreSQL ($CVIRT_TEST_PG,
        a server URL from tests/pg-server): each cluster gets its own
        database, kept across manager restarts; [] on SQLite."""
        server = os.environ.get("CVIRT_TEST_PG")
        if not server:
            return []
        if self.db_url is None:
            name = "cvirt_" + re.sub(r"[^a-z0-9]", "_",
                                     os.path.basename(self.base).lower())
            p = subprocess.run(
                ["psql", "-q", "-v", "ON_ERROR_STOP=1", server, "-c",
                 'CREATE DATABASE "%s"' % name],
                capture_output=True, text=True, env=self.env)
            if p.returncode != 0:
                raise CvirtError("cannot create database %s: %s"
                                 % (name, p.stderr))
            u = urllib.parse.urlsplit(server)
            self.db_url = urllib.parse.urlunsplit(u._replace(path="/" + name))
        return ["--db", self.db_url]

    def db_rows(self, sql):
        """Rows of one query on this cluster's database (the SQLite file,
        read-only, or psql on PostgreSQL) as lists of strings ("" for
        NULL)."""
        if self.db_url:
            p = subprocess.run(["psql", "-At", "-F", "\x1f", self.db_url,
                                "-c", sql], capture_output=True, text=True,
                               timeout=30, env=self.env)
            if p.returncode != 0:
                raise CvirtError("psql: %s" % p.stderr)
            return [line.split("\x1f") for line in p.stdout.splitlines()]
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(
            self.mdir, "cvirt.db"), uri=True, timeout=10)
        try:
            return [["" if v is None else str(v) for v in row]
                    for row in db.execute(sql)]
        finally:
            db.close()

    def start_manager(self, timeout=20, lead=True):
        """Starts (or restarts) the manager; with lead, waits until it
        leads: on PostgreSQL a manager started after a leader's crash
        waits out that leader's lease first (HA_LEASE_MS, 3 s;
        docs/operations.md). lead=False for a second manager, a standby."""
        if self.port is None:
            self.port = free_port()
            self.url = "http://%s:%d" % (self.addr("manager"), self.port)
        os.makedirs(self.mdir, exist_ok=True)
        self.manager = Daemon(
            "manager",
            self.wrap("manager", [self.bin, "manager", "--data", self.mdir,
             "--listen", "%s:%d" % (self.addr("manager"), self.port)]
            + self.db_args()),
            os.path.join(self.logdir, "manager.log"), self.env)
        self.manager.start()
        wait_for(lambda: self._alive(self.manager) and
                 os.path.exists(self.token_file) and
                 os.path.getsize(self.token_file) > 0,
                 timeout, "manager to write %s" % self.token_file)
        wait_for(lambda: self._alive(self.manager) and self.health(),
                 timeout, "manager health on %s" % self.url, starting=True)
        if lead:
            wait_for(lambda: self._alive(self.manager) and
                     self.role() == "leader", timeout,
                     "manager on %s to lead" % self.url)
        return self.manager

    # Hooks for clusters whose hosts live in network namespaces (netns.py).
    def addr(self, role):
        """The IP a role (manager, a host name) listens on."""
        return "127.0.0.1"

    def wrap(self, role, argv):
        """The argv that runs argv for role (manager, a host, client)."""
        return self.host_mounts(role) + list(argv)

    # ---- shared storage --------------------------------------------------

    def shared_dir(self, name):
        """A directory for a shared storage domain, made if missing:
        BASE/NAME, or on the networked-storage pass's filesystem
        (CVIRT_TEST_SHARED/BASENAME/NAME), where every host sees it at
        that same path."""
        path = os.path.join(self.shared_root, name)
        os.makedirs(path, exist_ok=True)
        return path

    def host_mounts(self, role):
        """The argv prefix that runs a command in host `role`'s own mount
        namespace, with its own client of the shared filesystem over
        CVIRT_TEST_SHARED (made the first time, kept across the host's
        agent restarts): [] for the manager and clients, and unless the
        pass gives hosts clients of their own (CVIRT_TEST_SHARED_CLIENT)."""
        if not (SHARED and SHARED_CLIENT) or role in ("manager", "client"):
            return []
        if role not in self.host_mntns:
            self.host_mntns[role] = self._host_client(role)
        return ["nsenter", "--mount=" + self.host_mntns[role][0],
                "--wd=" + os.getcwd(), "--"]

    def _host_client(self, role):
        """A persistent mount namespace for host role (a file bind-mounted
        in BASE/mntns, a private mount: the kernel refuses to keep a mount
        namespace on a shared one) with the host's client mounted in it:
        (namespace file, client pid)."""
        d = os.path.join(self.base, "mntns")
        if not self.host_mntns:
            os.makedirs(d, exist_ok=True)
            for argv in (["mount", "--bind", d, d],
                         ["mount", "--make-private", d]):
                _run_checked(argv)
        f = os.path.join(d, role)
        open(f, "w").close()
        _run_checked(["unshare", "--mount=" + f, "--propagation", "private",
                      "true"])
        out = _run_checked(["nsenter", "--mount=" + f, "--"] +
                           shlex.split(SHARED_CLIENT) + [SHARED])
        return f, int(out.split()[-1])

    def drop_host_mounts(self):
        """Unmounts every host's own client and lets its namespace go
        (after the host's processes have ended); waits for each client to
        exit, killing it after 10 s."""
        if not self.host_mntns:
            return
        clients = []
        for role, (f, pid) in sorted(self.host_mntns.items()):
            subprocess.run(["nsenter", "--mount=" + f, "--", "umount", "-l",
                            SHARED], capture_output=True)
            subprocess.run(["umount", f], capture_output=True)
            clients.append(pid)
        self.host_mntns = {}
        subprocess.run(["umount", os.path.join(self.base, "mntns")],
                       capture_output=True)
        try:
            wait_for(lambda: not any(pid_alive(p) for p in clients), 10,
                     "the hosts' storage clients %s to exit" % clients)
        finally:
            for pid in clients:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)

    def _alive(self, daemon):
        if not daemon.running():
            raise DaemonExited("%s exited with status %s:\n%s" % (
                daemon.name, daemon.proc.returncode, daemon.log_tail()))
        return True

    def health(self):
        """True when the manager answers its health route with "ok";
        CvirtError for any other answer, ConnectionRefusedError when
        nothing answers (status 0 from a subclass's curl)."""
        self._health()
        return True

    def role(self):
        """The manager's role from its health route: leader or standby."""
        return self._health()["role"]

    def _health(self):
        status, body = self.http("GET", "/api/v1/health", auth=False)
        if status == 0:
            raise ConnectionRefusedError("no answer from %s" % self.url)
        if status != 200 or not isinstance(body, dict) or \
                body.get("status") != "ok" or \
                body.get("role") not in ("leader", "standby"):
            raise CvirtError("health of %s: HTTP %d %r" % (self.url, status,
                                                           body))
        return body

    def start_agent(self, name, extra=None, wait=True, timeout=30):
        """Starts (or restarts, with the same arguments) agent `name`."""
        if name not in self.agent_ports:
            self.agent_ports[name] = free_port()
        if extra is not None:
            self.agent_extra[name] = list(extra)
        adir = os.path.join(self.base, "a-" + name)
        os.makedirs(adir, exist_ok=True)
        extra = self.agent_extra.get(name, [])
        if "--watchdog" not in extra:
            # A keeper that pets the stand-in: a watchdog host for the
            # manager, and never a real /dev/watchdog (watchdogs.py).
            if self.watchdogs is None:
                self.watchdogs = Watchdogs(os.path.join(self.base, "wd"),
                                           self.base)
            extra = ["--watchdog", self.watchdogs.spec(name)] + extra
        d = Daemon(
            "agent " + name,
            self.wrap(name, [self.bin, "agent", "--data", adir, "--manager", self.url,
             "--token-file", self.token_file, "--name", name,
             "--listen", "%s:%d" % (self.addr(name), self.agent_ports[name]),
             "--storage", "local=" + self.storage,
             # The test guest's kernel and initrd: a directory an admin
             # lists, the hosts' files beyond the media areas (media.c).
             "--media-dir", GUEST_DIR] + extra),
            os.path.join(self.logdir, "agent-%s.log" % name), self.env)
        self.agents[name] = d
        d.start()
        if wait:
            self.wait_host(name, "up", timeout, daemon=d)
        return d

    def wait_host(self, name, state="up", timeout=30, daemon=None):
        """Waits until host `name` is in state. With daemon (the agent just
        started), "up" counts only once that agent has registered: a
        restarted agent's host may still be "up" from the one before it,
        and a daemon stopped while it starts dies of the signal."""
        def check():
            if daemon is not None:
                self._alive(daemon)
                if state == "up" and not daemon.logged(
                        "registered with the manager"):
                    return False
            hosts = self.cli("host", "list", json=True)
            return any(h.get("name") == name and h.get("state") == state
                       for h in hosts)
        return wait_for(check, timeout, "host %s to be %s" % (name, state),
                        interval=0.2)

    def kill_agent(self, name, sig=signal.SIGKILL, timeout=10):
        """Sends sig to agent `name` and waits until it has exited. Any
        signal but SIGTERM is a deliberate kill (Daemon.kill); on SIGTERM
        the agent must exit 0."""
        d = self.agents[name]
        if sig == signal.SIGTERM:
            d.signal(sig)
        else:
            d.kill(sig)
        if not d.wait(timeout):
            raise CvirtError("agent %s did not exit on signal %d"
                             % (name, sig))
        return d.proc.returncode

    def start(self, hosts=("h1",), agent_extra=None):
        """Manager plus one agent per name in hosts; waits until all are up."""
        self.start_manager()
        for h in hosts:
            self.start_agent(h, extra=(agent_extra or {}).get(h), wait=False)
        for h in hosts:
            self.wait_host(h, "up", 30, daemon=self.agents[h])
        return self

    def start_up(self, timeout=30):
        """Runs `cvirt up --data BASE/up --listen 127.0.0.1:PORT` as this
        cluster's only daemon (self.manager); waits for its token file
        (found under the data dir), health and one host up.
        `cvirt up` always embeds SQLite: a test that calls this must be
        marked sqlite_only (deselected in the PostgreSQL pass)."""
        if os.environ.get("CVIRT_TEST_PG"):
            raise CvirtError("cvirt up embeds SQLite: mark the test "
                             "@pytest.mark.sqlite_only")
        self.port = free_port_pair()
        self.url = "http://127.0.0.1:%d" % self.port
        data = os.path.join(self.base, "up")
        self.manager = Daemon(
            "up", [self.bin, "up", "--data", data,
                   "--listen", "127.0.0.1:%d" % self.port],
            os.path.join(self.logdir, "up.log"), self.env)
        self.manager.start()

        def token_file():
            self._alive(self.manager)
            for root, _, files in os.walk(data):
                if "admin.token" in files:
                    return os.path.join(root, "admin.token")
            return None
        self.token_file = wait_for(token_file, timeout,
                                   "cvirt up to write admin.token")
        wait_for(lambda: self._alive(self.manager) and self.health(),
                 timeout, "cvirt up health on %s" % self.url, starting=True)
        wait_for(lambda: self._alive(self.manager) and
                 [h for h in self.cli("host", "list", json=True)
                  if h.get("state") == "up"],
                 timeout, "cvirt up's local host to be up", interval=0.2)
        return self

    def restart_up(self, timeout=30):
        """Starts the stopped `cvirt up` of start_up() again (same data,
        same port) and waits until it says "cvirt is up." anew in its log:
        it has re-registered its host and re-attached to the VMs."""
        self.manager.start()

        def up():
            assert self.manager.running(), self.manager.log_tail()
            with open(self.manager.log_path, errors="replace") as f:
                f.seek(self.manager.log_start)
                return "cvirt is up." in f.read()
        wait_for(up, timeout, "cvirt up to come back")

    # ---- client ----------------------------------------------------------

    def cli(self, *args, check=True, json=False, timeout=90, input=None):
        """Runs `cvirt --url URL --token-file F ARGS...`.

        Returns (rc, stdout, stderr); with json=True adds --json and returns
        the parsed JSON (or, with check=False, (rc, parsed-or-None, stderr)).
        check=True raises CvirtError on a non-zero exit.
        """
        argv = [self.bin, "--url", self.url, "--token-file", self.token_file]
        argv += [str(a) for a in args]
        if json:
            argv.append("--json")
        argv = self.wrap("client", argv)
        try:
            p = subprocess.run(argv, capture_output=True, text=True,
                               timeout=timeout, env=self.env,
                               input=input if input is not None else "",
                               errors="replace")
        except subprocess.TimeoutExpired as e:
            raise CvirtError("timed out after %ss: %s" % (timeout, " ".join(
                argv[5:]))) from e
        if check and p.returncode != 0:
            raise CvirtError("cvirt %s: exit %d\nstdout: %s\nstderr: %s" % (
                " ".join(argv[5:]), p.returncode, p.stdout, p.stderr))
        if not json:
            return p.returncode, p.stdout, p.stderr
        parsed = None
        if p.returncode == 0 or p.stdout.strip():
            try:
                parsed = jsonlib.loads(p.stdout)
            except ValueError as e:
                if check:
                    raise CvirtError("cvirt %s: not JSON: %r" % (
                        " ".join(argv[5:]), p.stdout)) from e
        self._note_uuids(parsed)
        if check:
            return parsed
        return p.returncode, parsed, p.stderr

    @staticmethod
    def _procs(comm, match):
        """Pids of processes named comm whose command line has an
        argument for which match(arg) is true."""
        found = set()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() != comm:
                        continue
            except OSError:
                continue
            if any(match(a) for a in (proc_cmdline(int(d)) or [])):
                found.add(int(d))
        return found

    def cluster_keepers(self):
        """Lease keepers (forked by this cluster's agents, they outlive
        them) still running."""
        return self._procs("cvirt-keeper", lambda a: self.base in a)

    def cluster_dnsmasqs(self):
        """DHCP servers of this cluster's networks: the agents leave them
        running for their VMs (docs/network.md), so a test cluster ends
        them itself."""
        return self._procs("dnsmasq", lambda a: a.startswith(
            "--conf-file=" + self.base + "/"))

    def _note_uuids(self, obj):
        if isinstance(obj, dict):
            u = obj.get("uuid")
            if isinstance(u, str) and UUID_RE.fullmatch(u):
                self.uuids.add(u)
            for v in obj.values():
                self._note_uuids(v)
        elif isinstance(obj, list):
            for v in obj:
                self._note_uuids(v)

    def http(self, method, path, body=None, token=True, auth=True,
             headers=None, timeout=10):
        """Raw REST call; returns (status, parsed JSON or raw text).

        body: a dict/list (sent as JSON) or bytes/str (sent as is).
        token: True for the admin token, a string for another, None/False
        (or auth=False) for no Authorization header.
        """
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            if isinstance(body, (dict, list)):
                data = jsonlib.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body
            hdrs.setdefault("Content-Type", "application/json")
        if auth and token:
            tok = self.token() if token is True else token
            hdrs["Authorization"] = "Bearer " + tok
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode(errors="replace")
        try:
            return status, jsonlib.loads(text)
        except ValueError:
            return status, text

    def token(self):
        with open(self.token_file) as f:
            return f.read().strip()

    def register_host(self, body):
        """POST /api/v1/agent/register by hand (as cvirt sim does): a
        name new to this test with the admin token, one it registered
        before with the key it got then, as an agent does (a token admits
        only new hosts: docs/security.md, "Admitting hosts"); the admin
        token again when that key is refused (the host was deleted).
        Returns (status, reply)."""
        key = self.host_keys.get(body["name"])
        st, reply = self.http("POST", "/api/v1/agent/register", body,
                              token=key or True)
        if st == 401 and key:
            st, reply = self.http("POST", "/api/v1/agent/register", body)
        if st == 200:
            self.host_keys[body["name"]] = reply["agent_key"]
        return st, reply

    # ---- VM helpers ------------------------------------------------------

    def vm(self, name):
        """`vm show NAME --json`."""
        return self.cli("vm", "show", name, json=True)

    def vm_names(self):
        return sorted(v["name"] for v in self.cli("vm", "list", json=True))

    def serial(self, name):
        return self.cli("vm", "serial", name)[1]

    def wait_serial(self, name, text, timeout=30, count=1, starting=False):
        """Waits until `text` appears at least `count` times in the serial
        output; returns the whole transcript. starting: as wait_for's
        (the agent that serves the serial log was just restarted)."""
        seen = [""]

        def check():
            s = seen[0] = self.serial(name)
            return s if s.count(text) >= count else None
        try:
            return wait_for(check, timeout, "%r in serial of %s" % (text,
                            name), interval=0.3, starting=starting)
        except AssertionError as e:
            raise AssertionError("%s; its serial log ends:\n%s" % (
                e, seen[0][-3000:])) from None

    def wait_state(self, name, state, timeout=30, starting=False):
        return wait_for(lambda: (lambda v: v if v.get("state") == state
                                 else None)(self.vm(name)),
                        timeout, "VM %s to be %s" % (name, state),
                        interval=0.2, starting=starting)

    # ---- teardown --------------------------------------------------------

    def known_uuids(self):
        """Every VM uuid of this cluster: seen by the CLI, listed by the
        manager, or present as a directory on the shared storage."""
        uuids = set(self.uuids)
        if self.manager is not None and self.manager.running():
            try:
                rc, vms, _ = self.cli("vm", "list", json=True, check=False,
                                      timeout=10)
                if rc == 0:
                    self._note_uuids(vms)
                    uuids |= self.uuids
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        for top in {self.base, self.shared_root}:
            for root, dirs, files in os.walk(top):
                for n in dirs + files:
                    m = UUID_RE.search(n)
                    if m:
                        uuids.add(m.group(0))
        return uuids

    def cluster_qemus(self):
        """{pid: uuid} of QEMU processes belonging to this cluster."""
        uuids = self.known_uuids()
        found = {}
        for pid, u in qemu_pids().items():
            argv = proc_cmdline(pid) or []
            if u in uuids or any(self.base + "/" in a for a in argv):
                found[pid] = u
        return found

    def logs(self, lines=60):
        """The tail of every daemon's log, for failure reports."""
        out = []
        for d in [self.manager] + list(self.agents.values()):
            if d is None:
                continue
            if d.proc is not None and d.proc.poll() is not None:
                rc = d.proc.returncode
                state = "exited with %s" % (
                    "signal %d" % -rc if rc < 0 else "status %d" % rc)
            else:
                state = "running"
            out.append("==== %s, %s (%s) ====\n%s" % (
                d.name, state, d.log_path, d.log_tail(lines)))
        return "\n".join(out)

    def stop(self):
        """Stops every daemon and kills every QEMU of this cluster."""
        uuids = self.known_uuids()
        # Every daemon gets SIGTERM at once: each takes up to ~2 s to
        # wind down, and none needs another to stop (leftover QEMUs,
        # keepers and DHCP servers are killed below either way).
        daemons = list(self.agents.values())
        if self.manager is not None:
            daemons.append(self.manager)
        for d in daemons:
            d.signal(signal.SIGTERM)
        for d in daemons:
            d.stop(timeout=10)
        self.uuids |= uuids
        # Keepers left with their VMs are killed below: not a host reset.
        if self.watchdogs is not None:
            self.watchdogs.stop()
            self.watchdogs = None
        leftovers = set(self.cluster_qemus()) | self.cluster_keepers() | \
            self.cluster_dnsmasqs()
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            wait_for(lambda: not any(pid_alive(p) for p in leftovers), 10,
                     "QEMU processes %s to exit" % sorted(leftovers))
            self.remove_host_networks()
            self.drop_host_mounts()
        finally:
            if self in Cluster.active:
                Cluster.active.remove(self)
        return leftovers

    def net_owner(self, name):
        """The mark agent `name` writes on every kernel object it owns
        (src/agent/agent.c: "cvirt:" and 16 hex digits of the BLAKE2b of
        its data directory)."""
        adir = os.path.join(self.base, "a-" + name)
        return "cvirt:" + hashlib.blake2b(
            adir.encode(), digest_size=32).hexdigest()[:16]

    def remove_host_networks(self):
        """Deletes the links and nftables tables this cluster's agents
        own in this network namespace. An agent leaves its networks in
        place when it stops (its VMs may outlive it; docs/network.md), so
        a test cluster removes them itself, or the next cluster's agents
        find names (cvnb1, ...) that belong to someone else. Clusters in
        their own namespaces lose everything with the namespaces."""
        owners = {self.net_owner(n) for n in self.agents}
        if not owners or getattr(self, "ns", None):
            return
        p = subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                           text=True)
        try:
            links = jsonlib.loads(p.stdout or "[]")
        except ValueError:
            links = []
        for link in links:
            if link.get("ifalias") in owners:
                subprocess.run(["ip", "link", "del", "dev", link["ifname"]],
                               capture_output=True)
        p = subprocess.run(["nft", "list", "tables"], capture_output=True,
                           text=True)
        for line in p.stdout.splitlines():
            words = line.split()
            if len(words) != 3 or not words[2].startswith("cvirt_"):
                continue
            t = subprocess.run(["nft", "list", "table", words[1], words[2]],
                               capture_output=True, text=True)
            m = re.search(r'comment "([^"]*)"', t.stdout)
            if m and m.group(1) in owners:
                subprocess.run(["nft", "delete", "table", words[1],
                                words[2]], capture_output=True)

    def cleanup(self):
        """stop() and remove the data directory if this cluster made it."""
        try:
            self.stop()
        finally:
            if self.own_base and not os.environ.get("CVIRT_KEEP"):
                # The logs may live under base: read them first.
                harness.collect()
                shutil.rmtree(self.base, ignore_errors=True)
                if self.shared_root != self.base:
                    shutil.rmtree(self.shared_root, ignore_errors=True)
