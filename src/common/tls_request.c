/* tls_request.c - the front reads a request before the server sees it:
 * its head by a deadline, and its body (unless the route streams bodies)
 * by another, answering Expect: 100-continue itself. civetweb reads
 * bodies in a worker for as long as the client takes and never sends the
 * 100 (its mg_read does not), hence this. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/tls_int.h"
#include "common/util.h"

/* Reads from the client into buf (cap bytes) until *len >= want, or,
 * with want 0, until the head ends; by deadline. 0 done, -1 at EOF or an
 * error, -2 at the deadline, -3 when buf is full. */
static int
tls_fill(SSL *ssl, int fd, char *buf, size_t cap, size_t *len, size_t want,
    int64_t deadline)
{
	size_t seen = 0;	/* no blank line ends before this */
	ssize_t n;
	int ww;

	for (;;) {
		if (want > 0 ? *len >= want :
		    memmem(buf + seen, *len - seen, "\r\n\r\n", 4) != NULL)
			return 0;
		seen = *len > 3 ? *len - 3 : 0;
		if (*len >= cap)
			return -3;
		n = tls_client_read(ssl, fd, buf + *len, cap - *len, &ww);
		if (n == 0)
			return -1;
		if (n > 0)
			*len += (size_t)n;
		else if (tls_wait(fd, ww, tls_left(deadline)) < 0)
			return -2;
	}
}

/* The value of header name (case-insensitive) in head (NUL-terminated,
 * CRLF lines), without surrounding blanks: 1 found, 0 absent, -1 given
 * twice or longer than outsz. */
static int
tls_header(const char *head, const char *name, char *out, size_t outsz)
{
	const char *line = strstr(head, "\r\n"), *v, *end;
	size_t n = strlen(name), vl;
	int found = 0;

	while (line != NULL && line[2] != '\0' && line[2] != '\r') {
		line += 2;
		end = strstr(line, "\r\n");
		if (end == NULL)
			end = line + strlen(line);
		if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
			v = line + n + 1;
			v += strspn(v, " \t");
			for (vl = (size_t)(end - v); vl > 0 &&
			    (v[vl - 1] == ' ' || v[vl - 1] == '\t'); vl--)
				;
			if (found++ || vl >= outsz)
				return -1;
			memcpy(out, v, vl);
			out[vl] = '\0';
		}
		line = *end ? end : NULL;
	}
	return found;
}

/* Removes header name's line(s) from the head at the start of q->buf. */
static void
tls_strip_header(struct tls_request *q, const char *name)
{
	char *line = strstr(q->buf, "\r\n"), *end;
	size_t n = strlen(name), cut;

	while (line != NULL && line + 2 < q->buf + q->headlen - 2) {
		end = strstr(line + 2, "\r\n");
		if (strncasecmp(line + 2, name, n) == 0 && line[2 + n] == ':') {
			cut = (size_t)(end - line);
			memmove(line, end, q->len - (size_t)(end - q->buf) + 1);
			q->len -= cut;
			q->headlen -= cut;
			continue;
		}
		line = end;
	}
}

/* A tchar (RFC 9110 5.6.2): what a method or a header name is made of. */
static int
tls_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* 1 when the head (len bytes: the request line and the header lines,
 * each with its CRLF) is one that civetweb reads as the front does: a
 * request line "METHOD TARGET HTTP/d.d", then "name:value" lines, the
 * name all tchars right up to its colon; no "%00" in the target (a NUL
 * once decoded); no control byte but a tab in a value, no CR or LF outside a line's CRLF, no folded line. civetweb is
 * laxer (bare LFs end its lines and head, blanks before a colon are
 * dropped, "+5" is a Content-Length of 5): a head it read otherwise could
 * hide a body from the front, which civetweb's worker would then read
 * for as long as the client takes. */
static int
tls_head_valid(const char *head, size_t len)
{
	const unsigned char *p = (const unsigned char *)head, *end = p + len;
	const unsigned char *eol, *c;
	int first = 1;

	if (len == 0)
		return 0;
	for (; p < end; p = eol + 2, first = 0) {
		eol = memchr(p, '\r', (size_t)(end - p));
		if (eol == NULL || eol + 1 >= end || eol[1] != '\n' || eol == p)
			return 0;
		for (c = p; c < eol; c++)
			if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
				return 0;
		for (c = p; c < eol && tls_tchar(*c); c++)
			;
		if (c == p)
			return 0;	/* no method or name: a fold, a blank */
		if (!first) {
			if (*c != ':')
				return 0;
			continue;
		}
		if (*c++ != ' ')
			return 0;
		for (p = c; c < eol && *c > ' ' && *c < 0x7f; c++)
			;
		/* %00 in the target: civetweb decodes it into a NUL that
		 * cuts the path short ("a%00b" would name "a"). */
		if (memmem(p, (size_t)(c - p), "%00", 3) != NULL)
			return 0;
		if (c == p || eol - c != 9 || memcmp(c, " HTTP/", 6) != 0 ||
		    c[6] < '0' || c[6] > '9' || c[7] != '.' ||
		    c[8] < '0' || c[8] > '9')
			return 0;
	}
	return 1;
}

/* Which backend the head's request goes to. */
static int
tls_classify(struct tls_front *t, const char *head)
{
	char method[16], target[2048];
	size_t m = strcspn(head, " \r\n"), n;
	int b;

	if (t->classify == NULL || m == 0 || m >= sizeof(method) ||
	    head[m] != ' ')
		return 0;
	n = strcspn(head + m + 1, " \r\n");
	if (n == 0 || n >= sizeof(target))
		return 0;
	memcpy(method, head, m);
	method[m] = '\0';
	memcpy(target, head + m + 1, n);
	target[n] = '\0';
	b = t->classify(t->classify_arg, method, target, head);
	return b >= 0 && b < t->nbackends ? b : 0;
}

/* The body of a request read ahead: its length from Content-Length
 * (digits only: civetweb would read "+5" or "5x" as 5, a body the front
 * had not read), within TLS_BODY_MAX and the budget, 100 Continue sent
 * when the client waits for it. 0 with *bodylen, or -1 after replying. */
static int
tls_body_plan(struct tls_front *t, struct tls_conn *c, SSL *ssl,
    struct tls_request *q, const char *expect, size_t *bodylen)
{
	int victims[TLS_BODY_VICTIMS], nv, i, fd = c->fd, rc;
	char num[24];
	uint64_t v = 0;
	int has;

	*bodylen = 0;
	if (tls_header(q->buf, "transfer-encoding", num, sizeof(num)) != 0) {
		tls_reply(ssl, fd, 411, "Length Required", "send the body with "
		    "Content-Length, not Transfer-Encoding");
		return -1;
	}
	if ((has = tls_header(q->buf, "content-length", num, sizeof(num))) < 0) {
		tls_reply(ssl, fd, 400, "Bad Request", "Content-Length given "
		    "twice or too long");
		return -1;
	}
	if (has == 0)
		return 0;
	if (num[0] == '\0' || strspn(num, "0123456789") != strlen(num)) {
		tls_reply(ssl, fd, 411, "Length Required", "Content-Length is "
		    "not a number");
		return -1;
	}
	if (util_parse_u64(num, 0, UINT64_MAX, &v) < 0 || v > TLS_BODY_MAX) {
		tls_reply(ssl, fd, 413, "Payload Too Large", "request body over "
		    "1048576 bytes");
		return -1;
	}
	pthread_mutex_lock(&t->lock);
	rc = tls_body_take(&t->lim, c->slot, (size_t)v, victims,
	    TLS_BODY_VICTIMS, &nv);
	for (i = 0; i < nv; i++)	/* their threads see the end */
		if (t->fds[victims[i]] >= 0)
			shutdown(t->fds[victims[i]], SHUT_RDWR);
	pthread_mutex_unlock(&t->lock);
	if (nv > 0)
		tls_note(t, "body displaced", c->remote);
	if (rc == -2)
		return -1;	/* displaced itself: its socket is shut */
	if (rc < 0) {
		tls_note(t, "body budget", c->remote);
		tls_reply(ssl, fd, 503, "Service Unavailable", "too many request "
		    "bodies in flight from this address; try again");
		return -1;
	}
	*bodylen = (size_t)v;
	if (expect != NULL) {
		tls_strip_header(q, "expect");
		if (v > q->len - q->headlen && tls_write_all(ssl, fd,
		    "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
			return -1;
	}
	return 0;
}

/* Reads the request's head by deadline, and its body too unless its
 * backend streams bodies, within TLS_BODY_MS; into q. 0, or -1 after
 * replying (timeout, oversized head, ...) or at EOF. */
int
tls_request(struct tls_front *t, struct tls_conn *c, SSL *ssl,
    struct tls_request *q, int64_t deadline)
{
	char expect[32], *nb;
	size_t bodylen = 0, cap = TLS_HEAD_MAX + 1;
	int rc, has;

	if ((q->buf = malloc(cap)) == NULL)
		return -1;
	rc = tls_fill(ssl, c->fd, q->buf, cap - 1, &q->len, 0, deadline);
	if (rc == -2 || rc == -3) {
		tls_note(t, rc == -2 ? "head deadline" : "head too large",
		    c->remote);
		tls_reply(ssl, c->fd, rc == -2 ? 408 : 431, rc == -2 ?
		    "Request Timeout" : "Request Header Fields Too Large",
		    rc == -2 ? "the request did not arrive in time" :
		    "request headers over 16 KiB");
	}
	if (rc < 0)
		return -1;
	q->buf[q->len] = '\0';
	q->headlen = (size_t)((char *)memmem(q->buf, q->len, "\r\n\r\n", 4) -
	    q->buf) + 4;
	if (!tls_head_valid(q->buf, q->headlen - 2)) {
		tls_note(t, "malformed head", c->remote);
		tls_reply(ssl, c->fd, 400, "Bad Request", "malformed request "
		    "line or header");
		return -1;
	}
	q->buf[q->headlen - 2] = '\0';	/* the head alone, for a while */
	q->backend = tls_classify(t, q->buf);
	has = tls_header(q->buf, "expect", expect, sizeof(expect));
	if (has != 0 && (has < 0 || strcasecmp(expect, "100-continue") != 0)) {
		tls_reply(ssl, c->fd, 417, "Expectation Failed", "the only "
		    "expectation served is 100-continue");
		return -1;
	}
	rc = t->backend[q->backend].read_ahead ? tls_body_plan(t, c, ssl, q,
	    has ? expect : NULL, &bodylen) : 0;
	q->buf[q->headlen - 2] = '\r';
	if (rc < 0 || bodylen == 0)
		return rc;
	if (q->headlen + bodylen > cap - 1) {
		if ((nb = realloc(q->buf, q->headlen + bodylen + 1)) == NULL)
			return -1;
		q->buf = nb;
		cap = q->headlen + bodylen + 1;
	}
	rc = tls_fill(ssl, c->fd, q->buf, cap - 1, &q->len, q->headlen +
	    bodylen, util_mono_ms() + TLS_BODY_MS);
	if (rc == -2) {
		tls_note(t, "body deadline", c->remote);
		tls_reply(ssl, c->fd, 408, "Request Timeout",
		    "the request body did not arrive in time");
	}
	return rc < 0 ? -1 : 0;
}
