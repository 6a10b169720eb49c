"""HA fault injection (issue 5) on three hosts in network namespaces: host
crash, agent crash only, QEMU crash, guest panic, isolation of one host, a
partition that isolates the manager, storage lost by one host, manager
restarts. A sampler counts the QEMU processes of each HA VM all along: a
VM never runs twice."""

import datetime
import os
import re
import signal
import subprocess
import time

import pytest

from cvirt import NotYet, Sampler, boot_ids, qemu_pid, qemu_pids, wait_for
from netns import NetnsCluster

pytestmark = pytest.mark.shared_storage

BASE = "console=ttyS0 cvirt.tick=1"
# A boot of the test guest under TCG, from `vm start` to its init's first
# lines (CPU bound): 7-8 s on an idle two-core machine, 13 s with both
# cores busy, 39 s beside test_ha_monitor.py's five guests booting at once
# (tests/run's two workers overlap modules like that). Three times the
# worst seen: this measures the machine, not cvirt.
BOOT_S = 120
# From a guest panic to the manager's HA restart of the VM: the agent
# reports the failure as QMP GUEST_PANICKED arrives, the manager restarts
# in place; 0.05-0.3 s measured, REACT_S leaves room for the loaded
# machine's CLI round trips that watch it.
REACT_S = 10


@pytest.fixture(scope="module")
def hc(request, guest, cvirt_bin):
    cl = NetnsCluster(("h1", "h2", "h3"), bin=cvirt_bin)
    request.addfinalizer(cl.stop)
    cl.start(hosts=("h1", "h2", "h3"))
    return cl


def ha_vm(cl, guest, name, host, extra="", monitor=None, disk=None):
    args = ["vm", "create", name, "--cpus", 1, "--memory", 128, "--ha",
            "--kernel", guest.kernel, "--initrd", guest.initrd,
            "--cmdline", (BASE + " " + extra).strip()]
    if monitor:
        args += ["--ha-monitor", monitor]
    if disk:
        args += ["--disk", disk]
    cl.cli(*args)
    cl.cli("vm", "start", name, "--host", host)


@pytest.fixture(scope="module")
def ha_vms(hc, guest):
    """HA VMs ha1 (with a disk) on h1, ha2 on h2 and ha3 on h3, booted side
    by side (TCG boots are CPU bound; the machine has more than one core)
    before the first test that needs them; each test then faults its own."""
    for name, host, disk in (("ha1", "h1", 8), ("ha2", "h2", None),
                             ("ha3", "h3", None)):
        ha_vm(hc, guest, name, host, disk=disk)
    for name in ("ha1", "ha2", "ha3"):
        hc.wait_serial(name, "cvirt-guest: tick 1", BOOT_S)
    return {n: hc.vm(n) for n in ("ha1", "ha2", "ha3")}


def wait_running_on(cl, name, hosts, timeout=40):
    return wait_for(lambda: (lambda v: v if v["state"] == "running" and
                             v["host"] in hosts else None)(cl.vm(name)),
                    timeout, "%s running on one of %s" % (name, hosts),
                    interval=0.2)


def read_disk(storage, uuid, offset, length=32):
    img = os.path.join(storage, "vms", uuid, "disk0.qcow2")
    p = subprocess.run(["qemu-io", "-r", "-U", "-f", "qcow2", "-c",
                        "read -v %d %d" % (offset, length), img],
                       capture_output=True, text=True)
    return "".join(ln.split("  ")[-1] for ln in p.stdout.splitlines()
                   if ":" in ln[:10])


def test_host_crash_restarts_ha_vm_elsewhere(hc, ha_vms):
    v = ha_vms["ha1"]
    # Data on its own disk, written before the crash.
    rc, _, err = hc.cli("vm", "console", "ha1", check=False, timeout=30,
                        input="echo precrashdata | dd of=/dev/vda bs=512 "
                              "seek=100 conv=fsync\r")
    assert rc == 0, err
    wait_for(lambda: "precrashdata" in read_disk(hc.storage, v["uuid"],
                                                  51200), 10, "disk data")
    s = Sampler(v["uuid"])
    t0 = time.monotonic()
    hc.crash_host("h1")
    try:
        wait_running_on(hc, "ha1", ("h2", "h3"), 30)
        took = time.monotonic() - t0
    finally:
        assert s.stop() == 1, "ha1 ran twice"
    assert took < 20, "failover took %.1f s" % took
    assert hc.cli("host", "show", "h1", json=True)["state"] == "fenced"
    hc.wait_serial("ha1", "cvirt-guest: boot-id", BOOT_S, count=2)
    assert "precrashdata" in read_disk(hc.storage, v["uuid"], 51200)
    ev = [e["message"] for e in hc.cli("event", "list", json=True)
          if e["kind"] == "host.fenced" and e["object"] == "h1"]
    # One fence, with the figures of src/manager/failover.c,
    # fo_host_round: h1's one domain (the shared storage) failed.
    assert len(ev) == 1 and re.fullmatch(
        r"host h1 failed: no report for \d+ ms and its storage lease not "
        r"renewed on 1 domain\(s\) \(lease timeout 5000 ms\); its "
        r"keeper has stopped its VMs", ev[0]), ev
    hc.start_agent("h1")
    assert len(qemu_pids(v["uuid"])) == 1


def test_agent_crash_only_leaves_vm_where_it_is(hc, ha_vms):
    v = ha_vms["ha2"]
    pid = qemu_pid(v["uuid"])
    s = Sampler(v["uuid"])
    hc.kill_agent("h2")
    try:
        hc.wait_host("h2", "down", 20)
        # Down comes a heartbeat timeout (5 s) after the kill: 5 s more is
        # twice the lease timeout since then, and the keeper renews on.
        time.sleep(5)
        assert hc.cli("host", "show", "h2", json=True)["state"] == "down"
        assert qemu_pid(v["uuid"]) == pid
        hc.start_agent("h2")
        got = wait_running_on(hc, "ha2", ("h2",), 20)
    finally:
        assert s.stop() == 1
    assert qemu_pid(v["uuid"]) == pid and got["host"] == "h2"
    # (h2's agent, which serves the serial log, has just started.)
    serial = hc.wait_serial("ha2", "cvirt-guest: boot-id", 10, starting=True)
    assert len(boot_ids(serial)) == 1


def test_qemu_crash_restarts_in_place(hc, guest):
    v = hc.vm("ha2")
    pid = qemu_pid(v["uuid"])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (lambda p: p and p != pid)(qemu_pid(v["uuid"])), 20,
             "ha2 restarted")
    assert wait_running_on(hc, "ha2", ("h2",), 20)["host"] == "h2"
    hc.wait_serial("ha2", "cvirt-guest: boot-id", BOOT_S, count=2)


def ha_events(cl, name):
    """The manager's vm.state and ha.restart events of VM name, oldest
    first: (time in s, kind, message)."""
    out = []
    for e in cl.cli("event", "list", json=True):
        if e["object"] == name and e["kind"] in ("vm.state", "ha.restart"):
            t = datetime.datetime.fromisoformat(
                e["time"].replace("Z", "+00:00")).timestamp()
            out.append((t, e["kind"], e["message"]))
    return sorted(out)


def test_guest_panic_restarts_and_user_stop_is_final(hc, guest):
    """A guest panic (pvpanic) fails the VM and HA restarts it in place,
    twice; the user's stop then ends it for good. The guest panics as soon
    as it has booted, so each panic waits for a boot (BOOT_S); the restart
    that follows each is the product's reaction (REACT_S)."""
    hc.cli("vm", "create", "pan", "--cpus", 1, "--memory", 128, "--ha",
           "--ha-monitor", "panic", "--kernel", guest.kernel, "--initrd",
           guest.initrd, "--cmdline", BASE + " cvirt.panic=1")
    hc.cli("vm", "start", "pan", "--host", "h3")
    def restarted(n):
        ev = ha_events(hc, "pan")
        return ev if len([e for e in ev if e[1] == "ha.restart"]) >= n \
            else None
    for n in (1, 2):
        hc.wait_serial("pan", "cvirt-guest: panicking", BOOT_S, count=n)
        ev = wait_for(lambda: restarted(n), REACT_S,
                      "HA restart %d of pan" % n)
        failed = [e for e in ev if e[2].endswith("failed (guest panicked)")]
        restarts = [e for e in ev if e[1] == "ha.restart"]
        assert len(failed) >= n and "in place on h3" in restarts[n - 1][2], ev
        # In the manager's own time, from the failure to the restart.
        assert 0 <= restarts[n - 1][0] - failed[n - 1][0] < REACT_S, ev
    # An HA restart may hold the VM for a moment: the user's stop waits
    # its turn, and once it is in, HA leaves the VM alone.
    def stopped():
        rc, _, err = hc.cli("vm", "stop", "pan", "--force", check=False)
        if rc == 1 and "is busy with task" in err:
            raise NotYet(err)   # 409 while HA's restart task holds it
        assert rc == 0, err
        return True
    wait_for(stopped, 30, "the user's stop of pan", interval=0.3)
    # HA restarts well under a second after a failure (REACT_S): 5 s
    # without one shows it leaves the VM alone.
    time.sleep(5)
    v = hc.vm("pan")
    assert v["state"] == "stopped" and not qemu_pids(v["uuid"]), v
    hc.cli("vm", "delete", "pan")


def test_isolated_host_powers_off_and_vm_runs_elsewhere(hc, ha_vms):
    v = hc.vm("ha3")
    assert v["host"] == "h3", v
    # ha3, and any HA VM an earlier test of the module left on h3.
    on_h3 = [x["name"] for x in hc.cli("vm", "list", json=True)
             if x.get("ha") and x["host"] == "h3" and x["state"] == "running"]
    s = Sampler(v["uuid"])
    hc.cut("h3")
    try:
        wait_running_on(hc, "ha3", ("h1", "h2"), 40)
    finally:
        hc.cut("h3", up=True)
    hc.wait_host("h3", "up", 30)
    time.sleep(2)
    assert s.stop() == 1, "ha3 ran twice"
    assert len(qemu_pids(v["uuid"])) == 1
    ev = [e["message"] for e in hc.cli("event", "list", json=True)
          if e["kind"] == "host.isolated" and e["object"] == "h3"]
    # One isolation, in which h3 powered off each HA VM it ran
    # (src/manager/failover.c).
    assert len(ev) == 1 and re.fullmatch(
        r"host h3 is isolated: no report for \d+ ms while its lease is "
        r"renewed; it powered off %d HA VM\(s\) and recorded them on "
        r"storage" % len(on_h3), ev[0]), (ev, on_h3)


def settled(cl, names):
    """{name: QEMU pid} once every VM of names runs with its QEMU and no
    task is queued or running (an earlier test's fault may still have HA
    restarts in flight: the storage loss above fences every VM on h2)."""
    def check():
        if any(t["state"] in ("queued", "running")
               for t in cl.cli("task", "list", json=True)):
            return None
        vms = {n: cl.vm(n) for n in names}
        if any(v["state"] != "running" for v in vms.values()):
            return None
        pids = {n: qemu_pid(v["uuid"]) for n, v in vms.items()}
        return pids if all(pids.values()) else None
    return wait_for(check, 60, "%s running, no task in flight" % (names,),
                    interval=0.5)


def test_manager_partition_restarts_nothing(hc, guest):
    vms = settled(hc, ("ha1", "ha2", "ha3"))
    hc.cut("manager")
    time.sleep(12)
    hc.cut("manager", up=True)
    for h in ("h1", "h2", "h3"):
        hc.wait_host(h, "up", 30)
    time.sleep(2)
    for n, pid in vms.items():
        v = hc.vm(n)
        assert v["state"] == "running" and qemu_pid(v["uuid"]) == pid, n


@pytest.mark.local_storage_only
def test_storage_lost_by_one_host_fences_and_restarts(hc, ha_vms):
    """h2's lease file becomes a directory, so h2's keeper can no longer
    renew it: the keeper fences ha2 and the manager restarts it elsewhere,
    once. Guards src/agent/kdomain.c kdom_renew()'s failure path and the
    manager's restart (src/manager/failover.c).

    Not in the GlusterFS pass: there the harness's os.unlink() of a lease
    that h2's keeper rewrites every 500 ms (O_DIRECT pwrite + fdatasync)
    waits inside Gluster (the FUSE unlink request unanswered: 365 s in one
    run, about 9 min in another), which measures Gluster's locking, not
    a host losing its storage. A host losing a real shared domain is the
    fault suite's part (issue 14: one host's own view of a domain
    frozen). It takes ha_vms itself: in the PostgreSQL pass, which
    leaves the rest of this module to the GlusterFS pass, no test before
    it made them."""
    settled(hc, ("ha1", "ha2", "ha3"))
    v = hc.vm("ha2")       # on h2
    lease = os.path.join(hc.storage, "leases", "h2.json")
    s = Sampler(v["uuid"])
    os.unlink(lease)
    os.mkdir(lease)         # renewals on h2 now fail: as if storage is gone
    try:
        got = wait_running_on(hc, "ha2", ("h1", "h3"), 40)
    finally:
        os.rmdir(lease)
        assert s.stop() == 1
    assert got["host"] != "h2"
    # h2's agent reports why ha2's QEMU ended (src/agent/vmhost.c): its
    # lease keeper fenced it; the manager records that once
    # (src/manager/api_agent.c).
    ev = [(e["kind"], e["message"])
          for e in hc.cli("event", "list", json=True)
          if e["object"] == "ha2" and "fenced" in e["message"]]
    assert ev == [("vm.state", "vm ha2 on host h2: failed (fenced: the "
                   "storage lease could not be renewed)")], ev


@pytest.mark.local_storage_only
def test_storage_lost_with_leave_holds_while_the_host_is_heard(hc, ha_vms):
    """ha_storage_loss_response=leave: a host that lost a domain keeps its
    VMs there (the agent has the keeper hold their kill after each report
    the manager acknowledged) for as long as the manager hears it, and
    nothing is restarted elsewhere; the host reports the lease lost. The
    storage comes back: the lease is ok again and the VM never stopped.
    Lost again, and the manager no longer hears the host (its agent
    stopped with SIGSTOP: no reports; the keeper goes on): the hold runs
    out H - W - M - T (3.4 s) after the last acknowledged report and the
    keeper kills the VM there, before the manager could act (H, 5 s,
    after the last report it received). The manager restarts nothing
    then: the lease file made a directory is unreadable, which proves
    nothing about renewals (hostlease.c), so here the restart elsewhere
    comes once the agent, resumed, reports the fenced exit; never two
    copies. (A host whose lease record stays readable and stops
    changing is restarted on by the manager: test_host_crash_* and the
    fault suite.) Guards src/agent/report.c report_hold
    (without it the keeper kills the VM 3 s after the loss and nothing
    restarts it while the host is heard), the keeper's hold
    (src/agent/kctl.c keeper_op_hold, keeper.c keeper_absorb) and
    kdomain.c kdom_counted (a renewal within the hold counts). Local
    storage only, as the test above (the lease file made a directory)."""
    pids = settled(hc, ("ha1", "ha2", "ha3"))
    v = hc.vm("ha1")
    host, pid = v["host"], pids["ha1"]
    others = tuple(h for h in ("h1", "h2", "h3") if h != host)
    lease = os.path.join(hc.storage, "leases", "%s.json" % host)

    def lease_word():
        return hc.cli("host", "show", host, json=True)["storage"][0].get(
            "lease")

    def same_vm():
        got = hc.vm("ha1")
        assert got["host"] == host and qemu_pid(v["uuid"]) == pid, got

    hc.cli("cluster", "set", "ha_storage_loss_response=leave")
    # The setting reaches the agents with the replies to their reports
    # (every second).
    time.sleep(3)
    s = Sampler(v["uuid"])
    stopped = broken = False
    try:
        os.unlink(lease)
        os.mkdir(lease)         # renewals on the host now fail
        broken = True
        wait_for(lambda: lease_word() == "lost", 10,
                 "%s to report its lease on local lost" % host)
        # 9 s: three times the fence time F (3 s) past the loss.
        end = time.monotonic() + 9
        while time.monotonic() < end:
            same_vm()
            time.sleep(0.5)
        os.rmdir(lease)         # the storage is back
        broken = False
        wait_for(lambda: lease_word() == "ok", 10,
                 "%s's lease on local ok again" % host)
        same_vm()
        os.unlink(lease)
        os.mkdir(lease)
        broken = True
        wait_for(lambda: lease_word() == "lost", 10,
                 "%s to report its lease on local lost again" % host)
        time.sleep(4)           # past F: only the hold keeps the VM
        same_vm()
        hc.agents[host].signal(signal.SIGSTOP)
        stopped = time.monotonic()
        # The last report acknowledged before the stop was sent at most
        # a report interval (1 s) earlier, its hold ends 3.4 s after it;
        # the keeper kills within a tick (0.1 s) of that.
        wait_for(lambda: pid not in qemu_pids(v["uuid"]), 10,
                 "ha1's QEMU on %s to be killed" % host)
        killed = time.monotonic() - stopped
        assert killed < 3.4 + 0.1 + 1.0, killed
        hc.agents[host].signal(signal.SIGCONT)
        stopped = False
        got = wait_running_on(hc, "ha1", others, 40)
    finally:
        if stopped:
            hc.agents[host].signal(signal.SIGCONT)
        if broken:
            os.rmdir(lease)
        hc.cli("cluster", "set", "ha_storage_loss_response=restart")
        assert s.stop() == 1
    assert got["host"] in others, got
    hc.wait_host(host, "up", 30)


def test_manager_restart_restarts_nothing(hc, guest):
    vms = settled(hc, ("ha1", "ha2", "ha3"))
    hc.manager.stop()
    hc.start_manager()
    for h in ("h1", "h2", "h3"):
        hc.wait_host(h, "up", 30)
    time.sleep(8)
    for n, pid in vms.items():
        assert qemu_pid(hc.vm(n)["uuid"]) == pid, n


def test_manager_restart_during_failover(hc, guest):
    v = hc.vm("ha3")
    host = v["host"]
    s = Sampler(v["uuid"])
    hc.crash_host(host)
    time.sleep(3)
    hc.manager.signal(signal.SIGKILL)
    hc.manager.wait(10)
    hc.start_manager()
    try:
        others = tuple(h for h in ("h1", "h2", "h3") if h != host)
        wait_running_on(hc, "ha3", others, 45)
    finally:
        assert s.stop() == 1
    hc.start_agent(host)
