/* test_qemu_cmd.c - unit tests for the QEMU command line and for spawning QEMU. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capenv.h"
#include "common/proc.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qmp.h"
#include "sigenv.h"

#define T_UUID "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5b"
/* Bounded assignment to a char array field. */
#define SET(f, v) snprintf((f), sizeof(f), "%s", (v))

struct tstate {
	char			 dir[64];
	struct qemu_vm_spec	*spec;
	char			 err[512];
	pid_t			 qemu;	/* a real QEMU to end if a test fails */
};

static int
setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));
	struct qemu_vm_spec *s;

	if (t == NULL || (t->spec = calloc(1, sizeof(*t->spec))) == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/cvirt-qcmd-XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	s = t->spec;
	snprintf(s->name, sizeof(s->name), "vm1");
	snprintf(s->uuid, sizeof(s->uuid), "%s", T_UUID);
	s->cpus = 2;
	s->memory_mib = 512;
	snprintf(s->accel, sizeof(s->accel), "tcg");
	snprintf(s->qmp_path, sizeof(s->qmp_path), "%s/qmp.sock", t->dir);
	snprintf(s->serial_path, sizeof(s->serial_path), "%s/serial.sock",
	    t->dir);
	snprintf(s->serial_log, sizeof(s->serial_log), "%s/serial.log", t->dir);
	s->vnc_display = -1;
	unsetenv("CVIRT_QEMU");
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tstate *t = *state;

	unsetenv("CVIRT_QEMU");
	unsetenv("CVIRT_TEST_STANDIN");
	unsetenv("CVIRT_TEST_STANDIN_OPEN");
	if (t->qemu > 0) {
		kill(t->qemu, SIGKILL);
		waitpid(t->qemu, NULL, 0);
	}
	util_rm_rf(t->dir);
	free(t->spec);
	free(t);
	return 0;
}

/* Index of option opt followed by val (val NULL: opt alone), or -1. */
static int
argv_find(char **argv, const char *opt, const char *val)
{
	int i;

	for (i = 1; argv[i]; i++) {
		if (strcmp(argv[i], opt) != 0)
			continue;
		if (val == NULL || (argv[i + 1] && strcmp(argv[i + 1], val) == 0))
			return i;
	}
	return -1;
}

static void
assert_pair(char **argv, const char *opt, const char *val)
{
	if (argv_find(argv, opt, val) < 0)
		fail_msg("missing \"%s %s\"", opt, val ? val : "");
}

static void
assert_no_opt(char **argv, const char *opt)
{
	if (argv_find(argv, opt, NULL) >= 0)
		fail_msg("unexpected \"%s\"", opt);
}

/* Format into one of two rotating static buffers (test helper). */
static char *
t_fmt(const char *fmt, const char *a, const char *b)
{
	static char buf[2][8192];
	static int k;

	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), fmt, a, b);
	return buf[k];
}

/* Occurrences of needle in s. */
static int
t_count(const char *s, const char *needle)
{
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

static void
test_argv_base(void **state)
{
	struct tstate *t = *state;
	char **argv = qemu_build_argv(t->spec);

	assert_non_null(argv);
	assert_string_equal(argv[0], "qemu-system-x86_64");
	assert_pair(argv, "-name", "guest=vm1,debug-threads=on");
	assert_pair(argv, "-uuid", T_UUID);
	assert_pair(argv, "-machine", "q35,accel=tcg");
	assert_pair(argv, "-cpu", "max");
	assert_pair(argv, "-smp", "2");
	assert_pair(argv, "-m", "524296k");	/* 512 MiB + 8 KiB: TCG */
	assert_pair(argv, "-nodefaults", NULL);
	assert_pair(argv, "-no-user-config", NULL);
	assert_pair(argv, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,"
	    "spawn=deny,resourcecontrol=deny");
	assert_pair(argv, "-display", "none");
	assert_pair(argv, "-chardev", t_fmt(
	    "socket,id=qmp,path=%s/qmp.sock,server=on,wait=off", t->dir, NULL));
	assert_pair(argv, "-mon", "chardev=qmp,mode=control");
	assert_pair(argv, "-chardev", t_fmt("socket,id=serial0,path=%s/"
	    "serial.sock,server=on,wait=off,logfile=%s/serial.log,logappend=on",
	    t->dir, t->dir));
	assert_pair(argv, "-serial", "chardev:serial0");
	assert_no_opt(argv, "-S");
	assert_no_opt(argv, "-kernel");
	assert_no_opt(argv, "-incoming");
	assert_no_opt(argv, "-pidfile");
	assert_no_opt(argv, "-vnc");
	assert_no_opt(argv, "-blockdev");
	assert_no_opt(argv, "-netdev");
	/* No devices but the root ports that NICs can be hot-plugged into. */
	{
		int i, ports = 0;

		for (i = 1; argv[i]; i++) {
			if (strcmp(argv[i], "-device") != 0)
				continue;
			if (strncmp(argv[i + 1], "pcie-root-port,", 15) != 0)
				fail_msg("unexpected device %s", argv[i + 1]);
			ports++;
		}
		assert_int_equal(ports, QEMU_MAX_NICS);
	}
	qemu_argv_free(argv);
}

static void
test_argv_kvm_and_binary(void **state)
{
	struct tstate *t = *state;
	char **argv;

	snprintf(t->spec->accel, sizeof(t->spec->accel), "kvm");
	setenv("CVIRT_QEMU", "/opt/qemu/bin/qemu-kvm", 1);
	argv = qemu_build_argv(t->spec);
	assert_non_null(argv);
	assert_string_equal(argv[0], "/opt/qemu/bin/qemu-kvm");
	assert_pair(argv, "-machine", "q35,accel=kvm");
	assert_pair(argv, "-cpu", "host");
	assert_pair(argv, "-m", "512");		/* KVM: exactly what was asked */
	qemu_argv_free(argv);
}

/* The value of opt in argv (NULL when absent). */
static const char *
argv_value(char **argv, const char *opt)
{
	int i = argv_find(argv, opt, NULL);

	return i < 0 ? NULL : argv[i + 1];
}

/* Guards qemu_cmd.c qemu_add_base()'s -m under TCG (QEMU_TCG_RAM_PAD_KIB):
 * QEMU 7.2 loses guest writes when migrating a TCG guest whose pc.ram is
 * a multiple of 256 KiB long (docs/cluster.md, tests/tcg-migration/run).
 * For sizes from the smallest to the largest cvirt accepts, the guest gets
 * what was asked plus less than 256 KiB, and never a multiple of 256 KiB;
 * under KVM, exactly what was asked. */
static void
test_argv_tcg_ram_not_256k_aligned(void **state)
{
	static const int mibs[] = { 16, 64, 128, 256, 512, 1000, 1024, 4096,
	    65536, 4 * 1024 * 1024 };
	struct tstate *t = *state;
	size_t i;

	for (i = 0; i < sizeof(mibs) / sizeof(mibs[0]); i++) {
		char **argv, *end;
		const char *m;
		unsigned long long kib;

		t->spec->memory_mib = mibs[i];
		snprintf(t->spec->accel, sizeof(t->spec->accel), "tcg");
		argv = qemu_build_argv(t->spec);
		assert_non_null(argv);
		assert_non_null(m = argv_value(argv, "-m"));
		errno = 0;
		kib = strtoull(m, &end, 10);
		if (errno || strcmp(end, "k") != 0)
			fail_msg("-m %s for %d MiB: not N KiB", m, mibs[i]);
		/* QEMU rounds -m up to 8 KiB: it must stay unaligned. */
		if (kib % 8 != 0 || kib % 256 == 0)
			fail_msg("-m %s for %d MiB: pc.ram would be 256 KiB "
			    "aligned", m, mibs[i]);
		if (kib <= (unsigned long long)mibs[i] * 1024 ||
		    kib >= (unsigned long long)mibs[i] * 1024 + 256)
			fail_msg("-m %s for %d MiB: not just above the size",
			    m, mibs[i]);
		qemu_argv_free(argv);

		snprintf(t->spec->accel, sizeof(t->spec->accel), "kvm");
		argv = qemu_build_argv(t->spec);
		assert_non_null(argv);
		assert_non_null(m = argv_value(argv, "-m"));
		assert_int_equal(strtol(m, NULL, 10), mibs[i]);
		assert_string_equal(m + strspn(m, "0123456789"), "");
		qemu_argv_free(argv);
	}
}

/* Guards qemu_cmd.c qemu_build_argv(): a migration's destination (started
 * with -incoming) gets the source's command line, -incoming aside; QEMU
 * refuses a stream whose RAM blocks differ in size (and -m is the one
 * option that differs between TCG and KVM). */
static void
test_argv_migration_destination_matches_source(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **src, **dst;
	int i, j;

	s->memory_mib = 768;
	s->panic_device = 1;
	src = qemu_build_argv(s);
	snprintf(s->incoming, sizeof(s->incoming), "tcp:10.0.0.2:49152");
	dst = qemu_build_argv(s);
	assert_non_null(src);
	assert_non_null(dst);
	for (i = j = 0; src[i] || dst[j]; i++, j++) {
		if (dst[j] && strcmp(dst[j], "-incoming") == 0)
			j += 2;
		if (src[i] == NULL || dst[j] == NULL)
			break;
		assert_string_equal(src[i], dst[j]);
	}
	assert_null(src[i]);
	assert_null(dst[j]);
	assert_string_equal(argv_value(dst, "-m"), "786440k");
	qemu_argv_free(src);
	qemu_argv_free(dst);
}

static void
test_argv_disks(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **argv;

	snprintf(s->disks[0].path, sizeof(s->disks[0].path), "/img/root.qcow2");
	snprintf(s->disks[0].format, sizeof(s->disks[0].format), "qcow2");
	snprintf(s->disks[1].path, sizeof(s->disks[1].path), "/img/data.raw");
	snprintf(s->disks[1].format, sizeof(s->disks[1].format), "raw");
	s->disks[1].readonly = 1;
	snprintf(s->disks[2].path, sizeof(s->disks[2].path), "/img/boot.iso");
	snprintf(s->disks[2].format, sizeof(s->disks[2].format), "raw");
	s->disks[2].cdrom = 1;
	s->ndisks = 3;
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk0-file,"
	    "filename=/img/root.qcow2,read-only=off");
	assert_pair(argv, "-blockdev", "driver=qcow2,node-name=disk0,"
	    "file=disk0-file,read-only=off");
	assert_pair(argv, "-device", "virtio-blk-pci,drive=disk0,id=virtio-disk0");
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk1-file,"
	    "filename=/img/data.raw,read-only=on");
	assert_pair(argv, "-blockdev", "driver=raw,node-name=disk1,"
	    "file=disk1-file,read-only=on");
	assert_pair(argv, "-device", "virtio-blk-pci,drive=disk1,id=virtio-disk1");
	/* A CD-ROM sits on q35's AHCI bus and is always read-only. */
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk2-file,"
	    "filename=/img/boot.iso,read-only=on");
	assert_pair(argv, "-device", "ide-cd,drive=disk2,bus=ide.0,id=sata-cd2");
	qemu_argv_free(argv);
}

static void
test_argv_nics(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **argv;

	snprintf(s->nics[0].mac, sizeof(s->nics[0].mac), "52:54:00:12:34:56");
	snprintf(s->nics[0].type, sizeof(s->nics[0].type), "user");
	snprintf(s->nics[1].mac, sizeof(s->nics[1].mac), "52:54:00:AB:cd:ef");
	snprintf(s->nics[1].type, sizeof(s->nics[1].type), "tap");
	snprintf(s->nics[1].ifname, sizeof(s->nics[1].ifname), "cv-tap1");
	s->nics[1].port = 3;	/* a port left by an unplugged NIC */
	s->nnics = 2;
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-device", "pcie-root-port,id=cvport0,bus=pcie.0,"
	    "chassis=1,addr=0x18.0,multifunction=on");
	assert_pair(argv, "-device", "pcie-root-port,id=cvport7,bus=pcie.0,"
	    "chassis=8,addr=0x18.7");
	assert_pair(argv, "-netdev", "user,id=net0");
	assert_pair(argv, "-device", "virtio-net-pci,netdev=net0,"
	    "mac=52:54:00:12:34:56,id=nic0,bus=cvport0");
	assert_pair(argv, "-netdev",
	    "tap,id=net3,ifname=cv-tap1,script=no,downscript=no");
	assert_pair(argv, "-device", "virtio-net-pci,netdev=net3,"
	    "mac=52:54:00:AB:cd:ef,id=nic3,bus=cvport3");
	qemu_argv_free(argv);

	/* vhost-net when the agent asks for it (KVM with /dev/vhost-net). */
	s->nics[1].vhost = 1;
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-netdev",
	    "tap,id=net3,ifname=cv-tap1,script=no,downscript=no,vhost=on");
	assert_pair(argv, "-netdev", "user,id=net0");
	qemu_argv_free(argv);
}

static void
test_nic_hotplug_strings(void **state)
{
	struct qemu_nic n = { .mac = "52:54:00:00:00:09", .type = "tap",
	    .ifname = "cvnt000009", .port = 7 };
	char buf[256];

	(void)state;
	assert_int_equal(qemu_nic_netdev(&n, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "tap,id=net7,ifname=cvnt000009,script=no,"
	    "downscript=no");
	assert_int_equal(qemu_nic_device(&n, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "virtio-net-pci,netdev=net7,"
	    "mac=52:54:00:00:00:09,id=nic7,bus=cvport7");
	assert_int_equal(qemu_nic_device(&n, buf, 20), -1);	/* too small */
	n.port = QEMU_MAX_NICS;
	assert_int_equal(qemu_nic_netdev(&n, buf, sizeof(buf)), -1);
	n.port = 0;
	snprintf(n.ifname, sizeof(n.ifname), "a,b");
	assert_int_equal(qemu_nic_netdev(&n, buf, sizeof(buf)), -1);
}

/* A named user network's subnet: slirp's net= option, before a hostfwd
 * rule; only on user-mode NICs, only an IPv4 CIDR. */
static void
test_argv_user_subnet(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	static const char *const bad[] = { "10.0.5.0/24,a=b",
	    "10.0.5/24", "10.0.5.0", "300.0.5.0/24", "10.0.5.0/33",
	    "10.0.5.0/ 24", "-10.0.5.0/24", "10.0.5.0/24/", NULL };
	char **argv, buf[256];
	size_t i;

	SET(s->nics[0].mac, "52:54:00:12:34:56");
	SET(s->nics[0].type, "user");
	SET(s->nics[0].net, "10.0.5.0/24");
	s->nics[0].port = 2;
	s->nnics = 1;
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-netdev", "user,id=net2,net=10.0.5.0/24");
	qemu_argv_free(argv);
	SET(s->nics[0].hostfwd, "tcp:127.0.0.1:40000-:8080");
	assert_int_equal(qemu_nic_netdev(&s->nics[0], buf, sizeof(buf)), 0);
	assert_string_equal(buf, "user,id=net2,net=10.0.5.0/24,"
	    "hostfwd=tcp:127.0.0.1:40000-:8080");
	s->nics[0].hostfwd[0] = '\0';
	for (i = 0; bad[i]; i++) {
		SET(s->nics[0].net, bad[i]);
		if (qemu_nic_netdev(&s->nics[0], buf, sizeof(buf)) == 0)
			fail_msg("net=%s accepted: %s", bad[i], buf);
		assert_null(qemu_build_argv(s));
	}
	/* A TAP NIC has no slirp network. */
	SET(s->nics[0].net, "10.0.5.0/24");
	SET(s->nics[0].type, "tap");
	SET(s->nics[0].ifname, "cvnt123456");
	assert_null(qemu_build_argv(s));
	s->nics[0].net[0] = '\0';
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-netdev",
	    "tap,id=net2,ifname=cvnt123456,script=no,downscript=no");
	qemu_argv_free(argv);
}

static void
test_argv_kernel_boot(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **argv;

	snprintf(s->kernel, sizeof(s->kernel), "/boot/vmlinuz");
	snprintf(s->initrd, sizeof(s->initrd), "/boot/initrd.img");
	/* -append is a plain argument: commas are fine there. */
	snprintf(s->cmdline, sizeof(s->cmdline), "console=ttyS0,115200 quiet");
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-kernel", "/boot/vmlinuz");
	assert_pair(argv, "-initrd", "/boot/initrd.img");
	assert_pair(argv, "-append", "console=ttyS0,115200 quiet");
	qemu_argv_free(argv);

	s->initrd[0] = s->cmdline[0] = '\0';
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-kernel", "/boot/vmlinuz");
	assert_no_opt(argv, "-initrd");
	assert_no_opt(argv, "-append");
	qemu_argv_free(argv);
}

static void
test_argv_extras(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **argv;

	s->panic_device = 1;
	s->watchdog = 1;
	s->start_paused = 1;
	snprintf(s->incoming, sizeof(s->incoming), "tcp:0.0.0.0:49152");
	snprintf(s->pidfile, sizeof(s->pidfile), "%s/qemu.pid", t->dir);
	s->vnc_display = 0;
	snprintf(s->vnc_path, sizeof(s->vnc_path), "%s/vnc.sock", t->dir);
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-device", "pvpanic");
	assert_pair(argv, "-device", "i6300esb");
	assert_pair(argv, "-action", "watchdog=none");
	assert_pair(argv, "-S", NULL);
	assert_pair(argv, "-incoming", "tcp:0.0.0.0:49152");
	assert_pair(argv, "-pidfile", s->pidfile);
	assert_pair(argv, "-vnc", t_fmt("unix:%s/vnc.sock", t->dir, NULL));
	assert_no_opt(argv, "-display");
	qemu_argv_free(argv);
}

/* Open path (created 0600 when flags has O_CREAT) close-on-exec. */
static int
t_open_file(struct tstate *t, const char *name, int flags)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	return fd;
}

/* A listening unix socket at DIR/name, as the agent binds one for QEMU. */
static int
t_listen(struct tstate *t, const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", t->dir, name);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* Every device QEMU gets as an open file: QMP, serial console and guest
 * agent sockets as fd= chardevs, the serial log and a CD-ROM through
 * -add-fd fdsets, kernel and initrd as /proc/self/fd, a TAP with its
 * vhost-net fd, VNC with no socket (-vnc none); no path of the spec is on
 * the command line. Guards qemu_add_base, qemu_add_chardevs,
 * qemu_add_disks, qemu_nic_netdev, qemu_add_extras, qemu_spec_fd and
 * qemu_spec_fdset (src/qemu/qemu_cmd.c). */
static void
test_argv_fd_slots(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	int fds[9], i, n = 0, j;
	char **argv;

	for (i = 0; i < 9; i++)
		fds[i] = t_open_file(t, t_fmt("f%s", (char[]){ (char)('0' + i),
		    '\0' }, NULL), O_RDONLY | O_CREAT);
	assert_int_equal(qemu_spec_fd(s, fds[n++]), 4);
	s->qmp_fd = 4;
	s->serial_fd = qemu_spec_fd(s, fds[n++]);
	assert_int_equal(s->serial_fd, 5);
	s->serial_log_fdset = qemu_spec_fdset(s, fds[n++], "serial-log");
	assert_int_equal(s->serial_log_fdset, 1);
	s->qga_fd = qemu_spec_fd(s, fds[n++]);
	s->kernel_fd = qemu_spec_fd(s, fds[n++]);
	s->initrd_fd = qemu_spec_fd(s, fds[n++]);
	SET(s->kernel, "/not/used/vmlinuz");
	SET(s->qga_path, "/not/used/qga");
	SET(s->disks[0].path, "/not/used/boot.iso");
	SET(s->disks[0].format, "raw");
	s->disks[0].cdrom = 1;
	s->disks[0].fdset = qemu_spec_fdset(s, fds[n++], "cdrom");
	assert_int_equal(s->disks[0].fdset, 2);
	s->ndisks = 1;
	SET(s->nics[0].mac, "52:54:00:12:34:56");
	SET(s->nics[0].type, "tap");
	SET(s->nics[0].ifname, "cvt0");
	s->nics[0].vhost = 1;
	s->nics[0].fd = qemu_spec_fd(s, fds[n++]);
	s->nics[0].vhostfd = qemu_spec_fd(s, fds[n++]);
	s->nnics = 1;
	s->vnc_display = 0;
	assert_int_equal(s->npass, 9);
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-add-fd", "fd=6,set=1,opaque=serial-log");
	assert_pair(argv, "-add-fd", "fd=10,set=2,opaque=cdrom");
	assert_pair(argv, "-chardev", "socket,id=qmp,fd=4,server=on,wait=off");
	assert_pair(argv, "-chardev", "socket,id=serial0,fd=5,server=on,"
	    "wait=off,logfile=/dev/fdset/1,logappend=on");
	assert_pair(argv, "-chardev", "socket,id=qga0,fd=7,server=on,wait=off");
	assert_pair(argv, "-kernel", "/proc/self/fd/8");
	assert_pair(argv, "-initrd", "/proc/self/fd/9");
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk0-file,"
	    "filename=/dev/fdset/2,read-only=on");
	assert_pair(argv, "-netdev", "tap,id=net0,fd=11,vhost=on,vhostfd=12");
	assert_pair(argv, "-vnc", "none");
	assert_pair(argv, "-device", "VGA");
	/* -add-fd comes before anything that opens /dev/fdset. */
	assert_true(argv_find(argv, "-add-fd", NULL) <
	    argv_find(argv, "-chardev", NULL));
	for (j = 0; argv[j]; j++)
		if (strstr(argv[j], t->dir) || strstr(argv[j], "/not/used"))
			fail_msg("a path on the command line: %s", argv[j]);
	qemu_argv_free(argv);

	/* A serial log without a console socket: a file chardev. */
	s->serial_fd = 0;
	s->serial_path[0] = '\0';
	s->pass_fd[1] = -1;	/* slot 5 must not stay unused: refused */
	assert_null(qemu_build_argv(s));
	s->nics[0].vhostfd = 5;	/* reuse it as the vhost fd */
	s->pass_fd[1] = fds[1];
	s->pass_fd[8] = fds[8];
	s->npass = 8;		/* slot 12 gone */
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-chardev", "file,id=serial0,path=/dev/fdset/1,"
	    "append=on");
	assert_pair(argv, "-netdev", "tap,id=net0,fd=11,vhost=on,vhostfd=5");
	qemu_argv_free(argv);
	for (i = 0; i < 9; i++)
		close(fds[i]);
}

/* What never reaches QEMU: an fd nothing on the command line uses (a
 * leak), an fd used twice, a slot or fdset that was never passed, an
 * fdset nothing or two things open, an fd on a user-mode NIC, a
 * vhost fd without an open TAP, an initrd fd without a kernel; and
 * qemu_spec_fd refuses a directory (QEMU could openat() beneath it), a
 * closed fd and more than QEMU_MAX_FDS. Guards qemu_check_fds,
 * qemu_nic_valid, qemu_check_spec, qemu_spec_fd and qemu_spec_fdset
 * (src/qemu/qemu_cmd.c). */
static void
test_argv_fd_rejects(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *good = t->spec, *s;
	int a, b, dfd, i;
	char **argv;

	a = t_open_file(t, "a", O_RDONLY | O_CREAT);
	b = t_open_file(t, "b", O_RDONLY | O_CREAT);
	SET(good->nics[0].mac, "52:54:00:12:34:56");
	SET(good->nics[0].type, "user");
	good->nnics = 1;
	SET(good->disks[0].format, "raw");
	good->ndisks = 1;
	good->disks[0].cdrom = 1;
	good->disks[0].fdset = qemu_spec_fdset(good, a, "cd");
	good->qmp_fd = qemu_spec_fd(good, b);
	argv = qemu_build_argv(good);
	assert_non_null(argv);
	qemu_argv_free(argv);
	s = malloc(sizeof(*s));
	assert_non_null(s);
#define T_REFUSED(what, change) do {					\
		*s = *good;						\
		change;							\
		errno = 0;						\
		if ((argv = qemu_build_argv(s)) != NULL || errno != EINVAL) { \
			qemu_argv_free(argv);				\
			fail_msg("accepted: %s", what);			\
		}							\
	} while (0)
	T_REFUSED("an unused fd", s->pass_fd[s->npass++] = a);
	T_REFUSED("an fd used twice", s->serial_fd = s->qmp_fd);
	T_REFUSED("a slot never passed", s->qga_fd = 6);
	T_REFUSED("slot 3 (the exec-error pipe)", s->kernel_fd = 3);
	T_REFUSED("a negative slot", s->qmp_fd = -4);
	T_REFUSED("an fdset never passed", s->disks[0].fdset = 9);
	T_REFUSED("an fdset nothing opens", s->disks[0].fdset = 0;
	    SET(s->disks[0].path, "/img/a"));
	T_REFUSED("an fdset opened twice", s->serial_log_fdset = 1);
	T_REFUSED("two fdsets with one id", s->fdsets[1] = s->fdsets[0];
	    s->nfdsets = 2);
	T_REFUSED("an fdset on slot 0", s->fdsets[0].slot = 0;
	    s->qga_fd = 4);
	T_REFUSED("a comma in an fdset label",
	    SET(s->fdsets[0].opaque, "a,b"));
	T_REFUSED("too many fds", s->npass = QEMU_MAX_FDS + 1);
	T_REFUSED("an fd on a user NIC", s->nics[0].fd = s->qmp_fd;
	    s->qmp_fd = 0; SET(s->qmp_path, "/run/q"));
	T_REFUSED("a vhost fd without an open TAP",
	    SET(s->nics[0].type, "tap"); SET(s->nics[0].ifname, "cvt0");
	    s->nics[0].vhost = 1; s->nics[0].vhostfd = s->qmp_fd;
	    s->qmp_fd = 0; SET(s->qmp_path, "/run/q"));
	T_REFUSED("an open TAP with vhost but no vhost fd",
	    SET(s->nics[0].type, "tap"); SET(s->nics[0].ifname, "cvt0");
	    s->nics[0].vhost = 1; s->nics[0].fd = s->qmp_fd;
	    s->qmp_fd = 0; SET(s->qmp_path, "/run/q"));
	T_REFUSED("an initrd fd without a kernel", s->initrd_fd = s->qmp_fd;
	    s->qmp_fd = 0; SET(s->qmp_path, "/run/q"));
#undef T_REFUSED
	free(s);

	/* qemu_spec_fd / qemu_spec_fdset refusals leave the spec alone. */
	i = good->npass;
	dfd = open(t->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(qemu_spec_fd(good, dfd), -1);
	assert_int_equal(errno, EISDIR);
	close(dfd);
	assert_int_equal(qemu_spec_fd(good, dfd), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(qemu_spec_fd(good, -1), -1);
	assert_int_equal(qemu_spec_fdset(good, a, "a,b"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(qemu_spec_fdset(good, a,
	    "a-label-longer-than-thirty-one-bytes"), -1);
	assert_int_equal(good->npass, i);
	assert_int_equal(good->nfdsets, 1);
	while (good->npass < QEMU_MAX_FDS)
		assert_true(qemu_spec_fd(good, a) > 0);
	assert_int_equal(qemu_spec_fd(good, a), -1);
	assert_int_equal(errno, ENOSPC);
	close(a);
	close(b);
}

/* Break one field of a valid spec; returns what was broken, NULL at end. */
static const char *
t_break(struct qemu_vm_spec *s, int i)
{
	switch (i) {
	case 0: SET(s->disks[0].path, "/img/a,b.qcow2"); return "comma in disk";
	case 1: SET(s->qmp_path, "/run/a,b.sock"); return "comma in qmp";
	case 2: SET(s->serial_path, "/run/s,1"); return "comma in serial";
	case 3: SET(s->serial_log, "/log/s,1"); return "comma in log";
	case 4: SET(s->pidfile, "/run/q,pid"); return "comma in pidfile";
	case 5: SET(s->kernel, "/boot/k,1"); return "comma in kernel";
	case 6: SET(s->kernel, "/k"); SET(s->initrd, "/i,1");
		return "comma in initrd";
	case 7: s->vnc_display = 0; SET(s->vnc_path, "/v,1");
		return "comma in vnc";
	case 8: SET(s->disks[0].path, "/img/a\nb"); return "newline in disk";
	case 9: SET(s->kernel, "/k"); SET(s->cmdline, "a\nb");
		return "newline in cmdline";
	case 10: SET(s->disks[0].path, ""); return "empty disk path";
	case 11: SET(s->name, "a/b"); return "slash in name";
	case 12: SET(s->name, ".."); return "dot-dot name";
	case 13: SET(s->uuid, "not-a-uuid"); return "bad uuid";
	case 14: s->cpus = 0; return "zero cpus";
	case 15: s->memory_mib = 0; return "zero memory";
	case 16: SET(s->accel, "xen"); return "unknown accel";
	case 17: SET(s->disks[0].format, "vmdk"); return "unknown format";
	case 18: SET(s->nics[0].type, "bridge"); return "unknown nic type";
	case 19: SET(s->nics[0].type, "tap"); return "tap without ifname";
	case 20: SET(s->nics[0].type, "tap"); SET(s->nics[0].ifname,
		    "tap,0"); return "comma in ifname";
	case 21: SET(s->nics[0].mac, "52:54:00:12:34"); return "short mac";
	case 22: SET(s->nics[0].mac, "01:54:00:12:34:56");
		return "multicast mac";
	case 23: s->ndisks = QEMU_MAX_DISKS + 1; return "too many disks";
	case 24: s->nnics = -1; return "negative nics";
	case 25: SET(s->initrd, "/i"); return "initrd without kernel";
	case 26: SET(s->qmp_path, ""); return "no qmp socket";
	case 27: SET(s->incoming, "exec:a,b"); return "comma in incoming";
	case 29: s->nics[0].port = QEMU_MAX_NICS; return "nic port too high";
	case 30: s->nics[1] = s->nics[0]; s->nics[1].mac[16] = '2';
		s->nnics = 2; return "two nics on one port";
	case 28:
		for (s->ndisks = 0; s->ndisks < 7; s->ndisks++) {
			s->disks[s->ndisks] = s->disks[0];
			s->disks[s->ndisks].cdrom = 1;
		}
		return "more CD-ROMs than AHCI ports";
	}
	return NULL;
}

static void
test_argv_rejects(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *good = t->spec, *s;
	const char *what;
	char **argv;
	int i;

	snprintf(good->disks[0].path, sizeof(good->disks[0].path), "/img/a");
	snprintf(good->disks[0].format, sizeof(good->disks[0].format), "raw");
	good->ndisks = 1;
	snprintf(good->nics[0].mac, sizeof(good->nics[0].mac),
	    "52:54:00:00:00:01");
	snprintf(good->nics[0].type, sizeof(good->nics[0].type), "user");
	good->nnics = 1;
	argv = qemu_build_argv(good);
	assert_non_null(argv);
	qemu_argv_free(argv);
	s = malloc(sizeof(*s));
	assert_non_null(s);
	for (i = 0; ; i++) {
		*s = *good;
		if ((what = t_break(s, i)) == NULL)
			break;
		errno = 0;
		argv = qemu_build_argv(s);
		if (argv != NULL || errno != EINVAL) {
			qemu_argv_free(argv);
			free(s);
			fail_msg("accepted: %s", what);
		}
	}
	free(s);
	assert_int_equal(i, 31);
	errno = 0;
	assert_null(qemu_build_argv(NULL));
	assert_int_equal(errno, EINVAL);
	qemu_argv_free(NULL);
}

/* A script that is not executed in these tests (see t_standin). */
static const char t_script[] = "#!/bin/sh\nexit 0\n";

/* Run as the stand-in QEMU: the spawn test points CVIRT_QEMU at this very
 * binary with CVIRT_TEST_STANDIN set; it reports what it inherited. A
 * shell would not do: dash clears its signal mask at start-up. */
static int
t_standin(int argc, char **argv)
{
	char path[300], target[4096], line[256];
	struct dirent *de;
	ssize_t n;
	FILE *f;
	DIR *d;
	int i;

	printf("argv:");
	for (i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	if ((d = opendir("/proc/self/fd")) == NULL)
		return 1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strtol(de->d_name, NULL, 10) == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		printf("fd %s -> %s\n", de->d_name, target);
		/* What a passed file holds, read through the fd. */
		if (strtol(de->d_name, NULL, 10) >= QEMU_FD_FIRST &&
		    target[0] == '/' && (n = pread((int)strtol(de->d_name,
		    NULL, 10), line, 16, 0)) >= 0)
			printf("fd %s reads \"%.*s\"\n", de->d_name, (int)n,
			    line);
	}
	closedir(d);
	if (getsid(0) == getpid())
		printf("session leader\n");
	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return 1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "SigBlk:", 7) == 0 ||
		    strncmp(line, "SigIgn:", 7) == 0 ||
		    strncmp(line, "Uid:", 4) == 0 ||
		    strncmp(line, "Gid:", 4) == 0 ||
		    strncmp(line, "Groups:", 7) == 0 ||
		    strncmp(line, "Cap", 3) == 0 ||
		    strncmp(line, "NoNewPrivs:", 11) == 0)
			fputs(line, stdout);
	}
	fclose(f);
	n = readlink("/proc/self/cwd", target, sizeof(target) - 1);
	target[n < 0 ? 0 : n] = '\0';
	printf("cwd %s\n", target);
	/* A path the caller could open: can we? */
	if (getenv("CVIRT_TEST_STANDIN_OPEN")) {
		int fd = open(getenv("CVIRT_TEST_STANDIN_OPEN"), O_RDONLY);

		printf("open by path: %s\n", fd < 0 ? strerror(errno) : "ok");
	}
	return 7;
}

static void
t_write_script(struct tstate *t, const char *name, const char *text,
    mode_t mode)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	assert_int_equal(util_write_file_atomic(path, text, strlen(text), mode),
	    0);
	setenv("CVIRT_QEMU", path, 1);
}

/* QEMU starts detached with only fds 0-2, in its own session, with no
 * signal blocked or ignored whatever our parent left us (the stand-in
 * reports its /proc status). Guards qemu_child (src/qemu/qemu_spawn.c) and
 * proc_child_signals (src/common/proc.c): with sigaction(3) there, glibc's
 * internal signals 32 and 33 stayed ignored under `make test`. */
static void
test_spawn_detached(void **state)
{
	struct tstate *t = *state;
	char logp[256], marker[256], self[4096], *log;
	struct sigenv sigsave;
	int status, mfd, stdin_save;
	ssize_t n;
	pid_t pid = 0;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	setenv("CVIRT_QEMU", self, 1);
	setenv("CVIRT_TEST_STANDIN", "1", 1);
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	assert_int_equal(util_write_file_atomic(logp, "before\n", 7, 0640), 0);
	/* An inherited fd, a blocked and an ignored signal must not leak. */
	snprintf(marker, sizeof(marker), "%s/marker-fd", t->dir);
	mfd = open(marker, O_RDWR | O_CREAT, 0600);
	assert_true(mfd >= 0);
	/* Our stdin is the marker too: the child must get /dev/null. */
	stdin_save = dup(0);
	assert_true(stdin_save >= 0);
	assert_int_equal(dup2(mfd, 0), 0);
	/* Whatever our parent left (see sigenv.h): qemu_child resets it. */
	assert_int_equal(sigenv_hostile(&sigsave), 0);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), 0);
	sigenv_restore(&sigsave);
	unsetenv("CVIRT_TEST_STANDIN");
	dup2(stdin_save, 0);
	close(stdin_save);
	close(mfd);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);
	log = util_read_file(logp, 1 << 20, NULL);
	assert_non_null(log);
	assert_memory_equal(log, "before\n", 7);
	assert_non_null(strstr(log, "argv: -name guest=vm1,debug-threads=on "));
	/* Exactly stdin, stdout and stderr are open. */
	assert_non_null(strstr(log, "\nfd 0 -> /dev/null\n"));
	assert_non_null(strstr(log, t_fmt("\nfd 1 -> %s\n", logp, NULL)));
	assert_non_null(strstr(log, t_fmt("\nfd 2 -> %s\n", logp, NULL)));
	if (t_count(log, "\nfd ") != 3)
		fail_msg("unexpected open fds:\n%s", log);
	assert_non_null(strstr(log, "session leader\n"));
	if (strstr(log, SIGENV_CLEAN_BLK) == NULL ||
	    strstr(log, SIGENV_CLEAN_IGN) == NULL)
		fail_msg("signals blocked or ignored in QEMU:\n%s",
		    strstr(log, "SigBlk:") ? strstr(log, "SigBlk:") : log);
	free(log);
}

static void
test_spawn_exec_failure(void **state)
{
	struct tstate *t = *state;
	char logp[256], bin[256], want[600];
	pid_t pid = 0;

	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	snprintf(bin, sizeof(bin), "%s/no-such-qemu", t->dir);
	setenv("CVIRT_QEMU", bin, 1);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	snprintf(want, sizeof(want), "cannot run %s: No such file or directory",
	    bin);
	assert_string_equal(t->err, want);
	/* The failed child was reaped: no zombie, no child left. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	t_write_script(t, "not-executable", t_script, 0644);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "not-executable: Permission denied"));
}

static void
test_spawn_bad_input(void **state)
{
	struct tstate *t = *state;
	char logp[256];
	pid_t pid = 0;

	t_write_script(t, "fake-qemu", t_script, 0755);
	snprintf(logp, sizeof(logp), "%s/missing-dir/qemu.log", t->dir);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "cannot open"));
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	SET(t->spec->serial_log, "/log/a,b");
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err,
	    "cannot build QEMU command line: invalid VM description");
	assert_int_equal(pid, 0);
}

/* fd moved to 100 or above (close-on-exec); the original is closed. */
static int
t_high(int fd)
{
	int nfd;

	assert_true(fd >= 0);
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	assert_true(nfd >= 100);
	close(fd);
	return nfd;
}

/* Save what sits on fds lo..hi (to put our own there); t_fds_restore puts
 * it back. */
static void
t_fds_save(int lo, int hi, int saved[])
{
	int fd;

	for (fd = lo; fd <= hi; fd++)
		saved[fd - lo] = fcntl(fd, F_GETFD) < 0 ? -1 :
		    fcntl(fd, F_DUPFD_CLOEXEC, 200);
}

static void
t_fds_restore(int lo, int hi, const int saved[])
{
	int fd;

	for (fd = lo; fd <= hi; fd++) {
		close(fd);
		if (saved[fd - lo] >= 0) {
			dup2(saved[fd - lo], fd);
			close(saved[fd - lo]);
		}
	}
}

/* Point CVIRT_QEMU at a copy of this binary, in t->dir made traversable,
 * that any user may run; the copy runs as the stand-in (t_standin). */
static void
t_standin_setup(struct tstate *t)
{
	char self[4096], copy[256];
	ssize_t n;
	char *bin;
	size_t len;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	bin = util_read_file(self, 1 << 30, &len);
	assert_non_null(bin);
	snprintf(copy, sizeof(copy), "%s/standin", t->dir);
	assert_int_equal(util_write_file_atomic(copy, bin, len, 0755), 0);
	free(bin);
	assert_int_equal(chmod(t->dir, 0711), 0);
	setenv("CVIRT_QEMU", copy, 1);
	setenv("CVIRT_TEST_STANDIN", "1", 1);
}

/* Spawn the stand-in, wait for it, return what it reported (free it). */
static char *
t_standin_run(struct tstate *t)
{
	char logp[256], *log;
	int status;
	pid_t pid = 0;

	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	(void)unlink(logp);
	if (qemu_spawn(t->spec, logp, &pid, t->err, sizeof(t->err)) < 0)
		fail_msg("qemu_spawn: %s", t->err);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	log = util_read_file(logp, 1 << 20, NULL);
	assert_non_null(log);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
		fail_msg("the stand-in failed:\n%s", log);
	return log;
}

static void
t_assert_in(const char *log, const char *want)
{
	if (strstr(log, want) == NULL)
		fail_msg("missing \"%s\" in:\n%s", want, log);
}

/* QEMU gets exactly the fds passed, each at its slot, open on the same
 * file as ours (a listening socket, a read-only CD-ROM image, an
 * append-only log), also when ours sit on each other's slots (a naive
 * dup2 would clobber one), close-on-exec or not; and nothing else: an
 * inheritable fd of ours stays out. A CD-ROM image open for writing, a
 * closed fd: nothing starts. Guards qemu_child and qemu_check_pass
 * (src/qemu/qemu_spawn.c). */
static void
test_spawn_passes_fds(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	int saved[3], lfd, cd, log, leak, rw;
	char want[256], *out;
	struct stat st;
	pid_t pid = 0;

	t_standin_setup(t);
	assert_int_equal(util_write_file_atomic(t_fmt("%s/cd.iso", t->dir,
	    NULL), "ISO-CONTENT", 11, 0600), 0);
	/* Ours far from the slots, to put copies exactly where we want. */
	lfd = t_high(t_listen(t, "qmp.sock"));
	cd = t_high(t_open_file(t, "cd.iso", O_RDONLY));
	log = t_high(t_open_file(t, "serial.log", O_WRONLY | O_APPEND |
	    O_CREAT));
	leak = t_high(open(t_fmt("%s/leak", t->dir, NULL), O_RDWR | O_CREAT,
	    0600));
	assert_int_equal(fcntl(leak, F_SETFD, 0), 0);	/* inheritable */
	assert_int_equal(fstat(lfd, &st), 0);
	/* Ours at 4 (CD-ROM), 5 (QMP), 6 (log); QEMU's order is QMP, log,
	 * CD-ROM. */
	t_fds_save(4, 6, saved);
	assert_int_equal(dup3(cd, 4, O_CLOEXEC), 4);
	assert_int_equal(dup3(lfd, 5, O_CLOEXEC), 5);
	assert_int_equal(dup2(log, 6), 6);	/* inheritable, for once */
	s->qmp_fd = qemu_spec_fd(s, 5);
	s->serial_path[0] = '\0';
	s->serial_log_fdset = qemu_spec_fdset(s, 6, "log");
	SET(s->disks[0].format, "raw");
	s->disks[0].cdrom = 1;
	s->disks[0].fdset = qemu_spec_fdset(s, 4, "cd");
	s->ndisks = 1;
	out = t_standin_run(t);
	t_fds_restore(4, 6, saved);
	snprintf(want, sizeof(want), "\nfd 4 -> socket:[%lu]\n",
	    (unsigned long)st.st_ino);
	t_assert_in(out, want);
	t_assert_in(out, t_fmt("\nfd 5 -> %s/serial.log\n", t->dir, NULL));
	t_assert_in(out, t_fmt("\nfd 6 -> %s/cd.iso\n", t->dir, NULL));
	t_assert_in(out, "\nfd 6 reads \"ISO-CONTENT\"\n");
	t_assert_in(out, "argv: ");
	t_assert_in(out, " -add-fd fd=5,set=1,opaque=log -add-fd "
	    "fd=6,set=2,opaque=cd ");
	/* 0-2 and the three slots; not 3 (close-on-exec), not the leak. */
	if (t_count(out, "\nfd ") - t_count(out, " reads ") != 6)
		fail_msg("unexpected open fds:\n%s", out);
	free(out);

	/* A CD-ROM image open read-write would stay writable in QEMU. */
	s->pass_fd[0] = lfd;
	s->pass_fd[1] = log;
	s->pass_fd[2] = rw = t_open_file(t, "cd.iso", O_RDWR);
	assert_int_equal(qemu_spawn(s, t_fmt("%s/qemu.log", t->dir, NULL),
	    &pid, t->err, sizeof(t->err)), -1);
	snprintf(want, sizeof(want), "cannot pass fd %d to QEMU: a read-only "
	    "device's file must be open read-only", rw);
	assert_string_equal(t->err, want);
	close(rw);
	/* A closed fd. */
	assert_int_equal(qemu_spawn(s, t_fmt("%s/qemu.log", t->dir, NULL),
	    &pid, t->err, sizeof(t->err)), -1);
	snprintf(want, sizeof(want), "cannot pass fd %d to QEMU: Bad file "
	    "descriptor", rw);
	assert_string_equal(t->err, want);
	assert_int_equal(pid, 0);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	close(lfd);
	close(cd);
	close(log);
	close(leak);
}

/* QEMU started as an unprivileged user: its uid and gid, exactly the
 * supplementary groups given (ours are gone), no capability in any set
 * (bounding and ambient included), no_new_privs, cwd "/"; it reads a
 * root-only file through the fd passed and cannot open it by path. A
 * switch that cannot be made starts nothing. Guards proc_child_identity
 * (src/common/proc.c) and qemu_child (src/qemu/qemu_spawn.c). Needs root
 * (CI runs as root). */
static void
test_spawn_as_user(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char secret[256], why[128], *out;
	struct capenv save;
	int fd;
	pid_t pid = 0;

	if (geteuid() != 0)
		skip();
	t_standin_setup(t);
	snprintf(secret, sizeof(secret), "%s/secret", t->dir);
	assert_int_equal(util_write_file_atomic(secret, "ROOT-ONLY", 9, 0600),
	    0);
	fd = t_open_file(t, "secret", O_RDONLY);
	SET(s->kernel, "/unused");
	s->kernel_fd = qemu_spec_fd(s, fd);
	setenv("CVIRT_TEST_STANDIN_OPEN", secret, 1);
	assert_int_equal(proc_identity_user("nobody", NULL, &s->user, t->err,
	    sizeof(t->err)), 0);
	assert_true(s->user.uid != 0 && s->user.gid != 0);
	/* Groups and capabilities of ours that must not reach QEMU. */
	assert_int_equal(capenv_hostile(&save), 0);
	out = t_standin_run(t);
	capenv_restore(&save);
	unsetenv("CVIRT_TEST_STANDIN_OPEN");
	if (capenv_dropped(out, &s->user, why, sizeof(why)) < 0)
		fail_msg("%s in:\n%s", why, out);
	t_assert_in(out, "\ncwd /\n");
	t_assert_in(out, "\nfd 4 reads \"ROOT-ONLY\"\n");
	t_assert_in(out, "\nopen by path: Permission denied\n");
	free(out);

	/* Root is no unprivileged user: nothing runs. */
	s->user.uid = 0;
	assert_int_equal(qemu_spawn(s, t_fmt("%s/qemu.log", t->dir, NULL),
	    &pid, t->err, sizeof(t->err)), -1);
	assert_string_equal(t->err, t_fmt("cannot run %s/standin as an "
	    "unprivileged user: Invalid argument", t->dir, NULL));
	assert_int_equal(pid, 0);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	close(fd);
}

/* 1 if prog is an executable in $PATH. */
static int
t_in_path(const char *prog)
{
	char path[4096], *p, *save = NULL, buf[8192];
	const char *env = getenv("PATH");

	snprintf(path, sizeof(path), "%s", env ? env : "/usr/bin:/bin");
	for (p = strtok_r(path, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		snprintf(buf, sizeof(buf), "%s/%s", p, prog);
		if (access(buf, X_OK) == 0)
			return 1;
	}
	return 0;
}

static void
t_real_spec(struct tstate *t)
{
	struct qemu_vm_spec *s = t->spec;
	char img[256];

	snprintf(img, sizeof(img), "%s/disk.raw", t->dir);
	assert_int_equal(util_write_file_atomic(img, "", 0, 0600), 0);
	assert_int_equal(truncate(img, 1 << 20), 0);
	snprintf(s->disks[0].path, sizeof(s->disks[0].path), "%s", img);
	snprintf(s->disks[0].format, sizeof(s->disks[0].format), "raw");
	/* The CD-ROM needs its own image: QEMU locks images. */
	s->disks[1] = s->disks[0];
	s->disks[1].cdrom = 1;
	snprintf(s->disks[1].path, sizeof(s->disks[1].path), "%s/cd.iso",
	    t->dir);
	assert_int_equal(util_write_file_atomic(s->disks[1].path, "", 0, 0600),
	    0);
	s->ndisks = 2;
	snprintf(s->nics[0].mac, sizeof(s->nics[0].mac), "52:54:00:00:00:01");
	snprintf(s->nics[0].type, sizeof(s->nics[0].type), "user");
	s->nnics = 1;
	s->memory_mib = 64;
	s->cpus = 1;
	s->panic_device = s->watchdog = s->start_paused = 1;
	snprintf(s->pidfile, sizeof(s->pidfile), "%s/qemu.pid", t->dir);
}

/* The command line is accepted by the real QEMU (skipped without one). */
static void
test_spawn_real_qemu(void **state)
{
	struct tstate *t = *state;
	char logp[256], *pidtxt, *log;
	struct qmp *q;
	json_t *ret = NULL;
	pid_t pid = 0;
	int status;

	if (!t_in_path("qemu-system-x86_64"))
		skip();
	t_real_spec(t);
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	assert_int_equal(qemu_spawn(t->spec, logp, &pid, t->err,
	    sizeof(t->err)), 0);
	t->qemu = pid;
	q = qmp_open(t->spec->qmp_path, 5000, NULL, NULL, t->err, sizeof(t->err));
	if (q == NULL) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		t->qemu = 0;
		log = util_read_file(logp, 1 << 20, NULL);
		fail_msg("%s; QEMU said: %s", t->err, log ? log : "?");
	}
	assert_int_equal(qmp_command(q, "query-status", NULL, 5000, &ret,
	    t->err, sizeof(t->err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")),
	    "prelaunch");
	json_decref(ret);
	pidtxt = util_read_file(t->spec->pidfile, 64, NULL);
	assert_non_null(pidtxt);
	assert_int_equal(strtol(pidtxt, NULL, 10), pid);
	free(pidtxt);
	(void)qmp_command(q, "quit", NULL, 5000, NULL, t->err, sizeof(t->err));
	qmp_close(q);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	t->qemu = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The value of field (e.g. "Uid:") in /proc/PID/status: its first word
 * into out. */
static void
t_proc_status(pid_t pid, const char *field, char *out, size_t outsz)
{
	char path[64], *st, *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	st = util_read_file(path, 1 << 16, NULL);
	assert_non_null(st);
	out[0] = '\0';
	if ((p = strstr(st, field)) != NULL) {
		p += strlen(field);
		p += strspn(p, "\t ");
		snprintf(out, outsz, "%.*s", (int)strcspn(p, "\t \n"), p);
	}
	free(st);
}

/* 1 when pid has an fd open on path. */
static int
t_proc_has_file(pid_t pid, const char *path)
{
	char dir[64], link[400], target[4096];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int found = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		found |= strcmp(target, path) == 0;
	}
	closedir(d);
	return found;
}

static int
t_blockdev_add(struct qmp *q, const char *node, const char *file,
    char *err, size_t errsz)
{
	json_t *args = json_pack("{s:s, s:s, s:s, s:b}", "driver", "file",
	    "node-name", node, "filename", file, "read-only", 1);
	int rc;

	assert_non_null(args);
	rc = qmp_command(q, "blockdev-add", args, 5000, NULL, err, errsz);
	json_decref(args);
	return rc;
}

/* A TAP device of our own (not persistent: it goes with the last fd),
 * open as the agent opens one for QEMU; its name in ifname. */
static int
t_tap_open(char *ifname, size_t ifnamesz)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open /dev/net/tun: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "cvqt%%d");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		fail_msg("TUNSETIFF: %s", strerror(errno));
	snprintf(ifname, ifnamesz, "%s", ifr.ifr_name);
	return fd;
}

/* The smallest file QEMU's x86 loader takes as a Linux kernel (boot
 * protocol 2.02: setup sectors, boot flag, "HdrS") with an initrd; it
 * is loaded at machine creation, never run here (-S). */
static void
t_write_kernel(const char *path)
{
	unsigned char k[8192] = { 0 };

	k[0x1f1] = 4;
	k[0x1fe] = 0x55;
	k[0x1ff] = 0xaa;
	memcpy(k + 0x202, "HdrS", 4);
	k[0x206] = 0x02;
	k[0x207] = 0x02;
	assert_int_equal(util_write_file_atomic(path, (char *)k, sizeof(k),
	    0644), 0);
}

/* The real QEMU as an unprivileged user, with everything it needs passed
 * open, all in a directory only root can enter: QMP, serial console and
 * guest agent listening sockets, the serial log, a disk and a CD-ROM
 * (root 0600), kernel and initrd (root 0644: QEMU reopens
 * /proc/self/fd/N with its own rights, docs/security.md), a TAP with
 * vnet headers; VNC with no socket. It starts under its sandbox and
 * answers QMP; it runs as that user with no capability and no_new_privs;
 * an fd we left inheritable did not reach it; it cannot open a root file
 * by path (blockdev-add: Permission denied) but opens one we pass by
 * add-fd (SCM_RIGHTS), takes a socket passed by getfd for netdev_add, and
 * serves VNC on a socket passed by getfd + add_client (the RFB greeting
 * comes back). Guards qemu_child (src/qemu/qemu_spawn.c), the fd options
 * of qemu_build_argv (src/qemu/qemu_cmd.c), proc_child_identity
 * (src/common/proc.c), qmp_add_fd and qmp_send_fd (src/qemu/qmp_fd.c)
 * against QEMU itself. Needs root and QEMU (CI has both). */
static void
test_spawn_real_qemu_unprivileged(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	int lq, ls, lg, log, disk, cd, kern, initrd, tap, other, leak;
	int sp[2], vp[2];
	char logp[256], val[64], other_path[256], file[64], *qlog;
	char ifname[IFNAMSIZ], rfb[13];
	struct timeval tv = { .tv_sec = 10 };
	int64_t set = -1;
	struct qmp *q;
	json_t *ret = NULL, *args;
	pid_t pid = 0;
	int status;

	if (!t_in_path("qemu-system-x86_64") || geteuid() != 0)
		skip();
	assert_int_equal(chmod(t->dir, 0700), 0);
	assert_int_equal(util_write_file_atomic(t_fmt("%s/disk.raw", t->dir,
	    NULL), "", 0, 0600), 0);
	assert_int_equal(truncate(t_fmt("%s/disk.raw", t->dir, NULL), 1 << 20),
	    0);
	assert_int_equal(util_write_file_atomic(t_fmt("%s/cd.iso", t->dir,
	    NULL), "CD", 2, 0600), 0);
	snprintf(other_path, sizeof(other_path), "%s/other.img", t->dir);
	assert_int_equal(util_write_file_atomic(other_path, "OTHER", 5, 0600),
	    0);
	t_write_kernel(t_fmt("%s/vmlinuz", t->dir, NULL));
	assert_int_equal(util_write_file_atomic(t_fmt("%s/initrd.img", t->dir,
	    NULL), "INITRD", 6, 0644), 0);
	lq = t_listen(t, "qmp.sock");
	ls = t_listen(t, "serial.sock");
	lg = t_listen(t, "qga.sock");
	log = t_open_file(t, "serial.log", O_WRONLY | O_APPEND | O_CREAT);
	kern = t_open_file(t, "vmlinuz", O_RDONLY);
	initrd = t_open_file(t, "initrd.img", O_RDONLY);
	tap = t_tap_open(ifname, sizeof(ifname));
	disk = t_open_file(t, "disk.raw", O_RDWR);
	cd = t_open_file(t, "cd.iso", O_RDONLY);
	other = t_open_file(t, "other.img", O_RDONLY);
	leak = open(t_fmt("%s/leak", t->dir, NULL), O_RDWR | O_CREAT, 0600);
	assert_true(leak >= 0);
	s->qmp_fd = qemu_spec_fd(s, lq);
	s->serial_fd = qemu_spec_fd(s, ls);
	s->serial_log_fdset = qemu_spec_fdset(s, log, "serial-log");
	s->qga_fd = qemu_spec_fd(s, lg);
	SET(s->qga_path, t_fmt("%s/qga.sock", t->dir, NULL));
	s->kernel_fd = qemu_spec_fd(s, kern);
	s->initrd_fd = qemu_spec_fd(s, initrd);
	SET(s->kernel, "/not/used/vmlinuz");
	SET(s->initrd, "/not/used/initrd.img");
	SET(s->cmdline, "console=ttyS0");
	SET(s->disks[0].format, "raw");
	s->disks[0].fdset = qemu_spec_fdset(s, disk, "disk0");
	SET(s->disks[1].format, "raw");
	s->disks[1].cdrom = 1;
	s->disks[1].fdset = qemu_spec_fdset(s, cd, "cdrom");
	s->ndisks = 2;
	SET(s->nics[0].mac, "52:54:00:00:00:01");
	SET(s->nics[0].type, "user");
	SET(s->nics[1].mac, "52:54:00:00:00:02");
	SET(s->nics[1].type, "tap");
	SET(s->nics[1].ifname, ifname);
	s->nics[1].port = 1;
	s->nics[1].fd = qemu_spec_fd(s, tap);
	s->nnics = 2;
	s->vnc_display = 0;
	s->memory_mib = 64;
	s->cpus = 1;
	s->start_paused = 1;
	assert_int_equal(proc_identity_user("nobody", "kvm", &s->user, t->err,
	    sizeof(t->err)), 0);
	snprintf(logp, sizeof(logp), "%s/qemu.log", t->dir);
	assert_int_equal(qemu_spawn(s, logp, &pid, t->err, sizeof(t->err)), 0);
	t->qemu = pid;
	/* The agent keeps the paths it bound: re-attach connects there. */
	q = qmp_open(s->qmp_path, 10000, NULL, NULL, t->err, sizeof(t->err));
	if (q == NULL) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		t->qemu = 0;
		qlog = util_read_file(logp, 1 << 20, NULL);
		fail_msg("%s; QEMU said: %s", t->err, qlog ? qlog : "?");
	}
	assert_int_equal(qmp_command(q, "query-status", NULL, 5000, &ret,
	    t->err, sizeof(t->err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")),
	    "prelaunch");
	json_decref(ret);
	t_proc_status(pid, "Uid:", val, sizeof(val));
	assert_int_equal(strtol(val, NULL, 10), (long)s->user.uid);
	t_proc_status(pid, "NoNewPrivs:", val, sizeof(val));
	assert_string_equal(val, "1");
	t_proc_status(pid, "CapEff:", val, sizeof(val));
	assert_string_equal(val, "0000000000000000");
	t_proc_status(pid, "CapBnd:", val, sizeof(val));
	assert_string_equal(val, "0000000000000000");
	t_proc_status(pid, "Seccomp:", val, sizeof(val));
	assert_string_equal(val, "2");
	assert_false(t_proc_has_file(pid, t_fmt("%s/leak", t->dir, NULL)));
	assert_true(t_proc_has_file(pid, t_fmt("%s/disk.raw", t->dir, NULL)));
	/* By path: QEMU's own rights, none here. */
	assert_int_equal(t_blockdev_add(q, "bypath", other_path, t->err,
	    sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "Permission denied"));
	/* By fd: an fdset QEMU opens through /dev/fdset. */
	assert_int_equal(qmp_add_fd(q, other, "other", 5000, &set, t->err,
	    sizeof(t->err)), 0);
	snprintf(file, sizeof(file), "/dev/fdset/%lld", (long long)set);
	if (t_blockdev_add(q, "byfd", file, t->err, sizeof(t->err)) < 0)
		fail_msg("blockdev-add %s: %s", file, t->err);
	/* A socket by getfd, taken by name. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sp), 0);
	assert_int_equal(qmp_send_fd(q, "sock0", sp[0], 5000, t->err,
	    sizeof(t->err)), 0);
	args = json_pack("{s:s, s:s, s:s}", "type", "socket", "id", "ns0",
	    "fd", "sock0");
	if (qmp_command(q, "netdev_add", args, 5000, NULL, t->err,
	    sizeof(t->err)) < 0)
		fail_msg("netdev_add with a passed socket: %s", t->err);
	json_decref(args);
	/* A VNC viewer on a socket passed by getfd: QEMU greets it. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    vp), 0);
	assert_int_equal(setsockopt(vp[1], SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	assert_int_equal(qmp_send_fd(q, "vnc0", vp[0], 5000, t->err,
	    sizeof(t->err)), 0);
	args = json_pack("{s:s, s:s, s:b}", "protocol", "vnc", "fdname",
	    "vnc0", "skipauth", 1);
	if (qmp_command(q, "add_client", args, 5000, NULL, t->err,
	    sizeof(t->err)) < 0)
		fail_msg("add_client with a passed socket: %s", t->err);
	json_decref(args);
	memset(rfb, 0, sizeof(rfb));
	assert_int_equal(recv(vp[1], rfb, 12, MSG_WAITALL), 12);
	assert_string_equal(rfb, "RFB 003.008\n");
	(void)qmp_command(q, "quit", NULL, 5000, NULL, t->err, sizeof(t->err));
	qmp_close(q);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	t->qemu = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(sp[0]);
	close(sp[1]);
	close(vp[0]);
	close(vp[1]);
	close(lq);
	close(ls);
	close(lg);
	close(log);
	close(kern);
	close(initrd);
	close(tap);
	close(disk);
	close(cd);
	close(other);
	close(leak);
}

/* HA monitors: the guest agent's virtio-serial port; a hostfwd rule on a
 * user-mode NIC for tcp:PORT. */
static void
test_argv_health_devices(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **argv;

	SET(s->qga_path, t_fmt("%s/qga.sock", t->dir, NULL));
	SET(s->nics[0].mac, "52:54:00:12:34:56");
	SET(s->nics[0].type, "user");
	SET(s->nics[0].hostfwd, "tcp:127.0.0.1:40000-:8080");
	s->nnics = 1;
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-chardev", t_fmt("socket,id=qga0,path=%s/qga.sock,"
	    "server=on,wait=off", t->dir, NULL));
	assert_pair(argv, "-device", "virtio-serial-pci,id=cvserial0");
	assert_pair(argv, "-device", "virtserialport,bus=cvserial0.0,"
	    "chardev=qga0,name=org.qemu.guest_agent.0");
	assert_pair(argv, "-netdev",
	    "user,id=net0,hostfwd=tcp:127.0.0.1:40000-:8080");
	qemu_argv_free(argv);

	/* Without them: no port, a plain user-mode netdev. */
	s->qga_path[0] = s->nics[0].hostfwd[0] = '\0';
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_int_equal(argv_find(argv, "-device",
	    "virtio-serial-pci,id=cvserial0"), -1);
	assert_pair(argv, "-netdev", "user,id=net0");
	qemu_argv_free(argv);

	/* A rule that would smuggle in options, or one on a TAP NIC. */
	SET(s->nics[0].hostfwd, "tcp:127.0.0.1:1-:2,restrict=on");
	assert_null(qemu_build_argv(s));
	SET(s->nics[0].hostfwd, "tcp:127.0.0.1:1-:2");
	SET(s->nics[0].type, "tap");
	SET(s->nics[0].ifname, "cvtap0");
	assert_null(qemu_build_argv(s));
	s->nics[0].hostfwd[0] = '\0';
	SET(s->qga_path, t_fmt("%s/q,a.sock", t->dir, NULL));
	assert_null(qemu_build_argv(s));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_argv_base),
		T(test_argv_kvm_and_binary),
		T(test_argv_tcg_ram_not_256k_aligned),
		T(test_argv_migration_destination_matches_source),
		T(test_argv_disks),
		T(test_argv_nics),
		cmocka_unit_test(test_nic_hotplug_strings),
		T(test_argv_user_subnet),
		T(test_argv_kernel_boot),
		T(test_argv_extras),
		T(test_argv_health_devices),
		T(test_argv_rejects),
		T(test_argv_fd_slots),
		T(test_argv_fd_rejects),
		T(test_spawn_detached),
		T(test_spawn_exec_failure),
		T(test_spawn_bad_input),
		T(test_spawn_passes_fds),
		T(test_spawn_as_user),
		T(test_spawn_real_qemu),
		T(test_spawn_real_qemu_unprivileged),
	};

	if (getenv("CVIRT_TEST_STANDIN"))
		return t_standin(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
