"""Scale and operations: the inventory survives a manager crash on either
backend, /metrics is valid Prometheus text with per-host and per-VM usage,
two managers on PostgreSQL fail over without touching VMs, and bad --db
URLs are refused.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from cvirt import Daemon, NotYet, boot_ids, free_port, qemu_pid, wait_for

CMDLINE = "console=ttyS0 cvirt.tick=1"


def boot(cl, guest, name):
    cl.cli("vm", "create", name, "--cpus", 1, "--memory", 128,
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", CMDLINE)
    cl.cli("vm", "start", name)
    cl.wait_serial(name, "cvirt-guest: boot-id", 40)
    return cl.vm(name)


def inventory(cl):
    """What a restart must keep: VMs, hosts' static fields, tasks, events."""
    vms = sorted(cl.cli("vm", "list", json=True), key=lambda v: v["name"])
    hosts = [{k: h.get(k) for k in ("name", "cpus", "memory_mib", "accel")}
             for h in cl.cli("host", "list", json=True)]
    tasks = {t["id"]: (t["kind"], t["state"])
             for t in cl.cli("task", "list", json=True)}
    st, events = cl.http("GET", "/api/v1/events?limit=500")
    assert st == 200, events
    return vms, hosts, tasks, {e["id"] for e in events}


def test_manager_crash_keeps_inventory(make_cluster, guest):
    cl = make_cluster()
    boot(cl, guest, "keep1")
    for i in range(5):
        cl.cli("vm", "create", "keep-s%d" % i, "--cpus", 1 + i % 2,
               "--memory", 64 + i)
    cl.cli("vm", "delete", "keep-s4")
    vms, hosts, tasks, events = inventory(cl)
    # keep1's start and keep-s4's delete (a create is no task).
    assert len(vms) == 5 and sorted(tasks.values()) == [
        ("vm.delete", "succeeded"), ("vm.start", "succeeded")], tasks
    cl.manager.signal(signal.SIGKILL)     # no clean shutdown
    assert cl.manager.wait(10)
    cl.start_manager()
    cl.wait_host("h1", "up", 20)
    vms2, hosts2, tasks2, events2 = inventory(cl)
    strip = [{k: v for k, v in x.items() if k != "updated"} for x in vms]
    strip2 = [{k: v for k, v in x.items() if k != "updated"} for x in vms2]
    assert strip2 == strip
    assert hosts2 == hosts
    assert tasks2 == tasks
    assert events <= events2
    # The sizes placement relies on were kept as well.
    cl.cli("vm", "start", "keep-s3")
    assert cl.vm("keep-s3")["state"] == "running"


def test_bad_db_url_is_refused(cvirt_bin, tmp_path):
    """Exit 1 with one line that says why. libpq's own message spans
    lines: pg_msg (src/manager/db_pg.c) puts it on one."""
    unsupported = "unsupported --db URL: want sqlite:PATH or postgresql://..."
    for url, want in (
            ("mysql://x/y", unsupported), ("sqlite:", unsupported),
            ("postgresql://127.0.0.1:1/none", "cannot connect to PostgreSQL: "
             "connection to server at \"127.0.0.1\", port 1 failed: "
             "Connection refused Is the server running")):
        p = subprocess.run([cvirt_bin, "manager", "--data", str(tmp_path),
                            "--listen", "127.0.0.1:%d" % free_port(),
                            "--db", url], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 1 and p.stdout == "", (url, p)
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} manager error: [^\n]*\n",
                            p.stderr) and want in p.stderr, (url, p.stderr)


def parse_metrics(text):
    from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams, name, **labels):
    return [s for s in fams[name].samples
            if all(s.labels.get(k) == v for k, v in labels.items())]


def test_metrics_parse_with_usage(make_cluster, guest):
    cl = make_cluster()
    v = boot(cl, guest, "met1")
    cl.cli("vm", "create", "met2", "--cpus", 1, "--memory", 64)

    def scrape():
        status, text = cl.http("GET", "/metrics")
        assert status == 200
        fams = parse_metrics(text)
        return fams if samples(fams, "cvirt_vm_cpu_seconds", vm="met1") \
            else None
    fams = wait_for(scrape, 15, "per-VM usage in /metrics")
    assert samples(fams, "cvirt_hosts", state="up")[0].value == 1
    assert samples(fams, "cvirt_vms", state="running")[0].value == 1
    assert samples(fams, "cvirt_vms", state="stopped")[0].value == 1
    assert samples(fams, "cvirt_host_vms", host="h1",
                   state="running")[0].value == 1
    rss = samples(fams, "cvirt_vm_memory_rss_bytes", vm="met1")
    assert rss and rss[0].labels["uuid"] == v["uuid"] and \
        rss[0].labels["host"] == "h1" and rss[0].value > 1 << 20
    mem = samples(fams, "cvirt_host_memory_total_bytes", host="h1")
    with open("/proc/meminfo") as f:      # h1 is this machine
        total_kib = int(re.search(r"^MemTotal:\s+(\d+) kB", f.read(),
                                  re.M).group(1))
    assert [m.value for m in mem] == [total_kib * 1024], mem
    assert samples(fams, "cvirt_host_cpu_seconds", host="h1")[0].value > 0
    # The task that started met1 and the API calls so far are timed.
    t = samples(fams, "cvirt_task_duration_seconds", kind="vm.start",
                result="succeeded")
    assert [s.value for s in t if s.name.endswith("_count")] == [1], t
    api = [s for s in fams["cvirt_api_request_duration_seconds"].samples
           if s.name.endswith("_count") and s.labels["route"] ==
           "/api/v1/vms" and s.labels["method"] == "POST"]
    # met1's and met2's creates.
    assert [s.value for s in api] == [2], api
    assert samples(fams, "cvirt_manager_leader")[0].value == 1
    # Viewer role or better: no token, no metrics.
    status, _ = cl.http("GET", "/metrics", auth=False)
    assert status == 401


@pytest.mark.pg_only     # manager HA needs PostgreSQL
def test_ha_standby_takes_over(make_cluster, guest):
    cl = make_cluster(hosts=())
    url1 = cl.url
    port2 = free_port()
    url2 = "http://127.0.0.1:%d" % port2
    m2 = Daemon("manager2", [cl.bin, "manager", "--data",
                             os.path.join(cl.base, "m2"), "--listen",
                             "127.0.0.1:%d" % port2] + cl.db_args(),
                os.path.join(cl.logdir, "manager2.log"), cl.env)
    m2.start()
    try:
        cl.url = url2
        wait_for(lambda: cl.http("GET", "/api/v1/health", auth=False)[1]
                 .get("role") == "standby", 20, "manager 2 as a standby",
                 starting=True)
        status, body = cl.http("GET", "/api/v1/vms")
        assert status == 503 and "standby" in body["error"]
        status, text = cl.http("GET", "/metrics")
        assert status == 200 and "cvirt_manager_leader 0" in text
        # Agents and the CLI know both managers.
        cl.url = url1 + "," + url2
        cl.start_agent("h1")
        v = boot(cl, guest, "ha1")
        pid = qemu_pid(v["uuid"])
        t0 = time.monotonic()
        cl.manager.signal(signal.SIGKILL)
        assert cl.manager.wait(10)
        def served():
            # Until it holds the leader lock, manager 2 answers 503.
            rc, vm, err = cl.cli("vm", "show", "ha1", json=True,
                                 check=False)
            if rc != 0 and "this manager is a standby" in err:
                raise NotYet(err)
            assert rc == 0, err
            return vm["state"] == "running"
        wait_for(served, 10, "the standby to serve")
        assert time.monotonic() - t0 < 10
        cl.url = url2
        assert cl.http("GET", "/api/v1/health", auth=False)[1]["role"] == \
            "leader"
        cl.url = url1 + "," + url2
        # The host keeps reporting (to the new leader) and the VM was
        # not touched.
        time.sleep(6)
        assert [h["state"] for h in cl.cli("host", "list", json=True)] == \
            ["up"]
        assert qemu_pid(v["uuid"]) == pid
        assert len(boot_ids(cl.serial("ha1"))) == 1
        cl.cli("vm", "stop", "ha1", "--force")
        assert cl.vm("ha1")["state"] == "stopped"
        events = cl.cli("event", "list", json=True)
        assert any(e["kind"] == "manager.takeover" for e in events)
    finally:
        m2.stop()
        cl.url = url1


def test_sim_hosts_and_vms_converge(make_cluster, tmp_path):
    """`cvirt sim` (small here; bench/bench_scale.py runs 1,000 x 20):
    simulated hosts register and report through the agent protocol, their
    VMs are created and started through the API and stay running."""
    cl = make_cluster(hosts=())
    out = open(tmp_path / "sim.out", "w+")
    err = open(tmp_path / "sim.log", "w")
    sim = subprocess.Popen([cl.bin, "sim", "--manager", cl.url,
                            "--token-file", cl.token_file, "--hosts", "20",
                            "--vms-per-host", "3", "--listen",
                            "127.0.0.1:%d" % free_port(), "--prefix", "s"],
                           stdout=out, stderr=err)
    try:
        def converged():
            assert sim.poll() is None, open(tmp_path / "sim.log").read()
            out.seek(0)
            return re.search(r"converged: 20 hosts up, 60 VMs running",
                             out.read())
        wait_for(converged, 90, "the simulated cluster to converge",
                 interval=0.5)
        hosts = cl.cli("host", "list", json=True)
        assert sorted(h["name"] for h in hosts) == \
            ["s-%05d" % i for i in range(20)]
        assert all(h["state"] == "up" for h in hosts)
        vms = cl.cli("vm", "list", json=True)
        assert len(vms) == 60 and all(v["state"] == "running" for v in vms)
        assert all(v["host"] == "s-%s" % v["name"][4:9] for v in vms)
        # Operations reach the simulated host and stay put.
        cl.cli("vm", "stop", "s-vm00007-001")
        cl.cli("vm", "pause", "s-vm00003-002")
        time.sleep(3)      # a few heartbeats
        assert cl.vm("s-vm00007-001")["state"] == "stopped"
        assert cl.vm("s-vm00003-002")["state"] == "paused"
        cl.cli("vm", "start", "s-vm00007-001")
        assert cl.vm("s-vm00007-001")["state"] == "running"
        status, text = cl.http("GET", "/metrics")
        fams = parse_metrics(text)
        assert samples(fams, "cvirt_vm_cpu_seconds", vm="s-vm00010-000")
        assert samples(fams, "cvirt_vms", state="running")[0].value == 59
    finally:
        sim.terminate()
        assert sim.wait(20) == 0
