"""The suite's net for crashes: sanitizer reports, crash messages in daemon
logs, and daemons that died or did not exit 0 when asked to stop.

Every cvirt process the suites start runs a sanitizer build (tests/run
points CVIRT_BIN at build-san/cvirt) with the options below: a report
halts the process and lands in PREFIX.PID, where PREFIX is the daemon's
own (manager.san beside manager.log) or, for client commands, the
cluster's client.san. Forked children (the agent's lease keeper, `cvirt
up`'s manager and agent) inherit the options and write their own
PREFIX.PID. check() reads what is new in every such file and in every
daemon log, and judges every daemon run that has ended: one that exited
non-zero, died of a signal or had to be killed after SIGTERM is a
problem unless the test declared it (Daemon.kill, Daemon.declare_exit).
A declared end hides nothing else: a report its daemon wrote before the
kill is still one.

The pytest hooks at the end (imported by conftest.py) run check() after
every phase of every test: a problem fails the phase (a teardown problem,
such as a leak reported when a module's cluster stops after its last
test, is an error of that test). They also write the outcome of each
test to $CVIRT_TEST_COUNTS for tests/run. docs/testing.md says all this
for people.
"""

import glob
import json
import os
import re
import signal
import time

# fast_unwind_on_malloc=0: allocation stacks through libjansson (built
# without frame pointers) lose the caller that leaked otherwise; it cost
# no measurable time here (docs/testing.md).
ASAN_OPTIONS = ("halt_on_error=1:abort_on_error=0:detect_leaks=1:"
                "handle_abort=1:handle_sigill=1:handle_sigfpe=1:"
                "fast_unwind_on_malloc=0:print_summary=1")
UBSAN_OPTIONS = "halt_on_error=1:print_stacktrace=1"

# Lines in a daemon log that mean a crash or a report (the sanitizers
# write theirs to PREFIX.PID, but the banner of a fatal signal and
# anything from a child without our options land here).
CRASH_RE = re.compile(
    r"==\d+==\s*ERROR:\s*\w*Sanitizer"
    r"|\w+Sanitizer:DEADLYSIGNAL"
    r"|SUMMARY:\s*\w*Sanitizer"
    r"|\bruntime error:"
    r"|\bSegmentation fault\b"
    r"|\bcore dumped\b"
    r"|^\s*Aborted\b"
    r"|\bAssertion [`'].*' failed"
    r"|\*\*\* .* \*\*\*: terminated"
    r"|double free or corruption|free\(\): invalid|malloc\(\): |"
    r"corrupted size vs")

# Lines in a daemon log saying an agent's lease keeper ended some other way
# than exit 0: the keeper outlives its agent and is nobody's child, so no
# Popen sees its status. It logs its own exit status (src/agent/kmain.c),
# and the agent logs a keeper it sees die, exit non-zero or ignore SIGTERM
# (src/agent/lease.c). A crash also leaves its sanitizer report in the
# agent's PREFIX.PID (the keeper inherits the agent's environment) and its
# stderr is the agent's log.
KEEPER_END_RE = re.compile(
    r"\blease keeper pid \d+ (died\b|exited with status [1-9]|did not exit)"
    r"|\bkeeper pid \d+ exits with status [1-9]")

# An agent's line for each QMP RESET of a VM, with QEMU's reason when it
# gives one (src/agent/vmhost.c). A guest that cannot boot resets in a
# loop: the test guest's kernel in 64 MiB fails before its console is up
# and resets every 0.1-0.25 s, for as long as the VM runs. A guest that is
# reset and boots resets in a short chain instead: SeaBIOS, finding its
# shadowed copy already run, resets the machine again, and under TCG a
# reset request races the vCPU, so one reboot gave 1-8 guest resets within
# 0.5 s here and 15 in 0.4 s in a loaded full run, then a normal boot
# (docs/testing.md). A storm is a chain (resets of one VM each less than
# RESET_GAP_S after the one before) of RESET_STORM or more resets that goes
# on for RESET_SUSTAIN_S or longer: such a broken guest no test may accept
# (and it burns a core under TCG).
RESET_RE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) agent info: vm (\S+): "
                      r"reset(?: \([a-z-]+\))?$")
RESET_STORM = 10
RESET_GAP_S = 2.0
RESET_SUSTAIN_S = 2.0

_san = {}       # sanitizer log prefix -> label
_logs = {}      # daemon log path -> label
_offsets = {}   # path -> bytes already read
_runs = []      # Run objects whose end has not been judged yet
_keeper_ends = {}   # log path -> why its keeper's end is expected


def sanitizer_env(env, prefix, label):
    """A copy of env whose sanitizer reports go to PREFIX.PID files, which
    check() then reads; label names the process(es) in a problem."""
    env = dict(env)
    # $CVIRT_ASAN_OPTIONS adds to ours (a later option wins), e.g.
    # detect_leaks=0 while chasing something else.
    extra = os.environ.get("CVIRT_ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = ASAN_OPTIONS + (":" + extra if extra else "") + \
        ":log_path=" + prefix
    env["UBSAN_OPTIONS"] = UBSAN_OPTIONS + ":log_path=" + prefix
    _san[prefix] = label
    return env


def watch_log(path, label):
    """check() reads what is new in the log at path for crash lines."""
    _logs[path] = label


def declare_keeper_end(log_path, why):
    """The test ends the lease keeper of the agent that logs to log_path
    on purpose (or lets it fail): KEEPER_END_RE lines read from that log by
    the next check() are not problems. A declared end of the agent's own
    run (Daemon.kill, Daemon.declare_exit) excuses them too: a host crash
    takes agent and keeper at once."""
    _keeper_ends[log_path] = why


class Run:
    """One run of a daemon (a Popen) whose end check() judges."""

    def __init__(self, name, proc, log_path):
        self.name, self.proc, self.log_path = name, proc, log_path
        self.declared = None    # why the test lets this run end any way
        self.termed = False     # SIGTERM was sent
        self.forced = None      # seconds it ignored SIGTERM before SIGKILL
        _runs.append(self)


def _signame(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return "signal %d" % n


def _tail(path, lines=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _judge(run):
    rc = run.proc.returncode
    if run.declared is not None:
        return None
    if run.forced is not None:
        why = "did not exit within %s s of SIGTERM (killed)" % run.forced
    elif rc == 0:
        return None
    elif rc < 0:
        why = "died of %s%s" % (_signame(-rc),
                                " after SIGTERM" if run.termed else "")
    else:
        why = "exited with status %d%s" % (
            rc, " on SIGTERM" if run.termed else " by itself")
    return ("%s (pid %d) %s (a test that means it says so: Daemon.kill, "
            "Daemon.declare_exit); log %s ends:\n%s" % (
                run.name, run.proc.pid, why, run.log_path,
                _tail(run.log_path)))


def _read_new(path):
    """What was appended to path since the last call (whole lines only;
    a partial last line waits for the next call)."""
    try:
        with open(path, "rb") as f:
            f.seek(_offsets.get(path, 0))
            data = f.read()
    except OSError:
        return ""
    end = data.rfind(b"\n") + 1
    _offsets[path] = _offsets.get(path, 0) + end
    return data[:end].decode(errors="replace")


def reset_storms(lines):
    """VMs whose resets in lines (an agent log's) make a storm (see
    RESET_RE), as {vm: (resets, seconds)} of the first storm's chain."""
    times = {}
    for ln in lines:
        m = RESET_RE.match(ln)
        if m:
            h, mi, sec, ms = (int(x) for x in m.groups()[:4])
            times.setdefault(m.group(5), []).append(
                h * 3600 + mi * 60 + sec + ms / 1000.0)
    storms = {}
    for vm, ts in times.items():
        # A log line carries no date: a storm across midnight wraps.
        ts = [t + 86400 if t < ts[0] else t for t in ts]
        chain = [ts[0]]
        for t in ts[1:] + [None]:
            if t is not None and t - chain[-1] < RESET_GAP_S:
                chain.append(t)
                continue
            if len(chain) >= RESET_STORM and \
                    chain[-1] - chain[0] >= RESET_SUSTAIN_S:
                storms[vm] = (len(chain), round(chain[-1] - chain[0], 1))
                break
            chain = [t]
    return storms


def _excerpt(text, lines=40):
    ls = text.strip("\n").splitlines()
    more = len(ls) - lines
    return "\n".join(ls[:lines]) + ("\n[%d more lines]" % more
                                    if more > 0 else "")


_pending = []   # problems collect() found, for the next check()


def _cores():
    """Core files in the daemons' working directory (ours: they never
    chdir), as {path: mtime}. ASan turns crashes into reports and disables
    core dumps, but a crash it missed leaves one where core_pattern says
    "core"."""
    found = {}
    for path in glob.glob(os.path.join(os.getcwd(), "core*")):
        try:
            found[path] = os.stat(path).st_mtime
        except OSError:
            pass
    return found


_cores_seen = _cores()


def add_problem(text):
    """A problem another part of the harness saw (the watchdog stand-in,
    watchdogs.py, from its thread): the next check() returns it."""
    _pending.append(text)


def collect():
    """Reads now what check() would (before the files go away); the next
    check() returns it."""
    _pending.extend(check())


def check():
    """Problems seen since the last call: each a string naming the daemon,
    what happened and where to read more. Empty when all is well."""
    problems = []
    while _pending:     # one pop at a time: the stand-in's thread adds
        problems.append(_pending.pop(0))
    excused = set(_keeper_ends) | {r.log_path for r in _runs
                                   if r.declared is not None}
    _keeper_ends.clear()
    for run in list(_runs):
        if run.proc.poll() is None:
            continue
        _runs.remove(run)
        p = _judge(run)
        if p:
            problems.append(p)
    for prefix, label in list(_san.items()):
        for path in sorted(glob.glob(glob.escape(prefix) + ".*")):
            new = _read_new(path)
            if new.strip():
                problems.append("%s: sanitizer report in %s:\n%s"
                                % (label, path, _excerpt(new)))
    for path, mtime in _cores().items():
        if _cores_seen.get(path) != mtime:
            _cores_seen[path] = mtime
            problems.append("a process dumped core: %s" % path)
    for path, label in list(_logs.items()):
        new = _read_new(path)
        lines = new.splitlines()
        hits = [i for i, ln in enumerate(lines) if CRASH_RE.search(ln)]
        if hits:
            problems.append("%s: crash in its log %s:\n%s" % (
                label, path, _excerpt("\n".join(lines[max(0, hits[0] - 5):]),
                                      30)))
        for vm, (n, secs) in sorted(reset_storms(lines).items()):
            problems.append("%s: vm %s reset %d times in %.1f s: its guest "
                            "cannot boot (the test guest needs 128 MiB); "
                            "log %s" % (label, vm, n, secs, path))
        ends = [ln for ln in lines if KEEPER_END_RE.search(ln)]
        if ends and path not in excused:
            problems.append("%s: its lease keeper ended badly (a test that "
                            "means it says so: harness.declare_keeper_end); "
                            "log %s:\n%s" % (label, path,
                                             _excerpt("\n".join(ends), 10)))
    return problems


def forget():
    """Drops every watched file and run (the next check() starts afresh)."""
    _san.clear()
    _logs.clear()
    _offsets.clear()
    _keeper_ends.clear()
    del _runs[:]
    del _pending[:]


# ---- pytest hooks (conftest.py: from harness import *) -------------------

__all__ = ["pytest_runtest_makereport", "pytest_runtest_logreport",
           "pytest_runtest_logstart", "pytest_collectreport",
           "pytest_sessionstart", "pytest_sessionfinish"]

_outcomes = {}      # nodeid -> "passed" | "failed" | "skipped"
_skip_reasons = {}  # nodeid -> reason
_durations = {}     # nodeid -> seconds, setup + call + teardown
_collect_errors = []
_running = {}       # nodeid -> monotonic time it started
_counts_path = [None]   # $CVIRT_TEST_COUNTS in the controlling process


def _attach(rep, problems, when):
    text = ("cvirt harness: %d problem(s) seen during %s:\n\n"
            % (len(problems), when)) + "\n\n".join(problems)
    if rep.passed or rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = text
    else:
        rep.sections.append(("cvirt harness", text))


def _makereport(item, call):
    """Fails the phase on any problem check() finds; on a failure,
    attaches the tail of every live cluster's daemon logs."""
    import cvirt
    outcome = yield
    rep = outcome.get_result()
    problems = check()
    if problems:
        when = {"teardown": "teardown (module clusters stop after their "
                            "last test)"}.get(call.when, call.when)
        _attach(rep, problems, when)
    if rep.failed and cvirt.Cluster.active:
        for i, cl in enumerate(cvirt.Cluster.active):
            rep.sections.append(("cvirt daemon logs (cluster %d, %s)"
                                 % (i, cl.base), cl.logs()))


try:
    import pytest
except ImportError:     # cluster.py (browser suite), bench/: check() only
    __all__.remove("pytest_runtest_makereport")
else:
    pytest_runtest_makereport = pytest.hookimpl(hookwrapper=True)(
        _makereport)


def _test_id(nodeid):
    """nodeid without pytest-xdist's "@GROUP" (--dist loadgroup)."""
    head, at, group = nodeid.rpartition("@")
    return head if at and re.fullmatch(r"[\w.-]+", group) else nodeid


def pytest_runtest_logstart(nodeid, location):
    _running[_test_id(nodeid)] = time.monotonic()
    if _counts_path[0] is not None:
        _write_counts(_counts_path[0], partial=True)


def pytest_runtest_logreport(report):
    """Each test's outcome: failed if any phase failed, else skipped if
    one was skipped, else passed (pytest's own line counts a test whose
    teardown failed as both passed and error). In the controlling
    process a failure's text goes to $CVIRT_TEST_COUNTS.failures at once
    and the counts are rewritten as each test starts or fails (and on
    SIGTERM), so a pass that is killed (tests/run's timeout) still says
    what failed and what was running."""
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    nid = _test_id(report.nodeid)
    new = "failed" if report.failed else \
        "skipped" if report.skipped else "passed"
    _durations[nid] = _durations.get(nid, 0.0) + report.duration
    cur = _outcomes.get(nid)
    if cur is None or rank[new] > rank[cur]:
        _outcomes[nid] = new
    if new == "skipped":
        r = report.longrepr
        why = r[2] if isinstance(r, tuple) and len(r) == 3 else str(r)
        _skip_reasons[nid] = why[len("Skipped: "):] \
            if why.startswith("Skipped: ") else why
    if report.when == "teardown":
        _running.pop(nid, None)
    path = _counts_path[0]
    if path is None:
        return
    if report.failed:
        text = report.longreprtext
        if len(text) > 20000:
            text = text[:2000] + "\n[...]\n" + text[-18000:]
        with open(path + ".failures", "a") as f:
            f.write("==== %s (%s, %s)\n%s\n\n" % (
                nid, report.when, time.strftime("%H:%M:%S"), text))
    if report.failed:
        _write_counts(path, partial=True)


def pytest_collectreport(report):
    if report.failed:
        _collect_errors.append(report.nodeid or "(collection)")


def pytest_sessionstart(session):
    path = os.environ.get("CVIRT_TEST_COUNTS")
    if not path or hasattr(session.config, "workerinput"):
        return
    _counts_path[0] = path

    def on_term(signum, frame):
        """tests/run's timeout: the counts so far, then the default."""
        _write_counts(path, partial=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    signal.signal(signal.SIGTERM, on_term)


def _write_counts(path, partial):
    counts = {"passed": 0, "failed": len(_collect_errors), "skipped": 0}
    for nid, outcome in _outcomes.items():
        # A test still running has not passed (its setup has).
        if outcome != "failed" and nid in _running:
            continue
        counts[outcome] += 1
    counts["skips"] = {n: _skip_reasons.get(n, "") for n, o in
                       _outcomes.items() if o == "skipped"}
    counts["failures"] = _collect_errors + sorted(
        n for n, o in _outcomes.items() if o == "failed")
    counts["durations"] = {n: round(d, 1) for n, d in _durations.items()}
    if partial:
        now = time.monotonic()
        counts["partial"] = True
        counts["running"] = {n: round(now - t, 1) for n, t in
                             _running.items()}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def pytest_sessionfinish(session, exitstatus):
    """Writes {"passed": N, "failed": N, "skipped": N, "skips": {nodeid:
    reason}, "failures": [nodeid], "durations": {nodeid: seconds}} to
    $CVIRT_TEST_COUNTS (by the controlling process only, under
    pytest-xdist). A module's fixtures count in its first test's setup
    and its last test's teardown, so a module's sum is its wall time.
    Until then the file holds the counts so far with "partial": true and
    "running": {nodeid: seconds since it started}."""
    path = _counts_path[0]
    if path:
        _write_counts(path, partial=False)
