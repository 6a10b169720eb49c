/* test_util.c - unit tests for src/common/util.c (names, numbers, UUIDs,
 * files) and src/common/proc.c (running helper programs). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <jansson.h>

#include "common/proc.h"
#include "common/util.h"
#include "sigenv.h"

static void
test_name_valid(void **state)
{
	static const char *good[] = { "a", "vm1", "Web-01", "db_2.prod", "a..b",
	    "0", "x-", NULL };
	static const char *bad[] = { "", ".", "..", "a/b", "/a", "-a", "_a",
	    ".hidden", "a b", "a,b", "a:b", "a\nb", "caf\xc3\xa9", NULL };
	char name[80];
	int i;

	for (i = 0; good[i]; i++) {
		if (!util_name_valid(good[i]))
			fail_msg("rejected \"%s\"", good[i]);
	}
	for (i = 0; bad[i]; i++) {
		if (util_name_valid(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(util_name_valid(NULL), 0);
	/* UTIL_NAME_MAX (63) characters is the longest name. */
	memset(name, 'a', sizeof(name));
	name[UTIL_NAME_MAX] = '\0';
	assert_int_equal(util_name_valid(name), 1);
	name[UTIL_NAME_MAX] = 'a';
	name[UTIL_NAME_MAX + 1] = '\0';
	assert_int_equal(util_name_valid(name), 0);
}

static void
test_parse_u64_ok(void **state)
{
	uint64_t v = 0;

	assert_int_equal(util_parse_u64("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(util_parse_u64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(util_parse_u64("007", 0, 100, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(util_parse_u64("18446744073709551615", 0, UINT64_MAX,
	    &v), 0);
	assert_true(v == UINT64_MAX);
	/* Both ends of the range are inclusive. */
	assert_int_equal(util_parse_u64("5", 5, 9, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(util_parse_u64("9", 5, 9, &v), 0);
	assert_int_equal(v, 9);
}

static void
test_parse_u64_bad(void **state)
{
	static const char *inval[] = { "", "-1", "+1", " 1", "1 ", "12abc",
	    "0x10", "1.5", "abc", "1e3", NULL };
	static const struct {
		const char	*s;
		uint64_t	 min, max;
	} range[] = {
		{ "18446744073709551616", 0, UINT64_MAX },
		{ "99999999999999999999999", 0, UINT64_MAX },
		{ "4", 5, 9 },
		{ "10", 5, 9 },
		{ "0", 1, 1 },
	};
	uint64_t v;
	size_t i;

	for (i = 0; inval[i]; i++) {
		v = 12345;
		errno = 0;
		if (util_parse_u64(inval[i], 0, UINT64_MAX, &v) != -1 ||
		    errno != EINVAL || v != 12345)
			fail_msg("\"%s\" not rejected with EINVAL", inval[i]);
	}
	for (i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		v = 12345;
		errno = 0;
		if (util_parse_u64(range[i].s, range[i].min, range[i].max, &v) !=
		    -1 || errno != ERANGE || v != 12345)
			fail_msg("\"%s\" not rejected with ERANGE", range[i].s);
	}
	errno = 0;
	assert_int_equal(util_parse_u64(NULL, 0, 1, &v), -1);
	assert_int_equal(errno, EINVAL);
}

static void
test_uuid(void **state)
{
	char ids[64][UTIL_UUID_LEN + 1];
	int i, j;

	for (i = 0; i < 64; i++) {
		assert_int_equal(util_uuid_gen(ids[i]), 0);
		assert_int_equal(strlen(ids[i]), UTIL_UUID_LEN);
		if (!util_uuid_valid(ids[i]))
			fail_msg("generated invalid uuid %s", ids[i]);
		/* Random (version 4), RFC 4122 variant. */
		assert_int_equal(ids[i][14], '4');
		assert_non_null(strchr("89ab", ids[i][19]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
	}
}

static void
test_uuid_valid(void **state)
{
	static const char *bad[] = { "",
	    "6F1C2A9E-3B4D-4E5F-8A7B-0C1D2E3F4A5B",	/* upper case */
	    "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5",	/* 35 chars */
	    "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5b0",	/* 37 chars */
	    "6f1c2a9e3b4d-4e5f-8a7b-0c1d2e3f4a5b-",	/* dash moved */
	    "6f1c2a9g-3b4d-4e5f-8a7b-0c1d2e3f4a5b",	/* not hex */
	    "6f1c2a9e-3b4d-4e5f-8a7b 0c1d2e3f4a5b",
	    NULL };
	int i;

	assert_int_equal(util_uuid_valid("6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5b"),
	    1);
	assert_int_equal(util_uuid_valid(NULL), 0);
	for (i = 0; bad[i]; i++) {
		if (util_uuid_valid(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void
test_fmt(void **state)
{
	char buf[6];

	assert_int_equal(util_fmt(buf, sizeof(buf), "%s", "12345"), 0);
	assert_string_equal(buf, "12345");
	errno = 0;
	assert_int_equal(util_fmt(buf, sizeof(buf), "%s", "123456"), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

/* Number of entries in dir other than . and .. */
static int
t_count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
test_files(void **state)
{
	char dir[] = "/tmp/cvirt-util-XXXXXX", path[128], bad[160];
	static const char bin[] = "a\0b\nc";
	struct stat st;
	size_t len = 99;
	char *s;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.json", dir);
	assert_int_equal(util_write_file_atomic(path, "{\"x\": 1}\n", 9, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	s = util_read_file(path, 1024, &len);
	assert_non_null(s);
	assert_int_equal(len, 9);
	assert_string_equal(s, "{\"x\": 1}\n");
	free(s);
	/* Overwrite is a replacement, leaving no temporary file behind. */
	assert_int_equal(util_write_file_atomic(path, bin, sizeof(bin) - 1,
	    0600), 0);
	s = util_read_file(path, 1024, &len);
	assert_non_null(s);
	assert_int_equal(len, sizeof(bin) - 1);
	assert_memory_equal(s, bin, sizeof(bin) - 1);
	assert_int_equal(s[len], '\0');
	free(s);
	assert_int_equal(t_count_entries(dir), 1);
	/* max is inclusive; one byte more is EFBIG. */
	s = util_read_file(path, sizeof(bin) - 1, NULL);
	assert_non_null(s);
	free(s);
	errno = 0;
	assert_null(util_read_file(path, sizeof(bin) - 2, NULL));
	assert_int_equal(errno, EFBIG);
	assert_int_equal(util_write_file_atomic(path, "", 0, 0600), 0);
	s = util_read_file(path, 0, &len);
	assert_non_null(s);
	assert_int_equal(len, 0);
	assert_string_equal(s, "");
	free(s);
	snprintf(bad, sizeof(bad), "%s/missing/f", dir);
	errno = 0;
	assert_int_equal(util_write_file_atomic(bad, "x", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_null(util_read_file(bad, 10, NULL));
	assert_int_equal(errno, ENOENT);
	assert_int_equal(util_rm_rf(dir), 0);
	assert_int_equal(stat(dir, &st), -1);
}

static void
test_read_file_large(void **state)
{
	char dir[] = "/tmp/cvirt-util-XXXXXX", path[128];
	size_t n = 300 * 1000, len = 0, i;
	char *buf, *s;

	/* Bigger than any internal buffer step, to cover growth. */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/big", dir);
	buf = malloc(n);
	assert_non_null(buf);
	for (i = 0; i < n; i++)
		buf[i] = (char)('a' + i % 26);
	assert_int_equal(util_write_file_atomic(path, buf, n, 0644), 0);
	s = util_read_file(path, n, &len);
	assert_non_null(s);
	assert_int_equal(len, n);
	assert_memory_equal(s, buf, n);
	free(s);
	errno = 0;
	assert_null(util_read_file(path, n - 1, NULL));
	assert_int_equal(errno, EFBIG);
	free(buf);
	assert_int_equal(util_rm_rf(dir), 0);
}

/* util_utf8_fix (util.c), which httpd_reply_error (httpd.c) runs on every
 * error message: well-formed UTF-8 stays as it is; every byte of a bad
 * sequence becomes '?', and jansson then takes the result (without it, an
 * error quoting such bytes went out as "null"; found by fuzz_api). */
static void
test_utf8_fix(void **state)
{
	static const struct { const char *in, *out; size_t bad; } c[] = {
		{ "plain ascii", "plain ascii", 0 },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0 },
		{ "bad \x9b\x99 tail", "bad ?? tail", 2 },
		{ "cut \xe2\x82", "cut ??", 2 },		/* truncated */
		{ "over \xc0\xaf", "over ??", 2 },		/* overlong '/' */
		{ "over \xe0\x80\xaf", "over ???", 3 },
		{ "sur \xed\xa0\x80", "sur ???", 3 },	/* U+D800 */
		{ "big \xf4\x90\x80\x80", "big ????", 4 },	/* > U+10FFFF */
		{ "\xff\xfe", "??", 2 },
	};
	char buf[64];
	json_t *j;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(buf, sizeof(buf), "%s", c[i].in);
		assert_int_equal(util_utf8_fix(buf), c[i].bad);
		assert_string_equal(buf, c[i].out);
		j = json_pack("{s:s}", "error", buf);
		assert_non_null(j);
		json_decref(j);
	}
}

/* proc_run captures stdout and stderr, returns the exit status, reports a
 * program that cannot run or runs too long, and leaves no child behind. */
static void
test_proc_run(void **state)
{
	char *sh[] = { "sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	char *missing[] = { "cvirt-no-such-program", NULL };
	char *slow[] = { "sleep", "5", NULL };
	char *dash[] = { "/dev/null", NULL };
	char out[256];

	assert_int_equal(proc_run(sh, out, sizeof(out), 10000), 3);
	assert_string_equal(out, "out\nerr\n");
	assert_int_equal(proc_run(missing, out, sizeof(out), 10000), -1);
	assert_string_equal(out,
	    "cannot run cvirt-no-such-program: No such file or directory");
	assert_int_equal(proc_run(dash, out, sizeof(out), 10000), -1);
	assert_string_equal(out, "cannot run /dev/null: Permission denied");
	assert_int_equal(proc_run(slow, out, sizeof(out), 200), -1);
	assert_string_equal(out, "sleep timed out");
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* Helpers start with every signal at its default action and none blocked,
 * whatever our parent left us (dnsmasq outlives the agent). Guards
 * proc_child_signals and proc_run (src/common/proc.c): with posix_spawn,
 * glibc left its internal signals 32 and 33 ignored in every helper, and
 * only four signals were reset. */
static void
test_proc_run_signals(void **state)
{
	char *argv[] = { "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status",
	    NULL };
	struct sigenv save;
	char out[256];
	int rc;

	assert_int_equal(sigenv_hostile(&save), 0);
	rc = proc_run(argv, out, sizeof(out), 10000);
	sigenv_restore(&save);
	assert_int_equal(rc, 0);
	if (strcmp(out, SIGENV_CLEAN_BLK SIGENV_CLEAN_IGN) != 0)
		fail_msg("signals blocked or ignored in a helper:\n%s", out);
}

/* Where the sources are: this file's path as compiled (make runs in the
 * tree's root, so a relative one is relative to where the tests run). */
static void
t_src_dir(char *out, size_t outsz)
{
	const char *me = __FILE__, *tail = "tests/unit/test_util.c";
	size_t n = strlen(me) - strlen(tail);

	assert_true(strlen(me) >= strlen(tail) && strcmp(me + n, tail) == 0);
	assert_int_equal(util_fmt(out, outsz, "%.*ssrc", (int)n, me), 0);
}

/* Offset range [from, to) of function fn's body in buf ("fn(" at the
 * start of a line, up to the next "\n}\n"); from = to = 0 when absent. */
static void
t_body(const char *buf, const char *fn, size_t *from, size_t *to)
{
	char head[64];
	const char *p, *end;

	*from = *to = 0;
	snprintf(head, sizeof(head), "\n%s(", fn);
	if ((p = strstr(buf, head)) == NULL || (end = strstr(p, "\n}\n")) ==
	    NULL)
		return;
	*from = (size_t)(p - buf);
	*to = (size_t)(end - buf);
}

/* Each occurrence of needle in buf outside [from, to) into bad. */
static void
t_only_in(const char *file, const char *buf, const char *needle,
    size_t from, size_t to, char *bad, size_t badsz)
{
	const char *p;
	size_t used;

	for (p = strstr(buf, needle); p != NULL; p = strstr(p + 1, needle)) {
		size_t at = (size_t)(p - buf);
		int line = 1;
		const char *q;

		if (at >= from && at < to)
			continue;
		for (q = buf; q < p; q++)
			line += *q == '\n';
		used = strlen(bad);
		snprintf(bad + used, badsz - used, "  %s:%d: %s\n", file, line,
		    needle);
	}
}

/* Every timed wait and sleep of the daemons runs on CLOCK_MONOTONIC, so a
 * wall clock stepped by an hour makes no thread sleep an hour or wake at
 * once (issue 14): CLOCK_REALTIME appears only in util_wall_ms (wall time
 * for display and records) and log.c (log time stamps); the only
 * pthread_cond_timedwait is util_cond_wait_until's and the only clock
 * attribute util_cond_init_mono's, so every timed wait goes through them.
 * A scan of src/: it fails when a file adds a wait on the wall clock. */
static void
test_no_wall_clock_waits(void **state)
{
	char src[PATH_MAX], path[PATH_MAX], bad[4096] = "";
	struct dirent *de;
	json_t *dirs = json_array(), *sub;
	size_t i, len, n = 0, wf, wt, cf, ct, af, at;
	DIR *d;

	(void)state;
	t_src_dir(src, sizeof(src));
	/* src and each directory in it (one level: the module folders). */
	json_array_append_new(dirs, json_string(""));
	assert_non_null(d = opendir(src));
	while ((de = readdir(d)) != NULL)
		if (de->d_type == DT_DIR && de->d_name[0] != '.')
			json_array_append_new(dirs, json_sprintf("/%s",
			    de->d_name));
	closedir(d);
	json_array_foreach(dirs, i, sub) {
		assert_int_equal(util_fmt(path, sizeof(path), "%s%s", src,
		    json_string_value(sub)), 0);
		assert_non_null(d = opendir(path));
		while ((de = readdir(d)) != NULL) {
			char file[PATH_MAX], *buf;
			size_t l = strlen(de->d_name);

			if (l < 3 || (strcmp(de->d_name + l - 2, ".c") != 0 &&
			    strcmp(de->d_name + l - 2, ".h") != 0))
				continue;
			assert_int_equal(util_fmt(file, sizeof(file), "%s/%s",
			    path, de->d_name), 0);
			assert_non_null(buf = util_read_file(file, 1 << 22,
			    &len));
			n++;
			wf = wt = cf = ct = af = at = 0;
			if (strcmp(file + strlen(src), "/common/log.c") == 0)
				wt = len;	/* time stamps */
			if (strcmp(file + strlen(src), "/common/util.c") == 0) {
				t_body(buf, "util_wall_ms", &wf, &wt);
				t_body(buf, "util_cond_wait_until", &cf, &ct);
				t_body(buf, "util_cond_init_mono", &af, &at);
				assert_true(wt > wf && ct > cf && at > af);
			}
			t_only_in(file, buf, "CLOCK_REALTIME", wf, wt, bad,
			    sizeof(bad));
			t_only_in(file, buf, "pthread_cond_timedwait", cf, ct,
			    bad, sizeof(bad));
			t_only_in(file, buf, "pthread_condattr_setclock", af,
			    at, bad, sizeof(bad));
			free(buf);
		}
		closedir(d);
	}
	json_decref(dirs);
	assert_true(n > 100);	/* the scan saw the tree */
	if (bad[0])
		fail_msg("waits on the wall clock (use util_cond_init_mono and "
		    "util_cond_wait_until, or util_mono_ms):\n%s", bad);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_parse_u64_ok),
		cmocka_unit_test(test_parse_u64_bad),
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_uuid_valid),
		cmocka_unit_test(test_fmt),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_read_file_large),
		cmocka_unit_test(test_utf8_fix),
		cmocka_unit_test(test_proc_run),
		cmocka_unit_test(test_proc_run_signals),
		cmocka_unit_test(test_no_wall_clock_waits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
