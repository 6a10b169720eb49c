"""Password login under attack and with a second factor: every attempt is
reserved before argon2 runs (50 concurrent wrong logins from one address:
at most 5 hashes, counted by /metrics), and TOTP (RFC 6238) enrolment,
login, replay, skew and its failures in the same throttle. A manager of
its own with --login-window 8, so that a window ends within the test;
each phase logs in from an address of its own (127.0.0.x), so that one
phase's failures do not throttle the next.
Guards src/manager/loginlimit.c, login.c and users.c (TOTP routes)."""

import base64
import hashlib
import hmac
import http.client
import json
import re
import struct
import threading
import time

import pytest

import cvirt

WINDOW_S = 8


class LoginCluster(cvirt.Cluster):
    """A manager alone, whose failed logins count for WINDOW_S."""

    def wrap(self, role, argv):
        argv = super().wrap(role, argv)
        if role == "manager":
            argv = argv + ["--login-window", str(WINDOW_S)]
        return argv


@pytest.fixture(scope="module")
def lc(request, tmp_path_factory, cvirt_bin):
    cl = LoginCluster(logdir=str(tmp_path_factory.mktemp("logs")))
    request.addfinalizer(cl.cleanup)
    cl.start_manager()
    return cl


def login(cl, name, password, otp=None, source="127.0.0.1"):
    """POST /api/v1/login from source: (status, reply). A connection the
    TLS front sheds before its request is in (more than 16 from one
    address still sending: docs/security.md, "Hostile input") is tried
    again, as any client would."""
    body = {"name": name, "password": password}
    if otp is not None:
        body["otp"] = otp
    for _ in range(50):
        c = http.client.HTTPConnection("127.0.0.1", cl.port, timeout=60,
                                       source_address=(source, 0))
        try:
            c.request("POST", "/api/v1/login", json.dumps(body),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        except (http.client.RemoteDisconnected, ConnectionResetError,
                BrokenPipeError):
            time.sleep(0.05)
        finally:
            c.close()
    raise AssertionError("login from %s: every connection was closed"
                         % source)


def hashes(cl):
    """argon2id verifications so far (cvirt_login_password_checks_total)."""
    status, text = cl.http("GET", "/metrics")
    assert status == 200
    return sum(float(m) for m in re.findall(
        r"^cvirt_login_password_checks_total\{[^}]*\} (\S+)$", text, re.M))


def wait_window():
    time.sleep(WINDOW_S + 0.5)


def make_user(cl, name, password):
    cl.cli("user", "create", name, "--role", "viewer", "--password",
           input=password + "\n")


def test_concurrent_wrong_logins_reach_argon2_at_most_5_times(lc):
    make_user(lc, "flood", "right password")
    before = hashes(lc)
    n = 50
    go = threading.Barrier(n)
    got = [None] * n

    def attempt(i):
        go.wait()
        got[i] = login(lc, "flood", "wrong guess %d" % i,
                       source="127.0.0.5")

    ts = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    statuses = sorted(s for s, _ in got)
    assert set(statuses) <= {401, 429}, statuses
    assert 1 <= statuses.count(401) <= 5, statuses
    ran = hashes(lc) - before
    assert ran == statuses.count(401), (ran, statuses)
    for s, reply in got:
        if s == 429:
            assert "try again in" in reply["error"], reply
            assert "\n" not in reply["error"], reply
    # The right password waits out the window too; then it works.
    status, reply = login(lc, "flood", "right password", source="127.0.0.5")
    assert status == 429, reply
    # Another address is not affected.
    assert login(lc, "flood", "right password",
                 source="127.0.0.6")[0] == 200
    wait_window()
    status, reply = login(lc, "flood", "right password", source="127.0.0.5")
    assert status == 200, reply
    assert lc.http("GET", "/api/v1/vms", token=reply["token"])[0] == 200


def totp(secret, step):
    """RFC 6238 code (SHA-1, 6 digits) of step, as an authenticator app
    computes it."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    v = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return "%06d" % (v % 1000000)


def step_now():
    return int(time.time()) // 30


def settle():
    """Waits until at least 8 s of the current 30 s step remain: a code
    computed now is judged in the same step."""
    left = 30 - time.time() % 30
    if left < 8:
        time.sleep(left + 0.2)


class Codes:
    """Codes of one secret for steps after the last one used (the manager
    refuses a step once used, or older)."""

    def __init__(self, secret):
        self.secret = secret
        self.last = 0

    def fresh(self, ahead=None):
        """(step, code) of the current step + ahead (None: + 0 or + 1,
        whichever is past the last used), waiting for a later step when
        that is not; settle()s first so that it is judged in this step."""
        while True:
            settle()
            now = step_now()
            for a in ([ahead] if ahead is not None else [0, 1]):
                if now + a > self.last:
                    return now + a, totp(self.secret, now + a)
            time.sleep(30 - time.time() % 30 + 0.2)

    def used(self, step):
        self.last = max(self.last, step)


def test_totp_enable_login_replay_disable(lc):
    make_user(lc, "otpuser", "pass word 1")
    out = lc.cli("user", "totp", "enable", "otpuser")[1]
    secret = re.search(r"^secret: ([A-Z2-7]{32})$", out, re.M).group(1)
    uri = re.search(r"^uri: (\S+)$", out, re.M).group(1)
    assert uri == ("otpauth://totp/cvirt:otpuser?secret=%s&issuer=cvirt&"
                   "algorithm=SHA1&digits=6&period=30" % secret)
    user = [u for u in lc.cli("user", "list", json=True)
            if u["name"] == "otpuser"][0]
    assert user["totp"] is True and "secret" not in user
    # Once only: enabling again is refused (disable first).
    rc, _, err = lc.cli("user", "totp", "enable", "otpuser", check=False)
    assert rc != 0 and "disable it first" in err, err
    codes = Codes(secret)
    src = "127.0.0.7"
    # The password alone is not enough; the reply says what is missing.
    status, reply = login(lc, "otpuser", "pass word 1", source=src)
    assert status == 401 and reply.get("otp_required") is True, reply
    # A wrong password with a right code: the same refusal as any other.
    s, code = codes.fresh()
    status, reply = login(lc, "otpuser", "wrong", code, source=src)
    assert status == 401 and "otp_required" not in reply, reply
    status, reply = login(lc, "otpuser", "pass word 1", code, source=src)
    assert status == 200, reply
    codes.used(s)
    # The same code again (a replay), and an older one: refused.
    for c in (code, totp(secret, s - 1)):
        status, reply = login(lc, "otpuser", "pass word 1", c, source=src)
        assert status == 401, reply
    # One step of clock skew ahead is accepted, two are not.
    src = "127.0.0.9"
    s, code = codes.fresh(2)
    assert login(lc, "otpuser", "pass word 1", code, source=src)[0] == 401
    s, code = codes.fresh(1)
    status, reply = login(lc, "otpuser", "pass word 1", code, source=src)
    assert status == 200, reply
    codes.used(s)
    # cvirt login asks for the code when the manager wants one (stdin
    # here); --otp gives it up front.
    s, code = codes.fresh()
    rc, out, err = lc.cli("login", "otpuser",
                          input="pass word 1\n%s\n" % code, check=False)
    assert rc == 0, err
    codes.used(s)
    tok = out.strip()
    assert re.match(r"^[0-9a-f]{64}$", tok), out
    assert lc.http("GET", "/api/v1/vms", token=tok)[0] == 200
    rc, out, err = lc.cli("login", "otpuser", "--otp", "000000",
                          input="pass word 1\n", check=False)
    assert rc != 0 and "one-time code" in err, err
    assert len(err.strip().splitlines()) == 1, err
    # Failed codes count in the same throttle: after five wrong ones even
    # the right code waits.
    src = "127.0.0.10"
    s, code = codes.fresh()
    for i in range(5):
        status, reply = login(lc, "otpuser", "pass word 1",
                              "%06d" % (i * 111111 + 1), source=src)
        assert status == 401, reply
    status, reply = login(lc, "otpuser", "pass word 1", code, source=src)
    assert status == 429 and "try again in" in reply["error"], reply
    # The admin disables it: the password alone works again.
    lc.cli("user", "totp", "disable", "otpuser")
    status, reply = login(lc, "otpuser", "pass word 1", source="127.0.0.11")
    assert status == 200, reply


def test_totp_routes_need_admin(lc):
    make_user(lc, "otpview", "pass word 2")
    status, reply = login(lc, "otpview", "pass word 2", source="127.0.0.8")
    assert status == 200, reply
    tok = reply["token"]
    for method in ("POST", "DELETE"):
        assert lc.http(method, "/api/v1/users/otpview/totp",
                       token=tok)[0] == 403
        assert lc.http(method, "/api/v1/users/nosuch/totp")[0] == 404
    # A code too long or not a string: 400, no attempt counted.
    for otp in ("1" * 17, 5):
        assert login(lc, "otpview", "pass word 2", otp,
                     source="127.0.0.8")[0] == 400
