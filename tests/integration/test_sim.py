"""`cvirt sim` restarted on a live inventory adopts the VMs the manager
says run on its hosts (docs/scale.md: "a restarted sim adopts the VMs the
manager says run on its hosts, as a restarted agent re-attaches"), which
is also what `cvirt sim --vms-per-host 0` on a kept inventory relies on."""

import re
import subprocess
import time

from cvirt import free_port, wait_for


def start_sim(cl, tmp_path, tag, vms_per_host):
    out = open(tmp_path / ("sim-%s.out" % tag), "w+")
    err = open(tmp_path / ("sim-%s.log" % tag), "w")
    p = subprocess.Popen([cl.bin, "sim", "--manager", cl.url,
                          "--token-file", cl.token_file, "--hosts", "3",
                          "--vms-per-host", str(vms_per_host), "--listen",
                          "127.0.0.1:%d" % free_port(), "--prefix", "a"],
                         stdout=out, stderr=err)
    return p, out


def stop_sim(p):
    p.terminate()
    return p.wait(20)


def test_restarted_sim_adopts_its_vms(make_cluster, tmp_path):
    """A sim creates 3 hosts x 2 VMs; one VM is paused, one stopped. The
    sim stops (its hosts go quiet) and a new one starts with
    --vms-per-host 0, so it creates nothing: every VM still runs where it
    ran, the paused one stays paused, the stopped one stays stopped, the
    manager saw no VM end, and the new sim converges on what it adopted.

    Guards src/sim/sim.c sim_adopt() (called by sim_run() before the
    first report) and src/sim/sim_host.c sim_register() listing the
    adopted VMs: without either, the new sim's registration or reports
    list no VMs and the manager marks every one stopped ("no longer
    running"); and sim_converged() counting adopted VMs."""
    cl = make_cluster(hosts=())
    sim, out = start_sim(cl, tmp_path, "1", 2)
    try:
        def converged():
            assert sim.poll() is None, (tmp_path / "sim-1.log").read_text()
            out.seek(0)
            return re.search(r"converged: 3 hosts up, 6 VMs running",
                             out.read())
        wait_for(converged, 60, "the first sim to converge", interval=0.3)
        cl.cli("vm", "pause", "a-vm00001-000")
        cl.cli("vm", "stop", "a-vm00002-001")
    finally:
        assert stop_sim(sim) == 0
    before = {v["name"]: (v["state"], v["host"])
              for v in cl.cli("vm", "list", json=True)}
    assert sorted(before) == ["a-vm%05d-%03d" % (h, i) for h in range(3)
                              for i in range(2)]
    assert [s for s, _ in before.values()].count("running") == 4, before
    last_event = max(e["id"] for e in cl.cli("event", "list", json=True))

    sim, out = start_sim(cl, tmp_path, "2", 0)
    try:
        # The new sim's hosts register, then report every second.
        def registered():
            assert sim.poll() is None, (tmp_path / "sim-2.log").read_text()
            return sorted(e["object"] for e in cl.cli(
                "event", "list", "--since", last_event, json=True)
                if e["kind"] == "host.up") == ["a-00000", "a-00001",
                                               "a-00002"]
        wait_for(registered, 20, "the new sim's hosts to register")
        # It converges on what it adopted (running or paused: 5 VMs).
        wait_for(lambda: sim.poll() is None and re.search(
            r"converged: 3 hosts up, 5 VMs running", (
                tmp_path / "sim-2.out").read_text()), 20,
            "the new sim to converge on the adopted VMs", interval=0.3)
        time.sleep(3)        # several more reports of every host
        assert sim.poll() is None, (tmp_path / "sim-2.log").read_text()
        after = {v["name"]: (v["state"], v["host"])
                 for v in cl.cli("vm", "list", json=True)}
        assert after == before
        ends = [e for e in cl.cli("event", "list", "--since", last_event,
                                  json=True)
                if e["kind"] == "vm.state"]
        assert ends == [], ends
        # Adopted VMs answer the manager's calls on their host.
        cl.cli("vm", "resume", "a-vm00001-000")
        cl.cli("vm", "stop", "a-vm00000-001")
        time.sleep(2.5)
        assert cl.vm("a-vm00001-000")["state"] == "running"
        assert cl.vm("a-vm00000-001")["state"] == "stopped"
    finally:
        assert stop_sim(sim) == 0
