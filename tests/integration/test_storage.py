"""Storage: snapshots, backups, restores, clones and images on real guests.

One guest (w) writes "tick N" to offset 0 of its disk every 0.2 s and prints
"cvirt-guest: disktick N" once each write is done. A snapshot or backup
taken while it runs must hold a tick T with
    (last tick printed before the command started) <= T <= (last printed
    after it returned) + 1
(the +1 is a write that finished but was not printed yet), and the guest
keeps writing, so a copy taken at any other moment shows a different tick.
A second storage domain is a 64 MiB tmpfs ("small") for the out-of-space
case; a third ("bk") receives backups.
"""

import hashlib
import json
import os
import re
import subprocess

import pytest

import cvirt
from cvirt import wait_for

pytestmark = pytest.mark.shared_storage

TICK_RE = re.compile(r"cvirt-guest: disktick (\d+)")
HAD_RE = re.compile(r"cvirt-guest: disk had: ?([a-z0-9 ]*)")
CMDLINE = "console=ttyS0 cvirt.disktick=1"
FILL_MIB = 160          # data on w's disk, more than "small" can hold


def ticks(serial):
    return [int(n) for n in TICK_RE.findall(serial)]


def last_tick(cl, name):
    t = ticks(cl.serial(name))
    return t[-1] if t else 0


def disk_path(cl, vm, storage_root=None):
    """Absolute path of the active layer of vm's first disk."""
    v = cl.vm(vm)
    return os.path.join(storage_root or cl.storage, "vms", v["uuid"],
                        v["disks"][0]["file"])


def read_tick(path, offset=0):
    """'tick N' at offset of a (qcow2, maybe in use) image -> N, else the
    first 16 bytes there."""
    out = subprocess.run(["qemu-io", "-r", "-U", "-f", "qcow2", "-c",
                          "read -v %d 32" % offset, path], check=True,
                         capture_output=True, text=True).stdout
    data = bytes(int(h, 16) for line in out.splitlines()
                 if re.match(r"^[0-9a-f]{8}:  ", line)
                 for h in line[11:58].split())
    m = re.match(rb"tick (\d+)", data)
    return int(m.group(1)) if m else data[:16]


def wait_ticks_past(cl, name, n, timeout=30):
    return wait_for(lambda: last_tick(cl, name) > n, timeout,
                    "%s to write past tick %d" % (name, n), interval=0.3)


def task_of(cl, kind, vm=None):
    """The newest task of that kind (and VM)."""
    for t in cl.cli("task", "list", json=True):
        if t["kind"] == kind and (vm is None or t.get("vm") == vm):
            return t
    return None


@pytest.fixture(scope="module")
def st(request, tmp_path_factory, cvirt_bin, guest):
    """Cluster with domains local, bk and (as root) a 64 MiB tmpfs small;
    VM w running and writing ticks, its disk holding FILL_MIB of data."""
    cl = cvirt.Cluster(logdir=str(tmp_path_factory.mktemp("logs")))
    small = os.path.join(cl.base, "small")
    # bk is shared storage (on the networked-storage pass's filesystem
    # there); small is this machine's tmpfs (ENOSPC in 64 MiB).
    bk = cl.shared_dir("bk")
    os.makedirs(small)
    mounted = False
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs",
                        small], check=True)
        mounted = True

    def fin():
        try:
            cl.cleanup()
        finally:
            if mounted:
                subprocess.run(["umount", "-l", small], check=False)
    request.addfinalizer(fin)
    cl.start(agent_extra={"h1": ["--storage", "small=" + small,
                                 "--storage", "bk=" + bk]})
    cl.cli("vm", "create", "w", "--cpus", 1, "--memory", 192, "--disk", 256,
           "--storage", "local", "--kernel", guest.kernel, "--initrd",
           guest.initrd, "--cmdline", CMDLINE)
    # Real data to copy: a backup then takes a while and cannot fit in small.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                    "write -P 0x5a 1M %dM" % FILL_MIB, disk_path(cl, "w")],
                   check=True, capture_output=True)
    cl.cli("vm", "start", "w")
    cl.wait_serial("w", "cvirt-guest: disktick 3", 60)
    cl.small = small if mounted else None
    cl.bk = bk
    cl.facts = {}
    return cl


def timed(cl, *args):
    """Runs a CLI command between two tick readings: (before, result,
    after) with ticks printed before it started and after it returned."""
    before = last_tick(cl, "w")
    res = cl.cli(*args, json=True)
    after = last_tick(cl, "w")
    return before, res, after


def test_snapshot_of_running_vm_is_one_instant(st):
    before, task, after = timed(st, "snapshot", "create", "w", "snap1")
    assert task["state"] == "succeeded", task
    assert task["result"]["name"] == "snap1" and task["result"]["created"]
    snaps = st.cli("snapshot", "list", "w", json=True)
    assert [s["name"] for s in snaps] == ["snap1"]
    assert snaps[0]["created"] and snaps[0]["running"] is True
    # The frozen state is the file the new overlay sits on.
    frozen = os.path.join(st.storage, "vms", st.vm("w")["uuid"],
                          snaps[0]["disks"][0]["backing"])
    wait_ticks_past(st, "w", after + 5)
    got = read_tick(frozen)
    assert isinstance(got, int), "no tick in the snapshot: %r" % (got,)
    assert before <= got <= after + 1, (before, got, after)
    # The running VM writes on above the snapshot, not into it.
    assert read_tick(disk_path(st, "w")) > after + 1
    assert read_tick(frozen) == got
    assert st.vm("w")["state"] == "running"
    st.facts["snap1"] = got


def test_backup_of_running_vm_restores_one_instant(st):
    before, task, after = timed(st, "backup", "create", "w", "--storage",
                                "bk")
    assert task["state"] == "succeeded", task
    res = task["result"]
    bid = res["id"]
    assert res["vm"] == "w" and res["created"] and res["size_bytes"] > \
        FILL_MIB << 20
    assert st.vm("w")["state"] == "running"
    listed = {b["id"]: b for b in st.cli("backup", "list", "w", json=True)}
    assert set(listed[bid]) >= {"id", "vm", "created", "size_bytes"}
    assert listed[bid]["vm"] == "w" and listed[bid]["storage"] == "bk"
    # The manifest's sizes and checksums are those of the files.
    bdir = os.path.join(st.bk, "backups", bid)
    with open(os.path.join(bdir, "manifest.json")) as f:
        man = json.load(f)
    for d in man["disks"]:
        with open(os.path.join(bdir, d["file"]), "rb") as f:
            data = f.read()
        assert len(data) == d["size_bytes"]
        assert hashlib.sha256(data).hexdigest() == d["sha256"]
    # The backup's size is its disks' (src/agent/backupops.c).
    assert res["size_bytes"] == man["size_bytes"] == \
        sum(d["size_bytes"] for d in man["disks"]), (res, man)
    assert not [n for n in os.listdir(os.path.join(st.bk, "backups"))
                if n.startswith(".")], "temporary files left behind"
    wait_ticks_past(st, "w", after + 5)
    st.cli("backup", "verify", bid)
    st.cli("backup", "restore", bid, "--name", "wr")
    r = st.vm("wr")
    assert r["state"] == "stopped" and r["uuid"] != st.vm("w")["uuid"]
    assert r["nics"][0]["mac"] != st.vm("w")["nics"][0]["mac"]
    got = read_tick(disk_path(st, "wr"))
    assert isinstance(got, int), "no tick in the restored disk: %r" % (got,)
    assert before <= got <= after + 1, (before, got, after)
    assert read_tick(disk_path(st, "wr"), 100 << 20) == b"\x5a" * 16
    # The restored VM boots and its guest reads that same tick.
    st.cli("vm", "start", "wr")
    s = st.wait_serial("wr", "cvirt-guest: disk had:", 60)
    assert HAD_RE.search(s).group(1) == "tick %d" % got
    st.cli("vm", "stop", "wr", "--force")
    st.facts["backup"] = bid


def test_backup_out_of_space_fails_cleanly(st):
    if st.small is None:
        pytest.skip("needs root to mount a small tmpfs")
    n0 = last_tick(st, "w")
    ids = {b["id"] for b in st.cli("backup", "list", json=True)}
    rc, out, err = st.cli("backup", "create", "w", "--storage", "small",
                          check=False)
    assert rc == 1 and err.startswith("cvirt: ") and \
        len(err.strip().splitlines()) == 1, (rc, out, err)
    assert "No space left on device" in err, err
    t = task_of(st, "backup.create", "w")
    assert t["state"] == "failed" and "No space left" in t["error"]
    # The VM runs on and writes (a guest write that hit the full target
    # paused it for a moment at most); nothing of the backup is left.
    st.wait_state("w", "running", 10)
    wait_ticks_past(st, "w", n0 + 3)
    left = []
    for root, dirs, files in os.walk(st.small):
        if os.path.relpath(root, st.small).split(os.sep)[0] != "leases":
            left += [os.path.join(root, n) for n in files]
    assert left == [os.path.join(st.small, "domain.json")], left
    assert {b["id"] for b in st.cli("backup", "list", json=True)} == ids
    # And a backup to a roomy domain still works afterwards.
    task = st.cli("backup", "create", "w", "--storage", "bk", "--keep", "1",
                  json=True)
    assert task["state"] == "succeeded"
    kept = st.cli("backup", "list", "w", json=True)
    assert [b["id"] for b in kept] == [task["result"]["id"]], \
        "--keep 1 keeps only the newest backup"
    if "backup" in st.facts:
        assert not os.path.exists(os.path.join(st.bk, "backups",
                                               st.facts["backup"]))
    st.facts["backup"] = task["result"]["id"]


def test_snapshot_delete_merges_while_running(st):
    for s in ("snap2", "snap3"):
        st.cli("snapshot", "create", "w", s)
    uuid = st.vm("w")["uuid"]
    vdir = os.path.join(st.storage, "vms", uuid)
    files_before = set(os.listdir(vdir))
    n0 = last_tick(st, "w")
    st.cli("snapshot", "delete", "w", "snap2")      # an intermediate layer
    st.cli("snapshot", "delete", "w", "snap3")      # the active layer
    assert [s["name"] for s in st.cli("snapshot", "list", "w", json=True)] \
        == ["snap1"]
    assert st.vm("w")["state"] == "running"
    wait_ticks_past(st, "w", n0 + 3)
    gone = files_before - set(os.listdir(vdir))
    assert len(gone) == 2, "the two merged overlays are removed: %s" % gone
    # The chain the spec names is what QEMU writes to.
    n = last_tick(st, "w")
    wait_ticks_past(st, "w", n + 1)
    assert read_tick(disk_path(st, "w")) > n
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "-U", "--backing-chain", "--output=json",
         disk_path(st, "w")], check=True, capture_output=True,
        text=True).stdout)
    assert len(info) == 2, "active layer over the snap1 state"


def test_revert_brings_back_the_snapshot_instant(st):
    st.cli("vm", "stop", "w", "--force")
    assert read_tick(disk_path(st, "w")) > st.facts["snap1"]
    st.cli("snapshot", "revert", "w", "snap1")
    assert read_tick(disk_path(st, "w")) == st.facts["snap1"]
    assert [s["name"] for s in st.cli("snapshot", "list", "w", json=True)] \
        == ["snap1"]
    st.cli("vm", "start", "w")
    s = st.wait_serial("w", "cvirt-guest: disk had:", 60, count=2)
    assert HAD_RE.findall(s)[-1] == "tick %d" % st.facts["snap1"]
    # Reverting needs a stopped VM.
    rc, _, err = st.cli("snapshot", "revert", "w", "snap1", check=False)
    assert rc == 1 and "stop it" in err


def test_names_and_ids_are_validated(st):
    vms = st.vm_names()

    def refused(args, text):
        rc, out, err = st.cli(*args, check=False)
        assert rc == 1 and text in err and out == "", (args, rc, out, err)
        assert len(err.strip().splitlines()) == 1, err

    refused(("snapshot", "create", "w", "bad/name"), "invalid snapshot name")
    refused(("snapshot", "create", "w", "snap1"), "already exists")
    refused(("snapshot", "create", "nosuch", "s"), 'vm "nosuch" not found')
    refused(("snapshot", "revert", "w", "nosuch"), "not found")
    refused(("snapshot", "delete", "w", "nosuch"), "not found")
    refused(("snapshot", "list", "nosuch"), "not found")
    refused(("backup", "create", "nosuch"), 'vm "nosuch" not found')
    refused(("backup", "create", "w", "--storage", "nosuch"),
            'storage "nosuch" not found')
    refused(("backup", "restore", "nosuch", "--name", "x1"),
            'backup "nosuch" not found')
    refused(("backup", "restore", st.facts["backup"], "--name", "w"),
            'vm "w" already exists')
    refused(("backup", "restore", st.facts["backup"], "--name", "-x"),
            "invalid VM name")
    refused(("backup", "restore", "../etc", "--name", "x2"),
            "invalid backup name")
    refused(("vm", "clone", "nosuch", "c1"), 'vm "nosuch" not found')
    refused(("vm", "clone", "w", "c1"), "stop it before cloning")
    refused(("vm", "clone", "wr", "w"), 'vm "w" already exists')
    refused(("vm", "clone", "wr", "c1", "--linked"), "needs a template")
    # A path outside every media area is this client's file (docs/cli.md,
    # "Host files"): the CLI reads it to upload it, so its absence is the
    # client's error, said before anything reaches the hosts.
    refused(("image", "import", "/nonexistent.img", "--name", "i1"),
            "image import /nonexistent.img: No such file or directory")
    refused(("image", "import", "/etc/hostname", "--name", "a/b"),
            "invalid image name")
    refused(("image", "import", "/etc/hostname", "--name", "i2", "--host",
             "nosuch"), 'host "nosuch" not found')
    refused(("image", "delete", "nosuch"), 'image "nosuch" not found')
    refused(("vm", "create", "x3", "--cpus", 1, "--memory", 64,
             "--image", "nosuch", "--storage", "local"),
            'image "nosuch" not found')
    # The API answers 4xx with {"error"} for what the CLI would not send.
    for path, body, code in (
            ("/api/v1/vms/w/snapshots", {"name": "../x"}, 400),
            ("/api/v1/vms/w/snapshots", {"name": "s", "x": 1}, 400),
            ("/api/v1/vms/w/snapshots/..%2Fx/revert", None, 400),
            ("/api/v1/backups/nosuch/restore", {"name": "r9"}, 404),
            ("/api/v1/vms/w/backups", {"keep": 0}, 400),
            ("/api/v1/images", {"file": "rel/path", "name": "i"}, 400)):
        status, reply = st.http("POST", path, body)
        assert status == code and isinstance(reply, dict) and \
            reply.get("error"), (path, status, reply)
    # Nothing half-created by any refusal.
    assert st.vm_names() == vms
    assert [i["name"] for i in st.cli("image", "list", json=True)] == []


def test_images_templates_and_clones(st, tmp_path):
    raw = tmp_path / "base.img"
    with open(raw, "wb") as f:
        f.write(b"tick 4242\n".ljust(512, b"\0"))
        f.truncate(48 << 20)
    st.cli("image", "import", str(raw), "--name", "base")
    img = {i["name"]: i for i in st.cli("image", "list", json=True)}["base"]
    assert img["state"] == "ready" and img["virtual_size"] == 48 << 20
    assert img["source_format"] == "raw"
    rc, _, err = st.cli("image", "import", str(raw), "--name", "base",
                        check=False)
    assert rc == 1 and "already exists" in err
    # A VM on the image is a linked clone of it, at least as large.
    st.cli("vm", "create", "t1", "--cpus", 1, "--memory", 64, "--image",
           "base", "--disk", 64, "--storage", "local")
    p = disk_path(st, "t1")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U",
                                      "--output=json", p], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["backing-filename"] == img["file"]
    assert info["virtual-size"] == 64 << 20
    assert read_tick(p) == 4242
    rc, _, err = st.cli("image", "delete", "base", check=False)
    assert rc == 1 and "base of vm" in err
    # Template, then linked and full clones of it.
    st.cli("vm", "template", "t1")
    st.cli("vm", "clone", "t1", "lc", "--linked")
    st.cli("vm", "clone", "t1", "fc")
    lp, fp = disk_path(st, "lc"), disk_path(st, "fc")
    linfo = json.loads(subprocess.run(["qemu-img", "info", "-U",
                                       "--output=json", lp], check=True,
                                      capture_output=True, text=True).stdout)
    finfo = json.loads(subprocess.run(["qemu-img", "info", "-U",
                                       "--output=json", fp], check=True,
                                      capture_output=True, text=True).stdout)
    assert linfo["backing-filename"] == p
    assert "backing-filename" not in finfo, "a full clone stands alone"
    assert read_tick(lp) == 4242 and read_tick(fp) == 4242
    # The template's disks are the clones' base: it stays as it is.
    for args, text in ((("vm", "start", "t1"), "is a template"),
                       (("vm", "delete", "t1"), 'linked clone "lc"'),
                       (("snapshot", "create", "t1", "s"), "is a template"),
                       (("disk", "resize", "t1", "disk0", "--size", 128),
                        "is a template")):
        rc, _, err = st.cli(*args, check=False)
        assert rc == 1 and text in err, (args, rc, err)
    for n in ("lc", "fc"):
        st.cli("vm", "delete", n)


def test_snapshot_out_of_space_leaves_vm_and_chain(st, guest):
    if st.small is None:
        pytest.skip("needs root to mount a small tmpfs")
    st.cli("vm", "create", "ws", "--cpus", 1, "--memory", 128, "--disk", 16,
           "--storage", "small", "--kernel", guest.kernel, "--initrd",
           guest.initrd, "--cmdline", "console=ttyS0")
    st.cli("vm", "start", "ws")
    st.wait_serial("ws", "cvirt-guest: init reached", 60)
    uuid = st.vm("ws")["uuid"]
    vdir = os.path.join(st.small, "vms", uuid)
    files = sorted(os.listdir(vdir))
    disks = st.vm("ws")["disks"]
    filler = os.path.join(st.small, "filler")
    p = subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=1M",
                        "count=100"], capture_output=True, text=True)
    assert p.returncode == 1 and "No space left on device" in p.stderr, \
        "the filler did not fill %s: %s" % (st.small, p.stderr)
    try:
        rc, _, err = st.cli("snapshot", "create", "ws", "full1", check=False)
        assert rc == 1 and "No space left on device" in err, (rc, err)
        assert st.vm("ws")["state"] == "running"
        assert st.vm("ws")["disks"] == disks, "the chain did not change"
        assert sorted(os.listdir(vdir)) == files, "no overlay left behind"
        assert st.cli("snapshot", "list", "ws", json=True) == []
    finally:
        os.unlink(filler)
    st.cli("snapshot", "create", "ws", "full1")
    assert st.vm("ws")["disks"][0]["file"] != disks[0]["file"]
    st.cli("vm", "delete", "ws", "--force")


def test_missing_and_read_only_domains_are_reported_per_host(
        make_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M,ro", "tmpfs",
                    str(ro)], check=True)
    try:
        cl = make_cluster(agent_extra={"h1": [
            "--storage", "ro=" + str(ro),
            "--storage", "gone=" + str(ro / "nosuch")]})
        doms = {d["name"]: d for d in cl.cli("storage", "list", json=True)}
        assert doms["local"]["hosts"][0]["ok"] is True
        for n, text in (("ro", "not writable"), ("gone", "missing")):
            h = doms[n]["hosts"][0]
            assert h["host"] == "h1" and h["ok"] is False, doms[n]
            assert text in h["error"], h
        rc, _, err = cl.cli("vm", "create", "x", "--cpus", 1, "--memory", 64,
                            "--disk", 1, "--storage", "ro", check=False)
        assert rc == 1 and "storage ro" in err, err
        assert cl.vm_names() == []
        # The table marks the host of each unusable domain.
        rows = {ln.split()[0]: ln for ln in
                cl.cli("storage", "list")[1].splitlines()[1:]}
        assert re.match(r"local\s+\S+\s+h1\s", rows["local"]), rows
        for n in ("ro", "gone"):
            assert re.match(r"%s\s+\S+\s+h1\(not ok\)\s" % n, rows[n]), rows
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_disks_are_added_and_grown(st):
    def vsize(vm, i):
        v = st.vm(vm)
        p = os.path.join(st.storage, "vms", v["uuid"], v["disks"][i]["file"])
        return json.loads(subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", p], check=True,
            capture_output=True, text=True).stdout)["virtual-size"]

    assert st.vm("wr")["state"] == "stopped"
    st.cli("disk", "add", "wr", "--size", 32)
    disks = st.cli("disk", "list", "wr", json=True)
    assert [d["name"] for d in disks] == ["disk0", "disk1"]
    assert vsize("wr", 1) == 32 << 20
    st.cli("disk", "resize", "wr", "disk1", "--size", 48)
    assert vsize("wr", 1) == 48 << 20
    assert st.cli("disk", "list", "wr", json=True)[1]["size_mib"] == 48
    # A running VM's disk grows through QEMU, under the guest.
    assert st.vm("w")["state"] == "running"
    st.cli("disk", "resize", "w", "disk0", "--size", 300)
    assert vsize("w", 0) == 300 << 20
    assert st.vm("w")["state"] == "running"
    for args, text in ((("disk", "resize", "w", "disk0", "--size", 100),
                        "can only grow"),
                       (("disk", "resize", "w", "disk9", "--size", 400),
                        'disk "disk9" of vm "w" not found'),
                       (("disk", "add", "w", "--size", 10),
                        "stop it to add a disk"),
                       (("disk", "add", "wr", "--size", 0), "--size"),
                       (("disk", "add", "nosuch", "--size", 10),
                        'vm "nosuch" not found')):
        rc, _, err = st.cli(*args, check=False)
        assert rc == 1 and text in err, (args, rc, err)
    # A size that does not grow the disk is refused before a task is queued.
    last = st.http("GET", "/api/v1/tasks?limit=1")[1][0]["id"]
    for mib in (300, 1):
        status, body = st.http("POST", "/api/v1/vms/w/disks/disk0/resize",
                               body={"size_mib": mib})
        assert status == 400 and "can only grow" in body["error"], body
    assert st.http("GET", "/api/v1/tasks?limit=1")[1][0]["id"] == last
    # A clone of a VM busy with a task is refused at once (it was 202, then
    # a task failing with "busy or gone").
    status, task = st.http("POST", "/api/v1/vms/wr/backups", body={})
    assert status == 202, task
    status, body = st.http("POST", "/api/v1/vms/wr/clone",
                           body={"name": "wr-busy"})
    assert status == 409 and "busy" in body["error"], (status, body)
    done = st.cli("task", "wait", task["id"], json=True)
    assert "wr-busy" not in st.vm_names()
    st.cli("backup", "delete", done["result"]["id"])
