/* qmp.h - QMP transport: one JSON connection to one QEMU's monitor socket.
 *
 * Thread model: a struct qmp may be used from several threads. Commands are
 * serialised by an internal lock; events that arrive while a command waits
 * for its reply are queued and delivered (without the lock held) by the
 * thread that calls qmp_dispatch_events() or when the command returns.
 * Event callbacks may call qmp_command(). */
#ifndef CVIRT_QMP_H
#define CVIRT_QMP_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct qmp;

/* event: name (e.g. "SHUTDOWN"); data: the event's "data" object or NULL.
 * Both are borrowed for the duration of the call. */
typedef void (*qmp_event_fn)(void *ud, const char *event, json_t *data);

#define QMP_MSG_MAX (16 * 1024 * 1024)	/* longest line accepted from QEMU */
#define QMP_FDNAME_MAX 63		/* longest name qmp_send_fd gives an fd */

/* Connect to a QMP unix socket (retrying until timeout_ms while the socket
 * does not exist yet or refuses), read the greeting, negotiate
 * capabilities. Returns NULL with a one-line reason in err. */
struct qmp	*qmp_open(const char *sock_path, int timeout_ms,
		    qmp_event_fn fn, void *ud, char *err, size_t errsz);
/* Send {"execute": cmd, "arguments": args, "id": N} and wait for the reply
 * with that id. args is borrowed (may be NULL). On success *ret (if ret is
 * non-NULL) receives a new reference to "return". On a QMP error, a
 * malformed reply, a timeout or a dead connection returns -1 with err like
 * "QMP command 'stop' failed: <desc>"; after a timeout or EOF the
 * connection is marked broken and every later call fails at once.
 * For qmp_open and qmp_command, timeout_ms <= 0 means no time limit. */
int		 qmp_command(struct qmp *q, const char *cmd, json_t *args,
		    int timeout_ms, json_t **ret, char *err, size_t errsz);
/* qmp_command with fd (>= 0, borrowed: QEMU gets its own copy, the
 * caller closes ours) sent as SCM_RIGHTS in the same message as the
 * command, so no other command can take it; -1: none. A directory (or
 * O_PATH directory) fd is refused before anything is sent. */
int		 qmp_command_fd(struct qmp *q, const char *cmd, json_t *args,
		    int fd, int timeout_ms, json_t **ret, char *err,
		    size_t errsz);
/* "getfd": QEMU keeps fd under fdname ([A-Za-z][A-Za-z0-9_-]*, at most
 * QMP_FDNAME_MAX) for a later command (add_client, netdev_add fd=,
 * migrate-incoming fd:NAME); "closefd" drops it. 0 or -1 with err. */
int		 qmp_send_fd(struct qmp *q, const char *fdname, int fd,
		    int timeout_ms, char *err, size_t errsz);
/* "add-fd": fd joins a new fdset (QEMU picks its id, returned in
 * *fdset), opened by "/dev/fdset/ID" paths; opaque (may be NULL) labels
 * it in query-fdsets. 0 or -1 with err. */
int		 qmp_add_fd(struct qmp *q, int fd, const char *opaque,
		    int timeout_ms, int64_t *fdset, char *err, size_t errsz);
/* The socket fd, for poll(): readable means events (or EOF) are waiting. */
int		 qmp_fd(struct qmp *q);
/* Read whatever is available without blocking and deliver queued and new
 * events. Returns 0, or -1 when the connection is closed or broken. */
int		 qmp_dispatch_events(struct qmp *q);
/* 1 once EOF/error has been seen. */
int		 qmp_broken(struct qmp *q);
void		 qmp_close(struct qmp *q);	/* accepts NULL */
/* One QMP message (a line without its newline) decoded and checked as the
 * transport does: 0 with *msg (new reference) and *event set, or -1 with
 * why. Pure: for tests and the fuzzer. */
int		 qmp_parse_line(const char *line, size_t n, json_t **msg,
		    int *event, char *why, size_t whysz);

#endif
