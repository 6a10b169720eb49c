#!/usr/bin/env python3
"""Storage benchmark: snapshot time of a running VM through the API at 1 GiB
and 50 GiB virtual disk size against a raw QMP blockdev-snapshot-sync on a
bare QEMU (the floor), and the throughput of a full backup of a running VM
against `qemu-img convert` of the same image. Prints one JSON object (see
bench/run for the format).

env: CVIRT_BIN, BENCH_SNAP_RUNS (default 15), BENCH_BACKUP_RUNS (3),
BENCH_BACKUP_MIB (data on the backed-up disk, default 1024), BENCH_KEEP.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cvirt  # noqa: E402

SNAP_RUNS = int(os.environ.get("BENCH_SNAP_RUNS", "15"))
BACKUP_RUNS = int(os.environ.get("BENCH_BACKUP_RUNS", "3"))
BACKUP_MIB = int(os.environ.get("BENCH_BACKUP_MIB", "1024"))
KERNEL = cvirt.GUEST_KERNEL
INITRD = cvirt.GUEST_INITRD


def log(msg):
    print("bench_storage: " + msg, file=sys.stderr, flush=True)


def figure(samples, unit, peer=None, peer_name=None, target=None,
           ratio=None):
    f = {"value": round(statistics.median(samples), 3),
         "min": round(min(samples), 3), "max": round(max(samples), 3),
         "runs": len(samples), "unit": unit}
    for k, v in (("peer", peer), ("peer_name", peer_name),
                 ("target", target), ("ratio", ratio)):
        if v is not None:
            f[k] = v
    return f


def api(cl, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cl.url + "/api/v1" + path, data=data,
                                 method=method, headers={
                                     "Authorization": "Bearer " + cl.token(),
                                     "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")


def wait_task(cl, task):
    while task["state"] in ("queued", "running"):
        time.sleep(0.02)
        task = api(cl, "GET", "/tasks/%d" % task["id"])
    assert task["state"] == "succeeded", task
    return task


def boot(cl, name, disk_mib, fill_mib=0):
    cl.cli("vm", "create", name, "--cpus", 1, "--memory", 128, "--disk",
           disk_mib, "--kernel", KERNEL, "--initrd", INITRD, "--cmdline",
           "console=ttyS0")
    v = cl.vm(name)
    path = os.path.join(cl.storage, "vms", v["uuid"], v["disks"][0]["file"])
    if fill_mib:
        # Incompressible-looking data so both copies move real bytes.
        subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                        "write -P 0xa5 0 %dM" % fill_mib, path], check=True,
                       capture_output=True)
    cl.cli("vm", "start", name)
    cl.wait_serial(name, "cvirt-guest: init reached", 90)
    return path


def api_snapshots(cl, name):
    ms = []
    for i in range(SNAP_RUNS):
        t = time.perf_counter()
        task = api(cl, "POST", "/vms/%s/snapshots" % name, {"name": "b%d" % i})
        dt = (time.perf_counter() - t) * 1000
        assert task["state"] == "succeeded", task
        ms.append(dt)
    return ms


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        for _ in range(100):
            try:
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None):
        m = {"execute": name}
        if args:
            m["arguments"] = args
        self.f.write(json.dumps(m) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "event" not in r:
                assert "return" in r, r
                return r["return"]


def raw_qmp_snapshots(tmp, size):
    """blockdev-snapshot-sync on a bare QEMU running the test guest."""
    disk = os.path.join(tmp, "raw-%s.qcow2" % size)
    sock = os.path.join(tmp, "raw-%s.qmp" % size)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, size],
                   check=True)
    q = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-nodefaults",
         "-display", "none", "-m", "128", "-kernel", KERNEL, "-initrd",
         INITRD, "-append", "console=ttyS0", "-chardev",
         "socket,id=q,path=%s,server=on,wait=off" % sock, "-mon",
         "chardev=q,mode=control", "-blockdev",
         "driver=file,node-name=f0,filename=" + disk, "-blockdev",
         "driver=qcow2,node-name=d0,file=f0", "-device",
         "virtio-blk-pci,drive=d0"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        qmp = Qmp(sock)
        time.sleep(3)       # let the guest boot a little
        node, ms = "d0", []
        for i in range(SNAP_RUNS):
            nn = "s%d" % i
            t = time.perf_counter()
            qmp.cmd("blockdev-snapshot-sync", {
                "node-name": node, "snapshot-file":
                os.path.join(tmp, "raw-%s-%d.qcow2" % (size, i)),
                "snapshot-node-name": nn, "format": "qcow2"})
            ms.append((time.perf_counter() - t) * 1000)
            node = nn
        return ms
    finally:
        q.kill()
        q.wait()


def convert(path, out, durable):
    """qemu-img convert of the image; durable: with the output flushed at
    the end (-t writeback), as a backup is when it is reported done."""
    t = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O",
                    "qcow2"] + (["-t", "writeback"] if durable else []) +
                   [path, out], check=True)
    dt = time.perf_counter() - t
    os.unlink(out)
    return dt


def backups(cl, name, path):
    """Seconds per backup through the API (copy, sync, checksums, manifest),
    per durable qemu-img convert and per plain (unflushed) convert."""
    bk, cp, cv, cvu = [], [], [], []
    out = os.path.join(cl.storage, "convert.qcow2")
    # The first copy of a freshly written image is 0.5-1 s slower here
    # whichever tool makes it (qemu-img convert included): one untimed
    # copy first, so neither side is measured on that first pass.
    convert(path, out, False)
    for _ in range(BACKUP_RUNS):
        subprocess.run(["sync"])
        t = time.perf_counter()
        task = wait_task(cl, api(cl, "POST", "/vms/%s/backups" % name, {}))
        bk.append(time.perf_counter() - t)
        cp.append(task["result"]["copy_ms"] / 1000.0)
        api(cl, "DELETE", "/backups/" + task["result"]["id"])
        subprocess.run(["sync"])
        cv.append(convert(path, out, True))
        subprocess.run(["sync"])
        cvu.append(convert(path, out, False))
    return bk, cp, cv, cvu


def main():
    if not (os.path.exists(KERNEL) and os.path.exists(INITRD)):
        subprocess.run([os.path.join(ROOT, "tests", "guest",
                                     "build-guest.sh")], check=True)
    tmp = tempfile.mkdtemp(prefix="cvirt-bench.", dir="/tmp")
    cl = cvirt.Cluster(base=tmp)
    out = {}
    try:
        cl.start()
        log("booting guests with 1 GiB and 50 GiB disks")
        boot(cl, "snap1g", 1024)
        boot(cl, "snap50g", 51200)
        small = api_snapshots(cl, "snap1g")
        large = api_snapshots(cl, "snap50g")
        cl.cli("vm", "stop", "snap1g", "--force")
        cl.cli("vm", "stop", "snap50g", "--force")
        log("raw QMP snapshots")
        raw_small = raw_qmp_snapshots(tmp, "1G")
        raw_large = raw_qmp_snapshots(tmp, "50G")
        out["snapshot_qmp_ms_small_disk"] = figure(raw_small, "ms")
        out["snapshot_qmp_ms_large_disk"] = figure(raw_large, "ms")
        out["snapshot_ms_small_disk"] = figure(
            small, "ms", round(statistics.median(raw_small), 3),
            "raw QMP, 1 GiB", "<= 25 ms")
        out["snapshot_ms_large_disk"] = figure(
            large, "ms", round(statistics.median(raw_large), 3),
            "raw QMP, 50 GiB", "<= 25 ms")
        log("backup vs qemu-img convert, %d MiB of data" % BACKUP_MIB)
        path = boot(cl, "bk", BACKUP_MIB + 512, BACKUP_MIB)
        bk, cp, cv, cvu = backups(cl, "bk", path)
        mib = float(BACKUP_MIB)
        med = statistics.median
        out["backup_mibs"] = figure(
            [mib / s for s in bk], "MiB/s", round(mib / med(cv), 1),
            "qemu-img convert -t writeback",
            ratio=round(med(cv) / med(bk), 3))
        ratio = round(med(cv) / med(bk), 3)
        out["backup_throughput_ratio_vs_qemu_img"] = {
            "value": ratio, "target": ">= 0.9",
            "peer_name": "convert with the output flushed, as a finished "
            "backup is"}
        ratio = round(med(cvu) / med(cp), 3)
        out["backup_copy_ratio_vs_qemu_img_noflush"] = {
            "value": ratio, "peer_name": "the block job's "
            "copy alone (no sync, no checksum) against unflushed convert"}
        ratio = round(med(cvu) / med(bk), 3)
        out["backup_throughput_ratio_vs_qemu_img_noflush"] = {
            "value": ratio, "peer_name": "convert with its "
            "default unsafe cache (nothing flushed)"}
        print(json.dumps(out))
    finally:
        cl.stop()
        if not os.environ.get("BENCH_KEEP"):
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept " + tmp)


if __name__ == "__main__":
    main()
