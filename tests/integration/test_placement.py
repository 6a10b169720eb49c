"""Placement (docs/cluster.md, "Placement"): the memory and vCPU filters
scale with the cluster's `mem_overcommit_pct` and `cpu_overcommit_pct`,
and an `--affinity GROUP` keeps a group's VMs on the host where it runs,
over the balanced-load choice, and refuses with the reason when that host
is full. Two hosts (h1, h2) offering 512 MiB each (`agent --memory`); the
VMs are real QEMUs (SeaBIOS, no boot disk: placement only needs them
running, and an idle firmware costs no CPU)."""

import pytest

import cvirt

HOST_MIB = 512


@pytest.fixture(scope="module")
def pc(request, tmp_path_factory, cvirt_bin):
    cl = cvirt.Cluster(logdir=str(tmp_path_factory.mktemp("logs")))
    request.addfinalizer(cl.cleanup)
    mem = ["--memory", str(HOST_MIB)]
    cl.start(hosts=("h1", "h2"), agent_extra={"h1": mem, "h2": mem})
    return cl


@pytest.fixture
def settings(pc):
    """After a test, whatever its outcome: deletes the VMs it made and puts
    the overcommit settings back to their defaults."""
    before = set(pc.vm_names())
    yield
    for n in sorted(set(pc.vm_names()) - before):
        pc.cli("vm", "delete", n, "--force")
    pc.cli("cluster", "set", "mem_overcommit_pct=100",
           "cpu_overcommit_pct=400")


def create(cl, name, memory=64, cpus=1, *extra):
    cl.cli("vm", "create", name, "--cpus", cpus, "--memory", memory, *extra)


def start(cl, name, host=None):
    args = ["vm", "start", name] + (["--host", host] if host else [])
    cl.cli(*args)
    v = cl.vm(name)
    assert v["state"] == "running", v
    return v["host"]


def refused(cl, name, host=None):
    """Starting name fails: returns the one-line error; the VM stays
    stopped and no QEMU of it runs."""
    args = ["vm", "start", name] + (["--host", host] if host else [])
    rc, _, err = cl.cli(*args, check=False)
    # 1: the command failed (2 would be a usage error: src/cli/cli_int.h).
    assert rc == 1 and err.startswith("cvirt: ") and \
        len(err.strip().splitlines()) == 1, (rc, err)
    v = cl.vm(name)
    assert v["state"] == "stopped" and v["host"] is None, v
    assert not cvirt.qemu_pids(v["uuid"])
    return err.strip()


def test_memory_filter_scales_with_mem_overcommit_pct(pc, settings):
    """Guards src/manager/sched.c, sched_filter_cheap(): `cap =
    h->memory_mib * cs->mem_overcommit_pct / 100` and the memory test
    against it (placed VMs' memory + this VM's <= host memory x pct)."""
    cl = pc
    assert cl.cli("cluster", "show", json=True)["mem_overcommit_pct"] == 100
    create(cl, "m1", 384)
    create(cl, "m2", 256)
    create(cl, "m3", 256)
    assert start(cl, "m1", "h1") == "h1"
    err = refused(cl, "m2", "h1")
    assert "h1: not enough memory (need 256 MiB, free 128 MiB)" in err, err
    # 150 %: h1 offers 768 MiB, 384 of them free.
    cl.cli("cluster", "set", "mem_overcommit_pct=150")
    assert start(cl, "m2", "h1") == "h1"
    err = refused(cl, "m3", "h1")
    assert "h1: not enough memory (need 256 MiB, free 128 MiB)" in err, err
    # Back to 100 %: what runs stays, nothing more fits on h1 (640 of 512
    # MiB placed), and a VM goes to h2 instead.
    cl.cli("cluster", "set", "mem_overcommit_pct=100")
    err = refused(cl, "m3", "h1")
    assert "h1: not enough memory (need 256 MiB, free -128 MiB)" in err, err
    assert start(cl, "m3") == "h2"
    for n in ("m1", "m2"):
        assert cl.vm(n)["state"] == "running" and cl.vm(n)["host"] == "h1"


def test_vcpu_filter_scales_with_cpu_overcommit_pct(pc, settings):
    """Guards src/manager/sched.c, sched_filter_cheap(): `cpucap =
    h->cpus * cs->cpu_overcommit_pct / 100` and the vCPU test against it
    (placed vCPUs + this VM's <= host CPUs x pct)."""
    cl = pc
    assert cl.cli("cluster", "show", json=True)["cpu_overcommit_pct"] == 400
    ncpu = cl.cli("host", "show", "h1", json=True)["cpus"]
    assert ncpu >= 1
    # 100 %: h1 offers as many vCPUs as it has CPUs.
    cl.cli("cluster", "set", "cpu_overcommit_pct=100")
    create(cl, "c1", 64, ncpu)
    create(cl, "c2", 64, 1)
    assert start(cl, "c1", "h1") == "h1"
    err = refused(cl, "c2", "h1")
    assert "h1: not enough vCPUs (need 1, free 0)" in err, err
    # 200 %: twice as many.
    cl.cli("cluster", "set", "cpu_overcommit_pct=200")
    assert start(cl, "c2", "h1") == "h1"
    create(cl, "c3", 64, ncpu)
    err = refused(cl, "c3", "h1")
    assert "h1: not enough vCPUs (need %d, free %d)" % (ncpu, ncpu - 1) \
        in err, err


def test_affinity_group_stays_together(pc, settings):
    """Guards src/manager/sched.c, sched_filter(): the affinity test (a
    host passes when the VM's --affinity group runs there, or nowhere
    yet), which overrides the balanced-load choice of sched_pick_one(),
    and sched_tally_row()'s sched_group_add() that records where a
    group runs."""
    cl = pc
    create(cl, "x1", 256)
    create(cl, "a1", 64, 1, "--affinity", "db")
    create(cl, "a2", 64, 1, "--affinity", "db")
    create(cl, "a3", 256, 1, "--affinity", "db")
    assert cl.vm("a1")["affinity"] == "db"
    assert start(cl, "x1", "h1") == "h1"
    assert start(cl, "a1", "h1") == "h1"
    # Balanced load alone would pick h2 (empty): the group is on h1.
    assert start(cl, "a2") == "h1"
    # h1 has 128 MiB left: a3 cannot join its group, and h2 may not take
    # it while the group runs on h1.
    err = refused(cl, "a3")
    assert "no host can run vm a3: " in err, err
    assert "h1: not enough memory (need 256 MiB, free 128 MiB)" in err, err
    assert "h2: affinity group db runs elsewhere" in err, err
    # Once the group runs nowhere, its next VM goes where the load says.
    cl.cli("vm", "stop", "a1", "--force")
    cl.cli("vm", "stop", "a2", "--force")
    assert start(cl, "a3") == "h2"
    # ... and the group follows it there.
    assert start(cl, "a1") == "h2"
