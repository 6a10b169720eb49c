/* tls_int.h - what the front (tls.c) shares with the tunnel (tls_tunnel.c). */
#ifndef CVIRT_TLS_INT_H
#define CVIRT_TLS_INT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "common/tls.h"

#define TLS_HANDSHAKE_MS	10000	/* handshakes and each stalled write */

/* err gets what OpenSSL (or errno) says about what failed. */
void	tls_err(char *err, size_t errsz, const char *what);
/* Moves bytes between the client (through ssl, or plain when ssl is NULL;
 * fd non-blocking) and bfd until either side closes or t (when not NULL)
 * is stopping. */
void	tls_relay(struct tls_front *t, SSL *ssl, int fd, int bfd);

#endif
