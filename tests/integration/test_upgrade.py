"""The first start of this version's agent on a host that the previous
version ran (issue 14): its lease keeper was forked inside the agent and
left no keeper.state, only DATA/keeper.pid, DATA/keeper.status and itself,
still running and renewing. The new keeper must take its VMs over alive
and guard them: the QEMU runs on, and is killed within the fence time once
its storage lease lapses.

The previous version's keeper is oldkeeper.py (its loop, in Python); the
host's other leftovers (the VM records, QMP sockets, TAPs) are the same in
both versions, so the VM is started by this version's agent, which then
stops, and its keeper is swapped for the old one.

Guards src/agent/klegacy.c (keeper_legacy_takeover and what it reads) and
src/agent/kmain.c (keeper_main calling it before the first tick): without
them the VM's QEMU is killed when the agent starts. (src/agent/lease.c's
longer wait for a keeper that takes over matters when the old keeper's
round is slow; tests/unit/test_klegacy.c covers the takeover's faults.)
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from cvirt import pid_alive, qemu_pid, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
# The keeper's defaults (docs/keeper.md): R, F and the tick T, in seconds.
R, F, T = 0.5, 3.0, 0.1
INIT = "cvirt-guest: init reached"


def keeper_status(run):
    """The keeper's status reply (docs/keeper.md, control socket)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(2)
        s.connect(os.path.join(run, "keeper.sock"))
        s.send(b'{"op":"status"}')
        return json.loads(s.recv(8192))


@pytest.mark.slow
def test_upgrade_keeps_running_vms_guarded(make_cluster, guest, tmp_path):
    cl = make_cluster(agent_extra={"h1": ["--watchdog", "none"]})
    adir = os.path.join(cl.base, "a-h1")
    cl.cli("vm", "create", "up1", "--cpus", 1, "--memory", 256,
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0")
    cl.cli("vm", "start", "up1")
    cl.wait_serial("up1", INIT, 60)
    uuid = cl.vm("up1")["uuid"]
    pid = qemu_pid(uuid)
    assert pid is not None

    # The host as the previous version leaves it: the agent stopped with
    # a VM, its own keeper running on, no state of this version's.
    with open(os.path.join(adir, "keeper.conf")) as f:
        run = json.load(f)["run"]
    cl.agents["h1"].stop()
    (keeper,) = cl.cluster_keepers()
    os.kill(keeper, signal.SIGTERM)
    wait_for(lambda: not pid_alive(keeper), 5, "this version's keeper to go")
    for p in (os.path.join(run, "keeper.state"),
              os.path.join(adir, "keeper.conf")):
        os.unlink(p)
    with open(tmp_path / "oldkeeper.log", "w") as log:
        old = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "oldkeeper.py"), "--data",
             adir, "--host", "h1", "--storage", "local=" + cl.storage],
            stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(os.path.join(adir, "keeper.status")),
                 5, "the old keeper's first round")
        assert pid_alive(pid)

        cl.start_agent("h1")
        assert old.wait(5) == -signal.SIGKILL, "the old keeper runs on"
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()
    assert qemu_pid(uuid) == pid, "the upgrade killed the VM's QEMU"
    assert not os.path.exists(os.path.join(adir, "keeper.pid"))
    assert not os.path.exists(os.path.join(adir, "keeper.status"))
    assert cl.agents["h1"].logged("storage local: renewed by the previous "
                                  "keeper")
    st = keeper_status(run)
    assert st["domains"]["local"]["state"] == "ok", st
    assert st["vms"] == 1, st
    assert cl.wait_state("up1", "running")["host"] == "h1"

    # Guarded, not only spared: more than a fence time passes with the
    # QEMU alive; then its lease cannot be renewed (a directory where the
    # lease file was) and the keeper kills it. Its last renewal started
    # at most R before t0 (plus one write), so the kill comes between
    # t0 + F - K - R and t0 + F + T (docs/keeper.md), sampled every 20 ms.
    time.sleep(F + 2 * T)
    assert qemu_pid(uuid) == pid
    lease = os.path.join(cl.storage, "leases", "h1.json")
    t0 = time.monotonic()
    os.unlink(lease)
    os.mkdir(lease)
    try:
        wait_for(lambda: not pid_alive(pid), F + 2, "the fence of up1",
                 interval=0.02)
        dt = time.monotonic() - t0
        assert F - 0.25 - R - 0.1 <= dt <= F + T + 0.1, \
            "QEMU killed %.2f s after its lease stopped" % dt
    finally:
        os.rmdir(lease)
