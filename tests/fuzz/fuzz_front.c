/* fuzz_front.c - libFuzzer target: the front's request reader
 * (src/common/tls_request.c tls_request: the head by its deadline, the
 * strict head check, the request's class, Expect, the body plan and the
 * body), fed what a plain client sends on a connection it then shuts.
 *
 * Input: one mode byte, then the client's bytes. Mode bit 0: the class's
 * backend streams bodies (as HTTPD_STREAM routes' does); else the class
 * is httpd_classify's over the manager's route table (src/common/httpd.c;
 * every class but bulk reads bodies ahead, as httpd_tls_start sets up).
 *
 * Checked beyond the sanitizers, on what the front would relay: its head
 * ends at the first blank line civetweb would see (a bare "\n\n" or
 * "\r\n\r\n", get_http_header_len in civetweb 1.15), so no byte of a body
 * is read as head nor of the head as body; with a body read ahead, the
 * front has read at least as much of it as civetweb will read by its
 * Content-Length (its first such header, blanks before the colon
 * dropped, the value by strtoll; what follows, read in one go, civetweb
 * leaves: one request per connection), and civetweb sees no
 * Transfer-Encoding to read a chunked body by, nor, with a body, an
 * Expect header (the front answered it). What
 * the client got back is at most a "100 Continue" and, when the request
 * was refused, one answer of the statuses the front gives (400, 408, 411,
 * 413, 417, 431, 503) with Connection: close.
 * A head civetweb would read otherwise, with a body the front had not
 * read, made civetweb's worker wait for that body as long as the client
 * took (tls_head_valid). */
#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/httpd.h"
#include "common/tls_int.h"
#include "common/util.h"
#include "manager/manager_int.h"

#define FUZZ_REPLY_MAX	8192

static struct httpd_config fuzz_cfg;
static struct tls_front fuzz_t;
static FILE *fuzz_err;	/* stderr, kept open past -close_fd_mask=2 */
static int fuzz_stream;	/* this input's mode bit 0 */

static void
fuzz_fail(const char *what, const char *buf, size_t len)
{
	fprintf(fuzz_err, "fuzz_front: %s: %.*s\n", what,
	    (int)(len < 600 ? len : 600), buf);
	abort();
}

/* Backend 0 reads bodies ahead, backend 1 streams them. */
static int
fuzz_classify(void *arg, const char *method, const char *target,
    const char *head)
{
	(void)arg;
	if (fuzz_stream)
		return 1;
	return httpd_classify(&fuzz_cfg, method, target, head) == HTTPD_BULK;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((fuzz_err = fdopen(dup(2), "w")) == NULL)
		abort();
	setvbuf(fuzz_err, NULL, _IONBF, 0);
	fuzz_cfg.routes = api_routes_join(&fuzz_cfg.nroutes);
	fuzz_cfg.agent_prefix = "/api/v1/agent/";
	if (fuzz_cfg.routes == NULL)
		abort();
	fuzz_t.backend[0].read_ahead = 1;
	fuzz_t.backend[1].read_ahead = 0;
	fuzz_t.nbackends = 2;
	fuzz_t.classify = fuzz_classify;
	fuzz_t.lfd = -1;
	pthread_mutex_init(&fuzz_t.lock, NULL);
	pthread_cond_init(&fuzz_t.cond, NULL);
	if (tls_limits_init(&fuzz_t.lim, 8, 4, 2) < 0 ||
	    (fuzz_t.fds = calloc((size_t)fuzz_t.lim.nslots,
	    sizeof(int))) == NULL)
		abort();
	return 0;
}

/* civetweb 1.15's end of head in buf: past the first "\n\n" or
 * "\r\n\r\n"; -1 at a control byte (civetweb answers 400), 0 none. */
static long
fuzz_cw_headlen(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c < 128 && c != '\r' && c != '\n' && !isprint(c))
			return -1;
		if (i + 1 < len && buf[i] == '\n' && buf[i + 1] == '\n')
			return (long)i + 2;
		if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return (long)i + 4;
	}
	return 0;
}

/* The value civetweb 1.15 gives header name in head (hlen bytes): its
 * first line "NAME[ ]*:[ \t]*VALUE" after the request line, lines ending
 * at a CR or LF; NULL when absent (or the head is one it refuses). The
 * value is copied to out. */
static const char *
fuzz_cw_header(const char *head, size_t hlen, const char *name, char *out,
    size_t outsz)
{
	const char *p = memchr(head, '\n', hlen), *end = head + hlen, *dp, *v;
	size_t n, nl = strlen(name);

	while (p != NULL && ++p < end && *p != '\r' && *p != '\n') {
		for (dp = p; dp < end && *dp != ':' && *dp >= 33 && *dp <= 126;
		    dp++)
			;
		n = (size_t)(dp - p);
		while (dp < end && *dp == ' ')
			dp++;
		if (dp >= end || *dp != ':' || n == 0)
			return NULL;
		for (v = dp + 1; v < end && (*v == ' ' || *v == '\t'); v++)
			;
		for (dp = v; dp < end && *dp != '\r' && *dp != '\n'; dp++)
			;
		if (n == nl && strncasecmp(p, name, n) == 0) {
			n = (size_t)(dp - v) < outsz - 1 ? (size_t)(dp - v) :
			    outsz - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return out;
		}
		p = memchr(dp, '\n', (size_t)(end - dp));
	}
	return NULL;
}

/* What the front relays, as civetweb would read it. */
static void
fuzz_check_relayed(const struct tls_request *q, int read_ahead)
{
	char v[64], *e;
	long hl;
	long long cl = 0;

	if (q->headlen < 4 || q->headlen > q->len ||
	    memcmp(q->buf + q->headlen - 4, "\r\n\r\n", 4) != 0)
		fuzz_fail("head does not end in a blank line", q->buf, q->len);
	hl = fuzz_cw_headlen(q->buf, q->len);
	if (hl < 0)
		return;	/* civetweb refuses it: no worker waits */
	if ((size_t)hl != q->headlen)
		fuzz_fail("civetweb's head ends elsewhere", q->buf, q->len);
	if (!read_ahead)
		return;
	if (fuzz_cw_header(q->buf, q->headlen, "Transfer-Encoding", v,
	    sizeof(v)) && strcasecmp(v, "identity") != 0)
		fuzz_fail("Transfer-Encoding relayed", q->buf, q->len);
	if (fuzz_cw_header(q->buf, q->headlen, "Content-Length", v,
	    sizeof(v))) {
		cl = strtoll(v, &e, 10);
		if (e == v || cl < 0)
			return;	/* civetweb answers 411 */
	}
	/* More may follow it (read in one go with the rest): civetweb,
	 * one request per connection, leaves that. */
	if ((size_t)cl > q->len - q->headlen)
		fuzz_fail("civetweb would wait for body the front has not read",
		    q->buf, q->len);
	/* With no body, an Expect header is left as it came: nothing
	 * waits on it. */
	if (cl > 0 && fuzz_cw_header(q->buf, q->headlen, "Expect", v,
	    sizeof(v)))
		fuzz_fail("Expect relayed with a body", q->buf, q->len);
}

/* What the client got: at most "100 Continue", then, when refused, one
 * of the front's answers. */
static void
fuzz_check_reply(const char *r, size_t n, int refused)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	static const int ok[] = { 400, 408, 411, 413, 417, 431, 503 };
	size_t i;
	int status;

	if (n >= sizeof(cont) - 1 && memcmp(r, cont, sizeof(cont) - 1) == 0) {
		r += sizeof(cont) - 1;
		n -= sizeof(cont) - 1;
	}
	if (n == 0)
		return;	/* at EOF, or displaced: no answer */
	if (!refused)
		fuzz_fail("an answer to a request relayed", r, n);
	if (n < 13 || memcmp(r, "HTTP/1.1 ", 9) != 0 ||
	    sscanf(r + 9, "%3d", &status) != 1)
		fuzz_fail("not one answer", r, n);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]) && ok[i] != status; i++)
		;
	if (i == sizeof(ok) / sizeof(ok[0]) ||
	    memmem(r, n, "\r\nConnection: close\r\n", 21) == NULL ||
	    memmem(r + 9, n - 9, "HTTP/1.1 ", 9) != NULL)
		fuzz_fail("not one of the front's answers", r, n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_request q;
	struct tls_conn c;
	char reply[FUZZ_REPLY_MAX];
	size_t got = 0, off = 0;
	ssize_t w;
	int sv[2], victim, rc;

	if (size < 1)
		return 0;
	fuzz_stream = data[0] & 1;
	data++;
	size--;
	/* Within the socket's buffer: the client writes it all first. */
	if (size > TLS_HEAD_MAX + 4096 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	while (off < size && (w = write(sv[0], data + off, size - off)) > 0)
		off += (size_t)w;
	shutdown(sv[0], SHUT_WR);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	memset(&c, 0, sizeof(c));
	memset(&q, 0, sizeof(q));
	c.t = &fuzz_t;
	c.fd = sv[1];
	c.accepted = util_mono_ms();
	snprintf(c.remote, sizeof(c.remote), "127.0.0.1");
	pthread_mutex_lock(&fuzz_t.lock);
	c.slot = tls_admit(&fuzz_t.lim, "127.0.0.1", c.accepted, &victim);
	if (c.slot < 0 || victim >= 0)
		abort();
	fuzz_t.fds[c.slot] = sv[1];
	pthread_mutex_unlock(&fuzz_t.lock);
	rc = tls_request(&fuzz_t, &c, NULL, &q, c.accepted + TLS_HEAD_MS);
	if (rc == 0)
		fuzz_check_relayed(&q, fuzz_t.backend[q.backend].read_ahead);
	/* The front's side is done (as when it relays or closes). */
	shutdown(sv[1], SHUT_WR);
	while (got < sizeof(reply) &&
	    (w = read(sv[0], reply + got, sizeof(reply) - got)) > 0)
		got += (size_t)w;
	fuzz_check_reply(reply, got, rc < 0);
	pthread_mutex_lock(&fuzz_t.lock);
	tls_release(&fuzz_t.lim, c.slot);
	fuzz_t.fds[c.slot] = -1;
	pthread_mutex_unlock(&fuzz_t.lock);
	free(q.buf);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
