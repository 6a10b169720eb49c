"""TLS: the API over HTTPS (--tls-cert/--tls-key) checked with curl
--cacert and the CLI's --ca-file; manager <-> agent mutual TLS with the
cluster CA the manager creates (certificates handed out at join)."""

import os
import shutil
import socket
import ssl
import subprocess

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
    assert sorted(os.listdir(adir)) == ["agent.key", "agent.pem", "ca.pem",
                                        "qemu"]
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


def test_reports_need_the_hosts_own_certificate(tls_cluster):
    """A host that joined with a certificate cannot be impersonated with
    its agent key alone, nor with another host's certificate."""
    cl = tls_cluster
    work = os.path.join(cl.base, "fake")
    os.makedirs(work, exist_ok=True)
    keys = {}
    for name in ("fake1", "fake2"):
        openssl("req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name,
                cwd=work)
        with open(os.path.join(work, name + ".csr")) as f:
            csr = f.read()
        tok = cl.cli("host", "join-token")[1].strip()
        status, reply = cl.http("POST", "/api/v1/agent/certificate",
                                token=tok, body={"name": name, "csr": csr,
                                                 "address": "127.0.0.1"})
        assert status == 200, reply
        with open(os.path.join(work, name + ".pem"), "w") as f:
            f.write(reply["cert"])
        status, reply = cl.http("POST", "/api/v1/agent/register", token=tok,
                                body={"name": name,
                                      "url": "https://127.0.0.1:9",
                                      "accel": "tcg", "cpus": 1,
                                      "memory_mib": 64, "storage": [],
                                      "vms": []})
        assert status == 200, reply
        keys[name] = reply["agent_key"]
    body = '{"name": "fake1", "vms": [], "exits": []}'

    def report(cert):
        argv = ["curl", "-sS", "--max-time", "5", "--cacert", cl.ca,
                "-o", "/dev/null", "-w", "%{http_code}", "-H",
                "Authorization: Bearer " + keys["fake1"], "-H",
                "Content-Type: application/json", "--data", body]
        if cert:
            argv += ["--cert", cert + ".pem", "--key", cert + ".key"]
        p = subprocess.run(argv + [cl.url + "/api/v1/agent/report"],
                           capture_output=True, text=True, cwd=work)
        return p.stdout
    assert report("fake1") == "200"
    assert report(None) == "401"
    assert report("fake2") == "401"
    # A certificate not from the cluster CA does not get through TLS.
    shutil.copy(os.path.join(cl.certdir, "evil.pem"), work)
    shutil.copy(os.path.join(cl.certdir, "evil.key"), work)
    assert report("evil") == "000"


def test_migration_stream_over_tls(tls_cluster, guest):
    """Both agents hold cluster certificates: QEMU migrates with its
    tls-creds-x509 objects, each side checking the other's certificate,
    and the guest arrives whole (its memory checker finds every write,
    no panic: one was seen here before TCG guests got unaligned RAM,
    docs/cluster.md)."""
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
    assert "migration stream over TLS (127.0.0.1)" in \
        cl.agents["h1"].log_tail(200)
    assert "migration stream over TLS (incoming)" in \
        cl.agents["h2"].log_tail(200)
    rc, out, err = cl.cli("vm", "console", "mg", check=False,
                          input="echo moved-$((20+22))\r", timeout=30)
    assert rc == 0 and "moved-42" in out, (out, err)
    cl.cli("vm", "stop", "mg", "--force")
    cl.cli("vm", "delete", "mg")
