/* test_beneath.c - unit tests for src/common/beneath.c: names that stay
 * beneath a media area, and opens that never leave it (openat2 and the
 * O_NOFOLLOW walk alike). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/beneath.h"
#include "common/util.h"

static char root[256];

static void
mk(const char *rel, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_non_null(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
}

static int
setup(void **state)
{
	char p[512], q[512];

	snprintf(root, sizeof(root), "/tmp/cvirt-beneath.XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(p, sizeof(p), "%s/isos", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/isos/sub", root);
	assert_int_equal(mkdir(p, 0755), 0);
	mk("isos/a.iso", "iso");
	mk("isos/sub/b.iso", "sub");
	mk("secret", "secret");
	/* Links inside the area: out of it, to a file in it, to a dir. */
	snprintf(p, sizeof(p), "%s/isos/out.iso", root);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof(p), "%s/isos/up.iso", root);
	assert_int_equal(symlink("../secret", p), 0);
	snprintf(p, sizeof(p), "%s/isos/in.iso", root);
	assert_int_equal(symlink("a.iso", p), 0);
	snprintf(p, sizeof(p), "%s/isos/etc", root);
	assert_int_equal(symlink("/etc", p), 0);
	snprintf(p, sizeof(p), "%s/isos/fifo", root);
	assert_int_equal(mkfifo(p, 0600), 0);
	/* A device (/dev/null's numbers); where mknod is not allowed, a
	 * second FIFO stands in. */
	snprintf(p, sizeof(p), "%s/isos/dev", root);
	if (mknod(p, S_IFCHR | 0600, makedev(1, 3)) < 0)
		assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(q, sizeof(q), "%s/isos/hard.iso", root);
	snprintf(p, sizeof(p), "%s/isos/a.iso", root);
	assert_int_equal(link(p, q), 0);
	(void)state;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	util_rm_rf(root);
	return 0;
}

static void
test_name_ok(void **state)
{
	static const char *good[] = { "a.iso", "sub/b.iso", "a..b", "...",
	    ".hidden", "x/y/z", NULL };
	static const char *bad[] = { "", "/etc/shadow", "..", "../x", "a/../b",
	    "a/..", ".", "./a", "a/./b", "a//b", "a/", "a\nb", "a\x7f", NULL };
	char longname[5000];
	int i;

	(void)state;
	for (i = 0; good[i]; i++)
		if (!beneath_name_ok(good[i]))
			fail_msg("refused \"%s\"", good[i]);
	for (i = 0; bad[i]; i++)
		if (beneath_name_ok(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(beneath_name_ok(longname));
	assert_false(beneath_name_ok(NULL));
}

static void
test_upload_name_ok(void **state)
{
	static const char *good[] = { "debian-12.5.0-amd64-netinst.iso",
	    "vmlinuz", "initrd.img", "a+b_c", NULL };
	static const char *bad[] = { "", ".upload-x", "..", "a/b", "a b",
	    "a\nb", "caf\xc3\xa9", "a:b", "a%00b", NULL };
	int i;

	(void)state;
	for (i = 0; good[i]; i++)
		if (!beneath_upload_name_ok(good[i]))
			fail_msg("refused \"%s\"", good[i]);
	for (i = 0; bad[i]; i++)
		if (beneath_upload_name_ok(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
}

static void
test_rel(void **state)
{
	(void)state;
	assert_string_equal(beneath_rel("/s/isos", "/s/isos/a.iso"), "a.iso");
	assert_string_equal(beneath_rel("/s/isos/", "/s/isos/x/a"), "x/a");
	assert_null(beneath_rel("/s/isos", "/s/isos"));
	assert_null(beneath_rel("/s/isos", "/s/isos/"));
	assert_null(beneath_rel("/s/isos", "/s/isosx/a"));
	assert_null(beneath_rel("/s/isos", "/etc/shadow"));
	assert_null(beneath_rel("", "/etc/shadow"));
}

/* Each case through openat2 and through the walk. */
static void
check_opens(void)
{
	static const char *good[] = { "isos/a.iso", "isos/sub/b.iso",
	    "isos/hard.iso", NULL };
	static const char *bad[] = { "isos/out.iso", "isos/up.iso",
	    "isos/in.iso", "isos/etc/passwd", "isos/fifo", "isos/dev",
	    "isos/sub",
	    "isos/missing.iso", "isos/../secret", "/etc/passwd",
	    "isos/nodir/x", NULL };
	char buf[8];
	int i, fd;

	for (i = 0; good[i]; i++) {
		fd = beneath_open(root, good[i], O_RDONLY, 1);
		if (fd < 0)
			fail_msg("cannot open %s: %s", good[i], strerror(errno));
		/* Read-only, blocking: a plain open of the file. */
		assert_int_equal(fcntl(fd, F_GETFL) & (O_NONBLOCK | O_ACCMODE),
		    O_RDONLY);
		assert_true(read(fd, buf, sizeof(buf)) > 0);
		close(fd);
	}
	for (i = 0; bad[i]; i++) {
		fd = beneath_open(root, bad[i], O_RDONLY, 1);
		if (fd >= 0) {
			close(fd);
			fail_msg("opened %s", bad[i]);
		}
	}
	/* Without want_reg a directory opens, a link still does not. */
	fd = beneath_open(root, "isos/sub", O_RDONLY | O_DIRECTORY, 0);
	assert_true(fd >= 0);
	close(fd);
	assert_true(beneath_open(root, "isos/etc", O_RDONLY | O_DIRECTORY,
	    0) < 0);
	/* A regular file is only ever read-only; creating is refused. */
	fd = beneath_open(root, "isos/a.iso", O_RDWR, 1);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	close(fd);
	assert_true(beneath_open(root, "isos/new.iso", O_RDONLY | O_CREAT,
	    1) < 0);
}

static void
test_open_openat2(void **state)
{
	(void)state;
	beneath_no_openat2 = 0;
	check_opens();
}

static void
test_open_walk(void **state)
{
	(void)state;
	beneath_no_openat2 = 1;
	check_opens();
	beneath_no_openat2 = 0;
}

static void
test_refusal(void **state)
{
	char a[256], b[256];

	(void)state;
	beneath_refusal(a, sizeof(a), "cdrom", "/etc/shadow", "isos");
	assert_string_equal(a, "cdrom /etc/shadow: not a file in a media area "
	    "(isos/ of a storage domain)");
	beneath_refusal(b, sizeof(b), "cdrom", "a\nb", "isos");
	assert_null(strchr(b, '\n'));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_ok),
		cmocka_unit_test(test_upload_name_ok),
		cmocka_unit_test(test_rel),
		cmocka_unit_test(test_open_openat2),
		cmocka_unit_test(test_open_walk),
		cmocka_unit_test(test_refusal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
