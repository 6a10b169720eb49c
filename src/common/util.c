/* util.c - names, numbers, random ids, atomic files, time. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"

int
util_name_valid(const char *s)
{
	size_t i, n;

	if (s == NULL || !isalnum((unsigned char)s[0]))
		return 0;
	n = strlen(s);
	if (n > UTIL_NAME_MAX)
		return 0;
	for (i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

int
util_uuid_valid(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != UTIL_UUID_LEN)
		return 0;
	for (i = 0; i < UTIL_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]) ||
		    isupper((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

int
util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)s[0])) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE || *end != '\0') {
		errno = *end ? EINVAL : ERANGE;
		return -1;
	}
	if (v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

int
util_uuid_gen(char out[UTIL_UUID_LEN + 1])
{
	unsigned char b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, UTIL_UUID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
	    b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

int
util_random_hex(char *out, size_t nbytes)
{
	unsigned char b[64];

	if (nbytes > sizeof(b)) {
		errno = EINVAL;
		return -1;
	}
	randombytes_buf(b, nbytes);
	sodium_bin2hex(out, nbytes * 2 + 1, b, nbytes);
	return 0;
}

void
util_hash_hex(const char *s, char out[UTIL_HASH_LEN + 1])
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), (const unsigned char *)s, strlen(s),
	    NULL, 0);
	sodium_bin2hex(out, UTIL_HASH_LEN + 1, h, sizeof(h));
}

/* Length of the well-formed UTF-8 sequence at s, or 0 (RFC 3629). */
static size_t
util_utf8_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* a NUL ends it here too */
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

size_t
util_utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n, bad = 0;

	while (*p) {
		if ((n = util_utf8_len(p)) == 0) {
			*p++ = '?';
			bad++;
		} else {
			p += n;
		}
	}
	return bad;
}

int
util_str_eq_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return 0;
	return sodium_memcmp(a, b, la) == 0;
}

int
util_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
util_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	char *p;

	if (util_fmt(tmp, sizeof(tmp), "%s", path) < 0)
		return -1;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* The temp file is created fresh (O_EXCL | O_NOFOLLOW): a symlink or file
 * planted under its name is removed, never followed (directories on shared
 * storage are not trusted); rename replaces a symlink at name itself. */
int
util_write_file_atomic_at(int dfd, const char *name, const void *buf,
    size_t len, mode_t mode)
{
	char tmp[NAME_MAX + 1];
	const char *p = buf;
	int fd = -1, rc = -1, tries;
	ssize_t n;

	if (util_fmt(tmp, sizeof(tmp), "%s.tmp.%ld", name, (long)getpid()) < 0) {
		tmp[0] = '\0';
		goto cleanup;
	}
	for (tries = 0; fd < 0 && tries < 2; tries++) {
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, mode);
		if (fd < 0 && (errno != EEXIST || unlinkat(dfd, tmp, 0) < 0))
			break;
	}
	if (fd < 0)
		goto cleanup;
	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto cleanup;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto cleanup;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, name) < 0)
		goto cleanup;
	(void)fsync(dfd);	/* fails harmlessly on an O_PATH descriptor */
	rc = 0;
cleanup:
	if (fd >= 0)
		close(fd);
	if (rc < 0 && tmp[0]) {
		int e = errno;
		(void)unlinkat(dfd, tmp, 0);
		errno = e;
	}
	return rc;
}

int
util_write_file_atomic(const char *path, const void *buf, size_t len,
    mode_t mode)
{
	char dir[PATH_MAX];
	const char *base;
	char *slash;
	int dfd, rc, e;

	if (util_fmt(dir, sizeof(dir), "%s", path) < 0)
		return -1;
	if ((slash = strrchr(dir, '/')) == NULL) {
		base = path;
		snprintf(dir, sizeof(dir), ".");
	} else {
		base = path + (slash - dir) + 1;
		*(slash == dir ? slash + 1 : slash) = '\0';
	}
	/* Read access for fsync; a directory we may only search: O_PATH. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 &&
	    (dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = util_write_file_atomic_at(dfd, base, buf, len, mode);
	e = errno;
	close(dfd);
	errno = e;
	return rc;
}

char *
util_read_fd(int fd, size_t max, size_t *lenp)
{
	char *buf = NULL, *ret = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	for (;;) {
		if (len + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nb;
			if (cap > max + 1) {
				errno = EFBIG;
				goto cleanup;
			}
			if ((nb = realloc(buf, ncap)) == NULL)
				goto cleanup;
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto cleanup;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			errno = EFBIG;
			goto cleanup;
		}
	}
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	ret = buf;
	buf = NULL;
cleanup:
	free(buf);
	return ret;
}

char *
util_read_file(const char *path, size_t max, size_t *lenp)
{
	char *ret;
	int fd, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	ret = util_read_fd(fd, max, lenp);
	e = errno;
	close(fd);
	errno = e;
	return ret;
}

static int
util_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

int
util_rm_rf(const char *path)
{
	if (nftw(path, util_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 &&
	    errno != ENOENT)
		return -1;
	return 0;
}

int
util_pid_alive(pid_t pid)
{
	char path[64], buf[512];
	char *p;
	FILE *f;
	int alive = 0;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno != EPERM)
		return 0;
	/* A zombie is not alive: look at the state in /proc/PID/stat. */
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ')
		alive = p[2] != 'Z' && p[2] != 'X';
	fclose(f);
	return alive;
}

/* Bit 9 (SIGKILL) of a hex signal mask line of /proc/PID/status. */
static int
util_sigkill_in(const char *line)
{
	unsigned long long mask = strtoull(line, NULL, 16);

	return (mask >> (SIGKILL - 1)) & 1;
}

int
util_pid_dying(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long flags = 0;
	int dying = 0, i;
	FILE *f;

	if (pid <= 0)
		return 0;
	/* Field 9 of stat: the task's flags (PF_EXITING 0x4), counted after
	 * the ")" that ends the command name. */
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL) {
		for (i = 0; i < 7 && p != NULL; i++)
			p = strchr(p + 1, ' ');
		if (p != NULL)
			flags = strtoul(p + 1, NULL, 10);
	}
	fclose(f);
	if (flags & 0x4)
		return 1;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (!dying && fgets(buf, sizeof(buf), f) != NULL)
		if (strncmp(buf, "SigPnd:", 7) == 0 ||
		    strncmp(buf, "ShdPnd:", 7) == 0)
			dying = util_sigkill_in(buf + 7);
	fclose(f);
	return dying;
}

int
util_pid_has_arg(pid_t pid, const char *needle)
{
	char path[64];
	char *buf, *p;
	size_t len;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((buf = util_read_file(path, 1 << 20, &len)) == NULL)
		return 0;
	for (p = buf; p < buf + len; p += strlen(p) + 1) {
		if (strcmp(p, needle) == 0) {
			found = 1;
			break;
		}
	}
	free(buf);
	return found;
}

int64_t
util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
util_time_iso(int64_t wall_ms, char *out, size_t size)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	char base[24];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03dZ", base, (int)(wall_ms % 1000));
}

void
util_sleep_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void
util_sleep_until_ms(int64_t deadline)
{
	struct timespec ts = { deadline / 1000, (deadline % 1000) * 1000000L };

	if (deadline < 0)
		return;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

int
util_cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int rc;

	if (pthread_condattr_init(&a) != 0)
		return -1;
	rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(c, &a) == 0 ? 0 : -1;
	pthread_condattr_destroy(&a);
	return rc;
}

int
util_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline)
{
	struct timespec ts;

	if (deadline < 0)
		deadline = 0;
	ts.tv_sec = deadline / 1000;
	ts.tv_nsec = (deadline % 1000) * 1000000L;
	return pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT ? ETIMEDOUT : 0;
}

int
util_pidfd_open(pid_t pid)
{
	if (pid <= 0) {
		errno = ESRCH;
		return -1;
	}
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int
util_pidfd_exited(int pidfd, int timeout_ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int n;

	if (pidfd < 0) {
		errno = EBADF;
		return -1;
	}
	while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -1;
	return n > 0 && (p.revents & (POLLIN | POLLHUP)) ? 1 : 0;
}

int
util_pidfd_kill(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int
util_default_data_dir(char *out, size_t size)
{
	const char *home = getenv("HOME");

	if (home == NULL || home[0] != '/')
		home = "/root";
	return util_fmt(out, size, "%s/.local/share/cvirt", home);
}

/* Read a token file: one line, surrounding white space ignored. */
int
util_read_token(const char *path, char *out, size_t outsz)
{
	char *s;
	size_t len;
	int rc = -1;

	if ((s = util_read_file(path, 4096, &len)) == NULL)
		return -1;
	len = strcspn(s, "\n");
	s[len] = '\0';
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ' ||
	    s[len - 1] == '\r' || s[len - 1] == '\t'))
		s[--len] = '\0';
	if (len == 0)
		errno = ENODATA;
	else if (util_fmt(out, outsz, "%s", s) == 0)
		rc = 0;
	free(s);
	return rc;
}

int
util_list_item(const char *list, size_t idx, char *out, size_t outsz)
{
	const char *p = list, *end;
	size_t n;

	for (; idx > 0 && p; idx--)
		if ((p = strchr(p, ',')) != NULL)
			p++;
	if (p == NULL)
		return -1;
	while (*p == ' ')
		p++;
	end = strchr(p, ',');
	n = end ? (size_t)(end - p) : strlen(p);
	while (n > 0 && p[n - 1] == ' ')
		n--;
	if (n == 0 || n >= outsz)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}
