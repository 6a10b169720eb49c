"""`vm migrate --downtime-ms N` (docs/cluster.md, "Live migration"): the
value is validated (1..60000, by the CLI and by the API), and it reaches
the source QEMU as its `downtime-limit`.

QEMU stops iterating and switches over once what is left to send fits in
`downtime-limit` at the bandwidth it measures. With `--bandwidth 4` (MiB/s)
and the default limit (10 ms) it may switch over only when about 40 KiB
are left, so it first sends the guest's memory at 4 MiB/s: seconds. With
`--downtime-ms 60000` everything left (128 MiB of guest RAM at most) fits
at once: QEMU stops the guest almost at once and sends the rest at full
speed (the bandwidth limit does not apply to the switch-over). So a short
`total_ms` for many more bytes than 4 MiB/s could carry in that time shows
that QEMU got the limit. A light guest (cvirt.tick=1), as QEMU 7.2's TCG
migration can corrupt memory-busy ones (docs/cluster.md)."""

import pytest

from cvirt import boot_ids, qemu_pids, ticks, wait_for
from netns import NetnsCluster

pytestmark = pytest.mark.shared_storage

BANDWIDTH_MIBS = 4


@pytest.fixture(scope="module")
def dc(request, guest, cvirt_bin):
    cl = NetnsCluster(("h1", "h2"), bin=cvirt_bin)
    request.addfinalizer(cl.stop)
    cl.start(hosts=("h1", "h2"))
    cl.cli("vm", "create", "d1", "--cpus", 1, "--memory", 128,
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0 cvirt.tick=1")
    cl.cli("vm", "start", "d1", "--host", "h1")
    cl.wait_serial("d1", "cvirt-guest: tick 2", 90)
    return cl


def test_downtime_ms_is_validated(dc):
    """Guards src/cli/cli_cluster.c cli_vm_migrate() (--downtime-ms parsed
    as 1..60000) and src/manager/api_vm.c api_vm_migrate_params()
    (downtime_ms an integer in 1..60000): a refusal starts no task and
    leaves the VM where it is."""
    tasks = len(dc.cli("task", "list", json=True))
    for bad in ("0", "60001", "-5", "abc", "10x"):
        rc, out, err = dc.cli("vm", "migrate", "d1", "--to", "h2",
                              "--downtime-ms", bad, check=False)
        # The CLI refuses it itself (exit 1, one line), before any call.
        assert (rc, out, err) == (1, "", 'cvirt: --downtime-ms must be a '
                                  'whole number from 1 to 60000, not "%s"\n'
                                  % bad), (bad, rc, out, err)
    for bad in (0, 60001, -1, "50", 1.5, True):
        status, body = dc.http("POST", "/api/v1/vms/d1/migrate",
                               {"to": "h2", "downtime_ms": bad})
        assert status == 400 and "downtime_ms" in body.get("error", ""), \
            (bad, status, body)
    assert len(dc.cli("task", "list", json=True)) == tasks, \
        "a refused migration started a task"
    v = dc.vm("d1")
    assert v["state"] == "running" and v["host"] == "h1", v


def test_downtime_ms_reaches_qemu(dc):
    """Guards the path of --downtime-ms to QEMU: src/cli/cli_cluster.c
    puts downtime_ms in the request, src/manager/migrate.c mig_one()
    passes the task's downtime_ms (over the cluster's
    migration_downtime_ms) to the source agent, and src/agent/migrate.c
    mig_start() sets it as QEMU's downtime-limit
    (migrate-set-parameters)."""
    uuid = dc.vm("d1")["uuid"]
    res = dc.cli("vm", "migrate", "d1", "--to", "h2", "--bandwidth",
                 BANDWIDTH_MIBS, "--downtime-ms", 60000, json=True,
                 timeout=120)
    assert res["state"] == "succeeded", res
    r = res["result"]
    assert r["to"] == "h2" and r["transferred_bytes"] > 0, r
    # What 4 MiB/s would have needed for the bytes QEMU sent, in ms.
    at_bandwidth_ms = 1000 * r["transferred_bytes"] / (BANDWIDTH_MIBS << 20)
    assert at_bandwidth_ms > 2000, \
        "too few bytes to tell (the guest's RAM is mostly zero?): %r" % r
    assert r["total_ms"] < at_bandwidth_ms / 4, \
        "QEMU iterated at the bandwidth limit: it did not get the " \
        "60000 ms downtime limit (%r)" % r
    # The pause was the switch-over of nearly everything: longer than the
    # default limit of 10 ms would have allowed.
    assert r["downtime_ms"] > 10, r
    # And the guest came through it: the same boot, ticking on h2.
    after = dc.vm("d1")
    assert after["state"] == "running" and after["host"] == "h2", after
    wait_for(lambda: len(qemu_pids(uuid)) == 1, 15, "one QEMU of d1")
    n = ticks(dc.serial("d1"))[-1]
    wait_for(lambda: ticks(dc.serial("d1"))[-1] >= n + 2, 20,
             "d1's ticks to go on")
    serial = dc.serial("d1")
    assert len(boot_ids(serial)) == 1, "the guest rebooted"
    assert "panic" not in serial.lower(), serial[-3000:]
