/* test_privdrop.c - unit tests for running helpers as an unprivileged user
 * (proc_run_as, proc_identity_user) and the agent's QEMU user and
 * DATA/qemu (src/agent/qemuuser.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "capenv.h"
#include "common/proc.h"
#include "common/util.h"

struct tstate {
	char	dir[64];
	char	err[512];
};

static int
setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/cvirt-priv-XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	memset(&agent_cfg, 0, sizeof(agent_cfg));
	snprintf(agent_cfg.data, sizeof(agent_cfg.data), "%s", t->dir);
	*state = t;
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

static void
t_assert_in(const char *out, const char *want)
{
	if (strstr(out, want) == NULL)
		fail_msg("missing \"%s\" in:\n%s", want, out);
}

/* A helper run as an unprivileged user (qemu-img on a user's image):
 * that uid and gid, exactly the groups given (the caller's supplementary
 * groups are gone), no capability in any set although the caller had
 * inheritable and ambient ones, no_new_privs, cwd "/" (not the caller's
 * root-only directory), and a root 0600 file stays closed to it. Guards
 * proc_run_as, proc_child and proc_child_identity (src/common/proc.c).
 * Needs root (CI runs as root). */
static void
test_proc_run_as(void **state)
{
	struct tstate *t = *state;
	struct proc_identity id;
	char secret[128], script[512], out[2048], cwd[4096], why[128];
	char *argv[] = { "sh", "-c", script, NULL };
	struct capenv save;
	int rc;

	if (geteuid() != 0)
		skip();
	assert_int_equal(proc_identity_user("nobody", NULL, &id, t->err,
	    sizeof(t->err)), 0);
	snprintf(secret, sizeof(secret), "%s/secret", t->dir);
	assert_int_equal(util_write_file_atomic(secret, "x", 1, 0600), 0);
	assert_int_equal(chmod(t->dir, 0711), 0);
	snprintf(script, sizeof(script), "grep -E '^(Uid|Gid|Groups|Cap...|"
	    "NoNewPrivs):' /proc/self/status; echo \"cwd $(pwd)\"; cat %s",
	    secret);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(t->dir), 0);
	assert_int_equal(capenv_hostile(&save), 0);
	rc = proc_run_as(&id, argv, out, sizeof(out), 10000);
	capenv_restore(&save);
	assert_int_equal(chdir(cwd), 0);
	/* cat failed: the file is root's. */
	assert_int_equal(rc, 1);
	if (capenv_dropped(out, &id, why, sizeof(why)) < 0)
		fail_msg("%s in:\n%s", why, out);
	t_assert_in(out, "\ncwd /\n");
	t_assert_in(out, "Permission denied");

	/* Without an identity: the caller's own, as proc_run. */
	snprintf(script, sizeof(script), "id -u");
	assert_int_equal(proc_run_as(NULL, argv, out, sizeof(out), 10000), 0);
	assert_string_equal(out, "0\n");
	id.set = 0;
	assert_int_equal(proc_run_as(&id, argv, out, sizeof(out), 10000), 0);
	assert_string_equal(out, "0\n");
}

/* An identity that cannot be taken (root, too many groups) runs nothing:
 * -1, one line naming the program, no child left. Guards
 * proc_child_identity and proc_exec_status (src/common/proc.c). */
static void
test_proc_run_as_refused(void **state)
{
	struct proc_identity id = { .set = 1, .uid = 0, .gid = 65534,
	    .groups = { 65534 }, .ngroups = 1 };
	char *argv[] = { "sh", "-c", "echo ran", NULL };
	char out[256];

	(void)state;
	assert_int_equal(proc_run_as(&id, argv, out, sizeof(out), 10000), -1);
	assert_string_equal(out, "cannot run sh as an unprivileged user: "
	    "Invalid argument");
	id.uid = 65534;
	id.gid = 0;
	assert_int_equal(proc_run_as(&id, argv, out, sizeof(out), 10000), -1);
	id.gid = 65534;
	id.ngroups = PROC_MAX_GROUPS + 1;
	assert_int_equal(proc_run_as(&id, argv, out, sizeof(out), 10000), -1);
	assert_string_equal(out, "cannot run sh as an unprivileged user: "
	    "Invalid argument");
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* A user name resolves to its uid, its gid and the groups {gid, extra}
 * (extra only when it exists and differs); root, a user in group root, a
 * missing user and a bad name are refused with one line. Guards
 * proc_identity_user (src/common/proc.c). */
static void
test_proc_identity_user(void **state)
{
	struct tstate *t = *state;
	struct proc_identity id;
	struct passwd *pw = getpwnam("nobody");
	struct group *gr = getgrnam("users");

	assert_non_null(pw);
	assert_non_null(gr);
	assert_int_equal(proc_identity_user("nobody", "users", &id, t->err,
	    sizeof(t->err)), 0);
	assert_int_equal(id.set, 1);
	assert_int_equal(id.uid, pw->pw_uid);
	assert_int_equal(id.gid, pw->pw_gid);
	assert_int_equal(id.ngroups, 2);
	assert_int_equal(id.groups[0], pw->pw_gid);
	assert_int_equal(id.groups[1], gr->gr_gid);
	/* A group that does not exist (no kvm here) or is the primary. */
	assert_int_equal(proc_identity_user("nobody", "cvirt-no-such-group",
	    &id, t->err, sizeof(t->err)), 0);
	assert_int_equal(id.ngroups, 1);
	gr = getgrgid(pw->pw_gid);
	assert_non_null(gr);
	assert_int_equal(proc_identity_user("nobody", gr->gr_name, &id, t->err,
	    sizeof(t->err)), 0);
	assert_int_equal(id.ngroups, 1);
	assert_int_equal(proc_identity_user("nobody", NULL, &id, t->err,
	    sizeof(t->err)), 0);
	assert_int_equal(id.ngroups, 1);

	assert_int_equal(proc_identity_user("root", NULL, &id, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "user root is root or in group root: "
	    "refused");
	assert_int_equal(id.set, 0);
	assert_int_equal(proc_identity_user("cvirt-no-such-user", NULL, &id,
	    t->err, sizeof(t->err)), -1);
	assert_string_equal(t->err, "user cvirt-no-such-user does not exist");
	assert_int_equal(errno, ENOENT);
	assert_int_equal(id.set, 0);
	assert_int_equal(proc_identity_user("", NULL, &id, t->err,
	    sizeof(t->err)), -1);
	assert_int_equal(proc_identity_user(NULL, NULL, &id, t->err,
	    sizeof(t->err)), -1);
	assert_int_equal(proc_identity_user(
	    "a-name-longer-than-thirty-two-bytes", NULL, &id, t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "invalid user name");
}

/* The agent's QEMU user: none given, QEMU runs as the agent (the default
 * until the switch is on); a user resolves with the kvm group; root and
 * a missing user stop the agent with one line. Guards
 * agent_qemu_user_init (src/agent/qemuuser.c). Needs root. */
static void
test_agent_qemu_user(void **state)
{
	struct tstate *t = *state;
	struct passwd *pw = getpwnam("nobody");
	char want[256];

	if (geteuid() != 0)
		skip();
	assert_non_null(pw);
	assert_int_equal(agent_qemu_user_init(NULL, t->err, sizeof(t->err)),
	    0);
	assert_int_equal(agent_cfg.qemu_id.set, 0);
	assert_int_equal(agent_cfg.qemu_id.uid, geteuid());
	assert_int_equal(agent_cfg.qemu_id.gid, getegid());
	snprintf(want, sizeof(want), "%s/qemu", t->dir);
	assert_string_equal(agent_cfg.qemu_dir, want);
	/* Nothing made on disk for that. */
	assert_int_equal(access(want, F_OK), -1);

	assert_int_equal(agent_qemu_user_init("nobody", t->err,
	    sizeof(t->err)), 0);
	assert_int_equal(agent_cfg.qemu_id.set, 1);
	assert_int_equal(agent_cfg.qemu_id.uid, pw->pw_uid);
	assert_int_equal(agent_cfg.qemu_id.gid, pw->pw_gid);

	assert_int_equal(agent_qemu_user_init("root", t->err, sizeof(t->err)),
	    -1);
	assert_string_equal(t->err, "QEMU must not run as root: set qemu_user "
	    "to an unprivileged user");
	assert_int_equal(agent_cfg.qemu_id.set, 0);
	assert_int_equal(agent_qemu_user_init("cvirt-no-such-user", t->err,
	    sizeof(t->err)), -1);
	assert_string_equal(t->err, "user cvirt-no-such-user does not exist: "
	    "install the package or run 'cvirt up' once as root");
	assert_int_equal(agent_cfg.qemu_id.set, 0);
	assert_int_equal(agent_cfg.qemu_id.uid, geteuid());
}

static void
t_assert_dir(const char *path, gid_t gid)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_gid, gid);
	if ((st.st_mode & 07777) != 02750)
		fail_msg("%s has mode %o, not 2750", path, st.st_mode & 07777);
}

/* DATA/qemu and directories beneath it: the agent's, the QEMU user's
 * group, 02750 (QEMU reads, never writes; what the agent creates there
 * gets the group), fixed when wrong; never through a symlink, never
 * taking over a directory of another user, never outside (bad names).
 * Guards agent_qemu_dir, agent_qemu_subdir and agent_qemu_sub_valid
 * (src/agent/qemuuser.c). Needs root (chown). */
static void
test_agent_qemu_dir(void **state)
{
	struct tstate *t = *state;
	static const char *const bad[] = { "", "/x", "x/", "a//b", "..",
	    "a/../b", ".x", "a/.", "a b", "tls/.." };
	char out[4096], path[256], elsewhere[256];
	struct stat st, before;
	gid_t gid;
	size_t i;

	if (geteuid() != 0)
		skip();
	assert_int_equal(agent_qemu_user_init("nobody", t->err,
	    sizeof(t->err)), 0);
	gid = agent_cfg.qemu_id.gid;
	assert_int_equal(agent_qemu_dir(NULL, out, sizeof(out)), 0);
	snprintf(path, sizeof(path), "%s/qemu", t->dir);
	assert_string_equal(out, path);
	t_assert_dir(path, gid);
	assert_int_equal(agent_qemu_dir("psk/0123abcd", out, sizeof(out)), 0);
	snprintf(path, sizeof(path), "%s/qemu/psk/0123abcd", t->dir);
	assert_string_equal(out, path);
	t_assert_dir(path, gid);
	snprintf(path, sizeof(path), "%s/qemu/psk", t->dir);
	t_assert_dir(path, gid);

	/* Wrong owner group and mode (an older agent, an admin): fixed. */
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(chmod(path, 0777), 0);
	assert_int_equal(agent_qemu_dir("psk", out, sizeof(out)), 0);
	t_assert_dir(path, gid);

	/* Names that would leave DATA/qemu or are no plain names. */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (agent_qemu_dir(bad[i], out, sizeof(out)) != -1 ||
		    errno != EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	snprintf(path, sizeof(path), "%s/x", t->dir);
	assert_int_equal(access(path, F_OK), -1);

	/* A symlink where a directory should be: never followed, its
	 * target keeps its owner and mode. */
	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", t->dir);
	assert_int_equal(mkdir(elsewhere, 0755), 0);
	snprintf(path, sizeof(path), "%s/qemu/tls", t->dir);
	assert_int_equal(symlink(elsewhere, path), 0);
	assert_int_equal(agent_qemu_dir("tls", out, sizeof(out)), -1);
	assert_int_equal(lstat(elsewhere, &st), 0);
	assert_int_equal(st.st_gid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* Also for DATA/qemu itself. */
	snprintf(path, sizeof(path), "%s/qemu", t->dir);
	assert_int_equal(util_rm_rf(path), 0);
	assert_int_equal(symlink(elsewhere, path), 0);
	assert_int_equal(agent_qemu_dir(NULL, out, sizeof(out)), -1);
	assert_int_equal(agent_qemu_dir("tls", out, sizeof(out)), -1);
	assert_int_equal(lstat(elsewhere, &st), 0);
	assert_int_equal(st.st_gid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(unlink(path), 0);

	/* A directory of another user is not taken over. */
	assert_int_equal(agent_qemu_dir(NULL, out, sizeof(out)), 0);
	snprintf(path, sizeof(path), "%s/qemu/theirs", t->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chown(path, agent_cfg.qemu_id.uid, 0), 0);
	assert_int_equal(lstat(path, &before), 0);
	errno = 0;
	assert_int_equal(agent_qemu_dir("theirs", out, sizeof(out)), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, agent_cfg.qemu_id.uid);
	assert_int_equal(st.st_gid, 0);
	assert_int_equal(st.st_mode, before.st_mode);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_proc_run_as),
		T(test_proc_run_as_refused),
		T(test_proc_identity_user),
		T(test_agent_qemu_user),
		T(test_agent_qemu_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
