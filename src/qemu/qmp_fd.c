/* qmp_fd.c - pass open files to QEMU over QMP: getfd and add-fd, the fd
 * riding with the command as SCM_RIGHTS (qmp_command_fd in qmp.c). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "qemu/qmp.h"

/* A name QEMU takes for getfd (never starting with a digit) that needs
 * no quoting anywhere it is used (netdev_add fd=, add_client fdname=). */
static int
qmp_fdname_valid(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (n == 0 || n > QMP_FDNAME_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (i = 1; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_'))
			return 0;
	}
	return 1;
}

int
qmp_send_fd(struct qmp *q, const char *fdname, int fd, int timeout_ms,
    char *err, size_t errsz)
{
	json_t *args;
	int rc;

	if (!qmp_fdname_valid(fdname)) {
		snprintf(err, errsz, "QMP command 'getfd' failed: invalid "
		    "fd name");
		errno = EINVAL;
		return -1;
	}
	if ((args = json_pack("{s:s}", "fdname", fdname)) == NULL) {
		snprintf(err, errsz, "QMP command 'getfd' failed: out of memory");
		errno = ENOMEM;
		return -1;
	}
	rc = qmp_command_fd(q, "getfd", args, fd, timeout_ms, NULL, err,
	    errsz);
	json_decref(args);
	return rc;
}

int
qmp_add_fd(struct qmp *q, int fd, const char *opaque, int timeout_ms,
    int64_t *fdset, char *err, size_t errsz)
{
	json_t *args, *ret = NULL, *id;
	int rc = -1;

	*fdset = -1;
	if ((args = json_object()) == NULL || (opaque && json_object_set_new(
	    args, "opaque", json_string(opaque)) < 0)) {
		snprintf(err, errsz, "QMP command 'add-fd' failed: out of memory");
		goto cleanup;
	}
	if (qmp_command_fd(q, "add-fd", args, fd, timeout_ms, &ret, err,
	    errsz) < 0)
		goto cleanup;
	id = json_object_get(ret, "fdset-id");
	if (!json_is_integer(id) || json_integer_value(id) < 0) {
		snprintf(err, errsz, "QMP command 'add-fd' failed: "
		    "malformed reply from QEMU (no fdset-id)");
		goto cleanup;
	}
	*fdset = json_integer_value(id);
	rc = 0;
cleanup:
	json_decref(ret);
	json_decref(args);
	return rc;
}
