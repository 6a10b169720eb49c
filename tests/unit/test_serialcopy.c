/* test_serialcopy.c - unit tests for src/agent/serialcopy.c: QEMU's serial
 * log on the host's own disk, copied to the VM's serial.log on storage by
 * the domain's rounds.
 *
 * - New output reaches storage once per round, each byte once; output
 *   written between rounds goes with the next one.
 * - A round of another domain copies nothing.
 * - The local log of a VM that is no longer on this host goes once all of
 *   it is on storage; that of a VM in the table stays, and so does every
 *   log until the agent's start-up scan has found its running QEMUs.
 * - Past 1 MiB and fully copied, the local log starts over, and what QEMU
 *   appends then is copied from its new start.
 * - Far behind (the agent or storage was away), the newest half of what
 *   rotation keeps (512 KiB) is copied after a line saying how much was
 *   not kept.
 * - A symlink planted at serial.log on storage is replaced, never written
 *   through.
 * - serialcopy_begin copies what an earlier run left before the new run's
 *   output, to the directory that run named.
 * - A deleted VM's log (no directory to copy to) goes once the VM is not
 *   on this host. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"
#include "vmfake.h"

struct tstate {
	char	dir[64];
	char	uuid[UTIL_UUID_LEN + 1];
	char	vmdir[PATH_MAX];	/* on "storage" */
	char	local[PATH_MAX];	/* DATA/serial/UUID.log */
};

/* An agent just started: vmadopt's scan has not run. */
static int
setup_noscan(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));
	char qmp[PATH_MAX];

	assert_non_null(t);
	vmfake_agent("/tmp/cvirt-serialcopy.XXXXXX", t->dir, sizeof(t->dir),
	    t->uuid, qmp, sizeof(qmp));
	assert_int_equal(util_fmt(t->vmdir, sizeof(t->vmdir), "%s/vms/%s",
	    agent_cfg.storage[0].path, t->uuid), 0);
	assert_int_equal(serialcopy_local_path(t->uuid, t->local,
	    sizeof(t->local)), 0);
	*state = t;
	return 0;
}

/* An agent whose start-up scan (vmadopt) is over: nothing of ours runs. */
static int
setup(void **state)
{
	setup_noscan(state);
	agent_cfg.serial_max = 1 << 20;
	vmadopt_start();
	return 0;
}

static int
teardown(void **state)
{
	struct tstate *t = *state;

	util_rm_rf(t->dir);
	free(t);
	return 0;
}

/* What QEMU does: append to the local log. */
static void
t_qemu_writes(struct tstate *t, const char *s, size_t len)
{
	int fd = open(t->local, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, len), (ssize_t)len);
	close(fd);
}

/* The VM's serial.log on storage (malloc'd, "" when absent). */
static char *
t_stored(struct tstate *t, size_t *lenp)
{
	char path[PATH_MAX], *s;
	size_t len = 0;

	assert_int_equal(util_fmt(path, sizeof(path), "%s/serial.log",
	    t->vmdir), 0);
	if ((s = util_read_file(path, 64 << 20, &len)) == NULL)
		s = strdup("");
	assert_non_null(s);
	if (lenp)
		*lenp = len;
	return s;
}

static int
t_exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* A VM in the agent's table (as while it runs here). */
static struct avm *
t_here(struct tstate *t)
{
	char err[256];
	int status;
	struct avm *vm = vmhost_insert(t->uuid, "web1", "local", err,
	    sizeof(err), &status);

	assert_non_null(vm);
	return vm;
}

static void
t_gone(struct avm *vm)
{
	vmhost_remove(vm);
	vmhost_put(vm);
}

/* Each byte reaches storage once, with the round after it was written;
 * another domain's round copies nothing. */
static void
test_rounds_copy_new_output_once(void **state)
{
	struct tstate *t = *state;
	struct avm *vm = t_here(t);
	char *s;

	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, "boot line 1\n", 12);
	serialcopy_round("other");
	assert_string_equal(s = t_stored(t, NULL), "");
	free(s);
	serialcopy_round("local");
	assert_string_equal(s = t_stored(t, NULL), "boot line 1\n");
	free(s);
	serialcopy_round("local");
	t_qemu_writes(t, "line 2\n", 7);
	serialcopy_round("local");
	assert_string_equal(s = t_stored(t, NULL), "boot line 1\nline 2\n");
	free(s);
	/* Still here: its local log stays. */
	assert_true(t_exists(t->local));
	t_gone(vm);
}

/* An agent just started, before its scan of running QEMUs: a VM not in
 * the table may still run here, so its log is copied but kept (its QEMU
 * would write on into a removed file). Runs first: the scan is once per
 * process. */
static void
test_nothing_forgotten_before_the_scan(void **state)
{
	struct tstate *t = *state;
	char *s;

	assert_false(vmadopt_complete());
	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, "still running\n", 14);
	serialcopy_round("local");
	assert_string_equal(s = t_stored(t, NULL), "still running\n");
	free(s);
	assert_true(t_exists(t->local));
	vmadopt_start();
	assert_true(vmadopt_complete());
	serialcopy_round("local");
	assert_false(t_exists(t->local));
}

/* A VM no longer on this host: its last output is copied, then its local
 * files go; one in the table keeps them. */
static void
test_gone_vm_is_copied_then_forgotten(void **state)
{
	struct tstate *t = *state;
	struct avm *vm = t_here(t);
	char json[PATH_MAX], *s;

	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, "last words\n", 11);
	t_gone(vm);
	assert_int_equal(util_fmt(json, sizeof(json), "%s/serial/%s.json",
	    agent_cfg.data, t->uuid), 0);
	assert_true(t_exists(json));
	serialcopy_round("local");
	assert_string_equal(s = t_stored(t, NULL), "last words\n");
	free(s);
	assert_false(t_exists(t->local));
	assert_false(t_exists(json));
	serialcopy_round("local");
	assert_string_equal(s = t_stored(t, NULL), "last words\n");
	free(s);
}

/* Past 1 MiB and all on storage, the local log starts over; what comes
 * next is copied from its new start. */
static void
test_local_log_starts_over(void **state)
{
	struct tstate *t = *state;
	struct avm *vm = t_here(t);
	size_t big = (1 << 20) + 100, len;
	size_t chunk = 400 << 10, off, n = 0;
	char *buf = malloc(big), *s;
	struct stat sb;

	assert_non_null(buf);
	memset(buf, 'x', big);
	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	for (off = 0; off < big; off += n) {
		n = big - off < chunk ? big - off : chunk;
		t_qemu_writes(t, buf, n);
		assert_int_equal(stat(t->local, &sb), 0);
		assert_int_equal(sb.st_size, off + n);
		serialcopy_round("local");
	}
	assert_int_equal(stat(t->local, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	t_qemu_writes(t, "after\n", 6);
	serialcopy_round("local");
	s = t_stored(t, &len);
	assert_int_equal(len, big + 6);
	assert_memory_equal(s + big, "after\n", 6);
	free(s);
	free(buf);
	t_gone(vm);
}

/* Far behind: a line saying what was not kept, then the newest 512 KiB
 * (half of serial_max: rotation keeps the line too). */
static void
test_backlog_keeps_the_newest(void **state)
{
	struct tstate *t = *state;
	struct avm *vm = t_here(t);
	size_t big = (4 << 20), len;
	char *buf = malloc(big), *s;

	assert_non_null(buf);
	memset(buf, 'o', big);
	memcpy(buf + big - 4, "END\n", 4);
	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, buf, big);
	serialcopy_round("local");
	s = t_stored(t, &len);
	assert_non_null(strstr(s, "[cvirt: 3670016 bytes of serial output not "
	    "kept]"));
	assert_memory_equal(s + len - 4, "END\n", 4);
	assert_true(len < (512 << 10) + 100);
	free(s);
	free(buf);
	t_gone(vm);
}

/* A symlink planted at serial.log on storage is replaced: its target is
 * never written. */
static void
test_symlink_on_storage_is_not_followed(void **state)
{
	struct tstate *t = *state;
	struct avm *vm = t_here(t);
	char link[PATH_MAX], target[PATH_MAX], *s;
	size_t len;

	assert_int_equal(util_fmt(target, sizeof(target), "%s/target",
	    t->dir), 0);
	assert_int_equal(util_write_file_atomic(target, "keep\n", 5, 0600), 0);
	assert_int_equal(util_fmt(link, sizeof(link), "%s/serial.log",
	    t->vmdir), 0);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, "guest\n", 6);
	serialcopy_round("local");
	assert_non_null(s = util_read_file(target, 64, &len));
	assert_string_equal(s, "keep\n");
	free(s);
	assert_string_equal(s = t_stored(t, NULL), "guest\n");
	free(s);
	t_gone(vm);
}

/* What an earlier run left uncopied (the agent was down when the VM
 * ended) goes first, to the directory that run named. */
static void
test_begin_copies_the_earlier_run_first(void **state)
{
	struct tstate *t = *state;
	struct avm *vm;
	char *s;

	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, "run 1\n", 6);
	vm = t_here(t);
	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, "run 2\n", 6);
	serialcopy_round("local");
	assert_string_equal(s = t_stored(t, NULL), "run 1\nrun 2\n");
	free(s);
	t_gone(vm);
}

/* The VM was deleted (its directory on storage is gone) before its last
 * output was copied: once it is not on this host, its local files go. */
static void
test_deleted_vm_is_forgotten(void **state)
{
	struct tstate *t = *state;
	struct avm *vm = t_here(t);

	assert_int_equal(serialcopy_begin(t->uuid, "local", t->vmdir), 0);
	t_qemu_writes(t, "unseen\n", 7);
	util_rm_rf(t->vmdir);
	serialcopy_round("local");
	assert_true(t_exists(t->local));	/* still here */
	t_gone(vm);
	serialcopy_round("local");
	assert_false(t_exists(t->local));
	assert_false(t_exists(t->vmdir));
}

int
main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_nothing_forgotten_before_the_scan, setup_noscan,
		    teardown),
		T(test_rounds_copy_new_output_once),
		T(test_gone_vm_is_copied_then_forgotten),
		T(test_local_log_starts_over),
		T(test_backlog_keeps_the_newest),
		T(test_symlink_on_storage_is_not_followed),
		T(test_begin_copies_the_earlier_run_first),
		T(test_deleted_vm_is_forgotten),
	};

	vmfake_main(argc, argv);
	if (vmhost_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
