/* qemu_cmd.h - build a QEMU command line from a VM description. */
#ifndef CVIRT_QEMU_CMD_H
#define CVIRT_QEMU_CMD_H

#include <sys/types.h>

#include "common/proc.h"

#define QEMU_MAX_DISKS 16
#define QEMU_MAX_NICS  8
/*
 * Files QEMU gets open instead of by path (it may run as a user that
 * cannot open them): the caller's fds in pass_fd[], each becoming "slot"
 * QEMU_FD_FIRST + i in QEMU (fd 3 is the exec-error pipe until exec).
 * Every slot must be used exactly once on the command line, so no fd
 * reaches QEMU that nothing asked for. Fields holding a slot or an fdset
 * id use 0 for "none" (slots start at 4, sets at 1).
 */
/*
 * Whether a disk's nodes (file and format) get cache.direct=on: where its
 * storage domain takes O_DIRECT and QEMU writes the node. The host page
 * cache is then bypassed (libvirt's cache=none), so a QEMU killed by a
 * fence leaves no dirty pages that reach storage after a new owner
 * started. Such a disk's device also gets werror=stop,rerror=stop: the
 * guest pauses on an I/O error instead of seeing it before the fence. The
 * command line and every blockdev-add (backupops.c) ask here.
 */
int	qemu_cache_direct(int domain_direct, int readonly);

#define QEMU_MAX_FDS	16
#define QEMU_FD_FIRST	4

struct qemu_disk {
	char	path[4096];	/* image file (with fdset: only for messages) */
	char	format[16];	/* "qcow2" or "raw" */
	int	readonly;
	int	cdrom;
	int	direct;		/* its domain takes O_DIRECT (qemu_cache_direct) */
	int	fdset;		/* > 0: open /dev/fdset/N (readonly, cdrom: the
				 * fd must be O_RDONLY) */
};

/* -add-fd fd=SLOT,set=SET,opaque=OPAQUE: QEMU dups the fd into an fdset
 * that "/dev/fdset/SET" opens (matching the access mode the fd has). */
struct qemu_fdset {
	int	set;
	int	slot;
	char	opaque[32];	/* a label for query-fdsets, may be "" */
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
	int	fd;		/* tap: slot of the open TAP (fd=), or 0: ifname= */
	int	vhostfd;	/* tap with fd and vhost: slot of /dev/vhost-net */
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
	int			vnc_display;	/* -1: none; else unix socket path
						 * below, or with vnc_path "":
						 * -vnc none, clients come by QMP
						 * (getfd + add_client) */
	char			vnc_path[108];
	int			panic_device;	/* add -device pvpanic */
	int			watchdog;	/* add -device i6300esb */
	char			incoming[128];	/* "-incoming" URI or "" */
	int			start_paused;	/* -S */
	char			fw_code[4096];	/* UEFI: firmware (read-only pflash) or "" */
	char			fw_vars[4096];	/* UEFI: this VM's NVRAM (pflash 1) */
	/* Open files instead of paths (slots: qemu_spec_fd, sets:
	 * qemu_spec_fdset); a path field is then ignored. */
	int			qmp_fd;		/* listening socket for QMP */
	int			serial_fd;	/* listening socket, serial console */
	int			serial_log_fdset; /* O_WRONLY|O_APPEND serial log */
	int			qga_fd;		/* listening socket, guest agent */
	int			kernel_fd;	/* -kernel /proc/self/fd/N: QEMU */
	int			initrd_fd;	/* reopens it with its own rights */
	int			pass_fd[QEMU_MAX_FDS];	/* borrowed, not closed */
	int			npass;
	struct qemu_fdset	fdsets[QEMU_MAX_FDS];
	int			nfdsets;
	struct proc_identity	user;	/* .set: QEMU runs as this user */
};

/* Pass fd (borrowed: the caller closes it after qemu_spawn) to QEMU: its
 * slot, or -1 (errno EBADF, EISDIR: a directory fd would let QEMU openat()
 * beneath it, ENOSPC: QEMU_MAX_FDS passed). */
int	  qemu_spec_fd(struct qemu_vm_spec *q, int fd);
/* Pass fd as a new fdset labelled opaque (NULL or a short word without
 * ','): its set id, or -1 with errno as qemu_spec_fd (EINVAL: opaque). */
int	  qemu_spec_fdset(struct qemu_vm_spec *q, int fd, const char *opaque);

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
 * /dev/null, pass_fd[i] at slot QEMU_FD_FIRST + i, all other fds closed;
 * as spec->user when set (proc_child_identity: no capabilities,
 * no_new_privs). The QEMU process outlives its parent. Returns 0 and the
 * pid, or -1 with a reason in err (including "cannot run BIN: <strerror>"
 * when exec fails, "... as an unprivileged user: ..." when the switch
 * does). QEMU is the caller's child: the caller reaps it. */
int	  qemu_spawn(const struct qemu_vm_spec *spec, const char *logfile,
	    pid_t *pid, char *err, size_t errsz);

#endif
