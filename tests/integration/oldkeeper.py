"""A stand-in of the lease keeper of cvirt before issue 14, for
test_upgrade.py: what the old agent forked (src/agent/lease.c then:
keeper_loop, lease_keeper_start) and left running with its VMs when it
stopped. Named cvirt-keeper, it writes DATA/keeper.pid (the old agent did),
then each second renews STORAGE/leases/HOST.json by rename (temporary file,
fsync, rename, fsync of the directory) with {"host","seq","renewed","pid"},
kills the recorded QEMUs of a domain it could not renew for 3 s, as the old
one did, and after each round writes DATA/keeper.status
{"NAME":{"ok":B,"age_ms":N}} by rename, N on the monotonic clock. SIGTERM
ends it after its round.

usage: python3 oldkeeper.py --data DATA --host NAME --storage NAME=PATH...
"""

import argparse
import ctypes
import json
import os
import signal
import time

RENEW_S = 1.0
FENCE_S = 3.0
quit_ = False


def on_term(sig, frame):
    global quit_
    quit_ = True


def write_atomic(path, data, mode):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                 mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    d = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(d)
    finally:
        os.close(d)


def has_arg(pid, arg):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return arg.encode() in f.read().split(b"\0")
    except OSError:
        return False


def fence(data, name):
    """SIGKILL every recorded QEMU of storage name (keeper_fence)."""
    killed = 0
    vms = os.path.join(data, "vms")
    for f in sorted(os.listdir(vms)) if os.path.isdir(vms) else []:
        try:
            with open(os.path.join(vms, f)) as fh:
                rec = json.load(fh)
            pid, uuid = int(rec["pid"]), rec["uuid"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rec.get("storage") == name and has_arg(pid, uuid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--storage", action="append", required=True)
    a = ap.parse_args()
    doms = [s.split("=", 1) for s in a.storage]
    ctypes.CDLL(None).prctl(15, b"cvirt-keeper", 0, 0, 0)  # PR_SET_NAME
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    write_atomic(os.path.join(a.data, "keeper.pid"),
                 b"%d\n" % os.getpid(), 0o600)
    now = time.monotonic()
    last_ok = {n: now for n, _ in doms}
    ok = {n: True for n, _ in doms}
    seq = 0
    while not quit_:
        start = time.monotonic()
        seq += 1
        for name, path in doms:
            rec = json.dumps({"host": a.host, "seq": seq,
                              "renewed": int(time.time() * 1000),
                              "pid": os.getpid()}) + "\n"
            try:
                write_atomic(os.path.join(path, "leases", a.host + ".json"),
                             rec.encode(), 0o644)
                ok[name] = True
            except OSError:
                ok[name] = False
            now = time.monotonic()
            if ok[name]:
                last_ok[name] = now
            elif now - last_ok[name] > FENCE_S:
                n = fence(a.data, name)
                print("oldkeeper: lease on storage %s not renewed for %d ms:"
                      " fenced %d QEMU(s)" % (name, (now - last_ok[name])
                                              * 1000, n), flush=True)
        now = time.monotonic()
        st = {n: {"ok": ok[n], "age_ms": int((now - last_ok[n]) * 1000)}
              for n, _ in doms}
        try:
            write_atomic(os.path.join(a.data, "keeper.status"),
                         json.dumps(st, separators=(",", ":")).encode(),
                         0o600)
        except OSError:
            pass
        left = RENEW_S - (time.monotonic() - start)
        if left > 0:
            time.sleep(left)


if __name__ == "__main__":
    main()
