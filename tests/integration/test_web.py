"""The web UI's server side: static files, the session route, usage stats,
the VNC console ticket, and the event stream's tickets and cap."""

import http.client
import json
import urllib.parse

import cvirt


def open_stream(cl, closing=False):
    """Opens GET /api/v1/stream with a fresh ticket; returns the response
    (keep it: the socket lives as long as it does) and the first two events
    as {name: data}. closing: streams were closed a moment ago and may
    still count against the cap, so a 503 "too many" is NotYet."""
    status, t = cl.http("POST", "/api/v1/stream/ticket")
    if closing and status == 503 and "too many" in t.get("error", ""):
        raise cvirt.NotYet(t["error"])
    assert status == 200, t
    u = urllib.parse.urlparse(cl.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", t["path"])
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    events, name = {}, None
    while len(events) < 2:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events[name] = json.loads(line[6:])
    return resp, events


def test_ui_is_served_without_listings(cluster):
    status, body = cluster.http("GET", "/", auth=False)
    assert status == 200 and "js/app.js" in body
    status, _ = cluster.http("GET", "/vendor/", auth=False)
    assert status == 403
    status, body = cluster.http("GET", "/api/v1/nope")
    assert status == 404 and "error" in body


def test_session_names_the_caller(cluster):
    status, me = cluster.http("GET", "/api/v1/session")
    assert status == 200 and me == {"name": "admin", "role": "admin"}
    status, _ = cluster.http("GET", "/api/v1/session", token="bad")
    assert status == 401


def test_host_and_vm_stats(cluster, guest):
    cluster.cli("vm", "create", "st1", "--cpus", "1", "--memory", "128",
                "--kernel", guest.kernel, "--initrd", guest.initrd,
                "--cmdline", "console=ttyS0")
    status, r = cluster.http("GET", "/api/v1/vms/st1/stats")
    assert status == 200 and r["samples"] == [] and r["max_samples"] == 300
    cluster.cli("vm", "start", "st1")
    try:
        def vm_samples():
            s = cluster.http("GET", "/api/v1/vms/st1/stats")[1]["samples"]
            return s if len(s) >= 3 and s[-1]["cpu_pct"] is not None else None
        s = cvirt.wait_for(vm_samples, 30, "3 samples of st1")
        assert all(s[i]["t"] < s[i + 1]["t"] for i in range(len(s) - 1))
        assert 0 <= s[-1]["cpu_pct"] <= 100
        assert 1 < s[-1]["mem_mib"] < 1024
        assert s[-1]["net_rx_bps"] is None     # user-mode NICs: no counters
        h = cluster.http("GET", "/api/v1/hosts/h1/stats")[1]["samples"]
        assert h and 0 <= h[-1]["cpu_pct"] <= 100 and h[-1]["mem_mib"] > 0
    finally:
        cluster.cli("vm", "stop", "st1", "--force")
    status, _ = cluster.http("GET", "/api/v1/vms/nope/stats")
    assert status == 404
    status, _ = cluster.http("GET", "/api/v1/hosts/nope/stats")
    assert status == 404


def test_vnc_ticket_needs_a_running_vm(cluster, guest):
    cluster.cli("vm", "create", "vn1", "--cpus", "1", "--memory", "128",
                "--kernel", guest.kernel, "--initrd", guest.initrd)
    status, body = cluster.http("POST", "/api/v1/vms/vn1/vnc")
    assert status == 409 and "no graphical console" in body["error"]
    assert cluster.vm("vn1")["display"] == "none"
    status, vm = cluster.http("POST", "/api/v1/vms", {
        "name": "vn2", "cpus": 1, "memory_mib": 128, "display": "vnc",
        "kernel": guest.kernel, "initrd": guest.initrd})
    assert status == 201 and vm["display"] == "vnc", vm
    status, body = cluster.http("POST", "/api/v1/vms/vn2/vnc")
    assert status == 409 and "not running" in body["error"]
    status, body = cluster.http("POST", "/api/v1/vms", {
        "name": "vn3", "cpus": 1, "memory_mib": 128, "display": "sdl"})
    assert status == 400 and "display must be vnc or none" in body["error"]
    status, _ = cluster.http("POST", "/api/v1/vms/nope/vnc")
    assert status == 404


def test_stream_tickets_and_cap(cluster):
    status, _ = cluster.http("GET", "/api/v1/stream")
    assert status == 401
    status, t = cluster.http("POST", "/api/v1/stream/ticket")
    assert status == 200, t
    u = urllib.parse.urlparse(cluster.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", t["path"])
    assert c.getresponse().status == 200
    c.close()
    # A ticket works once.
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", t["path"])
    assert c.getresponse().status == 401
    c.close()
    conns = []
    try:
        resp, ev = open_stream(cluster)
        conns.append(resp)
        assert set(ev) == {"vms", "state"}
        assert {h["name"] for h in ev["state"]["hosts"]} == {"h1"}
        assert set(ev["state"]) == {"hosts", "tasks", "events", "stats"}
        assert isinstance(ev["vms"], list)
        # Streams closed above may still count until the server notices.
        def fill():
            while len(conns) < 8:
                conns.append(open_stream(cluster, closing=True)[0])
            return True
        cvirt.wait_for(fill, 20, "8 open streams")
        status, body = cluster.http("POST", "/api/v1/stream/ticket")
        assert status == 503 and "too many" in body["error"]
    finally:
        for c in conns:
            c.close()
    # The server notices closed streams at its next write (a change or the
    # 10 s keep-alive) and hands out tickets again.
    cvirt.wait_for(lambda: cvirt.expect_status(
        cluster.http("POST", "/api/v1/stream/ticket"), 200, pending=(503,)),
        20, "a stream ticket after closing them")


def vnc_greeting(cl, name):
    """Opens the VM's graphical console websocket by hand; returns the raw
    upgrade reply's first line and the first frame's payload."""
    status, t = cl.http("POST", "/api/v1/vms/%s/vnc" % name)
    assert status == 200, t
    u = urllib.parse.urlparse(cl.url)
    s, head, rest = cvirt.ws_upgrade(u.hostname, u.port, t["path"], timeout=5)
    with s:
        first = head.split(b"\r\n")[0].decode(errors="replace")
        # One server frame: FIN+opcode, then a 7-bit length (the greeting
        # is 12 bytes).
        while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7f):
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        n = rest[1] & 0x7f if len(rest) >= 2 else 0
        return first, rest[2:2 + n]


def test_vnc_websocket_starts_with_the_upgrade(cluster, guest):
    """QEMU's VNC server speaks first: its greeting may reach the manager
    before the browser's upgrade is answered, and must then wait for it.
    (It used to be written ahead of the 101 reply now and then, and the
    console hung at "connecting": about one try in 40 here.)"""
    status, vm = cluster.http("POST", "/api/v1/vms", {
        "name": "vn4", "cpus": 1, "memory_mib": 128, "display": "vnc",
        "kernel": guest.kernel, "initrd": guest.initrd})
    assert status == 201, vm
    cluster.cli("vm", "start", "vn4")
    try:
        for _ in range(80):
            first, payload = vnc_greeting(cluster, "vn4")
            assert first.startswith("HTTP/1.1 101"), first
            assert payload.startswith(b"RFB 003.00"), payload
    finally:
        cluster.cli("vm", "stop", "vn4", "--force")
