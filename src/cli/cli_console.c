/* cli_console.c - `cvirt vm console`: the guest's serial port over the
 * manager's websocket, with the local terminal in raw mode. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <civetweb.h>

#include "cli/cli_int.h"
#include "common/tls.h"
#include "common/util.h"

#define CLI_CON_DETACH		0x1d	/* Ctrl-] */
#define CLI_CON_LINGER_MS	1500	/* after stdin EOF, wait for quiet */
#define CLI_CON_LINGER_MAX_MS	5000	/* ... but no longer than this */
#define CLI_CON_CLOSE_WAIT_MS	1000	/* for the server's close reply */

/* Shared between the main thread and civetweb's reader thread. */
struct cli_con {
	struct mg_connection	*conn;
	int			 pipefd[2];	/* reader -> main: closed */
	atomic_int		 closed;
	atomic_int		 got_close;	/* a close frame came */
	atomic_int		 close_code;
	atomic_llong		 last_out_ms;
	char			 reason[124];	/* close frame text */
};

/* Where the websocket is: from the manager URL and the ticket path. */
struct cli_con_target {
	char	host[256];
	int	port;
	int	tls;
	char	path[CLI_PATH_MAX];
};

/* The terminal as it was, for every exit path and for signals. */
static struct termios cli_con_saved;
static int cli_con_raw;
static volatile sig_atomic_t cli_con_sig;

static void
cli_con_onsig(int sig)
{
	cli_con_sig = sig;
}

static void
cli_con_restore(void)
{
	if (cli_con_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &cli_con_saved);
		cli_con_raw = 0;
	}
}

static int
cli_con_rawmode(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO))
		return 0;
	if (tcgetattr(STDIN_FILENO, &cli_con_saved) != 0)
		return -1;
	raw = cli_con_saved;
	cfmakeraw(&raw);
	/* TCSANOW, not TCSAFLUSH: what the user typed while the console
	 * was connecting is kept and sent, not thrown away. */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0)
		return -1;
	cli_con_raw = 1;
	atexit(cli_con_restore);
	return 0;
}

static void
cli_con_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* civetweb's reader thread: guest bytes to stdout, pings answered. */
static int
cli_con_data(struct mg_connection *conn, int bits, char *data, size_t len,
    void *ud)
{
	struct cli_con *con = ud;
	size_t n;

	switch (bits & 0xf) {
	case MG_WEBSOCKET_OPCODE_TEXT:
	case MG_WEBSOCKET_OPCODE_BINARY:
	case MG_WEBSOCKET_OPCODE_CONTINUATION:
		cli_con_write_all(STDOUT_FILENO, data, len);
		atomic_store(&con->last_out_ms, (long long)util_mono_ms());
		return 1;
	case MG_WEBSOCKET_OPCODE_PING:
		mg_websocket_client_write(conn, MG_WEBSOCKET_OPCODE_PONG, data,
		    len);
		return 1;
	case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE:
		if (len >= 2) {
			atomic_store(&con->close_code,
			    ((unsigned char)data[0] << 8) |
			    (unsigned char)data[1]);
			n = len - 2 < sizeof(con->reason) - 1 ? len - 2 :
			    sizeof(con->reason) - 1;
			memcpy(con->reason, data + 2, n);
			con->reason[n] = '\0';
		}
		atomic_store(&con->got_close, 1);
		return 0;
	default:
		return 1;
	}
}

static void
cli_con_close(const struct mg_connection *conn, void *ud)
{
	struct cli_con *con = ud;
	char b = 'x';

	(void)conn;
	atomic_store(&con->closed, 1);
	if (write(con->pipefd[1], &b, 1) < 0)
		return;	/* the main loop also polls con->closed */
}

/* Splits the manager URL and joins its path prefix to the ticket path. */
static int
cli_con_target(const char *url, const char *path, struct cli_con_target *t)
{
	const char *h, *end, *colon, *prefix;
	uint64_t port;
	size_t hl;

	memset(t, 0, sizeof(*t));
	t->tls = strncmp(url, "https://", 8) == 0;
	h = url + (t->tls ? 8 : 7);
	prefix = h + strcspn(h, "/");
	if (h[0] == '[') {			/* [IPv6]:port */
		h++;
		end = strchr(h, ']');
		if (end == NULL || end > prefix)
			return -1;
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(prefix - h));
		end = colon ? colon : prefix;
	}
	hl = (size_t)(end - h);
	if (hl == 0 || hl >= sizeof(t->host))
		return -1;
	memcpy(t->host, h, hl);
	port = t->tls ? 443 : 80;
	if (colon != NULL) {
		char pb[8];

		if ((size_t)(prefix - colon - 1) >= sizeof(pb))
			return -1;
		memcpy(pb, colon + 1, (size_t)(prefix - colon - 1));
		pb[prefix - colon - 1] = '\0';
		if (util_parse_u64(pb, 1, 65535, &port) != 0)
			return -1;
	}
	t->port = (int)port;
	return util_fmt(t->path, sizeof(t->path), "%s%s", prefix, path);
}

/* POST /vms/NAME/console: the one-use ticket's websocket path. */
static int
cli_con_ticket(struct cli_ctx *c, const char *name, struct cli_con_target *t)
{
	json_t *r = NULL;
	const char *path;
	char api[160];
	int rc = -1;

	snprintf(api, sizeof(api), "/vms/%s/console", name);
	if (cli_api(c, "POST", api, NULL, &r) != 0)
		goto cleanup;
	path = cli_json_str(r, "path", NULL);
	if (path == NULL || path[0] != '/' || strpbrk(path, " \r\n") != NULL) {
		cli_err("unexpected reply from the manager for vm %s's console",
		    name);
		goto cleanup;
	}
	if (cli_con_target(c->url, path, t) != 0) {
		cli_err("cannot use manager URL %s for the console", c->url);
		goto cleanup;
	}
	rc = 0;
cleanup:
	json_decref(r);
	return rc;
}

/* Opens the websocket; over https the server's certificate is checked
 * against --ca-file, else the system's CA bundle (when there is one). */
static struct mg_connection *
cli_con_dial(struct cli_ctx *c, struct cli_con_target *t, struct cli_con *con,
    char *ebuf, size_t esize)
{
	struct tls_tunnel_config tc;
	int port;

	ebuf[0] = '\0';
	if (!t->tls)
		return mg_connect_websocket_client(t->host, t->port, 0, ebuf,
		    esize, t->path, NULL, cli_con_data, cli_con_close, con);
	/* Debian's civetweb cannot do TLS with OpenSSL 3: our tunnel checks
	 * the certificate and civetweb speaks plain to it on loopback. */
	memset(&tc, 0, sizeof(tc));
	tc.host = t->host;
	tc.port = t->port;
	tc.ca_file = c->ca_file;
	if (tls_tunnel_open(&tc, &port, ebuf, esize) < 0)
		return NULL;
	return mg_connect_websocket_client("127.0.0.1", port, 0, ebuf, esize,
	    t->path, NULL, cli_con_data, cli_con_close, con);
}

/* Sends n bytes from stdin; stops at Ctrl-]. 1 on detach, -1 on error. */
static int
cli_con_send(struct cli_con *con, const char *buf, size_t n)
{
	const char *d = memchr(buf, CLI_CON_DETACH, n);
	size_t len = d ? (size_t)(d - buf) : n;

	if (len > 0 && mg_websocket_client_write(con->conn,
	    MG_WEBSOCKET_OPCODE_BINARY, buf, len) <= 0)
		return -1;
	return d ? 1 : 0;
}

enum cli_con_end { CLI_CON_DETACHED, CLI_CON_CLOSED, CLI_CON_LOST };

/* Copies stdin to the websocket until detach, close or a signal. */
static enum cli_con_end
cli_con_loop(struct cli_con *con)
{
	struct pollfd pfd[2];
	char buf[4096];
	int64_t eof_ms = -1, now, quiet;
	ssize_t n;
	int r;

	for (;;) {
		if (cli_con_sig)
			return CLI_CON_DETACHED;
		if (atomic_load(&con->closed))
			return CLI_CON_CLOSED;
		pfd[0].fd = eof_ms < 0 ? STDIN_FILENO : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = con->pipefd[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, 200) < 0 && errno != EINTR)
			return CLI_CON_LOST;
		now = util_mono_ms();
		if (eof_ms >= 0) {
			quiet = atomic_load(&con->last_out_ms);
			if (now - (quiet > eof_ms ? quiet : eof_ms) >=
			    CLI_CON_LINGER_MS || now - eof_ms >=
			    CLI_CON_LINGER_MAX_MS)
				return CLI_CON_DETACHED;
			continue;
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if ((n = read(STDIN_FILENO, buf, sizeof(buf))) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return CLI_CON_LOST;
		}
		if (n == 0) {
			eof_ms = now;
			continue;
		}
		if ((r = cli_con_send(con, buf, (size_t)n)) != 0)
			return r > 0 ? CLI_CON_DETACHED :
			    (atomic_load(&con->closed) ? CLI_CON_CLOSED :
			    CLI_CON_LOST);
	}
}

/* Says goodbye and waits briefly for the server's close so civetweb's
 * reader thread is not left waiting on its receive timeout. */
static void
cli_con_hangup(struct cli_con *con)
{
	struct pollfd pfd = { con->pipefd[0], POLLIN, 0 };
	static const char bye[2] = { 0x03, (char)0xe8 };	/* 1000 */

	if (!atomic_load(&con->closed) &&
	    mg_websocket_client_write(con->conn,
	    MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, bye, sizeof(bye)) > 0)
		poll(&pfd, 1, CLI_CON_CLOSE_WAIT_MS);
	mg_close_connection(con->conn);
	con->conn = NULL;
}

/* After the server closed: a stopped VM is a normal end. */
static int
cli_con_closed(struct cli_ctx *c, struct cli_con *con, const char *name)
{
	char path[160], err[256], reason[128];
	json_t *vm = NULL;
	const char *st;
	int code = atomic_load(&con->close_code), rc = CLI_EXIT_FAIL;

	snprintf(path, sizeof(path), "/vms/%s", name);
	cli_out_clean(con->reason, reason, sizeof(reason));
	st = cli_api_try(c, "GET", path, NULL, &vm, err, sizeof(err)) == 0 ?
	    cli_json_str(vm, "state", "") : "";
	if (strcmp(st, "stopped") == 0 || strcmp(st, "stopping") == 0 ||
	    strcmp(st, "failed") == 0) {
		fprintf(stderr, "Console closed: vm %s is %s.\n", name, st);
		rc = CLI_EXIT_OK;
	} else if (atomic_load(&con->got_close) &&
	    (code == 0 || code == 1000 || code == 1001)) {
		fprintf(stderr, "Console closed by the manager%s%s.\n",
		    reason[0] ? ": " : "", reason);
		rc = CLI_EXIT_OK;
	} else {
		cli_err("the console connection closed unexpectedly%s%s",
		    reason[0] ? ": " : "", reason);
	}
	json_decref(vm);
	return rc;
}

/* Raw terminal, signals, the copy loop; restores everything it changed. */
static int
cli_con_session(struct cli_ctx *c, struct cli_con *con, const char *name)
{
	struct sigaction sa, old[4];
	static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	enum cli_con_end end;
	int i, rc = CLI_EXIT_FAIL;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli_con_onsig;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	if (cli_con_rawmode() != 0) {
		cli_err("cannot put the terminal in raw mode: %s",
		    strerror(errno));
		goto cleanup;
	}
	/* Raw already: what is typed from here on goes to the guest. */
	fprintf(stderr, "Connected to %s's serial console (Ctrl-] to "
	    "detach)%s", name, cli_con_raw ? "\r\n" : "\n");
	end = cli_con_loop(con);
	cli_con_restore();
	if (end == CLI_CON_DETACHED) {
		if (isatty(STDERR_FILENO))
			fputc('\n', stderr);
		rc = CLI_EXIT_OK;
	} else if (end == CLI_CON_CLOSED) {
		rc = cli_con_closed(c, con, name);
	} else {
		cli_err("lost the console connection to the manager");
	}
cleanup:
	cli_con_restore();
	for (i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	return rc;
}

int
cli_vm_console(struct cli_ctx *c, int argc, char **argv)
{
	struct cli_con con;
	struct cli_con_target t;
	char *pos[1], ebuf[256];
	unsigned feats = MG_FEATURES_WEBSOCKET | MG_FEATURES_TLS;
	int rc, inited = 0;

	memset(&con, 0, sizeof(con));
	con.pipefd[0] = con.pipefd[1] = -1;
	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	rc = CLI_EXIT_FAIL;
	if (cli_check_name("VM", pos[0]) != 0 ||
	    cli_con_ticket(c, pos[0], &t) != 0)
		goto cleanup;
	inited = mg_init_library(feats) != 0;
	if (!inited || (mg_check_feature(MG_FEATURES_WEBSOCKET) == 0)) {
		cli_err("this cvirt was built without websocket support");
		goto cleanup;
	}
	if (pipe(con.pipefd) != 0) {
		cli_err("cannot create a pipe: %s", strerror(errno));
		goto cleanup;
	}
	con.conn = cli_con_dial(c, &t, &con, ebuf, sizeof(ebuf));
	if (con.conn == NULL) {
		cli_err("cannot open vm %s's console at %s: %s", pos[0],
		    c->url, ebuf[0] ? ebuf : "connection failed");
		goto cleanup;
	}
	rc = cli_con_session(c, &con, pos[0]);
cleanup:
	if (con.conn != NULL)
		cli_con_hangup(&con);
	if (con.pipefd[0] >= 0) {
		close(con.pipefd[0]);
		close(con.pipefd[1]);
	}
	if (inited)
		mg_exit_library();
	return rc;
}
