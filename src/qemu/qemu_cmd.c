/* qemu_cmd.c - QEMU command line from a VM description, and spawning QEMU detached. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"

#define QEMU_DEFAULT_BIN	"qemu-system-x86_64"
/* seccomp filter of every VM; -runas is not used (see docs/security.md). */
#define QEMU_SANDBOX	"on,obsolete=deny,elevateprivileges=deny,spawn=deny," \
	"resourcecontrol=deny"
#define QEMU_MAX_CPUS		255
#define QEMU_MIN_MIB		16
#define QEMU_MAX_MIB		(4 * 1024 * 1024)	/* 4 TiB */
#define QEMU_AHCI_PORTS		6	/* q35's built-in AHCI: ide.0 .. ide.5 */
/*
 * Under TCG the guest gets this much RAM beyond what was asked, because
 * QEMU 7.2 loses guest writes in live migrations otherwise: its
 * cpu_physical_memory_sync_dirty_bitmap() has a fast path for RAM blocks
 * whose length is a multiple of 256 KiB (any whole number of MiB; block
 * offsets are always aligned) that clears the migration dirty bits without
 * resetting TCG's TLB. A guest store through a TLB entry that had already
 * seen its page dirty then marks nothing, and the page is not sent again
 * (fixed in QEMU 9.0 by commit 03bfc2188f, "physmem: Fix migration dirty
 * bitmap coherency with TCG memory access"). 8 KiB more (QEMU rounds -m
 * up to 8 KiB) makes pc.ram's length unaligned: its dirty bits go through
 * the per-page path, which resets the TLB. Source and destination build
 * the same -m from the same memory_mib. Numbers: docs/cluster.md,
 * tests/tcg-migration/run.
 */
#define QEMU_TCG_RAM_PAD_KIB	8

/* A growing argv; after the first allocation failure every add is a no-op
 * and failed stays set, so callers check once at the end. */
struct qemu_argv {
	char	**v;
	size_t	  n, cap;
	int	  failed;
};

static void
qemu_argv_add(struct qemu_argv *a, const char *s)
{
	char **nv, *dup;

	if (a->failed)
		return;
	if (a->n + 2 > a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 64;
		if ((nv = realloc(a->v, ncap * sizeof(*nv))) == NULL) {
			a->failed = 1;
			return;
		}
		a->v = nv;
		a->cap = ncap;
	}
	if ((dup = strdup(s)) == NULL) {
		a->failed = 1;
		return;
	}
	a->v[a->n++] = dup;
	a->v[a->n] = NULL;
}

static void
qemu_argv_addf(struct qemu_argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
qemu_argv_addf(struct qemu_argv *a, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Every field is bounded well below buf; truncation would be a bug. */
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		a->failed = 1;
		return;
	}
	qemu_argv_add(a, buf);
}

void
qemu_argv_free(char **argv)
{
	char **p;

	if (argv == NULL)
		return;
	for (p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* 1 if s fits inside a QEMU option string: non-empty, no ',' (the option
 * separator) and no control characters. */
static int
qemu_opt_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (*p == '\0')
		return 0;
	for (; *p; p++) {
		if (*p == ',' || *p < 0x20 || *p == 0x7f)
			return 0;
	}
	return 1;
}

/* 1 if s (maybe empty) has no control characters. */
static int
qemu_text_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	}
	return 1;
}

/* "52:54:00:12:34:56": lower or upper hex, unicast. */
static int
qemu_mac_valid(const char *s)
{
	int i;

	if (strlen(s) != 17)
		return 0;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	/* The low bit of the first octet marks a multicast address. */
	return (strtoul((char[]){ s[0], s[1], '\0' }, NULL, 16) & 1) == 0;
}

static int
qemu_ifname_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 15)
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' &&
		    s[i] != '.')
			return 0;
	}
	return 1;
}

/* "A.B.C.D/P": an IPv4 address and a prefix length 0-32. */
static int
qemu_cidr_valid(const char *s)
{
	unsigned int o[4], p;
	char end;

	if (sscanf(s, "%3u.%3u.%3u.%3u/%2u%c", &o[0], &o[1], &o[2], &o[3], &p,
	    &end) != 5 || strspn(s, "0123456789./") != strlen(s))
		return 0;
	return o[0] < 256 && o[1] < 256 && o[2] < 256 && o[3] < 256 && p <= 32;
}

static int
qemu_nic_valid(const struct qemu_nic *n)
{
	if (!qemu_mac_valid(n->mac) || n->port < 0 || n->port >= QEMU_MAX_NICS)
		return 0;
	if (n->hostfwd[0] && (strcmp(n->type, "user") != 0 ||
	    !qemu_opt_safe(n->hostfwd)))
		return 0;
	if (n->net[0] && (strcmp(n->type, "user") != 0 ||
	    !qemu_cidr_valid(n->net)))
		return 0;
	if (strcmp(n->type, "tap") == 0)
		return qemu_ifname_valid(n->ifname);
	return strcmp(n->type, "user") == 0;
}

static int
qemu_check_devices(const struct qemu_vm_spec *s)
{
	int i, cdroms = 0;

	if (s->ndisks < 0 || s->ndisks > QEMU_MAX_DISKS ||
	    s->nnics < 0 || s->nnics > QEMU_MAX_NICS)
		return -1;
	for (i = 0; i < s->ndisks; i++) {
		const struct qemu_disk *d = &s->disks[i];
		if (!qemu_opt_safe(d->path) || (strcmp(d->format, "qcow2") != 0 &&
		    strcmp(d->format, "raw") != 0))
			return -1;
		if (d->cdrom && ++cdroms > QEMU_AHCI_PORTS)
			return -1;
	}
	for (i = 0; i < s->nnics; i++) {
		const struct qemu_nic *n = &s->nics[i];
		int j;
		if (!qemu_nic_valid(n))
			return -1;
		for (j = 0; j < i; j++)
			if (s->nics[j].port == n->port)
				return -1;
	}
	return 0;
}

/* Everything that goes into an option string must be expressible there. */
static int
qemu_check_spec(const struct qemu_vm_spec *s)
{
	if (!util_name_valid(s->name) || !util_uuid_valid(s->uuid) ||
	    s->cpus < 1 || s->cpus > QEMU_MAX_CPUS ||
	    s->memory_mib < QEMU_MIN_MIB || s->memory_mib > QEMU_MAX_MIB ||
	    (strcmp(s->accel, "kvm") != 0 && strcmp(s->accel, "tcg") != 0))
		return -1;
	if (!qemu_opt_safe(s->qmp_path) ||
	    (s->serial_path[0] && !qemu_opt_safe(s->serial_path)) ||
	    (s->serial_log[0] && !qemu_opt_safe(s->serial_log)) ||
	    (s->qga_path[0] && !qemu_opt_safe(s->qga_path)) ||
	    (s->pidfile[0] && !qemu_opt_safe(s->pidfile)) ||
	    (s->vnc_display >= 0 && s->vnc_path[0] &&
	    !qemu_opt_safe(s->vnc_path)) ||
	    (s->incoming[0] && !qemu_opt_safe(s->incoming)) ||
	    (s->fw_code[0] && (!qemu_opt_safe(s->fw_code) ||
	    !qemu_opt_safe(s->fw_vars))))
		return -1;
	if (s->kernel[0] ? (!qemu_opt_safe(s->kernel) ||
	    (s->initrd[0] && !qemu_opt_safe(s->initrd)) ||
	    !qemu_text_safe(s->cmdline)) : (s->initrd[0] || s->cmdline[0]))
		return -1;
	return qemu_check_devices(s);
}

static void
qemu_add_base(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	const char *bin = getenv("CVIRT_QEMU");
	int kvm = strcmp(s->accel, "kvm") == 0;

	qemu_argv_add(a, bin && bin[0] ? bin : QEMU_DEFAULT_BIN);
	qemu_argv_add(a, "-name");
	qemu_argv_addf(a, "guest=%s,debug-threads=on", s->name);
	qemu_argv_add(a, "-uuid");
	qemu_argv_add(a, s->uuid);
	qemu_argv_add(a, "-machine");
	qemu_argv_addf(a, "q35,accel=%s", s->accel);
	qemu_argv_add(a, "-cpu");
	qemu_argv_add(a, kvm ? "host" : "max");
	qemu_argv_add(a, "-smp");
	qemu_argv_addf(a, "%d", s->cpus);
	qemu_argv_add(a, "-m");
	if (kvm)
		qemu_argv_addf(a, "%d", s->memory_mib);
	else
		qemu_argv_addf(a, "%lldk", (long long)s->memory_mib * 1024 +
		    QEMU_TCG_RAM_PAD_KIB);
	qemu_argv_add(a, "-nodefaults");
	qemu_argv_add(a, "-no-user-config");
	/* seccomp: a guest that breaks into QEMU cannot exec, change
	 * credentials, use obsolete syscalls or change scheduling. */
	qemu_argv_add(a, "-sandbox");
	qemu_argv_add(a, QEMU_SANDBOX);
	if (s->vnc_display >= 0 && s->vnc_path[0]) {
		/* -nodefaults drops the VGA card; VNC needs one to show. */
		qemu_argv_add(a, "-vnc");
		qemu_argv_addf(a, "unix:%s", s->vnc_path);
		qemu_argv_add(a, "-device");
		qemu_argv_add(a, "VGA");
	} else {
		qemu_argv_add(a, "-display");
		qemu_argv_add(a, "none");
	}
}

static void
qemu_add_chardevs(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	qemu_argv_add(a, "-chardev");
	qemu_argv_addf(a, "socket,id=qmp,path=%s,server=on,wait=off",
	    s->qmp_path);
	qemu_argv_add(a, "-mon");
	qemu_argv_add(a, "chardev=qmp,mode=control");
	if (s->serial_path[0] == '\0' && s->serial_log[0] == '\0')
		return;
	qemu_argv_add(a, "-chardev");
	if (s->serial_path[0] && s->serial_log[0])
		qemu_argv_addf(a, "socket,id=serial0,path=%s,server=on,wait=off,"
		    "logfile=%s,logappend=on", s->serial_path, s->serial_log);
	else if (s->serial_path[0])
		qemu_argv_addf(a, "socket,id=serial0,path=%s,server=on,wait=off",
		    s->serial_path);
	else
		qemu_argv_addf(a, "file,id=serial0,path=%s,append=on",
		    s->serial_log);
	qemu_argv_add(a, "-serial");
	qemu_argv_add(a, "chardev:serial0");
}

static void
qemu_add_disks(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	int i, cdroms = 0;

	for (i = 0; i < s->ndisks; i++) {
		const struct qemu_disk *d = &s->disks[i];
		const char *ro = d->readonly || d->cdrom ? "on" : "off";

		qemu_argv_add(a, "-blockdev");
		qemu_argv_addf(a, "driver=file,node-name=disk%d-file,"
		    "filename=%s,read-only=%s", i, d->path, ro);
		qemu_argv_add(a, "-blockdev");
		qemu_argv_addf(a, "driver=%s,node-name=disk%d,file=disk%d-file,"
		    "read-only=%s", d->format, i, i, ro);
		qemu_argv_add(a, "-device");
		if (d->cdrom)
			qemu_argv_addf(a, "ide-cd,drive=disk%d,bus=ide.%d,"
			    "id=sata-cd%d", i, cdroms++, i);
		else
			qemu_argv_addf(a, "virtio-blk-pci,drive=disk%d,"
			    "id=virtio-disk%d", i, i);
	}
}

int
qemu_nic_netdev(const struct qemu_nic *n, char *out, size_t outsz)
{
	if (!qemu_nic_valid(n))
		return -1;
	/* vhost-net moves the packet path into the kernel. */
	if (strcmp(n->type, "tap") == 0)
		return util_fmt(out, outsz, "tap,id=net%d,ifname=%s,script=no,"
		    "downscript=no%s", n->port, n->ifname,
		    n->vhost ? ",vhost=on" : "");
	return util_fmt(out, outsz, "user,id=net%d%s%s%s%s", n->port,
	    n->net[0] ? ",net=" : "", n->net,
	    n->hostfwd[0] ? ",hostfwd=" : "", n->hostfwd);
}

int
qemu_nic_device(const struct qemu_nic *n, char *out, size_t outsz)
{
	if (!qemu_nic_valid(n))
		return -1;
	return util_fmt(out, outsz, "virtio-net-pci,netdev=net%d,mac=%s,"
	    "id=nic%d,bus=cvport%d", n->port, n->mac, n->port, n->port);
}

static void
qemu_add_nics(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	char buf[256];
	int i;

	/* One multifunction slot of root ports, one port per possible NIC. */
	for (i = 0; i < QEMU_MAX_NICS; i++) {
		qemu_argv_add(a, "-device");
		qemu_argv_addf(a, "pcie-root-port,id=cvport%d,bus=pcie.0,"
		    "chassis=%d,addr=0x18.%d%s", i, i + 1, i,
		    i == 0 ? ",multifunction=on" : "");
	}
	for (i = 0; i < s->nnics; i++) {
		const struct qemu_nic *n = &s->nics[i];

		if (qemu_nic_netdev(n, buf, sizeof(buf)) < 0) {
			a->failed = 1;
			return;
		}
		qemu_argv_add(a, "-netdev");
		qemu_argv_add(a, buf);
		if (qemu_nic_device(n, buf, sizeof(buf)) < 0) {
			a->failed = 1;
			return;
		}
		qemu_argv_add(a, "-device");
		qemu_argv_add(a, buf);
	}
}

static void
qemu_add_extras(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	if (s->fw_code[0]) {
		/* UEFI (OVMF): code read-only, the VM's own variable store. */
		qemu_argv_add(a, "-drive");
		qemu_argv_addf(a, "if=pflash,format=raw,unit=0,readonly=on,"
		    "file=%s", s->fw_code);
		qemu_argv_add(a, "-drive");
		qemu_argv_addf(a, "if=pflash,format=raw,unit=1,file=%s",
		    s->fw_vars);
	}
	if (s->kernel[0]) {
		qemu_argv_add(a, "-kernel");
		qemu_argv_add(a, s->kernel);
		if (s->initrd[0]) {
			qemu_argv_add(a, "-initrd");
			qemu_argv_add(a, s->initrd);
		}
		if (s->cmdline[0]) {
			qemu_argv_add(a, "-append");
			qemu_argv_add(a, s->cmdline);
		}
	}
	if (s->panic_device) {
		qemu_argv_add(a, "-device");
		qemu_argv_add(a, "pvpanic");
	}
	if (s->watchdog) {
		/* Let the agent see WATCHDOG and decide; QEMU does nothing. */
		qemu_argv_add(a, "-device");
		qemu_argv_add(a, "i6300esb");
		qemu_argv_add(a, "-action");
		qemu_argv_add(a, "watchdog=none");
	}
	if (s->incoming[0]) {
		qemu_argv_add(a, "-incoming");
		qemu_argv_add(a, s->incoming);
	}
	if (s->qga_path[0]) {
		/* The guest agent's virtio-serial port (HA heartbeat). */
		qemu_argv_add(a, "-chardev");
		qemu_argv_addf(a, "socket,id=qga0,path=%s,server=on,wait=off",
		    s->qga_path);
		qemu_argv_add(a, "-device");
		qemu_argv_add(a, "virtio-serial-pci,id=cvserial0");
		qemu_argv_add(a, "-device");
		qemu_argv_add(a, "virtserialport,bus=cvserial0.0,chardev=qga0,"
		    "name=org.qemu.guest_agent.0");
	}
	if (s->start_paused)
		qemu_argv_add(a, "-S");
	if (s->pidfile[0]) {
		qemu_argv_add(a, "-pidfile");
		qemu_argv_add(a, s->pidfile);
	}
}

char **
qemu_build_argv(const struct qemu_vm_spec *spec)
{
	struct qemu_argv a = { 0 };

	if (spec == NULL || qemu_check_spec(spec) < 0) {
		errno = EINVAL;
		return NULL;
	}
	qemu_add_base(&a, spec);
	qemu_add_chardevs(&a, spec);
	qemu_add_disks(&a, spec);
	qemu_add_nics(&a, spec);
	qemu_add_extras(&a, spec);
	if (a.failed) {
		qemu_argv_free(a.v);
		errno = ENOMEM;
		return NULL;
	}
	return a.v;
}

/* In the child after fork: only async-signal-safe calls from here on. */
static void __attribute__((noreturn))
qemu_child(char **argv, int nullfd, int logfd, int errfd, int maxfd)
{
	int e, fd;

	if (setsid() < 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 ||
	    dup2(logfd, 2) < 0)
		goto fail;
	/* Keep the exec-error pipe (close-on-exec) at 3, close the rest. */
	if (errfd != 3) {
		if (dup3(errfd, 3, O_CLOEXEC) < 0)
			goto fail;
		errfd = 3;
	}
	if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0) {
		for (fd = 4; fd < maxfd; fd++)
			(void)close(fd);
	}
	proc_child_signals();
	execvp(argv[0], argv);
fail:
	e = errno;
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

static int
qemu_max_fd(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > 65536)
		return 65536;
	return (int)rl.rlim_cur;
}

int
qemu_spawn(const struct qemu_vm_spec *spec, const char *logfile, pid_t *pid,
    char *err, size_t errsz)
{
	int nullfd = -1, logfd = -1, pfd[2] = { -1, -1 }, rc = -1, maxfd;
	sigset_t all, old;
	char **argv;
	pid_t child;

	if ((argv = qemu_build_argv(spec)) == NULL) {
		snprintf(err, errsz, "cannot build QEMU command line: %s",
		    errno == EINVAL ? "invalid VM description" : strerror(errno));
		return -1;
	}
	nullfd = proc_fd_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (nullfd < 0) {
		snprintf(err, errsz, "cannot open /dev/null: %s", strerror(errno));
		goto cleanup;
	}
	logfd = proc_fd_high(open(logfile, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0640));
	if (logfd < 0) {
		snprintf(err, errsz, "cannot open %s: %s", logfile, strerror(errno));
		goto cleanup;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0 || (pfd[0] = proc_fd_high(pfd[0])) < 0 ||
	    (pfd[1] = proc_fd_high(pfd[1])) < 0) {
		snprintf(err, errsz, "pipe: %s", strerror(errno));
		goto cleanup;
	}
	maxfd = qemu_max_fd();
	/* No parent signal handler may run in the child before it resets. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	child = fork();
	if (child == 0)
		qemu_child(argv, nullfd, logfd, pfd[1], maxfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (child < 0) {
		snprintf(err, errsz, "fork: %s", strerror(errno));
		goto cleanup;
	}
	close(pfd[1]);
	pfd[1] = -1;
	if (proc_exec_status(pfd[0], child, argv[0], err, errsz) < 0)
		goto cleanup;
	*pid = child;
	rc = 0;
cleanup:
	if (nullfd >= 0)
		close(nullfd);
	if (logfd >= 0)
		close(logfd);
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	qemu_argv_free(argv);
	return rc;
}
