"""Packaging: the .deb from scripts/build-deb holds the binary, units,
config files, completion and docs with the right metadata; its units pass
`systemd-analyze verify`; the manager starts from the package's files
exactly as the unit's ExecStart line runs it (config file included); and
the package installs with dpkg -i, works from its installed paths and
purges cleanly.
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import urllib.request

import pytest

from cvirt import REPO, free_port, wait_for

pytestmark = [
    pytest.mark.skipif(shutil.which("dpkg-deb") is None,
                       reason="dpkg-deb not installed"),
    # The package does not depend on the inventory backend: once is enough.
    pytest.mark.sqlite_only,
]


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([os.path.join(REPO, "scripts", "build-deb"),
                        str(out)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    path = p.stdout.strip().splitlines()[-1]
    assert os.path.exists(path)
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", path, str(root)], check=True)
    return path, str(root)


def test_deb_contents_and_metadata(deb):
    path, _ = deb
    files = subprocess.run(["dpkg-deb", "-c", path], check=True,
                           capture_output=True, text=True).stdout
    for f in ("./usr/bin/cvirt",
              "./usr/lib/systemd/system/cvirt-manager.service",
              "./usr/lib/systemd/system/cvirt-agent.service",
              "./etc/cvirt/manager.conf", "./etc/cvirt/agent.conf",
              "./usr/share/bash-completion/completions/cvirt",
              "./usr/share/doc/cvirt/operations.md"):
        assert re.search(r"\s%s$" % re.escape(f), files, re.M), f
    assert re.search(r"^-rwxr-xr-x root/root .* \./usr/bin/cvirt$", files,
                     re.M)
    info = subprocess.run(["dpkg-deb", "-f", path, "Package", "Version",
                           "Depends"], check=True, capture_output=True,
                          text=True).stdout
    assert "Package: cvirt" in info
    for dep in ("libpq5", "libsqlite3-0", "libjansson4", "qemu-system-x86"):
        assert dep in info, dep
    conffiles = subprocess.run(["dpkg-deb", "-I", path, "conffiles"],
                               check=True, capture_output=True,
                               text=True).stdout.split()
    assert conffiles == ["/etc/cvirt/manager.conf", "/etc/cvirt/agent.conf"]


def unit_for_root(root, name, tmp_path):
    """The packaged unit with paths moved under the extracted root."""
    with open(os.path.join(root, "usr/lib/systemd/system", name)) as f:
        text = f.read()
    text = text.replace("/usr/bin/cvirt", root + "/usr/bin/cvirt")
    out = tmp_path / name
    out.write_text(text)
    return str(out), text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_units_verify(deb, tmp_path):
    _, root = deb
    for name in ("cvirt-manager.service", "cvirt-agent.service"):
        unit, _ = unit_for_root(root, name, tmp_path)
        p = subprocess.run(["systemd-analyze", "verify", unit],
                           capture_output=True, text=True)
        errors = [line for line in p.stderr.splitlines()
                  if name in line and "not found" not in line]
        assert p.returncode == 0 and not errors, p.stderr


def test_manager_starts_like_the_unit(deb, tmp_path):
    _, root = deb
    _, text = unit_for_root(root, "cvirt-manager.service", tmp_path)
    argv = shlex.split(re.search(r"^ExecStart=(.*)$", text, re.M).group(1))
    # The packaged config file, with this test's data dir and port.
    conf = os.path.join(root, "etc/cvirt/manager.conf")
    port = free_port()
    with open(conf) as f:
        body = f.read()
    body = re.sub(r"^data = .*$", "data = %s" % (tmp_path / "data"), body,
                  flags=re.M)
    body = re.sub(r"^listen = .*$", "listen = 127.0.0.1:%d" % port, body,
                  flags=re.M)
    with open(conf, "w") as f:
        f.write(body)
    argv = [a.replace("/etc/cvirt", root + "/etc/cvirt") for a in argv]
    assert argv[1:] == ["manager", "--config", conf]
    log = open(tmp_path / "manager.log", "wb")
    p = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        def health():
            assert p.poll() is None, open(tmp_path / "manager.log").read()
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/health"
                                        % port, timeout=2) as r:
                return r.status == 200
        wait_for(health, 20, "the packaged manager to answer",
                 starting=True)
        assert os.path.exists(tmp_path / "data" / "admin.token")
        assert os.path.exists(tmp_path / "data" / "cvirt.db")
    finally:
        p.terminate()
        assert p.wait(20) == 0
    # A flag given after the config file wins over it.
    port2 = free_port()
    p = subprocess.Popen(argv + ["--listen", "127.0.0.1:%d" % port2],
                         stdout=log, stderr=log)
    try:
        def health2():
            assert p.poll() is None, open(tmp_path / "manager.log").read()
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/health"
                                        % port2, timeout=2) as r:
                return r.status == 200
        wait_for(health2, 20, "the manager on the flag's port",
                 starting=True)
    finally:
        p.terminate()
        assert p.wait(20) == 0
    v = subprocess.run([argv[0], "version"], capture_output=True, text=True,
                       check=True).stdout
    assert v.startswith("cvirt ")
    # A bad line in a config file: one clear error, non-zero exit.
    bad = tmp_path / "bad.conf"
    bad.write_text("data /tmp/x\n")
    r = subprocess.run([argv[0], "manager", "--config", str(bad)],
                       capture_output=True, text=True, timeout=20)
    # A usage error (exit 2), on one line.
    assert r.returncode == 2 and "bad.conf:1" in r.stderr and \
        r.stderr.count("\n") == 1, r


def _dpkg_known(pkg):
    """dpkg's status line for pkg ("" when dpkg has never heard of it)."""
    p = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", pkg],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else ""


@pytest.mark.skipif(os.geteuid() != 0, reason="dpkg -i needs root")
def test_deb_installs_and_purges(deb):
    """The .deb installed for real (CI machines are throwaway): the files
    are where docs/operations.md says, `cvirt version` answers from PATH,
    the post-install script made the system user and handed it the
    manager's config, the manager runs as that user from the installed
    files the way its unit starts it; then purged without a trace (the
    user too, when this test made it). Skipped where a cvirt package is
    already known to dpkg, so nobody's install is touched."""
    path, _ = deb
    if _dpkg_known("cvirt"):
        pytest.skip("a cvirt package is already on this machine: %s"
                    % _dpkg_known("cvirt"))
    had_user = subprocess.run(["getent", "passwd", "cvirt"],
                              capture_output=True).returncode == 0
    version = subprocess.run(["dpkg-deb", "-f", path, "Version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    files = ("/usr/bin/cvirt",
             "/usr/lib/systemd/system/cvirt-manager.service",
             "/usr/lib/systemd/system/cvirt-agent.service",
             "/etc/cvirt/manager.conf", "/etc/cvirt/agent.conf",
             "/usr/share/bash-completion/completions/cvirt",
             "/usr/share/doc/cvirt/operations.md")
    data = None
    try:
        p = subprocess.run(["dpkg", "-i", path], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert _dpkg_known("cvirt") == "install ok installed"
        listed = subprocess.run(["dpkg", "-L", "cvirt"], check=True,
                                capture_output=True, text=True).stdout.split()
        for f in files:
            assert os.path.isfile(f) and f in listed, f
        # `cvirt version` from PATH, as users run it.
        env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        v = subprocess.run(["cvirt", "version"], env=env, check=True,
                           capture_output=True, text=True).stdout
        assert v.split()[:2] == ["cvirt", version], v
        assert shutil.which("cvirt", path=env["PATH"]) == "/usr/bin/cvirt"
        # The units as the table in docs/operations.md gives them.
        with open("/usr/lib/systemd/system/cvirt-manager.service") as f:
            unit = f.read()
        for line in ("ExecStart=/usr/bin/cvirt manager --config "
                     "/etc/cvirt/manager.conf", "User=cvirt",
                     "StateDirectory=cvirt", "Restart=on-failure"):
            assert re.search("^%s$" % re.escape(line), unit, re.M), line
        with open("/usr/lib/systemd/system/cvirt-agent.service") as f:
            agent = f.read()
        for line in ("ExecStart=/usr/bin/cvirt agent --config "
                     "/etc/cvirt/agent.conf", "KillMode=process"):
            assert re.search("^%s$" % re.escape(line), agent, re.M), line
        # postinst: a system user that may read the manager's config
        # (root:cvirt 0640); conffiles as dpkg records them.
        pw = subprocess.run(["getent", "passwd", "cvirt"], check=True,
                            capture_output=True, text=True).stdout.split(":")
        assert int(pw[2]) < 1000, pw
        st = os.stat("/etc/cvirt/manager.conf")
        gr = subprocess.run(["getent", "group", "cvirt"], check=True,
                            capture_output=True, text=True).stdout.split(":")
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == \
            (0o640, 0, int(gr[2]))
        status = subprocess.run(["dpkg", "-s", "cvirt"], check=True,
                                capture_output=True, text=True).stdout
        assert "/etc/cvirt/manager.conf" in status
        assert "/etc/cvirt/agent.conf" in status
        # The manager as its unit runs it: user cvirt, the installed
        # config (data dir and port overridden by flags, which win).
        data = tempfile.mkdtemp(prefix="cvirt-pkg.", dir="/tmp")
        os.chown(data, int(pw[2]), int(gr[2]))
        port = free_port()
        argv = shlex.split(re.search(r"^ExecStart=(.*)$", unit,
                                     re.M).group(1))
        # setpriv execs the manager itself (SIGTERM reaches it).
        m = subprocess.Popen(["setpriv", "--reuid", "cvirt", "--regid",
                              "cvirt", "--init-groups"] + argv +
                             ["--data", data + "/d", "--listen",
                              "127.0.0.1:%d" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            def health():
                assert m.poll() is None, m.stdout.read().decode()
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/api/v1/health" % port,
                        timeout=2) as r:
                    return r.status == 200
            wait_for(health, 20, "the installed manager to answer",
                     starting=True)
            assert os.stat(data + "/d/admin.token").st_uid == int(pw[2])
        finally:
            m.terminate()
            assert m.wait(20) == 0
        if os.path.isdir("/run/systemd/system"):
            # Under systemd, postinst enabled both units and started the
            # manager.
            for u in ("cvirt-manager.service", "cvirt-agent.service"):
                assert subprocess.run(["systemctl", "is-enabled", u],
                                      capture_output=True).returncode == 0, u
            wait_for(lambda: subprocess.run(
                ["systemctl", "is-active", "cvirt-manager.service"],
                capture_output=True).returncode == 0, 20,
                "cvirt-manager.service to be active")
    finally:
        if data:
            shutil.rmtree(data, ignore_errors=True)
        p = subprocess.run(["dpkg", "--purge", "cvirt"], capture_output=True,
                           text=True, timeout=120)
        if not had_user:
            subprocess.run(["userdel", "cvirt"], capture_output=True)
            subprocess.run(["groupdel", "cvirt"], capture_output=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert _dpkg_known("cvirt") in ("", "unknown ok not-installed")
    for f in files:
        assert not os.path.exists(f), f
    assert not os.path.exists("/etc/cvirt")
