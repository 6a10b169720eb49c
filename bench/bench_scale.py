#!/usr/bin/env python3
"""Scale benchmark: one manager, `cvirt sim` with HOSTS x VMS (default
1,000 x 20) speaking the real agent protocol, then the issue's figures:
convergence time, heartbeats handled per second against those sent, GET p99
of one VM, full VM list time, placement time (the manager's own histogram)
and the manager's RSS. Prints one JSON object.

env: CVIRT_BIN, BENCH_HOSTS, BENCH_VMS, BENCH_DB (sqlite|postgresql: a
throwaway server from tests/pg-server), BENCH_HEARTBEAT_MS (default 1000).
"""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("CVIRT_BIN") or os.path.join(ROOT, "build", "cvirt")
HOSTS = int(os.environ.get("BENCH_HOSTS", "1000"))
VMS = int(os.environ.get("BENCH_VMS", "20"))
DB = os.environ.get("BENCH_DB", "sqlite")
HB_MS = int(os.environ.get("BENCH_HEARTBEAT_MS", "1000"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print("bench_scale: " + msg, file=sys.stderr, flush=True)


class Api:
    """GETs with the admin token, one connection each (as the CLI does:
    the manager does not keep connections alive)."""

    def __init__(self, port, token):
        self.port = port
        self.h = {"Authorization": "Bearer " + token}

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            c.request("GET", path, headers=self.h)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


def metric_sums(text, name, label_re=""):
    """(sum, count) of a histogram over the series whose labels match."""
    s = c = 0.0
    for line in text.splitlines():
        m = re.match(r"%s_(sum|count)\{([^}]*)\} (\S+)" % name, line)
        if m and re.search(label_re, m.group(2)):
            if m.group(1) == "sum":
                s += float(m.group(3))
            else:
                c += float(m.group(3))
    return s, c


def histogram_quantile(text, name, label_re, q):
    """Upper bucket bound holding quantile q (Prometheus-style, coarse)."""
    buckets = {}
    for line in text.splitlines():
        m = re.match(r'%s_bucket\{([^}]*)le="([^"]+)"\} (\S+)' % name, line)
        if m and re.search(label_re, m.group(1)):
            le = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
            buckets[le] = buckets.get(le, 0) + float(m.group(3))
    if not buckets:
        return None
    total = buckets[float("inf")]
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return None


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def main():
    base = tempfile.mkdtemp(prefix="cvirt-bench.")
    procs = []
    pgdir = None
    out = {}
    try:
        dbargs = []
        if DB == "postgresql":
            pgdir = tempfile.mkdtemp(prefix="cvirt-pg.", dir="/tmp")
            url = subprocess.run([os.path.join(ROOT, "tests", "pg-server"),
                                  "start", pgdir], check=True,
                                 capture_output=True, text=True).stdout.strip()
            dbargs = ["--db", url]
        port = free_port()
        mlog = open(os.path.join(base, "manager.log"), "w")
        m = subprocess.Popen([BIN, "manager", "--data", base + "/m",
                              "--listen", "127.0.0.1:%d" % port,
                              "--heartbeat-interval", str(HB_MS),
                              "--heartbeat-timeout", str(max(5000, 5 * HB_MS))]
                             + dbargs, stdout=mlog, stderr=mlog)
        procs.append(m)
        tok = base + "/m/admin.token"
        for _ in range(100):
            if os.path.exists(tok) and os.path.getsize(tok):
                break
            time.sleep(0.1)
        token = open(tok).read().strip()
        slog = open(os.path.join(base, "sim.log"), "w")
        t0 = time.monotonic()
        sim = subprocess.Popen([BIN, "sim", "--manager",
                                "http://127.0.0.1:%d" % port, "--token-file",
                                tok, "--hosts", str(HOSTS), "--vms-per-host",
                                str(VMS), "--listen", "127.0.0.1:%d"
                                % free_port()], stdout=subprocess.PIPE,
                               stderr=slog, text=True)
        procs.append(sim)
        line = sim.stdout.readline()
        if not line.startswith("converged"):
            raise RuntimeError("sim did not converge: %r (see %s)"
                               % (line, base))
        out["scale_hosts"] = HOSTS
        out["scale_vms"] = HOSTS * VMS
        out["scale_db"] = DB
        out["scale_converge_s"] = round(time.monotonic() - t0, 1)
        log(line.strip())
        api = Api(port, token)
        # Heartbeats: reports handled over a window against those due.
        _, m1 = api.get("/metrics")
        w0 = time.monotonic()
        time.sleep(20)
        _, m2 = api.get("/metrics")
        w = time.monotonic() - w0
        lab = 'route="/api/v1/agent/report"'
        s1, c1 = metric_sums(m1.decode(), "cvirt_api_request_duration_seconds", lab)
        s2, c2 = metric_sums(m2.decode(), "cvirt_api_request_duration_seconds", lab)
        out["scale_heartbeats_per_s"] = round((c2 - c1) / w, 1)
        iv = float(re.search(r"^cvirt_heartbeat_interval_seconds (\S+)$",
                             m2.decode(), re.M).group(1))
        out["scale_heartbeat_interval_s"] = iv
        out["scale_heartbeats_due_per_s"] = round(HOSTS / iv, 1)
        out["scale_report_mean_ms"] = round(1000 * (s2 - s1) / max(c2 - c1, 1), 2)
        st, hosts = api.get("/api/v1/hosts")
        out["scale_hosts_up"] = sum(1 for h in json.loads(hosts)
                                    if h["state"] == "up")
        # Single-object GET p99.
        names = ["sim-vm%05d-%03d" % (random.randrange(HOSTS),
                                       random.randrange(VMS))
                 for _ in range(1000)]
        lat = []
        for n in names:
            t = time.perf_counter()
            st, _ = api.get("/api/v1/vms/" + n)
            lat.append((time.perf_counter() - t) * 1000)
            assert st == 200, (n, st)
        lat.sort()
        out["scale_get_p50_ms"] = round(lat[len(lat) // 2], 2)
        out["scale_get_p99_ms"] = round(lat[int(len(lat) * 0.99) - 1], 2)
        # Full list.
        lt = []
        for _ in range(5):
            t = time.perf_counter()
            st, body = api.get("/api/v1/vms")
            lt.append((time.perf_counter() - t) * 1000)
            assert st == 200 and len(json.loads(body)) == HOSTS * VMS
        out["scale_list_ms"] = round(statistics.median(lt), 1)
        # Placement while the 20,000 VMs were started (under that load),
        # then on the settled cluster: 30 stop/start cycles.
        s, c = metric_sums(m2.decode(), "cvirt_placement_duration_seconds")
        out["scale_placement_loaded_mean_ms"] = round(1000 * s / max(c, 1), 2)
        cli = [BIN, "--url", "http://127.0.0.1:%d" % port, "--token", token]
        for i in range(30):
            n = "sim-vm%05d-%03d" % (random.randrange(HOSTS),
                                      random.randrange(VMS))
            subprocess.run(cli + ["vm", "stop", "--force", n], check=True,
                           capture_output=True)
            subprocess.run(cli + ["vm", "start", n], check=True,
                           capture_output=True)
        _, m3 = api.get("/metrics")
        s3, c3 = metric_sums(m3.decode(), "cvirt_placement_duration_seconds")
        out["scale_placement_mean_ms"] = round(1000 * (s3 - s) /
                                               max(c3 - c, 1), 2)
        out["scale_manager_rss_mib"] = round(rss_kib(m.pid) / 1024, 1)
        # The targets, in bench/run's figure format.
        for k, unit, target in (
                ("scale_get_p99_ms", "ms", "<= 5 ms"),
                ("scale_list_ms", "ms", "<= 300 ms"),
                ("scale_placement_mean_ms", "ms", "<= 10 ms"),
                ("scale_manager_rss_mib", "MiB", "<= 50 MiB"),
                ("scale_heartbeats_per_s", "/s",
                 ">= %s" % out["scale_heartbeats_due_per_s"])):
            out[k] = {"value": out[k], "unit": unit, "target": target}
        print(json.dumps(out))
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if pgdir:
            subprocess.run([os.path.join(ROOT, "tests", "pg-server"), "stop",
                            pgdir])
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
        else:
            log("kept " + base)


if __name__ == "__main__":
    main()
