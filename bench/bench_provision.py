#!/usr/bin/env python3
"""Provisioning and agent memory, side by side with libvirt on this machine.

provision_ms: API create + start of the test guest until QEMU runs (the
task ends when QMP says running; the guest's boot is not included);
provision_cli_ms: the same with `cvirt vm create` + `cvirt vm start`;
peer: `virsh define` + `virsh start` of the same guest (libvirt from
Debian, installed, started and checked by bench/libvirt_peer.py, domain
type qemu): a peer that cannot run, or that is mis-set-up (a run that
re-probed QEMU's capabilities, or a median over 3 s), fails this benchmark
with the cause libvirtd logged; its set-up goes to bench/results.md;
floor: a bare QEMU spawned until QMP reports running.
agent_rss_mib: the agent's resident memory with 10 running VMs, beside
libvirtd's with the same 10 guests. Prints one JSON object (bench/run).

env: CVIRT_BIN, BENCH_PROV_RUNS (default 10), BENCH_PROV_VIRSH_RUNS (10).
"""

import json
import os
import shutil
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
import libvirt_peer  # noqa: E402
from libvirt_peer import PeerError, SANE_MS  # noqa: E402

RUNS = int(os.environ.get("BENCH_PROV_RUNS", "10"))
VIRSH_RUNS = int(os.environ.get("BENCH_PROV_VIRSH_RUNS", "10"))
KERNEL = cvirt.GUEST_KERNEL
INITRD = cvirt.GUEST_INITRD


def log(msg):
    print("bench_provision: " + msg, file=sys.stderr, flush=True)


def fig(samples, unit, peer=None, peer_name=None, target=None):
    f = {"value": round(statistics.median(samples), 2),
         "min": round(min(samples), 2), "max": round(max(samples), 2),
         "runs": len(samples), "unit": unit}
    if peer is not None:
        f.update(peer=round(peer, 2), peer_name=peer_name,
                 ratio=round(f["value"] / peer, 3) if peer else None)
    if target:
        f["target"] = target
    return f


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def api(cl, method, path, body=None):
    req = urllib.request.Request(
        cl.url + "/api/v1" + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer " + cl.token(),
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def wait_task(cl, t):
    while t["state"] in ("queued", "running"):
        time.sleep(0.002)
        t = api(cl, "GET", "/tasks/%d" % t["id"])
    if t["state"] != "succeeded":
        raise RuntimeError(t["error"])
    return t


def cvirt_provision(cl):
    api_ms, cli_ms = [], []
    for i in range(RUNS):
        name = "p%d" % i
        t0 = time.monotonic()
        api(cl, "POST", "/vms", {"name": name, "cpus": 1, "memory_mib": 128,
                                 "kernel": KERNEL, "initrd": INITRD,
                                 "cmdline": "console=ttyS0 quiet"})
        wait_task(cl, api(cl, "POST", "/vms/%s/start" % name))
        api_ms.append((time.monotonic() - t0) * 1000)
        # A booting TCG guest takes a core for seconds: let it settle so
        # the next figure is not measured on a machine it saturates.
        cl.wait_serial(name, "cvirt-guest: boot-id", 60)
        t0 = time.monotonic()
        cl.cli("vm", "create", "c" + name, "--cpus", 1, "--memory", 128,
               "--kernel", KERNEL, "--initrd", INITRD)
        cl.cli("vm", "start", "c" + name)
        cli_ms.append((time.monotonic() - t0) * 1000)
        cl.cli("vm", "delete", "c" + name, "--force")
        log("run %d: API %.0f ms, CLI %.0f ms" % (i, api_ms[-1], cli_ms[-1]))
    return api_ms, cli_ms


def raw_floor():
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-prov.") as tmp:
        for i in range(RUNS):
            sock = os.path.join(tmp, "q%d.qmp" % i)
            t0 = time.monotonic()
            p = subprocess.Popen(
                ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m",
                 "128", "-nodefaults", "-display", "none", "-S", "-qmp",
                 "unix:%s,server=on,wait=off" % sock, "-kernel", KERNEL,
                 "-initrd", INITRD, "-append", "console=ttyS0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            s = socket.socket(socket.AF_UNIX)
            while True:
                try:
                    s.connect(sock)
                    break
                except OSError:
                    if p.poll() is not None or time.monotonic() - t0 > 30:
                        raise RuntimeError("the floor's QEMU did not open "
                                           "its QMP socket (exit %s)" %
                                           p.returncode)
                    time.sleep(0.001)
            f = s.makefile("rw")
            f.readline()
            for cmd in ("qmp_capabilities", "cont", "query-status"):
                f.write(json.dumps({"execute": cmd}) + "\n")
                f.flush()
                while "return" not in json.loads(f.readline()):
                    pass
            out.append((time.monotonic() - t0) * 1000)
            p.kill()
            p.wait()
    return out


def domain_xml(name, serial_log):
    """The test guest for libvirt, as cvirt's API runs start it (kernel,
    initrd, cmdline, one vCPU, 128 MiB, no disk), the serial console logged
    to a file (through virtlogd) so the run can wait for the guest's boot
    like cvirt's runs do."""
    return """<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory>
<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type>
<kernel>%s</kernel><initrd>%s</initrd><cmdline>console=ttyS0 quiet</cmdline>
</os><devices><serial type='pty'><log file='%s' append='off'/></serial>
<console type='pty'/></devices></domain>""" % (name, KERNEL, INITRD,
                                              serial_log)


DOMAIN_SETUP = ("domain type `qemu` (TCG), machine `q35`, 1 vCPU, 128 MiB, "
                "direct kernel boot of the test guest (`console=ttyS0 "
                "quiet`), no disk, no NIC, serial on a pty logged by "
                "virtlogd; libvirt adds its q35 defaults (PCIe root ports, "
                "USB controller, balloon)")


def libvirt_provision(lv):
    """VIRSH_RUNS x (virsh define + virsh start) in ms; each guest then
    boots (as cvirt's runs wait for theirs) before the next run. PeerError
    when the median is over libvirt_peer.SANE_MS, naming what libvirtd
    logged during the slow runs."""
    times, slow = [], []
    for i in range(VIRSH_RUNS):
        name = "cvbench%d" % i
        off = lv.log_size()
        d_ms, s_ms = lv.define_start(name, domain_xml(name,
                                                      lv.serial_log(name)))
        times.append(d_ms + s_ms)
        log("virsh run %d: define %.0f ms + start %.0f ms" % (i, d_ms, s_ms))
        if times[-1] > SANE_MS:
            slow.append("run %d: define %.0f ms + start %.0f ms, %s" % (
                i, d_ms, s_ms, lv.cause(off)))
        lv.wait_serial(name, "cvirt-guest: boot-id", 60)
    med = statistics.median(times)
    if med > SANE_MS:
        raise PeerError(
            "virsh define + start took %.0f ms (median of %d runs), over the "
            "%d ms a set-up libvirt needs here (~600 ms): %s" % (
                med, len(times), SANE_MS, "; ".join(slow[:3])))
    return times


def main():
    out = {}
    tmp = tempfile.mkdtemp(prefix="bench-virsh.")
    lv = libvirt_peer.Libvirt(tmp)
    try:
        # The peer first: a machine where it cannot run fails at once.
        lv.up()
        cl = cvirt.Cluster()
        try:
            cl.start(hosts=("h1",))
            # 10 one-vCPU guests on a 2-core machine: allow the overcommit.
            cl.cli("cluster", "set", "cpu_overcommit_pct=3200")
            api_ms, cli_ms = cvirt_provision(cl)
            agent = cl.agents["h1"].pid
            running = len([v for v in cl.cli("vm", "list", json=True)
                           if v["state"] == "running"])
            agent_rss = rss_mib(agent)
            log("agent RSS with %d running VMs: %.1f MiB" % (running,
                                                             agent_rss))
        finally:
            cl.stop()
        floor = raw_floor()
        times = libvirt_provision(lv)
        lv_rss = lv.rss_mib()
    except PeerError as e:
        log("FAILED: the peer (libvirt) %s" % e)
        print(json.dumps({"error": "libvirt peer: %s" % e,
                          "setup": {"libvirt": lv.setup}}))
        return 1
    finally:
        lv.down()
        shutil.rmtree(tmp, ignore_errors=True)
    virsh_ms = statistics.median(times)
    out["provision_floor_ms"] = fig(floor, "ms")
    out["provision_virsh_ms"] = fig(times, "ms", target="< %d ms (sanity "
                                    "bound of the peer)" % SANE_MS)
    out["provision_ms"] = fig(api_ms, "ms", virsh_ms,
                              "virsh define + start", "<= 80 ms")
    out["provision_cli_ms"] = fig(cli_ms, "ms", virsh_ms,
                                  "virsh define + start")
    out["provision_ratio_vs_virsh"] = round(statistics.median(api_ms) /
                                            virsh_ms, 3)
    out["agent_rss_mib"] = {"value": round(agent_rss, 1), "unit": "MiB",
                            "runs": 1, "target": "<= 10 MiB",
                            "peer": round(lv_rss, 1), "peer_name":
                            "libvirtd with %d of the same VMs" % VIRSH_RUNS,
                            "ratio": round(agent_rss / lv_rss, 3)}
    out["setup"] = {"libvirt": lv.setup + [DOMAIN_SETUP]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
