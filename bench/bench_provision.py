#!/usr/bin/env python3
"""Provisioning and agent memory, side by side with libvirt on this machine.

provision_ms: API create + start of the test guest until QEMU runs (the
task ends when QMP says running; the guest's boot is not included);
provision_cli_ms: the same with `cvirt vm create` + `cvirt vm start`;
peer: `virsh define` + `virsh start` of the same guest (libvirt from
Debian, installed and started by this benchmark, domain type qemu);
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

RUNS = int(os.environ.get("BENCH_PROV_RUNS", "10"))
VIRSH_RUNS = int(os.environ.get("BENCH_PROV_VIRSH_RUNS", "10"))
KERNEL = os.path.join(cvirt.GUEST_DIR, "vmlinuz")
INITRD = os.path.join(cvirt.GUEST_DIR, "initrd.img")
LIBVIRT_PKGS = ["libvirt-daemon", "libvirt-daemon-driver-qemu",
                "libvirt-clients"]


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


def libvirt_up():
    """Installs and starts libvirt from Debian; None when it cannot run."""
    if shutil.which("virsh") is None or shutil.which("libvirtd") is None:
        log("installing libvirt from Debian")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "-q",
                            "--no-install-recommends"] + LIBVIRT_PKGS,
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env,
                           capture_output=True)
            r = subprocess.run(["apt-get", "install", "-y", "-q",
                                "--no-install-recommends"] + LIBVIRT_PKGS,
                               env=env, capture_output=True, text=True)
        if r.returncode != 0:
            return "apt-get install failed: " + r.stderr.strip()[-200:]
    subprocess.run(["getent", "group", "libvirt-qemu"], capture_output=True)
    subprocess.run(["groupadd", "-f", "libvirt-qemu"], capture_output=True)
    subprocess.run(["useradd", "-r", "-g", "libvirt-qemu", "libvirt-qemu"],
                   capture_output=True)
    os.makedirs("/var/log/libvirt", exist_ok=True)
    subprocess.run(["virtlogd", "-d"], capture_output=True)
    if cvirt.cpu_has_virt() or libvirt_pid() is not None:
        subprocess.run(["libvirtd", "-d"], capture_output=True)
    else:
        # /dev/kvm opens here but the CPU has no vmx/svm: libvirt probes
        # QEMU with KVM, then finds KVM unusable and throws its capability
        # cache away, probing every QEMU binary again on each define (about
        # a minute). Like cvirt's accel detection, show it TCG only: its
        # own mount namespace with /dev/kvm masked.
        subprocess.run(["unshare", "-m", "--propagation", "private", "sh",
                        "-c", "mount --bind /dev/null /dev/kvm && "
                        "exec libvirtd -d"], capture_output=True)
    cvirt.wait_for(lambda: subprocess.run(
        ["virsh", "-c", "qemu:///system", "version"],
        capture_output=True).returncode == 0, 30, "libvirtd")
    return None


def libvirt_pid():
    p = subprocess.run(["pidof", "libvirtd"], capture_output=True, text=True)
    return int(p.stdout.split()[0]) if p.stdout.split() else None


def domain_xml(name):
    return """<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory>
<vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type>
<kernel>%s</kernel><initrd>%s</initrd><cmdline>console=ttyS0</cmdline></os>
<devices><serial type='pty'/><console type='pty'/></devices></domain>""" % (
        name, KERNEL, INITRD)


def virsh(*args):
    return subprocess.run(["virsh", "-q", "-c", "qemu:///system"] +
                          list(args), capture_output=True, text=True,
                          check=True)


def libvirt_provision(tmp):
    times, names = [], []
    for i in range(VIRSH_RUNS):
        name = "cvbench%d" % i
        path = os.path.join(tmp, name + ".xml")
        with open(path, "w") as f:
            f.write(domain_xml(name))
        subprocess.run(["virsh", "-q", "-c", "qemu:///system", "destroy",
                        name], capture_output=True)
        subprocess.run(["virsh", "-q", "-c", "qemu:///system", "undefine",
                        name], capture_output=True)
        t0 = time.monotonic()
        virsh("define", path)
        virsh("start", name)
        times.append((time.monotonic() - t0) * 1000)
        names.append(name)
        log("virsh run %d: %.0f ms" % (i, times[-1]))
    return times, names


def main():
    out = {}
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
        log("agent RSS with %d running VMs: %.1f MiB" % (running, agent_rss))
    finally:
        cl.stop()
    floor = raw_floor()
    out["provision_floor_ms"] = fig(floor, "ms")
    already = libvirt_pid()
    why = libvirt_up()
    virsh_ms, lv_rss = None, None
    if why is None:
        with tempfile.TemporaryDirectory(prefix="bench-virsh.") as tmp:
            times, names = libvirt_provision(tmp)
            virsh_ms = statistics.median(times)
            out["provision_virsh_ms"] = fig(times, "ms")
            lv_rss = rss_mib(libvirt_pid())
            for n in names:
                subprocess.run(["virsh", "-q", "-c", "qemu:///system",
                                "destroy", n], capture_output=True)
                subprocess.run(["virsh", "-q", "-c", "qemu:///system",
                                "undefine", n], capture_output=True)
    else:
        log("libvirt cannot run here: " + why)
        out["provision_virsh_note"] = "libvirt not run: " + why
    if already is None:     # leave nothing running that we started
        subprocess.run(["pkill", "-x", "libvirtd"], capture_output=True)
        subprocess.run(["pkill", "-x", "virtlogd"], capture_output=True)
    out["provision_ms"] = fig(api_ms, "ms", virsh_ms,
                              "virsh define + start", "<= 80 ms")
    out["provision_cli_ms"] = fig(cli_ms, "ms", virsh_ms,
                                  "virsh define + start")
    if virsh_ms:
        out["provision_ratio_vs_virsh"] = round(
            statistics.median(api_ms) / virsh_ms, 3)
    out["agent_rss_mib"] = {"value": round(agent_rss, 1), "unit": "MiB",
                            "runs": 1, "target": "<= 10 MiB"}
    if lv_rss:
        out["agent_rss_mib"].update(peer=round(lv_rss, 1), peer_name=
                                    "libvirtd with %d of the same VMs" % VIRSH_RUNS,
                                    ratio=round(agent_rss / lv_rss, 3))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
