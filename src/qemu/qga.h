/* qga.h - the QEMU guest agent protocol, host side: ping a guest's
 * qemu-ga through the unix socket QEMU serves for the VM's virtio-serial
 * port org.qemu.guest_agent.0.
 *
 * A struct qga is one connection, used by one thread. After a failed
 * qga_ping the stream may hold a half reply: close it and open a new one. */
#ifndef CVIRT_QGA_H
#define CVIRT_QGA_H

#include <stddef.h>

#define QGA_PORT_NAME	"org.qemu.guest_agent.0"
#define QGA_LINE_MAX	4096	/* longest reply line accepted */

struct qga;

/* Connect (non-blocking) to QEMU's socket for the port. NULL with a
 * one-line reason in err. Free with qga_close. */
struct qga	*qga_open(const char *sock_path, char *err, size_t errsz);
/* Resynchronise, then ping, all within timeout_ms: sends 0xFF (resets the
 * agent's parser) and guest-sync-delimited with a fresh id, skips every
 * byte up to a 0xFF followed by the reply carrying that id (stale replies
 * of earlier rounds are dropped), then guest-ping and its empty reply.
 * 0 when the guest agent answered; -1 with err ("timed out", "closed",
 * "guest-ping failed: <desc>", ...). */
int		 qga_ping(struct qga *g, int timeout_ms, char *err,
		    size_t errsz);
void		 qga_close(struct qga *g);	/* accepts NULL */

#endif
