"""Full virtualization boot paths: a VM boots from a BIOS-bootable disk image
(SeaBIOS -> SYSLINUX -> kernel, no --kernel given), and a cloud-init NoCloud
seed (hostname, ssh key, user-data) reaches the guest; an ISO attaches as a
CD-ROM.
"""

import json
import os
import shutil
import subprocess

import cvirt
from cvirt import qemu_pid

REPO = cvirt.REPO
USER_DATA = "#cloud-config\nruncmd:\n  - echo runcmd-marker-42\n"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000 t@x"


def test_bios_boot_from_image_with_cloud_init(cluster, guest, tmp_path):
    cl = cluster
    img = tmp_path / "boot.img"
    subprocess.run([os.path.join(REPO, "tests", "guest", "build-bootdisk.sh"),
                    str(img), "console=ttyS0"], check=True)
    cl.cli("image", "import", str(img), "--name", "bootdisk")
    (tmp_path / "ud.yaml").write_text(USER_DATA)
    (tmp_path / "key.pub").write_text(KEY + "\n")
    cl.cli("vm", "create", "b1", "--cpus", 1, "--memory", 192, "--image",
           "bootdisk", "--hostname", "web-01", "--user-data",
           str(tmp_path / "ud.yaml"), "--ssh-key", str(tmp_path / "key.pub"))
    v = cl.vm("b1")
    # The image's size: no --disk asked for more.
    vsize = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", str(img)], check=True,
        capture_output=True, text=True).stdout)["virtual-size"]
    assert v["kernel"] is None and \
        v["disks"][0]["size_mib"] == -(-vsize >> 20), (v["disks"], vsize)
    cl.cli("vm", "start", "b1")
    cl.wait_serial("b1", "cvirt-guest: cloud-init hostname=", 90)
    s = cl.wait_serial("b1", "runcmd-marker-42", 10)
    # The firmware's boot loader ran: no direct kernel boot.
    assert "SYSLINUX" in s
    argv = cvirt.proc_cmdline(qemu_pid(v["uuid"]))
    assert "-kernel" not in argv
    assert "cvirt-guest: cloud-init hostname=web-01 ssh-keys=1" in s, s[-2000:]
    assert "runcmd-marker-42" in s
    # The guest really took the hostname.
    out = cl.cli("vm", "console", "b1", input="hostname\r", timeout=30)[1]
    assert "web-01" in out
    cl.cli("vm", "stop", "b1", "--force")


def test_boot_media_are_validated(cluster, tmp_path):
    cl = cluster
    before = set(cl.vm_names())
    iso = tmp_path / "x.iso"
    d = tmp_path / "isodir"
    d.mkdir()
    (d / "README").write_text("cvirt test cd\n")
    subprocess.run(["genisoimage", "-quiet", "-V", "CVIRTCD", "-o", str(iso),
                    str(d)], check=True)
    # The client's ISO: uploaded into isos/ first (content-addressed).
    cl.cli("vm", "create", "c1", "--cpus", 1, "--memory", 64, "--disk", 16,
           "--cdrom", str(iso))
    assert cl.vm("c1")["state"] == "stopped"
    spec = json.load(open(os.path.join(cl.storage, "vms",
                                       cl.vm("c1")["uuid"], "vm.json")))
    assert spec["cdrom"].startswith(os.path.join(cl.storage, "isos",
                                                 "x.iso-")), spec
    cl.cli("vm", "start", "c1")
    argv = cvirt.proc_cmdline(qemu_pid(cl.vm("c1")["uuid"]))
    assert any(a.startswith("ide-cd,") for a in argv), argv
    # QEMU got the open file, never the path.
    assert any("/dev/fdset/" in a for a in argv), argv
    assert not any(spec["cdrom"] in a for a in argv), argv
    cl.cli("vm", "stop", "c1", "--force")

    def refused(status_body, text):
        status, body = status_body
        assert status == 400 and text in body.get("error", ""), (status, body)

    base = {"name": "c2", "cpus": 1, "memory_mib": 64}
    refused(cl.http("POST", "/api/v1/vms", dict(base, cdrom="rel.iso")),
            "cdrom")
    refused(cl.http("POST", "/api/v1/vms", dict(base, cloud_init={"x": 1})),
            "unknown cloud_init field")
    refused(cl.http("POST", "/api/v1/vms", dict(
        base, cloud_init={"hostname": "bad_name"})), "hostname")
    refused(cl.http("POST", "/api/v1/vms", dict(
        base, cloud_init={"ssh_keys": ["ssh-rsa \"AAA\nx"]})), "ssh key")
    rc, _, err = cl.cli("vm", "create", "c3", "--cpus", 1, "--memory", 64,
                        "--ssh-key", "/nonexistent.pub", check=False)
    assert rc == 1 and "--ssh-key /nonexistent.pub" in err
    # A client ISO that is not there: the client says so.
    rc, _, err = cl.cli("vm", "create", "c4", "--cpus", 1, "--memory", 64,
                        "--cdrom", "/nonexistent/x.iso", check=False)
    assert rc == 1 and "--cdrom /nonexistent/x.iso: No such file" in err
    # An ISO in isos/ that vanished since is reported when the VM starts,
    # in the one text.
    gone = os.path.join(cl.storage, "isos", "gone.iso")
    shutil.copy(iso, gone)
    cl.cli("vm", "create", "c4", "--cpus", 1, "--memory", 64, "--cdrom",
           gone)
    os.unlink(gone)
    rc, _, err = cl.cli("vm", "start", "c4", check=False)
    assert rc == 1 and "cdrom %s: not a file in a media area (isos/ of a " \
        "storage domain)" % gone in err, err
    assert set(cl.vm_names()) - before == {"c1", "c4"}


def test_uefi_firmware(cluster, guest):
    cl = cluster
    rc, _, err = cl.cli("vm", "create", "u0", "--cpus", 1, "--memory", 64,
                        "--firmware", "coreboot", check=False)
    assert rc == 1 and "--firmware must be bios or uefi" in err
    status, body = cl.http("POST", "/api/v1/vms", {
        "name": "u0", "cpus": 1, "memory_mib": 64, "firmware": "x"})
    assert status == 400 and "firmware" in body["error"]
    # OVMF boots the kernel it is given (its own direct-boot loader: a
    # bzImage, by its EFI stub).
    cl.cli("vm", "create", "u1", "--cpus", 1, "--memory", 256, "--disk", 16,
           "--firmware", "uefi", "--kernel", guest.bzimage, "--initrd",
           guest.initrd, "--cmdline", "console=ttyS0")
    cl.cli("vm", "start", "u1")
    v = cl.vm("u1")
    argv = cvirt.proc_cmdline(qemu_pid(v["uuid"]))
    code = [a.split("file=", 1)[1] for a in argv
            if a.startswith("if=pflash,format=raw,unit=0,readonly=on")]
    assert len(code) == 1 and "OVMF_CODE" in code[0], argv
    vars_fd = os.path.join(cl.storage, "vms", v["uuid"], "uefi-vars.fd")
    assert any(a.endswith("file=" + vars_fd) for a in argv), argv
    # The VM's NVRAM is a copy of the template that goes with the code.
    template = code[0].replace("OVMF_CODE", "OVMF_VARS")
    assert os.path.getsize(vars_fd) == os.path.getsize(template), template
    cl.wait_serial("u1", "cvirt-guest: init reached", 120)
    cl.cli("vm", "stop", "u1", "--force")
