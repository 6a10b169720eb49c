/* fake_qmp.c - scripted fake QMP server on a unix socket, run in a thread, for unit tests. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/util.h"
#include "fake_qmp.h"
#include "qemu/qmp.h"

#define FAKE_IO_MS	5000	/* no step waits longer: a stuck test ends */
#define FAKE_SPLIT_LEN	3
#define FAKE_SPLIT_MS	2
#define FAKE_MAX_FDS	8	/* fds in flight, and fds kept for the test */

struct fake_qmp {
	char			 path[108];
	const struct fake_step	*steps;
	int			 bind_delay_ms;
	pthread_t		 thr;
	int			 lfd, cfd;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 at_sync, released;
	int			 finishing;	/* fake_qmp_finish was called */
	char			 err[256];	/* first mismatch; "" if none */
	json_t			*last_id;	/* id of the last command read */
	int			 events;	/* "seq" of the next FQ_EVENT */
	char			 in[65536];
	size_t			 inlen;
	/* fds received, not yet matched to a line: the offset in `in` of
	 * the first byte that came with each */
	int			 pend[FAKE_MAX_FDS];
	size_t			 pend_at[FAKE_MAX_FDS];
	int			 npend;
	int			 kept[FAKE_MAX_FDS];	/* FQ_EXPECT_FD's, under mu */
	int			 nkept;
};

static void
fake_fail(struct fake_qmp *f, const char *fmt, ...)
{
	va_list ap;

	if (f->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(f->err, sizeof(f->err), fmt, ap);
	va_end(ap);
}

static void
fake_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
fake_listen(struct fake_qmp *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	if ((f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(f->lfd, 4) < 0) {
		close(f->lfd);
		f->lfd = -1;
		return -1;
	}
	return 0;
}

/* Send all of s; errors are ignored when quiet (the client may be gone). */
static int
fake_send(struct fake_qmp *f, const char *s, size_t n, int quiet)
{
	ssize_t w;

	while (n > 0) {
		w = send(f->cfd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!quiet)
				fake_fail(f, "send: %s", strerror(errno));
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
fake_send_json(struct fake_qmp *f, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	int rc;

	json_decref(j);
	if (s == NULL) {
		fake_fail(f, "json_dumps failed");
		return -1;
	}
	rc = fake_send(f, s, strlen(s), 0);
	if (rc == 0)
		rc = fake_send(f, "\r\n", 2, 0);
	free(s);
	return rc;
}

/* recv into `in`, collecting fds passed with the bytes (SCM_RIGHTS). */
static ssize_t
fake_recv(struct fake_qmp *f)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * FAKE_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = f->in + f->inlen,
	    .iov_len = sizeof(f->in) - f->inlen };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	ssize_t n;
	size_t i, nfd;
	int fd;

	n = recvmsg(f->cfd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	if (mh.msg_flags & MSG_CTRUNC)
		fake_fail(f, "more fds in one message than the fake keeps");
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfd; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (f->npend == FAKE_MAX_FDS) {
				fake_fail(f, "too many fds passed");
				close(fd);
				continue;
			}
			f->pend[f->npend] = fd;
			f->pend_at[f->npend++] = f->inlen;
		}
	}
	return n;
}

/* Read one line into a NUL-terminated buffer the caller frees; the fds
 * that came with its bytes go to fds (at most FAKE_MAX_FDS, *nfds).
 * Returns NULL on EOF or timeout; *eof tells which. */
static char *
fake_read_line(struct fake_qmp *f, int *eof, int *fds, int *nfds)
{
	struct pollfd pfd = { .fd = f->cfd, .events = POLLIN };
	char *nl, *line;
	ssize_t n;
	size_t len;
	int i, k;

	*eof = 0;
	*nfds = 0;
	while ((nl = memchr(f->in, '\n', f->inlen)) == NULL) {
		if (f->inlen == sizeof(f->in) || poll(&pfd, 1, FAKE_IO_MS) <= 0)
			return NULL;
		if ((n = fake_recv(f)) <= 0) {
			*eof = 1;
			return NULL;
		}
		f->inlen += (size_t)n;
	}
	len = (size_t)(nl - f->in);
	if ((line = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(line, f->in, len);
	line[len] = '\0';
	f->inlen -= len + 1;
	memmove(f->in, nl + 1, f->inlen);
	for (i = k = 0; i < f->npend; i++) {
		if (f->pend_at[i] <= len) {
			fds[(*nfds)++] = f->pend[i];
		} else {
			f->pend[k] = f->pend[i];
			f->pend_at[k++] = f->pend_at[i] - (len + 1);
		}
	}
	f->npend = k;
	return line;
}

static void
fake_close_fds(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* want is "name" or "name {arguments as JSON}": 1 when cmd matches. */
static int
fake_cmd_matches(json_t *cmd, const char *want)
{
	const char *name = json_string_value(json_object_get(cmd, "execute"));
	const char *sp = strchr(want, ' ');
	size_t n = sp ? (size_t)(sp - want) : strlen(want);
	json_t *args;
	int eq;

	if (strlen(name) != n || strncmp(name, want, n) != 0)
		return 0;
	if (sp == NULL)
		return json_object_get(cmd, "arguments") == NULL;
	if ((args = json_loads(sp + 1, 0, NULL)) == NULL)
		return 0;
	eq = json_equal(args, json_object_get(cmd, "arguments"));
	json_decref(args);
	return eq;
}

/* Read a command; check it (if want is non-NULL) and that it came with
 * want_fds fds (kept for fake_qmp_fd), and remember its id. */
static int
fake_expect(struct fake_qmp *f, const char *want, int want_fds)
{
	json_t *cmd = NULL, *id;
	const char *name;
	char *line;
	int eof, rc = -1, fds[FAKE_MAX_FDS], nfds = 0, i;

	if ((line = fake_read_line(f, &eof, fds, &nfds)) == NULL) {
		fake_fail(f, "expected '%s', got %s", want ? want : "a command",
		    eof ? "EOF" : "nothing");
		return -1;
	}
	cmd = json_loads(line, 0, NULL);
	name = json_string_value(json_object_get(cmd, "execute"));
	id = json_object_get(cmd, "id");
	if (name == NULL || id == NULL) {
		fake_fail(f, "bad command line: %s", line);
		goto cleanup;
	}
	if (want && !fake_cmd_matches(cmd, want)) {
		fake_fail(f, "expected '%s', got '%s'", want, line);
		goto cleanup;
	}
	if (nfds != want_fds) {
		fake_fail(f, "'%s' came with %d fds, not %d", name, nfds,
		    want_fds);
		goto cleanup;
	}
	pthread_mutex_lock(&f->mu);
	for (i = 0; i < nfds && f->nkept < FAKE_MAX_FDS; i++)
		f->kept[f->nkept++] = fds[i];
	pthread_mutex_unlock(&f->mu);
	if (i < nfds)
		fake_fail(f, "too many fds kept");
	fake_close_fds(fds + i, nfds - i);
	nfds = 0;
	json_decref(f->last_id);
	f->last_id = json_incref(id);
	rc = 0;
cleanup:
	fake_close_fds(fds, nfds);
	json_decref(cmd);
	free(line);
	return rc;
}

/* FQ_RAW / FQ_SPLIT text with every "%ID%" replaced by the last id. */
static char *
fake_subst_id(struct fake_qmp *f, const char *raw)
{
	char *id = json_dumps(f->last_id ? f->last_id : json_null(),
	    JSON_ENCODE_ANY);
	size_t cap = strlen(raw) * (id ? strlen(id) + 1 : 1) + 1, o = 0;
	char *out = malloc(cap);
	const char *p;

	if (out == NULL || id == NULL) {
		free(out);
		free(id);
		return NULL;
	}
	for (p = raw; *p; ) {
		if (strncmp(p, "%ID%", 4) == 0) {
			o += (size_t)snprintf(out + o, cap - o, "%s", id);
			p += 4;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	free(id);
	return out;
}

static int
fake_raw(struct fake_qmp *f, const char *raw, int split)
{
	char *s = fake_subst_id(f, raw);
	size_t n, i, k;
	int rc = 0;

	if (s == NULL) {
		fake_fail(f, "out of memory");
		return -1;
	}
	n = strlen(s);
	for (i = 0; i < n && rc == 0; i += k) {
		k = split ? FAKE_SPLIT_LEN : n;
		if (k > n - i)
			k = n - i;
		rc = fake_send(f, s + i, k, 0);
		/* Give the client a chance to see each piece on its own. */
		if (split && i + k < n)
			fake_sleep_ms(FAKE_SPLIT_MS);
	}
	free(s);
	return rc;
}

/* A line longer than the client accepts; the client hangs up midway. */
static int
fake_long(struct fake_qmp *f)
{
	static char chunk[65536];
	size_t sent = 0;

	memset(chunk, 'a', sizeof(chunk));
	if (fake_send(f, "{\"return\": \"", 12, 0) < 0)
		return -1;
	while (sent <= (size_t)QMP_MSG_MAX + sizeof(chunk)) {
		if (fake_send(f, chunk, sizeof(chunk), 1) < 0)
			break;
		sent += sizeof(chunk);
	}
	return 0;
}

/* The longest reply the client must accept: exactly QMP_MSG_MAX bytes
 * before the "\r\n", padded with blanks (cheap to parse, even under
 * valgrind). */
static int
fake_big(struct fake_qmp *f)
{
	char head[64], *line;
	size_t hl;
	int rc;

	snprintf(head, sizeof(head), "{\"return\": {\"big\": true}, "
	    "\"id\": %lld}", (long long)json_integer_value(f->last_id));
	hl = strlen(head);
	if ((line = malloc((size_t)QMP_MSG_MAX + 2)) == NULL) {
		fake_fail(f, "out of memory");
		return -1;
	}
	memcpy(line, head, hl);
	memset(line + hl, ' ', (size_t)QMP_MSG_MAX - hl);
	memcpy(line + QMP_MSG_MAX, "\r\n", 2);
	rc = fake_send(f, line, (size_t)QMP_MSG_MAX + 2, 0);
	free(line);
	return rc;
}

/* Drain until the client hangs up; data is a mismatch unless quiet. */
static int
fake_wait_eof(struct fake_qmp *f, int quiet)
{
	int eof, fds[FAKE_MAX_FDS], nfds;
	char *line;

	for (;;) {
		line = fake_read_line(f, &eof, fds, &nfds);
		fake_close_fds(fds, nfds);
		if (line == NULL) {
			if (!eof)
				fake_fail(f, "client did not hang up");
			return eof ? 0 : -1;
		}
		if (!quiet || nfds > 0)
			fake_fail(f, "unexpected data after script: %s%s", line,
			    nfds > 0 ? " (with fds)" : "");
		free(line);
	}
}

/* FQ_HOLD: the connection stays open, nothing read, until the test calls
 * fake_qmp_finish (no time bound: the test ends it). */
static int
fake_hold(struct fake_qmp *f)
{
	pthread_mutex_lock(&f->mu);
	while (!f->finishing)
		pthread_cond_wait(&f->cv, &f->mu);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static int
fake_sync(struct fake_qmp *f)
{
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += FAKE_IO_MS / 1000;
	pthread_mutex_lock(&f->mu);
	f->at_sync = 1;
	pthread_cond_broadcast(&f->cv);
	while (!f->released && rc == 0)
		rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	f->released = 0;
	pthread_mutex_unlock(&f->mu);
	if (rc != 0)
		fake_fail(f, "test never released FQ_SYNC");
	return rc == 0 ? 0 : -1;
}

static int
fake_serve(struct fake_qmp *f, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (fake_expect(f, NULL, 0) < 0 || fake_send_json(f,
		    json_pack("{s:{}, s:O}", "return", "id", f->last_id)) < 0)
			return -1;
	}
	return 0;
}

static int
fake_step(struct fake_qmp *f, const struct fake_step *s)
{
	json_t *j;

	switch (s->op) {
	case FQ_GREET:
		return fake_send_json(f, json_loads("{\"QMP\": {\"version\": "
		    "{\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
		    "\"package\": \"\"}, \"capabilities\": [\"oob\"]}}", 0, NULL));
	case FQ_EXPECT:
	case FQ_EXPECT_FD:
		return fake_expect(f, s->arg, s->op == FQ_EXPECT_FD);
	case FQ_RETURN:
		if ((j = json_loads(s->arg, JSON_DECODE_ANY, NULL)) == NULL) {
			fake_fail(f, "bad FQ_RETURN JSON: %s", s->arg);
			return -1;
		}
		return fake_send_json(f, json_pack("{s:o, s:O}", "return", j,
		    "id", f->last_id ? f->last_id : json_null()));
	case FQ_ERROR:
		return fake_send_json(f, json_pack("{s:{s:s, s:s}, s:O}", "error",
		    "class", "GenericError", "desc", s->arg, "id",
		    f->last_id ? f->last_id : json_null()));
	case FQ_EVENT:
		return fake_send_json(f, json_pack("{s:s, s:{s:i}, "
		    "s:{s:i, s:i}}", "event", s->arg, "data", "seq", f->events++,
		    "timestamp", "seconds", 1700000000, "microseconds", 0));
	case FQ_RAW:
	case FQ_SPLIT:
		return fake_raw(f, s->arg, s->op == FQ_SPLIT);
	case FQ_BIG:
		return fake_big(f);
	case FQ_LONG:
		return fake_long(f);
	case FQ_HANG:
		return fake_wait_eof(f, 1);
	case FQ_HOLD:
		return fake_hold(f);
	case FQ_SYNC:
		return fake_sync(f);
	case FQ_SERVE:
		return fake_serve(f, s->n);
	case FQ_CLOSE:
	case FQ_END:
		break;
	}
	return 0;
}

static void *
fake_main(void *arg)
{
	struct fake_qmp *f = arg;
	struct pollfd pfd;
	const struct fake_step *s;

	if (f->lfd < 0) {
		fake_sleep_ms(f->bind_delay_ms);
		if (fake_listen(f) < 0) {
			fake_fail(f, "listen %s: %s", f->path, strerror(errno));
			return NULL;
		}
	}
	pfd = (struct pollfd){ .fd = f->lfd, .events = POLLIN };
	if (poll(&pfd, 1, FAKE_IO_MS) <= 0 ||
	    (f->cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		fake_fail(f, "no client connected");
		return NULL;
	}
	for (s = f->steps; ; s++) {
		if (s->op == FQ_CLOSE)
			break;
		if (s->op == FQ_END) {
			fake_wait_eof(f, 0);
			break;
		}
		/* FQ_HANG, FQ_HOLD and FQ_LONG end the script like
		 * FQ_CLOSE. */
		if (fake_step(f, s) < 0 || s->op == FQ_HANG ||
		    s->op == FQ_HOLD || s->op == FQ_LONG)
			break;
	}
	close(f->cfd);
	f->cfd = -1;
	return NULL;
}

struct fake_qmp *
fake_qmp_start(const char *path, const struct fake_step *steps,
    int bind_delay_ms)
{
	struct fake_qmp *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->steps = steps;
	f->bind_delay_ms = bind_delay_ms;
	f->lfd = f->cfd = -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	/* Without a delay, listen before returning so the client never
	 * needs its retry path. */
	if ((bind_delay_ms <= 0 && fake_listen(f) < 0) ||
	    pthread_create(&f->thr, NULL, fake_main, f) != 0) {
		if (f->lfd >= 0)
			close(f->lfd);
		free(f);
		return NULL;
	}
	return f;
}

int
fake_qmp_wait_sync(struct fake_qmp *f)
{
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += FAKE_IO_MS / 1000;
	pthread_mutex_lock(&f->mu);
	while (!f->at_sync && rc == 0)
		rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	f->at_sync = 0;
	pthread_mutex_unlock(&f->mu);
	return rc == 0 ? 0 : -1;
}

void
fake_qmp_release(struct fake_qmp *f)
{
	pthread_mutex_lock(&f->mu);
	f->released = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

int
fake_qmp_fd(struct fake_qmp *f, int i)
{
	int fd = -1;

	pthread_mutex_lock(&f->mu);
	if (i >= 0 && i < f->nkept)
		fd = f->kept[i];
	pthread_mutex_unlock(&f->mu);
	return fd;
}

int
fake_qmp_finish(struct fake_qmp *f, char *err, size_t errsz)
{
	int rc;

	if (f == NULL) {
		snprintf(err, errsz, "no fake server");
		return -1;
	}
	pthread_mutex_lock(&f->mu);
	f->finishing = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thr, NULL);
	if (f->lfd >= 0)
		close(f->lfd);
	unlink(f->path);
	/* fds that came with no complete line: a leak the test should see */
	if (f->npend > 0)
		fake_fail(f, "%d fds passed without a command", f->npend);
	fake_close_fds(f->pend, f->npend);
	fake_close_fds(f->kept, f->nkept);
	rc = f->err[0] ? -1 : 0;
	snprintf(err, errsz, "%s", f->err);
	json_decref(f->last_id);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
	return rc;
}
