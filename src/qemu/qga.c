/* qga.c - QEMU guest agent client: guest-sync-delimited + guest-ping. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <jansson.h>

#include "common/util.h"
#include "qemu/qga.h"

#define QGA_DELIM	((char)0xFF)

struct qga {
	int		fd;
	int64_t		next_id;
	char		buf[QGA_LINE_MAX + 1];
	size_t		len;
};

struct qga *
qga_open(const char *sock_path, char *err, size_t errsz)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct qga *g = NULL;
	int fd = -1;

	if (strlen(sock_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errsz, "guest agent socket path too long");
		goto cleanup;
	}
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errsz, "cannot connect to the guest agent socket: "
		    "%s", strerror(errno));
		goto cleanup;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	g->fd = fd;
	fd = -1;
	/* Ids differ across connections, so a reply left over from an earlier
	 * connection of this process cannot pass for a fresh one. */
	g->next_id = (util_wall_ms() & 0xffffffffffLL) * 1000 + (getpid() % 1000);
cleanup:
	if (fd >= 0)
		close(fd);
	return g;
}

void
qga_close(struct qga *g)
{
	if (g == NULL)
		return;
	close(g->fd);
	free(g);
}

/* Wait for ev on the socket until deadline; 1 ready, 0 timed out, -1 error. */
static int
qga_wait(struct qga *g, short ev, int64_t deadline)
{
	struct pollfd pfd = { .fd = g->fd, .events = ev };
	int64_t left;
	int rc;

	for (;;) {
		if ((left = deadline - util_mono_ms()) < 0)
			left = 0;
		rc = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (rc > 0)
			return 1;
		if (rc == 0 && left <= 60000)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

static int
qga_send(struct qga *g, const char *msg, size_t len, int64_t deadline,
    char *err, size_t errsz)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(g->fd, msg + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, errsz, "guest agent socket: %s",
			    strerror(errno));
			return -1;
		}
		if (qga_wait(g, POLLOUT, deadline) <= 0) {
			snprintf(err, errsz, "timed out");
			return -1;
		}
	}
	return 0;
}

/* Read more bytes into the buffer (waiting until deadline). */
static int
qga_fill(struct qga *g, int64_t deadline, char *err, size_t errsz)
{
	ssize_t n;

	for (;;) {
		n = recv(g->fd, g->buf + g->len, QGA_LINE_MAX - g->len, 0);
		if (n > 0) {
			g->len += (size_t)n;
			return 0;
		}
		if (n == 0) {
			snprintf(err, errsz, "closed");
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			snprintf(err, errsz, "guest agent socket: %s",
			    strerror(errno));
			return -1;
		}
		if (qga_wait(g, POLLIN, deadline) <= 0) {
			snprintf(err, errsz, "timed out");
			return -1;
		}
	}
}

static void
qga_consume(struct qga *g, size_t n)
{
	memmove(g->buf, g->buf + n, g->len - n);
	g->len -= n;
}

/* The next reply line as JSON (new reference); with delim, only a line
 * that follows a 0xFF byte (everything before it is dropped). */
static json_t *
qga_read(struct qga *g, int want_delim, int64_t deadline, char *err,
    size_t errsz)
{
	json_t *msg = NULL;
	int delim = want_delim;
	char *p;

	for (;;) {
		if (delim) {
			if ((p = memchr(g->buf, QGA_DELIM, g->len)) != NULL) {
				qga_consume(g, (size_t)(p - g->buf) + 1);
				delim = 0;
				continue;
			}
			g->len = 0;
		} else if ((p = memchr(g->buf, '\n', g->len)) != NULL) {
			size_t n = (size_t)(p - g->buf);
			json_error_t je;

			msg = json_loadb(g->buf, n, JSON_REJECT_DUPLICATES, &je);
			qga_consume(g, n + 1);
			if (json_is_object(msg))
				return msg;
			json_decref(msg);
			msg = NULL;
			delim = want_delim;	/* noise: not a reply */
			continue;
		} else if (g->len == QGA_LINE_MAX) {
			g->len = 0;	/* an over-long line: drop it */
			delim = want_delim;
		}
		if (qga_fill(g, deadline, err, errsz) < 0)
			return NULL;
	}
}

int
qga_ping(struct qga *g, int timeout_ms, char *err, size_t errsz)
{
	int64_t deadline = util_mono_ms() + (timeout_ms > 0 ? timeout_ms : 1);
	json_int_t id = (json_int_t)g->next_id++;
	json_t *reply = NULL, *ret;
	char msg[160];
	int rc = -1, n, synced = 0;

	n = snprintf(msg, sizeof(msg), "%c{\"execute\": \"guest-sync-delimited\", "
	    "\"arguments\": {\"id\": %lld}}\n", QGA_DELIM, (long long)id);
	if (n < 0 || (size_t)n >= sizeof(msg) ||
	    qga_send(g, msg, (size_t)n, deadline, err, errsz) < 0)
		goto cleanup;
	while (!synced) {
		json_decref(reply);
		if ((reply = qga_read(g, 1, deadline, err, errsz)) == NULL)
			goto cleanup;
		ret = json_object_get(reply, "return");
		synced = json_is_integer(ret) && json_integer_value(ret) == id;
	}
	json_decref(reply);
	reply = NULL;
	n = snprintf(msg, sizeof(msg), "{\"execute\": \"guest-ping\"}\n");
	if (qga_send(g, msg, (size_t)n, deadline, err, errsz) < 0 ||
	    (reply = qga_read(g, 0, deadline, err, errsz)) == NULL)
		goto cleanup;
	if (json_object_get(reply, "error")) {
		const char *desc = json_string_value(json_object_get(
		    json_object_get(reply, "error"), "desc"));

		snprintf(err, errsz, "guest-ping failed: %.120s",
		    desc ? desc : "error without a description");
		goto cleanup;
	}
	if (!json_is_object(json_object_get(reply, "return"))) {
		snprintf(err, errsz, "guest-ping: malformed reply");
		goto cleanup;
	}
	rc = 0;
cleanup:
	json_decref(reply);
	return rc;
}
