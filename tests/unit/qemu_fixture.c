/* qemu_fixture.c - the VM description and helpers test_qemu_cmd and
 * test_qemu_spawn share (qemu_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "qemu_fixture.h"

int
qt_setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));
	struct qemu_vm_spec *s;

	if (t == NULL || (t->spec = calloc(1, sizeof(*t->spec))) == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/cvirt-qcmd-XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	s = t->spec;
	snprintf(s->name, sizeof(s->name), "vm1");
	snprintf(s->uuid, sizeof(s->uuid), "%s", T_UUID);
	s->cpus = 2;
	s->memory_mib = 512;
	snprintf(s->accel, sizeof(s->accel), "tcg");
	snprintf(s->qmp_path, sizeof(s->qmp_path), "%s/qmp.sock", t->dir);
	snprintf(s->serial_path, sizeof(s->serial_path), "%s/serial.sock",
	    t->dir);
	snprintf(s->serial_log, sizeof(s->serial_log), "%s/serial.log", t->dir);
	s->vnc_display = -1;
	unsetenv("CVIRT_QEMU");
	*state = t;
	return 0;
}

int
qt_teardown(void **state)
{
	struct tstate *t = *state;

	unsetenv("CVIRT_QEMU");
	unsetenv("CVIRT_TEST_STANDIN");
	unsetenv("CVIRT_TEST_STANDIN_OPEN");
	if (t->qemu > 0) {
		kill(t->qemu, SIGKILL);
		waitpid(t->qemu, NULL, 0);
	}
	util_rm_rf(t->dir);
	free(t->spec);
	free(t);
	return 0;
}

/* Format into one of two rotating static buffers (test helper). */
char *
qt_fmt(const char *fmt, const char *a, const char *b)
{
	static char buf[2][8192];
	static int k;

	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), fmt, a, b);
	return buf[k];
}

/* Occurrences of needle in s. */
int
qt_count(const char *s, const char *needle)
{
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

/* Open path (created 0600 when flags has O_CREAT) close-on-exec. */
int
qt_open_file(struct tstate *t, const char *name, int flags)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	return fd;
}

/* A listening unix socket at DIR/name, as the agent binds one for QEMU. */
int
qt_listen(struct tstate *t, const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", t->dir, name);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}
