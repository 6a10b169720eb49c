"""A grown disk is seen inside the guest (docs/storage.md, "Disks": `disk
resize` grows a disk through QMP `block_resize` while the VM runs, with
`qemu-img resize` otherwise). The guest's own kernel must report the new
size of its virtio disk, and the guest must be able to write at its end:
a file grown under QEMU's feet, or a spec that only says so, would not
do that."""

import os
import re
import subprocess

import pytest

import cvirt

pytestmark = pytest.mark.shared_storage

SECTOR = 512


@pytest.fixture(scope="module")
def gd(request, tmp_path_factory, cvirt_bin, guest):
    cl = cvirt.Cluster(logdir=str(tmp_path_factory.mktemp("logs")))
    request.addfinalizer(cl.cleanup)
    cl.start()
    cl.cli("vm", "create", "g", "--cpus", 1, "--memory", 128, "--disk", 16,
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0")
    return cl


def in_guest(cl, name, command, marker, timeout=30):
    """Types command on the guest's serial shell; waits until its output
    holds `marker=VALUE` and returns VALUE. The command must print the
    marker with shell arithmetic in it (`$((1))`) so that the echo of the
    typed line never matches."""
    n = cl.serial(name).count(marker + "=")
    cl.cli("vm", "console", name, input=command + "\r", timeout=30)
    s = cl.wait_serial(name, marker + "=", timeout, count=n + 1)
    return re.findall(re.escape(marker) + r"=(\S+)", s)[n]


def guest_sectors(cl, name, tag):
    """The size of /dev/vda as the guest's kernel has it, in sectors."""
    return int(in_guest(cl, name, "echo cvirt-%s$((1))=$(cat "
                        "/sys/block/vda/size)" % tag, "cvirt-%s1" % tag))


def guest_writes_last_sector(cl, name, sectors, text):
    """The guest writes text into its disk's last sector (O_DIRECT, then
    a flush, so QEMU has written it to the image) and says whether dd
    worked."""
    rc = in_guest(cl, name, "echo %s | dd of=/dev/vda bs=%d seek=%d "
                  "conv=sync,notrunc,fsync oflag=direct 2>/dev/null; "
                  "echo cvirt-dd$((1))=$?" % (text, SECTOR, sectors - 1),
                  "cvirt-dd1")
    assert rc == "0", "the guest could not write its last sector"


def host_reads(path, offset, length):
    out = subprocess.run(["qemu-io", "-r", "-U", "-f", "qcow2", "-c",
                          "read -v %d %d" % (offset, length), path],
                         check=True, capture_output=True, text=True).stdout
    return bytes(int(h, 16) for line in out.splitlines()
                 if re.match(r"^[0-9a-f]{8}:  ", line)
                 for h in line[11:58].split())


def test_running_guest_sees_its_disk_grow(gd):
    """Guards src/agent/diskops.c, disk_resize(): for a running VM it
    finds the disk's block node (query-block, qdev
    /machine/peripheral/virtio-diskN/) and sends QMP block_resize, which
    makes QEMU tell the guest through virtio's config change."""
    cl = gd
    cl.cli("vm", "start", "g")
    cl.wait_serial("g", "cvirt-guest: boot-id", 60)
    assert guest_sectors(cl, "g", "a") == (16 << 20) // SECTOR
    cl.cli("disk", "resize", "g", "disk0", "--size", 48)
    assert cl.vm("g")["state"] == "running"
    sectors = (48 << 20) // SECTOR
    # The guest's kernel saw the capacity change by itself...
    cl.wait_serial("g", "[vda] new size: %d 512-byte logical blocks"
                   % sectors, 20)
    # ... its block device has the new size, and the new end is usable.
    assert guest_sectors(cl, "g", "b") == sectors
    guest_writes_last_sector(cl, "g", sectors, "cvirt-end-48")
    v = cl.vm("g")
    path = os.path.join(cl.storage, "vms", v["uuid"], v["disks"][0]["file"])
    assert host_reads(path, (sectors - 1) * SECTOR, 16) == \
        b"cvirt-end-48\n\0\0\0"
    assert cl.cli("disk", "list", "g", json=True)[0]["size_mib"] == 48


def test_stopped_vm_boots_with_the_grown_disk(gd):
    """Guards src/agent/diskops.c, disk_resize(): for a stopped VM,
    qemu-img resize of the disk's active layer (the next boot's guest
    sees the size from the start)."""
    cl = gd
    if cl.vm("g")["state"] != "stopped":
        cl.cli("vm", "stop", "g", "--force")
    cl.cli("disk", "resize", "g", "disk0", "--size", 64)
    cl.cli("vm", "start", "g")
    n = cl.serial("g").count("cvirt-guest: boot-id")
    cl.wait_serial("g", "cvirt-guest: boot-id", 60, count=n + 1)
    sectors = (64 << 20) // SECTOR
    assert guest_sectors(cl, "g", "c") == sectors
    guest_writes_last_sector(cl, "g", sectors, "cvirt-end-64")
    cl.cli("vm", "stop", "g", "--force")
