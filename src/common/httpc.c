/* httpc.c - blocking HTTP/1.1 requests with JSON bodies: one connection
 * per request, TLS through OpenSSL (tls.c). Not libcurl: every Debian
 * flavour of it loads GnuTLS, Kerberos, LDAP, SSH and RTMP libraries and
 * initialises OpenSSL in each process, ~6 MiB of the agent's resident
 * memory before its first request (docs/performance.md). Our peers are
 * cvirt's own servers: Content-Length or chunked bodies, no redirects. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/httpc.h"
#include "common/tls.h"

#define HTTPC_HEAD_MAX		(64 * 1024)	/* status line + headers */
#define HTTPC_CONNECT_MS	5000

static const char *httpc_cafile;
static const char *httpc_cert, *httpc_key;	/* client certificate */

/* One request's connection. */
struct httpc_conn {
	int		 fd;
	SSL		*ssl;		/* NULL: plain */
	int64_t		 deadline;	/* monotonic ms */
	char		*buf;		/* what came back, NUL-terminated */
	size_t		 len, cap;
};

void
httpc_set_cafile(const char *path)
{
	httpc_cafile = path;
}

void
httpc_set_client_cert(const char *cert, const char *key)
{
	httpc_cert = cert;
	httpc_key = key;
}

static int64_t
httpc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bounds the next blocking send/recv (and TLS step) by the deadline. */
static int
httpc_arm(struct httpc_conn *c)
{
	int64_t left = c->deadline - httpc_now();
	struct timeval tv;

	if (left <= 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -1;
	return 0;
}

/* scheme://host[:port][/path]; host may be an [IPv6] literal. */
static int
httpc_parse_url(const char *url, int *tls, char *host, size_t hostsz,
    int *port, const char **path)
{
	const char *p, *end, *colon;
	size_t n;
	long v;
	char *e;

	if (strncmp(url, "http://", 7) == 0) {
		*tls = 0;
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		*tls = 1;
		p = url + 8;
	} else
		return -1;
	end = p + strcspn(p, "/?#");
	*path = *end == '/' ? end : "/";
	if (*end != '\0' && *end != '/')
		return -1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL)
			return -1;
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		if (rb + 1 != end && colon == NULL)
			return -1;
		n = (size_t)(rb - p - 1);
		p++;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		n = (size_t)((colon ? colon : end) - p);
	}
	if (n == 0 || n >= hostsz)
		return -1;
	memcpy(host, p, n);
	host[n] = '\0';
	*port = *tls ? 443 : 80;
	if (colon) {
		errno = 0;
		v = strtol(colon + 1, &e, 10);
		if (errno != 0 || e != end || e == colon + 1 || v < 1 ||
		    v > 65535)
			return -1;
		*port = (int)v;
	}
	return 0;
}

/* A connected socket within HTTPC_CONNECT_MS (or the deadline). */
static int
httpc_connect(struct httpc_conn *c, const char *host, int port, char *err,
    size_t errsz)
{
	struct addrinfo hints, *ai = NULL, *a;
	char ports[8];
	int64_t cdl = httpc_now() + HTTPC_CONNECT_MS;
	int fd = -1, e = 0, soerr;
	socklen_t sl = sizeof(soerr);

	if (cdl > c->deadline)
		cdl = c->deadline;
	snprintf(ports, sizeof(ports), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, ports, &hints, &ai) != 0) {
		snprintf(err, errsz, "cannot resolve %.100s", host);
		return -1;
	}
	for (a = ai; a != NULL && fd < 0; a = a->ai_next) {
		struct pollfd p;
		int64_t left;

		if ((fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0)) < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			e = errno;
			p.fd = fd;
			p.events = POLLOUT;
			left = cdl - httpc_now();
			if (e != EINPROGRESS || left <= 0 ||
			    poll(&p, 1, (int)left) != 1)
				e = e == EINPROGRESS ? ETIMEDOUT : e;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &sl) < 0 || soerr != 0)
				e = soerr ? soerr : errno;
			else
				e = 0;
			if (e != 0) {
				close(fd);
				fd = -1;
			}
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errsz, "cannot connect to %.100s port %d: %s", host,
		    port, strerror(e ? e : ECONNREFUSED));
		return -1;
	}
	/* Blocking from here, each step bounded by httpc_arm. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		close(fd);
		snprintf(err, errsz, "cannot connect to %.100s: %s", host,
		    strerror(errno));
		return -1;
	}
	c->fd = fd;
	return 0;
}

/* SSL_write without dying of SIGPIPE when the server has gone (the CLI
 * does not ignore the signal; send() gets MSG_NOSIGNAL, OpenSSL cannot):
 * blocked for this thread, a pending one consumed before unblocking. */
static ssize_t
httpc_ssl_write(SSL *ssl, const char *buf, size_t len)
{
	sigset_t pipe, old, pending;
	struct timespec zero = { 0, 0 };
	int r, e, had;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	sigpending(&pending);
	had = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &old);
	errno = 0;
	r = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	e = r > 0 ? 0 : errno ? errno : EPIPE;
	if (e == EPIPE && !had)
		(void)sigtimedwait(&pipe, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e == EAGAIN ? ETIMEDOUT : e;
	return r > 0 ? r : -1;
}

static int
httpc_send(struct httpc_conn *c, const char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		if (httpc_arm(c) < 0)
			return -1;
		if (c->ssl)
			n = httpc_ssl_write(c->ssl, buf + off, len - off);
		else
			n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Reads more into c->buf; 1 when some came, 0 at the end, -1 on error. */
static int
httpc_recv(struct httpc_conn *c, size_t limit)
{
	ssize_t n;
	char *nb;

	if (c->len >= limit) {
		errno = EMSGSIZE;
		return -1;
	}
	if (c->cap - c->len < 16384 + 1) {
		size_t ncap = c->cap ? c->cap * 2 : 32768;

		if ((nb = realloc(c->buf, ncap)) == NULL)
			return -1;
		c->buf = nb;
		c->cap = ncap;
	}
	for (;;) {
		if (httpc_arm(c) < 0)
			return -1;
		errno = 0;
		if (c->ssl) {
			int r = SSL_read(c->ssl, c->buf + c->len,
			    (int)(c->cap - c->len - 1));

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_ZERO_RETURN ||
				    (e == SSL_ERROR_SYSCALL && errno == 0))
					return 0;
				if (errno == 0)
					errno = EPROTO;
				if (errno == EAGAIN)
					errno = ETIMEDOUT;
				return -1;
			}
			n = r;
		} else
			n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			errno = ETIMEDOUT;
		break;
	}
	if (n <= 0)
		return n < 0 ? -1 : 0;
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	return 1;
}

/* The value of header name in head (CRLF lines), or NULL. */
static const char *
httpc_header(const char *head, const char *name)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p != NULL && p[2] != '\r') {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
			return p + nl + 1 + strspn(p + nl + 1, " \t");
		p = strstr(p, "\r\n");
	}
	return NULL;
}

/* Decodes a complete chunked body in place; its length, or -1. */
static long long
httpc_unchunk(char *b, size_t len)
{
	size_t in = 0, out = 0;
	unsigned long long sz;
	char *e;

	for (;;) {
		char *crlf = memmem(b + in, len - in, "\r\n", 2);

		if (crlf == NULL)
			return -1;
		errno = 0;
		sz = strtoull(b + in, &e, 16);
		if (errno != 0 || e == b + in || sz > HTTPC_RESP_MAX)
			return -1;
		in = (size_t)(crlf - b) + 2;
		if (sz == 0)
			return (long long)out;
		if (len - in < sz + 2)
			return -1;
		memmove(b + out, b + in, sz);
		out += sz;
		in += sz + 2;
	}
}

/* Reads the whole response; 0 with status, body offset and length. */
static int
httpc_read_response(struct httpc_conn *c, long *status, size_t *body,
    size_t *blen, char *err, size_t errsz)
{
	const char *cl, *te;
	char *eoh = NULL, *e;
	long long want = -1, n;
	int r, chunked = 0;

	while (eoh == NULL) {
		if ((r = httpc_recv(c, HTTPC_HEAD_MAX)) <= 0) {
			snprintf(err, errsz, r == 0 ? "the server closed the "
			    "connection without an answer" : "no answer: %s",
			    strerror(errno));
			return -1;
		}
		eoh = strstr(c->buf, "\r\n\r\n");
	}
	if (sscanf(c->buf, "HTTP/1.%*1[01] %3ld", status) != 1 ||
	    *status < 100 || *status > 599) {
		snprintf(err, errsz, "not an HTTP answer");
		return -1;
	}
	*body = (size_t)(eoh + 4 - c->buf);
	eoh[2] = '\0';		/* headers end here for httpc_header */
	if ((te = httpc_header(c->buf, "Transfer-Encoding")) != NULL &&
	    strncasecmp(te, "chunked", 7) == 0)
		chunked = 1;
	else if ((cl = httpc_header(c->buf, "Content-Length")) != NULL) {
		errno = 0;
		want = strtoll(cl, &e, 10);
		if (errno != 0 || e == cl || want < 0 ||
		    want > HTTPC_RESP_MAX) {
			snprintf(err, errsz, "invalid Content-Length");
			return -1;
		}
	}
	eoh[2] = '\r';
	/* Connection: close was asked for: the end of the body is the end
	 * of the stream, or earlier when its length is known. */
	while (want < 0 || (long long)(c->len - *body) < want) {
		if (chunked && c->len - *body >= 5 &&
		    memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5) == 0)
			break;
		if ((r = httpc_recv(c, *body + HTTPC_RESP_MAX)) < 0) {
			snprintf(err, errsz, "incomplete answer: %s",
			    strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
	}
	n = (long long)(c->len - *body);
	if (want >= 0 && n < want) {
		snprintf(err, errsz, "incomplete answer");
		return -1;
	}
	if (want >= 0)
		n = want;
	if (chunked && (n = httpc_unchunk(c->buf + *body, (size_t)n)) < 0) {
		snprintf(err, errsz, "invalid chunked answer");
		return -1;
	}
	*blen = (size_t)n;
	c->buf[*body + *blen] = '\0';
	return 0;
}

/* Request line and headers (malloc'd), or NULL. */
static char *
httpc_head(const char *method, const char *host, int port, int tls,
    const char *path, const char *token, size_t blen, int has_body)
{
	char *h = NULL, hostport[300], auth[1024] = "";
	int v6 = strchr(host, ':') != NULL;

	if (port == (tls ? 443 : 80))
		snprintf(hostport, sizeof(hostport), v6 ? "[%s]" : "%s", host);
	else
		snprintf(hostport, sizeof(hostport), v6 ? "[%s]:%d" : "%s:%d",
		    host, port);
	if (token && snprintf(auth, sizeof(auth), "Authorization: Bearer "
	    "%s\r\n", token) >= (int)sizeof(auth))
		return NULL;
	if (asprintf(&h, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cvirt\r\n"
	    "Accept: application/json\r\nConnection: close\r\n%s%s"
	    "Content-Length: %zu\r\n\r\n", method, path, hostport, auth,
	    has_body ? "Content-Type: application/json\r\n" : "", blen) < 0)
		return NULL;
	return h;
}

/* The TLS session on c's socket, the server checked (tls.h). */
static int
httpc_tls(struct httpc_conn *c, const char *host, int port, char *err,
    size_t errsz)
{
	struct tls_tunnel_config tc;

	memset(&tc, 0, sizeof(tc));
	tc.host = host;
	tc.port = port;
	tc.ca_file = httpc_cafile;
	tc.cert = httpc_cert;
	tc.key = httpc_key;
	err[0] = '\0';
	if (httpc_arm(c) < 0 || (c->ssl = tls_client_open(c->fd, &tc, err,
	    errsz)) == NULL) {
		if (err[0] == '\0')
			snprintf(err, errsz, "TLS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Hands the body (at off in c's buffer) to resp, with its JSON and, for
 * a 4xx/5xx, the server's error. */
static void
httpc_take_body(struct httpc_conn *c, size_t off, size_t blen,
    struct httpc_resp *resp)
{
	json_t *e;

	if (blen > 0) {
		memmove(c->buf, c->buf + off, blen + 1);
		resp->body = c->buf;
		resp->len = blen;
		c->buf = NULL;
		resp->json = json_loadb(resp->body, resp->len, 0, NULL);
	}
	if (resp->status < 400)
		return;
	e = json_object_get(resp->json, "error");
	if (json_is_string(e))
		snprintf(resp->err, sizeof(resp->err), "%s", json_string_value(e));
	else if (resp->body)
		snprintf(resp->err, sizeof(resp->err), "unexpected reply");
	else
		snprintf(resp->err, sizeof(resp->err), "HTTP status %ld",
		    resp->status);
}

int
httpc_request(const char *method, const char *url, const char *token,
    json_t *body, long timeout_ms, struct httpc_resp *resp)
{
	struct httpc_conn c = { .fd = -1 };
	char host[256], *payload = NULL, *head = NULL;
	const char *path;
	size_t off = 0, blen = 0, plen;
	int tls, port, sent_errno = 0, rc = -1;

	memset(resp, 0, sizeof(*resp));
	c.deadline = httpc_now() + (timeout_ms > 0 ? timeout_ms : 30000);
	if (strpbrk(method, " \r\n") != NULL || (token && strpbrk(token,
	    "\r\n") != NULL) || httpc_parse_url(url, &tls, host, sizeof(host),
	    &port, &path) < 0 || strpbrk(path, " \r\n") != NULL) {
		snprintf(resp->err, sizeof(resp->err), "invalid URL %s", url);
		goto cleanup;
	}
	if (body && (payload = json_dumps(body, JSON_COMPACT)) == NULL) {
		snprintf(resp->err, sizeof(resp->err), "cannot encode JSON");
		goto cleanup;
	}
	plen = payload ? strlen(payload) : 0;
	if ((head = httpc_head(method, host, port, tls, path, token, plen,
	    payload != NULL)) == NULL) {
		snprintf(resp->err, sizeof(resp->err), "out of memory");
		goto cleanup;
	}
	if (httpc_connect(&c, host, port, resp->err, sizeof(resp->err)) < 0)
		goto cleanup;
	if (tls && httpc_tls(&c, host, port, resp->err,
	    sizeof(resp->err)) < 0)
		goto cleanup;
	if (httpc_send(&c, head, strlen(head)) < 0 ||
	    (plen && httpc_send(&c, payload, plen) < 0))
		sent_errno = errno ? errno : EPIPE;
	/* Even when sending failed: a server may refuse (413) and close
	 * before it has read everything; its answer is what matters. */
	if (httpc_read_response(&c, &resp->status, &off, &blen, resp->err,
	    sizeof(resp->err)) < 0) {
		resp->status = 0;
		if (sent_errno)
			snprintf(resp->err, sizeof(resp->err), "cannot send the "
			    "request: %s", strerror(sent_errno));
		goto cleanup;
	}
	httpc_take_body(&c, off, blen, resp);
	rc = 0;
cleanup:
	tls_client_close(c.ssl);
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	free(head);
	free(payload);
	return rc;
}

void
httpc_resp_free(struct httpc_resp *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	json_decref(resp->json);
	resp->body = NULL;
	resp->json = NULL;
}
