/* util.h - small helpers shared by every role: names, numbers, files, time. */
#ifndef CVIRT_UTIL_H
#define CVIRT_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UTIL_NAME_MAX  63	/* VM, host, storage, network, snapshot names */
#define UTIL_UUID_LEN  36
#define UTIL_TOKEN_LEN 64	/* hex characters of an API token */
#define UTIL_HASH_LEN  64	/* hex characters of a token hash */

/* Names: [A-Za-z0-9][A-Za-z0-9._-]{0,62}; never "." or "..", so a name is
 * always safe as one path component. Returns 1 when valid. */
int	 util_name_valid(const char *s);
/* 1 when s is a canonical lower-case UUID. */
int	 util_uuid_valid(const char *s);
/* Decimal only, whole string, within [min, max]. 0 or -1 (errno EINVAL/ERANGE). */
int	 util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int	 util_uuid_gen(char out[UTIL_UUID_LEN + 1]);
/* Random lower-case hex of nbytes*2 characters into out (size >= 2n+1). */
int	 util_random_hex(char *out, size_t nbytes);
/* Hex BLAKE2b-256 of s into out (UTIL_HASH_LEN + 1 bytes). */
void	 util_hash_hex(const char *s, char out[UTIL_HASH_LEN + 1]);
/* Constant-time string equality. */
int	 util_str_eq_ct(const char *a, const char *b);
/* Makes s valid UTF-8 in place: each byte that does not belong to a well-
 * formed sequence (overlong, surrogate, beyond U+10FFFF, cut short)
 * becomes '?'. Returns how many bytes it replaced. */
size_t	 util_utf8_fix(char *s);

/* snprintf that returns -1 (errno ENAMETOOLONG) on truncation. */
int	 util_fmt(char *buf, size_t size, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
int	 util_mkdir_p(const char *path, mode_t mode);
/* Write via temp file + fsync + rename + fsync(dir); the temp file is
 * never a symlink followed. _at: name (one component) in directory dfd. */
int	 util_write_file_atomic(const char *path, const void *buf, size_t len,
	    mode_t mode);
int	 util_write_file_atomic_at(int dfd, const char *name, const void *buf,
	    size_t len, mode_t mode);
/* Whole file, NUL-terminated, at most max bytes (else NULL, EFBIG).
 * Caller frees. util_read_fd: the rest of fd, which stays open. */
char	*util_read_file(const char *path, size_t max, size_t *len);
char	*util_read_fd(int fd, size_t max, size_t *len);
int	 util_rm_rf(const char *path);
/* 1 while pid runs and is not a zombie: for display and helper daemons
 * only; a QEMU's end is its pidfd (a zombie leader may still have a
 * thread stuck in I/O). */
int	 util_pid_alive(pid_t pid);
/* 1 when pid has been killed but has not exited: its leader is exiting
 * (PF_EXITING, e.g. a zombie whose other threads live on) or a SIGKILL is
 * pending. A local /proc read. */
int	 util_pid_dying(pid_t pid);
/* 1 if /proc/PID/cmdline contains the argument `needle`. */
int	 util_pid_has_arg(pid_t pid, const char *needle);

int64_t	 util_mono_ms(void);
int64_t	 util_wall_ms(void);
/* "2026-11-24T18:00:00.123Z" into out (>= 32 bytes). */
void	 util_time_iso(int64_t wall_ms, char *out, size_t size);
void	 util_sleep_ms(int64_t ms);
/* Sleep until util_mono_ms() >= deadline (absolute CLOCK_MONOTONIC, so a
 * wall clock step changes nothing; signals do not cut it short). */
void	 util_sleep_until_ms(int64_t deadline);
/* A condition variable whose timed waits run on CLOCK_MONOTONIC. */
int	 util_cond_init_mono(pthread_cond_t *c);
/* One wait on c (m held) until the monotonic deadline in ms; c must come
 * from util_cond_init_mono. 0 when woken (maybe spuriously), ETIMEDOUT
 * once the deadline has passed. */
int	 util_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
	    int64_t deadline);

/* Process handles that cannot be fooled by pid reuse or a zombie leader
 * (docs/keeper.md). util_pidfd_open: a close-on-exec pidfd, or -1. */
int	 util_pidfd_open(pid_t pid);
/* 1 once the whole process (every thread) has exited, 0 if it has not
 * within timeout_ms (0: just look, -1: wait for ever), -1 on error. */
int	 util_pidfd_exited(int pidfd, int timeout_ms);
/* pidfd_send_signal: 0 or -1 (ESRCH once it has exited). */
int	 util_pidfd_kill(int pidfd, int sig);
/* Default data dir for `cvirt up` and the client: $HOME/.local/share/cvirt. */
int	 util_default_data_dir(char *out, size_t size);
/* First line of a token file, white space trimmed; -1 if unreadable/empty. */
int	 util_read_token(const char *path, char *out, size_t outsz);
/* Item idx of a comma-separated list ("URL1,URL2"), blanks trimmed, into
 * out; -1 when there is no such item or it does not fit. */
int	 util_list_item(const char *list, size_t idx, char *out, size_t outsz);

#endif
