/* test_httpc.c - unit tests for src/common/httpc.c against a scripted
 * one-connection server on loopback: the request as sent, Content-Length
 * and chunked answers, errors, a silent server, bad URLs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/httpc.h"

/* One connection: reads the request (headers + Content-Length body),
 * then writes reply (NULL: answers nothing and holds the connection for
 * hold_ms), then closes. */
struct srv {
	int		 lfd, port;
	const char	*reply;
	int		 hold_ms;
	char		 req[4096];
	pthread_t	 th;
};

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	size_t len = 0;
	ssize_t n;
	int fd = accept(s->lfd, NULL, NULL);
	char *eoh;

	if (fd < 0)
		return NULL;
	while (len < sizeof(s->req) - 1 && (n = read(fd, s->req + len,
	    sizeof(s->req) - 1 - len)) > 0) {
		len += (size_t)n;
		s->req[len] = '\0';
		if ((eoh = strstr(s->req, "\r\n\r\n")) != NULL) {
			const char *cl = strstr(s->req, "Content-Length: ");
			size_t want = cl ? strtoul(cl + 16, NULL, 10) : 0;

			if (len - (size_t)(eoh + 4 - s->req) >= want)
				break;
		}
	}
	if (s->reply)
		(void)write(fd, s->reply, strlen(s->reply));
	else
		usleep((useconds_t)s->hold_ms * 1000);
	close(fd);
	return NULL;
}

static void
srv_start(struct srv *s, const char *reply, int hold_ms)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->reply = reply;
	s->hold_ms = hold_ms;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((s->lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 1), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &sl), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void
srv_stop(struct srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

static int
request(struct srv *s, const char *method, const char *path, json_t *body,
    long timeout_ms, struct httpc_resp *r)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
	return httpc_request(method, url, "tok", body, timeout_ms, r);
}

static void
test_request_and_json(void **state)
{
	struct srv s;
	struct httpc_resp r;
	json_t *body = json_pack("{s:i}", "a", 1);

	srv_start(&s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: 12\r\n\r\n{\"ok\": true}trailing junk", 0);
	assert_int_equal(request(&s, "POST", "/api/v1/x?y=1", body, 5000, &r),
	    0);
	srv_stop(&s);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 12);
	assert_true(json_is_true(json_object_get(r.json, "ok")));
	assert_non_null(strstr(s.req, "POST /api/v1/x?y=1 HTTP/1.1\r\n"));
	assert_non_null(strstr(s.req, "\r\nHost: 127.0.0.1:"));
	assert_non_null(strstr(s.req, "\r\nAuthorization: Bearer tok\r\n"));
	assert_non_null(strstr(s.req, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(s.req, "\r\nContent-Length: 7\r\n\r\n{\"a\":1}"));
	httpc_resp_free(&r);
	json_decref(body);
}

/* A streamed body (opts.body_read): sent with its length, as an octet
 * stream, in the pieces the source gives. */
struct src {
	const char	*data;
	size_t		 off, len, step;
	int		 fail_at;	/* >= 0: return -1 once off reaches it */
};

static int
src_read(void *arg, void *buf, size_t n)
{
	struct src *s = arg;

	if (s->fail_at >= 0 && s->off >= (size_t)s->fail_at)
		return -1;
	if (n > s->step)
		n = s->step;
	if (n > s->len - s->off)
		n = s->len - s->off;
	memcpy(buf, s->data + s->off, n);
	s->off += n;
	return (int)n;
}

static void
test_stream_body(void **state)
{
	struct src src = { "0123456789abcdef", 0, 16, 5, -1 };
	struct httpc_opts o = { .body_read = src_read, .body_arg = &src,
	    .body_len = 16 };
	struct httpc_resp r;
	struct srv s;
	char url[128];

	(void)state;
	srv_start(&s, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/up", s.port);
	assert_int_equal(httpc_request_opts("PUT", url, "tok", NULL, 5000, &o,
	    &r), 0);
	srv_stop(&s);
	assert_int_equal(r.status, 201);
	assert_non_null(strstr(s.req, "\r\nContent-Type: application/"
	    "octet-stream\r\n"));
	assert_non_null(strstr(s.req, "\r\nContent-Length: 16\r\n\r\n"
	    "0123456789abcdef"));
	httpc_resp_free(&r);

	/* The source fails half way: the request is abandoned, no answer
	 * waited for. */
	src.off = 0;
	src.fail_at = 10;
	srv_start(&s, NULL, 3000);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/up", s.port);
	assert_int_equal(httpc_request_opts("PUT", url, "tok", NULL, 2000, &o,
	    &r), -1);
	assert_string_equal(r.err, "the body ended early");
	srv_stop(&s);
	httpc_resp_free(&r);
}

static void
test_chunked(void **state)
{
	struct srv s;
	struct httpc_resp r;

	srv_start(&s, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
	    "5\r\n[1, 2\r\nc;ext=1\r\n, 3, 4, 5, 6\r\n1\r\n]\r\n0\r\n\r\n", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), 0);
	srv_stop(&s);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "[1, 2, 3, 4, 5, 6]");
	assert_int_equal(json_array_size(r.json), 6);
	assert_non_null(strstr(s.req, "\r\nContent-Length: 0\r\n"));
	httpc_resp_free(&r);
}

static void
test_errors(void **state)
{
	struct srv s;
	struct httpc_resp r;

	/* The server's error message. */
	srv_start(&s, "HTTP/1.1 404 Not Found\r\nContent-Length: 20\r\n\r\n"
	    "{\"error\": \"no such\"}", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), 0);
	srv_stop(&s);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.err, "no such");
	httpc_resp_free(&r);
	/* No body: the status says it; a body to the end of the stream. */
	srv_start(&s, "HTTP/1.0 503 Busy\r\n\r\n", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), 0);
	srv_stop(&s);
	assert_int_equal(r.status, 503);
	assert_null(r.body);
	assert_string_equal(r.err, "HTTP status 503");
	httpc_resp_free(&r);
	/* Closed without an answer, garbage, a short body: no answer, and
	 * the error says which. */
	srv_start(&s, "", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), -1);
	srv_stop(&s);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "the server closed the connection without "
	    "an answer");
	srv_start(&s, "SSH-2.0-OpenSSH\r\n\r\n", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), -1);
	srv_stop(&s);
	assert_string_equal(r.err, "invalid HTTP answer: invalid constant "
	    "string");
	srv_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), -1);
	srv_stop(&s);
	assert_string_equal(r.err, "invalid HTTP answer: stream ended at an "
	    "unexpected time");
	srv_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), -1);
	srv_stop(&s);
	assert_string_equal(r.err, "invalid HTTP answer: invalid character in "
	    "content-length header");
	srv_start(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "zz\r\n", 0);
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), -1);
	srv_stop(&s);
	assert_string_equal(r.err, "invalid HTTP answer: invalid character in "
	    "chunk size header");
}

static void
test_timeout(void **state)
{
	struct srv s;
	struct httpc_resp r;
	struct timespec a, b;
	long ms;

	srv_start(&s, NULL, 1500);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(request(&s, "GET", "/", NULL, 300, &r), -1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	srv_stop(&s);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 250 && ms < 1400);
	assert_non_null(strstr(r.err, "timed out"));
}

static void
test_bad_urls(void **state)
{
	static const char *bad[] = { "ftp://h/", "http://", "http:///x",
	    "http://h:0/", "http://h:65536/", "http://h:8x/", "http://[::1/",
	    "http://[::1]x/", "http://h/a b", "http://h?q", "h:80", NULL };
	struct httpc_resp r;
	int i;

	for (i = 0; bad[i]; i++) {
		if (httpc_request("GET", bad[i], NULL, NULL, 1000, &r) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(r.status, 0);
	}
	/* Header injection through the token. */
	assert_int_equal(httpc_request("GET", "http://127.0.0.1:1/", "a\r\nX: y",
	    NULL, 1000, &r), -1);
}

static void
test_refused(void **state)
{
	struct srv s;
	struct httpc_resp r;
	char want[128];
	int port;

	srv_start(&s, "", 0);
	port = s.port;
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), -1);
	srv_stop(&s);	/* nothing listens there now */
	s.port = port;
	assert_int_equal(request(&s, "GET", "/", NULL, 5000, &r), -1);
	snprintf(want, sizeof(want), "cannot connect to 127.0.0.1 port %d: "
	    "Connection refused", port);
	assert_string_equal(r.err, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_and_json),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_stream_body),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
