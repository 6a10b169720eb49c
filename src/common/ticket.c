/* ticket.c - one-use tickets with an expiry, compared in constant time. */
#include <stdio.h>
#include <string.h>

#include "common/ticket.h"
#include "common/util.h"

int
ticket_issue(struct ticket_store *ts, const char *data, char *out,
    size_t outsz)
{
	int64_t now = util_mono_ms();
	int i, slot = 0, rc = -1;

	if (outsz < TICKET_LEN + 1 || strlen(data) >= TICKET_DATA)
		return -1;
	pthread_mutex_lock(&ts->lock);
	for (i = 0; i < TICKET_SLOTS; i++) {
		if (ts->slot[i].expires < now) {
			slot = i;
			break;
		}
		if (ts->slot[i].expires < ts->slot[slot].expires)
			slot = i;
	}
	if (util_random_hex(ts->slot[slot].ticket, TICKET_LEN / 2) == 0) {
		snprintf(ts->slot[slot].data, TICKET_DATA, "%s", data);
		ts->slot[slot].expires = now + ts->ttl_ms;
		snprintf(out, outsz, "%s", ts->slot[slot].ticket);
		rc = 0;
	}
	pthread_mutex_unlock(&ts->lock);
	return rc;
}

int
ticket_redeem(struct ticket_store *ts, const char *ticket, char *data,
    size_t datasz)
{
	int64_t now = util_mono_ms();
	int i, rc = -1;

	pthread_mutex_lock(&ts->lock);
	for (i = 0; i < TICKET_SLOTS; i++) {
		if (ts->slot[i].ticket[0] == '\0' || ts->slot[i].expires < now ||
		    !util_str_eq_ct(ts->slot[i].ticket, ticket))
			continue;
		snprintf(data, datasz, "%s", ts->slot[i].data);
		ts->slot[i].ticket[0] = '\0';
		ts->slot[i].expires = 0;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&ts->lock);
	return rc;
}
