"""Host files (issue 15, part A): boot media, kernels, initrds and image
import sources come only from a storage domain's media areas (isos/,
kernels/, images/) or a directory an admin lists (--media-dir), opened
beneath them; anything else is refused with one text whatever the reason
and whether or not the file exists. Users bring files in by upload
(PUT /api/v1/storage/S/AREA/NAME, `cvirt iso upload`, and the CLI uploads
a client's own --cdrom/--kernel/--initrd/image file first).
"""

import hashlib
import http.client
import json
import os
import stat
import subprocess
import time
import urllib.parse

import cvirt
from cvirt import qemu_pid

REPO = cvirt.REPO
TEXT = {
    "cdrom": "cdrom X: not a file in a media area (isos/ of a storage "
             "domain)",
    "kernel": "kernel X: not a file in a media area (kernels/ of a storage "
              "domain)",
    "initrd": "initrd X: not a file in a media area (kernels/ of a storage "
              "domain)",
    "file": "file X: not a file in a media area (images/ of a storage "
            "domain)",
}
AREA = {"cdrom": "isos", "kernel": "kernels", "initrd": "kernels",
        "file": "images"}


def build_iso(tmp_path, name="boot.iso"):
    out = tmp_path / name
    subprocess.run([os.path.join(REPO, "tests", "guest", "build-bootiso.sh"),
                    str(out), "console=ttyS0"], check=True)
    return out


def put(cl, path, data, headers=None, length=None):
    """PUT raw bytes (or a declared length with less data); (status,
    JSON or text)."""
    u = urllib.parse.urlsplit(cl.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.putrequest("PUT", path)
        conn.putheader("Authorization", "Bearer " + cl.token())
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if length is not None or "Transfer-Encoding" not in (headers or {}):
            conn.putheader("Content-Length",
                           str(len(data) if length is None else length))
        conn.endheaders()
        if data:
            try:
                conn.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
        if data and length is not None and length > len(data):
            conn.sock.shutdown(1)   # cut short: the client goes
        r = conn.getresponse()
        raw = r.read().decode(errors="replace")
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw
    except (ConnectionResetError, BrokenPipeError,
            http.client.RemoteDisconnected):
        return 0, None
    finally:
        conn.close()


def refused_alike(cl, field, value, extra=None):
    """POST the create (or import) naming value; 400 with the one text."""
    before = cl.vm_names()
    if field == "file":
        status, body = cl.http("POST", "/api/v1/images",
                               {"file": value, "name": "imp1"})
    else:
        body = {"name": "m1", "cpus": 1, "memory_mib": 64, field: value}
        if field == "initrd":
            body["kernel"] = cvirt.GUEST_KERNEL
        status, body = cl.http("POST", "/api/v1/vms", dict(body,
                                                            **(extra or {})))
    assert status == 400, (field, value, status, body)
    assert body["error"].replace(value, "X") == TEXT[field], \
        (field, value, body)
    assert cl.vm_names() == before
    images = cl.cli("image", "list", json=True)
    assert "imp1" not in [i["name"] for i in images]


def test_host_files_are_refused_with_one_text(cluster, guest):
    """cdrom, kernel, initrd and an image import's file naming a host file
    outside the media areas: /etc/shadow, a '..' walk, a device, a link
    in the area pointing out, a device or FIFO in the area, a file that is
    not there: 400, the same text whatever the reason, existing or not.
    (Before, /etc/shadow attached as the guest's CD-ROM.)"""
    cl = cluster
    st = cl.storage
    for area in ("isos", "kernels", "images"):
        d = os.path.join(st, area)
        os.makedirs(d, exist_ok=True)
        os.symlink("/etc/shadow", os.path.join(d, "out"))
        os.symlink("../domain.json", os.path.join(d, "up"))
        os.mknod(os.path.join(d, "null"), stat.S_IFCHR | 0o600,
                 os.makedev(1, 3))
        os.mkfifo(os.path.join(d, "fifo"))
        os.mkdir(os.path.join(d, "dir"))
    try:
        for field, area in AREA.items():
            a = os.path.join(st, area)
            for value in ("/etc/shadow", "/etc/../etc/shadow", "/dev/null",
                          "/dev/sda", "/nonexistent/x", a + "/out",
                          a + "/up", a + "/null", a + "/fifo", a + "/dir",
                          a + "/missing", a + "/../domain.json",
                          a + "/../../../etc/shadow", a + "//out",
                          "local:" + area + "/../domain.json",
                          guest.kernel + "/../../../../etc/shadow",
                          "rel/path"):
                refused_alike(cl, field, value)
    finally:
        for area in ("isos", "kernels", "images"):
            d = os.path.join(st, area)
            for n in ("out", "up", "null", "fifo"):
                os.unlink(os.path.join(d, n))
            os.rmdir(os.path.join(d, "dir"))


def test_uploaded_iso_boots_a_guest(cluster, tmp_path):
    """An ISO uploaded through the API (streamed, its SHA-256 in the
    answer) attaches as the CD-ROM of a VM that boots from it: QEMU gets
    the open file (an fdset), not the path. While the VM uses it, the ISO
    cannot be deleted; a second upload of the name is refused."""
    cl = cluster
    iso = build_iso(tmp_path)
    data = iso.read_bytes()
    status, body = put(cl, "/api/v1/storage/local/isos/boot.iso", data)
    assert status == 201, (status, body)
    want = hashlib.sha256(data).hexdigest()
    assert body["sha256"] == want and body["size_bytes"] == len(data)
    path = os.path.join(cl.storage, "isos", "boot.iso")
    assert body["path"] == path
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == want
    status, lst = cl.http("GET", "/api/v1/storage/local/isos")
    assert status == 200
    e = [x for x in lst if x["name"] == "boot.iso"]
    assert len(e) == 1 and e[0]["size_bytes"] == len(data)
    assert e[0]["sha256"] in (want, None)   # None: no user xattrs there
    assert not [n for n in os.listdir(os.path.dirname(path))
                if n.startswith(".upload-")]

    status, body = cl.http("POST", "/api/v1/vms", {
        "name": "iso1", "cpus": 1, "memory_mib": 256,
        "cdrom": "local:isos/boot.iso"})
    assert status == 201, body
    assert cl.vm("iso1")["name"] == "iso1"
    cl.cli("vm", "start", "iso1")
    cl.wait_serial("iso1", "cvirt-guest: init reached", 120)
    argv = cvirt.proc_cmdline(qemu_pid(cl.vm("iso1")["uuid"]))
    assert any("/dev/fdset/" in a for a in argv), argv
    assert not any(path in a for a in argv), argv

    status, body = cl.http("DELETE", "/api/v1/storage/local/isos/boot.iso")
    assert status == 409 and "used by vm \"iso1\"" in body["error"], body
    status, body = put(cl, "/api/v1/storage/local/isos/boot.iso", b"x")
    assert status == 409, (status, body)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == want
    cl.cli("vm", "stop", "iso1", "--force")
    cl.cli("vm", "delete", "iso1")
    status, body = cl.http("DELETE", "/api/v1/storage/local/isos/boot.iso")
    assert status == 200, body
    assert not os.path.exists(path)


def test_upload_limits_and_names(cluster):
    """Size limit (413 before a byte is read), names that are not one
    plain file name (400), unknown areas and domains (404), no length
    (411), an upload cut short leaves nothing behind."""
    cl = cluster
    iso = "/api/v1/storage/local/isos/"
    # Beyond the manager's limit (16 GiB by default): refused at once.
    status, body = put(cl, iso + "huge.iso", b"", length=(16 << 30) + 1)
    assert status == 413 and "limit" in body["error"], (status, body)
    for name in (".hidden", "a%00b", "a%00", "a%20b", "%2e%2e", "a:b",
                 "x" * 201):
        status, body = put(cl, iso + name, b"data")
        assert status == 400, (name, status, body)
    # "a/b" once decoded: no such route.
    status, body = put(cl, iso + "a%2Fb", b"data")
    assert status == 404, (status, body)
    names = [x["name"] for x in cl.http("GET", "/api/v1/storage/local/isos")[1]]
    assert "a" not in names and "a b" not in names, names
    status, body = put(cl, "/api/v1/storage/local/etc/x", b"data")
    assert status == 404, (status, body)
    status, body = put(cl, "/api/v1/storage/nosuch/isos/x.iso", b"data")
    assert status == 404, (status, body)
    status, body = put(cl, iso + "chunked.iso", b"",
                       headers={"Transfer-Encoding": "chunked"})
    assert status in (411, 400), (status, body)
    # Cut short: 10 of 1000 bytes, then the client goes.
    put(cl, iso + "cut.iso", b"0123456789", length=1000)
    d = os.path.join(cl.storage, "isos")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [n for n in os.listdir(d) if n.startswith(".upload-") or
                n == "cut.iso"]
        if not left:
            break
        time.sleep(0.2)
    assert not left, left
    names = [x["name"] for x in cl.http("GET", "/api/v1/storage/local/isos")[1]]
    assert "cut.iso" not in names and "huge.iso" not in names
    # A viewer lists but does not upload.
    tok = cl.cli("user", "create", "mviewer", "--role", "viewer")[1].strip()
    status, _ = cl.http("GET", "/api/v1/storage/local/isos", token=tok)
    assert status == 200
    status, _ = cl.http("DELETE", iso + "x.iso", token=tok)
    assert status == 403


def test_cli_uploads_client_files(cluster, guest, tmp_path):
    """`cvirt iso upload|list|delete`; a --cdrom, --kernel or --initrd
    that is the client's own file (not in a media area) is uploaded into
    the domain's area under its SHA-256 and the VM names that copy; a
    path in an area or a --media-dir is the hosts' and is not read by the
    CLI."""
    cl = cluster
    iso = build_iso(tmp_path, "cli.iso")
    out = cl.cli("iso", "upload", str(iso))[1]
    assert "uploaded isos/cli.iso to storage local" in out, out
    lst = cl.cli("iso", "list", json=True)
    assert [x["name"] for x in lst if x["name"] == "cli.iso"] == ["cli.iso"]
    rc, _, err = cl.cli("iso", "upload", str(iso), check=False)
    assert rc == 1 and "already exists" in err
    rc, _, err = cl.cli("iso", "upload", str(iso), "--name", ".x",
                        check=False)
    assert rc == 1 and "invalid ISO name" in err

    # The client's kernel and initrd, copied where no host looks (the
    # bzImage: an eighth of the ELF's size to upload).
    k, i = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    k.write_bytes(open(guest.bzimage, "rb").read())
    i.write_bytes(open(guest.initrd, "rb").read())
    cl.cli("vm", "create", "cli1", "--cpus", 1, "--memory", 256,
           "--kernel", str(k), "--initrd", str(i), "--cmdline",
           "console=ttyS0", "--cdrom", "local:isos/cli.iso")
    v = cl.vm("cli1")
    ksum = hashlib.sha256(k.read_bytes()).hexdigest()[:16]
    assert v["kernel"] == os.path.join(cl.storage, "kernels",
                                       "vmlinuz-" + ksum), v
    assert v["initrd"].startswith(os.path.join(cl.storage, "kernels",
                                               "initrd.img-"))
    # A second VM from the same files reuses the uploaded copies.
    cl.cli("vm", "create", "cli2", "--cpus", 1, "--memory", 256,
           "--kernel", str(k), "--initrd", str(i))
    assert cl.vm("cli2")["kernel"] == v["kernel"]
    kern = [n for n in os.listdir(os.path.join(cl.storage, "kernels"))
            if n.startswith("vmlinuz-")]
    assert kern == ["vmlinuz-" + ksum], kern
    cl.cli("vm", "start", "cli1")
    cl.wait_serial("cli1", "cvirt-guest: init reached", 90)
    rc, _, err = cl.cli("iso", "delete", "cli.iso", check=False)
    assert rc == 1 and "used by vm \"cli1\"" in err, err
    cl.cli("vm", "stop", "cli1", "--force")
    cl.cli("vm", "delete", "cli1")
    cl.cli("vm", "delete", "cli2")
    cl.cli("iso", "delete", "cli.iso")
    assert "cli.iso" not in [x["name"] for x in
                             cl.cli("iso", "list", json=True)]
    # A client file that is not there: the client says so, no host asked.
    rc, _, err = cl.cli("vm", "create", "cli3", "--cpus", 1, "--memory", 64,
                        "--cdrom", str(tmp_path / "none.iso"), check=False)
    assert rc == 1 and "No such file or directory" in err
