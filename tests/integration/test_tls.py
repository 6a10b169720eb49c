"""TLS: the API over HTTPS (--tls-cert/--tls-key) checked with curl
--cacert and the CLI's --ca-file; manager <-> agent mutual TLS with the
cluster CA the manager creates (certificates handed out at join)."""

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import threading

import pytest

import cvirt
from guestcheck import MEMCHECK, assert_guest_intact



def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1 signed by it, plus a
    self-signed impostor."""
    d = str(tmp_path_factory.mktemp("pki"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
            "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2",
            "-extfile", "ext", cwd=d)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "evil.key",
            "-out", "evil.pem", "-days", "2", "-subj", "/CN=h1", cwd=d)
    return d


class TlsCluster(cvirt.Cluster):
    """A Cluster whose manager serves HTTPS with the given certificate."""

    def __init__(self, certdir, **kw):
        super().__init__(**kw)
        self.certdir = certdir
        self.ca = os.path.join(certdir, "ca.pem")
        self.env["CVIRT_CA_FILE"] = self.ca
        self.env["SSL_CERT_FILE"] = self.ca

    def start_manager(self, timeout=20):
        self.port = cvirt.free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        os.makedirs(self.mdir, exist_ok=True)
        self.manager = cvirt.Daemon(
            "manager",
            [self.bin, "manager", "--data", self.mdir,
             "--listen", "127.0.0.1:%d" % self.port,
             "--tls-cert", os.path.join(self.certdir, "server.pem"),
             "--tls-key", os.path.join(self.certdir, "server.key")]
            + self.db_args(),
            os.path.join(self.logdir, "manager.log"), self.env)
        self.manager.start()
        cvirt.wait_for(lambda: self._alive(self.manager) and
                       os.path.exists(self.token_file) and
                       os.path.getsize(self.token_file) > 0,
                       timeout, "manager token")
        cvirt.wait_for(lambda: self._alive(self.manager) and self.curl_ok(),
                       timeout, "manager health over https")
        return self.manager

    def curl_ok(self):
        """True once health answers over https; NotYet while the port
        refuses connections (curl's exit 7: the manager is starting)."""
        rc, out, err = self.curl("/api/v1/health")
        if rc == 7:
            raise cvirt.NotYet(err)
        assert rc == 0 and '"ok"' in out, (rc, out, err)
        return True

    def curl(self, path, *extra, token=None, cacert=True):
        argv = ["curl", "-sS", "--max-time", "10"]
        if cacert:
            argv += ["--cacert", self.ca]
        if token:
            argv += ["-H", "Authorization: Bearer " + token]
        argv += list(extra) + [self.url + path]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def tls_cluster(request, certs, tmp_path_factory, cvirt_bin):
    logdir = tmp_path_factory.mktemp("logs")
    cl = TlsCluster(certs, logdir=str(logdir))
    request.addfinalizer(cl.cleanup)
    # Cluster.http (urllib) trusts the test CA through OpenSSL's default.
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = cl.ca

    def restore():
        if old is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old
    request.addfinalizer(restore)
    cl.start_manager()
    return cl


def test_api_over_https_with_curl_cacert(tls_cluster):
    cl = tls_cluster
    rc, out, err = cl.curl("/api/v1/health")
    assert rc == 0 and '"ok"' in out, err
    rc, out, err = cl.curl("/api/v1/users", token=cl.token())
    assert rc == 0 and '"admin"' in out, err
    rc, out, _ = cl.curl("/api/v1/users", "-w", "%{http_code}")
    assert out.endswith("401")
    # Without the CA curl refuses the certificate; plain HTTP gets nothing.
    rc, _, err = cl.curl("/api/v1/health", cacert=False)
    assert rc == 60, err
    p = subprocess.run(["curl", "-sS", "--max-time", "5",
                        "http://127.0.0.1:%d/api/v1/health" % cl.port],
                       capture_output=True, text=True, timeout=20)
    # The handshake fails on the request line: the connection is reset.
    assert (p.returncode, p.stdout) == (56, ""), p
    # TLS 1.0/1.1 are refused: curl's handshake error (35).
    rc, out, err = cl.curl("/api/v1/health", "--tls-max", "1.1")
    assert (rc, out) == (35, "") and "protocol version" in err, err


def test_cli_over_https(tls_cluster):
    cl = tls_cluster
    users = cl.cli("user", "list", json=True)
    assert any(u["name"] == "admin" for u in users)
    env = dict(cl.env)
    env.pop("CVIRT_CA_FILE")
    env.pop("SSL_CERT_FILE")
    p = subprocess.run([cl.bin, "--url", cl.url, "--token-file",
                        cl.token_file, "user", "list"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr


def tls13_refusal(host, port, ca, cert):
    """The reason (OpenSSL's name of the alert) a TLS 1.3 server gives a
    client that presents cert (a path without .pem/.key, or None) and
    sends nothing: its handshake completes, its first read gets the
    alert. None if the server sends data instead."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert:
        ctx.load_cert_chain(cert + ".pem", cert + ".key")
    with socket.create_connection((host, port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            try:
                t.recv(1)
            except ssl.SSLError as e:
                return e.reason
    return None


def start_tls_agent(cl, name, tokfile, wait=True):
    return cl.start_agent(name, extra=["--ca-file", cl.ca,
                                       "--token-file", tokfile], wait=wait)


def pki(cl, *parts):
    return os.path.join(cl.mdir, "pki", *parts)


def agent_url(cl, name):
    return cl.cli("host", "show", name, json=True)["url"]


def test_agent_joins_with_mutual_tls(tls_cluster, guest):
    cl = tls_cluster
    start_tls_agent(cl, "h1", cl.token_file)
    url = agent_url(cl, "h1")
    assert url.startswith("https://127.0.0.1:"), url
    adir = os.path.join(cl.base, "a-h1", "pki")
    assert sorted(os.listdir(adir)) == ["agent.key", "agent.pem", "ca.pem"]
    assert os.stat(os.path.join(adir, "agent.key")).st_mode & 0o077 == 0
    # The manager drives the agent over mutual TLS: define, start, stop.
    cl.cli("vm", "create", "m1", "--cpus", "1", "--memory", "128",
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0")
    cl.cli("vm", "start", "m1")
    cl.wait_serial("m1", "init reached", timeout=60)
    # The console crosses both TLS hops: CLI -> manager (wss, checked
    # against --ca-file) and manager -> agent (mutual TLS).
    rc, out, err = cl.cli("vm", "console", "m1", check=False,
                          input="echo tls-$((6*7))\r", timeout=30)
    assert rc == 0, err
    assert "tls-42" in out, out
    cl.cli("vm", "stop", "m1", "--force")
    cl.cli("vm", "delete", "m1")
    # The agent serves only clients with a certificate from the cluster
    # CA, and refuses the others in the TLS handshake, with the alert
    # that says why. On TLS 1.2 the client sees that inside its handshake:
    # curl exits 35 naming the alert, no HTTP at all (code 000).
    base = ["curl", "-sS", "--max-time", "5", "--cacert", pki(cl, "ca.pem"),
            "-w", "%{http_code}"]
    info = url + "/agent/v1/info"
    evil = os.path.join(cl.certdir, "evil")
    for cert, alert in ((None, "alert handshake failure"),
                        (evil, "alert unknown ca")):
        p = subprocess.run(base + ["--tls-max", "1.2"] + (
            ["--cert", cert + ".pem", "--key", cert + ".key"] if cert
            else []) + [info], capture_output=True, text=True)
        assert (p.returncode, p.stdout) == (35, "000") and \
            alert in p.stderr, p
    # On TLS 1.3 (what clients pick) the client's handshake ends before
    # the server has judged its certificate: the alert comes on the first
    # read. curl has sent its request by then, and the server's close of
    # a connection with that request unread resets it, so curl sees the
    # alert or the reset (exit 56 either way), as timing has it. A client
    # that sends nothing reads the alert every time.
    host, port = url[len("https://"):].rsplit(":", 1)
    assert tls13_refusal(host, int(port), pki(cl, "ca.pem"), None) == \
        "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert tls13_refusal(host, int(port), pki(cl, "ca.pem"), evil) == \
        "TLSV1_ALERT_UNKNOWN_CA"
    # The manager's certificate gets through TLS, and the agent API wants
    # its key besides.
    p = subprocess.run(base + ["--cert", pki(cl, "manager.pem"), "--key",
                               pki(cl, "manager.key"), "-o", "/dev/null",
                               info], capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (0, "401"), p
    # A host's certificate (its own, here) with the host's key is not the
    # manager: 403 (src/agent/agent_api.c agent_auth: CN cvirt-manager,
    # OU managers).
    with open(os.path.join(cl.base, "a-h1", "agent.secret")) as f:
        key = f.read().strip()
    p = subprocess.run(base + ["--cert", os.path.join(adir, "agent.pem"),
                               "--key", os.path.join(adir, "agent.key"),
                               "-H", "Authorization: Bearer " + key,
                               "-o", "/dev/null", info],
                       capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (0, "403"), p


def test_agent_with_wrong_token_gets_no_certificate(tls_cluster):
    cl = tls_cluster
    bad = os.path.join(cl.base, "bad.token")
    with open(bad, "w") as f:
        f.write("f" * 64 + "\n")
    d = start_tls_agent(cl, "intruder", bad, wait=False)
    d.declare_exit("refused a certificate (status checked below)")
    assert d.wait(20) and d.proc.returncode == 1
    assert "refused" in d.log_tail()
    assert not os.path.exists(os.path.join(cl.base, "a-intruder", "pki",
                                           "agent.pem"))
    assert "intruder" not in [h["name"] for h in
                              cl.cli("host", "list", json=True)]


def test_join_token_then_certificate_names_the_host(tls_cluster):
    cl = tls_cluster
    tok = cl.cli("host", "join-token")[1].strip()
    path = os.path.join(cl.base, "join.token")
    with open(path, "w") as f:
        f.write(tok + "\n")
    start_tls_agent(cl, "h2", path)
    assert agent_url(cl, "h2").startswith("https://")
    # The join token is spent on h2: no certificate for another name.
    d = start_tls_agent(cl, "h3", path, wait=False)
    d.declare_exit("refused: a used join token (status checked below)")
    assert d.wait(20) and d.proc.returncode == 1
    # h2 restarts with its certificate and the same token.
    cl.kill_agent("h2")
    start_tls_agent(cl, "h2", path)


def curl_mtls(cl, path, token, body, cert=None, cwd=None):
    """POST body (a dict) to the manager with token and, unless None,
    the client certificate CERT.pem/CERT.key; (HTTP status, reply)
    ("000" when TLS refused the client)."""
    argv = ["curl", "-sS", "--max-time", "10", "--cacert", cl.ca,
            "-w", "\n%{http_code}", "-H", "Authorization: Bearer " + token,
            "-H", "Content-Type: application/json", "--data",
            json.dumps(body)]
    if cert:
        argv += ["--cert", cert + ".pem", "--key", cert + ".key"]
    p = subprocess.run(argv + [cl.url + path], capture_output=True,
                       text=True, cwd=cwd, timeout=30)
    out, _, code = p.stdout.rpartition("\n")
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out


def fake_host(cl, work, name, address="127.0.0.1"):
    """A host that joins by hand as an agent does: a key and signing
    request, a certificate for a join token, then the registration over
    mutual TLS with that certificate (work/NAME.pem and .key). Returns
    (its agent key, the certificate reply)."""
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name,
            cwd=work)
    with open(os.path.join(work, name + ".csr")) as f:
        csr = f.read()
    tok = cl.cli("host", "join-token")[1].strip()
    status, cert = cl.http("POST", "/api/v1/agent/certificate", token=tok,
                           body={"name": name, "csr": csr,
                                 "address": address})
    assert status == 200, cert
    with open(os.path.join(work, name + ".pem"), "w") as f:
        f.write(cert["cert"])
    key = "%064x" % random.getrandbits(256)
    # This cluster issues certificates: a join without one is refused.
    status, reply = curl_mtls(cl, "/api/v1/agent/register", tok,
                              reg_body(name, key), None, work)
    assert status == "409" and "issues certificates" in reply["error"], \
        reply
    status, reply = curl_mtls(cl, "/api/v1/agent/register", tok,
                              reg_body(name, key), os.path.join(work, name))
    assert status == "200" and reply["agent_key"] == key, reply
    return key, cert


def reg_body(name, key=None, url="https://127.0.0.1:9"):
    body = {"name": name, "url": url, "accel": "tcg", "cpus": 1,
            "memory_mib": 64, "storage": [], "vms": []}
    if key:
        body["agent_key"] = key
    return body


def test_reports_need_the_hosts_own_certificate(tls_cluster):
    """A host that joined with a certificate cannot be impersonated with
    its agent key alone, nor with another host's certificate, nor with
    another certificate of its own name than the one it registered with.
    Guards src/manager/hostid.c hostid_auth_agent/hostid_cert_check."""
    cl = tls_cluster
    work = os.path.join(cl.base, "fake")
    os.makedirs(work, exist_ok=True)
    keys = {n: fake_host(cl, work, n)[0] for n in ("fake1", "fake2")}
    body = {"name": "fake1", "vms": [], "exits": []}

    def report(cert):
        return curl_mtls(cl, "/api/v1/agent/report", keys["fake1"], body,
                         cert and os.path.join(work, cert), work)[0]
    assert report("fake1") == "200"
    assert report(None) == "401"
    assert report("fake2") == "401"
    # A certificate not from the cluster CA does not get through TLS.
    shutil.copy(os.path.join(cl.certdir, "evil.pem"), work)
    shutil.copy(os.path.join(cl.certdir, "evil.key"), work)
    assert report("evil") == "000"
    # A second certificate for fake1 (renewed with its key and its
    # certificate): the reports want the registered one until fake1
    # registers with the new one.
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            "fake1b.key", "-out", "fake1b.csr", "-subj", "/CN=fake1",
            cwd=work)
    with open(os.path.join(work, "fake1b.csr")) as f:
        csr = f.read()
    status, cert = curl_mtls(cl, "/api/v1/agent/certificate", keys["fake1"],
                             {"name": "fake1", "csr": csr,
                              "address": "127.0.0.1"},
                             os.path.join(work, "fake1"), work)
    assert status == "200", cert
    with open(os.path.join(work, "fake1b.pem"), "w") as f:
        f.write(cert["cert"])
    assert report("fake1b") == "401"
    status, reply = curl_mtls(cl, "/api/v1/agent/register", keys["fake1"],
                              reg_body("fake1"),
                              os.path.join(work, "fake1b"), work)
    assert status == "200" and reply["agent_key"] == keys["fake1"], reply
    assert report("fake1b") == "200"
    assert report("fake1") == "401"


def test_host_with_certificate_cannot_downgrade(tls_cluster):
    """A host that holds a certificate cannot register or report without
    it, nor register a plain http:// URL (which made the manager call it
    without mutual TLS), whatever credential comes along: its key, its
    old join token, a new join token, the admin token. Its agent refuses
    a plain manager URL. Guards src/manager/hostid.c hostid_cert_check
    (it replaced auth.c's "mTLS only while the URL is https") and
    hostid_admit, api_agent.c api_agent_register's https check and
    src/agent/agent_tls.c agent_tls_setup."""
    cl = tls_cluster
    work = os.path.join(cl.base, "downgrade")
    os.makedirs(work, exist_ok=True)
    key, _ = fake_host(cl, work, "dg1")
    cert = os.path.join(work, "dg1")
    plain = reg_body("dg1", url="http://127.0.0.1:9")
    # Its key without its certificate: refused, saying why.
    status, reply = curl_mtls(cl, "/api/v1/agent/register", key, plain,
                              None, work)
    assert status == "401" and "present it" in reply["error"], reply
    # Its key and its certificate, but a plain URL: refused.
    status, reply = curl_mtls(cl, "/api/v1/agent/register", key, plain,
                              cert, work)
    assert status == "400" and "https://" in reply["error"], reply
    # Tokens never register an existing name.
    for tok in (cl.token(), cl.cli("host", "join-token")[1].strip()):
        for c in (None, cert):
            status, reply = curl_mtls(cl, "/api/v1/agent/register", tok,
                                      plain, c, work)
            assert status in ("409", "400"), (status, reply)
    # Reports without the certificate: refused.
    status, _ = curl_mtls(cl, "/api/v1/agent/report", key,
                          {"name": "dg1", "vms": [], "exits": []}, None,
                          work)
    assert status == "401"
    h = cl.cli("host", "show", "dg1", json=True)
    assert h["url"] == "https://127.0.0.1:9" and h["cert_fingerprint"], h
    # An agent that holds a certificate refuses a plain manager URL.
    for n in ("h1",):
        if cl.agents.get(n) is None or not cl.agents[n].running():
            start_tls_agent(cl, n, cl.token_file)
    cl.kill_agent("h1", signal.SIGTERM)
    d = cl.start_agent("h1", extra=["--ca-file", cl.ca, "--manager",
                                    "http://127.0.0.1:%d" % cl.port],
                       wait=False)
    d.declare_exit("refused a plain manager URL (checked below)")
    assert d.wait(20) and d.proc.returncode == 1, d.log_tail()
    assert "this host has a cluster certificate" in d.log_tail() and \
        "its manager URL must be https://" in d.log_tail()
    start_tls_agent(cl, "h1", cl.token_file)


class FakeAgent:
    """A TLS server on 127.0.0.1:port presenting cert/key (any client
    certificate accepted) until stop(): for each connection, whether its
    handshake completed and the bytes the client sent after it."""

    def __init__(self, cert, key, port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ls = socket.create_server(("127.0.0.1", port))
        self.ls.settimeout(0.2)
        self.conns = []         # [handshake done, bytes received]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            one = [False, b""]
            self.conns.append(one)
            c.settimeout(5)
            try:
                with self.ctx.wrap_socket(c, server_side=True) as t:
                    one[0] = True
                    while True:
                        chunk = t.recv(4096)
                        if not chunk:
                            break
                        one[1] += chunk
            except (OSError, ssl.SSLError):
                pass
        self.ls.close()

    def stop(self):
        self.done.set()
        self.thread.join(30)
        return self.conns


def test_cn_must_be_the_host(tls_cluster):
    """Another host's certificate, at host h1's address, does not pass for
    h1: the manager's call to h1 fails naming the certificate, before a
    byte of the request (with the key of h1) is sent. Before, the
    manager checked only that the certificate named the URL's address,
    which every host on 127.0.0.1 shares. Guards
    src/common/tls_tunnel.c tls_client_identity and
    src/manager/agentc.c agentc_call's expect_name."""
    cl = tls_cluster
    for n in ("h1", "h2"):
        if cl.agents.get(n) is None or not cl.agents[n].running():
            start_tls_agent(cl, n, cl.token_file)
    url = agent_url(cl, "h1")
    port = int(url.rsplit(":", 1)[1])
    cl.kill_agent("h1", signal.SIGTERM)
    h2 = os.path.join(cl.base, "a-h2", "pki")
    fake = FakeAgent(os.path.join(h2, "agent.pem"),
                     os.path.join(h2, "agent.key"), port)
    try:
        # While h1 still counts as up, a VM created on it makes the
        # manager call h1 (PUT /agent/v1/vms/UUID); its lease reads
        # (GET /agent/v1/leases) may call too.
        rc, out, err = cl.cli("vm", "create", "cn1", "--cpus", "1",
                              "--memory", "64", "--disk", "16", "--host",
                              "h1", check=False)
    finally:
        conns = fake.stop()
    assert rc != 0 and "host h1 presented a certificate for h2" in err, \
        (rc, out, err)
    assert conns and all(hs and got == b"" for hs, got in conns), conns
    start_tls_agent(cl, "h1", cl.token_file)


def test_san_is_the_join_address(tls_cluster):
    """The cluster CA names in a host's certificate its name, the address
    the request came from, the join token's addresses and those an admin
    approved; never what the request asks for besides (reported pending
    instead). Guards src/manager/hostid.c hostid_sans and
    src/manager/api_pki.c api_agent_certificate (it signed the request's
    "address" as it came), and the renewal at the agent's start
    (src/agent/agent_tls.c agent_tls_renew)."""
    cl = tls_cluster
    tok = cl.cli("host", "join-token", "--address", "10.8.8.8")[1].strip()
    path = os.path.join(cl.base, "san.token")
    with open(path, "w") as f:
        f.write(tok + "\n")
    # The agent asks for its listen address and its migration address.
    cl.start_agent("h4", extra=["--ca-file", cl.ca, "--token-file", path,
                                "--migration-address", "10.9.9.9"])

    def sans():
        p = subprocess.run(["openssl", "x509", "-noout", "-ext",
                            "subjectAltName", "-subject", "-in",
                            os.path.join(cl.base, "a-h4", "pki",
                                         "agent.pem")],
                           capture_output=True, text=True, check=True)
        return p.stdout
    out = sans()
    assert "DNS:h4, IP Address:127.0.0.1, IP Address:10.8.8.8\n" in out, out
    assert "10.9.9.9" not in out and "OU = hosts, CN = h4" in out, out
    h = cl.cli("host", "show", "h4", json=True)
    assert h["pending_addresses"] == ["10.9.9.9"], h
    assert h["approved_addresses"] == ["10.8.8.8"], h
    assert any(e["kind"] == "host.address_pending" and e["object"] == "h4"
               for e in cl.cli("event", "list", json=True))
    cl.cli("host", "approve-address", "h4", "10.9.9.9")
    cl.kill_agent("h4", signal.SIGTERM)
    cl.start_agent("h4")
    out = sans()
    assert "DNS:h4, IP Address:127.0.0.1, IP Address:10.8.8.8, " \
        "IP Address:10.9.9.9\n" in out, out
    h = cl.cli("host", "show", "h4", json=True)
    assert h["pending_addresses"] == [] and h["state"] == "up", h
    cl.kill_agent("h4", signal.SIGTERM)


def test_migration_stream_over_tls(tls_cluster, guest):
    """In a cluster with certificates too, QEMU migrates over TLS with a
    key the manager made for this migration (tls-creds-psk; it travels to
    both agents over mutual TLS), the destination taking the stream only
    from the source's address, and the guest arrives whole (its memory
    checker finds every write, no panic: one was seen here before TCG
    guests got unaligned RAM, docs/cluster.md)."""
    cl = tls_cluster
    for h in ("h1", "h2"):
        if cl.agents.get(h) is None or not cl.agents[h].running():
            start_tls_agent(cl, h, cl.token_file)
    cl.cli("vm", "create", "mg", "--cpus", "1", "--memory", "128",
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0 " + MEMCHECK, "--host", "h1")
    cl.cli("vm", "start", "mg", "--host", "h1")
    cl.wait_serial("mg", "init reached", timeout=60)
    cl.wait_serial("mg", "cvirt-guest: memcheck ok", timeout=30)
    res = cl.cli("vm", "migrate", "mg", "--to", "h2", json=True)
    assert res["state"] == "succeeded", res
    vm = cl.wait_state("mg", "running")
    assert vm["host"] == "h2"
    assert_guest_intact(cl, "mg", ticks=False)
    assert "vm mg: migration stream over TLS with a one-time key" in \
        cl.agents["h1"].log_tail(200)
    assert "vm mg: migration stream from 127.0.0.1 over TLS with a " \
        "one-time key" in cl.agents["h2"].log_tail(200)
    rc, out, err = cl.cli("vm", "console", "mg", check=False,
                          input="echo moved-$((20+22))\r", timeout=30)
    assert rc == 0 and "moved-42" in out, (out, err)
    cl.cli("vm", "stop", "mg", "--force")
    cl.cli("vm", "delete", "mg")
