/* qemu_cmd.c - QEMU command line from a VM description (started by
 * qemu_spawn.c). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/util.h"
#include "qemu/qemu_cmd.h"

#define QEMU_DEFAULT_BIN	"qemu-system-x86_64"
/* seccomp filter of every VM; -runas is not used: it needs setuid after
 * the filter is in place, which elevateprivileges=deny kills (SIGSYS).
 * qemu_child switches the user before exec instead (docs/security.md). */
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
	/* An open TAP (slot) instead of ifname=; with vhost, its
	 * /dev/vhost-net too: QEMU may not be able to open either. */
	if (n->fd < 0 || n->vhostfd < 0 || (n->fd &&
	    strcmp(n->type, "tap") != 0) || (n->vhostfd && !n->fd) ||
	    (n->fd && n->vhost && !n->vhostfd) || (n->vhostfd && !n->vhost))
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
		if ((!d->fdset && !qemu_opt_safe(d->path)) ||
		    (strcmp(d->format, "qcow2") != 0 &&
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

/* Count a use of slot (0: none); -1 when it is no passed fd. */
static int
qemu_slot_use(const struct qemu_vm_spec *s, int slot, int uses[])
{
	if (slot == 0)
		return 0;
	if (slot < QEMU_FD_FIRST || slot >= QEMU_FD_FIRST + s->npass)
		return -1;
	uses[slot - QEMU_FD_FIRST]++;
	return 0;
}

/* Count a use of fdset set (0: none); -1 when there is no such set. */
static int
qemu_set_use(const struct qemu_vm_spec *s, int set, int uses[])
{
	int i;

	if (set == 0)
		return 0;
	for (i = 0; i < s->nfdsets; i++) {
		if (s->fdsets[i].set == set) {
			uses[i]++;
			return 0;
		}
	}
	return -1;
}

/* Every passed fd used exactly once (by a field, or by one fdset that
 * exactly one disk or the serial log opens): nothing reaches QEMU that
 * nothing asked for, and no fd serves two devices. */
static int
qemu_check_fds(const struct qemu_vm_spec *s)
{
	int uses[QEMU_MAX_FDS] = { 0 }, setuses[QEMU_MAX_FDS] = { 0 }, i, j;
	const struct qemu_fdset *f;

	if (s->npass < 0 || s->npass > QEMU_MAX_FDS || s->nfdsets < 0 ||
	    s->nfdsets > QEMU_MAX_FDS)
		return -1;
	for (i = 0; i < s->nfdsets; i++) {
		f = &s->fdsets[i];
		if (f->set < 1 || f->slot == 0 ||
		    qemu_slot_use(s, f->slot, uses) < 0 ||
		    memchr(f->opaque, '\0', sizeof(f->opaque)) == NULL ||
		    (f->opaque[0] && !qemu_opt_safe(f->opaque)))
			return -1;
		for (j = 0; j < i; j++)
			if (s->fdsets[j].set == f->set)
				return -1;
	}
	if (qemu_slot_use(s, s->qmp_fd, uses) < 0 ||
	    qemu_slot_use(s, s->serial_fd, uses) < 0 ||
	    qemu_slot_use(s, s->qga_fd, uses) < 0 ||
	    qemu_slot_use(s, s->kernel_fd, uses) < 0 ||
	    qemu_slot_use(s, s->initrd_fd, uses) < 0 ||
	    qemu_set_use(s, s->serial_log_fdset, setuses) < 0)
		return -1;
	for (i = 0; i < s->nnics; i++)
		if (qemu_slot_use(s, s->nics[i].fd, uses) < 0 ||
		    qemu_slot_use(s, s->nics[i].vhostfd, uses) < 0)
			return -1;
	for (i = 0; i < s->ndisks; i++)
		if (qemu_set_use(s, s->disks[i].fdset, setuses) < 0)
			return -1;
	for (i = 0; i < s->nfdsets; i++)
		if (setuses[i] != 1)
			return -1;
	for (i = 0; i < s->npass; i++)
		if (uses[i] != 1)
			return -1;
	return 0;
}

/* Everything that goes into an option string must be expressible there. */
static int
qemu_check_spec(const struct qemu_vm_spec *s)
{
	int kernel = s->kernel_fd || s->kernel[0];

	if (!util_name_valid(s->name) || !util_uuid_valid(s->uuid) ||
	    s->cpus < 1 || s->cpus > QEMU_MAX_CPUS ||
	    s->memory_mib < QEMU_MIN_MIB || s->memory_mib > QEMU_MAX_MIB ||
	    (strcmp(s->accel, "kvm") != 0 && strcmp(s->accel, "tcg") != 0))
		return -1;
	if ((!s->qmp_fd && !qemu_opt_safe(s->qmp_path)) ||
	    (!s->serial_fd && s->serial_path[0] &&
	    !qemu_opt_safe(s->serial_path)) ||
	    (!s->serial_log_fdset && s->serial_log[0] &&
	    !qemu_opt_safe(s->serial_log)) ||
	    (!s->qga_fd && s->qga_path[0] && !qemu_opt_safe(s->qga_path)) ||
	    (s->pidfile[0] && !qemu_opt_safe(s->pidfile)) ||
	    (s->vnc_display >= 0 && s->vnc_path[0] &&
	    !qemu_opt_safe(s->vnc_path)) ||
	    (s->incoming[0] && !qemu_opt_safe(s->incoming)) ||
	    (s->fw_code[0] && (!qemu_opt_safe(s->fw_code) ||
	    !qemu_opt_safe(s->fw_vars))))
		return -1;
	if (kernel ? ((!s->kernel_fd && !qemu_opt_safe(s->kernel)) ||
	    (!s->initrd_fd && s->initrd[0] && !qemu_opt_safe(s->initrd)) ||
	    !qemu_text_safe(s->cmdline)) :
	    (s->initrd_fd || s->initrd[0] || s->cmdline[0]))
		return -1;
	/* Devices first: it bounds ndisks and nnics, which the fds use. */
	if (qemu_check_devices(s) < 0)
		return -1;
	return qemu_check_fds(s);
}

static void
qemu_add_base(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	const char *bin = getenv("CVIRT_QEMU");
	int kvm = strcmp(s->accel, "kvm") == 0, i;

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
	/* QEMU dups each into its set and closes the original. */
	for (i = 0; i < s->nfdsets; i++) {
		const struct qemu_fdset *f = &s->fdsets[i];

		qemu_argv_add(a, "-add-fd");
		qemu_argv_addf(a, "fd=%d,set=%d%s%s", f->slot, f->set,
		    f->opaque[0] ? ",opaque=" : "", f->opaque);
	}
	if (s->vnc_display >= 0) {
		/* -nodefaults drops the VGA card; VNC needs one to show. */
		qemu_argv_add(a, "-vnc");
		if (s->vnc_path[0])
			qemu_argv_addf(a, "unix:%s", s->vnc_path);
		else
			qemu_argv_add(a, "none");
		qemu_argv_add(a, "-device");
		qemu_argv_add(a, "VGA");
	} else {
		qemu_argv_add(a, "-display");
		qemu_argv_add(a, "none");
	}
}

/* "fd=SLOT" for a passed listening socket, else "path=PATH"; NULL (and
 * the argv failed) when it does not fit. */
static const char *
qemu_sock_opt(struct qemu_argv *a, char *buf, size_t bufsz, int fd,
    const char *path)
{
	if ((fd ? util_fmt(buf, bufsz, "fd=%d", fd) :
	    util_fmt(buf, bufsz, "path=%s", path)) < 0) {
		a->failed = 1;
		return NULL;
	}
	return buf;
}

/* "/dev/fdset/SET" for a passed file, else path. */
static const char *
qemu_file_opt(struct qemu_argv *a, char *buf, size_t bufsz, int set,
    const char *path)
{
	if (set == 0)
		return path;
	if (util_fmt(buf, bufsz, "/dev/fdset/%d", set) < 0) {
		a->failed = 1;
		return NULL;
	}
	return buf;
}

static void
qemu_add_chardevs(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	char sockbuf[160], logbuf[32];
	const char *sock, *log;

	if ((sock = qemu_sock_opt(a, sockbuf, sizeof(sockbuf), s->qmp_fd,
	    s->qmp_path)) == NULL)
		return;
	qemu_argv_add(a, "-chardev");
	qemu_argv_addf(a, "socket,id=qmp,%s,server=on,wait=off", sock);
	qemu_argv_add(a, "-mon");
	qemu_argv_add(a, "chardev=qmp,mode=control");
	sock = s->serial_fd || s->serial_path[0] ? qemu_sock_opt(a, sockbuf,
	    sizeof(sockbuf), s->serial_fd, s->serial_path) : "";
	log = s->serial_log_fdset || s->serial_log[0] ? qemu_file_opt(a,
	    logbuf, sizeof(logbuf), s->serial_log_fdset, s->serial_log) : "";
	if (sock == NULL || log == NULL || (sock[0] == '\0' && log[0] == '\0'))
		return;
	qemu_argv_add(a, "-chardev");
	if (sock[0] && log[0])
		qemu_argv_addf(a, "socket,id=serial0,%s,server=on,wait=off,"
		    "logfile=%s,logappend=on", sock, log);
	else if (sock[0])
		qemu_argv_addf(a, "socket,id=serial0,%s,server=on,wait=off",
		    sock);
	else
		qemu_argv_addf(a, "file,id=serial0,path=%s,append=on", log);
	qemu_argv_add(a, "-serial");
	qemu_argv_add(a, "chardev:serial0");
}

int
qemu_cache_direct(int domain_direct, int readonly)
{
	return domain_direct && !readonly;
}

static void
qemu_add_disks(struct qemu_argv *a, const struct qemu_vm_spec *s)
{
	int i, cdroms = 0;

	for (i = 0; i < s->ndisks; i++) {
		const struct qemu_disk *d = &s->disks[i];
		const char *ro = d->readonly || d->cdrom ? "on" : "off", *file;
		/* A passed fd (fdset) keeps the flags it was opened with. */
		int direct = !d->fdset && qemu_cache_direct(d->direct,
		    d->readonly || d->cdrom);
		const char *cache = direct ? ",cache.direct=on" : "";
		char buf[32];

		if ((file = qemu_file_opt(a, buf, sizeof(buf), d->fdset,
		    d->path)) == NULL)
			return;
		qemu_argv_add(a, "-blockdev");
		qemu_argv_addf(a, "driver=file,node-name=disk%d-file,"
		    "filename=%s,read-only=%s%s", i, file, ro, cache);
		qemu_argv_add(a, "-blockdev");
		qemu_argv_addf(a, "driver=%s,node-name=disk%d,file=disk%d-file,"
		    "read-only=%s%s", d->format, i, i, ro, cache);
		qemu_argv_add(a, "-device");
		if (d->cdrom)
			qemu_argv_addf(a, "ide-cd,drive=disk%d,bus=ide.%d,"
			    "id=sata-cd%d", i, cdroms++, i);
		else
			qemu_argv_addf(a, "virtio-blk-pci,drive=disk%d,"
			    "id=virtio-disk%d%s", i, i, direct ?
			    ",werror=stop,rerror=stop" : "");
	}
}

int
qemu_nic_netdev(const struct qemu_nic *n, char *out, size_t outsz)
{
	if (!qemu_nic_valid(n))
		return -1;
	/* vhost-net moves the packet path into the kernel. An open TAP
	 * excludes ifname= and script= (QEMU refuses them together). */
	if (strcmp(n->type, "tap") == 0 && n->fd && n->vhost)
		return util_fmt(out, outsz, "tap,id=net%d,fd=%d,vhost=on,"
		    "vhostfd=%d", n->port, n->fd, n->vhostfd);
	if (strcmp(n->type, "tap") == 0 && n->fd)
		return util_fmt(out, outsz, "tap,id=net%d,fd=%d", n->port,
		    n->fd);
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
	if (s->kernel_fd || s->kernel[0]) {
		qemu_argv_add(a, "-kernel");
		if (s->kernel_fd)
			qemu_argv_addf(a, "/proc/self/fd/%d", s->kernel_fd);
		else
			qemu_argv_add(a, s->kernel);
		if (s->initrd_fd || s->initrd[0])
			qemu_argv_add(a, "-initrd");
		if (s->initrd_fd)
			qemu_argv_addf(a, "/proc/self/fd/%d", s->initrd_fd);
		else if (s->initrd[0])
			qemu_argv_add(a, s->initrd);
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
	if (s->qga_fd || s->qga_path[0]) {
		char buf[160];
		const char *sock = qemu_sock_opt(a, buf, sizeof(buf), s->qga_fd,
		    s->qga_path);

		/* The guest agent's virtio-serial port (HA heartbeat). */
		qemu_argv_add(a, "-chardev");
		qemu_argv_addf(a, "socket,id=qga0,%s,server=on,wait=off",
		    sock ? sock : "");
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

int
qemu_spec_fd(struct qemu_vm_spec *q, int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		errno = EBADF;
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		return -1;
	}
	if (q->npass < 0 || q->npass >= QEMU_MAX_FDS) {
		errno = ENOSPC;
		return -1;
	}
	q->pass_fd[q->npass] = fd;
	return QEMU_FD_FIRST + q->npass++;
}

int
qemu_spec_fdset(struct qemu_vm_spec *q, int fd, const char *opaque)
{
	struct qemu_fdset *f;
	int slot;

	if ((opaque && opaque[0] && !qemu_opt_safe(opaque)) ||
	    (opaque && strlen(opaque) >= sizeof(f->opaque)) ||
	    q->nfdsets < 0 || q->nfdsets >= QEMU_MAX_FDS) {
		errno = q->nfdsets >= QEMU_MAX_FDS ? ENOSPC : EINVAL;
		return -1;
	}
	if ((slot = qemu_spec_fd(q, fd)) < 0)
		return -1;
	f = &q->fdsets[q->nfdsets];
	f->set = q->nfdsets + 1;
	f->slot = slot;
	snprintf(f->opaque, sizeof(f->opaque), "%s", opaque ? opaque : "");
	q->nfdsets++;
	return f->set;
}
