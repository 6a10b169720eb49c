"""A named user-mode network (docs/network.md): a real guest on `--type user
--subnet 10.0.5.0/24` gets slirp's first DHCP address of that subnet and
reaches its gateway, on a host whose agent cannot make host networks
(no CAP_NET_ADMIN): nothing needs realizing there. A NIC hot-plugged on
such a network reaches the guest too, and a live migration keeps both
subnets (the destination builds its netdevs from the same spec)."""

import re
import shutil

import pytest

import cvirt
from guestcheck import MEMCHECK, assert_guest_intact

# sqlite_only: user-mode networking is QEMU's and the agent's; the
# database plays no part, so the PostgreSQL pass would run it again
# unchanged.
pytestmark = pytest.mark.sqlite_only


class NoNetAdminCluster(cvirt.Cluster):
    """Agents without CAP_NET_ADMIN: every host network "needs root"."""

    def wrap(self, role, argv):
        if role in ("manager", "client"):
            return argv
        return ["setpriv", "--bounding-set", "-net_admin", "--inh-caps",
                "-net_admin"] + argv


@pytest.fixture
def cluster(request, tmp_path, cvirt_bin):
    cl = NoNetAdminCluster(logdir=str(tmp_path))
    request.addfinalizer(cl.cleanup)
    cl.start(hosts=("h1", "h2"))
    return cl



def migrate_to_h2(cl):
    """Migrates u1 (on h1) to h2 once; returns the VM, running there with
    its guest whole (guestcheck.py: no panic, its memory checker still
    finds every write). No second try: a migration that breaks the guest
    fails the test."""
    cl.cli("vm", "migrate", "u1", "--to", "h2")
    vm = cl.vm("u1")
    assert vm["host"] == "h2" and vm["state"] == "running", \
        (vm, cl.serial("u1")[-3000:])
    assert cvirt.qemu_pid(vm["uuid"]) is not None, cl.serial("u1")[-3000:]
    assert_guest_intact(cl, "u1", ticks=False)
    return vm


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_guest_on_user_network(cluster, guest):
    cl = cluster
    cl.cli("network", "create", "lab", "--type", "user", "--subnet",
           "10.0.5.0/24")
    cl.cli("network", "create", "lab2", "--type", "user", "--subnet",
           "10.0.6.0/24")
    # A host network for contrast: this host cannot realize it.
    cl.cli("network", "create", "hostnet", "--type", "nat", "--subnet",
           "10.71.0.0/24")
    cvirt.wait_for(lambda: "needs root" in cl.http(
        "GET", "/api/v1/networks/hostnet")[1]["hosts"].get("h1", ""), 30,
        "h1 to report hostnet")
    assert cl.http("GET", "/api/v1/networks/lab")[1]["hosts"] == \
        {"h1": "ok", "h2": "ok"}
    cl.cli("vm", "create", "nat1", "--cpus", 1, "--memory", 128,
           "--net", "hostnet")
    rc, _, err = cl.cli("vm", "start", "nat1", check=False)
    assert rc == 1 and "needs root" in err, err

    cl.cli("vm", "create", "u1", "--cpus", 1, "--memory", 128, "--net",
           "lab", "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0 cvirt.net=dhcp cvirt.ping=10.0.5.2 " +
           MEMCHECK)
    cl.cli("vm", "start", "u1", "--host", "h1")
    vm = cl.vm("u1")
    assert vm["host"] == "h1" and vm["nics"][0]["ip"] is None
    argv = cvirt.proc_cmdline(cvirt.qemu_pid(vm["uuid"]))
    assert "user,id=net0,net=10.0.5.0/24" in argv, argv
    # Slirp's DHCP: the subnet's 15th address; its gateway is the 2nd.
    # (The guest prints its address once udhcpc returns, which may come
    # after the first ping: wait for both.)
    cl.wait_serial("u1", "cvirt-guest: ping 10.0.5.2 ok", 30)
    text = cl.wait_serial("u1", "cvirt-guest: ip ", 30)
    assert re.findall(r"cvirt-guest: ip (\S+)", text) == ["10.0.5.15/24"]

    # Hot-plug: QEMU takes netdev_add with the other subnet.
    st, out = cl.http("POST", "/api/v1/vms/u1/nics", {"network": "lab2"})
    assert st == 201, out
    nic = out["nics"][-1]
    assert nic["type"] == "user" and nic["subnet"] == "10.0.6.0/24"
    cl.wait_serial("u1", "cvirt-guest: nic eth1 %s up" % nic["mac"], 30)

    # A live migration: the destination builds the same netdevs from the
    # spec (the stamped subnets), and the guest's slirp goes on answering.
    vm = migrate_to_h2(cl)
    argv = cvirt.proc_cmdline(cvirt.qemu_pid(vm["uuid"]))
    assert "user,id=net0,net=10.0.5.0/24" in argv, argv
    assert "user,id=net1,net=10.0.6.0/24" in argv, argv
    n = len(re.findall(r"cvirt-guest: ping 10\.0\.5\.2 ok",
                       cl.serial("u1")))
    cl.wait_serial("u1", "cvirt-guest: ping 10.0.5.2 ok", 30, count=n + 2)
    cl.cli("vm", "stop", "u1", "--force")
