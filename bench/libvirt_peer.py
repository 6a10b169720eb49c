"""libvirt_peer.py - libvirt from Debian as the provisioning peer, set up as
shared/BRIEF.md says, checked while it runs, and its setup written down.

A peer that is mis-set-up measures its set-up, not libvirt: on a fresh
machine `virsh define + start` took 30 s ten times in a row, because
libvirtd re-probed every QEMU binary on each define (see
docs/performance.md). So every timed run is checked against libvirtd's own
debug log, and a run that re-probed capabilities, or a median over
SANE_MS, raises PeerError naming the cause found in that log; the
benchmark then fails instead of printing a flattering ratio.
"""

import os
import re
import shutil
import stat
import subprocess
import time

PKGS = ["libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients"]
URI = "qemu:///system"
# define + start of the test guest takes ~0.3-0.7 s here when set up
# right; above this the figure says more about the set-up than libvirt.
SANE_MS = 3000
RUN_DIR = "/run/libvirt"
PROBE_RE = re.compile(r"Try to probe capabilities of '([^']+)'")
WHY_RE = re.compile(r": virQEMUCaps(?:IsValid|KVMUsable):\d+ : (.*)")
PROBLEM_RE = re.compile(r"\d+: (?:error|warning) : (.*)")
# What a few of libvirt's messages mean for this benchmark.
HINTS = (
    ("should be usable now",
     "/dev/kvm is open to libvirt's QEMU user but KVM does not work here "
     "(no vmx/svm), so libvirt finds its TCG-only capabilities outdated "
     "and re-probes every QEMU binary on every lookup; the benchmark masks "
     "/dev/kvm for libvirtd in that case (see libvirt_peer.kvm_open_for)"),
    ("virtlogd-sock", "virtlogd is not running (libvirt's QEMU logs go "
     "through it)"),
    ("virtlockd-sock", "virtlockd is not running"),
    ("libvirt-qemu", "the system user or group libvirt-qemu is missing"),
)


class PeerError(Exception):
    """The peer could not run, or ran mis-set-up; str() is the reason."""


def log(msg):
    import sys
    print("libvirt_peer: " + msg, flush=True, file=sys.stderr)


def run(argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise PeerError("%s failed (exit %d): %s" % (
            " ".join(argv), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def virsh(*args, check=True):
    return run(["virsh", "-q", "-c", URI] + [str(a) for a in args],
               check=check)


def pid_of(name):
    p = run(["pidof", name], check=False)
    return [int(x) for x in p.stdout.split()]


def qemu_user():
    """The user libvirt runs QEMU as: qemu.conf's, else Debian's default."""
    try:
        with open("/etc/libvirt/qemu.conf") as f:
            m = re.search(r'^\s*user\s*=\s*"([^"]+)"', f.read(), re.M)
            if m:
                return m.group(1)
    except OSError:
        pass
    return "libvirt-qemu"


def kvm_open_for(user):
    """True when `user` (with its groups) may open /dev/kvm read-write,
    which is what libvirt 9.0 takes for "KVM usable" (virFileAccessibleAs
    in virQEMUCapsKVMUsable), whatever the CPU can do."""
    if not os.path.exists("/dev/kvm"):
        return False
    p = run(["setpriv", "--reuid", user, "--regid", user, "--init-groups",
             "test", "-r", "/dev/kvm", "-a", "-w", "/dev/kvm"], check=False)
    return p.returncode == 0


def cpu_has_virt():
    with open("/proc/cpuinfo") as f:
        return re.search(r"^flags\s*:.*\b(vmx|svm)\b", f.read(), re.M) \
            is not None


def explain(lines):
    """One line for the lines libvirtd logged: its words, then what they
    mean where a hint knows."""
    text = " | ".join(lines[:4])
    for needle, hint in HINTS:
        if any(needle in ln for ln in lines):
            return "%s (libvirtd: %s)" % (hint, text)
    return "libvirtd: " + text if text else "nothing in libvirtd's log"


class Libvirt:
    """libvirtd and virtlogd started (or found) by the benchmark in workdir
    (logs, the /dev/kvm mask); down() leaves nothing it started running."""

    def __init__(self, workdir):
        self.dir = workdir
        self.log_path = os.path.join(workdir, "libvirtd-debug.log")
        self.procs = []         # (name, Popen) we started
        self.domains = set()
        self.setup = []         # lines for bench/results.md
        self.foreign = None     # pid of a libvirtd we did not start

    # ---- set-up -------------------------------------------------------

    def install(self):
        if shutil.which("virsh") and shutil.which("libvirtd") and \
                shutil.which("virtlogd"):
            return
        log("installing libvirt from Debian")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        argv = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y",
                "-q", "--no-install-recommends"] + PKGS
        if run(argv, check=False, env=env).returncode != 0:
            run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"],
                check=False, env=env)
            run(argv, env=env)

    def accounts(self):
        """The system user and group libvirt-qemu and /var/log/libvirt,
        which Debian's libvirt-daemon-system would make."""
        if run(["getent", "group", "libvirt-qemu"], check=False).returncode:
            run(["groupadd", "--system", "libvirt-qemu"])
        if run(["getent", "passwd", "libvirt-qemu"], check=False).returncode:
            run(["useradd", "--system", "--gid", "libvirt-qemu",
                 "--no-create-home", "--home-dir", "/var/lib/libvirt",
                 "--shell", "/usr/sbin/nologin", "libvirt-qemu"])
        os.makedirs("/var/log/libvirt/qemu", exist_ok=True)

    def spawn(self, name, argv, env=None):
        out = open(os.path.join(self.dir, name + ".out"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=out, env=env, start_new_session=True)
        out.close()
        self.procs.append((name, p))
        return p

    def wait(self, fn, timeout, what, proc=None):
        deadline = time.monotonic() + timeout
        while not fn():
            if proc is not None and proc.poll() is not None:
                raise PeerError("%s exited (%d) while starting: %s" % (
                    what, proc.returncode, self.tail(what)))
            if time.monotonic() > deadline:
                raise PeerError("%s not ready after %d s: %s" % (
                    what, timeout, self.tail(what)))
            time.sleep(0.05)

    def tail(self, name, n=5):
        try:
            with open(os.path.join(self.dir, name + ".out"),
                      errors="replace") as f:
                return " | ".join(ln.strip() for ln in f.readlines()[-n:])
        except OSError:
            return ""

    def up(self):
        """Installs, starts and checks libvirt; PeerError when it cannot."""
        self.install()
        self.accounts()
        version = run(["libvirtd", "--version"]).stdout.strip()
        qemu = run(["qemu-system-x86_64", "--version"]).stdout.splitlines()[0]
        running = pid_of("libvirtd")
        if running:
            # Not ours: use it, but say so; its set-up is unknown to us and
            # only the time bound can catch a bad one.
            self.foreign = running[0]
            with open("/proc/%d/cmdline" % self.foreign, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode().strip()
            self.setup.append("libvirtd already running (pid %d: `%s`), "
                              "not started by the benchmark" % (
                                  self.foreign, cmd))
        t0 = time.monotonic()
        if not running:
            self.start_daemons()
        self.wait(lambda: virsh("version", check=False).returncode == 0, 60,
                  "libvirtd")
        ready_ms = (time.monotonic() - t0) * 1000
        self.setup[:0] = ["%s; %s" % (version, qemu),
                          "packages: `apt-get install --no-install-recommends "
                          "%s`" % " ".join(PKGS),
                          "QEMU runs as `%s`; host CPU %s vmx/svm" % (
                              qemu_user(), "has" if cpu_has_virt() else
                              "has no")]
        if not running:
            self.setup.append("libvirtd answered `virsh version` %.0f ms "
                              "after virtlogd and libvirtd were started" %
                              ready_ms)

    def start_daemons(self):
        if pid_of("virtlogd"):
            self.setup.append("virtlogd already running, not started by "
                              "the benchmark")
        else:
            sock = os.path.join(RUN_DIR, "virtlogd-sock")
            p = self.spawn("virtlogd", ["virtlogd"])
            self.wait(lambda: os.path.exists(sock), 30, "virtlogd", p)
            self.setup.append("`virtlogd` (foreground, started by the "
                              "benchmark)")
        # Capability probes and their reasons at debug level, the rest of
        # libvirtd at warning: enough to name the cause of a slow run.
        env = dict(os.environ,
                   LIBVIRT_LOG_FILTERS="1:qemu_capabilities 1:qemu_process",
                   LIBVIRT_LOG_OUTPUTS="1:file:" + self.log_path)
        argv = ["libvirtd"]
        user = qemu_user()
        if not cpu_has_virt() and kvm_open_for(user):
            # libvirt would take KVM for usable, find it is not, and
            # re-probe every QEMU binary on every lookup. Give libvirtd its
            # own mount namespace where /dev/kvm is a device node only root
            # may open (a node, not /dev/null: /dev/null is open to all,
            # which is why the earlier mask re-probed on every define).
            mask = os.path.join(self.dir, "kvm-mask")
            os.mknod(mask, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    "mount --bind %s /dev/kvm && exec libvirtd" % mask]
            self.setup.append("/dev/kvm is open to %s but the CPU has no "
                              "vmx/svm: libvirtd runs in its own mount "
                              "namespace with /dev/kvm replaced by a "
                              "root-only device node" % user)
        p = self.spawn("libvirtd", argv, env)
        self.setup.append("`libvirtd` (foreground, started by the benchmark,"
                          " default configuration%s)" % (
                              "" if len(argv) == 1 else ", /dev/kvm masked"))
        self.wait(lambda: os.path.exists(os.path.join(RUN_DIR,
                                                      "libvirt-sock")),
                  60, "libvirtd", p)

    # ---- runs ---------------------------------------------------------

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, off):
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(off)
                return f.read().splitlines()
        except OSError:
            return []

    def cause(self, off):
        """What libvirtd logged since offset off that explains a slow or
        failed run: capability re-probes with libvirt's reason, else its
        errors and warnings."""
        lines = self.log_since(off)
        probes = [m.group(1) for m in map(PROBE_RE.search, lines) if m]
        why = list(dict.fromkeys(m.group(1) for m in map(WHY_RE.search, lines)
                                 if m))
        problems = list(dict.fromkeys(m.group(1) for m in
                                      map(PROBLEM_RE.search, lines) if m))
        if probes:
            counts = {b: probes.count(b) for b in probes}
            return "libvirtd re-probed QEMU's capabilities %d times (%s): " \
                "%s" % (len(probes), ", ".join(
                    "%s x%d" % (os.path.basename(b), n)
                    for b, n in counts.items()), explain(why + problems))
        if self.foreign is not None and not lines:
            return "libvirtd was not started by the benchmark, so its " \
                "debug log is not available (see /var/log/libvirt)"
        return explain(problems)

    def define_start(self, name, xml):
        """define + start of domain name from xml: (define_ms, start_ms).
        PeerError when either fails, the domain is not running afterwards
        or libvirtd re-probed capabilities on the way."""
        path = os.path.join(self.dir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        self.remove(name)
        off = self.log_size()
        t0 = time.monotonic()
        d = virsh("define", path, check=False)
        t1 = time.monotonic()
        s = virsh("start", name, check=False) if d.returncode == 0 else d
        t2 = time.monotonic()
        self.domains.add(name)
        for p, what in ((d, "define"), (s, "start")):
            if p.returncode != 0:
                raise PeerError("virsh %s %s failed: %s; %s" % (
                    what, name, p.stderr.strip(), self.cause(off)))
        state = virsh("domstate", name, check=False).stdout.strip()
        if state != "running":
            raise PeerError("%s is %r after virsh start; %s" % (
                name, state, self.cause(off)))
        if self.foreign is None:
            lines = self.log_since(off)
            if any(PROBE_RE.search(ln) for ln in lines):
                raise PeerError("define + start of %s took %.0f ms: %s" % (
                    name, (t2 - t0) * 1000, self.cause(off)))
        return (t1 - t0) * 1000, (t2 - t1) * 1000

    def serial_log(self, name):
        return os.path.join(self.dir, name + ".serial")

    def wait_serial(self, name, text, timeout):
        def seen():
            try:
                with open(self.serial_log(name), errors="replace") as f:
                    return text in f.read()
            except OSError:
                return False
        self.wait(seen, timeout, "%r on the serial console of %s" % (
            text, name))

    def remove(self, name):
        virsh("destroy", name, check=False)
        virsh("undefine", name, check=False)

    def rss_mib(self):
        pid = self.foreign or next((p.pid for n, p in self.procs
                                    if n == "libvirtd"), None)
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def down(self):
        """Removes the domains, then stops the daemons we started (by pid,
        SIGTERM then SIGKILL)."""
        for name in sorted(self.domains):
            self.remove(name)
        self.domains.clear()
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
