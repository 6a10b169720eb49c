"""Hostile input: hundreds of malformed, oversized, mistyped and random
requests each get the one 4xx docs/api.md gives them (400 malformed, 404
unknown, 409 duplicate, 413, 431, ...; with a JSON error when they reach
the API), the manager stays healthy and fast, and nothing is created or
lost."""

import random
import re
import socket
import time

import pytest

SEED = 20261124
NAMES = ["", ".", "..", "../x", "a/b", "/etc/passwd", "..\\x", "a b", "a\nb",
         "-lead", "x" * 64, "x" * 5000, "\u00e9t\u00e9", "a\u0000b", "$(id)",
         "a;b", "%2e%2e", "*", "a\tb", "~root"]
WRONG_TYPES = [True, 1.5, [], {}, [1], {"a": 1}]
# Per field of POST /vms: values of the wrong type or out of range.
VM_BAD = {
    "name": WRONG_TYPES + [1, "", "../x", "x" * 100],
    "cpus": WRONG_TYPES + ["1", 0, -1, 257, 2 ** 63 - 1, -2 ** 63],
    "memory_mib": WRONG_TYPES + ["64", 0, 15, 2 ** 40],
    "disk_mib": WRONG_TYPES + ["1", 0, -5, 2 ** 62],
    "kernel": WRONG_TYPES + [1, "rel/path", "/a/../b", "/" + "k" * 5000],
    "initrd": WRONG_TYPES + [1, "rel", "/x/../../etc/shadow"],
    "cmdline": WRONG_TYPES + [1, "c" * 5000],
    "ha": ["yes", 1, [], {}],
    "ha_monitor": WRONG_TYPES + [1, "psychic", "tcp:0", "tcp:99999",
                                 "tcp:x"],
    "host": WRONG_TYPES + [1, "../h", "nosuchhost"],
    "storage": WRONG_TYPES + [1, "../s", "nosuchstorage"],
}
INT_BAD = WRONG_TYPES + ["5", -1, 2 ** 63 - 1, -2 ** 63]


def raw_request(cl, data, timeout=5):
    """Sends bytes on a fresh connection; returns the status or None when
    the server closed without answering."""
    with socket.create_connection(("127.0.0.1", cl.port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        buf = b""
        try:
            while len(buf) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass
    m = re.match(rb"HTTP/\d\.\d (\d{3}) ", buf)
    return (int(m.group(1)) if m else None), buf


def request_bodies(rng):
    """(method, path, body, status) quadruples: bad JSON, wrong types, bad
    names, each with the one status docs/api.md gives it: 400 for
    malformed input (checked before the VM's state is judged: "keep" is
    stopped, yet a bad stop/reboot body is 400, not 409); 404 for an
    unknown route or object, a reference to an object by a string that
    is no object's name included (names are checked where an object is
    created: a reference names one or none); 405 for a method a path does
    not take; 409 for a duplicate name."""
    reqs = []
    for n in NAMES:
        reqs.append(("POST", "/api/v1/vms",
                     {"name": n, "cpus": 1, "memory_mib": 64}, 400))
        reqs.append(("POST", "/api/v1/users", {"name": n, "role": "viewer"},
                     400))
    for field, values in VM_BAD.items():
        for v in values:
            body = {"name": "hostile", "cpus": 1, "memory_mib": 64}
            body[field] = v
            # A string that names no host or storage domain: unknown
            # object; every other value is malformed.
            want = 404 if v in ("nosuchhost", "nosuchstorage", "../h",
                                "../s") else 400
            reqs.append(("POST", "/api/v1/vms", body, want))
    for v in INT_BAD:
        reqs.append(("POST", "/api/v1/vms/keep/stop", {"timeout_s": v}, 400))
        reqs.append(("POST", "/api/v1/join-tokens", {"ttl_s": v}, 400))
    for v in [1.5, [], {}, [1], {"a": 1}, 1, "yes"]:
        reqs.append(("POST", "/api/v1/hosts/h1/maintenance", {"enabled": v},
                     400))
        reqs.append(("POST", "/api/v1/users", {"name": "u", "role": v}, 400))
        # A name that is no string is malformed (400, and no failed login
        # counted toward 429); "yes" is a login that fails (401).
        reqs.append(("POST", "/api/v1/login", {"name": v, "password": "x"},
                     401 if v == "yes" else 400))
        reqs.append(("POST", "/api/v1/vms/keep/reboot", {"force": v}, 400))
    reqs.append(("POST", "/api/v1/vms", {"name": "k", "cpus": 1,
                                         "memory_mib": 64, "bogus": 1}, 400))
    reqs.append(("POST", "/api/v1/vms", {"name": "keep", "cpus": 1,
                                         "memory_mib": 64}, 409))
    reqs.append(("POST", "/api/v1/vms", {"name": "k", "cpus": 1,
                                         "memory_mib": 64,
                                         "kernel": "/a/../../etc/shadow"},
                 400))
    for raw in (b"", b"{", b"[]", b"\"str\"", b"12", b"null", b"{\"a\":}",
                b"{\"name\":\"a\",\"name\":\"b\"}", b"\xff\xfe\x00",
                b"[" * 100000 + b"]" * 100000, b"{\"a\":" * 5000):
        reqs.append(("POST", "/api/v1/vms", raw, 400))
    for _ in range(150):
        n = rng.randint(1, 2000)
        reqs.append(("POST", rng.choice(["/api/v1/vms", "/api/v1/users",
                                         "/api/v1/vms/keep/start",
                                         "/api/v1/login",
                                         "/api/v1/agent/register"]),
                     bytes(rng.getrandbits(8) for _ in range(n)), 400))
    for path, want in (
            # Encoded slashes decode into a name with '/' and '..'.
            ("/api/v1/vms/..%2F..%2Fetc%2Fpasswd", 400),
            # Longer than a name can be: names no VM. (4000 bytes: under
            # the front's 16 KiB head, so the API answers.)
            ("/api/v1/vms/" + "a" * 4000, 404),
            ("/api/v1/tasks?limit=-1", 400), ("/api/v1/tasks?limit=abc", 400),
            ("/api/v1/tasks/1e9", 400),
            ("/api/v1/tasks/99999999999999999999999", 400),
            ("/api/v1/events?limit=99999999999", 400),
            ("/api/v1/vms/keep/serial?offset=-5", 400),
            ("/api/v1/vms/keep/serial?offset=zz", 400),
            ("/api/v1/users/..", 400),
            ("/api/v1/nosuch", 404),
            # No such operation (POST /vms/NAME/OP has one route per OP:
            # src/manager/api_vm.c), whatever the method; an operation
            # that exists takes POST only.
            ("/api/v1/vms/keep/teleport", 404),
            ("/api/v1/vms/keep/start", 405)):
        reqs.append(("GET", path, None, want))
    reqs.append(("POST", "/api/v1/vms/keep/teleport", {}, 404))
    reqs.append(("DELETE", "/api/v1/vms/..", None, 400))
    reqs.append(("DELETE", "/api/v1/users/..%2Fadmin", None, 400))
    return reqs


def snapshot(cl):
    return (cl.vm("keep"), cl.vm_names(),
            [u["name"] for u in cl.cli("user", "list", json=True)],
            [h["name"] for h in cl.cli("host", "list", json=True)])


@pytest.mark.slow
def test_hostile_requests_get_4xx_and_change_nothing(cluster):
    cluster.cli("vm", "create", "keep", "--cpus", "1", "--memory", "64")
    before = snapshot(cluster)
    rng = random.Random(SEED)
    reqs = request_bodies(rng)
    assert len(reqs) > 300
    bad = []
    for method, path, body, want in reqs:
        status, reply = cluster.http(method, path, body=body, timeout=20)
        if status != want or not (
                isinstance(reply, dict) and isinstance(reply.get("error"),
                                                       str)):
            bad.append((method, path[:80], repr(body)[:80], want, status,
                        repr(reply)[:200]))
    assert not bad, "%d wrong answers (method, path, body, want, got, " \
        "reply):\n%s" % (len(bad), "\n".join(map(str, bad)))

    # Oversized: body, headers, token.
    big = b"{\"name\":\"" + b"x" * (2 * 1024 * 1024) + b"\"}"
    status, reply = cluster.http("POST", "/api/v1/vms", body=big, timeout=30)
    assert status == 413, (status, reply)
    # Heads over 16 KiB: refused by the front before anything reads them
    # (src/common/tls.c).
    too_big = (431, {"error": "request headers over 16 KiB"})
    assert cluster.http("GET", "/api/v1/vms", token="t" * 20000) == too_big
    assert cluster.http("GET", "/api/v1/vms",
                        headers={"X-Junk": "j" * 60000}) == too_big

    # Raw protocol garbage: a 4xx, or a closed connection when no request
    # head ever ended (None); 505 for an HTTP version it does not speak
    # (the protocol's answer, RFC 9110 15.6.6). Fixed for each.
    tok = cluster.token().encode()
    post = b"POST /api/v1/vms HTTP/1.1\r\nHost: x\r\nAuthorization: " \
        b"Bearer " + tok
    raws = [(b"GARBAGE\r\n\r\n", 400), (b"GET\r\n\r\n", 400),
            (b"\x16\x03\x01\x02\x00\x01", None),
            # A body that never comes whole: nothing to answer.
            (post + b"\r\nContent-Length: 100\r\n\r\n{\"name\"", None),
            (post + b"\r\nContent-Length: -5\r\n\r\n{}", 411),
            (post + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
            (b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n", 431),
            (b"GET /api/v1/vms HTTP/9.9\r\n\r\n", 505)]
    # Random bytes never end a request head: the connection just closes.
    for _ in range(50):
        raws.append((bytes(rng.getrandbits(8)
                           for _ in range(rng.randint(1, 3000))), None))
    for data, want in raws:
        status, buf = raw_request(cluster, data)
        assert status == want, (data[:80], buf[:200])

    # Stalled clients (slowloris: a head or a body that never ends) cost
    # the manager nothing it needs to answer others.
    stalled = []
    try:
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", cluster.port),
                                         timeout=5)
            s.sendall(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 100\r\n\r\n{" if i % 2 else
                      b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
            stalled.append(s)
        t0 = time.monotonic()
        assert cluster.health()
        assert cluster.cli("vm", "list", json=True)
        assert time.monotonic() - t0 < 3
    finally:
        for s in stalled:
            s.close()

    # Healthy, fast and unchanged afterwards.
    t0 = time.monotonic()
    assert cluster.health()
    assert time.monotonic() - t0 < 2
    assert cluster.manager.running()
    after = snapshot(cluster)
    assert after == before
    cluster.cli("vm", "delete", "keep")


def test_dot_segments_reach_no_other_object(cluster):
    """The HTTP server resolves '.', '..' (also percent-encoded) and empty
    segments: /vms/NAME/snapshots/.. would be /vms/NAME. Such paths are
    refused, so a snapshot or NIC named '..' never deletes its VM."""
    cluster.cli("vm", "create", "dots", "--cpus", "1", "--memory", "64")
    try:
        for method, path in (
                ("DELETE", "/api/v1/vms/dots/snapshots/.."),
                ("DELETE", "/api/v1/vms/dots/snapshots/%2e%2e"),
                ("DELETE", "/api/v1/vms/dots/nics/%2E%2E"),
                ("DELETE", "/api/v1/vms/dots/."),
                ("DELETE", "/api/v1/vms//dots"),
                ("GET", "/api/v1/vms/dots/disks/.."),
                ("POST", "/api/v1/vms/x/../dots/start")):
            status, reply = cluster.http(method, path)
            assert status == 400, (method, path, status, reply)
            assert isinstance(reply, dict) and "path" in reply["error"]
        assert cluster.vm("dots")["state"] == "stopped"
        status, _ = cluster.http("GET", "/api/v1/vms/dots/")
        assert status == 200
        # A percent-escape that is no dot segment is only an escape.
        status, reply = cluster.http("GET", "/api/v1/vms/d%6Fts")
        assert status == 200 and reply["name"] == "dots", reply
        status, reply = cluster.http("GET", "/api/v1/vms/no%2Dsuch")
        assert status == 404 and "not found" in reply["error"], reply
    finally:
        cluster.cli("vm", "delete", "dots")


def test_a_client_that_half_closes_gets_its_answer(cluster):
    """A client may shut its sending side once its request is out (as
    HTTP/1.0 clients and nc do): the front relays the answer all the
    same. It dropped the answer whenever the client's end of stream came
    before it: now and then for a quick one, mostly for a slower one.
    Guards tls_relay (src/common/tls.c)."""
    tok = cluster.token().encode()
    for i in range(20):
        status, buf = raw_request(cluster, (
            b"GET /api/v1/vms HTTP/1.1\r\nHost: x\r\nAuthorization: "
            b"Bearer " + tok + b"\r\n\r\n") if i % 2 else
            b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200, (i, buf[:200])
        assert buf.rstrip().endswith(b"]" if i % 2 else b"}"), buf[-200:]
