/* httpd.c - route table dispatch, JSON replies and websockets over civetweb:
 * one civetweb context (its own workers, on its own loopback port) per
 * class of requests, the front (tls.c) picking the class of each. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <civetweb.h>

#include "common/httpd.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/metrics.h"
#include "common/util.h"

struct httpd {
	struct mg_context	*mg[HTTPD_NCLASSES];	/* NULL: the api's */
	int			 backend[HTTPD_NCLASSES]; /* in the front */
	int			 port[HTTPD_NCLASSES];	/* civetweb's, 0: none */
	struct tls_front	*tls;	/* TLS in front of the loopback ports */
	struct httpd_config	 cfg;
};

/* Per websocket connection: which route and its state. */
struct httpd_ws_conn {
	const struct httpd_ws_route	*route;
	void				*state;
};

static const char *
httpd_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default:  return "Status";
	}
}

int
httpd_reply_raw(struct httpd_req *r, int status, const char *ctype,
    const void *buf, size_t len)
{
	r->status = status;
	mg_printf(r->conn,
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Connection: close\r\n"
	    "\r\n", status, httpd_reason(status), ctype, len);
	if (len > 0 && strcmp(r->method, "HEAD") != 0)
		mg_write(r->conn, buf, len);
	return 0;
}

int
httpd_reply_json(struct httpd_req *r, int status, json_t *body)
{
	char *s;
	int rc;

	s = json_dumps(body ? body : json_null(),
	    JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(body);
	if (s == NULL)
		return httpd_reply_raw(r, 500, "application/json",
		    "{\"error\":\"out of memory\"}", 25);
	rc = httpd_reply_raw(r, status, "application/json", s, strlen(s));
	free(s);
	return rc;
}

int
httpd_reply_error(struct httpd_req *r, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The message may quote what the client sent, or be cut inside a
	 * character: jansson refuses invalid UTF-8, and the client would get
	 * "null" instead of {"error": ...}. */
	util_utf8_fix(msg);
	return httpd_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

int
httpd_query(struct httpd_req *r, const char *name, char *out, size_t size)
{
	int n;

	if (r->query == NULL)
		return -1;
	n = mg_get_var(r->query, strlen(r->query), name, out, size);
	return n >= 0 ? 0 : -1;
}

/* Match "a/{}/b" against the path, capturing {} segments into r->params. */
static int
httpd_match(const char *pattern, const char *path, struct httpd_req *r)
{
	const char *p = pattern, *s = path;
	int n = 0;

	while (*p && *s) {
		if (p[0] == '{' && p[1] == '}') {
			const char *end = strchr(s, '/');
			size_t len = end ? (size_t)(end - s) : strlen(s);
			if (len == 0 || n >= HTTPD_MAX_PARAMS)
				goto nomatch;
			r->params[n] = strndup(s, len);
			if (r->params[n] == NULL)
				goto nomatch;
			n++;
			p += 2;
			s += len;
			continue;
		}
		if (*p != *s)
			goto nomatch;
		p++;
		s++;
	}
	if (*p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0'))) {
		r->nparams = n;
		return 1;
	}
nomatch:
	while (n > 0)
		free(r->params[--n]);
	return 0;
}

int
httpd_json_depth_ok(const char *buf, size_t len, int max)
{
	int depth = 0, in_str = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char ch = buf[i];

		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = 0;
		} else if (ch == '"') {
			in_str = 1;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return 0;
		} else if (ch == ']' || ch == '}') {
			depth--;
		}
	}
	return 1;
}

const char *
httpd_bearer(const char *auth)
{
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	return auth + 7;
}

int
httpd_route_match(const char *pattern, const char *path, struct httpd_req *r)
{
	return httpd_match(pattern, path, r);
}

json_t *
httpd_json_decode(const char *buf, size_t len, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *j;

	/* jansson recurses per level: deep nesting would exhaust the worker's
	 * stack before its own limit. */
	if (!httpd_json_depth_ok(buf, len, HTTPD_JSON_DEPTH)) {
		snprintf(err, errsz, "JSON nested deeper than %d levels",
		    HTTPD_JSON_DEPTH);
		return NULL;
	}
	if ((j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(err, errsz, "malformed JSON body: %s", jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errsz, "request body must be a JSON object");
		return NULL;
	}
	return j;
}

static int
httpd_read_body(struct httpd_req *r, const struct mg_request_info *ri)
{
	char *buf = NULL, err[256];
	long long want = ri->content_length;
	size_t len = 0;
	int n, rc = -1;

	if (want <= 0)
		return 0;
	if (want > HTTPD_BODY_MAX) {
		httpd_reply_error(r, 413, "request body over %d bytes",
		    HTTPD_BODY_MAX);
		goto cleanup;
	}
	if ((buf = malloc((size_t)want + 1)) == NULL) {
		httpd_reply_error(r, 500, "out of memory");
		goto cleanup;
	}
	while (len < (size_t)want) {
		n = mg_read(r->conn, buf + len, (size_t)want - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (len != (size_t)want) {
		httpd_reply_error(r, 400, "request body truncated");
		goto cleanup;
	}
	buf[len] = '\0';
	if ((r->body = httpd_json_decode(buf, len, err, sizeof(err))) == NULL) {
		httpd_reply_error(r, 400, "%s", err);
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(buf);
	return rc;
}

/* HTTPD_STREAM bodies: after auth, so only then 100 Continue (the front
 * passes Expect on for these). */
static int
httpd_mg_body_read(struct httpd_req *r, void *buf, size_t n)
{
	const char *expect;

	if (!r->continued) {
		r->continued = 1;
		expect = mg_get_header(r->conn, "Expect");
		if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
		    mg_write(r->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 25)
			return -1;
	}
	return mg_read(r->conn, buf, n);
}

int
httpd_body_read(struct httpd_req *r, void *buf, size_t n)
{
	return r->body_read != NULL ? r->body_read(r, buf, n) : 0;
}

/* 1 when head has header name with token among its comma-separated
 * values (both case-insensitive). */
static int
httpd_head_has(const char *head, const char *name, const char *token)
{
	const char *line = strstr(head, "\r\n"), *v, *end;
	size_t n = strlen(name), t = strlen(token), len;

	while (line != NULL && line[2] != '\0') {
		line += 2;
		if ((end = strstr(line, "\r\n")) == NULL)
			end = line + strlen(line);
		if (strncasecmp(line, name, n) != 0 || line[n] != ':')
			v = end;
		else
			v = line + n + 1;
		for (; v < end; v += len + (v + len < end)) {
			v += strspn(v, " \t");
			len = strcspn(v, ",\r\n");
			if (v + len > end)
				len = (size_t)(end - v);
			while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
				len--;
			if (len == t && strncasecmp(v, token, t) == 0)
				return 1;
		}
		line = *end != '\0' ? end : NULL;
	}
	return 0;
}

enum httpd_class
httpd_classify(const struct httpd_config *cfg, const char *method,
    const char *target, const char *head)
{
	const struct httpd_route *rt;
	struct httpd_req r;
	char path[2048];
	size_t k, n = strcspn(target, "?");
	int i, flags = -1;

	if (httpd_head_has(head, "upgrade", "websocket"))
		return HTTPD_LONG_CLASS;
	if (n >= sizeof(path))
		return HTTPD_API;
	memcpy(path, target, n);
	path[n] = '\0';
	if (cfg->agent_prefix != NULL && strncmp(path, cfg->agent_prefix,
	    strlen(cfg->agent_prefix)) == 0)
		return HTTPD_AGENT;
	memset(&r, 0, sizeof(r));
	for (k = 0; k < cfg->nroutes && flags < 0; k++) {
		rt = &cfg->routes[k];
		if (!httpd_match(rt->pattern, path, &r))
			continue;
		if (strcmp(rt->method, method) == 0 || (strcmp(method, "HEAD") ==
		    0 && strcmp(rt->method, "GET") == 0))
			flags = rt->flags;
		for (i = 0; i < r.nparams; i++)
			free(r.params[i]);
		r.nparams = 0;
	}
	if (flags >= 0 && (flags & HTTPD_STREAM))
		return HTTPD_BULK;
	if (flags >= 0 && (flags & HTTPD_LONG))
		return HTTPD_LONG_CLASS;
	return HTTPD_API;
}

/* The front's question: which backend serves this head. */
static int
httpd_front_classify(void *arg, const char *method, const char *target,
    const char *head)
{
	struct httpd *h = arg;

	return h->backend[httpd_classify(&h->cfg, method, target, head)];
}

static int
httpd_dispatch(struct mg_connection *conn, void *cbdata)
{
	struct httpd *h = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const struct httpd_route *rt, *found = NULL;
	struct httpd_req r;
	struct tls_peer_id id;
	struct timespec t0, t1;
	int path_matched = 0, rc, i;
	size_t k;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&r, 0, sizeof(r));
	memset(&id, 0, sizeof(id));
	r.conn = conn;
	r.method = ri->request_method;
	r.path = ri->local_uri ? ri->local_uri : "/";
	r.query = ri->query_string;
	r.ctx = h->cfg.ctx;
	snprintf(r.principal, sizeof(r.principal), "anonymous");
	snprintf(r.remote, sizeof(r.remote), "%s", ri->remote_addr);
	/* Behind the front: the real client and its certificate, and
	 * nobody may reach the loopback listener around it. */
	if (h->tls && (strcmp(ri->remote_addr, "127.0.0.1") != 0 ||
	    tls_front_peer(h->tls, ri->remote_port, r.remote,
	    sizeof(r.remote), &id) < 0)) {
		httpd_reply_error(&r, 400, "connect through the server's "
		    "address");
		goto done;
	}
	snprintf(r.peer_cn, sizeof(r.peer_cn), "%s", id.cn);
	snprintf(r.peer_ou, sizeof(r.peer_ou), "%s", id.ou);
	snprintf(r.peer_fp, sizeof(r.peer_fp), "%s", id.fp);
	r.token = httpd_bearer(mg_get_header(conn, "Authorization"));
	/* civetweb resolves "." and ".." segments (also %2e%2e) and empty
	 * ones in local_uri: DELETE /vms/web/snapshots/.. would reach
	 * DELETE /vms/web. Such a path names nothing here. */
	if (ri->local_uri_raw && strcmp(ri->local_uri_raw, r.path) != 0) {
		httpd_reply_error(&r, 400, "invalid path: '.', '..' or empty "
		    "segments");
		goto done;
	}

	for (k = 0; k < h->cfg.nroutes; k++) {
		rt = &h->cfg.routes[k];
		if (!httpd_match(rt->pattern, r.path, &r))
			continue;
		path_matched = 1;
		if (strcmp(rt->method, r.method) == 0 ||
		    (strcmp(r.method, "HEAD") == 0 &&
		    strcmp(rt->method, "GET") == 0)) {
			found = rt;
			break;
		}
		for (i = 0; i < r.nparams; i++)
			free(r.params[i]);
		r.nparams = 0;
	}
	if (found == NULL) {
		if (!path_matched && h->cfg.static_root &&
		    strcmp(r.method, "GET") == 0 &&
		    strncmp(r.path, "/api/", 5) != 0)
			return 0;	/* let civetweb serve the file */
		if (path_matched)
			httpd_reply_error(&r, 405, "method %s not allowed on %s",
			    r.method, r.path);
		else
			httpd_reply_error(&r, 404, "no such endpoint: %s",
			    r.path);
		goto done;
	}
	if (!(found->flags & HTTPD_NOAUTH) && h->cfg.auth) {
		rc = h->cfg.auth(&r, found->min_role);
		if (rc != 0 && r.status == 0) {	/* the hook may reply itself */
			httpd_reply_error(&r, rc, "%s", r.auth_err[0] ?
			    r.auth_err : rc == 401 ?
			    "missing or invalid API token" :
			    "permission denied for this operation");
			goto done;
		} else if (rc != 0) {
			goto done;
		}
	}
	if (found->flags & HTTPD_STREAM) {
		r.content_length = ri->content_length;
		r.body_read = httpd_mg_body_read;
	} else if (httpd_read_body(&r, ri) < 0) {
		goto done;
	}
	found->fn(&r);
	if (r.status == 0)
		httpd_reply_error(&r, 500, "internal error: no reply");
done:
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_observe(METRICS_HTTP, r.method, found ? found->pattern :
	    "unmatched", (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	log_debug("%s %s -> %d (%s)", r.method, r.path, r.status, r.principal);
	if (h->cfg.done)
		h->cfg.done(&r);
	json_decref(r.body);
	for (i = 0; i < r.nparams; i++)
		free(r.params[i]);
	return r.status ? r.status : 500;
}

/* Websocket glue: civetweb calls these per connection. */
static int
httpd_ws_connect(const struct mg_connection *c, void *cbdata)
{
	const struct httpd_ws_route *route = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(c);
	struct httpd_ws_conn *wc;
	struct httpd *h = mg_get_user_data(mg_get_context(c));

	if ((wc = calloc(1, sizeof(*wc))) == NULL)
		return 1;
	wc->route = route;
	wc->state = route->open((struct mg_connection *)c, ri->query_string,
	    h->cfg.ctx);
	if (wc->state == NULL) {
		free(wc);
		return 1;	/* refuse the upgrade */
	}
	mg_set_user_connection_data(c, wc);
	return 0;
}

static void
httpd_ws_ready(struct mg_connection *c, void *cbdata)
{
	struct httpd_ws_conn *wc = mg_get_user_connection_data(c);

	(void)cbdata;
	if (wc && wc->route->ready)
		wc->route->ready(wc->state);
}

static int
httpd_ws_data(struct mg_connection *c, int bits, char *data, size_t len,
    void *cbdata)
{
	struct httpd_ws_conn *wc = mg_get_user_connection_data(c);
	int op = bits & 0x0f;

	(void)cbdata;
	if (wc == NULL || op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
		return 0;
	if (op == MG_WEBSOCKET_OPCODE_TEXT || op == MG_WEBSOCKET_OPCODE_BINARY ||
	    op == MG_WEBSOCKET_OPCODE_CONTINUATION)
		wc->route->data(wc->state, data, len);
	return 1;
}

static void
httpd_ws_closed(const struct mg_connection *c, void *cbdata)
{
	struct httpd_ws_conn *wc = mg_get_user_connection_data(c);

	(void)cbdata;
	if (wc == NULL)
		return;
	mg_set_user_connection_data(c, NULL);
	wc->route->close(wc->state);
	free(wc);
}

int
httpd_ws_send(struct mg_connection *c, const void *buf, size_t len)
{
	return mg_websocket_write(c, MG_WEBSOCKET_OPCODE_BINARY, buf, len) > 0 ?
	    0 : -1;
}

void
httpd_ws_close(struct mg_connection *c)
{
	mg_websocket_write(c, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
}

static int
httpd_log_message(const struct mg_connection *c, const char *msg)
{
	(void)c;
	log_debug("httpd: %s", msg);
	return 1;
}

/* The public listener: the front (TLS or plain) relaying to civetweb's
 * loopback ports, one per class. */
static int
httpd_tls_start(struct httpd *h)
{
	struct tls_front_config tc;
	struct mg_server_port port;
	char err[512];
	int c;

	memset(&tc, 0, sizeof(tc));
	for (c = 0; c < HTTPD_NCLASSES; c++) {
		if (h->mg[c] == NULL) {
			h->backend[c] = h->backend[HTTPD_API];
			continue;
		}
		if (mg_get_server_ports(h->mg[c], 1, &port) != 1) {
			log_warnx("cannot find the HTTP server's loopback port");
			return -1;
		}
		h->backend[c] = tc.nbackends;
		h->port[c] = port.port;
		tc.backend[tc.nbackends].port = port.port;
		tc.backend[tc.nbackends++].read_ahead = c != HTTPD_BULK;
	}
	tc.listen = h->cfg.listen;
	tc.cert = h->cfg.tls_cert;
	tc.key = h->cfg.tls_key ? h->cfg.tls_key : h->cfg.tls_cert;
	tc.client_ca = h->cfg.tls_client_ca;
	tc.require_client = h->cfg.tls_require_client;
	tc.classify = httpd_front_classify;
	tc.classify_arg = h;
	if ((h->tls = tls_front_start(&tc, err, sizeof(err))) == NULL) {
		log_warnx("cannot serve on %s: %s", h->cfg.listen, err);
		return -1;
	}
	return 0;
}

/* One class's civetweb context: threads workers on a loopback port.
 * civetweb gives a worker to a connection for as long as its client
 * takes: it listens behind the front, which reads each request (but a
 * streamed body) first; one request per connection. */
static struct mg_context *
httpd_context(struct httpd *h, enum httpd_class c, int threads)
{
	struct mg_callbacks cb;
	struct mg_context *mg;
	const char *opts[24];
	char nthreads[16];
	int n = 0;
	size_t k;

	snprintf(nthreads, sizeof(nthreads), "%d", threads);
	opts[n++] = "listening_ports";
	opts[n++] = "127.0.0.1:0";
	opts[n++] = "num_threads";
	opts[n++] = nthreads;
	/* Per socket operation: bodies but streamed ones are in by now. */
	opts[n++] = "request_timeout_ms";
	opts[n++] = c == HTTPD_BULK ? "60000" : "30000";
	opts[n++] = "enable_keep_alive";
	opts[n++] = "no";
	opts[n++] = "websocket_timeout_ms";
	opts[n++] = "3600000";
	if (c == HTTPD_API && h->cfg.static_root) {
		opts[n++] = "document_root";
		opts[n++] = h->cfg.static_root;
		opts[n++] = "enable_directory_listing";
		opts[n++] = "no";
	}
	opts[n] = NULL;
	memset(&cb, 0, sizeof(cb));
	cb.log_message = httpd_log_message;
	if ((mg = mg_start(&cb, h, opts)) == NULL)
		return NULL;
	mg_set_request_handler(mg, "/", httpd_dispatch, h);
	/* Websockets go to the long class (to the api's when there is
	 * none). */
	if (c == HTTPD_LONG_CLASS || (c == HTTPD_API && h->cfg.long_threads <= 0))
		for (k = 0; k < h->cfg.nws; k++)
			mg_set_websocket_handler(mg, h->cfg.ws[k].uri,
			    httpd_ws_connect, httpd_ws_ready, httpd_ws_data,
			    httpd_ws_closed, (void *)&h->cfg.ws[k]);
	return mg;
}

struct httpd_stopper {
	struct mg_context	*mg;
	atomic_int		 done;
};

static void *
httpd_stop_one(void *arg)
{
	struct httpd_stopper *s = arg;

	mg_stop(s->mg);
	atomic_store(&s->done, 1);
	return NULL;
}

/* A connection to civetweb's loopback port: its master thread, which
 * polls its listener for up to 2 s between looks at its stop flag, wakes
 * and sees it. */
static void
httpd_poke(int port)
{
	struct sockaddr_in sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		return;
	(void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
}

/* The contexts stop side by side, and each is poked until it has stopped
 * (for 3 s at most: past that, a worker is what it waits for): otherwise
 * mg_stop takes up to 2 s (civetweb's poll), and so did every agent's and
 * manager's stop. */
static void
httpd_stop_all(struct httpd *h)
{
	struct httpd_stopper st[HTTPD_NCLASSES];
	pthread_t th[HTTPD_NCLASSES];
	int c, left, started[HTTPD_NCLASSES] = { 0 };
	int64_t until = util_mono_ms() + 3000;

	for (c = 0; c < HTTPD_NCLASSES; c++) {
		st[c].mg = h->mg[c];
		atomic_init(&st[c].done, 0);
		if (h->mg[c] != NULL)
			started[c] = pthread_create(&th[c], NULL, httpd_stop_one,
			    &st[c]) == 0;
	}
	do {
		left = 0;
		for (c = 0; c < HTTPD_NCLASSES; c++)
			if (started[c] && !atomic_load(&st[c].done)) {
				left++;
				if (h->port[c] > 0)
					httpd_poke(h->port[c]);
			}
		if (left > 0)
			util_sleep_ms(20);
	} while (left > 0 && util_mono_ms() < until);
	for (c = 0; c < HTTPD_NCLASSES; c++) {
		if (started[c])
			pthread_join(th[c], NULL);
		else if (h->mg[c] != NULL)
			mg_stop(h->mg[c]);
		h->mg[c] = NULL;
	}
}

struct httpd *
httpd_start(const struct httpd_config *cfg)
{
	struct httpd *h = NULL;
	int threads[HTTPD_NCLASSES], c;

	/* Debian's civetweb binds OpenSSL 1.1 names at run time and crashes
	 * on OpenSSL 3: TLS is ours (tls.c), civetweb stays plain. */
	mg_init_library(MG_FEATURES_WEBSOCKET);
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->cfg = *cfg;
	threads[HTTPD_API] = cfg->threads > 0 ? cfg->threads : 16;
	threads[HTTPD_AGENT] = cfg->agent_threads;
	threads[HTTPD_LONG_CLASS] = cfg->long_threads;
	threads[HTTPD_BULK] = cfg->bulk_threads;
	for (c = 0; c < HTTPD_NCLASSES; c++) {
		if (threads[c] <= 0)
			continue;
		if ((h->mg[c] = httpd_context(h, c, threads[c])) == NULL) {
			log_warnx("cannot start the HTTP server");
			goto fail;
		}
	}
	if (httpd_tls_start(h) < 0)
		goto fail;
	return h;
fail:
	httpd_stop_all(h);
	free(h);
	return NULL;
}

void
httpd_stop(struct httpd *h)
{
	if (h == NULL)
		return;
	tls_front_stop(h->tls);
	httpd_stop_all(h);
	tls_front_free(h->tls);
	free(h);
}
