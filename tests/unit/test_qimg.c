/* test_qimg.c - unit tests for src/storage/qimg.c against the real qemu-img:
 * blank disks, overlays, resize, commit, convert, checksums, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "storage/qimg.h"

static char dir[64];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/cvirt-qimg.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	return util_rm_rf(dir);
}

static void
path(char *out, const char *name)
{
	if (util_fmt(out, PATH_MAX, "%s/%s", dir, name) < 0)
		fail_msg("path too long");
}

static json_int_t
vsize(const char *p)
{
	char err[256];
	json_t *info = qimg_info(p, "qcow2", err, sizeof(err));
	json_int_t v;

	if (info == NULL)
		fail_msg("qemu-img info %s: %s", p, err);
	v = json_integer_value(json_object_get(info, "virtual-size"));
	json_decref(info);
	return v;
}

static void
test_create_overlay_resize(void **state)
{
	char base[PATH_MAX], ov[PATH_MAX], err[256];
	json_t *info;

	path(base, "base.qcow2");
	path(ov, "ov.qcow2");
	assert_int_equal(qimg_create(base, 8 << 20, NULL, err, sizeof(err)), 0);
	assert_int_equal(vsize(base), 8 << 20);
	/* An overlay keeps the backing's size unless told otherwise. */
	assert_int_equal(qimg_create(ov, 0, base, err, sizeof(err)), 0);
	assert_int_equal(vsize(ov), 8 << 20);
	info = qimg_info(ov, "qcow2", err, sizeof(err));
	assert_non_null(info);
	assert_string_equal(json_string_value(json_object_get(info,
	    "backing-filename")), base);
	json_decref(info);
	assert_int_equal(qimg_resize(ov, 16, err, sizeof(err)), 0);
	assert_int_equal(vsize(ov), 16 << 20);
	assert_int_equal(qimg_check(ov, err, sizeof(err)), 0);
	/* Commit merges into the backing; rebase relinks; convert flattens. */
	assert_int_equal(qimg_commit(ov, err, sizeof(err)), 0);
	assert_int_equal(qimg_rebase_unsafe(ov, base, err, sizeof(err)), 0);
	path(ov, "flat.qcow2");
	assert_int_equal(qimg_convert(base, NULL, ov, err, sizeof(err)), 0);
	info = qimg_info(ov, "qcow2", err, sizeof(err));
	assert_null(json_object_get(info, "backing-filename"));
	json_decref(info);
}

static void
test_errors_are_one_line_and_leave_nothing(void **state)
{
	char p[PATH_MAX], q[PATH_MAX], err[256] = "", sum[QIMG_SHA256_HEX + 1];

	path(p, "missing.qcow2");
	path(q, "out.qcow2");
	assert_int_equal(qimg_convert(p, NULL, q, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot copy disk"));
	assert_null(strchr(err, '\n'));
	assert_int_not_equal(access(q, F_OK), 0);
	assert_null(qimg_info(p, NULL, err, sizeof(err)));
	assert_int_equal(qimg_create(q, 1 << 20, p, err, sizeof(err)), -1);
	assert_int_not_equal(access(q, F_OK), 0);
	assert_int_equal(qimg_sha256(p, sum, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot read"));
}

static void
test_sha256(void **state)
{
	char p[PATH_MAX], sum[QIMG_SHA256_HEX + 1], err[256];
	uint64_t n = 0;
	FILE *f;

	path(p, "abc");
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("abc", f);
	fclose(f);
	assert_int_equal(qimg_sha256(p, sum, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(sum, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_overlay_resize),
		cmocka_unit_test(test_errors_are_one_line_and_leave_nothing),
		cmocka_unit_test(test_sha256),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
