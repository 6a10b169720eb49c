/* test_qemu_cmd.c - unit tests for the QEMU command line (qemu_cmd.c);
 * spawning it: test_qemu_spawn.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "qemu_fixture.h"

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
	assert_pair(argv, "-chardev", qt_fmt(
	    "socket,id=qmp,path=%s/qmp.sock,server=on,wait=off", t->dir, NULL));
	assert_pair(argv, "-mon", "chardev=qmp,mode=control");
	assert_pair(argv, "-chardev", qt_fmt("socket,id=serial0,path=%s/"
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

/* On a domain that takes O_DIRECT a written disk bypasses the page cache
 * on both nodes and its device stops the guest on I/O errors; read-only
 * disks and CD-ROMs stay as they were, and so does every disk on a domain
 * without O_DIRECT. Guards qemu_cmd.c qemu_add_disks() and
 * qemu_cache_direct(). */
static void
test_argv_disks_direct(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **argv;
	int i;

	for (i = 0; i < 4; i++) {
		snprintf(s->disks[i].path, sizeof(s->disks[i].path),
		    "/img/d%d.qcow2", i);
		snprintf(s->disks[i].format, sizeof(s->disks[i].format),
		    "qcow2");
		s->disks[i].direct = i != 3;
	}
	s->disks[1].readonly = 1;
	s->disks[2].cdrom = 1;
	s->ndisks = 4;
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk0-file,"
	    "filename=/img/d0.qcow2,read-only=off,cache.direct=on");
	assert_pair(argv, "-blockdev", "driver=qcow2,node-name=disk0,"
	    "file=disk0-file,read-only=off,cache.direct=on");
	assert_pair(argv, "-device", "virtio-blk-pci,drive=disk0,"
	    "id=virtio-disk0,werror=stop,rerror=stop");
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk1-file,"
	    "filename=/img/d1.qcow2,read-only=on");
	assert_pair(argv, "-device", "virtio-blk-pci,drive=disk1,id=virtio-disk1");
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk2-file,"
	    "filename=/img/d2.qcow2,read-only=on");
	assert_pair(argv, "-blockdev", "driver=file,node-name=disk3-file,"
	    "filename=/img/d3.qcow2,read-only=off");
	assert_pair(argv, "-blockdev", "driver=qcow2,node-name=disk3,"
	    "file=disk3-file,read-only=off");
	assert_pair(argv, "-device", "virtio-blk-pci,drive=disk3,id=virtio-disk3");
	qemu_argv_free(argv);
	assert_int_equal(qemu_cache_direct(1, 0), 1);
	assert_int_equal(qemu_cache_direct(1, 1), 0);
	assert_int_equal(qemu_cache_direct(0, 0), 0);
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
	assert_pair(argv, "-vnc", qt_fmt("unix:%s/vnc.sock", t->dir, NULL));
	assert_no_opt(argv, "-display");
	qemu_argv_free(argv);
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
		fds[i] = qt_open_file(t, qt_fmt("f%s", (char[]){ (char)('0' + i),
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

	a = qt_open_file(t, "a", O_RDONLY | O_CREAT);
	b = qt_open_file(t, "b", O_RDONLY | O_CREAT);
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

/* HA monitors: the guest agent's virtio-serial port; a hostfwd rule on a
 * user-mode NIC for tcp:PORT. */
static void
test_argv_health_devices(void **state)
{
	struct tstate *t = *state;
	struct qemu_vm_spec *s = t->spec;
	char **argv;

	SET(s->qga_path, qt_fmt("%s/qga.sock", t->dir, NULL));
	SET(s->nics[0].mac, "52:54:00:12:34:56");
	SET(s->nics[0].type, "user");
	SET(s->nics[0].hostfwd, "tcp:127.0.0.1:40000-:8080");
	s->nnics = 1;
	argv = qemu_build_argv(s);
	assert_non_null(argv);
	assert_pair(argv, "-chardev", qt_fmt("socket,id=qga0,path=%s/qga.sock,"
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
	SET(s->qga_path, qt_fmt("%s/q,a.sock", t->dir, NULL));
	assert_null(qemu_build_argv(s));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, qt_setup, qt_teardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_argv_base),
		T(test_argv_kvm_and_binary),
		T(test_argv_tcg_ram_not_256k_aligned),
		T(test_argv_migration_destination_matches_source),
		T(test_argv_disks),
		T(test_argv_disks_direct),
		T(test_argv_nics),
		cmocka_unit_test(test_nic_hotplug_strings),
		T(test_argv_user_subnet),
		T(test_argv_kernel_boot),
		T(test_argv_extras),
		T(test_argv_health_devices),
		T(test_argv_rejects),
		T(test_argv_fd_slots),
		T(test_argv_fd_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
