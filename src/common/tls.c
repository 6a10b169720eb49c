/* tls.c - the server's front: accepts on the public address (TLS with
 * OpenSSL, client certificates verified when asked, or plain), admits the
 * connection (tls_admit.c), reads the request within deadlines
 * (tls_request.c), then relays the connection to the HTTP server's
 * loopback port for the request's class, remembering who is behind it.
 * Slow or stalled clients so cost a front thread for a bounded time,
 * never one of the server's workers. Hand-written because Debian's
 * civetweb cannot do TLS with OpenSSL 3 and has neither deadlines for a
 * whole request nor caps per client (tls.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "common/tls_int.h"
#include "common/util.h"

void
tls_err(char *err, size_t errsz, const char *what)
{
	unsigned long e = ERR_get_error();

	snprintf(err, errsz, "%s: %s", what, e ? ERR_reason_error_string(e) :
	    strerror(errno));
	ERR_clear_error();
}

static SSL_CTX *
tls_ctx(const struct tls_front_config *cfg, char *err, size_t errsz)
{
	STACK_OF(X509_NAME) *names;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_err(err, errsz, "TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Buffers freed while a connection idles: stalled clients cost
	 * less. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
		tls_err(err, errsz, cfg->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errsz, cfg->key);
		goto fail;
	}
	if (cfg->client_ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(cfg->client_ca)) == NULL) {
			tls_err(err, errsz, cfg->client_ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (cfg->require_client ?
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int
tls_listen(const char *hostport, char *err, size_t errsz)
{
	struct addrinfo hints, *ai = NULL;
	char host[256];
	const char *colon = strrchr(hostport, ':'), *port;
	int fd = -1, one = 1;
	size_t n;

	/* HOST:PORT, [V6]:PORT, or PORT alone for every address. */
	port = colon ? colon + 1 : hostport;
	n = colon ? (size_t)(colon - hostport) : 0;
	if (n >= 2 && hostport[0] == '[' && hostport[n - 1] == ']') {
		hostport++;
		n -= 2;
	}
	if (n >= sizeof(host) || port[0] == '\0' ||
	    strspn(port, "0123456789") != strlen(port)) {
		snprintf(err, errsz, "listen address must be HOST:PORT");
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)n, hostport);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host[0] ? host : NULL, port, &hints, &ai) != 0) {
		snprintf(err, errsz, "cannot resolve %s", hostport);
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(fd, TLS_BACKLOG) < 0) {
		snprintf(err, errsz, "cannot listen on %s: %s", hostport,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Waits for fd to be ready for what SSL asked; 0 ready, -1 timeout/quit. */
int
tls_wait(int fd, int want_write, int ms)
{
	struct pollfd p = { .fd = fd, .events = want_write ? POLLOUT : POLLIN };

	return poll(&p, 1, ms) > 0 ? 0 : -1;
}

/* Milliseconds left until deadline (0 when past it). */
int
tls_left(int64_t deadline)
{
	int64_t left = deadline - util_mono_ms();

	return left > 0 ? (int)left : 0;
}

/* The handshake, done by deadline (a ClientHello dribbled a byte at a
 * time gets no more than that). */
static int
tls_handshake(SSL *ssl, int fd, int64_t deadline)
{
	int r, e;

	for (;;) {
		if ((r = SSL_accept(ssl)) == 1)
			return 0;
		e = SSL_get_error(ssl, r);
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    tls_wait(fd, e == SSL_ERROR_WANT_WRITE, tls_left(deadline)) < 0)
			return -1;
	}
}

/* One text field of a subject: "" unless it is there exactly once, as
 * UTF-8 without a NUL, and fits. */
static void
tls_name_field(X509_NAME *name, int nid, char *out, size_t outsz)
{
	unsigned char *utf8 = NULL;
	int i, len;

	out[0] = '\0';
	if ((i = X509_NAME_get_index_by_NID(name, nid, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(name, nid, i) >= 0)
		return;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
	    X509_NAME_get_entry(name, i)));
	if (len > 0 && (size_t)len < outsz && memchr(utf8, '\0',
	    (size_t)len) == NULL) {
		memcpy(out, utf8, (size_t)len);
		out[len] = '\0';
	}
	OPENSSL_free(utf8);
}

void
tls_cert_id(X509 *cert, struct tls_peer_id *id)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	memset(id, 0, sizeof(*id));
	if (cert == NULL)
		return;
	tls_name_field(X509_get_subject_name(cert), NID_commonName, id->cn,
	    sizeof(id->cn));
	tls_name_field(X509_get_subject_name(cert),
	    NID_organizationalUnitName, id->ou, sizeof(id->ou));
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
		return;
	for (i = 0; i < mdlen; i++)
		snprintf(id->fp + 2 * i, 3, "%02x", md[i]);
}

/* The verified client certificate (all "" when none). */
static void
tls_peer_cert(SSL *ssl, struct tls_peer_id *id)
{
	X509 *cert = NULL;

	if (SSL_get_verify_result(ssl) == X509_V_OK)
		cert = SSL_get1_peer_certificate(ssl);
	tls_cert_id(cert, id);
	X509_free(cert);
}

static int
tls_backend_connect(struct tls_front *t, int backend, int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	/* Bind first so the source address is fixed before we record it. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		goto fail;
	*port = ntohs(sa.sin_port);
	sa.sin_port = htons((uint16_t)t->backend[backend].port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

static void
tls_peer_set(struct tls_front *t, int port, const char *remote,
    const struct tls_peer_id *id, int add)
{
	int i;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < TLS_MAX_CONNS; i++) {
		struct tls_peer *p = &t->peers[i];
		if (add && !p->used) {
			p->used = 1;
			p->port = port;
			snprintf(p->remote, sizeof(p->remote), "%s", remote);
			p->id = *id;
			break;
		}
		if (!add && p->used && p->port == port) {
			p->used = 0;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

int
tls_front_peer(struct tls_front *t, int port, char *remote, size_t rsz,
    struct tls_peer_id *id)
{
	int i, rc = -1;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < TLS_MAX_CONNS; i++) {
		if (t->peers[i].used && t->peers[i].port == port) {
			snprintf(remote, rsz, "%s", t->peers[i].remote);
			if (id != NULL)
				*id = t->peers[i].id;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Writes all of buf to the client (through SSL unless ssl is NULL) on a
 * non-blocking socket. */
int
tls_write_all(SSL *ssl, int fd, const char *buf, size_t len)
{
	size_t off = 0;
	ssize_t w;
	int r, e;

	while (ssl == NULL && off < len) {
		if ((w = write(fd, buf + off, len - off)) > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		else if (tls_wait(fd, 1, TLS_HANDSHAKE_MS) < 0)
			return -1;
	}
	while (off < len) {
		r = SSL_write(ssl, buf + off, (int)(len - off));
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		e = SSL_get_error(ssl, r);
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    tls_wait(fd, e == SSL_ERROR_WANT_WRITE, TLS_HANDSHAKE_MS) < 0)
			return -1;
	}
	return 0;
}

static int
tls_plain_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads from the client: >0 bytes, 0 at EOF or on an error, -1 when it
 * would block (*want_write: wait for POLLOUT rather than POLLIN). */
ssize_t
tls_client_read(SSL *ssl, int fd, char *buf, size_t n, int *want_write)
{
	ssize_t r;
	int e;

	*want_write = 0;
	if (ssl == NULL) {
		r = read(fd, buf, n);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return -1;
		return r < 0 ? 0 : r;
	}
	if ((e = SSL_read(ssl, buf, (int)n)) > 0)
		return e;
	e = SSL_get_error(ssl, e);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*want_write = e == SSL_ERROR_WANT_WRITE;
		return -1;
	}
	return 0;
}

static int
tls_quitting(struct tls_front *t)
{
	int q = 0;

	if (t != NULL) {
		pthread_mutex_lock(&t->lock);
		q = t->quit;
		pthread_mutex_unlock(&t->lock);
	}
	return q;
}

/* Moves bytes both ways until either side closes (or t, when not NULL,
 * is stopping). ssl NULL: the client speaks plain. On the HTTP front (t
 * not NULL) a client's end of stream ends only what it sends: a client
 * that half-closes after its request (shutdown(SHUT_WR), HTTP/1.0 style)
 * still gets the server's answer, which was lost when the server took a
 * moment longer than the client's FIN. */
void
tls_relay(struct tls_front *t, SSL *ssl, int fd, int bfd)
{
	char buf[TLS_BUF];
	struct pollfd p[2];
	ssize_t n;
	int r, ww, sending = 1;

	for (;;) {
		if (!sending || ssl == NULL || SSL_pending(ssl) == 0) {
			p[0] = (struct pollfd){ .fd = sending ? fd : -1,
			    .events = POLLIN };
			p[1] = (struct pollfd){ .fd = bfd, .events = POLLIN };
			r = poll(p, 2, 1000);
			if ((r < 0 && errno != EINTR) || tls_quitting(t))
				return;
			if (r <= 0)
				continue;
			if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
				if ((n = read(bfd, buf, sizeof(buf))) <= 0 ||
				    tls_write_all(ssl, fd, buf, (size_t)n) < 0)
					return;
			}
			if (!sending ||
			    !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
		}
		n = tls_client_read(ssl, fd, buf, sizeof(buf), &ww);
		if (n == 0 && t != NULL) {
			sending = 0;
			shutdown(bfd, SHUT_WR);
			continue;
		}
		if (n == 0)
			return;
		if (n > 0) {
			if (tls_plain_write_all(bfd, buf, (size_t)n) < 0)
				return;
		} else if (ww && tls_wait(fd, 1, TLS_HANDSHAKE_MS) < 0) {
			return;
		}
	}
}

/* After an answer to a request whose client may still be sending: our
 * side is shut and what comes is read and dropped for a while, as a
 * close with unread data resets the connection and the client could
 * lose the answer (Apache's lingering close). */
static void
tls_linger(SSL *ssl, int fd)
{
	int64_t deadline = util_mono_ms() + TLS_LINGER_MS;
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	if (ssl != NULL)
		SSL_shutdown(ssl);
	shutdown(fd, SHUT_WR);
	while (total < TLS_LINGER_MAX) {
		if ((n = read(fd, buf, sizeof(buf))) > 0)
			total += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EINTR) ||
		    tls_wait(fd, 0, tls_left(deadline)) < 0)
			break;
	}
}

void
tls_reply(SSL *ssl, int fd, int status, const char *reason, const char *msg)
{
	char out[512];
	int n;

	n = snprintf(out, sizeof(out), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n"
	    "\r\n{\"error\":\"%s\"}", status, reason, strlen(msg) + 12, msg);
	if (n > 0 && (size_t)n < sizeof(out) &&
	    tls_write_all(ssl, fd, out, (size_t)n) == 0 && status != 408)
		tls_linger(ssl, fd);	/* a slow client gets no more time */
}

/* Logs a refused or cut-off client, at most once per TLS_LOG_MS (a flood
 * would flood the log too); counts it in cvirt_http_front_closed_total. */
void
tls_note(struct tls_front *t, const char *why, const char *remote)
{
	int64_t now = util_mono_ms();
	int n = -1;

	metrics_count("http_front_closed", "reason", why);
	pthread_mutex_lock(&t->lock);
	t->unlogged++;
	if (now - t->logged >= TLS_LOG_MS) {
		n = t->unlogged;
		t->unlogged = 0;
		t->logged = now;
	}
	pthread_mutex_unlock(&t->lock);
	if (n > 0)
		log_warnx("front: %s: a connection from %s (%d connections "
		    "refused or cut off since the last such line)", why, remote,
		    n);
}

/* Keepalive probes on a relayed client connection (TLS_KEEPIDLE_S). */
static void
tls_keepalive(int fd)
{
	int on = 1, idle = TLS_KEEPIDLE_S, intvl = TLS_KEEPINTVL_S,
	    cnt = TLS_KEEPCNT;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
	    sizeof(intvl)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0)
		log_debug("front: keepalive: %s", strerror(errno));
}

static void *
tls_conn_main(void *arg)
{
	struct tls_conn *c = arg;
	struct tls_front *t = c->t;
	struct tls_request q;
	int64_t deadline = c->accepted + TLS_HEAD_MS;
	struct tls_peer_id id;
	SSL *ssl = NULL;
	int bfd = -1, port = 0, ok;

	memset(&q, 0, sizeof(q));
	memset(&id, 0, sizeof(id));
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	if (t->ctx != NULL) {
		if ((ssl = SSL_new(t->ctx)) == NULL ||
		    SSL_set_fd(ssl, c->fd) != 1)
			goto cleanup;
		if (tls_handshake(ssl, c->fd, deadline) < 0) {
			if (tls_left(deadline) == 0)
				tls_note(t, "head deadline", c->remote);
			log_debug("tls: handshake with %s failed: %s", c->remote,
			    ERR_reason_error_string(ERR_peek_last_error()));
			goto cleanup;
		}
		tls_peer_cert(ssl, &id);
	}
	if (tls_request(t, c, ssl, &q, deadline) < 0)
		goto cleanup;
	pthread_mutex_lock(&t->lock);
	ok = tls_admitted(&t->lim, c->slot) == 0;
	pthread_mutex_unlock(&t->lock);
	if (!ok)
		goto cleanup;	/* evicted just now */
	if ((bfd = tls_backend_connect(t, q.backend, &port)) < 0) {
		log_warnx("front: cannot reach the HTTP server: %s",
		    strerror(errno));
		goto cleanup;
	}
	tls_peer_set(t, port, c->remote, &id, 1);
	tls_keepalive(c->fd);
	ok = tls_plain_write_all(bfd, q.buf, q.len) == 0;
	/* The body is the server's now: its budget is free. */
	free(q.buf);
	q.buf = NULL;
	pthread_mutex_lock(&t->lock);
	tls_body_put(&t->lim, c->slot);
	pthread_mutex_unlock(&t->lock);
	if (ok)
		tls_relay(t, ssl, c->fd, bfd);
	tls_peer_set(t, port, NULL, NULL, 0);
	if (ssl)
		SSL_shutdown(ssl);
cleanup:
	/* Plain fronts never touch OpenSSL (its first use costs ~1.3 MiB). */
	if (t->ctx != NULL)
		ERR_clear_error();
	SSL_free(ssl);
	free(q.buf);
	if (bfd >= 0)
		close(bfd);
	/* Released before the close: an eviction shuts down only the fd of
	 * a slot it holds. */
	pthread_mutex_lock(&t->lock);
	tls_release(&t->lim, c->slot);
	t->fds[c->slot] = -1;
	close(c->fd);
	t->nthreads--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	free(c);
	return NULL;
}

/* Admits a new client from addr into a slot (closing the pending
 * connection it displaces), or -1 when refused. Under t->lock. */
static int
tls_admit_locked(struct tls_front *t, int fd, const struct sockaddr *addr,
    int64_t now, char *why, size_t whysz)
{
	char key[TLS_KEY_LEN];
	int slot, victim;

	tls_addr_key(addr, key, sizeof(key));
	slot = tls_admit(&t->lim, key, now, &victim);
	if (victim >= 0 && t->fds[victim] >= 0) {
		/* Its thread sees the end of stream and closes it. */
		shutdown(t->fds[victim], SHUT_RDWR);
		snprintf(why, whysz, "displaced a pending connection");
	}
	if (slot < 0)
		snprintf(why, whysz, "refused: too many connections");
	else
		t->fds[slot] = fd;
	return slot;
}

static void
tls_accept_one(struct tls_front *t)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct tls_conn *c;
	pthread_attr_t attr;
	pthread_t th;
	char why[64] = "";
	int fd;

	if ((fd = accept4(t->lfd, (struct sockaddr *)&ss, &len,
	    SOCK_CLOEXEC)) < 0) {
		/* Out of descriptors or memory: the listener stays readable,
		 * so do not spin on it. */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("front: accept");
			util_sleep_ms(100);
		}
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->t = t;
	c->fd = fd;
	c->accepted = util_mono_ms();
	if (getnameinfo((struct sockaddr *)&ss, len, c->remote,
	    sizeof(c->remote), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(c->remote, sizeof(c->remote), "?");
	pthread_mutex_lock(&t->lock);
	if ((c->slot = tls_admit_locked(t, fd, (struct sockaddr *)&ss,
	    c->accepted, why, sizeof(why))) >= 0)
		t->nthreads++;
	pthread_mutex_unlock(&t->lock);
	if (why[0])
		tls_note(t, c->slot < 0 ? "refused" : "displaced", c->remote);
	if (c->slot < 0) {
		close(fd);
		free(c);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&th, &attr, tls_conn_main, c) == 0) {
		pthread_attr_destroy(&attr);
		return;
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&t->lock);
	tls_release(&t->lim, c->slot);
	t->fds[c->slot] = -1;
	close(fd);
	t->nthreads--;
	pthread_mutex_unlock(&t->lock);
	free(c);
}

static void *
tls_accept_main(void *arg)
{
	struct tls_front *t = arg;
	struct pollfd p[2];

	for (;;) {
		p[0] = (struct pollfd){ .fd = t->lfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = t->wake[0], .events = POLLIN };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			tls_accept_one(t);
	}
	return NULL;
}

/* How many connections the front may hold: each relayed one costs three
 * descriptors (the client's, ours to the server, the server's), a
 * pending or displaced one one, so at most 3.5 per connection, beside
 * TLS_FD_RESERVE for everything else. The soft limit is raised first
 * (up to the hard one): past it, accept() fails and the process can no
 * longer open anything (its own database, an agent, the server). */
static int
tls_conn_cap(void)
{
	struct rlimit rl;
	int64_t avail;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return TLS_MAX_CONNS;
	if (rl.rlim_cur < TLS_NOFILE_WANT && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max < TLS_NOFILE_WANT ? rl.rlim_max :
		    TLS_NOFILE_WANT;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	avail = ((int64_t)rl.rlim_cur - TLS_FD_RESERVE) * 2 / 7;
	return avail < 16 ? 16 : avail > TLS_MAX_CONNS ? TLS_MAX_CONNS :
	    (int)avail;
}

struct tls_front *
tls_front_start(const struct tls_front_config *cfg, char *err, size_t errsz)
{
	struct tls_front *t;
	int i, cap = tls_conn_cap();

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	t->lfd = t->wake[0] = t->wake[1] = -1;
	t->nbackends = cfg->nbackends < 1 ? 1 : cfg->nbackends > TLS_BACKENDS ?
	    TLS_BACKENDS : cfg->nbackends;
	memcpy(t->backend, cfg->backend, sizeof(t->backend));
	t->classify = cfg->classify;
	t->classify_arg = cfg->classify_arg;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (tls_limits_init(&t->lim, cap, TLS_PER_ADDR,
	    TLS_PENDING_PER_ADDR) < 0 ||
	    (t->fds = calloc((size_t)t->lim.nslots, sizeof(int))) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	for (i = 0; i < t->lim.nslots; i++)
		t->fds[i] = -1;
	if ((cfg->cert != NULL && (t->ctx = tls_ctx(cfg, err, errsz)) == NULL) ||
	    (t->lfd = tls_listen(cfg->listen, err, errsz)) < 0)
		goto fail;
	if (pipe2(t->wake, O_CLOEXEC) < 0 ||
	    pthread_create(&t->thread, NULL, tls_accept_main, t) != 0) {
		snprintf(err, errsz, "cannot start the TLS listener");
		goto fail;
	}
	log_debug("front on %s: at most %d connections, %d per address",
	    cfg->listen, t->lim.max, t->lim.per_addr);
	return t;
fail:
	if (t->lfd >= 0)
		close(t->lfd);
	if (t->wake[0] >= 0) {
		close(t->wake[0]);
		close(t->wake[1]);
	}
	SSL_CTX_free(t->ctx);
	tls_limits_free(&t->lim);
	free(t->fds);
	free(t);
	return NULL;
}

void
tls_front_stop(struct tls_front *t)
{
	int i;

	if (t == NULL)
		return;
	if (write(t->wake[1], "x", 1) < 0)
		log_warnx("tls: cannot wake the listener");
	pthread_join(t->thread, NULL);
	close(t->lfd);
	/* Relays notice quit within a poll interval; clients still sending
	 * their request are cut off now rather than at their deadline. */
	pthread_mutex_lock(&t->lock);
	t->quit = 1;
	for (i = 0; i < t->lim.nslots; i++)
		if (t->fds[i] >= 0)
			shutdown(t->fds[i], SHUT_RDWR);
	while (t->nthreads > 0)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

/*
 * Separate from tls_front_stop: the HTTP server's handler threads ask the
 * front who their peer is (tls_front_peer) until the server has stopped, so
 * the front's memory goes only after that.
 */
void
tls_front_free(struct tls_front *t)
{
	if (t == NULL)
		return;
	close(t->wake[0]);
	close(t->wake[1]);
	SSL_CTX_free(t->ctx);
	tls_limits_free(&t->lim);
	free(t->fds);
	free(t);
}
