"""`cvirt up` stopped and started again while its VMs run (README.md:
"Ctrl-C stops it (running VMs keep running and are re-attached next
time)"): the same QEMU processes, the VMs running, the console working.
`cvirt up` embeds SQLite, so this module runs in the SQLite pass."""

import os
import signal

import pytest

import cvirt
from cvirt import boot_ids, last_tick, pid_alive, qemu_pid, ticks, wait_for

CMDLINE = "console=ttyS0 cvirt.tick=1"


def serial_file(cl, uuid, where="storage"):
    """A VM's serial log read from files (no daemon needed): where
    "storage", DATA/storage/local/vms/UUID/serial.log; where "host", the
    file QEMU itself appends to on the host's disk, DATA/agent/serial/
    UUID.log (the agent copies it to storage: src/agent/serialcopy.c)."""
    path = os.path.join(cl.base, "up", "storage", "local", "vms", uuid,
                        "serial.log") if where == "storage" else \
        os.path.join(cl.base, "up", "agent", "serial", uuid + ".log")
    with open(path, errors="replace") as f:
        return f.read()


def console_answers(cl, name, word):
    """The guest's shell answers on the serial console: a sum it has to
    compute, so the echo of what we typed does not count."""
    rc, out, err = cl.cli("vm", "console", name, timeout=30,
                          input="echo $((6*7))%s\r" % word)
    assert rc == 0, err
    return "42" + word in out


@pytest.mark.sqlite_only     # cvirt up embeds SQLite
def test_up_reattaches_to_running_vms(tmp_path, cvirt_bin, guest):
    """Two VMs (one paused) under `cvirt up`; Ctrl-C (SIGINT) stops it,
    the QEMUs go on (the guest keeps ticking), and a new `cvirt up` on
    the same data directory finds both with the same pids and states;
    the serial console of the running one answers.

    Guards src/agent/vmhost.c vmhost_reattach() (called from
    src/agent/agent.c at start-up) and the agent leaving QEMU running on
    SIGTERM (src/manager/up.c up_stop() sends it)."""
    cl = cvirt.Cluster(logdir=str(tmp_path))
    try:
        cl.start_up()
        for name in ("upa", "upb"):
            cl.cli("vm", "create", name, "--cpus", 1, "--memory", 128,
                   "--kernel", guest.kernel, "--initrd", guest.initrd,
                   "--cmdline", CMDLINE)
            cl.cli("vm", "start", name)
        for name in ("upa", "upb"):
            cl.wait_serial(name, "cvirt-guest: tick 1", 60)
        cl.cli("vm", "pause", "upb")
        uuids = {n: cl.vm(n)["uuid"] for n in ("upa", "upb")}
        pids = {n: qemu_pid(u) for n, u in uuids.items()}
        assert all(pids.values()), pids
        assert console_answers(cl, "upa", "before")

        cl.manager.signal(signal.SIGINT)
        assert cl.manager.wait(20), "cvirt up ignored Ctrl-C"
        assert cl.manager.proc.returncode == 0, cl.manager.log_tail()
        # Nothing of it is left but the VMs (and the agent's lease
        # keeper, which renews for them).
        assert not cvirt.Cluster._procs(
            "cvirt", lambda a: a.startswith(cl.base)), "daemons left"
        tick = last_tick(serial_file(cl, uuids["upa"], "host"))
        # upa goes on ticking (one a second) with cvirt up down: QEMU
        # writes its log on the host's disk with no agent to copy it.
        wait_for(lambda: last_tick(serial_file(cl, uuids["upa"], "host")) >=
                 tick + 2, 10, "upa ticking while cvirt up is down")
        down_tick = last_tick(serial_file(cl, uuids["upa"], "host"))
        for n, pid in pids.items():
            assert pid_alive(pid) and qemu_pid(uuids[n]) == pid, n

        cl.restart_up(30)
        a = cl.wait_state("upa", "running", 20)
        b = cl.wait_state("upb", "paused", 20)
        assert (a["pid"], b["pid"]) == (pids["upa"], pids["upb"]), (a, b)
        for n, pid in pids.items():
            assert qemu_pid(uuids[n]) == pid, n
        assert len(boot_ids(cl.serial("upa"))) == 1, "upa rebooted"
        # What it printed while the agent was away reaches storage after:
        # every tick, once, in order.
        got = wait_for(lambda: (lambda t: t if t and t[-1] > down_tick
                                else None)(ticks(serial_file(
                                    cl, uuids["upa"]))), 15,
                       "upa's ticks on storage past %d" % down_tick)
        assert got == list(range(1, got[-1] + 1)), got
        assert console_answers(cl, "upa", "after")
        # And they are under the agent's control again.
        cl.cli("vm", "resume", "upb")
        tick = last_tick(cl.serial("upb"))
        wait_for(lambda: last_tick(cl.serial("upb")) > tick, 15,
                 "upb ticking after resume")
        assert len(boot_ids(cl.serial("upb"))) == 1, "upb rebooted"
        cl.cli("vm", "stop", "upa", "--force")
        wait_for(lambda: not pid_alive(pids["upa"]), 10, "upa's QEMU gone")
        assert cl.manager.stop(20) == 0
    finally:
        cl.cleanup()
