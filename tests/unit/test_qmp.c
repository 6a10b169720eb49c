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
#include <sys/socket.h>
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
		T(test_threads),
	};

	/* CVIRT_LOG=debug shows the QMP traffic. */
	log_init("test_qmp", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
