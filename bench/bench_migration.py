#!/usr/bin/env python3
"""Migration benchmark: `vm migrate` of idle 256 MiB and 1 GiB guests and
of a busy guest between two agents over loopback, side by side with a raw
QEMU-to-QEMU migration of the same guest (the floor: no cvirt at all).
Downtime and total time are QEMU's own figures; migration_total_ms is the
`cvirt vm migrate` command end to end. Prints one JSON object (bench/run).

env: CVIRT_BIN, BENCH_MIG_RUNS (default 5).
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cvirt  # noqa: E402
from guestcheck import damage  # noqa: E402

RUNS = int(os.environ.get("BENCH_MIG_RUNS", "5"))
KERNEL = cvirt.GUEST_KERNEL
INITRD = cvirt.GUEST_INITRD


def log(msg):
    print("bench_migration: " + msg, file=sys.stderr, flush=True)


def figure(samples, unit, peer=None, peer_name=None, target=None):
    f = {"value": round(statistics.median(samples), 3),
         "min": round(min(samples), 3), "max": round(max(samples), 3),
         "runs": len(samples), "unit": unit}
    if peer is not None:
        f["peer"] = round(peer, 3)
        f["peer_name"] = peer_name
        f["ratio"] = round(f["value"] / peer, 3) if peer else None
    if target:
        f["target"] = target
    return f


class Qmp:
    """Just enough QMP for the raw floor."""

    def __init__(self, path):
        for _ in range(200):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.02)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            m = json.loads(self.f.readline())
            if "return" in m or "error" in m:
                return m.get("return", m.get("error"))


def raw_qemu(tmp, mem, incoming=None, extra=""):
    name = "dst" if incoming else "src"
    sock = os.path.join(tmp, name + ".qmp")
    # The RAM size cvirt gives a TCG guest (src/qemu/qemu_cmd.c: 8 KiB
    # more, or QEMU 7.2 loses guest writes; docs/cluster.md).
    argv = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max",
            "-m", "%dk" % (mem * 1024 + 8), "-nodefaults", "-display",
            "none", "-serial", "file:" + os.path.join(tmp, name + ".serial"),
            "-qmp", "unix:%s,server=on,wait=off" % sock, "-kernel", KERNEL,
            "-initrd", INITRD, "-append", "console=ttyS0 " + extra]
    if incoming:
        argv += ["-incoming", incoming]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL), sock


def serial_text(path, proc):
    """What QEMU proc wrote to its serial file so far ("" until it has
    made the file); fails at once when QEMU has exited."""
    assert proc.poll() is None, "QEMU exited with %s" % proc.returncode
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def raw_floor(mem, extra=""):
    """One raw migration of a booted guest: (downtime_ms, total_ms)."""
    with tempfile.TemporaryDirectory(prefix="bench-mig.") as tmp:
        src, ssock = raw_qemu(tmp, mem, extra=extra)
        try:
            cvirt.wait_for(lambda: "init reached" in serial_text(
                os.path.join(tmp, "src.serial"), src), 60, "raw guest boot")
            time.sleep(2 if "memhog" in extra else 0.5)
            port = cvirt.free_port()
            dst, dsock = raw_qemu(tmp, mem, "tcp:127.0.0.1:%d" % port, extra)
            try:
                q = Qmp(ssock)
                Qmp(dsock)
                q.cmd("migrate-set-capabilities", capabilities=[
                    {"capability": "auto-converge", "state": True}])
                # The same limits cvirt sets: 10 ms, no bandwidth cap
                # (QEMU's default cap would make the floor look slow).
                q.cmd("migrate-set-parameters", **{"downtime-limit": 10,
                                                   "max-bandwidth": 1 << 40})
                q.cmd("migrate", uri="tcp:127.0.0.1:%d" % port)
                while True:
                    st = q.cmd("query-migrate")
                    if st.get("status") in ("completed", "failed",
                                            "cancelled"):
                        break
                    time.sleep(0.01)
                # A failed floor would read as 0 ms: fail instead.
                if st.get("status") != "completed" or "downtime" not in st:
                    raise RuntimeError("raw QEMU migration (the floor) did "
                                       "not complete: %s" % st)
                return st["downtime"], st["total-time"]
            finally:
                dst.kill()
                dst.wait()
        finally:
            src.kill()
            src.wait()


def boot(cl, name, host, extra):
    """Starts the VM on host and waits for a boot it did not have before."""
    rc, out, _ = cl.cli("vm", "serial", name, check=False)
    before = len(cvirt.boot_ids(out)) if rc == 0 else 0
    cl.cli("vm", "start", name, "--host", host)
    cl.wait_serial(name, "cvirt-guest: boot-id", 60, count=before + 1)
    time.sleep(2 if "memhog" in extra else 0.5)


def assert_whole(cl, name):
    """The guest runs and its console shows no oops or panic: a migration
    that broke it fails the benchmark (no run is dropped or retried)."""
    v = cl.vm(name)
    serial = cl.serial(name)
    bad = damage(serial)
    if v["state"] != "running" or bad or len(cvirt.boot_ids(serial)) != 1:
        raise cvirt.CvirtError("guest %s broken after a migration (state %s)"
                               ": %r\n%s" % (name, v["state"], bad[:5],
                                             serial[-2000:]))


def cvirt_runs(cl, name, mem, extra):
    """RUNS migrations back and forth; one that fails or breaks the guest
    fails the benchmark with the reason."""
    cl.cli("vm", "create", name, "--cpus", 1, "--memory", mem, "--kernel",
           KERNEL, "--initrd", INITRD, "--cmdline", "console=ttyS0 " + extra)
    boot(cl, name, "h1", extra)
    down, total, e2e = [], [], []
    for i in range(RUNS):
        to = "h2" if cl.vm(name)["host"] == "h1" else "h1"
        t0 = time.monotonic()
        rc, task, err = cl.cli("vm", "migrate", name, "--to", to, json=True,
                               timeout=300, check=False)
        if rc != 0:
            raise cvirt.CvirtError("%s run %d: migration failed: %s" % (
                name, i, err.strip()))
        e2e.append((time.monotonic() - t0) * 1000)
        down.append(task["result"]["downtime_ms"])
        total.append(task["result"]["total_ms"])
        log("%s run %d: downtime %s ms, total %s ms, end to end %.0f ms" % (
            name, i, down[-1], total[-1], e2e[-1]))
        assert_whole(cl, name)
    # A panic can come a moment after the last switch-over.
    time.sleep(3)
    assert_whole(cl, name)
    cl.cli("vm", "delete", name, "--force")
    return down, total, e2e


def main():
    out = {}
    cl = cvirt.Cluster()
    try:
        cl.start(hosts=("h1", "h2"))
        cases = (("256mib", 256, ""), ("", 1024, ""),
                 ("busy", 512, "cvirt.memhog=1"))
        for suffix, mem, extra in cases:
            tag = ("_" + suffix) if suffix else ""
            down, total, e2e = cvirt_runs(cl, "bm" + (suffix or "1g"), mem,
                                          extra)
            floors = [raw_floor(mem, extra) for _ in range(3)]
            fd = statistics.median(f[0] for f in floors)
            ft = statistics.median(f[1] for f in floors)
            log("raw QEMU %s: downtime %s ms, total %s ms" % (
                suffix or "1g", fd, ft))
            out["migration_downtime_ms" + tag] = figure(
                down, "ms", fd, "raw QEMU migrate", "<= 10 ms")
            out["migration_qemu_total_ms" + tag] = figure(
                total, "ms", ft, "raw QEMU migrate")
            out["migration_total_ms" + tag] = figure(
                e2e, "ms", ft, "raw QEMU migrate (QEMU total)",
                "<= 1000 ms" if not suffix else None)
        out["migration_virsh_note"] = ("virsh migrate needs two libvirt "
                                       "hosts; not run on this machine")
    finally:
        cl.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
