/* httpc.c - blocking HTTP/1.1 requests with JSON bodies: one connection
 * per request, TLS through OpenSSL (tls.c), URLs and answers parsed by
 * http-parser (nodejs/http-parser, Debian's libhttp-parser). Not libcurl:
 * every Debian flavour of it loads GnuTLS, Kerberos, LDAP, SSH and RTMP
 * libraries and initialises OpenSSL in each process, ~6 MiB of the agent's
 * resident memory before its first request (docs/performance.md). Our
 * peers are cvirt's own servers: no redirects, no keep-alive. */
#include <arpa/inet.h>
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

#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/httpc.h"
#include "common/tls.h"

#define HTTPC_CONNECT_MS	5000

static const char *httpc_cafile;
static const char *httpc_cert, *httpc_key;	/* client certificate */

/* One request's connection and its answer as http-parser reads it. */
struct httpc_conn {
	const struct httpc_opts *opts;	/* never NULL */
	int		 fd;
	SSL		*ssl;		/* NULL: plain */
	int64_t		 deadline;	/* monotonic ms */
	char		*body;		/* the answer's body, NUL-terminated */
	size_t		 len, cap;
	int		 done;		/* the whole answer is in */
	int		 too_big;	/* body over HTTPC_RESP_MAX */
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

/* http[s]://host[:port][/path][?query]; host may be an [IPv6] literal.
 * path points into url (path and query; "/" when absent). */
static int
httpc_parse_url(const char *url, int *tls, char *host, size_t hostsz,
    int *port, const char **path)
{
	struct http_parser_url u;
	const char *scheme;
	size_t n, slen;

	http_parser_url_init(&u);
	if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)) ||
	    (u.field_set & ((1 << UF_USERINFO) | (1 << UF_FRAGMENT))))
		return -1;
	scheme = url + u.field_data[UF_SCHEMA].off;
	slen = u.field_data[UF_SCHEMA].len;
	if (slen == 4 && strncasecmp(scheme, "http", 4) == 0)
		*tls = 0;
	else if (slen == 5 && strncasecmp(scheme, "https", 5) == 0)
		*tls = 1;
	else
		return -1;
	n = u.field_data[UF_HOST].len;
	if (n == 0 || n >= hostsz)
		return -1;
	memcpy(host, url + u.field_data[UF_HOST].off, n);
	host[n] = '\0';
	*port = (u.field_set & (1 << UF_PORT)) ? u.port : (*tls ? 443 : 80);
	if (*port == 0)
		return -1;
	if (u.field_set & (1 << UF_PATH))
		*path = url + u.field_data[UF_PATH].off;
	else if (u.field_set & (1 << UF_QUERY))
		return -1;	/* "http://h?q": no path to put it on */
	else
		*path = "/";
	return 0;
}

/* Binds fd (of family) to the numeric source address; 0, or -1 when
 * that address is of another family or cannot be bound. */
static int
httpc_bind(int fd, int family, const char *source)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET && inet_pton(AF_INET, source, &s4->sin_addr) == 1)
		return bind(fd, (struct sockaddr *)s4, sizeof(*s4));
	if (family == AF_INET6 && inet_pton(AF_INET6, source,
	    &s6->sin6_addr) == 1)
		return bind(fd, (struct sockaddr *)s6, sizeof(*s6));
	errno = EAFNOSUPPORT;
	return -1;
}

/* A connected socket within HTTPC_CONNECT_MS (or the deadline), from
 * the options' source address when one is given. */
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
		if (c->opts->source && httpc_bind(fd, a->ai_family,
		    c->opts->source) < 0) {
			e = errno;
			close(fd);
			fd = -1;
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

/* Up to bufsz bytes of the answer; > 0 read, 0 at the end, -1 on error. */
static ssize_t
httpc_recv(struct httpc_conn *c, char *buf, size_t bufsz)
{
	ssize_t n;

	for (;;) {
		if (httpc_arm(c) < 0)
			return -1;
		errno = 0;
		if (c->ssl) {
			int r = SSL_read(c->ssl, buf, (int)bufsz);

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
			return r;
		}
		n = recv(c->fd, buf, bufsz, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			errno = ETIMEDOUT;
		return n;
	}
}

/* http-parser callbacks: the body into c->body; the end of the answer. */
static int
httpc_on_body(http_parser *p, const char *at, size_t len)
{
	struct httpc_conn *c = p->data;
	size_t ncap;
	char *nb;

	if (len > HTTPC_RESP_MAX - c->len) {
		c->too_big = 1;
		return -1;
	}
	if (c->cap - c->len < len + 1) {
		ncap = c->cap ? c->cap : 16384;
		while (ncap - c->len < len + 1)
			ncap *= 2;
		if ((nb = realloc(c->body, ncap)) == NULL)
			return -1;
		c->body = nb;
		c->cap = ncap;
	}
	memcpy(c->body + c->len, at, len);
	c->len += len;
	c->body[c->len] = '\0';
	return 0;
}

/* One answer per connection: whatever follows it is not read. */
static int
httpc_on_complete(http_parser *p)
{
	((struct httpc_conn *)p->data)->done = 1;
	http_parser_pause(p, 1);
	return 0;
}

/* Reads the whole answer through http-parser (headers up to its
 * HTTP_MAX_HEADER_SIZE, the body up to HTTPC_RESP_MAX); 0 and the status. */
static int
httpc_read_response(struct httpc_conn *c, long *status, char *err,
    size_t errsz)
{
	http_parser_settings cb;
	http_parser p;
	char buf[16384];
	size_t used;
	ssize_t n;

	http_parser_settings_init(&cb);
	cb.on_body = httpc_on_body;
	cb.on_message_complete = httpc_on_complete;
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = c;
	while (!c->done) {
		if ((n = httpc_recv(c, buf, sizeof(buf))) < 0) {
			snprintf(err, errsz, "%s: %s", p.nread || c->len ?
			    "incomplete answer" : "no answer", strerror(errno));
			return -1;
		}
		/* n == 0 is the end of the stream, which ends a body sent
		 * without a length; the parser says if that completes it. */
		used = http_parser_execute(&p, &cb, buf, (size_t)n);
		if (c->too_big) {
			snprintf(err, errsz, "answer larger than %d bytes",
			    HTTPC_RESP_MAX);
			return -1;
		}
		if (c->done)
			break;
		if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used != (size_t)n) {
			snprintf(err, errsz, "invalid HTTP answer: %s",
			    http_errno_description(HTTP_PARSER_ERRNO(&p)));
			return -1;
		}
		if (n == 0 && !c->done) {
			snprintf(err, errsz, "%s", p.nread ? "incomplete answer" :
			    "the server closed the connection without an "
			    "answer");
			return -1;
		}
	}
	*status = (long)p.status_code;
	return 0;
}

/* Request line and headers (malloc'd), or NULL. */
static char *
httpc_head(const char *method, const char *host, int port, int tls,
    const char *path, const char *token, long long blen, int has_body)
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
	    "Content-Length: %lld\r\n\r\n", method, path, hostport, auth,
	    has_body == 2 ? "Content-Type: application/octet-stream\r\n" :
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
	tc.expect_name = c->opts->expect_name;
	tc.expect_ou = c->opts->expect_ou;
	err[0] = '\0';
	if (httpc_arm(c) < 0 || (c->ssl = tls_client_open(c->fd, &tc, err,
	    errsz)) == NULL) {
		if (err[0] == '\0')
			snprintf(err, errsz, "TLS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Hands the body to resp, with its JSON and, for a 4xx/5xx, the server's
 * error. */
static void
httpc_take_body(struct httpc_conn *c, struct httpc_resp *resp)
{
	json_t *e;

	if (c->len > 0) {
		resp->body = c->body;
		resp->len = c->len;
		c->body = NULL;
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

/* opts' streamed body: 0, -1 with errno when sending failed, -2 when
 * the source did (ended early or failed: the request is abandoned). */
static int
httpc_send_stream(struct httpc_conn *c)
{
	const struct httpc_opts *o = c->opts;
	long long left = o->body_len;
	char *buf;
	int n, rc = -1;

	if ((buf = malloc(65536)) == NULL)
		return -1;
	while (left > 0) {
		n = o->body_read(o->body_arg, buf, left < 65536 ? (size_t)left :
		    65536);
		if (n <= 0) {
			rc = -2;
			goto cleanup;
		}
		if (n > left)
			n = (int)left;
		if (httpc_send(c, buf, (size_t)n) < 0)
			goto cleanup;
		left -= n;
	}
	rc = 0;
cleanup:
	free(buf);
	return rc;
}

int
httpc_request(const char *method, const char *url, const char *token,
    json_t *body, long timeout_ms, struct httpc_resp *resp)
{
	return httpc_request_opts(method, url, token, body, timeout_ms, NULL,
	    resp);
}

int
httpc_request_opts(const char *method, const char *url, const char *token,
    json_t *body, long timeout_ms, const struct httpc_opts *opts,
    struct httpc_resp *resp)
{
	static const struct httpc_opts none;
	struct httpc_conn c = { .fd = -1, .opts = opts ? opts : &none };
	char host[256], *payload = NULL, *head = NULL;
	const char *path;
	size_t plen;
	int tls, port, sent_errno = 0, sent = 0, rc = -1;

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
	if ((head = httpc_head(method, host, port, tls, path, token,
	    c.opts->body_read ? c.opts->body_len : (long long)plen,
	    c.opts->body_read ? 2 : payload != NULL)) == NULL) {
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
	else if (c.opts->body_read && (sent = httpc_send_stream(&c)) < 0)
		sent_errno = errno ? errno : EPIPE;
	if (sent == -2) {
		snprintf(resp->err, sizeof(resp->err), "the body ended early");
		goto cleanup;
	}
	/* Even when sending failed: a server may refuse (413) and close
	 * before it has read everything; its answer is what matters. */
	if (httpc_read_response(&c, &resp->status, resp->err,
	    sizeof(resp->err)) < 0) {
		resp->status = 0;
		if (sent_errno)
			snprintf(resp->err, sizeof(resp->err), "cannot send the "
			    "request: %s", strerror(sent_errno));
		goto cleanup;
	}
	httpc_take_body(&c, resp);
	rc = 0;
cleanup:
	tls_client_close(c.ssl);
	if (c.fd >= 0)
		close(c.fd);
	free(c.body);
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
