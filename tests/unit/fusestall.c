/* fusestall.c - a FUSE filesystem for unit tests that can stop answering
 * (fusestall.h). It speaks the kernel protocol on /dev/fuse directly:
 * INIT, LOOKUP and GETATTR of one file and two empty directories, OPEN,
 * FLUSH, RELEASE, OPENDIR, READDIR, ACCESS, STATFS. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fusestall.h"

#define FS_BUF		(FUSE_MIN_READ_BUFFER + 65536)
#define FS_FILE_INO	2
#define FS_VMS_INO	3	/* "vms", "leases": what a storage domain has */
#define FS_LEASES_INO	4

struct fusestall {
	char		 dir[256];
	int		 fd;		/* /dev/fuse */
	int		 wake[2];	/* stall or stop the thread */
	pthread_t	 thread;
	int		 started;
	atomic_int	 delay_ms;	/* before each answer */
};

static void
fs_reply(struct fusestall *fs, uint64_t unique, int error, const void *out,
    size_t outsz)
{
	char buf[sizeof(struct fuse_out_header) + 256];
	struct fuse_out_header h;

	if (outsz > sizeof(buf) - sizeof(h))
		outsz = 0;
	h.len = (uint32_t)(sizeof(h) + (error ? 0 : outsz));
	h.error = -error;
	h.unique = unique;
	memcpy(buf, &h, sizeof(h));
	if (!error && outsz)
		memcpy(buf + sizeof(h), out, outsz);
	(void)!write(fs->fd, buf, h.len);
}

static void
fs_attr(uint64_t ino, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = ino == FS_FILE_INO ? S_IFREG | 0666 : S_IFDIR | 0755;
	a->nlink = ino == FS_FILE_INO ? 1 : 2;
	a->blksize = 4096;
}

/* One request; 0 served, -1 when the connection is gone. */
static int
fs_serve(struct fusestall *fs, char *buf)
{
	struct fuse_in_header *in = (struct fuse_in_header *)buf;
	const char *arg = buf + sizeof(*in);
	ssize_t n = read(fs->fd, buf, FS_BUF);

	if (n < 0)
		return errno == EINTR || errno == ENOENT ? 0 : -1;
	if ((size_t)n < sizeof(*in))
		return -1;
	if (atomic_load(&fs->delay_ms) > 0 && in->opcode != FUSE_INIT)
		poll(NULL, 0, atomic_load(&fs->delay_ms));
	switch (in->opcode) {
	case FUSE_INIT: {
		const struct fuse_init_in *ii = (const void *)arg;
		struct fuse_init_out o;

		memset(&o, 0, sizeof(o));
		o.major = FUSE_KERNEL_VERSION;
		o.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor :
		    FUSE_KERNEL_MINOR_VERSION;
		o.max_readahead = ii->max_readahead;
		o.max_background = 16;
		o.congestion_threshold = 12;
		o.max_write = 4096;
		o.time_gran = 1;
		fs_reply(fs, in->unique, 0, &o, sizeof(o));
		break;
	}
	case FUSE_LOOKUP: {
		struct fuse_entry_out o;

		memset(&o, 0, sizeof(o));
		if (in->nodeid == FUSE_ROOT_ID && strcmp(arg, "f") == 0)
			o.nodeid = FS_FILE_INO;
		else if (in->nodeid == FUSE_ROOT_ID && strcmp(arg, "vms") == 0)
			o.nodeid = FS_VMS_INO;
		else if (in->nodeid == FUSE_ROOT_ID && strcmp(arg, "leases") ==
		    0)
			o.nodeid = FS_LEASES_INO;
		if (o.nodeid == 0) {
			fs_reply(fs, in->unique, ENOENT, NULL, 0);
			break;
		}
		o.generation = 1;
		fs_attr(o.nodeid, &o.attr);
		fs_reply(fs, in->unique, 0, &o, sizeof(o));
		break;
	}
	case FUSE_GETATTR: {
		struct fuse_attr_out o;

		memset(&o, 0, sizeof(o));
		fs_attr(in->nodeid, &o.attr);
		fs_reply(fs, in->unique, 0, &o, sizeof(o));
		break;
	}
	case FUSE_OPEN: {
		struct fuse_open_out o;

		memset(&o, 0, sizeof(o));
		o.fh = 1;
		fs_reply(fs, in->unique, 0, &o, sizeof(o));
		break;
	}
	case FUSE_OPENDIR: {
		struct fuse_open_out o;

		memset(&o, 0, sizeof(o));
		o.fh = 2;
		fs_reply(fs, in->unique, 0, &o, sizeof(o));
		break;
	}
	case FUSE_STATFS: {
		struct fuse_statfs_out o;

		memset(&o, 0, sizeof(o));
		o.st.blocks = 1000;
		o.st.bfree = o.st.bavail = 500;
		o.st.bsize = o.st.frsize = 4096;
		o.st.namelen = 255;
		fs_reply(fs, in->unique, 0, &o, sizeof(o));
		break;
	}
	case FUSE_READDIR:	/* empty: no entry at all */
	case FUSE_RELEASEDIR:
	case FUSE_ACCESS:
	case FUSE_FLUSH:
	case FUSE_RELEASE:
	case FUSE_DESTROY:
		fs_reply(fs, in->unique, 0, NULL, 0);
		break;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		break;		/* no reply */
	default:
		fs_reply(fs, in->unique, ENOSYS, NULL, 0);
		break;
	}
	return 0;
}

/* Serve until woken (stall or stop): then read nothing more. */
static void *
fs_main(void *arg)
{
	struct fusestall *fs = arg;
	struct pollfd p[2] = { { fs->fd, POLLIN, 0 }, { 0, POLLIN, 0 } };
	char *buf = malloc(FS_BUF);

	p[1].fd = fs->wake[0];
	while (buf != NULL && poll(p, 2, -1) >= 0 && p[1].revents == 0)
		if ((p[0].revents & POLLIN) && fs_serve(fs, buf) < 0)
			break;
	free(buf);
	return NULL;
}

struct fusestall *
fusestall_start(const char *dir)
{
	struct fusestall *fs = calloc(1, sizeof(*fs));
	char opts[128];

	if (fs == NULL)
		return NULL;
	fs->fd = fs->wake[0] = fs->wake[1] = -1;
	snprintf(fs->dir, sizeof(fs->dir), "%s", dir);
	if ((fs->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0 ||
	    pipe2(fs->wake, O_CLOEXEC) < 0)
		goto fail;
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,"
	    "group_id=0,allow_other", fs->fd);
	if (mount("fusestall", dir, "fuse.fusestall", MS_NOSUID | MS_NODEV,
	    opts) < 0)
		goto fail;
	if (pthread_create(&fs->thread, NULL, fs_main, fs) != 0) {
		umount2(dir, MNT_DETACH);
		goto fail;
	}
	fs->started = 1;
	return fs;
fail:
	fusestall_stop(fs);
	return NULL;
}

void
fusestall_stall(struct fusestall *fs)
{
	if (fs->started) {
		(void)!write(fs->wake[1], "s", 1);
		pthread_join(fs->thread, NULL);
		fs->started = 0;
	}
}

void
fusestall_slow(struct fusestall *fs, int ms)
{
	atomic_store(&fs->delay_ms, ms);
}

void
fusestall_stop(struct fusestall *fs)
{
	int e = errno;

	if (fs == NULL)
		return;
	fusestall_stall(fs);
	if (fs->fd >= 0) {
		close(fs->fd);	/* aborts the connection */
		umount2(fs->dir, MNT_DETACH);
	}
	if (fs->wake[0] >= 0)
		close(fs->wake[0]);
	if (fs->wake[1] >= 0)
		close(fs->wake[1]);
	free(fs);
	errno = e;
}
