/* test_qmp.c - unit tests for the QMP transport against the scripted fake server. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fake_qmp.h"
#include "qemu/qmp.h"

#define T_TIMEOUT	5000	/* generous: only the timeout tests expire */
#define T_MAX_EVENTS	16

struct rec {
	pthread_mutex_t	 mu;
	int		 n;
	char		 names[T_MAX_EVENTS][32];
	int		 seq[T_MAX_EVENTS];	/* data.seq, -1 without data */
	struct qmp	*q;	/* set to run a command from the callback */
	int		 nested_rc;
	int		 depth, max_depth;	/* callbacks must not nest */
};

struct tstate {
	char		 dir[64];
	char		 sock[108];
	struct fake_qmp	*fake;
	struct qmp	*q;
	struct rec	 rec;
	char		 err[512];
};

static void
rec_event(void *ud, const char *event, json_t *data)
{
	struct rec *r = ud;
	json_t *ret = NULL;
	char err[256];

	pthread_mutex_lock(&r->mu);
	if (++r->depth > r->max_depth)
		r->max_depth = r->depth;
	if (r->n < T_MAX_EVENTS) {
		snprintf(r->names[r->n], sizeof(r->names[0]), "%s", event);
		r->seq[r->n] = data ? (int)json_integer_value(
		    json_object_get(data, "seq")) : -1;
		r->n++;
	}
	pthread_mutex_unlock(&r->mu);
	/* Callbacks may run commands: the lock must not be held here. */
	if (r->q && strcmp(event, "RESUME") == 0) {
		r->nested_rc = qmp_command(r->q, "query-status", NULL, T_TIMEOUT,
		    &ret, err, sizeof(err));
		json_decref(ret);
	}
	pthread_mutex_lock(&r->mu);
	r->depth--;
	pthread_mutex_unlock(&r->mu);
}

static int
rec_count(struct rec *r)
{
	int n;

	pthread_mutex_lock(&r->mu);
	n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static int
setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/cvirt-qmp-XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->sock, sizeof(t->sock), "%s/qmp.sock", t->dir);
	pthread_mutex_init(&t->rec.mu, NULL);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tstate *t = *state;
	char err[256];

	/* Close first: the fake server waits for the client to hang up. */
	qmp_close(t->q);
	if (t->fake)
		(void)fake_qmp_finish(t->fake, err, sizeof(err));
	util_rm_rf(t->dir);
	pthread_mutex_destroy(&t->rec.mu);
	free(t);
	return 0;
}

/* Start the fake server with steps and connect to it. */
static struct qmp *
t_open(struct tstate *t, const struct fake_step *steps)
{
	t->fake = fake_qmp_start(t->sock, steps, 0);
	assert_non_null(t->fake);
	t->q = qmp_open(t->sock, T_TIMEOUT, rec_event, &t->rec, t->err,
	    sizeof(t->err));
	if (t->q == NULL)
		fail_msg("qmp_open: %s", t->err);
	return t->q;
}

/* Hang up and check the fake server ran its whole script. */
static void
t_finish(struct tstate *t)
{
	char err[256];
	int rc;

	qmp_close(t->q);
	t->q = NULL;
	rc = fake_qmp_finish(t->fake, err, sizeof(err));
	t->fake = NULL;
	if (rc != 0)
		fail_msg("fake server: %s", err);
}

/* Poll and dispatch until n events were delivered. */
static void
t_wait_events(struct tstate *t, int n)
{
	int64_t end = util_mono_ms() + T_TIMEOUT;
	struct pollfd pfd;

	while (rec_count(&t->rec) < n && util_mono_ms() < end) {
		pfd = (struct pollfd){ .fd = qmp_fd(t->q), .events = POLLIN };
		assert_true(poll(&pfd, 1, 100) >= 0);
		assert_int_equal(qmp_dispatch_events(t->q), 0);
	}
	assert_int_equal(rec_count(&t->rec), n);
}

static int
t_cmd(struct tstate *t, const char *cmd, int timeout_ms)
{
	json_t *ret = NULL;
	int rc;

	rc = qmp_command(t->q, cmd, NULL, timeout_ms, &ret, t->err,
	    sizeof(t->err));
	assert_true(rc == 0 ? ret != NULL : ret == NULL);
	json_decref(ret);
	return rc;
}

/* After a broken connection every call fails at once, with no I/O. */
static void
t_assert_fails_fast(struct tstate *t, const char *expect_err)
{
	int64_t t0 = util_mono_ms();

	assert_int_equal(t_cmd(t, "stop", T_TIMEOUT), -1);
	assert_true(util_mono_ms() - t0 < 1000);
	assert_string_equal(t->err, expect_err);
	assert_int_equal(qmp_broken(t->q), 1);
	assert_int_equal(qmp_dispatch_events(t->q), -1);
}

static void
test_negotiation(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE, FQ(FQ_END, NULL) };

	t_open(t, s);
	assert_true(qmp_fd(t->q) >= 0);
	assert_int_equal(qmp_broken(t->q), 0);
	t_finish(t);
}

static void
test_command_success(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_RETURN, "{\"status\": \"running\", \"running\": true}"),
		FQ(FQ_EXPECT, "set_link {\"name\": \"nic0\", \"up\": false}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };
	json_t *ret = NULL, *args;

	t_open(t, s);
	assert_int_equal(qmp_command(t->q, "query-status", NULL, T_TIMEOUT,
	    &ret, t->err, sizeof(t->err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")),
	    "running");
	json_decref(ret);
	args = json_pack("{s:s, s:b}", "name", "nic0", "up", 0);
	assert_int_equal(qmp_command(t->q, "set_link", args, T_TIMEOUT, NULL,
	    t->err, sizeof(t->err)), 0);
	json_decref(args);
	t_finish(t);
}

static void
test_command_error(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "cont"),
		FQ(FQ_ERROR, "Guest is not running"),
		FQ(FQ_EXPECT, "query-status"), FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };

	t_open(t, s);
	assert_int_equal(t_cmd(t, "cont", T_TIMEOUT), -1);
	assert_string_equal(t->err,
	    "QMP command 'cont' failed: Guest is not running");
	/* A QMP error is an answer, not a broken connection. */
	assert_int_equal(qmp_broken(t->q), 0);
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), 0);
	t_finish(t);
}

static void
test_events_before_reply(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "system_powerdown"),
		FQ(FQ_EVENT, "POWERDOWN"), FQ(FQ_EVENT, "SHUTDOWN"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };

	t_open(t, s);
	assert_int_equal(t_cmd(t, "system_powerdown", T_TIMEOUT), 0);
	/* Queued while waiting, delivered in order when the command returns. */
	assert_int_equal(rec_count(&t->rec), 2);
	assert_string_equal(t->rec.names[0], "POWERDOWN");
	assert_int_equal(t->rec.seq[0], 0);
	assert_string_equal(t->rec.names[1], "SHUTDOWN");
	assert_int_equal(t->rec.seq[1], 1);
	t_finish(t);
}

static void
test_event_during_open(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ(FQ_GREET, NULL),
		FQ(FQ_EXPECT, "qmp_capabilities"),
		FQ(FQ_RAW, "{\"event\": \"STOP\", \"timestamp\": "
		    "{\"seconds\": 1, \"microseconds\": 2}}\n"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };

	t_open(t, s);
	/* qmp_open cannot deliver: the caller has no handle yet. */
	assert_int_equal(rec_count(&t->rec), 0);
	assert_int_equal(qmp_dispatch_events(t->q), 0);
	assert_int_equal(rec_count(&t->rec), 1);
	assert_string_equal(t->rec.names[0], "STOP");
	assert_int_equal(t->rec.seq[0], -1);
	t_finish(t);
}

static void
test_event_dispatch_split(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_RAW, "{\"event\": \"SPL"),
		FQ(FQ_SYNC, NULL),
		FQ(FQ_RAW, "IT\", \"data\": {\"seq\": 7}}\r\n"),
		FQ(FQ_EVENT, "NEXT"),
		FQ(FQ_END, NULL) };

	t_open(t, s);
	/* A unix socket's send() queues at the receiver at once, so after the
	 * sync the half line is readable (or already read by qmp_open). */
	assert_int_equal(fake_qmp_wait_sync(t->fake), 0);
	/* Half a line is buffered, nothing delivered. */
	assert_int_equal(qmp_dispatch_events(t->q), 0);
	assert_int_equal(rec_count(&t->rec), 0);
	fake_qmp_release(t->fake);
	t_wait_events(t, 2);
	assert_string_equal(t->rec.names[0], "SPLIT");
	assert_int_equal(t->rec.seq[0], 7);
	assert_string_equal(t->rec.names[1], "NEXT");
	t_finish(t);
}

static void
test_reply_split(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_SPLIT, "{\"event\": \"RESET\"}\n{\"return\": "
		    "{\"status\": \"paused\"}, \"id\": %ID%}\n"),
		FQ(FQ_END, NULL) };
	json_t *ret = NULL;

	t_open(t, s);
	assert_int_equal(qmp_command(t->q, "query-status", NULL, T_TIMEOUT,
	    &ret, t->err, sizeof(t->err)), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")),
	    "paused");
	json_decref(ret);
	assert_int_equal(rec_count(&t->rec), 1);
	assert_string_equal(t->rec.names[0], "RESET");
	t_finish(t);
}

static void
test_callback_runs_command(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "cont"),
		FQ(FQ_EVENT, "RESUME"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_EVENT, "AFTER"),
		FQ(FQ_RETURN, "{\"status\": \"running\"}"),
		FQ(FQ_END, NULL) };

	t_open(t, s);
	t->rec.q = t->q;
	t->rec.nested_rc = -2;
	assert_int_equal(t_cmd(t, "cont", T_TIMEOUT), 0);
	assert_int_equal(t->rec.nested_rc, 0);
	/* The nested command's event is delivered after the outer one. */
	assert_int_equal(rec_count(&t->rec), 2);
	assert_string_equal(t->rec.names[0], "RESUME");
	assert_string_equal(t->rec.names[1], "AFTER");
	/* AFTER waited for RESUME's callback to return. */
	assert_int_equal(t->rec.max_depth, 1);
	t_finish(t);
}

/* Each entry: a reply line that must break the connection, and the error. */
static const struct {
	const char	*raw;
	const char	*err;
} bad_replies[] = {
	{ "{\"return\": \n", "malformed reply from QEMU (" },
	{ "[1, 2]\n", "malformed reply from QEMU (not an object)" },
	{ "\"running\"\n", "malformed reply from QEMU (not an object)" },
	{ "{\"return\": {}, \"id\": %ID%} junk\n", "malformed reply from QEMU (" },
	{ "{\"return\": {}, \"return\": {}, \"id\": %ID%}\n",
	    "malformed reply from QEMU (" },
	{ "{\"error\": \"boom\", \"id\": %ID%}\n",
	    "malformed error reply from QEMU" },
	{ "{\"error\": {\"class\": \"GenericError\", \"desc\": 5}, \"id\": %ID%}\n",
	    "malformed error reply from QEMU" },
	{ "{\"error\": {\"class\": 1, \"desc\": \"x\"}, \"id\": %ID%}\n",
	    "malformed error reply from QEMU" },
	{ "{\"return\": {}, \"error\": {\"desc\": \"x\"}, \"id\": %ID%}\n",
	    "malformed reply from QEMU (both \"return\" and \"error\")" },
	{ "{\"id\": %ID%}\n",
	    "malformed reply from QEMU (no \"return\", \"error\" or \"event\")" },
	{ "{\"return\": {}}\n", "reply from QEMU with unexpected id" },
	{ "{\"return\": {}, \"id\": \"%ID%\"}\n",
	    "reply from QEMU with unexpected id" },
	{ "{\"return\": {}, \"id\": 99999}\n",
	    "reply from QEMU with unexpected id" },
};

static void
test_malformed_replies(void **state)
{
	struct tstate *t = *state;
	struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_RAW, NULL),
		FQ(FQ_END, NULL) };
	char want[256];
	size_t i;

	for (i = 0; i < sizeof(bad_replies) / sizeof(bad_replies[0]); i++) {
		s[4].arg = bad_replies[i].raw;
		t_open(t, s);
		assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), -1);
		snprintf(want, sizeof(want), "QMP command 'query-status' failed: %s",
		    bad_replies[i].err);
		if (strncmp(t->err, want, strlen(want)) != 0)
			fail_msg("reply %zu: got \"%s\", want \"%s...\"", i, t->err,
			    want);
		assert_int_equal(qmp_broken(t->q), 1);
		/* Later calls repeat the reason without touching the socket. */
		snprintf(want, sizeof(want), "QMP command 'stop' failed: %s",
		    t->err + strlen("QMP command 'query-status' failed: "));
		t_assert_fails_fast(t, want);
		t_finish(t);
	}
}

static void
test_bad_events_dropped(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "cont"),
		FQ(FQ_RAW, "{\"event\": 5}\n"),
		FQ(FQ_RAW, "{\"event\": \"BAD\", \"data\": [1]}\n"),
		FQ(FQ_EVENT, "GOOD"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };

	t_open(t, s);
	assert_int_equal(t_cmd(t, "cont", T_TIMEOUT), 0);
	assert_int_equal(qmp_broken(t->q), 0);
	assert_int_equal(rec_count(&t->rec), 1);
	assert_string_equal(t->rec.names[0], "GOOD");
	t_finish(t);
}

static void
test_qemu_dies_mid_command(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_EVENT, "SHUTDOWN"),
		FQ(FQ_CLOSE, NULL) };

	t_open(t, s);
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), -1);
	assert_string_equal(t->err,
	    "QMP command 'query-status' failed: connection closed by QEMU");
	/* The last words before EOF still reach the callback. */
	assert_int_equal(rec_count(&t->rec), 1);
	assert_string_equal(t->rec.names[0], "SHUTDOWN");
	t_assert_fails_fast(t,
	    "QMP command 'stop' failed: connection closed by QEMU");
	t_finish(t);
}

static void
test_send_after_close_no_sigpipe(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_CLOSE, NULL) };
	char err[256];

	t_open(t, s);
	/* Wait until the server has hung up, so the write hits a dead peer. */
	assert_int_equal(fake_qmp_finish(t->fake, err, sizeof(err)), 0);
	t->fake = NULL;
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), -1);
	assert_string_equal(t->err,
	    "QMP command 'query-status' failed: connection closed by QEMU");
	assert_int_equal(qmp_broken(t->q), 1);
}

static void
test_dispatch_sees_eof(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EVENT, "SHUTDOWN"),
		FQ(FQ_CLOSE, NULL) };
	int64_t end = util_mono_ms() + T_TIMEOUT;
	struct pollfd pfd;
	int rc = 0;

	t_open(t, s);
	while (rc == 0 && util_mono_ms() < end) {
		pfd = (struct pollfd){ .fd = qmp_fd(t->q), .events = POLLIN };
		assert_true(poll(&pfd, 1, 100) >= 0);
		rc = qmp_dispatch_events(t->q);
	}
	assert_int_equal(rc, -1);
	assert_int_equal(qmp_broken(t->q), 1);
	assert_int_equal(rec_count(&t->rec), 1);
	assert_string_equal(t->rec.names[0], "SHUTDOWN");
	t_finish(t);
}

static void
test_dispatch_unexpected_reply(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_RAW, "{\"return\": {}, \"id\": 77}\n"),
		FQ(FQ_SYNC, NULL),
		FQ(FQ_END, NULL) };

	t_open(t, s);
	assert_int_equal(fake_qmp_wait_sync(t->fake), 0);
	assert_int_equal(qmp_dispatch_events(t->q), -1);
	assert_int_equal(qmp_broken(t->q), 1);
	fake_qmp_release(t->fake);
	t_finish(t);
}

static void
test_timeout(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_HANG, NULL) };
	struct pollfd pfd;
	int64_t t0;

	t_open(t, s);
	t0 = util_mono_ms();
	assert_int_equal(t_cmd(t, "query-status", 100), -1);
	assert_true(util_mono_ms() - t0 >= 100);
	assert_true(util_mono_ms() - t0 < T_TIMEOUT);
	assert_string_equal(t->err,
	    "QMP command 'query-status' failed: no reply within 100 ms");
	/* A broken connection's fd polls readable, so event loops notice. */
	pfd = (struct pollfd){ .fd = qmp_fd(t->q), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 1);
	t_assert_fails_fast(t, "QMP command 'stop' failed: "
	    "connection unusable after an earlier timeout");
	t_finish(t);
}

static void
test_overlong_message(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"),
		FQ(FQ_LONG, NULL) };
	char want[128];

	t_open(t, s);
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), -1);
	snprintf(want, sizeof(want), "QMP command 'query-status' failed: "
	    "message from QEMU longer than %d bytes", QMP_MSG_MAX);
	assert_string_equal(t->err, want);
	assert_int_equal(qmp_broken(t->q), 1);
	t_finish(t);
}

static void
test_longest_message(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"), FQ(FQ_BIG, NULL),
		FQ(FQ_EXPECT, "stop"), FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };
	json_t *ret = NULL;

	t_open(t, s);
	assert_int_equal(qmp_command(t->q, "query-status", NULL, T_TIMEOUT,
	    &ret, t->err, sizeof(t->err)), 0);
	assert_true(json_is_true(json_object_get(ret, "big")));
	json_decref(ret);
	/* The big buffer is given back and the connection still works. */
	assert_int_equal(t_cmd(t, "stop", T_TIMEOUT), 0);
	t_finish(t);
}

static void
test_connect_retry(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE, FQ(FQ_END, NULL) };

	/* The socket appears only after qmp_open has started trying. */
	t->fake = fake_qmp_start(t->sock, s, 150);
	assert_non_null(t->fake);
	t->q = qmp_open(t->sock, T_TIMEOUT, rec_event, &t->rec, t->err,
	    sizeof(t->err));
	if (t->q == NULL)
		fail_msg("qmp_open: %s", t->err);
	t_finish(t);
}

static void
test_connect_never(void **state)
{
	struct tstate *t = *state;
	int64_t t0 = util_mono_ms();
	char want[256];

	t->q = qmp_open(t->sock, 200, rec_event, &t->rec, t->err,
	    sizeof(t->err));
	assert_null(t->q);
	assert_true(util_mono_ms() - t0 >= 200);
	snprintf(want, sizeof(want), "cannot connect to QMP socket %s: "
	    "No such file or directory", t->sock);
	assert_string_equal(t->err, want);
}

static void
test_connect_refused(void **state)
{
	struct tstate *t = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	/* Bound but not listening: what a half-started QEMU looks like. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	t->q = qmp_open(t->sock, 100, NULL, NULL, t->err, sizeof(t->err));
	close(fd);
	assert_null(t->q);
	assert_non_null(strstr(t->err, "Connection refused"));
}

static void
test_bad_greeting(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = {
		FQ(FQ_RAW, "{\"QMP\": 1}\n"), FQ(FQ_END, NULL) };
	char err[256];

	t->fake = fake_qmp_start(t->sock, s, 0);
	assert_non_null(t->fake);
	t->q = qmp_open(t->sock, T_TIMEOUT, NULL, NULL, t->err, sizeof(t->err));
	assert_null(t->q);
	assert_non_null(strstr(t->err, "no QMP greeting on"));
	assert_int_equal(fake_qmp_finish(t->fake, err, sizeof(err)), 0);
	t->fake = NULL;
}

static void
test_capabilities_refused(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ(FQ_GREET, NULL),
		FQ(FQ_EXPECT, "qmp_capabilities"), FQ(FQ_ERROR, "nope"),
		FQ(FQ_END, NULL) };
	char err[256];

	t->fake = fake_qmp_start(t->sock, s, 0);
	assert_non_null(t->fake);
	t->q = qmp_open(t->sock, T_TIMEOUT, NULL, NULL, t->err, sizeof(t->err));
	assert_null(t->q);
	assert_string_equal(t->err,
	    "QMP command 'qmp_capabilities' failed: nope");
	assert_int_equal(fake_qmp_finish(t->fake, err, sizeof(err)), 0);
	t->fake = NULL;
}

static void
test_bad_arguments(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE, FQ(FQ_END, NULL) };
	json_t *arr = json_array();

	t_open(t, s);
	assert_int_equal(qmp_command(t->q, "stop", arr, T_TIMEOUT, NULL, t->err,
	    sizeof(t->err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(qmp_broken(t->q), 0);
	json_decref(arr);
	assert_int_equal(qmp_broken(NULL), 1);
	assert_int_equal(qmp_fd(NULL), -1);
	qmp_close(NULL);
	t_finish(t);
}

/* 1 when a and b are the same open file (same inode). */
static int
t_same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* getfd and add-fd carry their fd as SCM_RIGHTS in the very message of
 * the command, and no other command carries one (FQ_EXPECT fails on an
 * fd): what QEMU receives is the caller's open file, not a copy of its
 * path. Guards qmp_send_fd and qmp_add_fd (src/qemu/qmp_fd.c),
 * qmp_command_fd and qmp_send_some (src/qemu/qmp.c). */
static void
test_send_fd(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "query-status"), FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT_FD, "getfd {\"fdname\": \"vnc-0\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT, "closefd {\"fdname\": \"vnc-0\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT_FD, "add-fd {\"opaque\": \"cdrom\"}"),
		FQ(FQ_RETURN, "{\"fdset-id\": 3, \"fd\": 12}"),
		FQ(FQ_EXPECT, "query-status"), FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };
	char path[128], buf[8];
	int p[2], fd, got;
	int64_t set = -1;
	json_t *args;

	t_open(t, s);
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(qmp_send_fd(t->q, "vnc-0", p[0], T_TIMEOUT, t->err,
	    sizeof(t->err)), 0);
	/* The fake holds the read end of our pipe. */
	got = fake_qmp_fd(t->fake, 0);
	assert_true(got >= 0 && got != p[0]);
	assert_true(t_same_file(got, p[0]));
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(read(got, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'x');
	close(p[0]);
	close(p[1]);
	args = json_pack("{s:s}", "fdname", "vnc-0");
	assert_int_equal(qmp_command(t->q, "closefd", args, T_TIMEOUT, NULL,
	    t->err, sizeof(t->err)), 0);
	json_decref(args);
	snprintf(path, sizeof(path), "%s/cd.iso", t->dir);
	assert_int_equal(util_write_file_atomic(path, "iso", 3, 0600), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(qmp_add_fd(t->q, fd, "cdrom", T_TIMEOUT, &set,
	    t->err, sizeof(t->err)), 0);
	assert_int_equal(set, 3);
	got = fake_qmp_fd(t->fake, 1);
	assert_true(t_same_file(got, fd));
	/* The same open file description: read-only stays read-only. */
	assert_int_equal(fcntl(got, F_GETFL) & O_ACCMODE, O_RDONLY);
	close(fd);
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), 0);
	t_finish(t);
}

/* A command longer than the socket's send buffer goes out in several
 * sends; its fd goes with the first only (a second copy would sit in
 * QEMU's chardev for the next command to take). Guards qmp_send_all
 * (src/qemu/qmp.c), which clears fd after the first partial send. */
static void
test_send_fd_partial_writes(void **state)
{
	struct tstate *t = *state;
	struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT_FD, NULL), FQ(FQ_RETURN, "{\"fdset-id\": 0}"),
		FQ(FQ_EXPECT, "query-status"), FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };
	size_t n = 40000;
	char *opaque, *want;
	int sndbuf = 1, p[2];
	int64_t set = -1;

	opaque = malloc(n + 1);
	want = malloc(n + 64);
	assert_non_null(opaque);
	assert_non_null(want);
	memset(opaque, 'o', n);
	opaque[n] = '\0';
	snprintf(want, n + 64, "add-fd {\"opaque\": \"%s\"}", opaque);
	s[3].arg = want;
	t_open(t, s);
	/* The kernel rounds this up to its minimum, a few KiB. */
	assert_int_equal(setsockopt(qmp_fd(t->q), SOL_SOCKET, SO_SNDBUF,
	    &sndbuf, sizeof(sndbuf)), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(qmp_add_fd(t->q, p[0], opaque, T_TIMEOUT, &set,
	    t->err, sizeof(t->err)), 0);
	assert_int_equal(set, 0);
	assert_true(t_same_file(fake_qmp_fd(t->fake, 0), p[0]));
	assert_int_equal(fake_qmp_fd(t->fake, 1), -1);
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), 0);
	close(p[0]);
	close(p[1]);
	t_finish(t);
	free(want);
	free(opaque);
}

/* What never reaches QEMU: a directory (plain or O_PATH: QEMU could
 * openat() beneath it), a closed fd, a name QEMU would refuse or that
 * would need quoting where it is used; nothing is sent (the fake fails on
 * any data) and the connection stays usable. QEMU's own refusal is an
 * answer, not a broken connection; an add-fd reply without an fdset id is
 * an error. Guards qmp_fd_ok (src/qemu/qmp.c), qmp_fdname_valid and
 * qmp_add_fd (src/qemu/qmp_fd.c). */
static void
test_send_fd_refused(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ(FQ_EXPECT_FD, "getfd {\"fdname\": \"a\"}"),
		FQ(FQ_ERROR, "No file descriptor supplied via SCM_RIGHTS"),
		FQ(FQ_EXPECT_FD, "add-fd {}"), FQ(FQ_RETURN, "{\"fd\": 7}"),
		FQ(FQ_EXPECT, "query-status"), FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL) };
	static const char *const bad_names[] = { "", "1abc", "-a", "a,b",
	    "a b", "a\"b", "a/b", "a\nb",
	    "a123456789012345678901234567890123456789012345678901234567890123" };
	char path[128];
	int dfd, pfd, ffd, p[2];
	int64_t set = 5;
	size_t i;

	t_open(t, s);
	dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pfd = open(t->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0 && pfd >= 0);
	assert_int_equal(qmp_send_fd(t->q, "a", dfd, T_TIMEOUT, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "QMP command 'getfd' failed: refusing "
	    "to pass a directory to QEMU");
	assert_int_equal(qmp_send_fd(t->q, "a", pfd, T_TIMEOUT, t->err,
	    sizeof(t->err)), -1);
	assert_int_equal(qmp_add_fd(t->q, pfd, NULL, T_TIMEOUT, &set, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "QMP command 'add-fd' failed: refusing "
	    "to pass a directory to QEMU");
	assert_int_equal(set, -1);
	close(dfd);
	close(pfd);
	snprintf(path, sizeof(path), "%s/f", t->dir);
	assert_int_equal(util_write_file_atomic(path, "f", 1, 0600), 0);
	ffd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(ffd >= 0);
	close(ffd);	/* now a closed number */
	assert_int_equal(qmp_send_fd(t->q, "a", ffd, T_TIMEOUT, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "QMP command 'getfd' failed: no open "
	    "file descriptor to pass");
	assert_int_equal(qmp_command_fd(t->q, "getfd", NULL, -2, T_TIMEOUT,
	    NULL, t->err, sizeof(t->err)), -1);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		if (qmp_send_fd(t->q, bad_names[i], p[0], T_TIMEOUT, t->err,
		    sizeof(t->err)) != -1)
			fail_msg("fd name accepted: \"%s\"", bad_names[i]);
		assert_string_equal(t->err,
		    "QMP command 'getfd' failed: invalid fd name");
	}
	assert_int_equal(qmp_send_fd(t->q, NULL, p[0], T_TIMEOUT, t->err,
	    sizeof(t->err)), -1);
	assert_int_equal(qmp_broken(t->q), 0);
	/* QEMU says no: an answer. */
	assert_int_equal(qmp_send_fd(t->q, "a", p[0], T_TIMEOUT, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "QMP command 'getfd' failed: No file "
	    "descriptor supplied via SCM_RIGHTS");
	assert_int_equal(qmp_broken(t->q), 0);
	assert_int_equal(qmp_add_fd(t->q, p[0], NULL, T_TIMEOUT, &set, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "QMP command 'add-fd' failed: malformed "
	    "reply from QEMU (no fdset-id)");
	assert_int_equal(set, -1);
	assert_int_equal(t_cmd(t, "query-status", T_TIMEOUT), 0);
	close(p[0]);
	close(p[1]);
	t_finish(t);
}

#define T_THREADS	4
#define T_PER_THREAD	50

static void *
t_worker(void *arg)
{
	struct qmp *q = arg;
	char err[256];
	json_t *ret;
	intptr_t fails = 0;
	int i;

	for (i = 0; i < T_PER_THREAD; i++) {
		ret = NULL;
		if (qmp_command(q, "query-status", NULL, T_TIMEOUT, &ret, err,
		    sizeof(err)) < 0 || !json_is_object(ret))
			fails++;
		json_decref(ret);
	}
	return (void *)fails;
}

static void
test_threads(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step s[] = { FQ_HANDSHAKE,
		FQ_N(FQ_SERVE, T_THREADS * T_PER_THREAD),
		FQ(FQ_END, NULL) };
	pthread_t th[T_THREADS];
	void *fails;
	int i, total = 0;

	t_open(t, s);
	for (i = 0; i < T_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, t_worker, t->q), 0);
	for (i = 0; i < T_THREADS; i++) {
		/* Meanwhile the event path competes for the socket. */
		assert_int_equal(qmp_dispatch_events(t->q), 0);
		pthread_join(th[i], &fails);
		total += (int)(intptr_t)fails;
	}
	assert_int_equal(total, 0);
	assert_int_equal(qmp_broken(t->q), 0);
	t_finish(t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_negotiation),
		T(test_command_success),
		T(test_command_error),
		T(test_events_before_reply),
		T(test_event_during_open),
		T(test_event_dispatch_split),
		T(test_reply_split),
		T(test_callback_runs_command),
		T(test_malformed_replies),
		T(test_bad_events_dropped),
		T(test_qemu_dies_mid_command),
		T(test_send_after_close_no_sigpipe),
		T(test_dispatch_sees_eof),
		T(test_dispatch_unexpected_reply),
		T(test_timeout),
		T(test_overlong_message),
		T(test_longest_message),
		T(test_connect_retry),
		T(test_connect_never),
		T(test_connect_refused),
		T(test_bad_greeting),
		T(test_capabilities_refused),
		T(test_bad_arguments),
		T(test_send_fd),
		T(test_send_fd_partial_writes),
		T(test_send_fd_refused),
		T(test_threads),
	};

	/* CVIRT_LOG=debug shows the QMP traffic. */
	log_init("test_qmp", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
