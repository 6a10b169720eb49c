"""Re-attaching after an agent restart (src/agent/vmadopt.c, docs/ha.md
"VMs the agent cannot see clearly"): a QEMU whose QMP does not answer when
the agent comes back is reported `unknown` with its pid, never `stopped`,
so HA does not start a second copy; once QMP answers it is `running`
again, the same process and the same boot of the guest."""

import os
import signal
import time

from cvirt import boot_ids, last_tick, qemu_pid, qemu_pids, wait_for

CMDLINE = "console=ttyS0 cvirt.tick=1"
# The manager's default ha_lease_timeout_ms is 5000 (src/manager/
# cluster.c): a host's VMs may be restarted elsewhere once it passed. The
# VM must stay put for twice that.
HOLD_S = 10


def events(cl, kind, obj):
    return [e for e in cl.cli("event", "list", "--limit", 500, json=True)
            if e["kind"] == kind and e["object"] == obj]


def test_unknown_after_agent_restart_is_not_restarted(make_cluster, guest):
    """h1's agent is killed, the VM's QEMU stopped (SIGSTOP: its QMP
    cannot answer), the agent started again. The VM is reported unknown
    with its pid (event vm.unknown), is never marked stopped nor started
    on h2 while QMP is silent, and after SIGCONT it is running with the
    same pid and a single boot of the guest.

    Guards src/agent/vmadopt.c vmadopt_one() (a live QEMU goes into the
    table as unknown instead of being dropped, which made the manager mark
    the VM stopped at registration and HA start a second copy) and
    vmadopt_main() (the attach retried until QMP answers)."""
    cl = make_cluster(hosts=("h1", "h2"))
    cl.cli("vm", "create", "unk", "--cpus", 1, "--memory", 128, "--ha",
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", CMDLINE)
    cl.cli("vm", "start", "unk", "--host", "h1")
    v = cl.vm("unk")
    uuid = v["uuid"]
    pid = qemu_pid(uuid)
    assert pid and v["state"] == "running" and v["host"] == "h1", v
    cl.wait_serial("unk", "cvirt-guest: tick 1", 60)

    cl.kill_agent("h1", signal.SIGKILL)
    os.kill(pid, signal.SIGSTOP)
    try:
        cl.start_agent("h1")
        # The agent's first attach attempt times out (2 s) before it
        # registers; the registration already names the VM unknown.
        got = cl.wait_state("unk", "unknown", 10)
        assert got["host"] == "h1" and got.get("pid") == pid, got
        ev = events(cl, "vm.unknown", "unk")
        assert ev and "pid %d" % pid in ev[0]["message"], ev
        assert cl.agents["h1"].logged("reported unknown"), \
            cl.agents["h1"].log_tail()
        # Not stopped, not restarted: for HOLD_S, one copy, still unknown.
        end = time.monotonic() + HOLD_S
        while time.monotonic() < end:
            assert qemu_pids(uuid) == {pid: uuid}, qemu_pids(uuid)
            cur = cl.vm("unk")
            assert cur["state"] == "unknown" and cur["host"] == "h1", cur
            time.sleep(0.5)
        assert not events(cl, "ha.restart", "unk")
        assert not [e for e in events(cl, "vm.state", "unk")
                    if "no longer running" in e["message"]]
        # A start is refused while it is unknown.
        rc, _, err = cl.cli("vm", "start", "unk", check=False)
        assert rc != 0 and "unknown" in err, err
    finally:
        os.kill(pid, signal.SIGCONT)

    # QMP answers again: running, same QEMU, same boot.
    got = cl.wait_state("unk", "running", 10)
    assert got["host"] == "h1" and got.get("pid") == pid, got
    assert qemu_pids(uuid) == {pid: uuid}
    assert cl.agents["h1"].logged("re-attached to QEMU pid %d (running)"
                                  % pid)
    tick = last_tick(cl.serial("unk"))
    wait_for(lambda: last_tick(cl.serial("unk")) > tick, 15,
             "the guest to tick again after SIGCONT")
    assert len(boot_ids(cl.serial("unk"))) == 1, "the guest rebooted"
    assert not events(cl, "ha.restart", "unk")
    cl.cli("vm", "stop", "unk", "--force")
    assert cl.vm("unk")["state"] == "stopped"
