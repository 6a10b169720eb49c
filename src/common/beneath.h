/* beneath.h - open files named beneath a directory without leaving it
 * (beneath.c): the media areas of storage domains (isos/, kernels/,
 * images/) whose files users name for boot media, kernels and imports. */
#ifndef CVIRT_BENEATH_H
#define CVIRT_BENEATH_H

#include <stddef.h>

/* Media areas: where each kind of user-named host file may come from. */
#define BENEATH_AREA_ISOS	"isos"
#define BENEATH_AREA_KERNELS	"kernels"
#define BENEATH_AREA_IMAGES	"images"

/* Whether rel is a clean relative name: not empty, not absolute, no
 * empty, "." or ".." component, no control character, shorter than
 * 4096 bytes. 1 or 0. */
int	 beneath_name_ok(const char *rel);
/* Whether name is a file name an upload may create in an area: one
 * component of 1-200 letters, digits, '.', '_', '-' or '+', not starting
 * with '.' (temp files of uploads start with '.'). 1 or 0. */
int	 beneath_upload_name_ok(const char *name);
/* The part of path below dir ("DIR/REST" gives "REST", a pointer into
 * path), or NULL when path does not lie strictly below dir. dir may end
 * in '/'. Pure text: nothing is opened. */
const char *beneath_rel(const char *dir, const char *path);
/* Open rel beneath the directory dirfd, never leaving it: no "..", no
 * absolute name, no symlink at any component (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or a walk with
 * O_NOFOLLOW per component where the kernel lacks openat2). flags are
 * open(2)'s (O_CLOEXEC and O_NOFOLLOW are added). With want_reg, the
 * result is a regular file opened read-only: it is found with O_PATH
 * (no device, FIFO or directory is ever opened) and reopened through
 * /proc/self/fd (O_CREAT is then refused). The fd, or -1 with errno
 * (ENOENT, ELOOP, EXDEV, EINVAL, EISDIR, ...). */
int	 beneath_openat(int dirfd, const char *rel, int flags, int want_reg);
/* Tests: nonzero makes beneath_openat take the walk, as on a kernel
 * without openat2. */
extern int beneath_no_openat2;
/* beneath_openat beneath the directory root (trusted: it is opened as
 * named, symlinks and all). */
int	 beneath_open(const char *root, const char *rel, int flags,
	    int want_reg);
/* The one refusal text for a user-named host file, whatever the reason
 * and whether or not the file exists: what ("cdrom", "kernel", ...),
 * the name as given, the area it must be in. */
void	 beneath_refusal(char *buf, size_t bufsz, const char *what,
	    const char *value, const char *area);

#endif
