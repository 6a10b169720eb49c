"""The harness's own net, proven with bugs planted in a stand-in daemon
(tests/harness/standin.c), never in cvirt. An inner pytest session runs
tests that start the stand-in through cvirt.Daemon, stop it through
cvirt.Cluster.stop as every test cluster is stopped, and touch it; this
test checks which inner tests the harness failed, and why.

Guards tests/integration/harness.py (check(), _judge(), the
pytest_runtest_makereport and counting hooks) and the sanitizer wiring of
Daemon.start and Cluster._env in cvirt.py: remove any of them and an
inner test that should fail passes.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from cvirt import REPO
from cvirt import wait_for as cvirt_wait

# sqlite_only: the harness's own tests start no manager, so the
# PostgreSQL pass would run them again unchanged.
pytestmark = pytest.mark.sqlite_only

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN_C = os.path.join(REPO, "tests", "harness", "standin.c")

INNER_CONFTEST = r'''
import json, os, sys
sys.path.insert(0, %(here)r)
from harness import *  # noqa: F401,F403 - the hooks under test


class Reasons:
    """Writes {test: ["[phase] longrepr", ...]} of failed phases."""

    def __init__(self):
        self.reasons = {}

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.reasons.setdefault(report.nodeid.split("::")[-1],
                                    []).append("[%%s] %%s" %% (
                                        report.when, report.longreprtext))

    def pytest_sessionfinish(self, session):
        with open(os.environ["INNER_REASONS"], "w") as f:
            json.dump(self.reasons, f)


def pytest_configure(config):
    config.pluginmanager.register(Reasons(), "inner-reasons")
''' % {"here": HERE}

INNER_TESTS = r'''
import os, socket, subprocess, time
import pytest
import cvirt
import harness

STANDIN = os.environ["STANDIN"]


def start(cl, name, term_status=0):
    port = cvirt.free_port()
    d = cvirt.Daemon(name, [STANDIN, str(port), str(term_status)],
                     os.path.join(cl.logdir, name + ".log"), cl.env,
                     checked=True)
    d.start()
    d.port = port
    cl.agents[name] = d
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return d
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the stand-in does not listen")


def touch(d, word):
    with socket.create_connection(("127.0.0.1", d.port), 5) as s:
        s.sendall(word.encode() + b"\n")
        assert s.recv(64) == b"ok " + word.encode() + b"\n"


@pytest.fixture
def cl(tmp_path):
    c = cvirt.Cluster(logdir=str(tmp_path))
    yield c
    c.cleanup()


@pytest.fixture(scope="module")
def mcl(tmp_path_factory):
    c = cvirt.Cluster(logdir=str(tmp_path_factory.mktemp("mlogs")))
    yield c
    c.cleanup()


def test_clean(cl):
    d = start(cl, "clean")
    touch(d, "ping")
    touch(d, "ping")


def test_segv(cl):
    d = start(cl, "segv")
    touch(d, "segv")
    d.wait(10)


def test_ubsan(cl):
    d = start(cl, "ubsan")
    touch(d, "ubsan")
    d.wait(10)


def test_leak(cl):
    touch(start(cl, "leak"), "leak")


def test_exit1_on_sigterm(cl):
    touch(start(cl, "exit1", term_status=1), "ping")


def test_killed_on_purpose(cl):
    d = start(cl, "killed")
    touch(d, "ping")
    d.kill()
    assert d.wait(10)


def test_killed_after_a_child_report(cl):
    d = start(cl, "child")
    touch(d, "child-segv")
    time.sleep(0.5)
    touch(d, "ping")
    d.kill()
    assert d.wait(10)


def test_client_command_leaks(cl):
    p = subprocess.run([STANDIN, "--once", "leak"], env=cl.env,
                       capture_output=True)
    assert p.stderr == b""


KEEPER_DIED = ("lease keeper pid 4242 died (killed by a signal or "
               "crashed): starting another\n")


def log_line(d, line):
    """What an agent (or its keeper, on the agent's stderr) writes."""
    with open(d.log_path, "a") as f:
        f.write(line)


def test_keeper_died(cl):
    log_line(start(cl, "kdied"), KEEPER_DIED)


def test_keeper_exit1(cl):
    log_line(start(cl, "kexit"), "keeper pid 4243 exits with status 1\n")


def test_keeper_ended_on_purpose(cl):
    d = start(cl, "kpurpose")
    harness.declare_keeper_end(d.log_path, "the test kills the keeper")
    log_line(d, KEEPER_DIED)


def test_keeper_with_its_host(cl):
    d = start(cl, "khost")
    d.kill()
    log_line(d, KEEPER_DIED)
    assert d.wait(10)


def pet(wd, host, text):
    """Sends what host's keeper would, to the socket stand_in() made (not
    through spec(), which starts counting a forgotten host's pets again)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(text.encode(), os.path.join(wd.dir, host + ".sock"))
    s.close()


def stand_in(tmp_path, host):
    from watchdogs import Watchdogs
    wd = Watchdogs(str(tmp_path / "wd"), "inner")
    wd.spec(host)
    return wd


def test_watchdog_expires(tmp_path):
    wd = stand_in(tmp_path, "hx")
    try:
        pet(wd, "hx", "pet 200\n")
        time.sleep(0.5)
    finally:
        wd.stop()


def test_watchdog_petted(tmp_path):
    wd = stand_in(tmp_path, "hp")
    try:
        # 1 s between pets and expiry: 50 ms sleeps never come that late
        # (200 ms did on a loaded machine); a disarm that did not work
        # expires within the 1.5 s after it.
        for _ in range(10):
            pet(wd, "hp", "pet 1000\n")
            time.sleep(0.05)
        pet(wd, "hp", "disarm\n")
        time.sleep(1.5)
        assert wd.status("hp")["pets"] == 10
    finally:
        wd.stop()


def test_watchdog_of_a_crashed_host(tmp_path):
    wd = stand_in(tmp_path, "hc")
    try:
        # Armed with a deadline no scheduling delay reaches before the
        # forget (with 200 ms a loaded machine let it expire first).
        pet(wd, "hc", "pet 60000\n")
        cvirt.wait_for(lambda: wd.status("hc")["pets"] == 1, 10,
                       "the first pet")
        wd.forget("hc", "the test crashes it")
        pet(wd, "hc", "pet 200\n")     # sent just before it died: ignored
        time.sleep(0.5)                # else it would expire in here
    finally:
        wd.stop()


def test_module_first(mcl):
    touch(start(mcl, "mod"), "leak")


def test_module_last(mcl):
    touch(mcl.agents["mod"], "ping")
'''

# Inner test -> strings its failure must name, or None: it must pass.
EXPECTED = {
    "test_clean": None,
    # Reports land in LOG.san.PID (the daemon's own and its children's).
    "test_segv": ["segv.san.", "AddressSanitizer: SEGV", "standin_segv",
                  "segv (pid", "exited with status 1 by itself"],
    "test_ubsan": ["runtime error: signed integer overflow",
                   "standin_ubsan"],
    "test_leak": ["[teardown]", "LeakSanitizer: detected memory leaks",
                  "standin_leak"],
    "test_exit1_on_sigterm": ["[teardown]",
                              "exit1 (pid", "exited with status 1 on "
                              "SIGTERM"],
    "test_killed_on_purpose": None,
    "test_killed_after_a_child_report": ["child.san.",
                                         "AddressSanitizer: SEGV",
                                         "standin_child_segv"],
    "test_client_command_leaks": ["client commands of cluster",
                                  "LeakSanitizer", "standin_leak"],
    # A lease keeper's bad end, as its agent logs it (the keeper is
    # nobody's child: harness.KEEPER_END_RE); declared, or with its
    # agent's own end declared (a host crash), it passes.
    "test_keeper_died": ["kdied", "its lease keeper ended badly",
                         "lease keeper pid 4242 died"],
    "test_keeper_exit1": ["kexit", "keeper pid 4243 exits with status 1"],
    "test_keeper_ended_on_purpose": None,
    "test_keeper_with_its_host": None,
    # The watchdog stand-in (watchdogs.py): a keeper that stops petting
    # fails the test, unless the test took its host down (forget).
    "test_watchdog_expires": ["watchdog stand-in of inner",
                              "host hx's lease keeper stopped petting"],
    "test_watchdog_petted": None,
    "test_watchdog_of_a_crashed_host": None,
    "test_module_first": None,
    # The module's stand-in leaked in the first test; it exits, and says
    # so, when the module's cluster stops after the last one.
    "test_module_last": ["[teardown]", "module clusters stop",
                         "LeakSanitizer", "standin_leak"],
}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    cc = os.environ.get("SAN_CC", "clang")
    if shutil.which(cc) is None:
        pytest.fail("%s not installed (scripts/install-deps installs it)"
                    % cc)
    out = str(tmp_path_factory.mktemp("standin") / "standin")
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-g", "-O1",
                    "-fsanitize=address,undefined",
                    "-fno-omit-frame-pointer", "-fno-sanitize-recover=all",
                    "-o", out, STANDIN_C], check=True)
    return out


@pytest.fixture(scope="module")
def inner(standin, tmp_path_factory):
    """Runs the inner session once; returns (counts, reasons, output)."""
    d = tmp_path_factory.mktemp("inner")
    (d / "conftest.py").write_text(INNER_CONFTEST)
    (d / "test_planted.py").write_text(INNER_TESTS)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ASAN_", "UBSAN_", "LSAN_", "PYTEST_"))}
    env.update(STANDIN=standin, PYTHONDONTWRITEBYTECODE="1",
               CVIRT_TEST_COUNTS=str(d / "counts.json"),
               INNER_REASONS=str(d / "reasons.json"))
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", "--rootdir", str(d), "--basetemp",
         str(d / "tmp"), str(d / "test_planted.py")],
        cwd=str(d), env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    with open(d / "counts.json") as f:
        counts = json.load(f)
    with open(d / "reasons.json") as f:
        reasons = json.load(f)
    return counts, reasons, out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_planted_bug_fails_the_test_that_touched_it(inner, name):
    """Each inner test ends as EXPECTED says: the clean stand-in and the
    declared kill pass; a segfault in a handler, UB, a leak reported at
    exit, exit 1 on SIGTERM, a forked child's report before a declared
    kill, a client command's leak, a leak seen only when a module's
    cluster stops and an undeclared bad end of a lease keeper each fail
    the test that touched it, naming the cause."""
    _, reasons, out = inner
    want = EXPECTED[name]
    got = "\n".join(reasons.get(name, []))
    if want is None:
        assert not got, "%s should pass:\n%s" % (name, got)
    else:
        assert got, "%s should fail:\n%s" % (name, out[-6000:])
        for w in want:
            assert w in got, "%s: %r not in:\n%s" % (name, w, got)


@pytest.mark.parametrize("spec", [None, "auto", "/dev/watchdog"])
def test_agent_without_a_stand_in_is_refused(spec):
    """An agent a test starts without the stand-in or none is refused
    before it runs: with auto (the default) or a device, its keeper would
    arm a real watchdog on a machine that has one. Guards
    cvirt._watchdog_check (called by Daemon.start)."""
    import cvirt
    argv = ["ip", "netns", "exec", "x", "/x/build-san/cvirt", "agent",
            "--data", "/d"] + (["--watchdog", spec] if spec else [])
    with pytest.raises(cvirt.CvirtError, match="--watchdog %s" %
                       (spec or "auto")):
        cvirt._watchdog_check(argv)
    cvirt._watchdog_check(argv[:6] + ["--watchdog", "none"])
    cvirt._watchdog_check(argv[:6] + ["--watchdog", "unix:/w/h1.sock"])
    cvirt._watchdog_check(["/x/cvirt", "manager", "--data", "/d"])


def test_counts_each_test_once(inner):
    """tests/run reads $CVIRT_TEST_COUNTS: a test whose teardown failed
    counts once, as failed (pytest's own line says "passed" and "error");
    every test has its time (harness.pytest_runtest_logreport)."""
    counts, _, out = inner
    failing = sorted(n for n, w in EXPECTED.items() if w)
    assert counts["passed"] == len(EXPECTED) - len(failing), counts
    assert counts["failed"] == len(failing), counts
    assert counts["skipped"] == 0 and counts["skips"] == {}, counts
    assert sorted(f.split("::")[-1] for f in counts["failures"]) == \
        failing, counts
    # Each test's time (tests/run prints the slowest modules from it).
    assert sorted(n.split("::")[-1] for n in counts["durations"]) == \
        sorted(EXPECTED), counts
    assert all(d >= 0 for d in counts["durations"].values()), counts


def test_reset_storm_fails_the_test(tmp_path):
    """A guest that cannot boot resets in a loop (the test guest's kernel
    in 64 MiB: every 0.1-0.25 s); check() names it. One reset, resets
    seconds apart (a watchdog, a test's reboot), or the chain SeaBIOS
    makes of a reboot (ok4: the 15 resets in 0.4 s of a loaded full run,
    which then booted) are no problem. Guards harness.reset_storms and its
    call in check()."""
    import harness
    log = tmp_path / "agent-h1.log"
    burst = ["03.007 agent info: vm ok4: reset (host-qmp-system-reset)"] + \
        ["%06.3f agent info: vm ok4: reset (guest-reset)" % t for t in (
            3.075, 3.082, 3.140, 3.146, 3.214, 3.220, 3.247, 3.253, 3.289,
            3.294, 3.328, 3.334, 3.405, 3.410)]
    lines = ["23:59:58.%03d agent info: vm b1: reset (guest-reset)"
             % (i * 90) for i in range(6)] + \
        ["00:00:00.%03d agent info: vm b1: reset" % (i * 100)
         for i in range(6)] + \
        ["00:00:%02d.000 agent info: vm ok1: reset" % (i * 3)
         for i in range(12)] + ["00:00:01.000 agent info: vm ok2: reset",
                                "00:00:01.000 agent info: vm ok3: started"] + \
        ["00:06:" + b for b in burst] + ["00:06:20.000 agent info: vm ok4: "
                                         "reset (host-qmp-system-reset)"] + \
        ["00:06:" + b.replace("03.", "23.") for b in burst]
    log.write_text("\n".join(lines) + "\n")
    harness.watch_log(str(log), "agent h1")
    try:
        problems = harness.check()
    finally:
        harness._logs.pop(str(log), None)
        harness._offsets.pop(str(log), None)
    assert len(problems) == 1, problems
    assert "vm b1 reset 12 times in 2.5 s: its guest cannot boot" in \
        problems[0], problems


KILLED_TESTS = r'''
import time


def test_fails():
    assert 6 * 7 == 41, "planted failure"


def test_passes():
    pass


def test_hangs():
    time.sleep(600)
'''


@pytest.mark.parametrize("workers", [0, 2])
def test_a_killed_pass_still_says_what_failed_and_what_ran(tmp_path,
                                                           workers):
    """tests/run stops a pass that overruns with SIGTERM; pytest's own
    summary is then lost. The harness keeps $CVIRT_TEST_COUNTS current
    with "partial": true (a test still running has not passed), writes it
    once more on SIGTERM with what is running, and each failure's text
    goes to COUNTS.failures as it happens: on one process and under
    pytest-xdist (the controller writes). Guards harness.py's
    pytest_runtest_logstart, _write_counts(partial) and on_term; tests/run
    prints both when the counts are partial."""
    (tmp_path / "conftest.py").write_text(
        "import sys\nsys.path.insert(0, %r)\n"
        "from harness import *  # noqa: F401,F403\n" % HERE)
    (tmp_path / "test_killed.py").write_text(KILLED_TESTS)
    counts_path = tmp_path / "counts.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "CVIRT_TEST_COUNTS"))}
    env.update(PYTHONDONTWRITEBYTECODE="1",
               CVIRT_TEST_COUNTS=str(counts_path))
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "t"),
            str(tmp_path / "test_killed.py")]
    argv += ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    p = subprocess.Popen(argv, cwd=str(tmp_path), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def hanging():
            if not counts_path.exists():
                return False
            with open(counts_path) as f:
                c = json.load(f)
            return [n for n in c.get("running", {}) if "hangs" in n] and \
                c["failed"] == 1 and c["passed"] == 1
        cvirt_wait(hanging, 60, "the inner session to reach test_hangs")
        time.sleep(1.5)
        p.terminate()
        out = p.communicate(timeout=30)[0].decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(counts_path) as f:
        counts = json.load(f)
    assert counts["partial"] is True, counts
    assert counts["passed"] == 1 and counts["failed"] == 1, counts
    assert [n.split("::")[-1] for n in counts["failures"]] == \
        ["test_fails"], counts
    running = {n.split("::")[-1]: s for n, s in counts["running"].items()}
    # Written at SIGTERM: the hanging test ran 1.5 s or more by then.
    assert list(running) == ["test_hangs"] and running["test_hangs"] >= 1.5, \
        (counts, out[-3000:])
    with open(str(counts_path) + ".failures") as f:
        failures = f.read()
    assert "test_fails (call" in failures and "planted failure" in \
        failures, failures


def test_wait_for_retries_only_a_daemon_that_is_not_up(cvirt_bin, tmp_path):
    """wait_for(starting=True) tries again on what the real CLI says when
    the manager does not listen yet, and on nothing else. Guards
    cvirt._STARTING_RE against the CLI's words: they changed once (libcurl's
    "Couldn't connect to server" became httpc.c's "cannot connect to H
    port N: Connection refused") and every wait across a manager restart
    failed at the first refusal instead of waiting."""
    import socket
    import cvirt
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                   # nobody listens there now
    token = tmp_path / "token"
    token.write_text("x\n")
    argv = [cvirt_bin, "--url", "http://127.0.0.1:%d" % port,
            "--token-file", str(token), "vm", "list"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p
    down = cvirt.CvirtError("cvirt vm list: exit %d\nstdout: %s\nstderr: %s"
                            % (p.returncode, p.stdout, p.stderr))
    assert cvirt.refused(down), p.stderr
    calls = []

    def up_at_third():
        calls.append(1)
        if len(calls) < 3:
            raise down
        return "up"
    assert cvirt.wait_for(up_at_third, 10, "x", interval=0.01,
                          starting=True) == "up"
    # Without starting=True, or for an error of a daemon that is up,
    # the first one ends the wait.
    with pytest.raises(cvirt.CvirtError):
        cvirt.wait_for(lambda: (_ for _ in ()).throw(down), 10, "x")
    failed = cvirt.CvirtError("cvirt vm list: exit 1\nstdout: \nstderr: "
                              "cvirt: internal error (500)")
    with pytest.raises(cvirt.CvirtError):
        cvirt.wait_for(lambda: (_ for _ in ()).throw(failed), 10, "x",
                       starting=True)


def test_fault_suite_sampler_counts_every_copy():
    """test_faults.Copies, the fault suite's detector of a VM running
    twice, counts a QEMU that first appears as its parent's fork (another
    command line) and becomes the VM's QEMU by exec, as the agent starts
    one, and counts a stopped one apart. The first version filed such a
    pid as "not the VM's" for good, and the suite saw no new copy at all."""
    import signal
    import uuid as uuidlib
    from test_faults import Copies
    u = str(uuidlib.uuid4())
    qemu = [sys.executable, "-c", "import time; time.sleep(4)", "-uuid", u]
    c = Copies(u)
    procs = []
    try:
        time.sleep(0.1)
        # A fork that execs into "QEMU" after 1 s (the sampler has long
        # seen it by then), and one that is QEMU from its start.
        procs.append(subprocess.Popen(
            ["sh", "-c", "sleep 1; exec \"$Q\" -c 'import time; "
             "time.sleep(4)' -uuid \"$U\""],
            env=dict(os.environ, Q=sys.executable, U=u)))
        procs.append(subprocess.Popen(qemu))
        stopped = subprocess.Popen(qemu)
        procs.append(stopped)
        os.kill(stopped.pid, signal.SIGSTOP)
        # Waits for every pid, not for the counts alone: the sampler may
        # see the stopped copy run before its SIGSTOP lands, and then has
        # two runnable copies at once before the fork's exec (a full run
        # ended the wait there and missed the exec).
        cvirt_wait(lambda: {p.pid for p in procs} <= c.pids and
                   c.stopped == 1, 10,
                   "the exec'd fork, the copy and the stopped one seen")
    finally:
        c.stop()
        for p in procs:
            p.kill()
            p.wait()
    assert {p.pid for p in procs} <= c.pids, (c.pids, procs)
    assert c.runnable == 2 and c.stopped == 1, (c.runnable, c.stopped)


def test_host_reset_leaves_no_process_forked_during_it():
    """netns.kill_netns, the fault suite's host reset (crash_host): a
    process of the host that forks all along (as an agent starts a new
    keeper when its keeper dies) leaves no child alive. One listing and
    its kills left a keeper that went on petting after the "reset"; with
    a child forked every few hundred microseconds, one listing leaves
    some here every time."""
    import random
    import netns
    ns = "cvh%05d" % random.randint(0, 99999)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    forker = None
    try:
        forker = subprocess.Popen(
            ["ip", "netns", "exec", ns, "sh", "-c",
             "i=0; while [ $i -lt 3000 ]; do sleep 60 & i=$((i+1)); done; "
             "wait"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cvirt_wait(lambda: len(subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True,
            text=True).stdout.split()) > 20, 10, "the forker's children")
        killed = netns.kill_netns(ns)
        assert forker.pid in killed or forker.poll() is not None
        left = subprocess.run(["ip", "netns", "pids", ns],
                              capture_output=True, text=True).stdout.split()
        # A killed process may still be listed while it exits; none may
        # be one that was never killed.
        assert not set(map(int, left)) - set(killed), left
        cvirt_wait(lambda: not subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True,
            text=True).stdout.split(), 10, "every process of %s gone" % ns)
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", ns],
                                  capture_output=True,
                                  text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass
        if forker is not None:
            forker.wait()
        subprocess.run(["ip", "netns", "del", ns])


def test_fault_suite_sampler_looks_again_at_a_process_mid_exec():
    """test_faults.Copies: a process first seen in the middle of its exec
    into the VM's QEMU (the kernel has set the new comm, the command line
    still reads empty) is looked at again, and counted; a kernel thread
    (no command line ever) is read once. A version that filed every
    process without a command line for good missed the new QEMU of a
    failover in a run of the fault suite."""
    from test_faults import Copies
    u = "0b5e0d4c-2f3a-4f52-9d49-1c1d7c1b1a11"
    calls = {"kthread": 0}

    class Fake(Copies):
        looks = 0

        @staticmethod
        def _listing():
            return {2, 100}

        @staticmethod
        def _stat(pid):
            if pid == 2:
                return ("kthreadd", "S", Copies.PF_KTHREAD, "1")
            return ("qemu-system-x86", "R", 0, "55")

        def _cmdline(self, pid):
            if pid == 2:
                calls["kthread"] += 1
                return None
            Fake.looks += 1
            # The first look: mid-exec, no command line yet.
            return None if Fake.looks == 1 else [
                "qemu-system-x86_64", "-name", "x", "-uuid", u]

        @staticmethod
        def _state(pid):
            return "run"

    c = Fake(u, start=False)
    for r in range(1, 11):
        c.round(r)
    assert c.pids == {100} and c.runnable == 1, (c.pids, c.other)
    assert calls["kthread"] == 1, calls
