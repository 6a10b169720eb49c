"""Foundation acceptance: VM lifecycle with a real TCG guest, accel
detection, agent restart with re-attach, input validation, the serial
console and the REST basics. Written against shared/CONTRACT.md and
docs/api.md.
"""

import os
import re
import signal
import subprocess
import time

import pytest

import cvirt
from cvirt import boot_ids, last_tick, pid_alive, qemu_pid, wait_for

INIT = "cvirt-guest: init reached"
CMDLINE = "console=ttyS0 cvirt.tick=1"


def create_guest_vm(cl, guest, name, cmdline=CMDLINE):
    return cl.cli("vm", "create", name, "--cpus", 1, "--memory", 256,
                  "--kernel", guest.kernel, "--initrd", guest.initrd,
                  "--cmdline", cmdline)


def start_and_boot(cl, name, timeout=40):
    """Starts a stopped VM and waits for a boot id it did not have before."""
    before = set(boot_ids(cl.serial(name)))
    cl.cli("vm", "start", name)
    wait_for(lambda: set(boot_ids(cl.serial(name))) - before, timeout,
             "a new boot of %s (%r on its serial)" % (name, INIT),
             interval=0.3)
    # (The guest prints its boot id once acpid holds the power button:
    # tests/guest/build-guest.sh.)
    return cl.vm(name)


def ensure_running(cl, name, timeout=40):
    """Brings a VM to running with its guest booted, reusing a running one."""
    v = cl.vm(name)
    if v["state"] == "paused":
        cl.cli("vm", "resume", name)
        v = cl.vm(name)
    if v["state"] == "running":
        cl.wait_serial(name, "cvirt-guest: boot-id", timeout)
        return v
    return start_and_boot(cl, name, timeout)


def assert_one_line_error(rc, err, what):
    assert rc != 0, "%s: expected failure, got exit 0" % what
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, "%s: want one line on stderr, got %r" % (what, err)


def wait_qemu_gone(uuid, timeout=10):
    wait_for(lambda: qemu_pid(uuid) is None, timeout,
             "QEMU with -uuid %s to exit" % uuid)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def t1(cluster, guest):
    """VM t1 defined from the test guest (stopped); tests share it in order."""
    create_guest_vm(cluster, guest, "t1")
    return "t1"


# -------------------------------------------------------------------- REST


def test_rest_health_needs_no_token(cluster):
    status, body = cluster.http("GET", "/api/v1/health", auth=False)
    assert status == 200 and isinstance(body, dict), (status, body)
    assert body.get("status") == "ok", body


def test_rest_without_token_is_401(cluster):
    status, body = cluster.http("GET", "/api/v1/vms", auth=False)
    assert status == 401, body
    assert isinstance(body, dict) and body.get("error"), body
    status, body = cluster.http("GET", "/api/v1/vms", token="not-a-token")
    assert status == 401, body


def test_rest_unknown_route_is_404_json(cluster):
    status, body = cluster.http("GET", "/api/v1/no-such-thing")
    assert status == 404, body
    assert isinstance(body, dict) and isinstance(body.get("error"), str)
    status, body = cluster.http("GET", "/api/v1/vms/no-such-vm")
    assert status == 404, body
    assert isinstance(body, dict) and body.get("error")


def test_rest_malformed_json_is_400(cluster):
    before = cluster.vm_names()
    for raw in ('{"name": "bad", "cpus": 1,', "not json", "[1, 2]",
                '{"name": "bad", "cpus": "one", "memory_mib": 256}',
                '{"name": "bad", "cpus": 1, "memory_mib": 256, "typo": 1}'):
        status, body = cluster.http("POST", "/api/v1/vms", body=raw)
        assert status == 400, (raw, status, body)
        assert isinstance(body, dict) and body.get("error"), (raw, body)
    assert cluster.vm_names() == before


BAD_BODIES = [
    ("cpus -1", {"name": "r1", "cpus": -1, "memory_mib": 256}),
    ("cpus 0", {"name": "r1", "cpus": 0, "memory_mib": 256}),
    ("cpus huge", {"name": "r1", "cpus": 99999, "memory_mib": 256}),
    ("cpus float", {"name": "r1", "cpus": 1.5, "memory_mib": 256}),
    ("memory 0", {"name": "r1", "cpus": 1, "memory_mib": 0}),
    ("memory huge", {"name": "r1", "cpus": 1, "memory_mib": 2 ** 62}),
    ("memory string", {"name": "r1", "cpus": 1, "memory_mib": "abc"}),
    ("no memory", {"name": "r1", "cpus": 1}),
    ("name ../x", {"name": "../x", "cpus": 1, "memory_mib": 256}),
    ("name a/b", {"name": "a/b", "cpus": 1, "memory_mib": 256}),
    ("name empty", {"name": "", "cpus": 1, "memory_mib": 256}),
    ("name 100", {"name": "a" * 100, "cpus": 1, "memory_mib": 256}),
    ("name number", {"name": 7, "cpus": 1, "memory_mib": 256}),
    ("kernel relative", {"name": "r1", "cpus": 1, "memory_mib": 256,
                         "kernel": "vmlinuz"}),
    ("kernel dotdot", {"name": "r1", "cpus": 1, "memory_mib": 256,
                       "kernel": "/boot/../etc/passwd"}),
    ("ha_monitor bogus", {"name": "r1", "cpus": 1, "memory_mib": 256,
                          "ha_monitor": "bogus"}),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES],
                         ids=[i for i, _ in BAD_BODIES])
def test_rest_bad_vm_fields_are_400(cluster, body):
    before = cluster.vm_names()
    status, reply = cluster.http("POST", "/api/v1/vms", body=body)
    assert status == 400, (body, status, reply)
    assert isinstance(reply, dict) and reply.get("error"), reply
    assert cluster.vm_names() == before


def test_rest_text_qemu_refuses_is_400(cluster, guest, tmp_path):
    """A kernel path with ',' or a cmdline with control characters passed
    the manager and failed at every start ("cannot build QEMU command
    line"): refused at create now, with files that exist."""
    comma = tmp_path / "a,b"
    comma.mkdir()
    os.symlink(guest.kernel, str(comma / "vmlinuz"))
    before = cluster.vm_names()
    for extra in ({"kernel": str(comma / "vmlinuz")},
                  {"kernel": guest.kernel, "initrd": guest.initrd,
                   "cmdline": "console=ttyS0\nx"},
                  {"kernel": guest.kernel, "cmdline": "a\x1b[2Jb"}):
        body = dict({"name": "r1", "cpus": 1, "memory_mib": 64}, **extra)
        status, reply = cluster.http("POST", "/api/v1/vms", body=body)
        assert status == 400, (extra, status, reply)
        assert isinstance(reply, dict) and reply.get("error"), reply
    assert cluster.vm_names() == before


def test_rest_duplicate_is_409(cluster):
    body = {"name": "r-dup", "cpus": 1, "memory_mib": 64}
    status, reply = cluster.http("POST", "/api/v1/vms", body=body)
    assert status == 201, reply
    before = cluster.vm_names()
    status, reply = cluster.http("POST", "/api/v1/vms", body=body)
    assert status == 409, reply
    assert cluster.vm_names() == before
    cluster.cli("vm", "delete", "r-dup")


# ------------------------------------------------------------- host, accel


def test_host_reports_detected_accel(cluster):
    h = cluster.cli("host", "show", "h1", json=True)
    assert h["name"] == "h1"
    assert h["state"] == "up"
    # This machine has /dev/kvm but no vmx/svm: it must say tcg here.
    assert h["accel"] == cvirt.expected_accel(), h
    # All of this machine's CPUs and memory (no --memory cap given).
    assert h["cpus"] == os.sysconf("SC_NPROCESSORS_ONLN"), h
    with open("/proc/meminfo") as f:
        total_kib = int(re.search(r"^MemTotal:\s+(\d+) kB", f.read(),
                                  re.M).group(1))
    assert h["memory_mib"] == total_kib // 1024, (h, total_kib)
    hosts = cluster.cli("host", "list", json=True)
    assert isinstance(hosts, list) and [x["name"] for x in hosts] == ["h1"]


def test_agent_accel_override_tcg(make_cluster):
    cl = make_cluster(hosts=("h9",), agent_extra={"h9": ["--accel", "tcg"]})
    assert cl.cli("host", "show", "h9", json=True)["accel"] == "tcg"


# ---------------------------------------------------------------- bad input

CPUS_ERR = "--cpus must be a whole number from 1 to 256, not \"%s\""
MEM_ERR = "--memory (MiB) must be a whole number from 16 to 4194304, " \
    "not \"%s\""
NAME_ERR = "invalid VM name \"%s\" (letters, digits, '.', '_', '-'; at " \
    "most 63, starting with a letter or digit)"
USAGE = " (try 'cvirt vm create --help')"
# (id, arguments of vm create, exit status, its one line on stderr after
# "cvirt: "): all checked by the client before anything is sent, except
# the absolute paths, which the host checks (docs/cli.md).
BAD_CREATES = [
    ("cpus -1", ["v1", "--cpus", "-1", "--memory", "256"], 1,
     CPUS_ERR % "-1"),
    ("cpus 0", ["v1", "--cpus", "0", "--memory", "256"], 1, CPUS_ERR % "0"),
    ("cpus huge", ["v1", "--cpus", "99999", "--memory", "256"], 1,
     CPUS_ERR % "99999"),
    ("cpus overflow", ["v1", "--cpus", "99999999999999999999999",
                       "--memory", "256"], 1,
     CPUS_ERR % "99999999999999999999999"),
    ("cpus abc", ["v1", "--cpus", "abc", "--memory", "256"], 1,
     CPUS_ERR % "abc"),
    ("memory abc", ["v1", "--cpus", "1", "--memory", "abc"], 1,
     MEM_ERR % "abc"),
    ("memory 0", ["v1", "--cpus", "1", "--memory", "0"], 1, MEM_ERR % "0"),
    ("memory -5", ["v1", "--cpus", "1", "--memory", "-5"], 1,
     MEM_ERR % "-5"),
    ("memory huge", ["v1", "--cpus", "1", "--memory", "999999999999"], 1,
     MEM_ERR % "999999999999"),
    ("memory 12x", ["v1", "--cpus", "1", "--memory", "12x"], 1,
     MEM_ERR % "12x"),
    ("name ../x", ["../x", "--cpus", "1", "--memory", "256"], 1,
     NAME_ERR % "../x"),
    ("name a/b", ["a/b", "--cpus", "1", "--memory", "256"], 1,
     NAME_ERR % "a/b"),
    ("name empty", ["", "--cpus", "1", "--memory", "256"], 1, NAME_ERR % ""),
    ("name 100 chars", ["a" * 100, "--cpus", "1", "--memory", "256"], 1,
     NAME_ERR % ("a" * 100)),
    ("name with space", ["a b", "--cpus", "1", "--memory", "256"], 1,
     NAME_ERR % "a b"),
    ("name leading dash", ["-x", "--cpus", "1", "--memory", "256"], 2,
     "unknown option -x" + USAGE),
    ("no cpus", ["v1", "--memory", "256"], 2, "--cpus is required" + USAGE),
    ("no name", ["--cpus", "1", "--memory", "256"], 2,
     "vm create needs NAME" + USAGE),
    ("relative kernel", ["v1", "--cpus", "1", "--memory", "256",
                         "--kernel", "vmlinuz"], 1,
     "--kernel vmlinuz: No such file or directory"),
    # Not in a media area: the client's own file, which is not there.
    ("missing kernel", ["v1", "--cpus", "1", "--memory", "256",
                        "--kernel", "/nonexistent/vmlinuz"], 1,
     "--kernel /nonexistent/vmlinuz: No such file or directory"),
    ("missing cdrom", ["v1", "--cpus", "1", "--memory", "256",
                       "--cdrom", "/nonexistent/install.iso"], 1,
     "--cdrom /nonexistent/install.iso: No such file or directory"),
]


def vm_dirs(cl):
    d = os.path.join(cl.storage, "vms")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


@pytest.mark.parametrize("args,want_rc,want_err",
                         [b[1:] for b in BAD_CREATES],
                         ids=[b[0] for b in BAD_CREATES])
def test_bad_create_is_refused(cluster, args, want_rc, want_err):
    before, dirs = cluster.vm_names(), vm_dirs(cluster)
    rc, out, err = cluster.cli("vm", "create", *args, check=False)
    assert (rc, out, err) == (want_rc, "", "cvirt: " + want_err + "\n")
    assert cluster.vm_names() == before
    assert vm_dirs(cluster) == dirs


def test_duplicate_name_is_refused(cluster, guest):
    create_guest_vm(cluster, guest, "dup1")
    before = cluster.vm_names()
    assert before.count("dup1") == 1
    rc, out, err = cluster.cli("vm", "create", "dup1", "--cpus", 2,
                               "--memory", 128, check=False)
    assert (rc, out, err) == (1, "", 'cvirt: vm "dup1" already exists\n')
    assert cluster.vm_names() == before
    assert cluster.vm("dup1")["cpus"] == 1
    cluster.cli("vm", "delete", "dup1")
    assert "dup1" not in cluster.vm_names()


@pytest.mark.parametrize("args", [[], ["--json"], ["vm"], ["vm", "frob"],
                                  ["frob"], ["vm", "list", "--bogus"],
                                  ["vm", "create"], ["vm", "show", "a", "b"],
                                  ["help", "frob"]],
                         ids=lambda a: " ".join(a) or "none")
def test_usage_errors_are_one_line(cluster, args):
    rc, out, err = cluster.cli(*args, check=False)
    assert rc == 2 and out == "", (args, rc, out)
    assert_one_line_error(rc, err, "cvirt %s" % " ".join(args))
    assert err.startswith("cvirt: ") and "--help" in err, err


@pytest.mark.parametrize("verb", ["show", "start", "stop", "delete",
                                  "pause", "resume", "reboot", "serial"])
def test_unknown_vm_is_an_error(cluster, verb):
    before = cluster.vm_names()
    rc, out, err = cluster.cli("vm", verb, "no-such-vm", check=False)
    assert (rc, out, err) == (1, "", 'cvirt: vm "no-such-vm" not found\n')
    assert cluster.vm_names() == before


# ------------------------------------------------------- lifecycle with t1


def test_create_start_serial(cluster, t1):
    v = cluster.vm(t1)
    assert v["state"] == "stopped" and v["host"] is None, v
    assert v["cpus"] == 1 and v["memory_mib"] == 256
    assert cvirt.UUID_RE.fullmatch(v["uuid"]), v
    assert t1 in cluster.vm_names()

    cluster.cli("vm", "start", t1)
    # The guest prints its boot id just after "init reached": wait for it.
    serial = cluster.wait_serial(t1, "cvirt-guest: boot-id", timeout=30)
    assert INIT in serial and len(boot_ids(serial)) == 1, serial[-2000:]
    v = cluster.vm(t1)
    assert v["state"] == "running", v
    assert v["host"] == "h1", v
    pid = qemu_pid(v["uuid"])
    assert pid is not None, "no QEMU with -uuid %s" % v["uuid"]
    # The guest's ticker proves it keeps running.
    tick = last_tick(serial)
    wait_for(lambda: last_tick(cluster.serial(t1)) > tick, 10,
             "the guest's tick to advance")


def test_serial_console_interactive(cluster, t1):
    ensure_running(cluster, t1)
    con = cvirt.Console(cluster, t1)
    try:
        # Typed at once, while the client is still connecting: the line
        # reaches the guest once it has (src/cli/cli_console.c
        # cli_con_rawmode: the switch to raw mode keeps type-ahead; with
        # TCSAFLUSH it threw the line away).
        con.write(b"echo cvirt-$((6*7))\r")
        assert con.pump(20, b"Connected to %s's serial console"
                        % t1.encode()), \
            "no 'Connected': %r" % bytes(con.out[-2000:])
        assert con.pump(20, b"cvirt-42"), \
            "no cvirt-42 on the console: %r" % bytes(con.out[-2000:])
        rc = con.detach()
        assert rc == 0, "console exited %d: %r" % (rc,
                                                   bytes(con.out[-500:]))
    finally:
        con.close()
    # Detaching leaves the VM alone.
    assert cluster.vm(t1)["state"] == "running"


def test_pause_resume(cluster, t1):
    ensure_running(cluster, t1)
    cluster.cli("vm", "pause", t1)
    assert cluster.vm(t1)["state"] == "paused"
    # What the guest printed before `stop` reaches storage with the
    # agent's next copy (every 500 ms, src/agent/serialcopy.c): the last
    # tick once two reads a copy period apart agree; then nothing more
    # comes.
    def settled():
        a = last_tick(cluster.serial(t1))
        time.sleep(1.2)
        return a if a == last_tick(cluster.serial(t1)) else None
    tick = wait_for(settled, 20, "the serial log to settle after pause")
    time.sleep(2.5)
    assert last_tick(cluster.serial(t1)) == tick, \
        "guest kept ticking while paused"
    cluster.cli("vm", "resume", t1)
    assert cluster.vm(t1)["state"] == "running"
    wait_for(lambda: last_tick(cluster.serial(t1)) > tick + 1, 10,
             "ticks after resume")


def test_reboot_gives_new_boot_id(cluster, t1):
    ensure_running(cluster, t1)
    before = boot_ids(cluster.serial(t1))
    assert before
    cluster.cli("vm", "reboot", t1)
    wait_for(lambda: set(boot_ids(cluster.serial(t1))) - set(before), 40,
             "a new boot id after reboot", interval=0.3)
    assert cluster.vm(t1)["state"] == "running"
    # The agent logs QEMU's reason for each reset: the reboot's own, then
    # SeaBIOS's (harness.RESET_RE; the harness fails a chain that goes on).
    with open(os.path.join(cluster.logdir, "agent-h1.log"),
              errors="replace") as f:
        log = f.read()
    assert "vm t1: reset (host-qmp-system-reset)" in log


def test_stop_graceful(cluster, t1):
    v = ensure_running(cluster, t1)
    uuid = v["uuid"]
    assert qemu_pid(uuid) is not None
    t0 = time.monotonic()
    cluster.cli("vm", "stop", t1)
    v = cluster.vm(t1)
    assert v["state"] == "stopped", v
    assert v["host"] is None, v
    wait_qemu_gone(uuid)
    # The guest saw the ACPI power button (acpid powered it off).
    assert "power button, powering off" in cluster.serial(t1), \
        "stop took %.1fs without an ACPI shutdown" % (time.monotonic() - t0)


@pytest.mark.slow
def test_agent_kill9_keeps_qemu_and_reattaches(cluster, t1):
    v = ensure_running(cluster, t1)
    uuid = v["uuid"]
    pid = qemu_pid(uuid)
    assert pid is not None
    serial = cluster.serial(t1)
    ids = boot_ids(serial)
    inits = serial.count(INIT)
    tick = last_tick(serial)

    cluster.kill_agent("h1", signal.SIGKILL)
    time.sleep(1.0)
    assert pid_alive(pid), "QEMU died with its agent"
    assert qemu_pid(uuid) == pid

    cluster.start_agent("h1")
    v = cluster.wait_state(t1, "running", timeout=30)
    assert v["host"] == "h1", v
    assert qemu_pid(uuid) == pid, "QEMU was replaced, not re-attached"
    serial = wait_for(lambda: (lambda s: s if last_tick(s) > tick else None)(
        cluster.serial(t1)), 15, "ticks after re-attach", interval=0.3,
        starting=True)
    assert boot_ids(serial)[-1] == ids[-1], "the guest rebooted"
    assert serial.count(INIT) == inits, "a second init reached"

    cluster.cli("vm", "stop", t1)
    assert cluster.vm(t1)["state"] == "stopped"
    wait_qemu_gone(uuid)


def test_stop_force(cluster, t1):
    v = cluster.vm(t1)
    if v["state"] != "running":
        cluster.cli("vm", "start", t1)
    v = cluster.vm(t1)
    assert v["state"] == "running", v
    uuid = v["uuid"]
    assert qemu_pid(uuid) is not None
    t0 = time.monotonic()
    cluster.cli("vm", "stop", t1, "--force")
    assert time.monotonic() - t0 < 10, "forced stop was slow"
    assert cluster.vm(t1)["state"] == "stopped"
    wait_qemu_gone(uuid, timeout=5)


def test_delete(cluster, t1):
    v = cluster.vm(t1)
    if v["state"] != "stopped":
        cluster.cli("vm", "stop", t1, "--force")
    cluster.cli("vm", "delete", t1)
    assert t1 not in cluster.vm_names()
    rc, out, err = cluster.cli("vm", "show", t1, check=False)
    assert (rc, out, err) == (1, "", 'cvirt: vm "%s" not found\n' % t1)
    assert not os.path.exists(os.path.join(cluster.storage, "vms", v["uuid"]))


def last_task_id(cl):
    status, tasks = cl.http("GET", "/api/v1/tasks?limit=1")
    assert status == 200, tasks
    return tasks[0]["id"] if tasks else 0


def assert_refused(cl, method, path, want, body=None):
    status, reply = cl.http(method, path, body=body)
    assert status == want, (method, path, status, reply)
    assert isinstance(reply, dict) and isinstance(reply.get("error"), str)


def test_delete_running_needs_force(cluster, guest):
    create_guest_vm(cluster, guest, "t2")
    # A state the VM is not in, or a host that does not exist, is refused
    # before any task is queued: 409/404/422, not 202 and a failed task.
    first = last_task_id(cluster)
    for op in ("pause", "resume", "reboot", "migrate"):
        assert_refused(cluster, "POST", "/api/v1/vms/t2/" + op, 409)
    assert_refused(cluster, "POST", "/api/v1/vms/t2/start", 404,
                   {"host": "nosuch"})
    assert last_task_id(cluster) == first
    cluster.cli("vm", "start", "t2")
    v = cluster.vm("t2")
    assert v["state"] == "running"
    first = last_task_id(cluster)
    assert_refused(cluster, "POST", "/api/v1/vms/t2/start", 409)
    assert_refused(cluster, "POST", "/api/v1/vms/t2/resume", 409)
    assert_refused(cluster, "DELETE", "/api/v1/vms/t2", 409)
    assert_refused(cluster, "POST", "/api/v1/vms/t2/migrate", 422, {})
    assert_refused(cluster, "POST", "/api/v1/vms/t2/migrate", 409,
                   {"to": "h1"})
    assert_refused(cluster, "POST", "/api/v1/vms/t2/migrate", 404,
                   {"to": "nosuch"})
    for args, want in ((["start", "t2"], 'vm "t2" is running'),
                       (["migrate", "t2"], "no other host is registered"),
                       (["migrate", "t2", "--to", "nosuch"],
                        'host "nosuch" not found')):
        rc, out, err = cluster.cli("vm", *args, check=False)
        assert (rc, out, err) == (1, "", "cvirt: %s\n" % want), args
    assert last_task_id(cluster) == first
    rc, out, err = cluster.cli("vm", "delete", "t2", check=False)
    assert (rc, out, err) == (1, "", 'cvirt: vm "t2" is running: stop it '
                              'first or use --force\n')
    assert cluster.vm("t2")["state"] == "running"
    cluster.cli("vm", "delete", "t2", "--force")
    assert "t2" not in cluster.vm_names()
    wait_qemu_gone(v["uuid"])


# ----------------------------------------------------------------- daemons


def test_second_agent_on_the_same_data_is_refused(make_cluster):
    """A second agent on a running one's --data killed its lease keeper,
    started another and re-attached to the same VMs."""
    cl = make_cluster(hosts=("h1",))
    keepers = cl.cluster_keepers()
    argv = list(cl.agents["h1"].argv)
    i = argv.index("--listen")
    argv[i + 1] = "127.0.0.1:%d" % cvirt.free_port()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                       env=cl.env)
    assert p.returncode == 1, p
    assert_one_line_error(p.returncode, p.stderr, "second agent")
    assert "in use by another agent" in p.stderr, p.stderr
    assert cl.cluster_keepers() == keepers and keepers
    assert cl.agents["h1"].running()
    assert cl.cli("host", "show", "h1", json=True)["state"] == "up"
    # The lock goes with the agent, not with its keeper: it restarts.
    cl.kill_agent("h1")
    cl.start_agent("h1")


def test_agent_that_cannot_start_leaves_no_lease(make_cluster):
    """An agent whose port is taken exits, and with no VM on the host its
    lease keeper and lease go with it (a keeper left renewing would make
    the host look alive on storage)."""
    cl = make_cluster(hosts=("h1",))
    argv = list(cl.agents["h1"].argv)
    i = argv.index("--data")
    data = argv[i + 1] = os.path.join(cl.base, "a-h9")
    argv[argv.index("--name") + 1] = "h9"
    argv[argv.index("--listen") + 1] = "127.0.0.1:%d" % cl.port
    # Its keeper must not pet (nor, leaving, disarm) h1's stand-in.
    argv[argv.index("--watchdog") + 1] = "none"
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                       env=cl.env)
    assert p.returncode == 1 and "cannot listen" in p.stderr, p
    cvirt.wait_for(lambda: not any(data in " ".join(cvirt.proc_cmdline(k) or
                                                    [])
                                   for k in cl.cluster_keepers()) or None,
                   5, "h9's lease keeper to go")
    leases = [f for f in os.listdir(os.path.join(cl.storage, "leases"))
              if f.startswith("h9")] \
        if os.path.isdir(os.path.join(cl.storage, "leases")) else []
    assert leases == [], leases
    assert cl.agents["h1"].running()


def test_daemons_stop_cleanly_on_sigterm(make_cluster):
    cl = make_cluster(hosts=("h1",))
    cl.agents["h1"].signal(signal.SIGTERM)
    assert cl.agents["h1"].wait(10), "agent ignored SIGTERM"
    assert cl.agents["h1"].proc.returncode == 0
    cl.manager.signal(signal.SIGTERM)
    assert cl.manager.wait(10), "manager ignored SIGTERM"
    assert cl.manager.proc.returncode == 0


@pytest.mark.sqlite_only     # cvirt up embeds SQLite
def test_up_runs_manager_agent_and_storage(tmp_path, cvirt_bin):
    cl = cvirt.Cluster(logdir=str(tmp_path))
    try:
        cl.start_up()
        hosts = cl.cli("host", "list", json=True)
        assert len(hosts) == 1 and hosts[0]["state"] == "up", hosts
        assert hosts[0]["accel"] == cvirt.expected_accel()
        storage = cl.cli("storage", "list", json=True)
        assert [s["name"] for s in storage] == ["local"], storage
        cl.manager.signal(signal.SIGTERM)
        assert cl.manager.wait(15), "cvirt up ignored SIGTERM"
        assert cl.manager.proc.returncode == 0
    finally:
        cl.cleanup()


@pytest.mark.parametrize("args", [["--accel", "bogus"], ["--listen", "x"],
                                  ["--bogus"]], ids=lambda a: a[-1])
def test_up_bad_options_are_one_line(tmp_path, cvirt_bin, args):
    """Checked before anything starts: --accel bogus made the agent exit
    and up wait 20 s for it, then blame its registration."""
    t0 = time.monotonic()
    argv = [cvirt_bin, "up", "--data", str(tmp_path / "d")] + args
    if "--listen" not in args:
        argv += ["--listen", "127.0.0.1:%d" % cvirt.free_port_pair()]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stdout == "", p
    assert_one_line_error(p.returncode, p.stderr, "cvirt up %r" % args)
    assert time.monotonic() - t0 < 5


@pytest.mark.sqlite_only     # cvirt up embeds SQLite
def test_second_up_on_the_same_data_is_refused(tmp_path, cvirt_bin):
    """A second `cvirt up` on the data directory of a running one started
    a second agent for the same host (re-attaching to its VMs' QMP, a new
    lease keeper) and printed "cvirt is up." off the first one's manager."""
    cl = cvirt.Cluster(logdir=str(tmp_path))
    try:
        cl.start_up()
        p = subprocess.run(
            [cvirt_bin, "up", "--data", os.path.join(cl.base, "up"),
             "--listen", "127.0.0.1:%d" % cvirt.free_port_pair()],
            capture_output=True, text=True, timeout=20, env=cl.env)
        assert p.returncode == 1 and "cvirt is up" not in p.stdout, p
        assert_one_line_error(p.returncode, p.stderr, "second cvirt up")
        assert "in use by another cvirt up" in p.stderr, p.stderr
        assert cl.manager.running() and cl.health()
        assert [h["state"] for h in cl.cli("host", "list", json=True)] == \
            ["up"]
    finally:
        cl.cleanup()


@pytest.mark.sqlite_only     # cvirt up embeds SQLite
def test_up_restarts_with_its_host_in_maintenance(tmp_path, cvirt_bin):
    """Its host re-registers in maintenance: `cvirt up` must come back (it
    waited for the state "up" and gave up after 20 s)."""
    cl = cvirt.Cluster(logdir=str(tmp_path))
    try:
        cl.start_up()
        host = cl.cli("host", "list", json=True)[0]["name"]
        cl.cli("host", "maintenance", host, "on")
        assert cl.manager.stop(15) == 0
        cl.restart_up(15)
        h = cl.cli("host", "show", host, json=True)
        assert h["state"] == "maintenance" and h["maintenance"] is True, h
    finally:
        cl.cleanup()
