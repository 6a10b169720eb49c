/* httpd.h - the HTTP/websocket server every role uses (civetweb underneath):
 * a table of routes, JSON bodies in and out, {"error": "..."} on failure. */
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
	char			 principal[64];	/* who, for the audit/event log */
	char			 remote[64];	/* client address */
	char			 peer_cn[64];	/* verified TLS client cert CN or "" */
	int			 status;	/* status sent, for logging */
};

/* A handler sends exactly one reply with httpd_reply_* and returns 0. */
typedef int (*httpd_handler_fn)(struct httpd_req *r);

#define HTTPD_NOAUTH 0x1	/* route needs no token */

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
	int				 threads;
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
int	httpd_ws_send(struct mg_connection *c, const void *buf, size_t len);
void	httpd_ws_close(struct mg_connection *c);

#endif
