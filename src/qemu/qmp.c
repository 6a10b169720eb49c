/* qmp.c - QMP transport: connect, negotiate, send commands, match replies by id, queue events. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "qemu/qmp.h"

#define QMP_RETRY_MS	10		/* between connect attempts */
#define QMP_BUF_MIN	4096
#define QMP_BUF_KEEP	(64 * 1024)	/* give back larger buffers when idle */
#define QMP_FOREVER	INT64_MAX	/* deadline meaning "no limit" */
#define QMP_BUF_MAX	((size_t)QMP_MSG_MAX + 2)	/* a line and its "\r\n" */

struct qmp_event {
	struct qmp_event	*next;
	json_t			*msg;	/* the whole event object, owned */
};

struct qmp {
	int			 fd;
	/* lock: serialises commands; guards fd I/O, buf, next_id, why. */
	pthread_mutex_t		 lock;
	/* qlock: guards the event queue and the delivering flag only. */
	pthread_mutex_t		 qlock;
	qmp_event_fn		 fn;
	void			*ud;
	char			*buf;
	size_t			 off;	/* unconsumed input is buf[off, len) */
	size_t			 len;
	size_t			 cap;
	size_t			 scan;	/* no '\n' in buf[off, scan) */
	int64_t			 next_id;
	atomic_int		 broken;
	char			 why[256];	/* why the connection broke */
	struct qmp_event	*head, *tail;
	int			 delivering;
};

static void
qmp_errf(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	/* A truncated error line is still useful: ignore truncation. */
	(void)vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* Absolute deadline for a timeout; <= 0 means no limit. */
static int64_t
qmp_deadline(int timeout_ms)
{
	if (timeout_ms <= 0)
		return QMP_FOREVER;
	return util_mono_ms() + timeout_ms;
}

/* Wait for events on fd until deadline (a past deadline polls once).
 * Returns 1 ready, 0 timed out, -1 error. */
static int
qmp_poll(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int rc;

	for (;;) {
		if (deadline == QMP_FOREVER) {
			left = -1;
		} else {
			left = deadline - util_mono_ms();
			if (left < 0)
				left = 0;
			if (left > INT32_MAX)
				left = INT32_MAX;
		}
		rc = poll(&pfd, 1, (int)left);
		if (rc >= 0)
			return rc > 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Mark the connection unusable; the first reason wins. Shutting the socket
 * down makes the fd permanently readable, so a poll loop notices at once. */
static void
qmp_set_broken(struct qmp *q, const char *why)
{
	if (atomic_load(&q->broken))
		return;
	snprintf(q->why, sizeof(q->why), "%s", why);
	atomic_store(&q->broken, 1);
	(void)shutdown(q->fd, SHUT_RDWR);
}

/* Make room for more input: drop consumed bytes, grow up to the limit. */
static int
qmp_buf_room(struct qmp *q)
{
	size_t ncap;
	char *nb;

	if (q->off > 0) {
		memmove(q->buf, q->buf + q->off, q->len - q->off);
		q->len -= q->off;
		q->scan -= q->off;
		q->off = 0;
	}
	if (q->len == 0 && q->cap > QMP_BUF_KEEP) {
		free(q->buf);
		q->buf = NULL;
		q->cap = 0;
	}
	if (q->len < q->cap)
		return 0;
	if (q->cap >= QMP_BUF_MAX)
		return -1;
	ncap = q->cap ? q->cap * 2 : QMP_BUF_MIN;
	if (ncap > QMP_BUF_MAX)
		ncap = QMP_BUF_MAX;
	if ((nb = realloc(q->buf, ncap)) == NULL)
		return -1;
	q->buf = nb;
	q->cap = ncap;
	return 0;
}

/* Read what is available, waiting until deadline for the first byte.
 * Returns 1 when bytes arrived, 0 on timeout, -1 on EOF/error (why set). */
static int
qmp_fill(struct qmp *q, int64_t deadline, char *why, size_t whysz)
{
	ssize_t n;
	int rc;

	if (qmp_buf_room(q) < 0) {
		if (q->cap >= QMP_BUF_MAX)
			qmp_errf(why, whysz, "message from QEMU longer than %d bytes",
			    QMP_MSG_MAX);
		else
			qmp_errf(why, whysz, "out of memory");
		return -1;
	}
	for (;;) {
		n = recv(q->fd, q->buf + q->len, q->cap - q->len, MSG_DONTWAIT);
		if (n > 0) {
			q->len += (size_t)n;
			return 1;
		}
		if (n == 0) {
			qmp_errf(why, whysz, "connection closed by QEMU");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			qmp_errf(why, whysz, "%s", errno == ECONNRESET ?
			    "connection closed by QEMU" : strerror(errno));
			return -1;
		}
		if ((rc = qmp_poll(q->fd, POLLIN, deadline)) <= 0) {
			if (rc < 0)
				qmp_errf(why, whysz, "poll: %s", strerror(errno));
			return rc;
		}
	}
}

/* Parse the next complete line in the buffer into an object.
 * Returns 1 with *msg, 0 when no complete line is buffered, -1 on a line
 * that is not a JSON object (why set). */
static int
qmp_take_line(struct qmp *q, json_t **msg, char *why, size_t whysz)
{
	json_error_t jerr;
	char *start, *nl;
	size_t n;

	for (;;) {
		nl = memchr(q->buf + q->scan, '\n', q->len - q->scan);
		if (nl == NULL) {
			q->scan = q->len;
			return 0;
		}
		start = q->buf + q->off;
		n = (size_t)(nl - start);
		q->off = q->scan = (size_t)(nl - q->buf) + 1;
		while (n > 0 && (start[n - 1] == '\r' || start[n - 1] == ' '))
			n--;
		if (n > 0)
			break;
	}
	log_debug("QMP <<< %.*s", (int)n, start);
	if ((*msg = json_loadb(start, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr)) == NULL) {
		qmp_errf(why, whysz, "malformed reply from QEMU (%s)", jerr.text);
		return -1;
	}
	if (!json_is_object(*msg)) {
		json_decref(*msg);
		*msg = NULL;
		qmp_errf(why, whysz, "malformed reply from QEMU (not an object)");
		return -1;
	}
	return 1;
}

/* Next message (a JSON object) before deadline: 1 got one, 0 timed out or
 * nothing buffered, -1 connection error or malformed input (why set). */
static int
qmp_next(struct qmp *q, int64_t deadline, json_t **msg, char *why,
    size_t whysz)
{
	int rc;

	*msg = NULL;
	for (;;) {
		if (q->buf != NULL &&
		    (rc = qmp_take_line(q, msg, why, whysz)) != 0)
			return rc;
		if ((rc = qmp_fill(q, deadline, why, whysz)) <= 0)
			return rc;
	}
}

enum qmp_kind { QMP_KIND_BAD, QMP_KIND_EVENT, QMP_KIND_BAD_EVENT,
    QMP_KIND_REPLY };

/* Check a message's members and their types before anything uses them. */
static enum qmp_kind
qmp_classify(json_t *msg, char *why, size_t whysz)
{
	json_t *ev, *data, *ret, *er, *desc, *cls;

	if ((ev = json_object_get(msg, "event")) != NULL) {
		data = json_object_get(msg, "data");
		if (!json_is_string(ev) || (data && !json_is_object(data)))
			return QMP_KIND_BAD_EVENT;
		return QMP_KIND_EVENT;
	}
	ret = json_object_get(msg, "return");
	er = json_object_get(msg, "error");
	if (ret == NULL && er == NULL) {
		qmp_errf(why, whysz, "malformed reply from QEMU "
		    "(no \"return\", \"error\" or \"event\")");
		return QMP_KIND_BAD;
	}
	if (ret != NULL && er != NULL) {
		qmp_errf(why, whysz, "malformed reply from QEMU "
		    "(both \"return\" and \"error\")");
		return QMP_KIND_BAD;
	}
	if (er != NULL) {
		desc = json_object_get(er, "desc");
		cls = json_object_get(er, "class");
		if (!json_is_object(er) || !json_is_string(desc) ||
		    (cls && !json_is_string(cls))) {
			qmp_errf(why, whysz, "malformed error reply from QEMU");
			return QMP_KIND_BAD;
		}
	}
	return QMP_KIND_REPLY;
}

/* Append an event to the queue; takes the reference to msg. */
static void
qmp_enqueue(struct qmp *q, json_t *msg)
{
	struct qmp_event *e;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		log_warnx("QMP: out of memory, dropping event");
		json_decref(msg);
		return;
	}
	e->msg = msg;
	pthread_mutex_lock(&q->qlock);
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	pthread_mutex_unlock(&q->qlock);
}

/* Queue a message that is not a reply. Returns 0, or -1 (why set) when it
 * is neither an event nor ignorable. */
static int
qmp_handle_unsolicited(struct qmp *q, json_t *msg, enum qmp_kind kind,
    char *why, size_t whysz)
{
	switch (kind) {
	case QMP_KIND_EVENT:
		qmp_enqueue(q, msg);
		return 0;
	case QMP_KIND_BAD_EVENT:
		log_warnx("QMP: dropping event with malformed members");
		json_decref(msg);
		return 0;
	case QMP_KIND_REPLY:
		qmp_errf(why, whysz, "unexpected reply from QEMU");
		break;
	case QMP_KIND_BAD:
		break;
	}
	json_decref(msg);
	return -1;
}

/* Deliver queued events in order, without any lock held during the
 * callback. Only one thread delivers at a time; a callback that runs a
 * command finds delivering set and leaves the queue to the outer loop. */
static void
qmp_deliver(struct qmp *q)
{
	struct qmp_event *e;
	json_t *data;

	pthread_mutex_lock(&q->qlock);
	if (q->delivering) {
		pthread_mutex_unlock(&q->qlock);
		return;
	}
	q->delivering = 1;
	while ((e = q->head) != NULL) {
		q->head = e->next;
		if (q->head == NULL)
			q->tail = NULL;
		pthread_mutex_unlock(&q->qlock);
		data = json_object_get(e->msg, "data");
		if (q->fn)
			q->fn(q->ud, json_string_value(json_object_get(e->msg,
			    "event")), data);
		json_decref(e->msg);
		free(e);
		pthread_mutex_lock(&q->qlock);
	}
	q->delivering = 0;
	pthread_mutex_unlock(&q->qlock);
}

/* One send of s, with fd (>= 0) as SCM_RIGHTS: QEMU's chardev keeps the
 * fds of a read for the command that asks for them (getfd, add-fd). */
static ssize_t
qmp_send_some(int sock, const char *s, size_t n, int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)s, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (fd < 0)
		return send(sock, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	memset(&ctl, 0, sizeof(ctl));
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Write all of s before deadline, fd (>= 0) with its first bytes.
 * Returns 0, or -1 with why. */
static int
qmp_send_all(struct qmp *q, const char *s, size_t n, int fd, int64_t deadline,
    char *why, size_t whysz)
{
	ssize_t w;
	int rc;

	while (n > 0) {
		w = qmp_send_some(q->fd, s, n, fd);
		if (w > 0) {
			s += w;
			n -= (size_t)w;
			fd = -1;	/* sent with the bytes that went */
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			qmp_errf(why, whysz, "connection closed by QEMU");
			return -1;
		}
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			qmp_errf(why, whysz, "send: %s", strerror(errno));
			return -1;
		}
		if ((rc = qmp_poll(q->fd, POLLOUT, deadline)) <= 0) {
			qmp_errf(why, whysz, "%s", rc == 0 ? "timed out sending" :
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Check the reply's id and turn it into a result. Returns 0 with *ret,
 * -1 on a QMP error reply (*fatal 0) or a protocol error (*fatal 1). */
static int
qmp_take_reply(json_t *msg, int64_t id, json_t **ret, int *fatal, char *why,
    size_t whysz)
{
	json_t *jid = json_object_get(msg, "id"), *er;

	if (!json_is_integer(jid) || json_integer_value(jid) != id) {
		*fatal = 1;
		qmp_errf(why, whysz, "reply from QEMU with unexpected id");
		return -1;
	}
	if ((er = json_object_get(msg, "error")) != NULL) {
		*fatal = 0;
		qmp_errf(why, whysz, "%s",
		    json_string_value(json_object_get(er, "desc")));
		return -1;
	}
	if (ret)
		*ret = json_incref(json_object_get(msg, "return"));
	return 0;
}

/* Send a command (with fd as SCM_RIGHTS when >= 0) and wait for its
 * reply, queueing events meanwhile. Called with q->lock held. Marks the
 * connection broken on every failure except a QMP error reply. */
static int
qmp_exec_locked(struct qmp *q, const char *cmd, json_t *args, int fd,
    int64_t deadline, int timeout_ms, json_t **ret, char *why, size_t whysz)
{
	json_t *req = NULL, *msg = NULL;
	char *text = NULL, *line = NULL;
	int64_t id = ++q->next_id;
	int rc = -1, fatal = 1, got = 1;
	size_t n;

	req = json_pack("{s:s, s:I}", "execute", cmd, "id", (json_int_t)id);
	if (req == NULL || (args && json_object_set(req, "arguments", args) < 0) ||
	    (text = json_dumps(req, JSON_COMPACT)) == NULL ||
	    (line = malloc((n = strlen(text)) + 2)) == NULL) {
		qmp_errf(why, whysz, "out of memory");
		fatal = 0;
		goto cleanup;
	}
	log_debug("QMP >>> %s", text);
	memcpy(line, text, n);
	memcpy(line + n, "\n", 2);
	if (qmp_send_all(q, line, n + 1, fd, deadline, why, whysz) < 0)
		goto cleanup;
	for (;;) {
		if ((got = qmp_next(q, deadline, &msg, why, whysz)) <= 0) {
			if (got == 0)
				qmp_errf(why, whysz, "no reply within %d ms",
				    timeout_ms);
			goto cleanup;
		}
		enum qmp_kind kind = qmp_classify(msg, why, whysz);
		if (kind == QMP_KIND_REPLY)
			break;
		if (qmp_handle_unsolicited(q, msg, kind, why, whysz) < 0) {
			msg = NULL;
			goto cleanup;
		}
		msg = NULL;
	}
	rc = qmp_take_reply(msg, id, ret, &fatal, why, whysz);
cleanup:
	/* A late reply would be taken for the next command's: give up on the
	 * connection after a timeout too. */
	if (rc < 0 && fatal)
		qmp_set_broken(q, got == 0 ?
		    "connection unusable after an earlier timeout" : why);
	json_decref(msg);
	json_decref(req);
	free(text);
	free(line);
	return rc;
}

static void qmp_pump_locked(struct qmp *q);

/* What may go to QEMU: an open fd that is not a directory (a directory
 * fd, O_PATH included, would let QEMU openat() beneath it with none of
 * the checks the agent made). 0, or -1 with why. */
static int
qmp_fd_ok(int fd, char *why, size_t whysz)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		qmp_errf(why, whysz, "no open file descriptor to pass");
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		qmp_errf(why, whysz, "refusing to pass a directory to QEMU");
		return -1;
	}
	return 0;
}

int
qmp_command_fd(struct qmp *q, const char *cmd, json_t *args, int fd,
    int timeout_ms, json_t **ret, char *err, size_t errsz)
{
	char why[512];
	int rc = -1;

	if (ret)
		*ret = NULL;
	if (q == NULL || cmd == NULL || (args && !json_is_object(args))) {
		qmp_errf(err, errsz, "QMP command '%s' failed: invalid arguments",
		    cmd ? cmd : "?");
		errno = EINVAL;
		return -1;
	}
	if (fd != -1 && qmp_fd_ok(fd, why, sizeof(why)) < 0) {
		qmp_errf(err, errsz, "QMP command '%s' failed: %s", cmd, why);
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	if (atomic_load(&q->broken))
		snprintf(why, sizeof(why), "%s", q->why);
	else
		rc = qmp_exec_locked(q, cmd, args, fd, qmp_deadline(timeout_ms),
		    timeout_ms, ret, why, sizeof(why));
	/* Events that came in the same read as the reply sit in our buffer
	 * and would wait for the socket's next message: queue them now. */
	if (rc == 0)
		qmp_pump_locked(q);
	pthread_mutex_unlock(&q->lock);
	if (rc < 0)
		qmp_errf(err, errsz, "QMP command '%s' failed: %s", cmd, why);
	qmp_deliver(q);
	return rc;
}

int
qmp_command(struct qmp *q, const char *cmd, json_t *args, int timeout_ms,
    json_t **ret, char *err, size_t errsz)
{
	return qmp_command_fd(q, cmd, args, -1, timeout_ms, ret, err, errsz);
}

/* Read everything available without waiting; queue events. Called with
 * q->lock held. */
static void
qmp_pump_locked(struct qmp *q)
{
	char why[256];
	json_t *msg;
	int rc;

	while (!atomic_load(&q->broken)) {
		if ((rc = qmp_next(q, 0, &msg, why, sizeof(why))) == 0)
			return;
		if (rc < 0 || qmp_handle_unsolicited(q, msg,
		    qmp_classify(msg, why, sizeof(why)), why, sizeof(why)) < 0)
			qmp_set_broken(q, why);
	}
}

int
qmp_dispatch_events(struct qmp *q)
{
	if (q == NULL)
		return -1;
	/* If a command is running, its thread reads the socket and queues
	 * events for us; do not wait for it. */
	if (pthread_mutex_trylock(&q->lock) == 0) {
		qmp_pump_locked(q);
		pthread_mutex_unlock(&q->lock);
	}
	qmp_deliver(q);
	return atomic_load(&q->broken) ? -1 : 0;
}

/* Connect, retrying while the socket is missing or not yet listening. */
static int
qmp_connect(const char *path, int64_t deadline, char *err, size_t errsz)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, e;

	if (util_fmt(sa.sun_path, sizeof(sa.sun_path), "%s", path) < 0) {
		qmp_errf(err, errsz, "QMP socket path too long: %s", path);
		return -1;
	}
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			qmp_errf(err, errsz, "socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN &&
		    e != EINTR) || util_mono_ms() >= deadline) {
			qmp_errf(err, errsz, "cannot connect to QMP socket %s: %s",
			    path, strerror(e));
			return -1;
		}
		util_sleep_ms(QMP_RETRY_MS);
	}
}

/* Read the greeting and negotiate capabilities. */
static int
qmp_handshake(struct qmp *q, const char *path, int64_t deadline,
    int timeout_ms, char *err, size_t errsz)
{
	char why[512];
	json_t *msg = NULL;
	int rc = -1, got;

	if ((got = qmp_next(q, deadline, &msg, why, sizeof(why))) <= 0) {
		qmp_errf(err, errsz, "no QMP greeting on %s: %s", path,
		    got == 0 ? "timed out" : why);
		goto cleanup;
	}
	if (!json_is_object(json_object_get(msg, "QMP"))) {
		qmp_errf(err, errsz, "no QMP greeting on %s: unexpected message",
		    path);
		goto cleanup;
	}
	pthread_mutex_lock(&q->lock);
	rc = qmp_exec_locked(q, "qmp_capabilities", NULL, -1, deadline,
	    timeout_ms, NULL, why, sizeof(why));
	pthread_mutex_unlock(&q->lock);
	if (rc < 0)
		qmp_errf(err, errsz, "QMP command 'qmp_capabilities' failed: %s",
		    why);
cleanup:
	json_decref(msg);
	return rc;
}

struct qmp *
qmp_open(const char *sock_path, int timeout_ms, qmp_event_fn fn, void *ud,
    char *err, size_t errsz)
{
	int64_t deadline = qmp_deadline(timeout_ms);
	struct qmp *q = NULL, *ret = NULL;
	int fd;

	if (sock_path == NULL) {
		qmp_errf(err, errsz, "no QMP socket path");
		errno = EINVAL;
		return NULL;
	}
	if ((fd = qmp_connect(sock_path, deadline, err, errsz)) < 0)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		qmp_errf(err, errsz, "out of memory");
		close(fd);
		return NULL;
	}
	q->fd = fd;
	q->fn = fn;
	q->ud = ud;
	atomic_init(&q->broken, 0);
	pthread_mutex_init(&q->lock, NULL);
	pthread_mutex_init(&q->qlock, NULL);
	if (qmp_handshake(q, sock_path, deadline, timeout_ms, err, errsz) < 0)
		goto cleanup;
	/* Events seen so far stay queued: the caller has no handle yet. */
	ret = q;
	q = NULL;
cleanup:
	qmp_close(q);
	return ret;
}

int
qmp_fd(struct qmp *q)
{
	return q ? q->fd : -1;
}

int
qmp_broken(struct qmp *q)
{
	return q == NULL || atomic_load(&q->broken);
}

void
qmp_close(struct qmp *q)
{
	struct qmp_event *e;

	if (q == NULL)
		return;
	while ((e = q->head) != NULL) {
		q->head = e->next;
		json_decref(e->msg);
		free(e);
	}
	if (q->fd >= 0)
		close(q->fd);
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->qlock);
	free(q->buf);
	free(q);
}

int
qmp_parse_line(const char *line, size_t n, json_t **msg, int *event,
    char *why, size_t whysz)
{
	json_error_t jerr;
	enum qmp_kind kind;

	*msg = NULL;
	if ((*msg = json_loadb(line, n, JSON_REJECT_DUPLICATES |
	    JSON_DECODE_ANY, &jerr)) == NULL) {
		qmp_errf(why, whysz, "malformed reply from QEMU (%s)", jerr.text);
		return -1;
	}
	if (!json_is_object(*msg)) {
		qmp_errf(why, whysz, "malformed reply from QEMU (not an object)");
		goto bad;
	}
	if ((kind = qmp_classify(*msg, why, whysz)) == QMP_KIND_BAD)
		goto bad;
	if (kind == QMP_KIND_BAD_EVENT) {
		qmp_errf(why, whysz, "malformed event from QEMU");
		goto bad;
	}
	*event = kind == QMP_KIND_EVENT;
	return 0;
bad:
	json_decref(*msg);
	*msg = NULL;
	return -1;
}
