"""Serial log rotation (docs/architecture.md, "Files"; docs/api.md, GET
/vms/{name}/serial). QEMU appends the guest's serial output to a file on
the host's disk, the agent copies it to DOMAIN/vms/UUID/serial.log every
500 ms (src/agent/serialcopy.c) and rotates that past 1 MiB
(serial.log -> serial.log.0, serial.meta holding how many bytes went
before serial.log's first one), so what is kept stays bounded, and offsets
are absolute: a reader that asks for `?offset=N` gets the same bytes at N
before and after a rotation, as long as they are kept.

The guest writes bursts of known text on its serial shell (typed through
`vm console`); a burst ends with a marker line. No tick: between bursts
the guest is quiet."""

import os
import re
import signal

import pytest

import cvirt
from cvirt import wait_for

# sqlite_only: a VM's serial log (rotation, offsets, the
# agent's relay) is the agent's alone; the database plays no part, so
# the PostgreSQL pass would run it again unchanged.
pytestmark = pytest.mark.sqlite_only

MIB = 1 << 20
LINE = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmn"


@pytest.fixture
def sc(make_cluster, guest):
    """A cluster with a quiet guest s running on h1 (its own per test:
    each test counts rotations from the first)."""
    cl = make_cluster()
    cl.cli("vm", "create", "s", "--cpus", 1, "--memory", 128,
           "--kernel", guest.kernel, "--initrd", guest.initrd,
           "--cmdline", "console=ttyS0")
    cl.cli("vm", "start", "s")
    cl.wait_serial("s", "cvirt-guest: boot-id", 60)
    cl.vdir = os.path.join(cl.storage, "vms", cl.vm("s")["uuid"])
    return cl


def size(cl, name):
    """Size of a file of the VM's directory (0 when absent)."""
    try:
        return os.path.getsize(os.path.join(cl.vdir, name))
    except FileNotFoundError:
        return 0


def base(cl):
    """serial.meta: bytes rotated away before serial.log's first."""
    try:
        with open(os.path.join(cl.vdir, "serial.meta")) as f:
            return int(f.read())
    except FileNotFoundError:
        return 0


def read(cl, offset=None):
    q = "" if offset is None else "?offset=%d" % offset
    status, body = cl.http("GET", "/api/v1/vms/s/serial" + q)
    assert status == 200, body
    return body


def type_burst(cl, tag, nbytes, delay=0):
    """Types a command that prints about nbytes of lines "cvirt-TAG-..."
    (after delay seconds), then "cvirt-1-TAG-done"."""
    cmd = "sleep %d; yes cvirt-%s-%s | head -c %d; echo cvirt-$((1))-%s-done" \
        % (delay, tag, LINE, nbytes, tag)
    cl.cli("vm", "console", "s", input=cmd + "\r", timeout=60)


def burst(cl, tag, nbytes):
    type_burst(cl, tag, nbytes)
    # ~100-200 KB/s through the emulated UART under TCG: a generous bound.
    cl.wait_serial("s", "cvirt-1-%s-done" % tag, 60 + nbytes // 20000)


def consistent(cl):
    """The API's view and the files agree (read until they do: the guest
    may still print its prompt between the two reads)."""
    def check():
        r = read(cl)
        ok = r["offset"] == base(cl) + size(cl, "serial.log") and \
            r["size"] == size(cl, "serial.log.0") + size(cl, "serial.log")
        return r if ok else None
    return wait_for(check, 10, "the serial API to match the files")


def test_log_rotates_past_1mib_and_offsets_hold(sc):
    """Guards src/agent/serial.c: serial_rotate() (past agent_cfg.
    serial_max, 1 MiB: serial.log becomes serial.log.0, serial.meta
    advances, serial.log starts over), called every 2 s by vmhost.c's
    monitor thread; and serial_read(), which serves serial.log.0 then
    serial.log at absolute offsets (offset = serial.meta + serial.log)."""
    cl = sc
    burst(cl, "a", 700 * 1000)
    r1 = consistent(cl)
    assert size(cl, "serial.log.0") == 0 and base(cl) == 0, \
        "rotated before 1 MiB"
    assert r1["offset"] == r1["size"] == len(r1["data"].encode())
    assert "Linux version" in r1["data"]
    tail = r1["data"].encode()[-300:]
    o1 = r1["offset"]
    # Past 1 MiB: the agent rotates within its 2 s period.
    burst(cl, "b", 700 * 1000)
    wait_for(lambda: size(cl, "serial.log.0") > 0, 10,
             "serial.log to be rotated")
    wait_for(lambda: size(cl, "serial.log") <= MIB, 10,
             "serial.log under 1 MiB")
    assert base(cl) > MIB and 0 < size(cl, "serial.log.0") <= base(cl)
    r2 = consistent(cl)
    # What was at o1 - 300 .. o1 still is, at the same offsets.
    got = read(cl, o1 - len(tail))["data"].encode()
    assert got[:len(tail)] == tail, "offsets moved with the rotation"
    assert "cvirt-1-b-done" in r2["data"]
    # A second rotation drops the first chunk: the boot output is gone,
    # offset 0 now means "from the oldest byte kept".
    burst(cl, "c", 1200 * 1000)
    wait_for(lambda: base(cl) > size(cl, "serial.log.0"), 10,
             "a second rotation")
    wait_for(lambda: size(cl, "serial.log") <= MIB, 10,
             "serial.log under 1 MiB")
    r3 = consistent(cl)
    first = base(cl) - size(cl, "serial.log.0")
    assert r3["offset"] - r3["size"] == first > 0, r3["offset"]
    assert "Linux version" not in r3["data"]
    assert "cvirt-1-c-done" in r3["data"]
    assert read(cl, 0)["data"] == r3["data"]
    assert r3["size"] < r3["offset"], "nothing was let go"


def test_log_grown_while_the_agent_was_away_is_rotated(sc):
    """QEMU writes its serial log on the host's own disk (DATA/serial/
    UUID.log), also while the agent is down, and the agent copies what is
    new to serial.log on storage (src/agent/serialcopy.c): output far past
    what storage keeps (here 4.6 MB, storage keeps 2 MiB) that piled up
    while the agent was away reaches storage once it is back as a line
    saying how much was not kept and the newest 512 KiB, rotated so that
    serial.log stays under 1 MiB, and read. Guards serialcopy.c
    sc_flush()'s backlog, serial.c serial_rotate() and serial_read()."""
    cl = sc
    nbytes = 4600 * 1000
    type_burst(cl, "d", nbytes, delay=3)
    cl.kill_agent("h1", signal.SIGTERM)
    assert cvirt.qemu_pids(os.path.basename(cl.vdir)), "QEMU went with it"
    local = os.path.join(cl.base, "a-h1", "serial",
                         os.path.basename(cl.vdir) + ".log")
    stored_before = size(cl, "serial.log")

    def done():
        with open(local, "rb") as f:
            f.seek(max(0, os.path.getsize(local) - 4096))
            return b"cvirt-1-d-done" in f.read()
    wait_for(done, 60 + nbytes // 20000, "the burst to reach the host's "
             "serial log", interval=0.5)
    # Nothing copies it with the agent away.
    assert size(cl, "serial.log") == stored_before
    before = size(cl, "serial.log") + base(cl)
    cl.start_agent("h1")
    wait_for(lambda: size(cl, "serial.log") + base(cl) > before + MIB // 2,
             20, "the backlog copied after the agent came back")
    wait_for(lambda: size(cl, "serial.log") <= MIB, 10,
             "serial.log rotated after the agent came back")
    assert size(cl, "serial.log.0") <= MIB
    r = consistent(cl)
    assert r["size"] <= 2 * MIB
    assert re.search(r"cvirt-1-d-done", r["data"]), r["data"][-500:]
    m = re.search(r"\[cvirt: (\d+) bytes of serial output not kept\]",
                  r["data"])
    assert m and int(m.group(1)) > nbytes - MIB, r["data"][:300]
    assert r["offset"] >= before
