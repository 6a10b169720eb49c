/* ticket.h - one-use, short-lived tickets (console websockets). */
#ifndef CVIRT_TICKET_H
#define CVIRT_TICKET_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TICKET_SLOTS 64
#define TICKET_LEN   32		/* hex characters */
#define TICKET_DATA  160	/* what a ticket stands for */

struct ticket_store {
	pthread_mutex_t	lock;
	int64_t		ttl_ms;
	struct {
		char	ticket[TICKET_LEN + 1];
		char	data[TICKET_DATA];
		int64_t	expires;
	} slot[TICKET_SLOTS];
};

#define TICKET_STORE_INIT(ttl) { PTHREAD_MUTEX_INITIALIZER, (ttl), { { "", "", 0 } } }

/* Issue a ticket for data (copied); the oldest slot is reused when full. */
int	ticket_issue(struct ticket_store *ts, const char *data, char *out,
	    size_t outsz);
/* Redeem once: copies the data and forgets the ticket; -1 when unknown,
 * used or expired. */
int	ticket_redeem(struct ticket_store *ts, const char *ticket, char *data,
	    size_t datasz);

#endif
