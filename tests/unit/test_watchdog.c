/* test_watchdog.c - the keeper's watchdog backends (src/agent/watchdog.c):
 * the unix:PATH test stand-in, refusals of what is not a watchdog, and
 * none/auto (fence=kill-only). A real /dev/watchdog is never opened here:
 * that would arm the host's timer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/keeper.h"
#include "common/util.h"

struct standin {
	char	dir[64];
	char	path[128];
	int	fd;
};

static void
standin_open(struct standin *s)
{
	struct sockaddr_un sa;
	struct timeval tv = { 1, 0 };

	snprintf(s->dir, sizeof(s->dir), "/tmp/cvirt-twd.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/wd.sock", s->dir);
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	assert_int_equal(util_fmt(sa.sun_path, sizeof(sa.sun_path), "%s",
	    s->path), 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void
standin_expect(struct standin *s, const char *msg)
{
	char buf[64];
	ssize_t n = recv(s->fd, buf, sizeof(buf) - 1, 0);

	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, msg);
}

static void
standin_close(struct standin *s)
{
	close(s->fd);
	assert_int_equal(util_rm_rf(s->dir), 0);
}

/* Guards watchdog.c: wd_open_unix(), wd_pet(), wd_disarm(): the stand-in
 * is petted on open ("pet W" with W in ms), on each wd_pet, and told
 * "disarm" only by wd_disarm; wd_close says nothing (the timer runs on). */
static void
test_unix_standin(void **state)
{
	struct standin s;
	struct wd w;
	char spec[160], err[256];
	char buf[16];

	standin_open(&s);
	snprintf(spec, sizeof(spec), "unix:%s", s.path);
	assert_int_equal(wd_open(&w, spec, 1000, err, sizeof(err)), 0);
	assert_int_equal(w.kind, WD_UNIX);
	assert_string_equal(wd_fence(&w), "watchdog");
	standin_expect(&s, "pet 1000\n");
	assert_int_equal(wd_pet(&w), 0);
	standin_expect(&s, "pet 1000\n");
	wd_disarm(&w);
	standin_expect(&s, "disarm\n");

	assert_int_equal(wd_open(&w, spec, 2000, err, sizeof(err)), 0);
	standin_expect(&s, "pet 2000\n");
	wd_close(&w);
	assert_true(recv(s.fd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
	standin_close(&s);
}

/* Guards watchdog.c: wd_open(): a stand-in that is not there, a regular
 * file, a character device that is no watchdog (/dev/null), a bad spec
 * and a timeout out of range are each refused with one line. */
static void
test_refusals(void **state)
{
	char path[] = "/tmp/cvirt-twdf.XXXXXX", err[256];
	struct wd w;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(wd_open(&w, path, 1000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a character device"));
	assert_null(strchr(err, '\n'));
	unlink(path);
	assert_int_equal(wd_open(&w, "/dev/null", 1000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot set a 1 s timeout"));
	assert_int_equal(wd_open(&w, "unix:/nonexistent/wd.sock", 1000, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "unix:/nonexistent/wd.sock"));
	assert_int_equal(wd_open(&w, "softdog", 1000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "want auto, none"));
	assert_int_equal(wd_open(&w, "none", 999, err, sizeof(err)), -1);
	assert_int_equal(wd_open(&w, "none", 60001, err, sizeof(err)), -1);
}

/* Guards watchdog.c: "none" is fence=kill-only and its pets are no-ops;
 * "auto" without /dev/watchdog is kill-only too (checked only where the
 * device is absent: opening a real one would arm it). */
static void
test_none_and_auto(void **state)
{
	char err[256];
	struct wd w;

	assert_int_equal(wd_open(&w, "none", 1000, err, sizeof(err)), 0);
	assert_int_equal(w.kind, WD_NONE);
	assert_string_equal(wd_fence(&w), "kill-only");
	assert_int_equal(wd_pet(&w), 0);
	wd_close(&w);
	if (access("/dev/watchdog", F_OK) < 0) {
		assert_int_equal(wd_open(&w, "auto", 1000, err, sizeof(err)), 0);
		assert_int_equal(w.kind, WD_NONE);
		assert_string_equal(wd_fence(&w), "kill-only");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unix_standin),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_none_and_auto),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
