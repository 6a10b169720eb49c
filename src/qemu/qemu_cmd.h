/* qemu_cmd.h - build a QEMU command line from a VM description. */
#ifndef CVIRT_QEMU_CMD_H
#define CVIRT_QEMU_CMD_H

#include <sys/types.h>

#define QEMU_MAX_DISKS 16
#define QEMU_MAX_NICS  8

struct qemu_disk {
	char	path[4096];	/* image file */
	char	format[16];	/* "qcow2" or "raw" */
	int	readonly;
	int	cdrom;
};

/* Every NIC sits alone behind its own PCIe root port (cvport<port>, all
 * QEMU_MAX_NICS ports exist on every VM) so that NICs can be hot-plugged
 * and a hot-plugged NIC has the same address on a migration's destination.
 * Its netdev is net<port>, its device nic<port>. */
struct qemu_nic {
	char	mac[18];	/* "52:54:00:12:34:56" */
	char	type[16];	/* "user" or "tap" */
	char	ifname[16];	/* tap device for "tap" */
	char	hostfwd[64];	/* "user": a hostfwd rule ("tcp:127.0.0.1:H-:G") or "" */
	char	net[19];	/* "user": slirp's network ("10.0.5.0/24", net=) or "" */
	int	port;		/* 0 .. QEMU_MAX_NICS-1, unique per VM */
	int	vhost;		/* tap: vhost=on (KVM with /dev/vhost-net) */
};

struct qemu_vm_spec {
	char			uuid[37];
	char			name[64];
	int			cpus;
	int			memory_mib;
	char			accel[8];	/* "kvm" or "tcg" */
	char			kernel[4096];	/* direct boot, may be "" */
	char			initrd[4096];
	char			cmdline[1024];
	struct qemu_disk	disks[QEMU_MAX_DISKS];
	int			ndisks;
	struct qemu_nic		nics[QEMU_MAX_NICS];
	int			nnics;
	char			qmp_path[108];	/* QMP unix socket (server) */
	char			serial_path[108]; /* serial unix socket (server) */
	char			serial_log[4096]; /* all serial output, appended */
	char			qga_path[108];	/* guest agent port (unix socket server) or "" */
	char			pidfile[4096];
	int			vnc_display;	/* -1: none; else unix socket path below */
	char			vnc_path[108];
	int			panic_device;	/* add -device pvpanic */
	int			watchdog;	/* add -device i6300esb */
	char			incoming[128];	/* "-incoming" URI or "" */
	int			start_paused;	/* -S */
	char			fw_code[4096];	/* UEFI: firmware (read-only pflash) or "" */
	char			fw_vars[4096];	/* UEFI: this VM's NVRAM (pflash 1) */
};

/* NULL-terminated argv, argv[0] is the QEMU binary ($CVIRT_QEMU or
 * qemu-system-x86_64). Free with qemu_argv_free. Returns NULL (errno set)
 * on a field that cannot be expressed (e.g. a comma in a path). */
char	**qemu_build_argv(const struct qemu_vm_spec *spec);
void	  qemu_argv_free(char **argv);

/* The -netdev value of a NIC ("tap,id=net2,ifname=...,script=no,...")
 * and its -device value, also used by hot-plug. 0, or -1 when it does not
 * fit or a field is invalid. */
int	  qemu_nic_netdev(const struct qemu_nic *n, char *out, size_t outsz);
int	  qemu_nic_device(const struct qemu_nic *n, char *out, size_t outsz);

/* fork + setsid + exec with stdout/stderr appended to logfile, stdin from
 * /dev/null, all other fds closed; the QEMU process outlives its parent.
 * Returns 0 and the pid, or -1 with a reason in err (including "cannot run
 * BIN: <strerror>" when exec fails). QEMU is the caller's child: the
 * caller reaps it (waitpid/SIGCHLD). */
int	  qemu_spawn(const struct qemu_vm_spec *spec, const char *logfile,
	    pid_t *pid, char *err, size_t errsz);

#endif
