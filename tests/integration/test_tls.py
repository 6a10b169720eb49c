"""TLS: the API over HTTPS (--tls-cert/--tls-key) checked with curl
--cacert and the CLI's --ca-file; manager <-> agent mutual TLS with the
cluster CA the manager creates (certificates handed out at join)."""

import os
import shutil
import subprocess

import pytest

import cvirt


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
             "--tls-key", os.path.join(self.certdir, "server.key")],
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
        return self.curl("/api/v1/health")[0] == 0

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
    assert p.returncode != 0 or '"ok"' not in p.stdout
    # TLS 1.0/1.1 are refused.
    rc, _, _ = cl.curl("/api/v1/health", "--tls-max", "1.1")
    assert rc != 0


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
