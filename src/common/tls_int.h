/* tls_int.h - what the front (tls.c, tls_request.c), its admission table
 * (tls_admit.c) and the tunnel (tls_tunnel.c) share. */
#ifndef CVIRT_TLS_INT_H
#define CVIRT_TLS_INT_H

#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "common/tls.h"

#define TLS_HANDSHAKE_MS	10000	/* the tunnel's handshake; each stalled
					 * write */

/* tls_admit.c - who may hold a connection to the front. A connection is
 * pending while its client still sends the request (and the TLS
 * handshake before it), then relayed. Caps per client address (IPv6
 * addresses by their /64) and in all; when pending connections fill a
 * cap, the oldest pending one of the address with the most pending goes,
 * so a client that sends its request at once always gets in and
 * stallers only displace each other. Pure: the caller locks. */
#define TLS_KEY_LEN	48

enum tls_slot_state { TLS_FREE, TLS_PENDING, TLS_RELAYED, TLS_EVICTED };

struct tls_slot {
	enum tls_slot_state	 state;
	int			 addr;		/* index in addrs, or -1 */
	int64_t			 since;		/* admitted, ms */
	size_t			 body;		/* bytes of budget it holds */
};

struct tls_addr {
	char	 key[TLS_KEY_LEN];	/* "" when free */
	int	 nconns;		/* pending + relayed */
	int	 npending;
	size_t	 buffered;		/* its connections' bodies */
};

struct tls_limits {
	int		 max;		/* pending + relayed connections */
	int		 per_addr;	/* of them from one address */
	int		 pending_max;
	int		 pending_per_addr;
	int		 nconns, npending;
	size_t		 buffered_max;	/* bodies read ahead, all of them */
	size_t		 buffered_per_addr;	/* ... from one address */
	size_t		 buffered;
	int		 nslots;	/* max + pending_max: evicted ones
					 * hold a slot until released */
	struct tls_slot	*slots;
	struct tls_addr	*addrs;		/* nslots of them */
};

/* Sizes l for max connections (pending_max = max / 2; the body budget
 * TLS_BUFFERED_MAX, TLS_BUFFERED_PER_ADDR of it per address); 0, or -1
 * out of memory. */
int	tls_limits_init(struct tls_limits *l, int max, int per_addr,
	    int pending_per_addr);
void	tls_limits_free(struct tls_limits *l);
/* Admits a connection from key at now_ms: its slot, or -1 when refused
 * (its address holds per_addr relayed connections, or the front max and
 * none is pending). *victim: a pending slot the caller closes at once
 * (now TLS_EVICTED, counted nowhere), or -1. */
int	tls_admit(struct tls_limits *l, const char *key, int64_t now_ms,
	    int *victim);
/* The slot's request is in: it is relayed from now on. -1 when it was
 * evicted meanwhile (the caller closes it). */
int	tls_admitted(struct tls_limits *l, int slot);
/* The connection is closed: its slot (and its body budget) is free. */
void	tls_release(struct tls_limits *l, int slot);
/* Reserves n bytes of the body budget for slot (pending, holding none).
 * -1 when its address would hold over buffered_per_addr; -2 when slot
 * was displaced meanwhile (the caller closes it unanswered). When the
 * front's budget is short, pending connections holding the most are
 * displaced (as in tls_admit: now TLS_EVICTED, their budget free) until
 * it fits: victims gets their slots (*nv of them, at most maxv), which
 * the caller closes at once, also on -1 (still short after maxv). A
 * client whose body comes at once (an agent's report) so always gets
 * in; clients that dribble bodies only displace each other. */
int	tls_body_take(struct tls_limits *l, int slot, size_t n, int *victims,
	    int maxv, int *nv);
/* The slot's body is out of the front's memory: its budget is free. */
void	tls_body_put(struct tls_limits *l, int slot);
/* The admission key of a client address: IPv4 (also IPv4-mapped IPv6)
 * as dotted quad, other IPv6 as its /64 ("2001:db8:1:2::/64"). */
void	tls_addr_key(const struct sockaddr *sa, char *key, size_t keysz);

/* tls.c - the front: its state is shared by tls.c and tls_request.c. */
#define TLS_MAX_CONNS		1024	/* pending + relayed, at most */
#define TLS_PER_ADDR		64	/* of them from one client address */
#define TLS_PENDING_PER_ADDR	16	/* ... still sending their request */
#define TLS_FD_RESERVE		256	/* descriptors left for the rest */
/* Connections the kernel queues until the front accepts them: past it,
 * a client's SYN is dropped and it tries again only after a second (a
 * flood that reconnected faster than a loaded front accepted made an
 * admin's GET take 1 s with 128). */
#define TLS_BACKLOG		1024
#define TLS_NOFILE_WANT		16384	/* soft limit raised to this */
#define TLS_BUF			16384
#define TLS_HEAD_MAX		16384	/* request line and headers */
#define TLS_BUFFERED_MAX	(32 * 1024 * 1024)	/* bodies read ahead */
/* ... from one address: a few addresses cannot fill the budget (then
 * their bodies would displace each other, each a 1 MiB allocation) */
#define TLS_BUFFERED_PER_ADDR	(4 * 1024 * 1024)
#define TLS_BODY_VICTIMS	64	/* displaced for one body, at most */
#define TLS_HEAD_MS		10000	/* handshake and head, from accept */
#define TLS_BODY_MS		30000	/* a body read ahead, after the head */
#define TLS_LOG_MS		10000	/* refusals logged at most this often */
#define TLS_LINGER_MS		2000	/* reading what follows an error */
#define TLS_LINGER_MAX		(4 * 1024 * 1024)	/* ... at most */
/* A relayed connection has no deadline (a console left at a login
 * prompt is idle for days), so the kernel checks that its client is
 * still there: a probe after this many seconds without traffic, then
 * every TLS_KEEPINTVL_S; TLS_KEEPCNT unanswered ones (the client's host
 * gone, a cable pulled: 40 s) end it, and with it the console that held
 * one of CONSOLE_MAX. A live client's kernel answers whatever the
 * program on it does. */
#define TLS_KEEPIDLE_S		20
#define TLS_KEEPINTVL_S		5
#define TLS_KEEPCNT		4

struct tls_peer {
	int	used;
	int	port;			/* backend connection's source port */
	char	remote[64];
	struct tls_peer_id id;
};

struct tls_front {
	SSL_CTX			*ctx;
	int			 lfd;
	int			 wake[2];
	struct tls_backend	 backend[TLS_BACKENDS];
	int			 nbackends;
	int			(*classify)(void *, const char *, const char *,
				    const char *);
	void			*classify_arg;
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	int			 quit;
	int			 nthreads;	/* connection threads */
	struct tls_limits	 lim;
	int			*fds;		/* per admission slot */
	int64_t			 logged;	/* last refusal logged, ms */
	int			 unlogged;	/* refusals since */
	struct tls_peer		 peers[TLS_MAX_CONNS];
};

struct tls_conn {
	struct tls_front	*t;
	int			 fd;
	int			 slot;		/* in t->lim */
	int64_t			 accepted;	/* ms */
	char			 remote[64];
};

/* One request as read ahead: head (and body) in buf. */
struct tls_request {
	char	*buf;
	size_t	 len;		/* bytes in buf */
	size_t	 headlen;	/* through the blank line */
	int	 backend;
};

/* err gets what OpenSSL (or errno) says about what failed. */
void	tls_err(char *err, size_t errsz, const char *what);
/* cert's subject CN and OU and its SHA-256 fingerprint into id; a field
 * the subject holds twice, or that is not plain text that fits, is ""
 * (never one of two picked). */
struct x509_st;
void	tls_cert_id(struct x509_st *cert, struct tls_peer_id *id);
/* Moves bytes between the client (through ssl, or plain when ssl is NULL;
 * fd non-blocking) and bfd until either side closes or t (when not NULL)
 * is stopping. */
void	tls_relay(struct tls_front *t, SSL *ssl, int fd, int bfd);
/* Polls fd for reading (or writing); 0 ready, -1 after ms or an error. */
int	tls_wait(int fd, int want_write, int ms);
/* Milliseconds left until deadline (0 when past it). */
int	tls_left(int64_t deadline);
/* Reads from the client: >0 bytes, 0 at EOF or on an error, -1 when it
 * would block (*want_write: wait for POLLOUT rather than POLLIN). */
ssize_t	tls_client_read(SSL *ssl, int fd, char *buf, size_t n,
	    int *want_write);
/* Writes all of buf to the client (through SSL unless ssl is NULL). */
int	tls_write_all(SSL *ssl, int fd, const char *buf, size_t len);
/* An error reply {"error": msg} and Connection: close; but after a 408,
 * what the client still sends is read and dropped for up to
 * TLS_LINGER_MS so that it gets the answer. */
void	tls_reply(SSL *ssl, int fd, int status, const char *reason,
	    const char *msg);
/* Counts (and now and then logs) a client cut off or refused for why. */
void	tls_note(struct tls_front *t, const char *why, const char *remote);

/* tls_request.c - reads a request's head by deadline (the handshake's),
 * then, unless its backend streams bodies, its body within TLS_BODY_MS
 * (answering Expect: 100-continue); into q (q->buf malloc'd, the
 * caller frees it). 0, or -1 after replying (timeout, oversized, ...)
 * or at EOF. */
int	tls_request(struct tls_front *t, struct tls_conn *c, SSL *ssl,
	    struct tls_request *q, int64_t deadline);

#endif
