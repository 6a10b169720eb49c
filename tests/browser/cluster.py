#!/usr/bin/env python3
"""cluster.py - a throwaway cvirt cluster for the browser tests.

Starts a manager and agents h1 and h2 on 127.0.0.1 with the integration
suite's Cluster helper (tests/integration/cvirt.py), prints one JSON line
{url, token, kernel, initrd, base, logs} on stdout, and stops everything
(daemons and QEMU) when stdin closes or on SIGTERM.

The integration suite's net (tests/integration/harness.py) watches the
daemons: each line "check" on stdin gets one JSON line {"problems": [...]}
back (sanitizer reports, crashes, daemons that died since the last
check); at the end, a problem seen while stopping (a leak reported at
exit, a daemon that did not exit 0 on SIGTERM) is written to stderr and
the exit status is 1.
"""

import json
import os
import shutil
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cvirt  # noqa: E402
import harness  # noqa: E402


def kill_leftovers(cl):
    """SIGKILL every daemon and QEMU whose command line names our data
    directory, then remove it (when the helper's own cleanup failed)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        argv = cvirt.proc_cmdline(int(entry)) or []
        if any(cl.base + "/" in a or a == cl.base for a in argv):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass
    shutil.rmtree(cl.base, ignore_errors=True)


def main():
    hosts = tuple(sys.argv[1:]) or ("h1", "h2")
    cl = cvirt.Cluster()
    stopping = []

    def stop(*_):
        problems = []
        if not stopping:
            stopping.append(1)
            try:
                cl.cleanup()
            except Exception as e:  # noqa: BLE001 - still leave nothing
                sys.stderr.write("cluster.py: cleanup: %s\n" % e)
                problems.append("cleanup: %s" % e)
                kill_leftovers(cl)
            problems += harness.check()
        for p in problems:
            sys.stderr.write("cluster.py: %s\n\n" % p)
        sys.exit(1 if problems else 0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        cl.start(hosts=hosts)
    except Exception as e:  # noqa: BLE001 - reported to the test runner
        sys.stderr.write("cluster.py: cannot start: %s\n%s\n" % (e, cl.logs()))
        cl.cleanup()
        sys.exit(1)
    print(json.dumps({
        "url": cl.url, "token": cl.token(), "base": cl.base,
        "logs": cl.logdir,
        "kernel": cvirt.GUEST_KERNEL,
        "initrd": cvirt.GUEST_INITRD,
    }), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "check":
                print(json.dumps({"problems": harness.check()}), flush=True)
    finally:
        stop()


if __name__ == "__main__":
    main()
