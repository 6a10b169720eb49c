/* tls_tunnel.c - the client side: a loopback port tunnelled over TLS, for
 * clients (civetweb's websocket client) that cannot speak TLS themselves;
 * the server's certificate and name are checked before any byte flows. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/tls.h"
#include "common/tls_int.h"

struct tls_tunnel {
	SSL	*ssl;
	int	 fd;		/* TLS connection to the server */
	int	 lfd;		/* loopback listener for one client */
};

static int
tls_connect_tcp(const char *host, int port, char *err, size_t errsz)
{
	struct addrinfo hints, *ai = NULL, *p;
	char ports[16];
	int fd = -1;

	snprintf(ports, sizeof(ports), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, ports, &hints, &ai) != 0) {
		snprintf(err, errsz, "cannot resolve %s", host);
		return -1;
	}
	for (p = ai; p != NULL; p = p->ai_next) {
		if ((fd = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC,
		    0)) < 0)
			continue;
		if (connect(fd, p->ai_addr, p->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		snprintf(err, errsz, "cannot connect to %s:%d: %s", host, port,
		    strerror(errno));
	freeaddrinfo(ai);
	return fd;
}

static void
tls_tunnel_free(struct tls_tunnel *tt)
{
	SSL_free(tt->ssl);
	if (tt->fd >= 0)
		close(tt->fd);
	if (tt->lfd >= 0)
		close(tt->lfd);
	free(tt);
}

static void *
tls_tunnel_main(void *arg)
{
	struct tls_tunnel *tt = arg;
	struct pollfd p = { .fd = tt->lfd, .events = POLLIN };
	int cfd;

	/* One client, soon: the caller connects right after opening. */
	if (poll(&p, 1, TLS_HANDSHAKE_MS) == 1 &&
	    (cfd = accept4(tt->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(tt->lfd);
		tt->lfd = -1;
		fcntl(tt->fd, F_SETFL, fcntl(tt->fd, F_GETFL) | O_NONBLOCK);
		tls_relay(NULL, tt->ssl, tt->fd, cfd);
		SSL_shutdown(tt->ssl);
		close(cfd);
	}
	ERR_clear_error();
	tls_tunnel_free(tt);
	return NULL;
}

/* The verified server is the one expected by name (and OU): its subject
 * CN is the name and OpenSSL's X509_check_host accepts the certificate
 * for it, so a certificate of another host of the same CA does not pass
 * for this one, whatever address it was issued for. 0 or -1 with err. */
static int
tls_client_identity(SSL *ssl, const struct tls_tunnel_config *cfg,
    char *err, size_t errsz)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	struct tls_peer_id id;

	tls_cert_id(cert, &id);
	if (cert == NULL || strcmp(id.cn, cfg->expect_name) != 0 ||
	    X509_check_host(cert, cfg->expect_name, 0,
	    X509_CHECK_FLAG_NO_WILDCARDS, NULL) != 1) {
		snprintf(err, errsz, "host %s presented a certificate for %s",
		    cfg->expect_name, id.cn[0] ? id.cn : "no single host");
		return -1;
	}
	if (cfg->expect_ou && strcmp(id.ou, cfg->expect_ou) != 0) {
		snprintf(err, errsz, "host %s presented a certificate of OU "
		    "\"%s\", not \"%s\"", cfg->expect_name, id.ou,
		    cfg->expect_ou);
		return -1;
	}
	return 0;
}

SSL *
tls_client_open(int fd, const struct tls_tunnel_config *cfg, char *err,
    size_t errsz)
{
	unsigned char ip[16];
	int is_ip = inet_pton(AF_INET, cfg->host, ip) == 1 ||
	    inet_pton(AF_INET6, cfg->host, ip) == 1;
	SSL_CTX *ctx;
	SSL *ssl = NULL;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((cfg->ca_file ? SSL_CTX_load_verify_locations(ctx,
	    cfg->ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx)) != 1)
		goto fail;
	if (cfg->cert && (SSL_CTX_use_certificate_chain_file(ctx,
	    cfg->cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, cfg->key,
	    SSL_FILETYPE_PEM) != 1))
		goto fail;
	/* The session holds the context from here. */
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
	    cfg->host) != 1 : (SSL_set_tlsext_host_name(ssl,
	    cfg->host) != 1 || SSL_set1_host(ssl, cfg->host) != 1))
		goto fail;
	if (SSL_connect(ssl) != 1)
		goto fail;
	if (cfg->expect_name && tls_client_identity(ssl, cfg, err, errsz) < 0)
		goto refused;
	SSL_CTX_free(ctx);
	return ssl;
fail:
	tls_err(err, errsz, "TLS");
refused:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

void
tls_client_close(SSL *ssl)
{
	if (ssl == NULL)
		return;
	SSL_free(ssl);
	ERR_clear_error();
}

int
tls_tunnel_open(const struct tls_tunnel_config *cfg, int *local_port,
    char *err, size_t errsz)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct tls_tunnel *tt;
	struct timeval tv = { .tv_sec = TLS_HANDSHAKE_MS / 1000 };
	pthread_attr_t attr;
	pthread_t th;

	if ((tt = calloc(1, sizeof(*tt))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	tt->lfd = -1;
	if ((tt->fd = tls_connect_tcp(cfg->host, cfg->port, err, errsz)) < 0)
		goto fail;
	setsockopt(tt->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if ((tt->ssl = tls_client_open(tt->fd, cfg, err, errsz)) == NULL)
		goto fail;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((tt->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(tt->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(tt->lfd, 1) < 0 ||
	    getsockname(tt->lfd, (struct sockaddr *)&sa, &len) < 0) {
		snprintf(err, errsz, "loopback listener: %s", strerror(errno));
		goto fail;
	}
	*local_port = ntohs(sa.sin_port);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, tls_tunnel_main, tt) != 0) {
		pthread_attr_destroy(&attr);
		snprintf(err, errsz, "cannot start the tunnel");
		goto fail;
	}
	pthread_attr_destroy(&attr);
	return 0;
fail:
	tls_tunnel_free(tt);
	return -1;
}
