/* test_serial.c - unit tests for the serial log on shared storage
 * (src/agent/serial.c, util_write_file_atomic): files planted in a VM's
 * directory (symlinks, FIFOs, directories, absurd offsets) are never
 * followed, never hang the agent, and never stop rotation. */
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
#include <unistd.h>

#include <jansson.h>

#include "agent/agent_int.h"
#include "common/util.h"

#define SECRET	"root:x:0:0:secret-line-that-must-not-move\n"

struct sdir {
	char	base[64];	/* the test's temp directory */
	char	vm[128];	/* base/vm: the VM's directory */
	char	target[128];	/* base/passwd: stands in for /etc/passwd */
};

static int
setup(void **state)
{
	struct sdir *d = calloc(1, sizeof(*d));
	FILE *f;
	int i;

	if (d == NULL)
		return -1;
	snprintf(d->base, sizeof(d->base), "/tmp/cvirt-serial-XXXXXX");
	if (mkdtemp(d->base) == NULL)
		return -1;
	snprintf(d->vm, sizeof(d->vm), "%s/vm", d->base);
	snprintf(d->target, sizeof(d->target), "%s/passwd", d->base);
	if (mkdir(d->vm, 0755) < 0 || (f = fopen(d->target, "w")) == NULL)
		return -1;
	for (i = 0; i < 10; i++)	/* larger than the limits below */
		fputs(SECRET, f);
	fclose(f);
	*state = d;
	return 0;
}

static int
teardown(void **state)
{
	struct sdir *d = *state;

	util_rm_rf(d->base);
	free(d);
	return 0;
}

static const char *
vpath(struct sdir *d, const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", d->vm, name);
	return p;
}

static void
put(struct sdir *d, const char *name, const char *text, size_t times)
{
	FILE *f = fopen(vpath(d, name), "w");

	assert_non_null(f);
	while (times-- > 0)
		fputs(text, f);
	fclose(f);
}

static void
assert_target_intact(struct sdir *d)
{
	struct stat st;
	char *s;
	size_t len;

	assert_int_equal(lstat(d->target, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 10 * strlen(SECRET));
	s = util_read_file(d->target, 4096, &len);
	assert_non_null(s);
	assert_memory_equal(s, SECRET, strlen(SECRET));
	free(s);
}

static int64_t
fsize(struct sdir *d, const char *name)
{
	struct stat st;

	if (lstat(vpath(d, name), &st) < 0)
		return -1;
	return S_ISREG(st.st_mode) ? (int64_t)st.st_size : -2;
}

/* serial.log a symlink to a file as large as a log due for rotation: the
 * file is neither copied to serial.log.0 (then served by serial_read) nor
 * truncated. */
static void
test_rotate_log_symlink(void **state)
{
	struct sdir *d = *state;

	assert_int_equal(symlink(d->target, vpath(d, "serial.log")), 0);
	serial_rotate(d->vm, 64);
	assert_target_intact(d);
	assert_int_equal(fsize(d, "serial.log.0"), -1);
}

/* Symlinks planted at the names util_write_file_atomic writes its temp
 * files under (name.tmp.PID): removed, not followed. At serial.log.0 and
 * serial.meta themselves: replaced by the new files. */
static void
test_rotate_temp_symlinks(void **state)
{
	struct sdir *d = *state;
	char name[64];
	json_t *r;

	put(d, "serial.log", "0123456789abcdef", 8);	/* 128 bytes */
	snprintf(name, sizeof(name), "serial.log.0.tmp.%ld", (long)getpid());
	assert_int_equal(symlink(d->target, vpath(d, name)), 0);
	snprintf(name, sizeof(name), "serial.meta.tmp.%ld", (long)getpid());
	assert_int_equal(symlink(d->target, vpath(d, name)), 0);
	assert_int_equal(symlink(d->target, vpath(d, "serial.meta")), 0);
	serial_rotate(d->vm, 32);
	assert_target_intact(d);
	assert_int_equal(fsize(d, "serial.log"), 0);
	assert_int_equal(fsize(d, "serial.log.0"), 32);
	assert_int_equal(fsize(d, "serial.meta"), 4);	/* "128\n" */
	assert_int_equal(fsize(d, name), -1);
	r = serial_read(d->vm, -1, name, sizeof(name));
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "offset")), 128);
	json_decref(r);
}

/* serial_read never serves a file a symlink points at. */
static void
test_read_symlinks(void **state)
{
	struct sdir *d = *state;
	char err[128];
	json_t *r;
	const char *names[] = { "serial.log.0", "serial.log", NULL };
	int i;

	put(d, "serial.log", "", 0);
	for (i = 0; names[i]; i++) {
		unlink(vpath(d, names[i]));
		assert_int_equal(symlink(d->target, vpath(d, names[i])), 0);
		r = serial_read(d->vm, -1, err, sizeof(err));
		assert_non_null(r);
		assert_null(strstr(json_string_value(json_object_get(r,
		    "data")), "secret-line"));
		json_decref(r);
	}
}

/* A FIFO under a log's name does not hang the reader (alarm: the test
 * dies instead of hanging when it does). */
static void
test_read_fifo(void **state)
{
	struct sdir *d = *state;
	char err[128];
	json_t *r;

	put(d, "serial.log", "hello", 1);
	assert_int_equal(mkfifo(vpath(d, "serial.log.0"), 0600), 0);
	assert_int_equal(mkfifo(vpath(d, "serial.meta"), 0600), 0);
	alarm(10);
	r = serial_read(d->vm, -1, err, sizeof(err));
	alarm(0);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "data")),
	    "hello");
	json_decref(r);
}

/* Directories planted as serial.log.0 and serial.meta make the copy
 * fail; the log is truncated all the same, each time it is due. */
static void
test_rotate_bounded(void **state)
{
	struct sdir *d = *state;

	assert_int_equal(mkdir(vpath(d, "serial.log.0"), 0755), 0);
	assert_int_equal(mkdir(vpath(d, "serial.meta"), 0755), 0);
	put(d, "serial.log", "0123456789abcdef", 8);
	serial_rotate(d->vm, 32);
	assert_int_equal(fsize(d, "serial.log"), 0);
	put(d, "serial.log", "0123456789abcdef", 8);
	serial_rotate(d->vm, 32);
	assert_int_equal(fsize(d, "serial.log"), 0);
}

/* serial.meta claiming an offset near INT64_MAX: ignored (it was added to
 * the log's size: signed overflow, which UBSan reports). */
static void
test_meta_absurd(void **state)
{
	struct sdir *d = *state;
	char err[128];
	json_t *r;

	put(d, "serial.meta", "9223372036854775000\n", 1);
	put(d, "serial.log", "0123456789abcdef", 8);
	serial_rotate(d->vm, 32);
	assert_int_equal(fsize(d, "serial.log"), 0);
	r = serial_read(d->vm, -1, err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "offset")), 128);
	json_decref(r);
}

/* serial_mark replaces a symlink at serial.log with a file of its own. */
static void
test_mark_symlink(void **state)
{
	struct sdir *d = *state;
	char *s;
	size_t len;

	assert_int_equal(symlink(d->target, vpath(d, "serial.log")), 0);
	serial_mark(d->vm, "[mark]\n");
	assert_target_intact(d);
	assert_int_equal(fsize(d, "serial.log"), 7);
	s = util_read_file(vpath(d, "serial.log"), 64, &len);
	assert_non_null(s);
	assert_string_equal(s, "[mark]\n");
	free(s);
	serial_mark(d->vm, "[again]\n");
	assert_int_equal(fsize(d, "serial.log"), 15);
}

/* util_write_file_atomic: a symlink at the temp name is not followed, a
 * stale regular temp file does not stop it. */
static void
test_write_atomic_temp(void **state)
{
	struct sdir *d = *state;
	char tmp[256];

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", vpath(d, "f"), (long)getpid());
	assert_int_equal(symlink(d->target, tmp), 0);
	assert_int_equal(util_write_file_atomic(vpath(d, "f"), "new", 3, 0644),
	    0);
	assert_target_intact(d);
	assert_int_equal(fsize(d, "f"), 3);
	put(d, "g.tmp.x", "", 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", vpath(d, "g"), (long)getpid());
	assert_int_equal(rename(vpath(d, "g.tmp.x"), tmp), 0);
	assert_int_equal(util_write_file_atomic(vpath(d, "g"), "new", 3, 0644),
	    0);
	assert_int_equal(fsize(d, "g"), 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rotate_log_symlink, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rotate_temp_symlinks,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_symlinks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_fifo, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rotate_bounded, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_meta_absurd, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mark_symlink, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_temp, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
