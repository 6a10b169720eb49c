"""A migration destination that cannot load the VM's state (docs/cluster.md,
"Live migration", failure handling: "A destination that fails to load the
state exits; the source resumes"). Two hosts in network namespaces; h2's
agent runs QEMU through a wrapper that, for an incoming migration only,
changes what QEMU is asked to build, as a destination host with another
QEMU or machine setup would:

- `ram`: more guest RAM than the source has; QEMU refuses the first
  section of the stream ("Size mismatch: pc.ram"), while the source still
  runs the guest;
- `device`: no serial port; QEMU refuses the device state that comes last,
  after the source has stopped the guest for the switch-over and sent
  everything.

Either way the task must fail with one clear line, the VM must stay on h1
and run on (the same boot, its ticks going on), and no QEMU of it may be
left on h2. Light guests only (cvirt.tick=1): QEMU 7.2's TCG migration
can corrupt memory-busy ones (docs/cluster.md)."""

import os
import stat

import pytest

from cvirt import boot_ids, qemu_pids, ticks, wait_for
from netns import NetnsCluster

pytestmark = pytest.mark.shared_storage


WRAPPER = """#!/bin/sh
# QEMU for host h2 of test_migration_faults.py: with -incoming, what
# %(mode)s says (ram: 64 MiB more RAM; device: no serial port).
mode=$(cat %(mode)s 2>/dev/null)
case " $* " in *" -incoming "*) ;; *) mode= ;; esac
prev=
drop=0
for a do
	shift
	if [ "$drop" = 1 ]; then drop=0; prev=$a; continue; fi
	if [ "$mode" = ram ] && [ "$prev" = -m ]; then
		# -m MIB, or -m KIBk under TCG (docs/cluster.md)
		case $a in
		*k) a=$((${a%%k} + 65536))k ;;
		*) a=$((a + 64)) ;;
		esac
	fi
	if [ "$mode" = device ] && [ "$a" = -serial ]; then drop=1; prev=$a; continue; fi
	set -- "$@" "$a"
	prev=$a
done
exec qemu-system-x86_64 "$@"
"""


class FaultCluster(NetnsCluster):
    """A NetnsCluster whose agent on h2 runs QEMU through WRAPPER."""

    def __init__(self, hosts, **kw):
        super().__init__(hosts, **kw)
        self.mode_file = os.path.join(self.base, "h2-qemu-mode")
        self.wrapper = os.path.join(self.base, "h2-qemu")
        with open(self.wrapper, "w") as f:
            f.write(WRAPPER % {"mode": self.mode_file})
        os.chmod(self.wrapper, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP |
                 stat.S_IROTH | stat.S_IXOTH)
        self.set_mode("")

    def set_mode(self, mode):
        with open(self.mode_file, "w") as f:
            f.write(mode + "\n")

    def wrap(self, role, argv):
        if role == "h2":
            argv = ["env", "CVIRT_QEMU=" + self.wrapper] + list(argv)
        return super().wrap(role, argv)


@pytest.fixture(scope="module")
def fc(request, guest, cvirt_bin):
    cl = FaultCluster(("h1", "h2"), bin=cvirt_bin)
    request.addfinalizer(cl.stop)
    cl.start(hosts=("h1", "h2"))
    return cl


def boot(cl, guest, name):
    cl.cli("vm", "create", name, "--cpus", 1, "--memory", 128,
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0 cvirt.tick=1")
    cl.cli("vm", "start", name, "--host", "h1")
    cl.wait_serial(name, "cvirt-guest: tick 2", 90)
    return cl.vm(name)


def migration_refused(cl, guest, name, mode):
    """Boots name on h1, migrates it to h2 with the wrapper in mode, and
    checks what must hold after the refusal; returns the CLI's error and
    the failed task."""
    v = boot(cl, guest, name)
    uuid = v["uuid"]
    src_pid = set(qemu_pids(uuid))
    assert len(src_pid) == 1
    cl.set_mode(mode)
    try:
        rc, out, err = cl.cli("vm", "migrate", name, "--to", "h2",
                              check=False, timeout=120)
    finally:
        cl.set_mode("")
    assert rc == 1 and err.startswith("cvirt: ") and \
        len(err.strip().splitlines()) == 1, (rc, out, err)
    task = [t for t in cl.cli("task", "list", json=True)
            if t["kind"] == "vm.migrate" and t.get("vm") == name][0]
    assert task["state"] == "failed" and task["error"], task
    # The VM is on h1 and runs there: the same QEMU, the same boot.
    after = cl.wait_state(name, "running", 10)
    assert after["host"] == "h1", after
    wait_for(lambda: set(qemu_pids(uuid)) == src_pid, 15,
             "only the source QEMU of %s (h2's gone)" % name)
    n = ticks(cl.serial(name))[-1]
    wait_for(lambda: ticks(cl.serial(name))[-1] >= n + 3, 20,
             "%s's ticks to go on" % name)
    serial = cl.serial(name)
    assert len(boot_ids(serial)) == 1, "the guest rebooted"
    seq = ticks(serial)
    assert seq == list(range(1, len(seq) + 1)), "ticks out of order"
    assert "panic" not in serial.lower(), serial[-3000:]
    # h2 has nothing of it left that it would report.
    assert cl.cli("host", "show", "h2", json=True)["vms"] == 0
    cl.cli("vm", "delete", name, "--force")
    return err.strip(), task


def test_destination_refusing_the_first_section(fc, guest):
    """Guards src/manager/migrate.c: mig_watch() ends on the source's
    `failed` status, mig_one() cleans the destination up (mig_abort_dest())
    and leaves the VM recorded on the source, and mig_failed_at_dest()
    asks the destination's agent why (GET /agent/v1/vms/UUID/exit:
    src/agent/vmhost.c vmhost_incoming_reason(), what QEMU printed before
    "load of migration failed"), for the task's error."""
    err, task = migration_refused(fc, guest, "f1", "ram")
    assert "the destination h2 could not load the VM's state" in err and \
        "pc.ram" in err and "the VM stays on h1" in err, err


def test_destination_refusing_the_final_state(fc, guest):
    """Guards src/manager/migrate.c mig_one(): when the source reports
    `completed` but the destination's QEMU exited without ever running
    the guest (mig_dest_running() -> -2: the agent's `incoming-failed`
    exit of that QEMU's pid), mig_take_back() resumes the paused source
    (src/agent/migrate.c mig_resume(): QMP cont in postmigrate) instead of
    ending it and calling the VM failed; the message ("runs on h1 again")
    is that path's."""
    err, task = migration_refused(fc, guest, "f2", "device")
    assert "the destination h2 could not load the VM's state" in err and \
        "'serial'" in err and "the VM runs on h1 again" in err, err
