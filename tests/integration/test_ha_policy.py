"""HA policy (docs/ha.md) on real daemons and TCG guests: the restart
policy (ha_max_restarts in ha_restart_window_s, then another host; with
no other host, the VM waits out the window), admission control
(ha_reserve_hosts), two hosts reporting one VM (the copy that is not on
the recorded host is stopped) and ha_isolation_response=leave (an
isolated host keeps its VMs and nothing is restarted).

Timings come from the documented settings, set to their smallest useful
values: ha_max_restarts=1, ha_restart_window_s=10 (its minimum)."""

import datetime
import json as jsonlib
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from cvirt import Sampler, boot_ids, qemu_pid, qemu_pids, wait_for
from netns import NetnsCluster

pytestmark = pytest.mark.shared_storage

CMDLINE = "console=ttyS0 cvirt.tick=1"
WINDOW_S = 10           # ha_restart_window_s's minimum (cluster.c)


def ha_vm(cl, guest, name, host, memory=128, kernel=True):
    args = ["vm", "create", name, "--cpus", 1, "--memory", memory, "--ha"]
    if kernel:
        args += ["--kernel", guest.kernel, "--initrd", guest.initrd,
                 "--cmdline", CMDLINE]
    cl.cli(*args)
    cl.cli("vm", "start", name, "--host", host)
    return cl.vm(name)


def running_on(cl, name, host, other_than=None, timeout=30):
    """Waits until NAME runs on HOST with a QEMU pid other than
    other_than; returns (vm, pid)."""
    def check():
        v = cl.vm(name)
        pid = qemu_pid(v["uuid"])
        if v["state"] == "running" and v["host"] == host and pid and \
                pid != other_than and v.get("pid") == pid:
            return v, pid
        return None
    return wait_for(check, timeout, "%s running on %s (pid not %s)"
                    % (name, host, other_than), interval=0.1)


def events(cl, kind, obj):
    return [e for e in cl.cli("event", "list", "--limit", 500, json=True)
            if e["kind"] == kind and e["object"] == obj]


def failed_at(cl, name):
    """When the manager counted NAME's latest failure (wall clock, s): the
    time of its `failed` vm.state event (src/manager/api_agent.c
    api_apply_exit() writes it, then calls failover_vm_failed())."""
    ev = [e for e in events(cl, "vm.state", name)
          if ": failed (" in e["message"]]
    assert ev, "no failure of %s recorded" % name
    return datetime.datetime.strptime(
        ev[0]["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


def kill_qemu(pid):
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid not in qemu_pids(), 10, "QEMU %d gone" % pid)
    return time.monotonic()


def test_restart_policy_in_place_then_elsewhere(make_cluster, guest):
    """ha_max_restarts=1 in a 10 s window: the first failure restarts in
    place, the second within the window moves the VM to the other host;
    once the window has passed, a failure counts alone again (in place).

    Guards src/manager/failover.c fo_restart_target(): the count of
    failures younger than the window (`now - f < window`) and the choice
    `recent <= cs->ha_max_restarts` (in place) vs `exclude` (elsewhere)."""
    cl = make_cluster(hosts=("h1", "h2"))
    cl.cli("cluster", "set", "ha_max_restarts=1",
           "ha_restart_window_s=%d" % WINDOW_S)
    v = ha_vm(cl, guest, "pol", "h1")
    _, pid = running_on(cl, "pol", "h1")

    # 1st failure: in place.
    kill_qemu(pid)
    _, pid = running_on(cl, "pol", "h1", other_than=pid)
    ev = events(cl, "ha.restart", "pol")
    assert len(ev) == 1 and "in place on h1" in ev[0]["message"], ev

    # 2nd failure within the window: more than ha_max_restarts, elsewhere.
    kill_qemu(pid)
    _, pid = running_on(cl, "pol", "h2", other_than=pid)
    ev = events(cl, "ha.restart", "pol")
    assert len(ev) == 2 and "on another host" in ev[0]["message"], ev
    assert not qemu_pids(v["uuid"]).keys() - {pid}, "pol runs twice"

    # Past the window, counted from when the manager recorded the second
    # failure (its vm.state event, written in the same step): the earlier
    # two no longer count, so this failure restarts in place on h2.
    time.sleep(max(0.0, failed_at(cl, "pol") + WINDOW_S + 0.5 - time.time()))
    kill_qemu(pid)
    _, pid = running_on(cl, "pol", "h2", other_than=pid)
    ev = events(cl, "ha.restart", "pol")
    assert len(ev) == 3 and "in place on h2" in ev[0]["message"], ev

    # Every restart was a vm.start task owned by HA.
    starts = [t for t in cl.cli("task", "list", json=True)
              if t["kind"] == "vm.start" and t["vm"] == "pol"]
    assert [t.get("owner") for t in starts][:3] == ["ha"] * 3, starts
    assert all(t["state"] == "succeeded" for t in starts), starts
    cl.wait_serial("pol", "cvirt-guest: tick 1", 60)
    cl.cli("vm", "delete", "pol", "--force")


def test_restart_policy_without_another_host(make_cluster, guest):
    """ha_max_restarts=0 on a one-host cluster: a failure must restart
    elsewhere, and there is no elsewhere, so the VM stays failed (each
    attempt is a failed vm.start task, at least 3 s apart) until the
    window has passed; then it restarts in place.

    Guards src/manager/failover.c fo_restart_target() (`exclude` when the
    policy is spent, the window) and fo_restart_ha_vms()'s retry spacing
    (FO_RETRY_MS)."""
    cl = make_cluster(hosts=("h1",))
    cl.cli("cluster", "set", "ha_max_restarts=0",
           "ha_restart_window_s=%d" % WINDOW_S)
    v = ha_vm(cl, guest, "lone", "h1", kernel=False)
    _, pid = running_on(cl, "lone", "h1")
    t_fail = kill_qemu(pid)
    cl.wait_state("lone", "failed", 10)
    # Well inside the window: never restarted in place.
    deadline = t_fail + WINDOW_S - 3
    while time.monotonic() < deadline:
        assert not qemu_pids(v["uuid"]), "lone restarted in place early"
        assert cl.vm("lone")["state"] == "failed"
        time.sleep(0.5)
    attempts = [t for t in cl.cli("task", "list", json=True)
                if t["kind"] == "vm.start" and t["vm"] == "lone" and
                t.get("owner") == "ha"]
    assert attempts and all(t["state"] == "failed" for t in attempts), \
        attempts
    # About one attempt every 3 s (FO_RETRY_MS), not one per 0.5 s round.
    assert 1 <= len(attempts) <= (WINDOW_S - 3) // 3 + 1, attempts
    ev = events(cl, "ha.restart", "lone")
    assert ev and all("on another host" in e["message"] for e in ev), ev
    # Once the failure is older than the window: in place.
    _, pid2 = running_on(cl, "lone", "h1", other_than=pid, timeout=15)
    took = time.monotonic() - t_fail
    assert WINDOW_S - 1 <= took, "restarted after %.1f s" % took
    assert "in place on h1" in events(cl, "ha.restart", "lone")[0]["message"]
    cl.cli("vm", "delete", "lone", "--force")


def test_admission_control_reserves_hosts(make_cluster, guest):
    """ha_reserve_hosts=1 on two hosts offering 512 MiB each (agent
    --memory): HA VMs may use what is left if the largest host fails
    (512 MiB); the next HA VM is refused with the documented message,
    a VM without HA is not, and ha_reserve_hosts=0 lifts the check.

    Guards src/manager/failover.c failover_admit() and its call in
    src/manager/vmops.c vmops_start()."""
    mem = {"h1": ["--memory", "512"], "h2": ["--memory", "512"]}
    cl = make_cluster(hosts=("h1", "h2"), agent_extra=mem)
    cl.cli("cluster", "set", "ha_reserve_hosts=1")
    ha_vm(cl, guest, "res1", "h1", memory=256, kernel=False)
    ha_vm(cl, guest, "res2", "h2", memory=256, kernel=False)
    cl.cli("vm", "create", "res3", "--cpus", 1, "--memory", 128, "--ha")
    rc, out, err = cl.cli("vm", "start", "res3", check=False)
    assert rc == 1, (rc, out, err)
    assert err.strip() == "cvirt: admission control: HA VMs would need " \
        "640 MiB, but only 512 MiB remain if 1 host(s) fail", err
    v = cl.vm("res3")
    assert v["state"] == "stopped" and not qemu_pids(v["uuid"]), v
    # Not an HA VM: no reserve applies (the hosts have room).
    cl.cli("vm", "create", "res4", "--cpus", 1, "--memory", 128)
    cl.cli("vm", "start", "res4")
    assert cl.vm("res4")["state"] == "running"
    # A stopped HA VM frees its share.
    cl.cli("vm", "stop", "res2", "--force")
    cl.cli("vm", "start", "res3")
    assert cl.vm("res3")["state"] == "running"
    rc, _, err = cl.cli("vm", "start", "res2", check=False)
    assert rc == 1 and "admission control" in err, err
    cl.cli("cluster", "set", "ha_reserve_hosts=0")
    cl.cli("vm", "start", "res2")
    assert cl.vm("res2")["state"] == "running"
    for n in ("res1", "res2", "res3", "res4"):
        cl.cli("vm", "delete", n, "--force")


def start_copy(cl, name, host):
    """Starts a second copy of VM NAME through HOST's agent API with the
    VM's own spec, as a split brain would; (HTTP status, JSON body)."""
    (spec,), = cl.db_rows("SELECT spec FROM vms WHERE name = '%s'" % name)
    (key,), = cl.db_rows("SELECT agent_key FROM hosts WHERE name = '%s'"
                         % host)
    req = urllib.request.Request(
        "http://127.0.0.1:%d/agent/v1/vms/%s/start" % (
            cl.agent_ports[host], jsonlib.loads(spec)["uuid"]),
        data=spec.encode(), method="POST",
        headers={"Authorization": "Bearer " + key,
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, jsonlib.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, jsonlib.loads(e.read())


def test_two_hosts_reporting_one_vm_stop_the_copy(make_cluster, guest):
    """A second copy of a running VM appears on h2 (started through h2's
    agent API with the VM's own spec, as a split brain would leave it):
    the manager tells h2 to stop its copy and leaves h1's alone.

    Guards src/manager/api_agent.c api_apply_running(): the branch that
    adds a VM recorded as running on another up host to the reply's
    `stop` list (event vm.duplicate), and src/agent/report.c
    report_apply_reply(), which stops what is listed."""
    cl = make_cluster(hosts=("h1", "h2"))
    v = ha_vm(cl, guest, "dup", "h1")
    _, pid = running_on(cl, "dup", "h1")
    cl.wait_serial("dup", "cvirt-guest: tick 1", 60)
    time.sleep(2.5)       # the row settles (REPORT_SETTLE_MS, api_agent.c)
    status, body = start_copy(cl, "dup", "h2")
    assert status == 200, body
    copy = body["pid"]
    assert copy != pid and copy in qemu_pids(v["uuid"])
    # h2 reports it within a heartbeat; the reply tells h2 to stop it.
    wait_for(lambda: copy not in qemu_pids(), 15, "the copy on h2 to stop")
    assert qemu_pids(v["uuid"]) == {pid: v["uuid"]}
    ev = events(cl, "vm.duplicate", "dup")
    assert ev and "reported running on h2 while it runs on h1" in \
        ev[0]["message"], ev
    time.sleep(2)         # a few more reports change nothing
    got = cl.vm("dup")
    assert got["state"] == "running" and got["host"] == "h1" and \
        got["pid"] == pid, got
    assert qemu_pids(v["uuid"]) == {pid: v["uuid"]}
    assert not events(cl, "ha.restart", "dup")
    cl.cli("vm", "delete", "dup", "--force")


def test_second_copy_cannot_open_the_disk(make_cluster, guest):
    """The second guard (docs/ha.md): a second copy of a running VM with a
    disk, started through h2's agent API as above, cannot open the disk:
    QEMU's image locking (the write lock h1's QEMU holds on the image)
    refuses it. In the GlusterFS pass h1 and h2 each reach the image
    through a FUSE client of their own, so the lock crosses hosts as it
    would between machines (docs/storage.md, "Shared filesystems"). h1's
    copy runs on untouched, and h2 keeps no QEMU of it.

    Guards src/qemu/qemu_cmd.c qemu_add_disks(): the disks' file nodes
    keep QEMU's image locking (with locking=off there the copy starts),
    and src/agent/vmhost.c vmhost_qemu_reason(), which says why in one
    line: QEMU's error and its hint (it gave only the hint, "Is another
    process using the image [...]?", QEMU's last line)."""
    cl = make_cluster(hosts=("h1", "h2"))
    cl.cli("vm", "create", "lk", "--cpus", 1, "--memory", 128, "--disk", 8,
           "--kernel", guest.kernel, "--initrd", guest.initrd, "--cmdline",
           CMDLINE)
    cl.cli("vm", "start", "lk", "--host", "h1")
    v, pid = running_on(cl, "lk", "h1")
    cl.wait_serial("lk", "cvirt-guest: tick 1", 60)
    status, body = start_copy(cl, "lk", "h2")
    disk = os.path.join(cl.storage, "vms", v["uuid"], "disk0.qcow2")
    assert status == 502, (status, body)
    assert body["error"].startswith("QEMU failed to start: -blockdev ") and \
        body["error"].endswith(
            ': Failed to get "write" lock (Is another process using the '
            'image [%s]?)' % disk) and "\n" not in body["error"], body
    assert qemu_pids(v["uuid"]) == {pid: v["uuid"]}
    time.sleep(2)         # h2's reports change nothing
    got = cl.vm("lk")
    assert got["state"] == "running" and got["host"] == "h1" and \
        got["pid"] == pid, got
    assert qemu_pids(v["uuid"]) == {pid: v["uuid"]}
    n = len(boot_ids(cl.serial("lk")))
    cl.wait_serial("lk", "cvirt-guest: tick 3", 30)
    assert len(boot_ids(cl.serial("lk"))) == n == 1
    cl.cli("vm", "delete", "lk", "--force")


@pytest.fixture
def nc2(request, guest, cvirt_bin):
    cl = NetnsCluster(("h1", "h2"), bin=cvirt_bin)
    request.addfinalizer(cl.stop)
    cl.start(hosts=("h1", "h2"))
    return cl


def test_isolation_response_leave_keeps_vms(nc2, guest):
    """ha_isolation_response=leave: h1 loses its network (storage stays),
    hears neither the manager nor its peer for the isolation time, and
    leaves its HA VM running; the manager sees the isolation record on
    h1's lease (through h2) and restarts nothing. Back on the network,
    the same QEMU (one boot) runs on h1.

    Guards src/agent/report.c report_isolation_check()'s `leave` branch
    and report_take_settings() (the setting reaches the agent), with
    src/manager/failover.c fo_isolated() restarting only what the host
    recorded as stopped."""
    cl = nc2
    cl.cli("cluster", "set", "ha_isolation_response=leave")
    v = ha_vm(cl, guest, "iso", "h1")
    _, pid = running_on(cl, "iso", "h1")
    cl.wait_serial("iso", "cvirt-guest: tick 1", 60)
    time.sleep(1.5)       # a heartbeat reply carries the setting to h1
    s = Sampler(v["uuid"])
    cl.cut("h1")
    try:
        ev = wait_for(lambda: events(cl, "host.isolated", "h1"), 30,
                      "the manager to see h1's isolation record")
        assert "powered off 0 HA VM(s)" in ev[0]["message"], ev
        time.sleep(3)     # more failover rounds decide nothing
        assert qemu_pid(v["uuid"]) == pid
        got = cl.vm("iso")
        assert got["host"] == "h1" and got["state"] != "failed", got
    finally:
        cl.cut("h1", up=True)
    cl.wait_host("h1", "up", 30)
    time.sleep(2)
    assert s.stop() == 1 and s.pids == {pid}, s.pids
    got = running_on(cl, "iso", "h1")[0]
    assert got["pid"] == pid
    assert not events(cl, "ha.restart", "iso")
    assert len(boot_ids(cl.serial("iso"))) == 1
    with open(os.path.join(cl.logdir, "agent-h1.log"),
              errors="replace") as f:
        assert "isolation response: leave" in f.read()
    cl.cli("vm", "delete", "iso", "--force")
