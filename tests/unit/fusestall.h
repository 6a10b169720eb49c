/* fusestall.h - a FUSE filesystem for unit tests whose daemon can stop
 * answering, as a hung storage domain's does (needs root: mount(2)). */
#ifndef CVIRT_FUSESTALL_H
#define CVIRT_FUSESTALL_H

struct fusestall;

/* Mount at dir (an empty directory) a filesystem with one empty file,
 * "f", and two empty directories, "vms" and "leases" (a storage domain as
 * the agent checks one), served by a thread of this process; creating
 * files fails. NULL on failure (errno). */
struct fusestall	*fusestall_start(const char *dir);
/* From now on no request is answered: a process with dir/f open that is
 * killed hangs in uninterruptible sleep at its exit (the kernel's FLUSH
 * of a closing file is a request that cannot be interrupted), with
 * every thread of it but the stuck one gone. */
void			 fusestall_stall(struct fusestall *fs);
/* From now on every request is answered after ms (0: at once), as a
 * slow but live storage daemon does. Before a stall only. */
void			 fusestall_slow(struct fusestall *fs, int ms);
/* Abort the connection (what the death of a FUSE daemon does: pending
 * requests fail at once), unmount and free. NULL is accepted. */
void			 fusestall_stop(struct fusestall *fs);

#endif
