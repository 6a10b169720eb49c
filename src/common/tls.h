/* tls.h - the front of the HTTP server: TLS (OpenSSL) or plain, each
 * request's head (and, but for streamed bodies, its body) read within
 * deadlines before the server sees it. Debian's civetweb loads an OpenSSL
 * 1.1 symbol table at run time and crashes on OpenSSL 3, and gives each
 * connection a worker for as long as the client takes, so civetweb
 * listens in plain on loopback behind this. */
#ifndef CVIRT_TLS_H
#define CVIRT_TLS_H

#include <stddef.h>

struct tls_front;

/* Where the front relays a request: a plain server on 127.0.0.1. With
 * read_ahead the front reads the body first (Content-Length at most
 * TLS_BODY_MAX, within TLS_BODY_MS; it answers Expect: 100-continue
 * itself); without, the body streams through to the server. */
struct tls_backend {
	int	port;
	int	read_ahead;
};

#define TLS_BACKENDS	4
#define TLS_BODY_MAX	(1024 * 1024)	/* a body read ahead */

struct tls_front_config {
	const char	*listen;	/* public HOST:PORT */
	const char	*cert;		/* PEM certificate (chain); NULL: plain */
	const char	*key;		/* PEM private key */
	const char	*client_ca;	/* CA for client certs, or NULL */
	int		 require_client; /* refuse clients without a cert */
	struct tls_backend backend[TLS_BACKENDS];
	int		 nbackends;
	/* Which backend serves a request, from its method, request target
	 * and head (request line and headers, NUL-terminated); NULL or an
	 * index out of range: backend 0. */
	int		(*classify)(void *arg, const char *method,
			    const char *target, const char *head);
	void		*classify_arg;
};

/* Listens and relays each TLS connection to the backend; NULL with err. */
struct tls_front *tls_front_start(const struct tls_front_config *cfg,
	    char *err, size_t errsz);
void	 tls_front_stop(struct tls_front *t);
void	 tls_front_free(struct tls_front *t);
/* A verified client certificate: its subject's CN and OU and the
 * SHA-256 of its DER (64 hex digits); all "" when the client sent none. */
struct tls_peer_id {
	char	cn[64];
	char	ou[32];
	char	fp[65];
};

/* Who is behind the backend connection whose source port is port: the
 * client's address and its verified certificate (id, or NULL).
 * 0 when port is one of ours, -1 otherwise (a connection that bypassed
 * TLS). */
int	 tls_front_peer(struct tls_front *t, int port, char *remote,
	    size_t rsz, struct tls_peer_id *id);

/* Client side: a loopback port whose first connection (within 10 s) is
 * relayed over TLS to host:port, for clients (civetweb's websocket client)
 * that cannot speak TLS themselves. The server's certificate is checked
 * against ca_file (NULL: the system's store) and host before this returns. */
struct tls_tunnel_config {
	const char	*host;
	int		 port;
	const char	*ca_file;
	const char	*cert;		/* client certificate, or NULL */
	const char	*key;
	/* NULL, or who the server must be besides host: a certificate
	 * whose subject CN is expect_name and that X509_check_host accepts
	 * for it (a cluster host's name), with OU expect_ou unless NULL. */
	const char	*expect_name;
	const char	*expect_ou;
};
int	 tls_tunnel_open(const struct tls_tunnel_config *cfg, int *local_port,
	    char *err, size_t errsz);

/* One client connection: a TLS session over the connected socket fd (its
 * timeouts bound the handshake), the server checked as for a tunnel (port
 * unused). The caller keeps fd and closes it after tls_client_close. NULL
 * with err. */
struct ssl_st;
struct ssl_st *tls_client_open(int fd, const struct tls_tunnel_config *cfg,
	    char *err, size_t errsz);
void	 tls_client_close(struct ssl_st *ssl);

#endif
