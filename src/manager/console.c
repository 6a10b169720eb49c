/* console.c - the console websockets: client <-> manager <-> agent <-> QEMU.
 * The manager relays frames between the client's websocket and one it
 * opens to the VM's agent; the ticket says which console (serial or VNC). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "common/log.h"
#include "common/ticket.h"
#include "manager/manager_int.h"

/* Consoles open at once: each holds a "long" worker here and one on its
 * host for as long as it is open (manager.c, agent.c size those pools). */
#define CONSOLE_MAX	32

static struct ticket_store console_tickets = TICKET_STORE_INIT(30000);
static atomic_int console_count;	/* open (or opening) */

int
console_ticket_kind(const char *uuid, const char *host, const char *kind,
    char *out, size_t outsz)
{
	char data[TICKET_DATA];

	if (atomic_load(&console_count) >= CONSOLE_MAX) {
		errno = EBUSY;
		return -1;
	}
	if (util_fmt(data, sizeof(data), "%s %s %s", uuid, host, kind) < 0)
		return -1;
	return ticket_issue(&console_tickets, data, out, outsz);
}

int
console_ticket_new(const char *uuid, const char *host, char *out, size_t outsz)
{
	return console_ticket_kind(uuid, host, "serial", out, outsz);
}

/* Redeem a ticket into the VM's uuid, host and console kind. */
static int
console_ticket_take(const char *ticket, char *uuid, size_t usz, char *host,
    size_t hsz, int *vnc)
{
	char data[TICKET_DATA], *sp, *kind;

	if (ticket_redeem(&console_tickets, ticket, data, sizeof(data)) < 0 ||
	    (sp = strchr(data, ' ')) == NULL ||
	    (kind = strchr(sp + 1, ' ')) == NULL)
		return -1;
	*sp = '\0';
	*kind++ = '\0';
	*vnc = strcmp(kind, "vnc") == 0;
	if (util_fmt(uuid, usz, "%s", data) < 0 ||
	    util_fmt(host, hsz, "%s", sp + 1) < 0)
		return -1;
	return 0;
}

/* What the agent sends before the client's handshake is done (QEMU's
 * VNC server speaks first) waits here, up to this much. */
#define CONSOLE_PENDING_MAX	(256 * 1024)

/* Shared by both directions; freed when both sides have let go. */
struct console_link {
	pthread_mutex_t		 lock;
	struct mg_connection	*client;	/* the user's websocket */
	struct mg_connection	*agent;		/* our websocket to the agent */
	int			 client_gone;
	int			 client_ready;	/* its handshake is done */
	int			 agent_gone;	/* close the client once ready */
	char			*pending;	/* agent data held until then */
	size_t			 npending;
	int			 refs;
};

static void
console_put(struct console_link *l)
{
	int last;

	pthread_mutex_lock(&l->lock);
	last = --l->refs == 0;
	pthread_mutex_unlock(&l->lock);
	if (last) {
		pthread_mutex_destroy(&l->lock);
		free(l->pending);
		free(l);
	}
}

static int
console_from_agent(struct mg_connection *c, int bits, char *data, size_t len,
    void *ud)
{
	struct console_link *l = ud;
	int op = bits & 0x0f, keep = 1;
	char *p;

	(void)c;
	if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
		return 0;
	if (op != MG_WEBSOCKET_OPCODE_TEXT && op != MG_WEBSOCKET_OPCODE_BINARY &&
	    op != MG_WEBSOCKET_OPCODE_CONTINUATION)
		return 1;
	pthread_mutex_lock(&l->lock);
	if (!l->client_gone && l->client_ready) {
		httpd_ws_send(l->client, data, len);
	} else if (!l->client_gone) {
		/* The client's upgrade reply is not out yet: a frame now
		 * would come before it. */
		if (l->npending + len <= CONSOLE_PENDING_MAX &&
		    (p = realloc(l->pending, l->npending + len + 1)) != NULL) {
			memcpy(p + l->npending, data, len);
			l->pending = p;
			l->npending += len;
		} else {
			log_warnx("console: the client is slow to connect; "
			    "closing");
			keep = 0;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return keep;
}

static void
console_agent_closed(const struct mg_connection *c, void *ud)
{
	struct console_link *l = ud;

	(void)c;
	pthread_mutex_lock(&l->lock);
	/* Before the client's upgrade reply is out, a close frame would
	 * come before it: console_ready closes it then. */
	l->agent_gone = 1;
	if (!l->client_gone && l->client_ready)
		httpd_ws_close(l->client);
	pthread_mutex_unlock(&l->lock);
	console_put(l);
}

/* Ask the agent for a ticket and open a websocket to it. */
static struct mg_connection *
console_dial(const char *host, const char *uuid, int vnc,
    struct console_link *l)
{
	char path[256], err[256], hostport[160], *colon;
	struct mg_connection *c = NULL;
	json_t *reply = NULL, *row = NULL;
	const char *url;
	int status = 0, tls, lport = 0;
	uint64_t port;

	snprintf(path, sizeof(path), "/agent/v1/vms/%s/%s", uuid,
	    vnc ? "vnc" : "console");
	if (agentc_call(host, "POST", path, NULL, 10000, &status, &reply, err,
	    sizeof(err)) < 0 || status != 200 ||
	    !json_is_string(json_object_get(reply, "ticket"))) {
		log_warnx("console: host %s: %s", host, err);
		goto cleanup;
	}
	row = db_row("SELECT url FROM hosts WHERE name = ?", "s", host);
	url = row ? json_string_value(json_object_get(row, "url")) : NULL;
	tls = url != NULL && strncmp(url, "https://", 8) == 0;
	if (url == NULL || (!tls && strncmp(url, "http://", 7) != 0) ||
	    util_fmt(hostport, sizeof(hostport), "%s", url + (tls ? 8 : 7)) < 0 ||
	    (colon = strrchr(hostport, ':')) == NULL)
		goto cleanup;
	*colon = '\0';
	colon[1 + strcspn(colon + 1, "/")] = '\0';
	if (util_parse_u64(colon + 1, 1, 65535, &port) < 0 ||
	    util_fmt(path, sizeof(path), "/agent/v1/%s?ticket=%s",
	    vnc ? "vnc" : "console",
	    json_string_value(json_object_get(reply, "ticket"))) < 0)
		goto cleanup;
	/* civetweb's client cannot do TLS with this OpenSSL: a loopback
	 * tunnel with our client certificate can. */
	if (tls && pki_mgr_tunnel(host, hostport, (int)port, &lport, err,
	    sizeof(err)) < 0) {
		log_warnx("console: host %s: %s", host, err);
		goto cleanup;
	}
	c = mg_connect_websocket_client(tls ? "127.0.0.1" : hostport,
	    tls ? lport : (int)port, 0, err, sizeof(err),
	    path, NULL, console_from_agent, console_agent_closed, l);
	if (c == NULL)
		log_warnx("console: cannot connect to host %s: %s", host, err);
cleanup:
	json_decref(reply);
	json_decref(row);
	return c;
}

static void *
console_open(struct mg_connection *c, const char *query, void *ctx)
{
	char ticket[64], uuid[UTIL_UUID_LEN + 1], host[UTIL_NAME_MAX + 1];
	struct console_link *l;
	int vnc = 0;

	(void)ctx;
	if (query == NULL || mg_get_var(query, strlen(query), "ticket", ticket,
	    sizeof(ticket)) < 0 || console_ticket_take(ticket, uuid,
	    sizeof(uuid), host, sizeof(host), &vnc) < 0) {
		log_warnx("console: invalid or expired ticket");
		return NULL;
	}
	/* Tickets are refused at the cap, but several may be out. */
	if (atomic_fetch_add(&console_count, 1) >= CONSOLE_MAX) {
		log_warnx("console: %d consoles open already", CONSOLE_MAX);
		goto fail;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto fail;
	pthread_mutex_init(&l->lock, NULL);
	l->client = c;
	l->refs = 2;	/* the client side and the agent side */
	if ((l->agent = console_dial(host, uuid, vnc, l)) == NULL) {
		pthread_mutex_destroy(&l->lock);
		free(l);
		goto fail;
	}
	return l;
fail:
	atomic_fetch_sub(&console_count, 1);
	return NULL;
}

/* The client's handshake is done: what the agent sent meanwhile first,
 * then its close if it has hung up meanwhile. */
static void
console_ready(void *state)
{
	struct console_link *l = state;

	pthread_mutex_lock(&l->lock);
	if (l->npending > 0)
		httpd_ws_send(l->client, l->pending, l->npending);
	free(l->pending);
	l->pending = NULL;
	l->npending = 0;
	l->client_ready = 1;
	if (l->agent_gone)
		httpd_ws_close(l->client);
	pthread_mutex_unlock(&l->lock);
}

static void
console_data(void *state, const char *buf, size_t len)
{
	struct console_link *l = state;

	mg_websocket_client_write(l->agent, MG_WEBSOCKET_OPCODE_BINARY, buf, len);
}

static void
console_close(void *state)
{
	struct console_link *l = state;

	/* No longer open, though closing holds this worker a few seconds
	 * more (civetweb's mg_close_connection waits out its client
	 * thread's poll): a user who closes and reopens is not refused. */
	atomic_fetch_sub(&console_count, 1);
	pthread_mutex_lock(&l->lock);
	l->client_gone = 1;
	pthread_mutex_unlock(&l->lock);
	/* Stops the agent side; its close callback drops the other ref. */
	mg_close_connection(l->agent);
	console_put(l);
}

const struct httpd_ws_route console_ws_route = {
	"/api/v1/console", console_open, console_ready, console_data,
	console_close,
};
