"""Maintenance evacuation and balancer moves keep the guests alive
(docs/cluster.md, "Maintenance mode" and "Load balancing": both move VMs
by live migration). A VM that merely runs on another host afterwards is
not enough: it must be the same boot of the same guest, its serial ticks
going on in order from where they were, with one QEMU, the new host's.

Three hosts in network namespaces (netns.py). Light guests only
(cvirt.tick=1): QEMU 7.2's TCG migration can corrupt memory-busy ones
(docs/cluster.md)."""

import pytest

from cvirt import boot_ids, qemu_pids, ticks, wait_for
from netns import start_netns_cluster

pytestmark = pytest.mark.shared_storage


@pytest.fixture(scope="module")
def mc(request, guest, cvirt_bin):
    return start_netns_cluster(request, cvirt_bin, ("h1", "h2", "h3"),
                               memory_mib=1024)


def boot_all(cl, guest, names, host, memory):
    for name in names:
        cl.cli("vm", "create", name, "--cpus", 1, "--memory", memory,
               "--kernel", guest.kernel, "--initrd", guest.initrd,
               "--cmdline", "console=ttyS0 cvirt.tick=1")
        cl.cli("vm", "start", name, "--host", host)
    for name in names:
        cl.wait_serial(name, "cvirt-guest: tick 2", 60 + 30 * len(names))


def qemu_parent(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


class Alive:
    """What a guest was before a move: its boot id and last tick."""

    def __init__(self, cl, name):
        self.cl, self.name = cl, name
        v = cl.vm(name)
        self.uuid, self.host = v["uuid"], v["host"]
        s = cl.serial(name)
        self.boot = boot_ids(s)
        assert len(self.boot) == 1, s[-2000:]
        self.tick = ticks(s)[-1]

    def check_moved(self, away_from):
        """The guest now runs on another host than away_from, as the same
        boot, ticking on in order; one QEMU, the new host agent's child."""
        cl, name = self.cl, self.name
        v = cl.wait_state(name, "running", 30)
        assert v["host"] != away_from, v
        pids = wait_for(lambda: (lambda p: p if len(p) == 1 else None)(
            qemu_pids(self.uuid)), 15, "exactly one QEMU of %s" % name)
        assert qemu_parent(next(iter(pids))) == cl.agents[v["host"]].pid, \
            "%s's QEMU is not %s's" % (name, v["host"])
        wait_for(lambda: ticks(cl.serial(name))[-1] >= self.tick + 3, 20,
                 "%s's ticks to go on after the move" % name)
        s = cl.serial(name)
        assert boot_ids(s) == self.boot, \
            "%s booted again: %s" % (name, boot_ids(s))
        seq = ticks(s)
        assert seq == list(range(1, len(seq) + 1)), \
            "%s's ticks are out of order: %r" % (name, [
                (a, b) for a, b in zip(seq, seq[1:]) if b != a + 1][:5])
        assert "panic" not in s.lower(), s[-3000:]
        return v["host"]


def test_evacuation_keeps_guests_alive(mc, guest):
    """Guards src/manager/migrate.c hostops_evacuate(): every running VM
    of the host goes through mig_one() (a live migration that ends the
    source only once the destination runs), not a restart elsewhere."""
    names = ("e1", "e2")
    boot_all(mc, guest, names, "h1", 128)
    before = {n: Alive(mc, n) for n in names}
    res = mc.cli("host", "maintenance", "h1", "on", json=True, timeout=180)
    assert res["state"] == "succeeded", res
    assert res["result"]["moved"] == 2 and res["result"]["failed"] == 0
    for n in names:
        before[n].check_moved("h1")
    assert mc.cli("host", "show", "h1", json=True)["vms"] == 0
    mc.cli("host", "maintenance", "h1", "off")
    for n in names:
        mc.cli("vm", "delete", n, "--force")


def test_balancer_move_keeps_guest_alive(mc, guest):
    """Guards src/manager/balancer.c: in automatic mode the balancer
    submits a vm.migrate task for the VM it picks (src/manager/migrate.c
    vmops_migrate() -> mig_one(), live), so the moved guest lives on."""
    names = ("b1", "b2", "b3")
    boot_all(mc, guest, names, "h2", 160)
    before = {n: Alive(mc, n) for n in names}
    since = max([e["id"] for e in mc.cli("event", "list", json=True)] + [0])
    mc.cli("cluster", "set", "balancer_mode=automatic",
           "balancer_threshold_pct=20", "balancer_interval_s=1")
    try:
        moved = wait_for(lambda: [n for n in names
                                  if mc.vm(n)["host"] != "h2"], 60,
                         "the balancer to move a VM off h2")
        ev = wait_for(lambda: [e for e in mc.cli("event", "list", "--since",
                                                 since, json=True)
                               if e["kind"] == "balancer.move"], 10,
                      "a balancer.move event")
        assert any(moved[0] in e["message"] for e in ev), ev
    finally:
        mc.cli("cluster", "set", "balancer_mode=off")
    for n in names:
        wait_for(lambda: mc.vm(n)["task"] is None, 60, "%s to be idle" % n)
    for n in names:
        if mc.vm(n)["host"] != "h2":
            before[n].check_moved("h2")
        else:
            # The others stayed, untouched: same QEMU, ticking on.
            assert qemu_pids(before[n].uuid), n
            wait_for(lambda: ticks(mc.serial(n))[-1] >= before[n].tick + 2,
                     20, "%s's ticks" % n)
            assert boot_ids(mc.serial(n)) == before[n].boot
    for n in names:
        mc.cli("vm", "delete", n, "--force")
