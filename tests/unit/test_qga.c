/* test_qga.c - unit tests for the guest agent client against a fake qemu-ga. */
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
#include <jansson.h>

#include "common/util.h"
#include "qemu/qga.h"

/* How the fake guest agent behaves. */
enum fake_mode {
	FG_GOOD,	/* answers like qemu-ga */
	FG_STALE,	/* noise and stale sync replies before each real one */
	FG_SILENT,	/* reads, never answers (a frozen agent) */
	FG_PING_ERROR,	/* syncs, then guest-ping gets an error */
	FG_CLOSE,	/* hangs up after reading the first request */
	FG_NODELIM,	/* answers the sync without the 0xFF delimiter */
	FG_LONG,	/* an over-long line after 0xFF, then the real reply */
};

struct fake_ga {
	char		 path[108];
	int		 lfd;
	enum fake_mode	 mode;
	pthread_t	 thr;
	int		 syncs, pings, resets;	/* what it received */
};

static void
fg_write(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void
fg_reply(struct fake_ga *f, int fd, const char *line)
{
	char out[16384];
	json_t *req = json_loads(line, 0, NULL);
	const char *cmd = json_string_value(json_object_get(req, "execute"));
	json_int_t id = json_integer_value(json_object_get(json_object_get(req,
	    "arguments"), "id"));

	if (cmd && strcmp(cmd, "guest-sync-delimited") == 0) {
		f->syncs++;
		if (f->mode == FG_STALE) {
			snprintf(out, sizeof(out), "{\"return\": %lld}\nnoise\n"
			    "\xff{\"return\": %lld}\n\xffnot json\n",
			    (long long)id, (long long)id - 1);
			fg_write(fd, out, strlen(out));
		}
		if (f->mode == FG_LONG) {
			memset(out, 'x', sizeof(out));
			out[0] = (char)0xff;
			fg_write(fd, out, sizeof(out));
			fg_write(fd, "\n", 1);
		}
		snprintf(out, sizeof(out), "%s{\"return\": %lld}\n",
		    f->mode == FG_NODELIM ? "" : "\xff", (long long)id);
		fg_write(fd, out, strlen(out));
	} else if (cmd && strcmp(cmd, "guest-ping") == 0) {
		f->pings++;
		if (f->mode == FG_PING_ERROR)
			snprintf(out, sizeof(out), "{\"error\": {\"class\": "
			    "\"GenericError\", \"desc\": \"agent frozen\"}}\n");
		else
			snprintf(out, sizeof(out), "{\"return\": {}}\n");
		fg_write(fd, out, strlen(out));
	}
	json_decref(req);
}

static void *
fg_run(void *arg)
{
	struct fake_ga *f = arg;
	char buf[4096], line[4096];
	size_t ll = 0;
	ssize_t n, i;
	int fd;

	if ((fd = accept(f->lfd, NULL, NULL)) < 0)
		return NULL;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++) {
			if (buf[i] == (char)0xff) {
				f->resets++;
				ll = 0;
			} else if (buf[i] == '\n') {
				line[ll] = '\0';
				ll = 0;
				/* Read whole, so the client sees an orderly
				 * end (not a reset, nor a refused send). */
				if (f->mode == FG_CLOSE)
					goto done;
				if (f->mode != FG_SILENT)
					fg_reply(f, fd, line);
			} else if (ll < sizeof(line) - 1) {
				line[ll++] = buf[i];
			}
		}
	}
done:
	close(fd);
	return NULL;
}

static struct fake_ga *
fg_start(enum fake_mode mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fake_ga *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->mode = mode;
	snprintf(f->path, sizeof(f->path), "/tmp/cvirt-qga-test.%d.sock",
	    (int)getpid());
	unlink(f->path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 1), 0);
	assert_int_equal(pthread_create(&f->thr, NULL, fg_run, f), 0);
	return f;
}

static void
fg_stop(struct fake_ga *f)
{
	pthread_join(f->thr, NULL);
	close(f->lfd);
	unlink(f->path);
	free(f);
}

/* Open, ping count times with timeout_ms; the last result and error. */
static int
ping(struct fake_ga *f, int count, int timeout_ms, char *err, size_t errsz)
{
	struct qga *g = qga_open(f->path, err, errsz);
	int rc = -1, i;

	assert_non_null(g);
	for (i = 0; i < count; i++)
		rc = qga_ping(g, timeout_ms, err, errsz);
	qga_close(g);
	return rc;
}

static void
test_good_agent_answers_every_round(void **state)
{
	struct fake_ga *f = fg_start(FG_GOOD);
	char err[256] = "";
	int syncs, pings, resets;

	assert_int_equal(ping(f, 3, 2000, err, sizeof(err)), 0);
	pthread_join(f->thr, NULL);
	syncs = f->syncs;
	pings = f->pings;
	resets = f->resets;
	close(f->lfd);
	unlink(f->path);
	free(f);
	assert_int_equal(syncs, 3);
	assert_int_equal(pings, 3);
	assert_int_equal(resets, 3);
}

static void
test_stale_replies_are_skipped(void **state)
{
	struct fake_ga *f = fg_start(FG_STALE);
	char err[256] = "";

	assert_int_equal(ping(f, 2, 2000, err, sizeof(err)), 0);
	fg_stop(f);
}

static void
test_over_long_line_is_dropped(void **state)
{
	struct fake_ga *f = fg_start(FG_LONG);
	char err[256] = "";

	assert_int_equal(ping(f, 1, 2000, err, sizeof(err)), 0);
	fg_stop(f);
}

static void
test_silent_agent_times_out(void **state)
{
	struct fake_ga *f = fg_start(FG_SILENT);
	char err[256] = "";
	int64_t t0 = util_mono_ms(), took;

	assert_int_equal(ping(f, 1, 300, err, sizeof(err)), -1);
	took = util_mono_ms() - t0;
	assert_string_equal(err, "timed out");
	assert_true(took >= 280 && took < 2000);
	fg_stop(f);
}

static void
test_sync_without_delimiter_is_not_taken(void **state)
{
	struct fake_ga *f = fg_start(FG_NODELIM);
	char err[256] = "";

	assert_int_equal(ping(f, 1, 300, err, sizeof(err)), -1);
	assert_string_equal(err, "timed out");
	fg_stop(f);
}

static void
test_ping_error_is_reported(void **state)
{
	struct fake_ga *f = fg_start(FG_PING_ERROR);
	char err[256] = "";

	assert_int_equal(ping(f, 1, 2000, err, sizeof(err)), -1);
	assert_string_equal(err, "guest-ping failed: agent frozen");
	fg_stop(f);
}

static void
test_closed_connection(void **state)
{
	struct fake_ga *f = fg_start(FG_CLOSE);
	char err[256] = "";

	assert_int_equal(ping(f, 1, 2000, err, sizeof(err)), -1);
	assert_string_equal(err, "closed");
	fg_stop(f);
}

static void
test_no_socket(void **state)
{
	char err[256] = "";

	assert_null(qga_open("/nonexistent/cvirt-qga.sock", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot connect to the guest agent socket"));
	assert_null(qga_open("/tmp/a-path-that-is-far-too-long-for-a-unix-"
	    "socket-address-because-it-goes-on-and-on-and-on-and-on-forever.sock",
	    err, sizeof(err)));
	assert_string_equal(err, "guest agent socket path too long");
	qga_close(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_agent_answers_every_round),
		cmocka_unit_test(test_stale_replies_are_skipped),
		cmocka_unit_test(test_over_long_line_is_dropped),
		cmocka_unit_test(test_silent_agent_times_out),
		cmocka_unit_test(test_sync_without_delimiter_is_not_taken),
		cmocka_unit_test(test_ping_error_is_reported),
		cmocka_unit_test(test_closed_connection),
		cmocka_unit_test(test_no_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
