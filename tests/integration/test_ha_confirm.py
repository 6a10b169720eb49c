"""Hosts without a watchdog (fence=kill-only) and `cvirt host confirm-off`
(issue 14, docs/ha.md): such a host's HA VMs never restart elsewhere on
lease age alone, only once an admin vouched the host is off; a joined host
that lies in its reports cannot take over, and so restart, a VM that
another host may still run.

The kill-only host hk is simulated: it registers through the API as an
agent would (fence "kill-only") and a small HTTP server answers for it
when the manager starts a VM there, with a lease file on the shared
storage that nobody renews, as after a crash. The real host h1 reads the
leases for the manager and runs the VM once it is restarted."""

import http.server
import json
import os
import re
import threading
import time

import pytest

from cvirt import free_port, qemu_pids, wait_for

CMDLINE = "console=ttyS0 cvirt.tick=1"
L_S = 5.0       # ha_lease_timeout_ms, the default


class FakeAgent(http.server.BaseHTTPRequestHandler):
    """Answers a VM start as an agent would (pid 4242); 404 otherwise."""

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        ok = self.path.startswith("/agent/v1/vms/") and \
            self.path.endswith("/start")
        body = json.dumps({"pid": 4242} if ok else {"error": "no"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_agent():
    """The URL of a FakeAgent server, shut down when the test ends."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                          FakeAgent)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()


def register(cl, name, url, fence, vms=()):
    return cl.register_host({
        "name": name, "url": url, "accel": "tcg", "accel_reason": "test",
        "cpus": 4, "memory_mib": 4096,
        "storage": [{"name": "local", "path": cl.storage, "ok": True}],
        "vms": list(vms), "fence": fence,
        "timing": {"renew_ms": 500, "fence_ms": 3000, "kill_grace_ms": 250,
                   "tick_ms": 100, "watchdog_ms": 1000}})


def events(cl, kind):
    return [e for e in cl.cli("event", "list", json=True)
            if e["kind"] == kind]


def test_kill_only_host_waits_for_confirm_off(make_cluster, guest,
                                              fake_agent):
    """Guards src/manager/failover.c: fo_domain_gone (a kill-only host's
    VMs need a confirm-off later than the lease's last change, not lease
    age alone), src/manager/api_host.c: api_host_confirm_off (409 while
    the host reports, admin only, event host.confirmed_off, the VMs it
    releases; api_host_fenced: storage[].fenced), and
    src/manager/api_agent.c: api_apply_running (a report
    from another host neither duplicates nor takes over the VM).
    On main there is no confirm-off (404) and the kill-only host's VM
    restarts as soon as its lease expired."""
    cl = make_cluster(hosts=("h1",))
    url = fake_agent
    os.makedirs(os.path.join(cl.storage, "leases"), exist_ok=True)
    with open(os.path.join(cl.storage, "leases", "hk.json"), "w") as f:
        json.dump({"host": "hk", "seq": 7, "seq_end": 7}, f)
    st, reply = register(cl, "hk", url, "kill-only")
    assert st == 200, reply
    cl.cli("vm", "create", "kv", "--cpus", 1, "--memory", 128, "--ha",
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", CMDLINE)
    cl.cli("vm", "start", "kv", "--host", "hk")
    v = cl.vm("kv")
    assert (v["host"], v["state"]) == ("hk", "running"), v
    uuid = v["uuid"]
    # hk reports (it just registered): not off.
    st, reply = cl.http("POST", "/api/v1/hosts/hk/confirm-off")
    assert st == 409 and reply["error"] == \
        "host hk is reporting: it is not off", reply
    # Reports leave a VM changed in the last 2 s alone (api_agent.c:
    # REPORT_SETTLE_MS); wait that out so the claim below is judged.
    time.sleep(2.1)
    # A joined host claiming kv while hk is up: its copy is stopped.
    st, reply = register(cl, "hx", url, "watchdog", [
        {"uuid": uuid, "name": "kv", "state": "running", "pid": 1}])
    assert st == 200 and reply["stop"] == [uuid], reply
    cl.wait_host("hk", "down", 15)
    # ... and while hk is down: ignored, kv stays recorded on hk.
    st, reply = register(cl, "hx", url, "watchdog", [
        {"uuid": uuid, "name": "kv", "state": "running", "pid": 1}])
    assert st == 200 and reply["stop"] == [], reply
    v = cl.vm("kv")
    assert (v["host"], v["state"]) == ("hk", "running"), v
    # hk's lease has not changed since it was first read (before hk
    # went down, over 5 s ago): it has expired, and a watchdog host
    # would have its VM restarted within a failover round (0.5 s).
    # One more lease timeout shows kill-only does not.
    time.sleep(L_S + 1)
    v = cl.vm("kv")
    assert (v["host"], v["state"]) == ("hk", "running"), v
    assert not qemu_pids(uuid)
    assert not events(cl, "host.domain_failed")
    op = cl.cli("user", "create", "opr", "--role", "operator")[1].strip()
    st, _ = cl.http("POST", "/api/v1/hosts/hk/confirm-off", token=op)
    assert st == 403
    t0 = time.monotonic()
    rc, out, err = cl.cli("host", "confirm-off", "hk")
    assert (rc, out) == (0, "host hk confirmed off; restarting "
                         "elsewhere: kv\n"), (rc, out, err)
    # From the confirmation to QEMU running on h1: one failover round
    # (kicked at once), a vm.start task and the spawn, well under a
    # second here; 10 s for a loaded machine.
    got = wait_for(lambda: (lambda x: x if x["host"] == "h1" and
                            x["state"] == "running" else None)(
                                cl.vm("kv")), 10, "kv running on h1")
    assert time.monotonic() - t0 < 10
    assert len(qemu_pids(got["uuid"])) == 1
    ev = [e["message"] for e in events(cl, "host.confirmed_off")]
    assert ev == ["host hk confirmed off by admin: its VMs restart "
                  "elsewhere once its storage leases expired"], ev
    # One domain failed, with the figures of src/manager/failover.c,
    # fo_domain_fail: seq 7 (the file above), read through h1.
    ev = [e["message"] for e in events(cl, "host.domain_failed")]
    assert len(ev) == 1 and re.fullmatch(
        r"host hk lost storage local: lease seq 7 unchanged for \d+ ms "
        r"\(timeout 5000 ms\), read fresh via h1 \d+\.\d s ago; an "
        r"operator confirmed it is off", ev[0]), ev
    h = cl.cli("host", "show", "hk", json=True)
    assert h["fence"] == "kill-only" and h["confirmed_off"], h
    assert h["state"] == "fenced", h
    assert [(d["name"], d["fenced"]) for d in h["storage"]] == \
        [("local", True)], h
    h1 = [x for x in cl.cli("host", "list", json=True)
          if x["name"] == "h1"][0]
    assert [d["fenced"] for d in h1["storage"]] == [False], h1
    st, audit = cl.http("GET", "/api/v1/audit?limit=50")
    assert st == 200 and any(
        a["path"] == "/api/v1/hosts/hk/confirm-off" and
        a["status"] == 200 for a in audit), audit


def test_registration_scan_and_unknown(make_cluster, guest, fake_agent):
    """Guards src/manager/api_agent.c: api_apply_report (a VM the host did
    not report is marked stopped only after a complete scan, never while
    unknown) and api_apply_running (state unknown kept with its pid, event
    vm.unknown), and src/manager/vmops.c: vmops_check (an unknown VM is
    not started elsewhere). On main a registration without the VM marks
    it stopped at once, and "unknown" is ignored."""
    cl = make_cluster(hosts=("h1",))
    url = fake_agent
    assert register(cl, "hs", url, "watchdog")[0] == 200
    cl.cli("vm", "create", "ks", "--cpus", 1, "--memory", 128, "--ha",
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", CMDLINE)
    cl.cli("vm", "start", "ks", "--host", "hs")
    uuid = cl.vm("ks")["uuid"]
    time.sleep(2.1)     # REPORT_SETTLE_MS, as above

    def reg(scan, vms):
        body_vms = [dict(v, uuid=uuid, name="ks") for v in vms]
        st, reply = cl.register_host({
            "name": "hs", "url": url, "accel": "tcg", "cpus": 4,
            "memory_mib": 4096, "accel_reason": "test",
            "storage": [{"name": "local", "path": cl.storage,
                         "ok": True}],
            "vms": body_vms, "fence": "watchdog", "scan": scan})
        assert st == 200, reply
        return cl.vm("ks")

    v = reg("partial", [])
    assert (v["state"], v["host"]) == ("running", "hs"), v
    v = reg("complete", [{"state": "unknown", "pid": 4243,
                          "reason": "QMP does not answer"}])
    assert (v["state"], v["host"], v["pid"]) == ("unknown", "hs", 4243)
    ev = [e["message"] for e in events(cl, "vm.unknown")]
    assert ev == ["vm ks is unknown on host hs: QMP does not answer "
                  "(QEMU pid 4243)"], ev
    rc, _, err = cl.cli("vm", "start", "ks", "--host", "h1", check=False)
    assert (rc, err) == (1, "cvirt: vm \"ks\" is unknown on host hs: "
                         "its QEMU (pid 4243) does not answer; stop it "
                         "with --force or wait\n"), (rc, err)
    # unknown is never marked stopped, even by a complete scan
    time.sleep(2.1)
    v = reg("complete", [])
    assert v["state"] == "unknown", v
    assert not qemu_pids(uuid)
