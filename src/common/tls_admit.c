/* tls_admit.c - the front's admission table: connections per client
 * address and in all, pending (still sending their request) or relayed;
 * which pending connection makes room when a cap is reached. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tls_int.h"

int
tls_limits_init(struct tls_limits *l, int max, int per_addr,
    int pending_per_addr)
{
	int i;

	memset(l, 0, sizeof(*l));
	l->max = max > 2 ? max : 2;
	l->per_addr = per_addr;
	l->pending_max = l->max / 2;
	l->pending_per_addr = pending_per_addr;
	l->buffered_max = TLS_BUFFERED_MAX;
	l->buffered_per_addr = TLS_BUFFERED_PER_ADDR;
	l->nslots = l->max + l->pending_max;
	l->slots = calloc((size_t)l->nslots, sizeof(*l->slots));
	l->addrs = calloc((size_t)l->nslots, sizeof(*l->addrs));
	if (l->slots == NULL || l->addrs == NULL) {
		tls_limits_free(l);
		return -1;
	}
	for (i = 0; i < l->nslots; i++)
		l->slots[i].addr = -1;
	return 0;
}

void
tls_limits_free(struct tls_limits *l)
{
	if (l == NULL)
		return;
	free(l->slots);
	free(l->addrs);
	l->slots = NULL;
	l->addrs = NULL;
}

/* The address entry of key, or a free one (key copied) when create; -1
 * when absent (or the table is full). */
static int
tls_addr_find(struct tls_limits *l, const char *key, int create)
{
	int i, free_i = -1;

	for (i = 0; i < l->nslots; i++) {
		if (l->addrs[i].key[0] == '\0') {
			if (free_i < 0)
				free_i = i;
		} else if (strcmp(l->addrs[i].key, key) == 0) {
			return i;
		}
	}
	if (!create || free_i < 0)
		return -1;
	snprintf(l->addrs[free_i].key, sizeof(l->addrs[free_i].key), "%s",
	    key);
	l->addrs[free_i].nconns = l->addrs[free_i].npending = 0;
	return free_i;
}

/* A slot stops counting: pending or relayed -> gone from the counts. */
static void
tls_uncount(struct tls_limits *l, struct tls_slot *s)
{
	struct tls_addr *a = &l->addrs[s->addr];

	if (s->state == TLS_PENDING) {
		l->npending--;
		a->npending--;
	}
	a->buffered -= s->body;
	l->buffered -= s->body;
	s->body = 0;
	l->nconns--;
	if (--a->nconns == 0)
		a->key[0] = '\0';
	s->addr = -1;
}

/* The oldest pending slot of address a (any address when a < 0). */
static int
tls_oldest_pending(struct tls_limits *l, int a)
{
	int i, best = -1;

	for (i = 0; i < l->nslots; i++) {
		struct tls_slot *s = &l->slots[i];
		if (s->state != TLS_PENDING || (a >= 0 && s->addr != a))
			continue;
		if (best < 0 || s->since < l->slots[best].since)
			best = i;
	}
	return best;
}

/* The pending slot to close when the front is full: the oldest pending
 * one of the addresses with the most pending. Among addresses tied (a
 * crowd of many addresses holds about one each), the oldest: it was the
 * first address in the table, and an admin's fresh connection, one
 * pending among a hundred idle ones, was closed before it sent its
 * request (test_hostile, 1 GET in 400). */
static int
tls_victim(struct tls_limits *l)
{
	int i, most = 0, best = -1;

	for (i = 0; i < l->nslots; i++)
		if (l->addrs[i].key[0] != '\0' && l->addrs[i].npending > most)
			most = l->addrs[i].npending;
	for (i = 0; most > 0 && i < l->nslots; i++) {
		struct tls_slot *s = &l->slots[i];

		if (s->state != TLS_PENDING || l->addrs[s->addr].npending !=
		    most)
			continue;
		if (best < 0 || s->since < l->slots[best].since)
			best = i;
	}
	return best;
}

static void
tls_evict(struct tls_limits *l, int slot)
{
	tls_uncount(l, &l->slots[slot]);
	l->slots[slot].state = TLS_EVICTED;
}

int
tls_admit(struct tls_limits *l, const char *key, int64_t now_ms,
    int *victim)
{
	struct tls_addr *a;
	int ai, i, slot = -1;

	*victim = -1;
	ai = tls_addr_find(l, key, 0);
	a = ai >= 0 ? &l->addrs[ai] : NULL;
	/* Room for this one: its own address's pending first, then the
	 * front's. */
	if (a != NULL && (a->nconns >= l->per_addr ||
	    a->npending >= l->pending_per_addr))
		*victim = tls_oldest_pending(l, ai);
	else if (l->npending >= l->pending_max || l->nconns >= l->max)
		*victim = tls_victim(l);
	if (*victim >= 0) {
		tls_evict(l, *victim);
		ai = tls_addr_find(l, key, 0);	/* it may have gone */
		a = ai >= 0 ? &l->addrs[ai] : NULL;
	}
	if ((a != NULL && a->nconns >= l->per_addr) || l->nconns >= l->max)
		return -1;
	for (i = 0; i < l->nslots && slot < 0; i++)
		if (l->slots[i].state == TLS_FREE)
			slot = i;
	if (slot < 0 || (ai < 0 && (ai = tls_addr_find(l, key, 1)) < 0))
		return -1;
	l->slots[slot] = (struct tls_slot){ .state = TLS_PENDING, .addr = ai,
	    .since = now_ms };
	l->addrs[ai].nconns++;
	l->addrs[ai].npending++;
	l->nconns++;
	l->npending++;
	return slot;
}

int
tls_admitted(struct tls_limits *l, int slot)
{
	struct tls_slot *s = &l->slots[slot];

	if (s->state != TLS_PENDING)
		return -1;
	s->state = TLS_RELAYED;
	l->npending--;
	l->addrs[s->addr].npending--;
	return 0;
}

void
tls_release(struct tls_limits *l, int slot)
{
	struct tls_slot *s = &l->slots[slot];

	if (s->state == TLS_PENDING || s->state == TLS_RELAYED)
		tls_uncount(l, s);
	s->state = TLS_FREE;
	s->addr = -1;
}

/* The pending slot holding the most body budget (the oldest of those),
 * or -1 when none holds any. */
static int
tls_biggest_body(struct tls_limits *l)
{
	int i, best = -1;

	for (i = 0; i < l->nslots; i++) {
		struct tls_slot *s = &l->slots[i];
		if (s->state != TLS_PENDING || s->body == 0)
			continue;
		if (best < 0 || s->body > l->slots[best].body ||
		    (s->body == l->slots[best].body &&
		    s->since < l->slots[best].since))
			best = i;
	}
	return best;
}

int
tls_body_take(struct tls_limits *l, int slot, size_t n, int *victims,
    int maxv, int *nv)
{
	struct tls_slot *s = &l->slots[slot];
	struct tls_addr *a;
	int v;

	*nv = 0;
	if (s->state != TLS_PENDING)
		return -2;	/* displaced meanwhile: no address now */
	a = &l->addrs[s->addr];
	if (a->buffered + n > l->buffered_per_addr)
		return -1;
	while (l->buffered + n > l->buffered_max && *nv < maxv &&
	    (v = tls_biggest_body(l)) >= 0) {
		tls_evict(l, v);
		victims[(*nv)++] = v;
	}
	if (l->buffered + n > l->buffered_max)
		return -1;
	s->body = n;
	a->buffered += n;
	l->buffered += n;
	return 0;
}

void
tls_body_put(struct tls_limits *l, int slot)
{
	struct tls_slot *s = &l->slots[slot];

	if (s->addr < 0)
		return;
	l->addrs[s->addr].buffered -= s->body;
	l->buffered -= s->body;
	s->body = 0;
}

void
tls_addr_key(const struct sockaddr *sa, char *key, size_t keysz)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const unsigned char *b = s6->sin6_addr.s6_addr;
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    ip, sizeof(ip));
		snprintf(key, keysz, "%s", ip);
	} else if (sa->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		inet_ntop(AF_INET, b + 12, ip, sizeof(ip));
		snprintf(key, keysz, "%s", ip);
	} else if (sa->sa_family == AF_INET6) {
		/* One host usually holds a whole /64. */
		snprintf(key, keysz, "%x:%x:%x:%x::/64", b[0] << 8 | b[1],
		    b[2] << 8 | b[3], b[4] << 8 | b[5], b[6] << 8 | b[7]);
	} else {
		snprintf(key, keysz, "?");
	}
}
