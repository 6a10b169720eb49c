"""The fault-injection suite (issue 14, docs/ha.md "Fault suite"): three
hosts in network namespaces, each seeing the shared domain through a
storage client of its own (a GlusterFS FUSE client in the host's mount
namespace: CVIRT_TEST_SHARED_CLIENT, so the suite runs in the GlusterFS
pass only), so that one host's storage can be hung (SIGSTOP of its
client) while the others' is fine.

Each fault gets HA VMs of its own whose guest keeps a generation counter
on its disk (tests/guest/gencount.c, cvirt.gencount=1: written with
O_DIRECT every 100 ms, each write checked against the block read back).
For each fault the test checks:

- at most one QEMU of the VM is ever runnable (every process of the VM on
  every host sampled every 10 ms; D-state and stopped ones counted apart);
- the counter never goes backwards: no run of the guest finds the block
  changed behind its back (a stale write of an old copy landing), no run
  starts below a generation an earlier run printed (a write lost), and
  the disk at the end holds at least what the last run printed;
- the VM runs again where the rules say (elsewhere, or on the same QEMU
  for the faults that must not restart anything) within the bound of
  docs/ha.md.

The module prints a table of the faults at the end of the session
(conftest.py's pytest_terminal_summary): fault, outcome, time to
recovery, copies seen, counter regressions.

The watchdog stand-in resets a host whose keeper stops petting (kills
every process of its network namespace and its storage client, so its
in-flight writes die), as a real watchdog would.
"""

import concurrent.futures
import os
import re
import shlex
import signal
import subprocess
import threading
import time

import pytest

import cvirt
import harness
from cvirt import CvirtError, NotYet, pid_alive, qemu_pid, wait_for
from netns import NetnsCluster

pytestmark = [pytest.mark.shared_storage, pytest.mark.faults]

HOSTS = ("h1", "h2", "h3")
CMDLINE = "console=ttyS0 cvirt.gencount=1"
# A boot of the test guest under TCG with the other guests of the module
# booting beside it (test_ha.py's BOOT_S): the machine, not cvirt.
BOOT_S = 120
# From a fault to the VM running on another host: docs/ha.md, "Fault
# suite" (the measured figures, and the bound CI holds them to).
RECOVER_S = 20
# Faults that must restart nothing are watched this long: past the lease
# timeout (5 s) and the heartbeat timeout (5 s) after the fault ended.
QUIET_S = 8

GEN_START_RE = re.compile(r"cvirt-guest: gen start (\d+) id=([0-9a-f]+)")
GEN_RE = re.compile(r"cvirt-guest: gen (\d+) id=([0-9a-f]+)")
GEN_BAD_RE = re.compile(r"cvirt-guest: gen BAD [^\r\n]*")

TABLE = []      # one dict per fault, in the order run
NAMES = {}      # VM uuid -> name (make_vms)


# ---- the cluster --------------------------------------------------------

class FaultCluster(NetnsCluster):
    """A NetnsCluster whose hosts each have a storage client of their own
    and a watchdog stand-in that resets them."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.resets = {}        # host -> monotonic time of its last reset
        self.nresets = 0        # resets in all
        self.reset_lock = threading.Lock()
        # The second storage domain, "second": the same volume, but each
        # host mounts it with a client of its own at BASE/d2, so that one
        # host can lose it alone and keep "local". The suite reads it at
        # its place on its own mount (shared_dir).
        self.d2 = os.path.join(self.base, "d2")
        os.makedirs(self.d2, exist_ok=True)
        self.second = self.shared_dir("second")
        self.second_path = os.path.join(self.d2, os.path.basename(
            self.shared_root), "second")
        self.d2_clients = {}    # host -> pid of its client at BASE/d2
        self.freezer = None     # a cgroup v1 freezer group (freeze())

    def start_agent(self, name, extra=None, wait=True, timeout=30):
        self._d2_client(name)
        if name not in self.agent_extra:
            self.agent_extra[name] = ["--storage",
                                      "second=" + self.second_path]
        d = super().start_agent(name, extra, wait, timeout)
        self.watchdogs.on_expiry[name] = self.reset
        return d

    def _d2_client(self, host):
        """host's client of the second domain, mounted at BASE/d2 in its
        mount namespace (again when the last one is gone)."""
        self.host_mounts(host)          # the namespace, made if missing
        pid = self.d2_clients.get(host)
        if pid is not None and pid_alive(pid):
            return
        f = self.host_mntns[host][0]
        subprocess.run(["nsenter", "--mount=" + f, "--", "umount", "-l",
                        self.d2], capture_output=True)
        out = cvirt._run_checked(["nsenter", "--mount=" + f, "--"] +
                                 shlex.split(cvirt.SHARED_CLIENT) +
                                 [self.d2])
        self.d2_clients[host] = int(out.split()[-1])

    def stop(self):
        # A test that failed mid-hang left a client stopped.
        for pid in list(self.d2_clients.values()) + \
                [p for _, p in self.host_mntns.values()]:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        self.thaw()
        try:
            return super().stop()
        finally:
            if self.freezer is not None:
                os.rmdir(self.freezer)
                subprocess.run(["umount", os.path.dirname(self.freezer)],
                               capture_output=True)
            clients = list(self.d2_clients.values())
            for pid in clients:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            wait_for(lambda: not any(pid_alive(p) for p in clients), 10,
                     "the second domain's clients %s to exit" % clients)

    def freeze(self, pid):
        """Puts process pid (every thread) in uninterruptible sleep, as a
        process stuck in I/O: a v1 freezer cgroup's frozen tasks are in D
        and survive SIGKILL until thawed."""
        if self.freezer is None:
            top = os.path.join(self.base, "freezer")
            os.makedirs(top, exist_ok=True)
            cvirt._run_checked(["mount", "-t", "cgroup", "-o", "freezer",
                                "freezer", top])
            self.freezer = os.path.join(top, "q")
            os.makedirs(self.freezer, exist_ok=True)
        with open(os.path.join(self.freezer, "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)
        with open(os.path.join(self.freezer, "freezer.state"), "w") as f:
            f.write("FROZEN\n")

    def thaw(self):
        if self.freezer is not None:
            with open(os.path.join(self.freezer, "freezer.state"),
                      "w") as f:
                f.write("THAWED\n")

    def client_pid(self, host):
        return self.host_mntns[host][1]

    def reset(self, host):
        """What a watchdog's reset does to host: every process of it dies
        at once, its storage clients too (their in-flight writes die)."""
        with self.reset_lock:
            self.resets[host] = time.monotonic()
            self.nresets += 1
            for pid in (self.client_pid(host), self.d2_clients.get(host)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (OSError, TypeError):
                    pass
            self.crash_host(host)
            # A reset ends every process, those stuck in D too.
            self.thaw()

    def keeper_pids(self, host):
        adir = os.path.join(self.base, "a-" + host)
        return self._procs("cvirt-keeper", lambda a: a == adir)

    def host_back(self, host):
        """Host up again after a fault: a new storage client if its own is
        gone (a reset), its agent started if it is not running."""
        f, pid = self.host_mntns[host]
        if not pid_alive(pid):
            subprocess.run(["nsenter", "--mount=" + f, "--", "umount", "-l",
                            cvirt.SHARED], capture_output=True)
            out = cvirt._run_checked(["nsenter", "--mount=" + f, "--"] +
                                     shlex.split(cvirt.SHARED_CLIENT) +
                                     [cvirt.SHARED])
            self.host_mntns[host] = (f, int(out.split()[-1]))
        self._d2_client(host)
        if not self.agents[host].running():
            self.start_agent(host)
        self.wait_host(host, "up", 30)


@pytest.fixture(scope="module")
def fc(request, guest, cvirt_bin):
    cl = FaultCluster(HOSTS, bin=cvirt_bin)
    request.addfinalizer(cl.stop)
    request.addfinalizer(write_table)
    cl.start(hosts=HOSTS)
    return cl


# ---- what the test watches ---------------------------------------------

class Copies:
    """Every QEMU process of a VM (any host: one pid namespace), sampled
    every 10 ms: a process is runnable when one of its threads is R or S,
    else in D when one is, else stopped (T). .runnable, .dstate,
    .stopped: the most seen at once; .pids: every pid seen.

    A round lists /proc and looks only at pids it has not seen (a pid
    that left a listing and came back is new: reused). A process the
    agent just forked still has the agent's command line and becomes the
    QEMU by exec, which changes its comm: every 5th round the signature
    (comm, start time) of each pid seen in the last 60 s, or whose comm is
    cvirt's, is read again, and every 100th round that of every pid. The
    first version read every process's signature every 5th round, and
    the command line of each process without one (kernel threads) every
    round: idle, with 69 processes, a sampler took 21 % of a core (1.06 s
    of CPU in 5 s; now 0.18-0.34 s), and the suite runs two at once on a
    2-core machine that the guests and the storage need."""

    YOUNG_S = 60
    RECHECK_EVERY = 5
    FULL_EVERY = 100

    def __init__(self, uuid, start=True):
        self.uuid = uuid
        self.runnable = self.dstate = self.stopped = 0
        self.pids = set()
        self.first = {}         # pid -> monotonic time first seen
        self.other = {}         # pid -> (signature, first seen): not its
        self.mine = {}          # pid -> its signature, the VM's QEMUs
        self.quit = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        if start:
            self.t.start()

    @staticmethod
    def _listing():
        """The pids in /proc."""
        return {int(e) for e in os.listdir("/proc") if e.isdigit()}

    @staticmethod
    def _cmdline(pid):
        return cvirt.proc_cmdline(pid)

    PF_KTHREAD = 0x00200000

    @staticmethod
    def _stat(pid):
        """(comm, state, flags, start time) of pid, or None when it is
        gone."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                head, _, rest = f.read().rpartition(")")
        except OSError:
            return None
        f = rest.split()
        return head.split("(", 1)[-1], f[0], int(f[6]), f[19]

    @classmethod
    def _sig(cls, pid):
        """(comm, start time) of pid, or None when it is gone."""
        st = cls._stat(pid)
        return None if st is None else (st[0], st[3])

    def _is_mine(self, argv):
        return any(a == "-uuid" and argv[i + 1] == self.uuid
                   for i, a in enumerate(argv[:-1]))

    @staticmethod
    def _state(pid):
        states = set()
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    states.add(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            pass
        if states & {"R", "S"}:
            return "run"
        if "D" in states:
            return "D"
        if states & {"T", "t"}:
            return "T"
        return None             # gone, or a zombie

    def _classify(self, pid, now):
        """Files pid as the VM's QEMU or another's process (the signature
        first: an exec after it shows at the next look)."""
        st = self._stat(pid)
        argv = self._cmdline(pid)
        if st is None:
            return              # gone
        sig = (st[0], st[3])
        if argv is None:
            # A kernel thread or a zombie is never the VM's: filed, the
            # fifty-odd kernel threads are not read again every round
            # (2 ms a round). Any other is in the middle of an exec: the
            # kernel sets the new comm, then the new command line, and
            # between the two the command line reads empty. Filed by the
            # new comm, such a QEMU was never looked at again (a run of
            # the suite missed one): it is read again next round.
            if st[2] & self.PF_KTHREAD or st[1] in ("Z", "X"):
                self.other[pid] = (sig, now)
            return
        if not self._is_mine(argv):
            self.other[pid] = (sig, now)
            return
        self.mine[pid] = sig
        self.pids.add(pid)
        self.first.setdefault(pid, now)

    def _recheck(self, rounds, now):
        """Forgets the pids whose signature changed (an exec, a reuse)."""
        full = rounds % self.FULL_EVERY == 0
        for pid, (sig, t) in list(self.other.items()):
            if full or now - t < self.YOUNG_S or \
                    sig[0].startswith("cvirt"):
                if self._sig(pid) != sig:
                    del self.other[pid]
        for pid, sig in list(self.mine.items()):
            if self._sig(pid) != sig:
                del self.mine[pid]

    def round(self, rounds):
        """One look at every process (rounds: its number, from 1)."""
        now = time.monotonic()
        listed = self._listing()
        for gone in [p for p in self.other if p not in listed]:
            del self.other[gone]
        for gone in [p for p in self.mine if p not in listed]:
            del self.mine[gone]
        if rounds % self.RECHECK_EVERY == 0:
            self._recheck(rounds, now)
        for pid in listed:
            if pid not in self.other and pid not in self.mine:
                self._classify(pid, now)
        n = {"run": 0, "D": 0, "T": 0, None: 0}
        for pid in self.mine:
            n[self._state(pid)] += 1
        self.runnable = max(self.runnable, n["run"])
        self.dstate = max(self.dstate, n["D"])
        self.stopped = max(self.stopped, n["T"])

    def _run(self):
        rounds = 0
        while not self.quit.is_set():
            rounds += 1
            self.round(rounds)
            time.sleep(0.01)

    def stop(self):
        self.quit.set()
        self.t.join()
        return self.runnable


def vm_dir(fc, uuid):
    """The VM's directory as the suite's mount sees it, on either
    domain."""
    for root in (fc.storage, fc.second):
        d = os.path.join(root, "vms", uuid)
        if os.path.isdir(d):
            return d
    raise CvirtError("vm %s has no directory on %s or %s" % (
        uuid, fc.storage, fc.second))


def serial_log(fc, uuid, strict=False):
    """The VM's serial log as the agent of its host serves it (`vm
    serial`: the whole log kept on storage, every run of the VM, read by
    the host that writes it). Not strict: "" while that host cannot
    answer (a fault on it), for waits to try again."""
    rc, out, err = fc.cli("vm", "serial", NAMES[uuid], check=False,
                          timeout=20)
    if rc != 0 and strict:
        raise CvirtError("vm serial %s: %s" % (NAMES[uuid], err))
    return out if rc == 0 else ""


def runs(text):
    """{id: {"start": N, "gens": [..]}} of the generation counter's runs in
    a serial log, and the ids in the order they started."""
    out, order = {}, []
    for m in GEN_START_RE.finditer(text):
        out[m.group(2)] = {"start": int(m.group(1)), "gens": []}
        order.append(m.group(2))
    for m in GEN_RE.finditer(text):
        if m.group(2) in out:
            out[m.group(2)]["gens"].append(int(m.group(1)))
    return out, order


def disk_gen(fc, uuid):
    """The generation on the VM's disk as this machine's mount reads it
    now, bypassing every cache (O_DIRECT, shared with a running QEMU)."""
    img = os.path.join(vm_dir(fc, uuid), "disk0.qcow2")
    p = subprocess.run(["qemu-io", "-r", "-U", "-t", "none", "-f", "qcow2",
                        "-c", "read -v 1048576 32", img],
                       capture_output=True, text=True, timeout=30)
    raw = bytearray()
    for ln in p.stdout.splitlines():
        m = re.match(r"[0-9a-f]{8}:((?:  ?[0-9a-f]{2}){1,16})", ln)
        if m:
            raw += bytes(int(x, 16) for x in m.group(1).split())
    if raw[:8] != b"CVGEN001":
        raise CvirtError("no generation record on %s: %r" % (img, p.stdout))
    return int.from_bytes(raw[8:16], "little")


def regressions(fc, uuid):
    """Every way the counter went backwards, as lines (none: [])."""
    text = serial_log(fc, uuid, strict=True)
    bad = GEN_BAD_RE.findall(text)
    got, order = runs(text)
    by_start = sorted(got.items(), key=lambda kv: kv[1]["start"])
    printed = 0
    for rid, r in by_start:
        if r["start"] < printed:
            bad.append("run %s started at generation %d, below %d that an "
                       "earlier run printed" % (rid, r["start"], printed))
        printed = max([printed] + r["gens"])
    if order:
        last = got[order[-1]]["gens"]
        if last:
            d = disk_gen(fc, uuid)
            if d < last[-1]:
                bad.append("the disk holds generation %d, below %d that "
                           "the last run printed" % (d, last[-1]))
    return bad


def gen_ticks(fc, uuid, rid, n, timeout):
    """Waits until run rid of the counter printed n generations."""
    return wait_for(lambda: len(runs(serial_log(fc, uuid))[0].get(
        rid, {"gens": []})["gens"]) >= n, timeout,
        "run %s of the counter to print %d generations" % (rid, n),
        interval=0.5)


def more_gens(fc, uuid, rid, n=2):
    """Waits until run rid of the counter printed n more generations."""
    have = len(runs(serial_log(fc, uuid, strict=True))[0][rid]["gens"])
    return gen_ticks(fc, uuid, rid, have + n, 30)


def new_run(fc, uuid, known, timeout):
    """The id of a counter run not in known, once it printed its start."""
    seen = [""]

    def check():
        seen[0] = serial_log(fc, uuid)
        _, order = runs(seen[0])
        fresh = [r for r in order if r not in known]
        return fresh[-1] if fresh else None
    try:
        return wait_for(check, timeout, "a new run of the counter of %s"
                        % uuid, interval=0.3)
    except AssertionError as e:
        raise AssertionError("%s; its serial log ends:\n%s" % (
            e, seen[0][-3000:])) from None


def settle(fc, name, timeout=BOOT_S):
    """(vm, run id) once VM name runs and the counter of its current QEMU
    (the run after the agent's last "starting" mark in the serial log)
    has printed a generation: an earlier fault may have restarted it."""
    mark = "[cvirt: %s starting on host " % name

    def check():
        v = fc.vm(name)
        if v["state"] != "running" or not qemu_pid(v["uuid"]):
            return None
        text = serial_log(fc, v["uuid"])
        got, order = runs(text[text.rfind(mark):])
        if not order or not got[order[-1]]["gens"]:
            return None
        return v, order[-1]
    return wait_for(check, timeout, "%s running with its counter" % name,
                    interval=0.5)


def make_vms(fc, guest, placement, storage=None):
    """HA VMs {name: host} with a disk and the counter, started side by
    side (on storage domain storage[name] when given); {name: (vm, run
    id)} once each counter runs."""
    names = list(placement)
    out = {}
    # Five at a time: seven TCG guests booting at once on two loaded
    # cores took over 120 s each with the bzImage (guest kernel time 44 s,
    # still probing PCI, after 120 s); the ELF kernel's boot takes half
    # the CPU (build-guest.sh).
    # A batch's VMs are created, then started all at once: one after the
    # other, each start waited for the boots already under way (1.5-7 s a
    # start, 39 s for five in one run, the boots behind them).
    for i in range(0, len(names), 5):
        batch = names[i:i + 5]
        for name in batch:
            more = ["--storage", (storage or {}).get(name, "local")]
            fc.cli("vm", "create", name, "--cpus", 1, "--memory", 128,
                   "--ha", "--disk", 8, "--kernel", guest.kernel,
                   "--initrd", guest.initrd, "--cmdline", CMDLINE, *more)
        with concurrent.futures.ThreadPoolExecutor(len(batch)) as ex:
            for f in [ex.submit(fc.cli, "vm", "start", name, "--host",
                                placement[name]) for name in batch]:
                f.result()
        for name in batch:
            v = fc.vm(name)
            NAMES[v["uuid"]] = name
            rid = new_run(fc, v["uuid"], (), BOOT_S)
            gen_ticks(fc, v["uuid"], rid, 1, 30)
            out[name] = (v, rid)
    return out


def drop_vm(fc, name):
    """Stops VM name for good (a user's stop: HA leaves it) and deletes
    it."""
    def stopped():
        if fc.vm(name)["state"] == "stopped":
            return True
        rc, _, err = fc.cli("vm", "stop", name, "--force", check=False)
        if rc != 0:
            raise NotYet(err)   # busy with an HA task, starting, ...
        return fc.vm(name)["state"] == "stopped"
    wait_for(stopped, 60, "vm %s to stop" % name, interval=0.5)
    fc.cli("vm", "delete", name)


def running_on(fc, name, hosts, not_pid=None):
    """VM name's JSON once the manager says it runs on one of hosts and a
    QEMU of it other than not_pid lives (the old one may linger in D)."""
    v = fc.vm(name)
    if v["state"] != "running" or v["host"] not in hosts:
        return None
    if not set(cvirt.qemu_pids(v["uuid"])) - {not_pid}:
        return None
    return v


def fence_events(fc, since):
    return [e for e in fc.cli("event", "list", json=True)
            if e["kind"] in ("host.fenced", "host.domain_failed",
                             "ha.restart") and e["id"] > since]


def last_event_id(fc):
    ev = fc.cli("event", "list", json=True)
    return max([e["id"] for e in ev] or [0])


def record(fault, outcome, took, copies, bad, **more):
    row = {"fault": fault, "outcome": outcome,
           "recovery": "-" if took is None else "%.1f s" % took,
           "copies": copies, "regressions": len(bad)}
    row.update(more)
    TABLE.append(row)
    return row


def write_table():
    path = os.environ.get("CVIRT_FAULTS_TABLE")
    if not path or not TABLE:
        return
    cols = ("fault", "outcome", "recovery", "copies", "regressions")
    w = {c: max(len(c), *(len(str(r[c])) for r in TABLE)) for c in cols}
    lines = ["  ".join(c.ljust(w[c]) for c in cols)]
    for r in TABLE:
        extra = "  (D %d, stopped %d)" % (r.get("dstate", 0),
                                           r.get("stopped", 0))
        lines.append("  ".join(str(r[c]).ljust(w[c]) for c in cols) + extra)
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")


def protected_vms(fc, guest, placement, storage=None):
    """make_vms, and each VM can go to either other host (vm show:
    CONTRACT.md)."""
    got = make_vms(fc, guest, placement, storage)
    for name in got:
        v = fc.vm(name)
        assert v["protected"] is True and v["protection_reasons"] == [], v
    return got


# Each group of faults boots its own VMs when its first test runs, so that
# no VM idles through the other group's tests: seven guests each writing
# its counter every 100 ms through the replica-3 volume kept the two cores
# busy (in one run the volume's bricks and clients took 36 % of the CPU,
# the QEMUs 29 %), and every boot and lease read of the suite waited on
# them.

@pytest.fixture(scope="module")
def steady_vms(fc, guest):
    """The two VMs of the faults that must restart nothing: one on h1
    (its storage stalls), one on h2 (its link goes down)."""
    return protected_vms(fc, guest, {"spike": "h1", "blip": "h2"})


@pytest.fixture(scope="module")
def vms(fc, guest):
    """The VMs of the failovers: one per host (each host faulted in turn;
    "keeper" serves two faults on h3), and "dom2" on h1 on the second
    domain."""
    return protected_vms(fc, guest, {"hang": "h1", "crash": "h2",
                                     "keeper": "h3", "dom2": "h1",
                                     "dstate": "h3"},
                         storage={"dom2": "second"})


# ---- transient faults: nothing fenced, nothing restarted ----------------

def steady(fc, names, since, what, during):
    """Runs during() while the VMs names keep their QEMU; then QUIET_S
    more; asserts no fence and no restart, and records a row per VM."""
    vs = {n: fc.vm(n) for n in names}
    pids = {n: qemu_pid(v["uuid"]) for n, v in vs.items()}
    cs = {n: Copies(v["uuid"]) for n, v in vs.items()}
    try:
        during()
        end = time.monotonic() + QUIET_S
        while time.monotonic() < end:
            for n, v in vs.items():
                assert qemu_pid(v["uuid"]) == pids[n], \
                    "%s: %s was restarted" % (what, n)
            time.sleep(0.5)
    finally:
        for c in cs.values():
            c.stop()
    ev = fence_events(fc, since)
    for n, v in vs.items():
        bad = regressions(fc, v["uuid"])
        record(what[n], "kept on %s, 0 fences, 0 restarts" % v["host"]
               if not ev else "FENCED/RESTARTED", None, cs[n].runnable,
               bad, dstate=cs[n].dstate, stopped=cs[n].stopped)
        assert cs[n].runnable == 1 and not bad, (n, cs[n].runnable, bad)
    assert not ev, "%s: %r" % (what, ev)


def test_latency_spikes_and_network_blip(fc, steady_vms):
    """At once, on two hosts: h1's storage stalls for 2 s three times
    (SIGSTOP/SIGCONT of its client, 3 s apart), h2's only link goes down
    for 3 s. Neither is a fence: the stall is under F - K - R (2250 ms),
    the blip under the heartbeat timeout (5 s)."""
    since = last_event_id(fc)

    def during():
        cut = threading.Thread(target=lambda: (
            fc.cut("h2"), time.sleep(3), fc.cut("h2", up=True)))
        cut.start()
        for _ in range(3):
            os.kill(fc.client_pid("h1"), signal.SIGSTOP)
            time.sleep(2)
            os.kill(fc.client_pid("h1"), signal.SIGCONT)
            time.sleep(1)
        cut.join()
    steady(fc, ("spike", "blip"), since,
           {"spike": "storage latency 2 s (x3)", "blip": "network blip 3 s"},
           during)


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def test_wall_clock_jumps(fc, steady_vms):
    """h2's wall clock jumped by +1 h, then to -1 h, then back (libfaketime
    in its agent and keeper, reading the offset from a file): every wait
    of the daemons is on the monotonic clock, so nothing is fenced or
    restarted.

    That agent (and the keeper it starts) is the build without sanitizers
    (build/cvirt): under ASan, a process with libfaketime preloaded hangs
    before main (both runtimes interpose the clock at start-up)."""
    host = fc.vm("blip")["host"]
    rc = os.path.join(fc.base, "faketime-" + host)
    with open(rc, "w") as f:
        f.write("+0\n")
    fc.kill_agent(host, signal.SIGTERM)
    fake = {"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": rc,
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    saved_bin = fc.bin
    fc.bin = os.path.join(cvirt.REPO, "build", "cvirt")
    fc.env.update(fake)
    try:
        fc.start_agent(host)
    finally:
        for k in fake:
            del fc.env[k]
        fc.bin = saved_bin
    # The keeper too: the agent starts a new one with its environment.
    old = fc.keeper_pids(host)
    harness.declare_keeper_end(fc.agents[host].log_path,
                               "test_faults gives it a fake wall clock")
    for k in old:
        os.kill(k, signal.SIGKILL)
    wait_for(lambda: (lambda k: k and not k & old)(fc.keeper_pids(host)),
             10, "a new keeper on " + host)
    since = last_event_id(fc)

    def during():
        for offset in ("+1h", "-1h", "+0"):
            with open(rc, "w") as f:
                f.write(offset + "\n")
            time.sleep(QUIET_S / 2)
    steady(fc, ("blip",), since, {"blip": "wall clock +1 h, -1 h"},
           during)


def test_qmp_hung_across_agent_restart(fc, steady_vms):
    """h1's VM's QEMU stopped (SIGSTOP: QMP does not answer) and its
    agent killed and started again: the agent cannot attach, reports the
    VM unknown, keeps it; the manager starts no second copy; QEMU
    continued, the agent attaches to the same process."""
    v = fc.vm("spike")
    host, uuid = v["host"], v["uuid"]
    pid = qemu_pid(uuid)
    since = last_event_id(fc)
    c = Copies(uuid)
    os.kill(pid, signal.SIGSTOP)
    try:
        fc.kill_agent(host)
        fc.start_agent(host)
        wait_for(lambda: fc.vm("spike")["state"] == "unknown", 20,
                 "spike unknown on " + host)
        end = time.monotonic() + QUIET_S
        while time.monotonic() < end:
            got = fc.vm("spike")
            assert got["state"] == "unknown" and got["host"] == host, got
            assert set(cvirt.qemu_pids(uuid)) == {pid}
            time.sleep(0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    t0 = time.monotonic()
    try:
        wait_for(lambda: fc.vm("spike")["state"] == "running", 20,
                 "spike running again on " + host)
        took = time.monotonic() - t0
        more_gens(fc, uuid, runs(serial_log(fc, uuid))[1][-1])
    finally:
        c.stop()
    bad = regressions(fc, uuid)
    ev = fence_events(fc, since)
    record("QMP hung (QEMU stopped) across an agent restart",
           "unknown, then the same QEMU on %s" % host, took, c.runnable,
           bad, dstate=c.dstate, stopped=c.stopped)
    assert qemu_pid(uuid) == pid and fc.vm("spike")["host"] == host
    assert c.runnable == 1 and not bad and not ev, (c.runnable, bad, ev)


def test_manager_restart(fc, steady_vms):
    """The manager stopped and started again: nothing fenced or
    restarted."""
    since = last_event_id(fc)

    def during():
        fc.manager.stop()
        fc.start_manager()
        for h in HOSTS:
            fc.wait_host(h, "up", 30)
    steady(fc, ("spike",), since, {"spike": "manager restart"}, during)


def test_manager_partition(fc, steady_vms):
    """The manager's only link down for 8 s (past the heartbeat timeout:
    it hears no host, and reads no lease): it decides nothing, nothing is
    fenced or restarted."""
    since = last_event_id(fc)

    def during():
        fc.cut("manager")
        time.sleep(8)
        fc.cut("manager", up=True)
        for h in HOSTS:
            fc.wait_host(h, "up", 30)
    steady(fc, ("spike", "blip"), since,
           {"spike": "manager partition 8 s", "blip": "manager partition 8 s"},
           during)
    # Their part is done: the failovers below need the CPU.
    drop_vm(fc, "spike")
    drop_vm(fc, "blip")


# ---- faults that restart the VM elsewhere -------------------------------

def failover(fc, name, inject, heal=None, fault=None):
    """Injects a fault on the VM's host (inject(host)), waits for the VM
    running on another host, heals (heal(host)), brings the host back and
    checks copies and the counter. Returns the table row."""
    v, _ = settle(fc, name)
    host, uuid = v["host"], v["uuid"]
    known = set(runs(serial_log(fc, uuid, strict=True))[1])
    old = qemu_pid(uuid)
    others = tuple(h for h in HOSTS if h != host)
    c = Copies(uuid)
    t0 = time.monotonic()
    try:
        inject(host)
        # (starting: the manager may be restarting, test_host_crash)
        wait_for(lambda: running_on(fc, name, others, old), RECOVER_S,
                 "%s running on one of %s after %s" % (name, others, fault),
                 interval=0.1, starting=True)
        took = time.monotonic() - t0
        rid2 = new_run(fc, uuid, known, BOOT_S)
        # Two seconds of the new run's writes, with the fault still on.
        gen_ticks(fc, uuid, rid2, 2, 60)
        if heal is not None:
            heal(host)
        fc.host_back(host)
        gen_ticks(fc, uuid, rid2, 4, 60)
    finally:
        c.stop()
    bad = regressions(fc, uuid)
    reset = host in fc.resets and fc.resets[host] >= t0
    row = record(fault, "restarted on %s%s" % (
        fc.vm(name)["host"], ", %s reset by its watchdog" % host
        if reset else ""), took, c.runnable, bad, dstate=c.dstate,
        stopped=c.stopped)
    row["_copies"] = c
    assert c.runnable == 1, "%s: %d copies of %s runnable at once (%s)" % (
        fault, c.runnable, name, sorted(c.pids))
    assert not bad, "%s: the counter of %s went backwards: %s" % (
        fault, name, bad)
    return row


def test_storage_hang_of_one_of_two_domains(fc, vms):
    """h1's client of the second domain stopped (its client of "local"
    fine): the keeper fences only the VM on "second", which the manager
    restarts on h2 or h3; h1's VM on "local" keeps its QEMU (unless the
    keeper could not confirm that kill and h1 was reset: a whole host,
    by design)."""
    host = fc.vm("dom2")["host"]
    keep = fc.vm("hang")
    assert keep["host"] == host, keep
    keep_pid = qemu_pid(keep["uuid"])
    t0 = time.monotonic()

    def hang(h):
        os.kill(fc.d2_clients[h], signal.SIGSTOP)

    def resume(h):
        try:
            os.kill(fc.d2_clients[h], signal.SIGCONT)
        except OSError:
            pass
    try:
        row = failover(fc, "dom2", hang, resume,
                       "storage hang of 1 of 2 domains")
    finally:
        resume(host)
    if not fc.resets.get(host, 0) > t0:
        assert qemu_pid(keep["uuid"]) == keep_pid and \
            fc.vm("hang")["host"] == host, "the VM on local was touched"
        row["outcome"] += "; its VM on local kept"
    drop_vm(fc, "dom2")


def test_storage_hang_on_one_host(fc, vms):
    """h1's storage client stopped for 20 s (SIGSTOP of its FUSE daemon),
    then resumed: h1's keeper cannot renew, kills the VM's QEMU (or, if
    it cannot confirm the kill, stops petting and the host is reset), the
    manager restarts the VM on h2 or h3; nothing the old copy had in
    flight lands after the new copy started."""
    host = fc.vm("hang")["host"]
    state = {}

    def hang(host):
        state["t"] = time.monotonic()
        os.kill(fc.client_pid(host), signal.SIGSTOP)

    def resume(host):
        if "t" not in state:
            return              # never hung
        left = 20 - (time.monotonic() - state["t"])
        if left > 0:
            time.sleep(left)    # the fault's length: 20 s of hang
        try:
            os.kill(fc.client_pid(host), signal.SIGCONT)
        except OSError:
            pass                # reset: the client is gone
    try:
        failover(fc, "hang", hang, resume, "storage hang 20 s")
    finally:
        resume(host)
    drop_vm(fc, "hang")


def test_host_crash_manager_exits_at_the_fence(fc, vms):
    """Every process of h2 killed at once, with a manager that exits (97)
    right after the fence transaction that failed the VM, before any
    restart (CVIRT_FAULTS=failover.fenced:exit, src/manager/failover.c):
    started again, it restarts the VM on h1 or h3, once, from the
    inventory."""
    ended = {}
    fc.manager.stop()
    fc.env["CVIRT_FAULTS"] = "failover.fenced:exit"
    try:
        fc.start_manager()
    finally:
        del fc.env["CVIRT_FAULTS"]
    fc.manager.declare_exit("CVIRT_FAULTS=failover.fenced:exit")
    for h in HOSTS:
        fc.wait_host(h, "up", 30)
    since = last_event_id(fc)

    def restart_at_fence():
        m = fc.manager
        if m.wait(RECOVER_S):
            ended["rc"] = m.proc.returncode
            fc.start_manager()

    def crash(host):
        t = threading.Thread(target=restart_at_fence, daemon=True)
        t.start()
        ended["thread"] = t
        fc.crash_host(host)
    failover(fc, "crash", crash, None,
             "host crash, manager exits at its fence")
    ended["thread"].join(RECOVER_S)
    assert ended.get("rc") == 97, ended
    restarts = [e for e in fence_events(fc, since)
                if e["kind"] == "ha.restart" and e["object"] == "crash"]
    assert len(restarts) == 1, restarts
    drop_vm(fc, "crash")


def test_qemu_in_uninterruptible_sleep(fc, vms):
    """h3's VM's QEMU stuck in D (a frozen cgroup v1 freezer group: it
    survives SIGKILL, as a process stuck in I/O does), then h3's storage
    hung: the keeper's kill cannot be confirmed, so it stops petting and
    the watchdog resets h3; only after that reset does the VM start on
    another host."""
    v, _ = settle(fc, "dstate")
    host, uuid = v["host"], v["uuid"]
    pid = qemu_pid(uuid)
    t0 = time.monotonic()

    def stuck(h):
        fc.freeze(pid)
        os.kill(fc.client_pid(h), signal.SIGSTOP)
    try:
        row = failover(fc, "dstate", stuck, None,
                       "QEMU in D, storage hung")
    finally:
        fc.thaw()
        try:
            os.kill(fc.client_pid(host), signal.SIGCONT)
        except OSError:
            pass
    c = row["_copies"]
    reset = fc.resets.get(host, 0)
    assert reset > t0, "%s was not reset" % host
    new = [p for p in c.pids if p != pid]
    assert new and min(c.first[p] for p in new) > reset, (
        "a copy started before the reset of %s" % host)
    row["outcome"] += " (the new QEMU %.1f s after the reset)" % (
        min(c.first[p] for p in new) - reset)
    drop_vm(fc, "dstate")


def test_keeper_killed(fc, vms):
    """h3's lease keeper killed: its agent starts another at once, which
    takes over the state (same boot), so nothing is fenced, nothing
    restarted, the watchdog keeps being petted."""
    v, rid = settle(fc, "keeper")
    host, uuid = v["host"], v["uuid"]
    pid = qemu_pid(uuid)
    since = last_event_id(fc)
    c = Copies(uuid)
    try:
        old = fc.keeper_pids(host)
        assert len(old) == 1, old
        harness.declare_keeper_end(fc.agents[host].log_path,
                                   "test_faults kills it")
        os.kill(min(old), signal.SIGKILL)
        t0 = time.monotonic()
        wait_for(lambda: (lambda k: k and not k & old)(
            fc.keeper_pids(host)), 10, "a new keeper on " + host)
        took = time.monotonic() - t0
        end = time.monotonic() + QUIET_S
        while time.monotonic() < end:
            assert qemu_pid(uuid) == pid and fc.vm("keeper")["state"] == \
                "running"
            time.sleep(0.5)
        more_gens(fc, uuid, rid)
    finally:
        c.stop()
    bad = regressions(fc, uuid)
    ev = fence_events(fc, since)
    record("keeper killed", "kept on %s, new keeper" % host, took,
           c.runnable, bad, dstate=c.dstate, stopped=c.stopped)
    assert c.runnable == 1 and not bad and not ev, (c.runnable, bad, ev)
    assert not fc.resets.get(host, 0) > t0, "%s was reset" % host


def test_agent_and_keeper_killed(fc, vms):
    """h3's agent and keeper killed, its QEMU left alive: nobody renews
    the lease or pets the watchdog, so the host is reset (the stand-in
    kills what is left of it, the QEMU) before the manager, once the
    lease expired, restarts the VM elsewhere. (The VM of the fault
    before, on the same QEMU since.)"""
    def kill(host):
        fc.agents[host].kill(signal.SIGKILL)
        for k in fc.keeper_pids(host):
            os.kill(k, signal.SIGKILL)
        fc.agents[host].wait(10)
    failover(fc, "keeper", kill, None, "agent and keeper killed")
    drop_vm(fc, "keeper")
