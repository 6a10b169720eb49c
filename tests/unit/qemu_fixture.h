/* qemu_fixture.h - what test_qemu_cmd and test_qemu_spawn share: a
 * VM description in a fresh directory, and small helpers. */
#ifndef CVIRT_QEMU_FIXTURE_H
#define CVIRT_QEMU_FIXTURE_H

#include <stdio.h>
#include <sys/types.h>

#include "qemu/qemu_cmd.h"

#define T_UUID "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5b"
/* Bounded assignment to a char array field. */
#define SET(f, v) snprintf((f), sizeof(f), "%s", (v))

struct tstate {
	char			 dir[64];
	struct qemu_vm_spec	*spec;
	char			 err[512];
	pid_t			 qemu;	/* a real QEMU to end if a test fails */
};

/* cmocka setup: *state a struct tstate with a fresh /tmp directory and a
 * valid spec in it (tcg, 2 CPUs, 512 MiB, sockets and serial log there,
 * no VNC); teardown ends t->qemu, removes the directory, frees it. */
int	qt_setup(void **state);
int	qt_teardown(void **state);
/* Format (at most two strings) into one of two rotating static buffers:
 * valid until the second call after. */
char	*qt_fmt(const char *fmt, const char *a, const char *b);
/* Occurrences of needle in s. */
int	qt_count(const char *s, const char *needle);
/* t->dir/name opened close-on-exec with flags (created 0600 with
 * O_CREAT); fails the test when it cannot. */
int	qt_open_file(struct tstate *t, const char *name, int flags);
/* A listening unix socket at t->dir/name, as the agent binds one for
 * QEMU. */
int	qt_listen(struct tstate *t, const char *name);

#endif
