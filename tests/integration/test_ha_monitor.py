"""HA monitors that look into the guest (docs/ha.md): the guest agent
heartbeat (--ha-monitor heartbeat, Debian's qemu-ga in the test guest), a
TCP check of a guest port (--ha-monitor tcp:PORT, busybox httpd in the guest,
reached through a forward of QEMU's user-mode network) and the watchdog
(i6300esb, which ends the VM the same way). Five HA VMs boot at once on one
host: for each monitor one whose guest service stops while the guest keeps
running (restarted in place, a new boot id, an event that says why) and,
for heartbeat and tcp, one that stays healthy (never restarted)."""

import json
import os
import signal
import time
import urllib.request

import pytest

from cvirt import NotYet, boot_ids, qemu_pid, wait_for

pytestmark = pytest.mark.shared_storage

BASE = "console=ttyS0"
PORT = 8080

# name: (monitor, extra kernel options). The failing guests stop answering
# 5 s after their service started: after their monitor armed on a first
# answer (probes every 2 s by default).
VMS = {
    "hb-hang": ("heartbeat", "cvirt.gahang=5"),
    "hb-ok": ("heartbeat", ""),
    "tcp-stop": ("tcp:%d" % PORT, "cvirt.listen=%d cvirt.listenstop=5" % PORT),
    "tcp-ok": ("tcp:%d" % PORT, "cvirt.listen=%d" % PORT),
    "wd-hang": ("watchdog", "cvirt.watchdog=1 cvirt.watchdoghang=5"),
}


MISSES = 2


@pytest.fixture(scope="module")
def vms(cluster, guest):
    # 2 misses in a row make a failure here (3 by default): quicker, and
    # the failure messages show that agents take the cluster setting.
    cluster.cli("cluster", "set", "ha_monitor_misses=%d" % MISSES)
    for name, (mon, extra) in VMS.items():
        cluster.cli("vm", "create", name, "--cpus", 1, "--memory", 128,
                    "--ha", "--ha-monitor", mon, "--kernel", guest.kernel,
                    "--initrd", guest.initrd, "--cmdline",
                    (BASE + " " + extra).strip())
    for name in VMS:
        cluster.cli("vm", "start", name, "--no-wait")
    for name in VMS:
        cluster.wait_state(name, "running", 60)
    started = time.monotonic()
    yield started
    for name in VMS:
        # A failing guest may be in an HA restart (busy) just then.
        def stopped():
            rc, _, err = cluster.cli("vm", "stop", name, "--force",
                                     check=False)
            if rc != 0 and "is busy with task" in err:
                raise NotYet(err)
            assert rc == 0, err
            return True
        wait_for(stopped, 60, "the stop of %s" % name, interval=0.5)
        assert cluster.vm(name)["state"] == "stopped"
    cluster.cli("cluster", "set", "ha_monitor_misses=3")


def restarted(cl, name, timeout):
    """Waits for a second boot of name; returns its serial transcript."""
    return wait_for(lambda: (lambda s: s if len(boot_ids(s)) >= 2 else None)(
        cl.serial(name)), timeout, "%s restarted" % name, interval=0.5)


def failure_events(cl, name):
    return [e for e in cl.cli("event", "list", json=True)
            if e["object"] == name and e["kind"] == "vm.state"
            and "failed" in e["message"]]


def failed_within(cl, name, timeout):
    """The failure event of name, which must come within timeout s: 2
    misses 2 s apart (plus a probe's 1 s timeout each) and slack for a
    loaded machine."""
    return wait_for(lambda: failure_events(cl, name), timeout,
                    "%s failed" % name, interval=0.3)


def test_heartbeat_loss_restarts_vm_in_place(cluster, vms):
    # Boots take 5-40 s here, depending on the machine's load.
    s = cluster.wait_serial("hb-hang", "cvirt-guest: guest agent frozen", 120)
    assert "cvirt-guest: guest agent running" in s
    ev = failed_within(cluster, "hb-hang", 30)
    assert "guest heartbeat lost: the guest agent missed %d pings in a " \
        "row" % MISSES in ev[0]["message"], ev
    ids = boot_ids(restarted(cluster, "hb-hang", 90))
    assert ids[0] != ids[1]
    assert any(e["kind"] == "ha.restart" and e["object"] == "hb-hang"
               for e in cluster.cli("event", "list", json=True))
    v = wait_for(lambda: (lambda v: v if v["state"] == "running" else None)(
        cluster.vm("hb-hang")), 30, "hb-hang running again")
    assert v["host"] == "h1"


def test_tcp_check_failure_restarts_vm_in_place(cluster, vms):
    s = cluster.wait_serial("tcp-stop", "cvirt-guest: stopped listening", 120)
    assert "cvirt-guest: listening on %d" % PORT in s
    ev = failed_within(cluster, "tcp-stop", 30)
    assert "TCP health check of guest port %d failed %d times in a row" % (
        PORT, MISSES) in ev[0]["message"], ev
    ids = boot_ids(restarted(cluster, "tcp-stop", 90))
    assert ids[0] != ids[1]


def agent_record(cl, name):
    """The agent's run state of a VM (DATA/vms/UUID.json)."""
    path = os.path.join(cl.base, "a-h1", "vms", cl.vm(name)["uuid"] + ".json")
    with open(path) as f:
        return json.load(f)


def test_watchdog_restarts_vm_in_place(cluster, vms):
    s = cluster.wait_serial("wd-hang", "cvirt-guest: watchdog no longer "
                            "petted", 120)
    assert "cvirt-guest: watchdog armed" in s
    # 2 x 3 s (i6300esb's two stages) after the last pet.
    ev = failed_within(cluster, "wd-hang", 30)
    assert "the guest watchdog fired" in ev[0]["message"], ev
    ids = boot_ids(restarted(cluster, "wd-hang", 90))
    assert ids[0] != ids[1]


def test_healthy_vms_are_never_restarted(cluster, vms):
    # Both failing VMs have been restarted by now (the tests above), so the
    # monitors ran well past the failing guests' 5 s + 2 misses.
    assert time.monotonic() - vms > 8
    for name in ("hb-ok", "tcp-ok"):
        v = cluster.vm(name)
        assert v["state"] == "running", v
        assert len(boot_ids(cluster.serial(name))) == 1, name
        assert not failure_events(cluster, name)
        assert qemu_pid(v["uuid"])
    assert "cvirt-guest: guest agent running" in cluster.serial("hb-ok")
    # Watched all along: both monitors armed on a first answer.
    assert agent_record(cluster, "hb-ok")["health"]["armed"] is True
    assert agent_record(cluster, "tcp-ok")["health"]["armed"] is True


def test_tcp_forward_survives_agent_restart(cluster, vms):
    h = agent_record(cluster, "tcp-ok")["health"]
    assert h["port"] == PORT and h["fwd_port"] > 0, h
    # The forward reaches the guest's service (busybox httpd).
    url = "http://127.0.0.1:%d/" % h["fwd_port"]
    assert urllib.request.urlopen(url, timeout=5).read() == b"ok\n"
    cluster.kill_agent("h1", signal.SIGKILL)
    cluster.start_agent("h1")
    assert agent_record(cluster, "tcp-ok")["health"] == h
    time.sleep(3)
    assert urllib.request.urlopen(url, timeout=5).read() == b"ok\n"
    v = cluster.vm("tcp-ok")
    assert v["state"] == "running" and not failure_events(cluster, "tcp-ok")
    assert len(boot_ids(cluster.serial("tcp-ok"))) == 1


@pytest.mark.parametrize("mon", ["tcp:0", "tcp:65536", "tcp:http", "tcp:",
                                 "tcp:80x", "heartbeats", "tcp:-1"])
def test_bad_monitor_is_refused(cluster, guest, mon):
    st, body = cluster.http("POST", "/api/v1/vms", {
        "name": "badmon", "cpus": 1, "memory_mib": 64, "ha": True,
        "ha_monitor": mon, "kernel": guest.kernel, "initrd": guest.initrd})
    assert st == 400, (st, body)
    assert "ha_monitor must be" in body["error"]
    rc, _, err = cluster.cli("vm", "create", "badmon", "--cpus", 1,
                             "--memory", 64, "--ha-monitor", mon, check=False)
    assert rc == 1 and "--ha-monitor must be" in err, err
    assert "badmon" not in cluster.vm_names()


def test_monitor_settings_are_cluster_settings(cluster, vms):
    s = cluster.cli("cluster", "show", json=True)
    assert s["ha_monitor_interval_ms"] == 2000, s
    assert s["ha_monitor_misses"] == MISSES, s
    rc, _, err = cluster.cli("cluster", "set", "ha_monitor_interval_ms=100",
                             check=False)
    assert rc == 1 and "500..60000" in err, err
    rc, _, err = cluster.cli("cluster", "set", "ha_monitor_misses=0",
                             check=False)
    assert rc == 1 and "1..100" in err, err
