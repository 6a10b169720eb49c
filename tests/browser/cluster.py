#!/usr/bin/env python3
"""cluster.py - a throwaway cvirt cluster for the browser tests.

Starts a manager and agents h1 and h2 on 127.0.0.1 with the integration
suite's Cluster helper (tests/integration/cvirt.py), prints one JSON line
{url, token, kernel, initrd, base, logs} on stdout, and stops everything
(daemons and QEMU) when stdin closes or on SIGTERM.
"""

import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cvirt  # noqa: E402


def main():
    hosts = tuple(sys.argv[1:]) or ("h1", "h2")
    cl = cvirt.Cluster()
    stopping = []

    def stop(*_):
        if not stopping:
            stopping.append(1)
            cl.cleanup()
        sys.exit(0)

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
        "kernel": os.path.join(cvirt.GUEST_DIR, "vmlinuz"),
        "initrd": os.path.join(cvirt.GUEST_DIR, "initrd.img"),
    }), flush=True)
    try:
        sys.stdin.read()
    finally:
        stop()


if __name__ == "__main__":
    main()
