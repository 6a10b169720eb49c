/* keeper.c - `cvirt keeper`: the decision loop. It never touches shared
 * storage: the I/O threads (kdomain.c) renew the leases, and every tick
 * (CLOCK_MONOTONIC) keeper_decide() kills the QEMUs of a domain not
 * renewed for F - K ms, confirms their end by pidfd, and pets the watchdog
 * only while every fence is confirmed (docs/keeper.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/keeper.h"

const char *
keeper_state_name(int state)
{
	static const char *names[] = { "ok", "late", "fencing", "fenced",
	    "unconfirmed" };

	return state >= 0 && state <= KD_UNCONFIRMED ? names[state] : "?";
}

int
keeper_record(char *buf, size_t size, const char *host, int64_t seq,
    const char *boot, const char *fence, const struct ktiming *t, int64_t wall)
{
	json_t *o;
	char *s = NULL;
	size_t n;
	int rc = -1;

	o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I}", "host", host, "seq", (json_int_t)seq, "keeper",
	    (json_int_t)getpid(), "boot", boot, "fence", fence, "renew_ms",
	    (json_int_t)t->renew_ms, "fence_ms", (json_int_t)t->fence_ms,
	    "kill_grace_ms", (json_int_t)t->kill_grace_ms, "tick_ms",
	    (json_int_t)t->tick_ms, "watchdog_ms", (json_int_t)t->watchdog_ms,
	    "wall", (json_int_t)wall, "seq_end", (json_int_t)seq);
	if (o == NULL || (s = json_dumps(o, JSON_COMPACT |
	    JSON_PRESERVE_ORDER)) == NULL)
		goto cleanup;
	n = strlen(s);
	if (n + 1 > size)
		goto cleanup;
	/* Space padded to a whole record, one line: still one JSON text. */
	memcpy(buf, s, n);
	memset(buf + n, ' ', size - n - 1);
	buf[size - 1] = '\n';
	rc = 0;
cleanup:
	free(s);
	json_decref(o);
	return rc;
}

int
keeper_state_take(struct kdstate *d, int32_t state, int64_t last_ok,
    int64_t now)
{
	if (last_ok <= 0 || last_ok > now || state < KD_OK ||
	    state > KD_UNCONFIRMED)
		return -1;
	/* A fence under way (or done) is redone: its QEMUs found again are
	 * killed; an ok or late domain goes on from its last renewal. */
	d->state = state <= KD_LATE ? KD_OK : KD_FENCING;
	d->last_ok = last_ok;
	return 0;
}

static void
keeper_remove_vm(struct kstate *s, int i, int *closed, int *nclosed)
{
	closed[(*nclosed)++] = s->vm[i].pidfd;
	s->vm[i] = s->vm[--s->nvm];
}

static int
keeper_dom_vms(const struct kstate *s, int i)
{
	int j, n = 0;

	for (j = 0; j < s->nvm; j++)
		if (s->vm[j].mask & (1u << i))
			n++;
	return n;
}

/* The domain's renewals: counted ones move last_ok; after a fence, one
 * that started after the kill makes it ok again (for new VMs only), once
 * no QEMU of it is left (one found after the fence is killed first). */
static void
keeper_absorb(struct kstate *s, int i, int64_t now, struct kacts *a)
{
	struct kdstate *d = &s->dom[i];

	if (d->state <= KD_LATE) {
		if (d->io_last_ok > d->last_ok)
			d->last_ok = d->io_last_ok;
	} else if (d->state == KD_FENCED && d->io_last_done > d->fence_at &&
	    keeper_dom_vms(s, i) == 0) {
		d->state = KD_OK;
		d->last_ok = d->io_last_done;
		d->hold_until = 0;
		a->revive |= 1u << i;
	}
	if (d->state <= KD_LATE) {
		int64_t age = now - d->last_ok;

		if (age >= s->t.fence_ms - s->t.kill_grace_ms &&
		    now >= d->hold_until) {
			d->state = KD_FENCING;
			d->fence_at = now;
			d->exit_max = 0;
			d->sync_req = 0;
		} else {
			d->state = age > 2 * s->t.renew_ms ? KD_LATE : KD_OK;
		}
	}
}

/* Every QEMU of a fencing domain gone (and its dirty pages flushed when
 * the domain has no O_DIRECT): confirmed. Else unconfirmed at last_ok + F,
 * at once when no renewal is known (last_ok 0: a keeper without its
 * predecessor's state found QEMUs there, whose deadline may have passed):
 * no pets until they are gone. */
static void
keeper_confirm(struct kstate *s, int i, int64_t now, struct kacts *a)
{
	struct kdstate *d = &s->dom[i];

	if (d->state != KD_FENCING && d->state != KD_UNCONFIRMED)
		return;
	if (keeper_dom_vms(s, i) == 0) {
		if (d->direct || d->exit_max == 0 || d->io_sync_done >= d->exit_max) {
			d->state = KD_FENCED;
			return;
		}
		if (d->sync_req < d->exit_max) {
			d->sync_req = now;
			a->sync |= 1u << i;
		}
	}
	if (d->state == KD_FENCING && (d->last_ok == 0 ||
	    now >= d->last_ok + s->t.fence_ms))
		d->state = KD_UNCONFIRMED;
}

void
keeper_decide(struct kstate *s, int64_t now, struct kacts *a, int *closed,
    int *nclosed)
{
	int old[KEEPER_MAX_DOMAINS], i, j, unconfirmed = 0;
	uint32_t lost = 0;
	int64_t pet_every;

	memset(a, 0, sizeof(*a));
	*nclosed = 0;
	for (i = 0; i < s->ndom; i++)
		old[i] = s->dom[i].state;
	/* Exits first: a QEMU gone is a fence confirmed. */
	for (j = 0; j < s->nvm; j++) {
		if (!s->vm[j].exited)
			continue;
		for (i = 0; i < s->ndom; i++)
			if ((s->vm[j].mask & (1u << i)) && now > s->dom[i].exit_max)
				s->dom[i].exit_max = now;
		keeper_remove_vm(s, j--, closed, nclosed);
	}
	for (i = 0; i < s->ndom; i++) {
		keeper_absorb(s, i, now, a);
		if (s->dom[i].state > KD_LATE)
			lost |= 1u << i;
	}
	/* Kill every QEMU on a lost domain not killed yet (also one found
	 * after the fence, e.g. by a restarted keeper without its state). */
	for (j = 0; j < s->nvm; j++) {
		struct kvm *v = &s->vm[j];

		if (v->killed_at || (v->mask & lost) == 0)
			continue;
		v->killed_at = now;
		a->kill[a->nkill++] = j;
		for (i = 0; i < s->ndom; i++)
			if ((v->mask & lost & (1u << i)) &&
			    s->dom[i].state == KD_FENCED) {
				s->dom[i].state = KD_FENCING;
				s->dom[i].fence_at = now;
			}
	}
	for (i = 0; i < s->ndom; i++) {
		keeper_confirm(s, i, now, a);
		if (s->dom[i].state == KD_UNCONFIRMED)
			unconfirmed = 1;
		if (s->dom[i].state != old[i])
			a->changed |= 1u << i;
	}
	/* Pet only while every fence is confirmed and the loop is on time:
	 * otherwise the host resets W after the last pet. */
	pet_every = s->t.watchdog_ms / 4 < 250 ? s->t.watchdog_ms / 4 : 250;
	if (s->watchdog && !unconfirmed && s->tick_late < s->t.watchdog_ms / 2 &&
	    now - s->last_pet >= pet_every) {
		a->pet = 1;
		s->last_pet = now;
	}
}
