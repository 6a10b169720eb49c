/* httpd.h - the HTTP/websocket server every role uses (civetweb underneath):
 * a table of routes, JSON bodies in and out, {"error": "..."} on failure.
 * Requests are served by classes of workers, so that one kind cannot
 * take the workers another needs: "api" (everything else), "agent"
 * (agents' reports, under agent_prefix), "long" (live streams and
 * websockets, which hold a worker for as long as they are open) and
 * "bulk" (HTTPD_STREAM routes, whose bodies stream in). */
#ifndef CVIRT_HTTPD_H
#define CVIRT_HTTPD_H

#include <stddef.h>
#include <jansson.h>

#define HTTPD_MAX_PARAMS 4
#define HTTPD_BODY_MAX   (1024 * 1024)
#define HTTPD_JSON_DEPTH 32		/* nesting levels a body may have */

struct mg_connection;
struct httpd;

/* One request. Every pointer in it lives until the handler returns. */
struct httpd_req {
	struct mg_connection	*conn;
	const char		*method;
	const char		*path;
	const char		*query;		/* NULL when absent */
	char			*params[HTTPD_MAX_PARAMS]; /* "{}" segments, decoded */
	int			 nparams;
	json_t			*body;		/* parsed JSON object or NULL */
	void			*ctx;		/* server user data */
	const char		*token;		/* bearer token or NULL */
	int			 role;		/* set by the auth hook */
	/* who, for the audit/event log: a user, "host:NAME", "join:ID" */
	char			 principal[80];
	char			 remote[64];	/* client address */
	char			 peer_cn[64];	/* verified TLS client cert CN or "" */
	char			 peer_ou[32];	/* ... its OU or "" */
	char			 peer_fp[65];	/* ... its SHA-256 (hex) or "" */
	/* An auth hook's reason for a 401/403 (one line), or "": the
	 * generic text then. */
	char			 auth_err[160];
	int			 status;	/* status sent, for logging */
	/* HTTPD_STREAM routes: the body's length (-1 unknown: chunked),
	 * read with httpd_body_read. */
	long long		 content_length;
	int			(*body_read)(struct httpd_req *r, void *buf,
				    size_t n);
	int			 continued;	/* 100 Continue sent */
};

/* A handler sends exactly one reply with httpd_reply_* and returns 0. */
typedef int (*httpd_handler_fn)(struct httpd_req *r);

#define HTTPD_NOAUTH 0x1	/* route needs no token */
#define HTTPD_STREAM 0x2	/* body not read ahead: the handler reads it
				 * with httpd_body_read, after auth ("bulk") */
#define HTTPD_LONG   0x4	/* holds its worker long: a live stream */

/* Classes of workers (httpd_config's pools). */
enum httpd_class { HTTPD_API, HTTPD_AGENT, HTTPD_LONG_CLASS, HTTPD_BULK,
	HTTPD_NCLASSES };

/* pattern: literal segments and "{}" for one captured segment. */
struct httpd_route {
	const char		*method;
	const char		*pattern;
	httpd_handler_fn	 fn;
	int			 flags;
	int			 min_role;	/* passed to the auth hook */
};

/* Returns 0 to let the request through, or an HTTP status (401/403) after
 * filling r->principal/r->role; the server sends the error itself. */
typedef int (*httpd_auth_fn)(struct httpd_req *r, int min_role);

/* Websocket endpoints: open returns per-connection state or NULL to refuse;
 * data is called for each text/binary message; close once at the end.
 * Use httpd_ws_send from any thread while the connection is open. */
struct httpd_ws_route {
	const char	*uri;
	void		*(*open)(struct mg_connection *c, const char *query,
			    void *ctx);
	void		 (*ready)(void *state);	/* handshake done; may be NULL */
	void		 (*data)(void *state, const char *buf, size_t len);
	void		 (*close)(void *state);
};

struct httpd_config {
	const char			*listen;	/* HOST:PORT */
	const char			*tls_cert;	/* PEM cert chain or NULL */
	const char			*tls_key;	/* PEM key (NULL: in tls_cert) */
	const char			*tls_client_ca;	/* verify client certs */
	int				 tls_require_client; /* no cert: refused */
	/* Workers per class; a class without is served by the api's. */
	int				 threads;	/* api (default 16) */
	int				 agent_threads;
	int				 long_threads;
	int				 bulk_threads;
	const char			*agent_prefix;	/* "agent" class */
	const struct httpd_route	*routes;
	size_t				 nroutes;
	const struct httpd_ws_route	*ws;
	size_t				 nws;
	httpd_auth_fn			 auth;
	void				*ctx;
	const char			*static_root;	/* served at / when set */
	/* Called after every routed request (audit log); may be NULL. */
	void				 (*done)(struct httpd_req *r);
};

struct httpd	*httpd_start(const struct httpd_config *cfg);
void		 httpd_stop(struct httpd *h);

int	httpd_reply_json(struct httpd_req *r, int status, json_t *body); /* steals body */
int	httpd_reply_error(struct httpd_req *r, int status, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
int	httpd_reply_raw(struct httpd_req *r, int status, const char *ctype,
	    const void *buf, size_t len);
/* Copy a query variable; 0 when present, -1 when absent or too long. */
int	httpd_query(struct httpd_req *r, const char *name, char *out, size_t size);
/* 1 when JSON text nests at most max arrays/objects deep (pure). */
int	httpd_json_depth_ok(const char *buf, size_t len, int max);
/* A request body as the server decodes it: a JSON object, no duplicate
 * keys, bounded nesting; new reference or NULL with err (pure). */
json_t	*httpd_json_decode(const char *buf, size_t len, char *err,
	    size_t errsz);
/* 1 when path matches pattern, with the {} segments in r->params (the
 * caller frees them); 0 otherwise (pure). */
int	httpd_route_match(const char *pattern, const char *path,
	    struct httpd_req *r);
/* The token of an Authorization header's value "Bearer TOKEN" (scheme
 * in any case; a pointer into auth), or NULL for none or another scheme. */
const char	*httpd_bearer(const char *auth);
/* An HTTPD_STREAM route's body: up to n bytes into buf; >0 read, 0 at
 * its end, -1 on an error (the client gone or stalled past the
 * server's read timeout). Sends 100 Continue first when the client
 * waits for it. Workers' stacks are small (civetweb's): big buffers
 * belong on the heap. */
int	httpd_body_read(struct httpd_req *r, void *buf, size_t n);
/* The class a request goes to (pure; the front asks it for each). */
enum httpd_class httpd_classify(const struct httpd_config *cfg,
	    const char *method, const char *target, const char *head);
int	httpd_ws_send(struct mg_connection *c, const void *buf, size_t len);
void	httpd_ws_close(struct mg_connection *c);

#endif
