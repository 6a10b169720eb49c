"""Backup corruption is caught (docs/storage.md, "Backups"): `backup verify`
recomputes every checksum and `backup restore` checks each file's checksum
before copying it, so a backup file damaged on storage (one byte of guest
data changed: qemu-img still reads it without complaint) is refused with
one clear line, and a refused restore leaves no VM and no file behind."""

import json
import os
import subprocess

import pytest

import cvirt

pytestmark = pytest.mark.shared_storage

PATTERN = 0x5a
DATA_MIB = 4


@pytest.fixture(scope="module")
def bk(request, tmp_path_factory, cvirt_bin):
    """A cluster with a stopped VM v whose disk holds DATA_MIB MiB of
    PATTERN bytes at 1 MiB, and a backup of it (bk.bid, its files in
    bk.bdir)."""
    cl = cvirt.Cluster(logdir=str(tmp_path_factory.mktemp("logs")))
    request.addfinalizer(cl.cleanup)
    cl.start()
    cl.cli("vm", "create", "v", "--cpus", 1, "--memory", 64, "--disk", 16)
    v = cl.vm("v")
    disk = os.path.join(cl.storage, "vms", v["uuid"], v["disks"][0]["file"])
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P %d 1M %dM"
                    % (PATTERN, DATA_MIB), disk], check=True,
                   capture_output=True)
    task = cl.cli("backup", "create", "v", json=True)
    assert task["state"] == "succeeded", task
    cl.bid = task["result"]["id"]
    cl.bdir = os.path.join(cl.storage, "backups", cl.bid)
    return cl


def manifest(cl):
    with open(os.path.join(cl.bdir, "manifest.json")) as f:
        return json.load(f)


def one_line_error(cl, *args):
    """Runs a CLI command that must fail; returns its one-line error."""
    rc, out, err = cl.cli(*args, check=False)
    assert rc == 1 and err.startswith("cvirt: ") and \
        len(err.strip().splitlines()) == 1, (args, rc, out, err)
    return err.strip()


def flip_data_byte(path):
    """Changes one byte inside the run of PATTERN bytes of a qcow2 file
    (a data cluster); returns (offset, old byte) to undo it."""
    with open(path, "r+b") as f:
        data = f.read()
        off = data.find(bytes([PATTERN]) * 65536)
        assert off >= 0, "no data cluster of the pattern in %s" % path
        off += 12345
        f.seek(off)
        f.write(bytes([PATTERN ^ 1]))
    return off, PATTERN


def put_byte(path, off, value):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(bytes([value]))


def restore_refused(cl, name, words):
    """A restore into name fails with words in its one-line error, and
    leaves neither the VM nor a directory of it on storage."""
    vms = set(cl.vm_names())
    vm_dirs = set(os.listdir(os.path.join(cl.storage, "vms")))
    err = one_line_error(cl, "backup", "restore", cl.bid, "--name", name)
    for w in words:
        assert w in err, err
    assert set(cl.vm_names()) == vms, "a refused restore left a VM"
    status, _ = cl.http("GET", "/api/v1/vms/" + name)
    assert status == 404
    assert set(os.listdir(os.path.join(cl.storage, "vms"))) == vm_dirs, \
        "a refused restore left files"
    return err


def test_intact_backup_verifies_and_restores(bk):
    """The control: the same backup, untouched, verifies and restores to
    a disk holding the data."""
    task = bk.cli("backup", "verify", bk.bid, json=True)
    assert task["state"] == "succeeded" and task["result"]["ok"] is True
    bk.cli("backup", "restore", bk.bid, "--name", "r0")
    r = bk.vm("r0")
    path = os.path.join(bk.storage, "vms", r["uuid"], r["disks"][0]["file"])
    out = subprocess.run(["qemu-io", "-r", "-f", "qcow2", "-c",
                          "read -P %d 1M %dM" % (PATTERN, DATA_MIB), path],
                         check=True, capture_output=True, text=True).stdout
    assert "Pattern verification failed" not in out, out
    bk.cli("vm", "delete", "r0")


def test_damaged_file_fails_verify_and_restore(bk):
    """Guards src/agent/backupops.c: bk_verify_job() (each file's SHA-256
    against the manifest's, "backup ID is damaged: FILE does not match its
    checksum") and bk_copy_one() (a restore's source checksum checked
    before the copy, "... is damaged: its checksum does not match the
    manifest"); src/manager/storops.c storops_backup_restore() hands the
    checksums to the copy, and storops_copy_into() removes the new VM on
    failure."""
    disk = manifest(bk)["disks"][0]
    path = os.path.join(bk.bdir, disk["file"])
    # The damage is silent to qemu-img: only the checksum can tell.
    off, old = flip_data_byte(path)
    try:
        subprocess.run(["qemu-img", "check", "-q", path], check=True,
                       capture_output=True)
        err = one_line_error(bk, "backup", "verify", bk.bid)
        assert "backup %s is damaged: %s does not match its checksum" % (
            bk.bid, disk["file"]) in err, err
        t = bk.cli("task", "list", json=True)[0]
        assert t["kind"] == "backup.verify" and t["state"] == "failed" and \
            "is damaged" in t["error"], t
        restore_refused(bk, "r1", ("is damaged", "checksum does not match"))
        # The backup itself stays listed: the operator decides.
        assert bk.cli("backup", "show", bk.bid, json=True)["id"] == bk.bid
    finally:
        put_byte(path, off, old)
    # Undamaged again, it verifies: the refusals were about that byte.
    bk.cli("backup", "verify", bk.bid)


def test_missing_or_truncated_file_fails_verify_and_restore(bk):
    """Guards the same checks (bk_verify_job(), bk_copy_one()) for a file
    that is shorter than when it was sealed, or gone."""
    disk = manifest(bk)["disks"][0]
    path = os.path.join(bk.bdir, disk["file"])
    keep = path + ".keep"
    os.rename(path, keep)
    try:
        with open(keep, "rb") as src, open(path, "wb") as dst:
            dst.write(src.read(disk["size_bytes"] // 2))
        err = one_line_error(bk, "backup", "verify", bk.bid)
        assert "backup %s is damaged: %s" % (bk.bid, disk["file"]) in err
        restore_refused(bk, "r2", ("is damaged",))
        os.unlink(path)
        err = one_line_error(bk, "backup", "verify", bk.bid)
        assert "backup %s is damaged: %s" % (bk.bid, disk["file"]) in err
        restore_refused(bk, "r3", (disk["file"],))
    finally:
        os.replace(keep, path)
    bk.cli("backup", "verify", bk.bid)
