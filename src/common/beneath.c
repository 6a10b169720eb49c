/* beneath.c - open files named beneath a directory without leaving it:
 * openat2's RESOLVE_BENEATH with no symlinks, or a component walk with
 * O_NOFOLLOW where the kernel lacks openat2. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/beneath.h"

#define BENEATH_MAX 4096

int beneath_no_openat2;

int
beneath_name_ok(const char *rel)
{
	const char *p, *c;
	size_t len;

	if (rel == NULL || rel[0] == '\0' || rel[0] == '/' ||
	    strlen(rel) >= BENEATH_MAX)
		return 0;
	for (p = rel; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	for (c = rel; ; c = p + 1) {
		p = strchr(c, '/');
		len = p ? (size_t)(p - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (p == NULL)
			return 1;
	}
}

int
beneath_upload_name_ok(const char *name)
{
	size_t i, len = name ? strlen(name) : 0;

	if (len == 0 || len > 200 || name[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') ||
		    strchr("._-+", name[i]) != NULL))
			return 0;
	return 1;
}

const char *
beneath_rel(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 0 || strncmp(dir, path, n) != 0 || path[n] != '/' ||
	    path[n + 1] == '\0')
		return NULL;
	return path + n + 1;
}

/* The walk: every directory component opened O_PATH|O_NOFOLLOW|
 * O_DIRECTORY (a symlink fails with ENOTDIR or ELOOP), the last with
 * O_NOFOLLOW. rel was checked by beneath_name_ok. */
static int
beneath_walk(int dirfd, const char *rel, int flags)
{
	char comp[BENEATH_MAX];
	const char *c, *p;
	int fd = dirfd, next, saved;

	for (c = rel; (p = strchr(c, '/')) != NULL; c = p + 1) {
		if ((size_t)(p - c) >= sizeof(comp)) {
			errno = ENAMETOOLONG;
			goto fail;
		}
		memcpy(comp, c, (size_t)(p - c));
		comp[p - c] = '\0';
		next = openat(fd, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY |
		    O_CLOEXEC);
		if (fd != dirfd)
			close(fd);
		if (next < 0)
			return -1;
		fd = next;
	}
	next = openat(fd, c, flags | O_NOFOLLOW | O_CLOEXEC);
	saved = errno;
	if (fd != dirfd)
		close(fd);
	errno = saved;
	return next;
fail:
	saved = errno;
	if (fd != dirfd)
		close(fd);
	errno = saved;
	return -1;
}

/* A regular file opened O_PATH (nothing of a device's open ran) reopened
 * with flags through /proc/self/fd: the same inode, now readable. */
static int
beneath_reopen(int pfd, int flags)
{
	char proc[64];
	struct stat st;
	int fd;

	if (fstat(pfd, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	if ((fd = open(proc, (flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL)) |
	    O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

int
beneath_openat(int dirfd, const char *rel, int flags, int want_reg)
{
	struct open_how how;
	int fd, rfd, saved;

	if (!beneath_name_ok(rel) || (want_reg && (flags & O_CREAT))) {
		errno = EINVAL;
		return -1;
	}
	/* A regular file is found with O_PATH first: opening a device
	 * (a watchdog, a tape) may act, so only a regular file is opened. */
	if (want_reg)
		flags = (flags & ~O_ACCMODE) | O_RDONLY;
	memset(&how, 0, sizeof(how));
	how.flags = (unsigned long long)((want_reg ? O_PATH : flags) |
	    O_NOFOLLOW | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	    RESOLVE_NO_MAGICLINKS;
	if (beneath_no_openat2) {
		fd = -1;
		errno = ENOSYS;
	} else
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		fd = beneath_walk(dirfd, rel, want_reg ? O_PATH : flags);
	if (fd < 0 || !want_reg)
		return fd;
	rfd = beneath_reopen(fd, flags);
	saved = errno;
	close(fd);
	errno = saved;
	return rfd;
}

int
beneath_open(const char *root, const char *rel, int flags, int want_reg)
{
	int dfd, fd, saved;

	if ((dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	fd = beneath_openat(dfd, rel, flags, want_reg);
	saved = errno;
	close(dfd);
	errno = saved;
	return fd;
}

void
beneath_refusal(char *buf, size_t bufsz, const char *what, const char *value,
    const char *area)
{
	char shown[160];
	size_t i;

	/* The name as given, cut and with control characters shown as '?':
	 * the text is one line whatever the input. */
	snprintf(shown, sizeof(shown), "%s", value ? value : "");
	for (i = 0; shown[i]; i++)
		if ((unsigned char)shown[i] < 0x20 || shown[i] == 0x7f)
			shown[i] = '?';
	snprintf(buf, bufsz, "%s %s: not a file in a media area (%s/ of a "
	    "storage domain)", what, shown, area);
}
