"""Security: users and roles, tokens stored as hashes and revocable, password
login with rate limiting, the audit log, and agent admission (join tokens;
a refused agent is never listed; a host reports only on itself)."""

import json
import os
import re
import signal
import urllib.error
import urllib.request

import pytest

import cvirt

TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")
BAD = "0" * 64

# (method, path, body) of routes that need operator or admin.
VM_MUTATIONS = [
    ("POST", "/api/v1/vms", {"name": "x", "cpus": 1, "memory_mib": 64}),
    ("DELETE", "/api/v1/vms/nosuch", None),
    ("POST", "/api/v1/vms/nosuch/start", {}),
    ("POST", "/api/v1/vms/nosuch/stop", {}),
    ("POST", "/api/v1/vms/nosuch/reboot", {}),
    ("POST", "/api/v1/vms/nosuch/pause", None),
    ("POST", "/api/v1/vms/nosuch/resume", None),
    ("POST", "/api/v1/vms/nosuch/console", None),
    ("POST", "/api/v1/tasks/999999/cancel", None),
]
ADMIN_ONLY = [
    ("POST", "/api/v1/hosts/h1/maintenance", {"enabled": False}),
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"name": "zz", "role": "bogus"}),
    ("GET", "/api/v1/users/nosuch", None),
    ("DELETE", "/api/v1/users/nosuch", None),
    ("POST", "/api/v1/users/nosuch/token", {}),
    ("GET", "/api/v1/join-tokens", None),
    ("POST", "/api/v1/join-tokens", {"ttl_s": 1}),
    ("DELETE", "/api/v1/join-tokens/0123456789abcdef", None),
    ("GET", "/api/v1/audit", None),
    ("POST", "/api/v1/agent/register", {}),
]
# What operator and admin get for each route above (their role allows
# it: the route's own answer, never 401 or 403).
ALLOWED_STATUS = {
    ("POST", "/api/v1/vms"): 201,
    ("DELETE", "/api/v1/vms/nosuch"): 404,
    ("POST", "/api/v1/vms/nosuch/start"): 404,
    ("POST", "/api/v1/vms/nosuch/stop"): 404,
    ("POST", "/api/v1/vms/nosuch/reboot"): 404,
    ("POST", "/api/v1/vms/nosuch/pause"): 404,
    ("POST", "/api/v1/vms/nosuch/resume"): 404,
    ("POST", "/api/v1/vms/nosuch/console"): 404,
    ("POST", "/api/v1/tasks/999999/cancel"): 404,
    ("POST", "/api/v1/hosts/h1/maintenance"): 200,
    ("GET", "/api/v1/users"): 200,
    ("POST", "/api/v1/users"): 400,           # role "bogus"
    ("GET", "/api/v1/users/nosuch"): 404,
    ("DELETE", "/api/v1/users/nosuch"): 404,
    ("POST", "/api/v1/users/nosuch/token"): 404,
    ("GET", "/api/v1/join-tokens"): 200,
    ("POST", "/api/v1/join-tokens"): 400,     # ttl_s below 60
    ("DELETE", "/api/v1/join-tokens/0123456789abcdef"): 404,
    ("GET", "/api/v1/audit"): 200,
    ("POST", "/api/v1/agent/register"): 400,  # no name
}
NOT_MUTATIONS = ("/logout", "/stream/ticket", "/agent/report")
READS = ["/api/v1/vms", "/api/v1/hosts", "/api/v1/hosts/h1",
         "/api/v1/tasks", "/api/v1/events", "/api/v1/storage"]


def openapi_operations(cl):
    """(METHOD, path, operation) of every operation the manager's OpenAPI
    document lists, paths with their {x} parameters and /api/v1."""
    status, doc = cl.http("GET", "/api/v1/openapi.json", auth=False)
    assert status == 200
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not path.startswith("/api/v1") and \
                    not path.startswith("/metrics"):
                path = "/api/v1" + path
            out.append((method.upper(), path, op))
    return out


def documented(ops, method, path):
    """Whether ops (openapi_operations) has method on a template that
    path fits ({x} matching one segment)."""
    want = path.split("?")[0].split("/")
    for m, template, _ in ops:
        t = template.split("/")
        if m == method and len(t) == len(want) and all(
                a.startswith("{") or a == b for a, b in zip(t, want)):
            return True
    return False


def openapi_mutations(cl):
    """Non-GET operations the manager's OpenAPI document lists, with {x}
    parameters filled in, so routes added later are covered too."""
    out = []
    for method, path, op in openapi_operations(cl):
        # Open routes (login), ending one's own session, a ticket for
        # the live stream and agents' own reports change nothing a
        # viewer could be denied.
        if method in ("GET", "HEAD") or op.get("security") == [] or \
                path.endswith(NOT_MUTATIONS):
            continue
        out.append((method, re.sub(r"\{[^}]*\}", "nosuch", path), {}))
    return out


def make_user(cl, name, role):
    rc, out, err = cl.cli("user", "create", name, "--role", role)
    token = out.strip()
    assert TOKEN_RE.match(token), (out, err)
    return token


@pytest.fixture(scope="module")
def users(cluster):
    return {
        "viewer": make_user(cluster, "sec-viewer", "viewer"),
        "operator": make_user(cluster, "sec-operator", "operator"),
        "admin": make_user(cluster, "sec-admin", "admin"),
    }


def test_no_token_or_wrong_token_is_401(cluster):
    routes = VM_MUTATIONS + ADMIN_ONLY + [("GET", p, None) for p in READS]
    for method, path, body in routes:
        for token in (None, BAD, "not a token at all"):
            status, reply = cluster.http(method, path, body=body,
                                         token=token)
            assert status == 401, (method, path, token, status, reply)
            assert isinstance(reply, dict) and reply.get("error"), reply
    # Health stays open for load balancers.
    assert cluster.http("GET", "/api/v1/health", auth=False)[0] == 200


def test_viewer_reads_but_every_mutation_is_403(cluster, users):
    tok = users["viewer"]
    for path in READS:
        status, reply = cluster.http("GET", path, token=tok)
        assert status == 200, (path, status, reply)
    # The document lists every route named here (so the routes it adds
    # are the ones added later, not a list that missed these).
    ops = openapi_operations(cluster)
    for method, path, _ in VM_MUTATIONS + ADMIN_ONLY:
        assert documented(ops, method, path), (method, path)
    mutations = VM_MUTATIONS + ADMIN_ONLY + openapi_mutations(cluster)
    for method, path, body in mutations:
        status, reply = cluster.http(method, path, body=body, token=tok)
        assert status == 403, (method, path, status, reply)
        assert "permission denied" in reply["error"]
    # The CLI says so in one line and exits 1.
    argv = [cluster.bin, "--url", cluster.url, "--token", tok,
            "vm", "create", "v1", "--cpus", "1", "--memory", "64"]
    p = cvirt.subprocess.run(argv, capture_output=True, text=True,
                             env=cluster.env, timeout=30)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "permission denied" in p.stderr
    assert "v1" not in cluster.vm_names()


def test_operator_runs_vms_but_not_users_or_hosts(cluster, users):
    tok = users["operator"]
    for method, path, body in ADMIN_ONLY:
        status, reply = cluster.http(method, path, body=body, token=tok)
        assert status == 403, (method, path, status, reply)
    for method, path, body in VM_MUTATIONS:
        if path == "/api/v1/vms":
            body = {"name": "op-vm", "cpus": 1, "memory_mib": 64}
        status, reply = cluster.http(method, path, body=body, token=tok)
        assert status == ALLOWED_STATUS[(method, path)], \
            (method, path, status, reply)
    status, task = cluster.http("DELETE", "/api/v1/vms/op-vm", token=tok)
    assert status == 202, task
    assert cluster.cli("task", "wait", task["id"], json=True)["state"] == \
        "succeeded"
    assert "op-vm" not in cluster.vm_names()


def test_admin_may_do_everything(cluster, users):
    tok = users["admin"]
    for method, path, body in VM_MUTATIONS + ADMIN_ONLY:
        if path == "/api/v1/vms":
            body = {"name": "adm-vm", "cpus": 1, "memory_mib": 64}
        status, reply = cluster.http(method, path, body=body, token=tok)
        assert status == ALLOWED_STATUS[(method, path)], \
            (method, path, status, reply)
    cluster.cli("vm", "delete", "adm-vm")


def test_tokens_are_hashes_and_revocable(cluster, users):
    rc, out, _ = cluster.cli("user", "list")
    assert re.search(r"^sec-viewer\s+viewer\s", out, re.M), out
    assert re.search(r"^admin\s+admin\s", out, re.M), out
    tok = make_user(cluster, "sec-rev", "operator")
    assert cluster.http("GET", "/api/v1/vms", token=tok)[0] == 200
    # A new token replaces the old one.
    new = cluster.cli("user", "token", "sec-rev")[1].strip()
    assert TOKEN_RE.match(new) and new != tok
    assert cluster.http("GET", "/api/v1/vms", token=tok)[0] == 401
    assert cluster.http("GET", "/api/v1/vms", token=new)[0] == 200
    cluster.cli("user", "token", "sec-rev", "--revoke")
    assert cluster.http("GET", "/api/v1/vms", token=new)[0] == 401
    # Deleting a user ends its tokens; the database never held them.
    admin_tok = users["admin"]
    cluster.cli("user", "delete", "sec-admin")
    assert cluster.http("GET", "/api/v1/vms", token=admin_tok)[0] == 401
    rc, _, err = cluster.cli("user", "delete", "admin", check=False)
    assert rc == 1 and "yourself" in err
    rc, _, err = cluster.cli("user", "create", "bad/name", "--role", "viewer",
                             check=False)
    assert rc == 1 and err.count("\n") == 1
    rc, _, err = cluster.cli("user", "create", "x1", "--role", "root",
                             check=False)
    assert rc == 1 and "role" in err
    dump = "\n".join(
        "|".join(r) for t in ("tokens", "users", "join_tokens", "audit",
                              "hosts", "meta")
        for r in cluster.db_rows("SELECT * FROM %s" % t))
    hashes = [r[0] for r in cluster.db_rows("SELECT hash FROM tokens")]
    for t in (users["viewer"], users["operator"], cluster.token(), new):
        assert t not in dump
    assert hashes and all(TOKEN_RE.match(h) for h in hashes)


def test_audit_records_who_and_what(cluster, users):
    status, reply = cluster.http("POST", "/api/v1/vms",
                                 token=users["operator"], body={
                                     "name": "audit-vm", "cpus": 1,
                                     "memory_mib": 64})
    assert status == 201, reply
    status, reply = cluster.http("POST", "/api/v1/users",
                                 token=users["viewer"],
                                 body={"name": "evil", "role": "admin"})
    assert status == 403, reply
    entries = cluster.cli("audit", "list", "--limit", "500", json=True)
    assert any(e["user"] == "sec-operator" and e["method"] == "POST" and
               e["path"] == "/api/v1/vms" and e["status"] == 201
               for e in entries), entries[:10]
    assert any(e["user"] == "sec-viewer" and e["path"] == "/api/v1/users"
               and e["status"] == 403 for e in entries)
    assert all(e["remote"] == "127.0.0.1" for e in entries)
    mine = cluster.cli("audit", "list", "--user", "sec-operator", json=True)
    assert mine and all(e["user"] == "sec-operator" for e in mine)
    cluster.cli("vm", "delete", "audit-vm")


def agent_argv_token(cl, tokfile):
    return ["--token-file", tokfile]


def write_token(cl, name, token):
    path = os.path.join(cl.base, name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def host_names(cl):
    return [h["name"] for h in cl.cli("host", "list", json=True)]


def test_agent_with_wrong_token_is_refused_and_never_listed(cluster):
    bad = write_token(cluster, "bad.token", BAD)
    d = cluster.start_agent("intruder", extra=["--token-file", bad],
                            wait=False)
    d.declare_exit("refused: a wrong token (status checked below)")
    assert d.wait(20), "the refused agent kept running"
    assert d.proc.returncode == 1
    assert "refused" in d.log_tail()
    assert "intruder" not in host_names(cluster)
    status, _ = cluster.http("GET", "/api/v1/hosts/intruder")
    assert status == 404


def refused_agent(cl, tag, name, tokfile):
    """An agent for host `name` from a new, empty data directory
    (BASE/a-TAG) with the token in tokfile, which must be refused: exit 1
    within 20 s, its lease keeper gone with it (src/agent/report.c stops
    the agent through its own stop; it called exit(1) and left the keeper
    running). Returns its log."""
    d = cvirt.Daemon("agent " + tag, [
        cl.bin, "agent", "--data", os.path.join(cl.base, "a-" + tag),
        "--manager", cl.url, "--token-file", tokfile, "--name", name,
        "--listen", "127.0.0.1:%d" % cvirt.free_port(), "--storage",
        "local=" + cl.storage, "--watchdog", "none"],
        os.path.join(cl.logdir, "agent-%s.log" % tag), cl.env)
    d.start()
    d.declare_exit("refused (status checked by the test)")
    assert d.wait(20), "the refused agent kept running:\n" + d.log_tail()
    assert d.proc.returncode == 1, d.log_tail()
    log = d.log_tail()
    m = re.search(r"lease keeper pid (\d+) renews", log)
    assert m, log
    cvirt.wait_for(lambda: not os.path.exists("/proc/%s" % m.group(1)),
                   10, "keeper pid %s gone with its refused agent"
                   % m.group(1))
    return log


def test_join_token_is_single_use(cluster):
    """A join token admits one new host, once; a name that exists never
    registers with a token. Guards src/manager/hostid.c
    (hostid_auth_join: a used token is refused, saying so;
    hostid_admit_token: 409 for an existing name; hostid_consume in
    api_agent_register's transaction) and src/agent/report.c (the agent
    registers again with DATA/agent.secret, its own key). Before, the
    token bound to j1 registered j1 again from an empty data directory,
    and the admin token re-registered any name."""
    rc, tok, err = cluster.cli("host", "join-token", "--ttl", "600")
    tok = tok.strip()
    assert TOKEN_RE.match(tok)
    # The CLI says when it expires (on stderr: TOKEN=$(...) takes stdout).
    assert re.search(r"admits one new host, once; it expires "
                     r"\d{4}-\d\d-\d\dT", err), err
    path = write_token(cluster, "join.token", tok)
    cluster.start_agent("joined", extra=["--token-file", path])
    key = cluster.db_rows("SELECT agent_key FROM hosts WHERE name = "
                          "'joined'")[0][0]
    with open(os.path.join(cluster.base, "a-joined", "agent.secret")) as f:
        assert f.read().strip() == key
    assert os.stat(os.path.join(cluster.base, "a-joined",
                                "agent.secret")).st_mode & 0o077 == 0
    cluster.kill_agent("joined", signal.SIGTERM)
    # Used: the same token from an empty data directory, for the same
    # name or another, is refused (401), and says why.
    used = "join token already used (it admitted host joined)"
    for tag, name in (("joined-again", "joined"), ("second", "second")):
        assert used in refused_agent(cluster, tag, name, path)
    body = {"name": "second", "url": "http://127.0.0.1:9", "accel": "tcg",
            "cpus": 1, "memory_mib": 64, "storage": [], "vms": []}
    status, reply = cluster.http("POST", "/api/v1/agent/register", token=tok,
                                 body=body)
    assert status == 401 and used in reply["error"], (status, reply)
    assert "second" not in host_names(cluster)
    # An existing name never registers with a token, not even the admin's.
    log = refused_agent(cluster, "joined-admin", "joined",
                        cluster.token_file)
    assert "host joined exists: delete it (cvirt host delete) or reset " \
        "it (cvirt host reset) first" in log, log
    tok2 = cluster.cli("host", "join-token")[1].strip()
    status, reply = cluster.http("POST", "/api/v1/agent/register", token=tok2,
                                 body=dict(body, name="h1"))
    assert status == 409, reply
    # The host comes back from its data directory, with its own key.
    cluster.start_agent("joined")
    assert cluster.db_rows("SELECT agent_key FROM hosts WHERE name = "
                           "'joined'")[0][0] == key
    status, tokens = cluster.http("GET", "/api/v1/join-tokens")
    mine = [t for t in tokens if t.get("host") == "joined"]
    assert len(mine) == 1 and mine[0]["state"] == "used" and \
        mine[0]["used"], tokens
    # A join token is not an API token.
    assert cluster.http("GET", "/api/v1/vms", token=tok)[0] == 401
    # An admin resets the host: its key no longer counts (the running
    # agent's reports are refused, and so is its registration with the
    # key and the used token: it exits), and a new join token admits it.
    cluster.cli("host", "reset", "joined")
    d = cluster.agents["joined"]
    d.declare_exit("refused after host reset (status checked below)")
    assert d.wait(20) and d.proc.returncode == 1, d.log_tail()
    assert used in d.log_tail()
    path3 = write_token(cluster, "join3.token",
                        cluster.cli("host", "join-token")[1].strip())
    cluster.start_agent("joined", extra=["--token-file", path3])
    assert cluster.cli("host", "show", "joined", json=True)["state"] == "up"
    # ...with a new key: whoever kept the old one has nothing.
    key2 = cluster.db_rows("SELECT agent_key FROM hosts WHERE name = "
                           "'joined'")[0][0]
    assert key2 != key
    with open(os.path.join(cluster.base, "a-joined", "agent.secret")) as f:
        assert f.read().strip() == key2
    kinds = [e["kind"] for e in cluster.cli("event", "list", json=True)
             if e.get("object") == "joined"]
    assert "host.reset" in kinds, kinds
    cluster.kill_agent("joined", signal.SIGTERM)
    cluster.wait_host("joined", "down", 30)
    cluster.cli("host", "delete", "joined")


def test_reserved_host_name(cluster):
    """cvirt-manager is the manager's certificate name: no host may take
    it (src/manager/hostid.c hostid_admit)."""
    status, reply = cluster.http("POST", "/api/v1/agent/register", body={
        "name": "cvirt-manager", "url": "http://127.0.0.1:9",
        "accel": "tcg", "cpus": 1, "memory_mib": 64, "storage": [],
        "vms": []})
    assert status == 400 and "reserved" in reply["error"], reply


def test_a_host_reports_only_on_itself(cluster):
    tok = cluster.cli("host", "join-token")[1].strip()
    body = {"name": "fake1", "url": "http://127.0.0.1:9", "accel": "tcg",
            "cpus": 1, "memory_mib": 64, "storage": [], "vms": []}
    status, reply = cluster.http("POST", "/api/v1/agent/register", token=tok,
                                 body=body)
    assert status == 200, reply
    key = reply["agent_key"]
    status, reply = cluster.http("POST", "/api/v1/agent/report", token=key,
                                 body={"name": "h1", "vms": [], "exits": []})
    assert status == 403, reply
    status, reply = cluster.http("POST", "/api/v1/agent/report", token=key,
                                 body={"name": "fake1", "vms": [],
                                       "exits": []})
    assert status == 200, reply
    # An agent key is not an API token.
    assert cluster.http("GET", "/api/v1/vms", token=key)[0] == 401


def test_password_login_and_rate_limit(cluster):
    make_user(cluster, "sec-ui", "viewer")
    cluster.cli("user", "passwd", "sec-ui", input="correct horse\n")
    status, reply = cluster.http("POST", "/api/v1/login", auth=False,
                                 body={"name": "sec-ui",
                                       "password": "correct horse"})
    assert status == 200, reply
    session = reply["token"]
    assert reply["role"] == "viewer"
    assert cluster.http("GET", "/api/v1/vms", token=session)[0] == 200
    assert cluster.http("POST", "/api/v1/vms", token=session,
                        body={"name": "s", "cpus": 1,
                              "memory_mib": 64})[0] == 403
    pw = cluster.db_rows("SELECT password FROM users WHERE name = "
                 "'sec-ui'")[0][0]
    assert pw.startswith("$argon2id$") and "correct horse" not in pw
    assert cluster.http("POST", "/api/v1/logout", token=session)[0] == 200
    assert cluster.http("GET", "/api/v1/vms", token=session)[0] == 401
    for body in ({"name": "sec-ui"}, {"name": "sec-ui", "password": 5},
                 {"name": "sec-ui", "password": "x", "extra": 1}):
        assert cluster.http("POST", "/api/v1/login", auth=False,
                            body=body)[0] == 400
    statuses = []
    for _ in range(7):
        statuses.append(cluster.http("POST", "/api/v1/login", auth=False,
                                     body={"name": "sec-ui",
                                           "password": "wrong guess"})[0])
    assert statuses[:5] == [401] * 5, statuses
    assert statuses[5:] == [429, 429], statuses
    # Even the right password waits out the window.
    status, reply = cluster.http("POST", "/api/v1/login", auth=False,
                                 body={"name": "sec-ui",
                                       "password": "correct horse"})
    assert status == 429 and "try again" in reply["error"]


def test_agent_answers_503_until_it_has_registered(cluster, tmp_path):
    """An agent that has not registered yet (here its manager does not
    answer; after a restart, for a moment) has no manager key: it answers
    503 and says so. It answered 401 "missing or invalid API token",
    which the manager passed on to users right after an agent restart as
    if their own token had been refused. Guards agent_auth
    (src/agent/agent_api.c)."""
    port, nowhere = cvirt.free_port(), cvirt.free_port()
    d = cvirt.Daemon("agent unreg", [
        cluster.bin, "agent", "--data", os.path.join(cluster.base, "a-unreg"),
        "--manager", "http://127.0.0.1:%d" % nowhere, "--token-file",
        cluster.token_file, "--name", "unreg", "--listen",
        "127.0.0.1:%d" % port, "--storage", "local=%s" % tmp_path,
        "--watchdog", "none"],
        os.path.join(cluster.logdir, "agent-unreg.log"), cluster.env)
    d.start()
    try:
        def answer():
            assert d.running(), d.log_tail()
            req = urllib.request.Request(
                "http://127.0.0.1:%d/agent/v1/info" % port,
                headers={"Authorization": "Bearer " + BAD})
            try:
                urllib.request.urlopen(req, timeout=5)
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
            raise AssertionError("the unregistered agent served the call")
        got = cvirt.wait_for(answer, 10, "the agent to listen", starting=True)
        assert got == (503, {"error": "host unreg is starting: its agent "
                             "has not registered with the manager yet"})
        assert "unreg" not in host_names(cluster)
    finally:
        assert d.stop() == 0, d.log_tail()
