/* loginlimit.c - login throttling: every attempt is reserved (counted)
 * before its password is hashed, per client address and globally, and a
 * blocked address keeps its count however many others fail. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "manager/manager_int.h"

#define LL_MAX_FAILS	5	/* attempts per address per window ... */
#define LL_SLOTS	4096	/* addresses tracked at once */
#define LL_INFLIGHT	16	/* attempts being checked at once, all addresses */

/* One client address (an IPv6 /64: one subscriber's addresses). An
 * attempt holds a reservation (pending) from before argon2 runs until its
 * outcome is known; a failed one then counts in fails for the rest of the
 * window. fails + pending never exceeds LL_MAX_FAILS. */
struct ll_slot {
	char	key[64];	/* "" when free */
	int	fails;
	int	pending;
	int64_t	first_ms;	/* the window's start: its first attempt */
	int64_t	last_ms;	/* its latest attempt */
};

static pthread_mutex_t ll_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ll_slot ll_slots[LL_SLOTS];
static int ll_inflight;

/* --login-window; 60 s where the manager's options were not parsed. */
#define ll_window_ms	(mgr_cfg.login_window_ms > 0 ? \
			    mgr_cfg.login_window_ms : 60000)

/* The address as the key it is counted under: an IPv6 address's /64 (an
 * IPv4-mapped one: the IPv4 address); anything unparsed as is. */
static void
ll_key(const char *remote, char *out, size_t outsz)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char a[16];

	snprintf(out, outsz, "%s", remote);
	if (inet_pton(AF_INET6, remote, a) != 1)
		return;
	if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		inet_ntop(AF_INET, a + 12, out, (socklen_t)outsz);
		return;
	}
	memset(a + 8, 0, 8);
	if (inet_ntop(AF_INET6, a, buf, sizeof(buf)) != NULL)
		snprintf(out, outsz, "%s/64", buf);
}

/* The slot of key (lock held), its window restarted when over; NULL
 * when it has none. */
static struct ll_slot *
ll_find(const char *key, int64_t now)
{
	struct ll_slot *s;
	int i;

	for (i = 0; i < LL_SLOTS; i++) {
		s = &ll_slots[i];
		if (s->key[0] == '\0' || strcmp(s->key, key) != 0)
			continue;
		if (now - s->first_ms >= ll_window_ms) {
			s->fails = 0;
			s->first_ms = now;
		}
		return s;
	}
	return NULL;
}

/* A slot for a new address (lock held), or NULL when every slot is taken
 * by an address blocked or with an attempt in flight. Such slots are never
 * given away: flooding from many addresses cannot reset a blocked one's
 * count. Of the others, a free or expired slot goes first, then the one
 * with the fewest failures, the longest idle among equals (its address
 * loses at most LL_MAX_FAILS - 1 counted failures, no more than the
 * attempt from the new address costs the flooder). */
static struct ll_slot *
ll_take(const char *key, int64_t now)
{
	struct ll_slot *s, *best = NULL;
	int i;

	for (i = 0; i < LL_SLOTS; i++) {
		s = &ll_slots[i];
		if (s->key[0] == '\0' || now - s->first_ms >= ll_window_ms) {
			if (s->pending == 0) {
				best = s;
				break;
			}
			continue;
		}
		if (s->pending > 0 || s->fails >= LL_MAX_FAILS)
			continue;
		if (best == NULL || s->fails < best->fails ||
		    (s->fails == best->fails && s->last_ms < best->last_ms))
			best = s;
	}
	if (best == NULL)
		return NULL;
	memset(best, 0, sizeof(*best));
	snprintf(best->key, sizeof(best->key), "%s", key);
	best->first_ms = now;
	return best;
}

/* The earliest end of a window among the blocked slots (lock held). */
static int64_t
ll_soonest(int64_t now)
{
	int64_t soon = now + ll_window_ms;
	int i;

	for (i = 0; i < LL_SLOTS; i++)
		if (ll_slots[i].key[0] && ll_slots[i].first_ms +
		    ll_window_ms < soon)
			soon = ll_slots[i].first_ms + ll_window_ms;
	return soon;
}

int
loginlimit_reserve(const char *remote, int64_t now, char *err, size_t errsz)
{
	char key[64];
	struct ll_slot *s;
	const char *why = NULL;
	int64_t until = now + 1000;

	ll_key(remote, key, sizeof(key));
	pthread_mutex_lock(&ll_lock);
	if ((s = ll_find(key, now)) == NULL && (s = ll_take(key, now)) == NULL) {
		why = "table";
		until = ll_soonest(now);
		snprintf(err, errsz, "too many clients are failing to log in; "
		    "try again in %lld s", (long long)(until - now + 999) / 1000);
	} else if (s->fails + s->pending >= LL_MAX_FAILS) {
		why = "address";
		if (s->fails >= LL_MAX_FAILS)
			until = s->first_ms + ll_window_ms;
		snprintf(err, errsz, "too many failed logins; try again in "
		    "%lld s", (long long)(until - now + 999) / 1000);
	} else if (ll_inflight >= LL_INFLIGHT) {
		why = "global";
		snprintf(err, errsz, "too many logins at once; try again in "
		    "1 s");
	} else {
		s->pending++;
		s->last_ms = now;
		ll_inflight++;
	}
	pthread_mutex_unlock(&ll_lock);
	if (why == NULL)
		return 0;
	metrics_count("login_throttled", "limit", why);
	return -1;
}

void
loginlimit_release(const char *remote, int failed)
{
	char key[64];
	struct ll_slot *s;
	int i;

	ll_key(remote, key, sizeof(key));
	pthread_mutex_lock(&ll_lock);
	ll_inflight--;
	/* Its slot is still there: one with pending attempts is never
	 * given away, nor its window restarted (ll_find: pending > 0 keeps
	 * the count, restarting only the failures). */
	for (i = 0; i < LL_SLOTS; i++) {
		s = &ll_slots[i];
		if (s->key[0] == '\0' || strcmp(s->key, key) != 0)
			continue;
		s->pending--;
		if (failed)
			s->fails++;
		break;
	}
	pthread_mutex_unlock(&ll_lock);
}
