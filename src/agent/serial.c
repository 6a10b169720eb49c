/* serial.c - the serial console: bounded log on storage, live websocket. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <civetweb.h>

#include "agent/agent_int.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/ticket.h"
#include "common/util.h"

/* ---- the log kept on storage ------------------------------------------ */

/* The VM's directory is on shared storage, which other hosts (and whoever
 * can write there) may change under us: every file in it is opened
 * through the directory's descriptor with O_NOFOLLOW, and read only when
 * it is a regular file (O_NONBLOCK: a FIFO planted there does not hang
 * the open). */

/* The VM's directory, or -1 (a symlink at its last component is not it). */
static int
serial_dir_open(const char *dir)
{
	return open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* name in dfd, opened with flags (plus O_NOFOLLOW | O_NONBLOCK), when it is
 * a regular file; -1 otherwise. Its size in *sizep. */
static int
serial_open_at(int dfd, const char *name, int flags, int64_t *sizep)
{
	struct stat st;
	int fd;

	if ((fd = openat(dfd, name, flags | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	*sizep = (int64_t)st.st_size;
	return fd;
}

/* The last (at most) max bytes of fd, a file of size bytes, NUL-terminated,
 * their number in *lenp; NULL when it cannot be read (or out of memory).
 * The caller frees the result. */
static char *
serial_tail_fd(int fd, int64_t size, size_t max, size_t *lenp)
{
	char *buf = NULL;
	size_t want, got = 0;
	ssize_t n;

	want = (uint64_t)size < max ? (size_t)size : max;
	if ((buf = malloc(want + 1)) == NULL)
		return NULL;
	while (got < want) {
		n = pread(fd, buf + got, want - got, size - (off_t)want +
		    (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	/* Shrunk meanwhile (another host rotated it): what there was. */
	buf[got] = '\0';
	*lenp = got;
	return buf;
}

/* serial_tail_fd of the file name in dfd, its size in *sizep. */
static char *
serial_tail(int dfd, const char *name, size_t max, size_t *lenp,
    int64_t *sizep)
{
	char *ret;
	int fd;

	if ((fd = serial_open_at(dfd, name, O_RDONLY, sizep)) < 0)
		return NULL;
	ret = serial_tail_fd(fd, *sizep, max, lenp);
	close(fd);
	return ret;
}

/* Highest offset serial.meta may claim: base + size never overflows. */
#define SERIAL_BASE_MAX	(INT64_MAX / 4)

/* Absolute offset of serial.log's first byte (bytes rotated away so far). */
static int64_t
serial_base(int dfd)
{
	char *s;
	size_t len;
	int64_t size;
	uint64_t v = 0;

	if ((s = serial_tail(dfd, "serial.meta", 64, &len, &size)) == NULL)
		return 0;
	s[strcspn(s, "\n")] = '\0';
	if (util_parse_u64(s, 0, SERIAL_BASE_MAX, &v) < 0)
		v = 0;
	free(s);
	return (int64_t)v;
}

/* Past max bytes, the newest max bytes of serial.log become serial.log.0
 * and serial.log starts over; serial.meta counts every byte let go of
 * serial.log, so offsets stay absolute. The log may be of any size: QEMU
 * goes on writing it while the agent is away. The log is truncated even
 * when serial.log.0 or serial.meta cannot be written (disk full, a
 * directory planted under the name): its size stays bounded. */
void
serial_rotate(const char *dir, size_t max)
{
	char num[32], *buf = NULL;
	struct stat st;
	size_t len;
	int64_t size, base;
	int dfd, fd = -1;

	if ((dfd = serial_dir_open(dir)) < 0)
		return;
	/* Most rounds find it short: a stat, not an open for writing and a
	 * close on shared storage every round. */
	if (fstatat(dfd, "serial.log", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode) || (uint64_t)st.st_size <= max)
		goto cleanup;
	if ((fd = serial_open_at(dfd, "serial.log", O_RDWR, &size)) < 0 ||
	    (uint64_t)size <= max)
		goto cleanup;
	if ((buf = serial_tail_fd(fd, size, max, &len)) == NULL)
		goto cleanup;
	if (util_write_file_atomic_at(dfd, "serial.log.0", buf, len,
	    0644) < 0)
		log_warn("%s/serial.log.0: its older output is lost", dir);
	base = serial_base(dfd) + size;
	snprintf(num, sizeof(num), "%lld\n", (long long)(base >
	    SERIAL_BASE_MAX ? 0 : base));
	if (util_write_file_atomic_at(dfd, "serial.meta", num, strlen(num),
	    0644) < 0)
		log_warn("%s/serial.meta", dir);
	/* QEMU appends (O_APPEND): it goes on at the new end. Bytes written
	 * between the read above and this truncate are the only loss. */
	if (ftruncate(fd, 0) < 0)
		log_warn("truncate %s/serial.log", dir);
cleanup:
	if (fd >= 0)
		close(fd);
	close(dfd);
	free(buf);
}

int
serial_log_open(const char *dir, int flags)
{
	int64_t size;
	int dfd, fd;

	if ((dfd = serial_dir_open(dir)) < 0)
		return -1;
	if ((fd = serial_open_at(dfd, "serial.log", flags, &size)) < 0 &&
	    (flags & O_CREAT)) {
		struct stat st;

		if (fstatat(dfd, "serial.log", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			log_warnx("%s/serial.log is no regular file: replaced",
			    dir);
			(void)unlinkat(dfd, "serial.log", 0);
			fd = serial_open_at(dfd, "serial.log", flags | O_EXCL,
			    &size);
		}
	}
	close(dfd);
	return fd;
}

/* Appends line to serial.log (created when absent), never through a
 * symlink (serial_log_open). */
void
serial_mark(const char *dir, const char *line)
{
	int fd;

	if ((fd = serial_log_open(dir, O_WRONLY | O_APPEND | O_CREAT)) < 0 ||
	    write(fd, line, strlen(line)) < 0)
		log_warn("%s: serial log", dir);
	if (fd >= 0)
		close(fd);
}

/* Replace bytes that are not valid UTF-8 so the text fits in JSON. */
static void
serial_utf8_clean(unsigned char *s, size_t len)
{
	size_t i = 0, n, k;

	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			if (c == 0)
				s[i] = '?';
			i++;
			continue;
		}
		n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
		    (c & 0xf8) == 0xf0 ? 4 : 0;
		for (k = 1; n && k < n; k++)
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				n = 0;
		if (n == 2 && c < 0xc2)
			n = 0;
		if (n == 0) {
			s[i++] = '?';
			continue;
		}
		i += n;
	}
}

/* The most of each file serial_read sends. */
#define SERIAL_READ_MAX	((size_t)64 << 20)

json_t *
serial_read(const char *dir, int64_t offset, char *err, size_t errsz)
{
	char *a = NULL, *b = NULL, *all = NULL;
	const char *pa;
	size_t la = 0, lb = 0;
	int64_t base, start, from, sa, sb = 0;
	json_t *ret = NULL;
	int dfd;

	/* No directory (yet): no output, as with no files (-1 opens none). */
	dfd = serial_dir_open(dir);
	base = serial_base(dfd);
	if ((b = serial_tail(dfd, "serial.log", SERIAL_READ_MAX, &lb,
	    &sb)) == NULL)
		lb = 0, sb = 0;
	/* serial.log.0 ends where serial.log starts: wanted only when all of
	 * serial.log is (a log not rotated yet may be longer than we send). */
	if ((int64_t)lb == sb && (a = serial_tail(dfd, "serial.log.0",
	    SERIAL_READ_MAX, &la, &sa)) == NULL)
		la = 0;
	/* Without serial.meta (lost), the newest bytes of serial.log.0. */
	pa = a;
	if ((int64_t)la > base) {
		pa = a + (la - (size_t)base);
		la = (size_t)base;
	}
	start = base + sb - (int64_t)lb - (int64_t)la;
	from = offset < start ? start : offset;
	if (from > base + sb)
		from = base + sb;
	if ((all = malloc(la + lb + 1)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	if (la)
		memcpy(all, pa, la);
	if (lb)
		memcpy(all + la, b, lb);
	{
		size_t skip = (size_t)(from - start), n = la + lb - skip;
		serial_utf8_clean((unsigned char *)all + skip, n);
		ret = json_pack("{s:s%, s:I, s:I}", "data", all + skip, n,
		    "offset", (json_int_t)(base + sb),
		    "size", (json_int_t)(la + lb));
	}
	if (ret == NULL)
		snprintf(err, errsz, "cannot encode serial output");
cleanup:
	if (dfd >= 0)
		close(dfd);
	free(a);
	free(b);
	free(all);
	return ret;
}

/* ---- one-use tickets for the console websocket ------------------------ */

static struct ticket_store serial_tickets = TICKET_STORE_INIT(30000);

int
serial_ticket_new(const char *uuid, char *out, size_t outsz)
{
	return ticket_issue(&serial_tickets, uuid, out, outsz);
}

/* ---- the websocket bridge to a QEMU unix socket (serial, VNC) --------- */

struct serial_conn {
	struct mg_connection	*c;
	int			 fd;
	pthread_t		 reader;
	int			 reader_started;
};

static void *
serial_reader(void *arg)
{
	struct serial_conn *sc = arg;
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(sc->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (httpd_ws_send(sc->c, buf, (size_t)n) < 0)
			break;
	}
	httpd_ws_close(sc->c);
	return NULL;
}

void *
serial_bridge_open(struct mg_connection *c, const char *path)
{
	struct sockaddr_un sa;
	struct serial_conn *sc = NULL;
	int fd = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_warn("console: connect %s", path);
		goto fail;
	}
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		goto fail;
	sc->c = c;
	sc->fd = fd;
	return sc;
fail:
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *
serial_ws_open(struct mg_connection *c, const char *query, void *ctx)
{
	char ticket[64], uuid[UTIL_UUID_LEN + 1];
	struct avm *vm = NULL;
	void *sc;

	(void)ctx;
	if (query == NULL || mg_get_var(query, strlen(query), "ticket", ticket,
	    sizeof(ticket)) < 0 || ticket_redeem(&serial_tickets, ticket, uuid,
	    sizeof(uuid)) < 0) {
		log_warnx("console: invalid or expired ticket");
		return NULL;
	}
	if ((vm = vmhost_get(uuid)) == NULL)
		return NULL;
	sc = serial_bridge_open(c, vm->serial_path);
	vmhost_put(vm);
	return sc;
}

void
serial_bridge_ready(void *state)
{
	struct serial_conn *sc = state;

	if (pthread_create(&sc->reader, NULL, serial_reader, sc) == 0)
		sc->reader_started = 1;
}

void
serial_bridge_data(void *state, const char *buf, size_t len)
{
	struct serial_conn *sc = state;
	ssize_t n;

	while (len > 0) {
		n = send(sc->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void
serial_bridge_close(void *state)
{
	struct serial_conn *sc = state;

	shutdown(sc->fd, SHUT_RDWR);
	if (sc->reader_started)
		pthread_join(sc->reader, NULL);
	close(sc->fd);
	free(sc);
}

const struct httpd_ws_route serial_ws_route = {
	"/agent/v1/console", serial_ws_open, serial_bridge_ready,
	serial_bridge_data, serial_bridge_close,
};
