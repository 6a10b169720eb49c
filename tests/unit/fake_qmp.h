/* fake_qmp.h - scripted fake QMP server on a unix socket, run in a thread, for unit tests. */
#ifndef CVIRT_FAKE_QMP_H
#define CVIRT_FAKE_QMP_H

#include <stddef.h>

enum fake_op {
	FQ_END,		/* script done: wait for the client to hang up */
	FQ_GREET,	/* send the standard QMP greeting */
	FQ_EXPECT,	/* read one command: arg is "name" (no arguments) or
			 * "name {...}" (arguments must equal that JSON);
			 * it must come without a file descriptor */
	FQ_EXPECT_FD,	/* like FQ_EXPECT, with exactly one fd (SCM_RIGHTS)
			 * in the same message: kept, see fake_qmp_fd() */
	FQ_RETURN,	/* reply {"return": <arg as JSON>, "id": <last id>} */
	FQ_ERROR,	/* reply {"error": {"class":..., "desc": arg}, "id": ...} */
	FQ_EVENT,	/* send {"event": arg, "data": {...}, "timestamp": ...} */
	FQ_RAW,		/* send arg verbatim; "%ID%" becomes the last id */
	FQ_SPLIT,	/* like FQ_RAW, a few bytes per write, pausing between */
	FQ_BIG,		/* reply {"big": true} in a line QMP_MSG_MAX long */
	FQ_LONG,	/* send a line longer than QMP_MSG_MAX, no newline; last */
	FQ_CLOSE,	/* close the connection now; last */
	FQ_HANG,	/* never answer: read until the client hangs up; last */
	FQ_HOLD,	/* never answer, never read, never close (as a QEMU stuck
			 * in I/O), until fake_qmp_finish; last */
	FQ_SYNC,	/* block until the test calls fake_qmp_release() */
	FQ_SERVE,	/* answer the next n commands, any name, with {"return": {}};
			 * none may carry an fd */
};

struct fake_step {
	enum fake_op	 op;
	const char	*arg;
	int		 n;	/* FQ_SERVE: how many commands */
};

#define FQ(o, a)		{ .op = (o), .arg = (a) }
#define FQ_N(o, count)		{ .op = (o), .n = (count) }
/* The handshake every well-behaved script starts with. */
#define FQ_HANDSHAKE \
	FQ(FQ_GREET, NULL), FQ(FQ_EXPECT, "qmp_capabilities"), FQ(FQ_RETURN, "{}")

struct fake_qmp;

/* Listen on path (after bind_delay_ms, to test connect retry), accept one
 * client and play steps, which must stay valid until fake_qmp_finish and
 * end with FQ_END, FQ_CLOSE, FQ_HANG, FQ_HOLD or FQ_LONG. */
struct fake_qmp	*fake_qmp_start(const char *path, const struct fake_step *steps,
		    int bind_delay_ms);
/* Wait until the server reaches an FQ_SYNC step; 0, or -1 after 5 s. */
int		 fake_qmp_wait_sync(struct fake_qmp *f);
void		 fake_qmp_release(struct fake_qmp *f);
/* The i-th fd (0-based) an FQ_EXPECT_FD step received, owned by the fake
 * server until fake_qmp_finish; -1 when there is none (yet). */
int		 fake_qmp_fd(struct fake_qmp *f, int i);
/* Join the server thread and free it. Returns 0 when the whole script
 * ran as expected, else -1 with the first mismatch in err. */
int		 fake_qmp_finish(struct fake_qmp *f, char *err, size_t errsz);

#endif
