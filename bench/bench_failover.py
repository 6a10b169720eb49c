#!/usr/bin/env python3
"""Failover benchmark: a host crash (every process of the host killed at
once: agent, lease keeper, QEMU) until its HA VM runs on another host, on
three hosts in network namespaces, with default timing. Median and max of
BENCH_FAILOVER_RUNS (default 10) runs, and the number of runs in which a
sampler saw two QEMUs of the VM (must be 0). Peers: vSphere HA declares a
host dead after ~15 s; Proxmox HA takes ~2 minutes (documented figures,
they cannot run here). Prints one JSON object (bench/run).

Then the same for a storage hang: the hosts' storage on a GlusterFS
volume (tests/gluster-server, replica 3), each host with a FUSE client of
its own, and the VM's host's client stopped (SIGSTOP) until the VM runs
elsewhere (test_faults.FaultCluster, the fault suite's cluster, whose
watchdog stand-in resets a host). Two series, BENCH_FAILOVER_HANG_RUNS
(default 5) runs each:

- failover_storage_hang_s: a guest that only prints. Its QEMU has no I/O
  in flight on the hung storage, so the keeper's SIGKILL completes and is
  confirmed: no reset (the path of storage that fails fast, or of a hang
  that leaves QEMU killable).
- failover_storage_hang_io_s: a guest writing its disk every 100 ms (the
  fault suite's generation counter). Its QEMU is stuck in D on the hung
  storage, the keeper cannot confirm the kill, stops petting, and the
  watchdog resets the host; the figure says in how many runs it did.

Copies are sampled as the fault suite does: runnable QEMUs of the VM,
every 10 ms.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cvirt  # noqa: E402
from netns import NetnsCluster  # noqa: E402
# The fault suite's sampler: runnable QEMUs of a VM, every 10 ms.
from test_faults import Copies  # noqa: E402

RUNS = int(os.environ.get("BENCH_FAILOVER_RUNS", "10"))
HANG_RUNS = int(os.environ.get("BENCH_FAILOVER_HANG_RUNS", "5"))
KERNEL = cvirt.GUEST_KERNEL
INITRD = cvirt.GUEST_INITRD


def log(msg):
    print("bench_failover: " + msg, file=sys.stderr, flush=True)


def figure(times):
    return {"value": round(statistics.median(times), 2),
            "min": round(min(times), 2), "max": round(max(times), 2),
            "runs": len(times), "unit": "s", "peer": 15, "peer_name":
            "vSphere HA declares a host dead (documented)",
            "ratio": round(statistics.median(times) / 15, 3),
            "target": "<= 10 s"}


def failovers(cl, n, fault, inject, heal, storage="local", io=False):
    """n failovers of the HA VM "fo" (started here, on domain storage;
    with io, a disk its guest writes every 100 ms): inject(victim) on its
    host, then the time until it runs on another host; heal(victim) and
    the host back. The VM is deleted at the end. (times, runs that saw
    two runnable QEMUs of it)."""
    more = ["--disk", 1, "--cmdline", "console=ttyS0 cvirt.gencount=1"] \
        if io else ["--cmdline", "console=ttyS0"]
    cl.cli("vm", "create", "fo", "--cpus", 1, "--memory", 128, "--ha",
           "--kernel", KERNEL, "--initrd", INITRD, "--storage", storage,
           *more)
    cl.cli("vm", "start", "fo")
    uuid = cl.vm("fo")["uuid"]
    times, doubles = [], 0
    for i in range(n):
        victim = cl.vm("fo")["host"]
        cl.wait_serial("fo", "cvirt-guest: boot-id", 90, count=i + 1)
        c = Copies(uuid)
        t0 = time.monotonic()
        try:
            inject(victim)
            cvirt.wait_for(lambda: (lambda x: x["state"] == "running" and
                                    x["host"] not in (None, victim))(
                cl.vm("fo")), 60, "failover", interval=0.05)
            times.append(time.monotonic() - t0)
        finally:
            doubles += c.stop() > 1
            heal(victim)
        log("%s %d: %s -> %s in %.2f s" % (fault, i, victim,
                                            cl.vm("fo")["host"], times[-1]))
    cl.cli("vm", "stop", "fo", "--force")
    cvirt.wait_for(lambda: cl.vm("fo")["state"] == "stopped", 60,
                   "fo stopped")
    cl.cli("vm", "delete", "fo")
    return times, doubles


def hang_series():
    """The storage-hang runs, in this process started by storage_hang()
    with the GlusterFS volume in its environment (cvirt reads it at
    import). Prints the figures as JSON."""
    from test_faults import FaultCluster
    hosts = ("h1", "h2", "h3")
    cl = FaultCluster(hosts)
    stopped = {}

    def hang(victim):
        stopped[victim] = cl.client_pid(victim)
        os.kill(stopped[victim], signal.SIGSTOP)

    def heal(victim):
        try:
            os.kill(stopped.pop(victim), signal.SIGCONT)
        except (OSError, KeyError):
            pass                # reset: the client is gone
        cl.host_back(victim)
    try:
        cl.start(hosts=hosts)
        times, doubles = failovers(cl, HANG_RUNS, "storage hang", hang, heal)
        idle_resets = cl.nresets
        io_times, io_doubles = failovers(cl, HANG_RUNS,
                                         "storage hang, guest writing",
                                         hang, heal, io=True)
        io_resets = cl.nresets - idle_resets
    finally:
        cl.stop()
    log("hosts reset by their watchdog: %d in %d runs with the idle guest, "
        "%d in %d with the writing one" % (idle_resets, len(times),
                                          io_resets, len(io_times)))
    print(json.dumps({
        "failover_storage_hang_s": dict(figure(times),
                                        target="<= 10 s, like a crash"),
        "failover_storage_hang_double_runs": doubles,
        "failover_storage_hang_resets": idle_resets,
        "failover_storage_hang_io_s": dict(figure(io_times),
                                           target="<= 10 s, like a crash"),
        "failover_storage_hang_io_double_runs": io_doubles,
        "failover_storage_hang_io_resets": io_resets}))


def storage_hang():
    """Runs hang_series() in a child on a GlusterFS volume of its own;
    its figures."""
    gl = tempfile.mkdtemp(prefix="cvirt-gluster.")
    server = os.path.join(ROOT, "tests", "gluster-server")
    try:
        mnt = subprocess.run([server, "start", gl, "--replica", "3"],
                             check=True, capture_output=True,
                             text=True).stdout.strip()
        env = dict(os.environ, CVIRT_TEST_SHARED=mnt,
                   CVIRT_TEST_SHARED_CLIENT="%s mount %s" % (server, gl))
        p = subprocess.run([sys.executable, __file__, "--storage-hang"],
                           env=env, stdout=subprocess.PIPE, check=True,
                           text=True)
        return json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([server, "stop", gl], capture_output=True)


def main():
    hosts = ("h1", "h2", "h3")
    cl = NetnsCluster(hosts)
    try:
        cl.start(hosts=hosts)
        times, doubles = failovers(cl, RUNS, "crash", cl.crash_host,
                                   cl.start_agent)
    finally:
        cl.stop()
    out = {"failover_s": figure(times), "failover_double_runs": doubles}
    if HANG_RUNS > 0:
        out.update(storage_hang())
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1:] == ["--storage-hang"]:
        hang_series()
    else:
        main()
