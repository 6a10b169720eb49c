#!/usr/bin/env python3
"""API write throughput: one manager (SQLite inventory under the bench's
temp directory, on disk, not tmpfs), BENCH_WRITES `POST /api/v1/users`
(a user and its API token: two inventory commits, no agent, no password
hashing) from one client and then from BENCH_CLIENTS at once; writes per
second and p99 latency.

With BENCH_BASE_BIN (another cvirt build, e.g. one with
`PRAGMA synchronous=NORMAL`) both binaries run in turns in the same run,
BENCH_RUNS times each, and the figures carry the other as peer and the
ratio (cvirt / peer). Prints one JSON object.

env: CVIRT_BIN, BENCH_BASE_BIN, BENCH_WRITES (default 300), BENCH_CLIENTS
(default 4), BENCH_RUNS (default 3), BENCH_DIR (default bench/tmp).
"""

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("CVIRT_BIN") or os.path.join(ROOT, "build", "cvirt")
BASE_BIN = os.environ.get("BENCH_BASE_BIN")
WRITES = int(os.environ.get("BENCH_WRITES", "300"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TMP = os.environ.get("BENCH_DIR") or os.path.join(ROOT, "bench", "tmp")


def log(msg):
    print("bench_dbwrite: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, token, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.monotonic()
    c.request("POST", path, json.dumps(body),
              {"Authorization": "Bearer " + token,
               "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 201:
        raise RuntimeError("POST %s: %d" % (path, r.status))
    return (time.monotonic() - t0) * 1000


def writes(port, token, prefix, n, clients):
    """(writes/s, p99 ms) of n creates spread over clients threads."""
    lat, errs = [], []

    def worker(k):
        try:
            for i in range(k, n, clients):
                lat.append(post(port, token, "/api/v1/users",
                                {"name": "%s%d" % (prefix, i),
                                 "role": "viewer"}))
        except Exception as e:  # reported below
            errs.append(e)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    secs = time.monotonic() - t0
    return n / secs, sorted(lat)[int(0.99 * (len(lat) - 1))]


def one_run(binary):
    os.makedirs(TMP, exist_ok=True)
    base = tempfile.mkdtemp(prefix="dbwrite.", dir=TMP)
    port = free_port()
    mlog = open(os.path.join(base, "manager.log"), "w")
    m = subprocess.Popen([binary, "manager", "--data", base + "/m",
                          "--listen", "127.0.0.1:%d" % port],
                         stdout=mlog, stderr=mlog)
    try:
        tok = base + "/m/admin.token"
        for _ in range(100):
            if os.path.exists(tok) and os.path.getsize(tok):
                break
            time.sleep(0.1)
        token = open(tok).read().strip()
        for _ in range(100):    # the token is written before it listens
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        one = writes(port, token, "s", WRITES, 1)
        many = writes(port, token, "c", WRITES, CLIENTS)
        return one + many
    finally:
        m.terminate()
        m.wait(timeout=30)
        mlog.close()
        shutil.rmtree(base, ignore_errors=True)


def figure(vals, peer, unit):
    v = statistics.median(vals)
    f = {"value": round(v, 1), "min": round(min(vals), 1),
         "max": round(max(vals), 1), "runs": len(vals), "unit": unit}
    if peer:
        p = statistics.median(peer)
        f.update({"peer": round(p, 1), "peer_name": "BENCH_BASE_BIN",
                  "ratio": round(v / p, 2)})
    return f


def main():
    names = ("api_write_per_s", "api_write_p99_ms",
             "api_write_per_s_%d_clients" % CLIENTS,
             "api_write_p99_ms_%d_clients" % CLIENTS)
    mine = [[] for _ in names]
    base = [[] for _ in names]
    for r in range(RUNS):
        for binary, acc in ((BIN, mine), (BASE_BIN, base)):
            if not binary:
                continue
            got = one_run(binary)
            log("run %d %s: %s" % (r, binary, ", ".join(
                "%.1f" % g for g in got)))
            for a, g in zip(acc, got):
                a.append(g)
    out = {}
    for i, n in enumerate(names):
        out[n] = figure(mine[i], base[i] if BASE_BIN else None,
                        "/s" if "per_s" in n else "ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
