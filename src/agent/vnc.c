/* vnc.c - the graphical console: QEMU serves VNC on a unix socket in the run
 * directory; a one-use ticket opens a websocket bridged to it (serial.c's
 * bridge), which the manager relays to the browser's noVNC. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <civetweb.h>

#include "agent/agent_int.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/ticket.h"
#include "common/util.h"

static struct ticket_store vnc_tickets = TICKET_STORE_INIT(30000);

int
vnc_socket_path(const struct avm *vm, char *out, size_t outsz)
{
	return util_fmt(out, outsz, "%s/%.8s.vnc", agent_cfg.run, vm->uuid);
}

/* POST /agent/v1/vms/{uuid}/vnc -> {"ticket"} for /agent/v1/vnc?ticket=T */
int
vnc_api_ticket(struct httpd_req *r)
{
	char ticket[TICKET_LEN + 1], path[108];
	struct avm *vm;
	struct stat st;
	int ok;

	if (!util_uuid_valid(r->params[0]) ||
	    (vm = vmhost_get(r->params[0])) == NULL)
		return httpd_reply_error(r, 404, "VM %.40s is not running here",
		    r->params[0]);
	ok = vnc_socket_path(vm, path, sizeof(path)) == 0 &&
	    stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
	vmhost_put(vm);
	if (!ok)
		return httpd_reply_error(r, 409, "this VM was started without a "
		    "graphical console; restart it to get one");
	if (ticket_issue(&vnc_tickets, r->params[0], ticket, sizeof(ticket)) < 0)
		return httpd_reply_error(r, 500, "cannot issue a ticket");
	return httpd_reply_json(r, 200, json_pack("{s:s}", "ticket", ticket));
}

static void *
vnc_ws_open(struct mg_connection *c, const char *query, void *ctx)
{
	char ticket[64], uuid[UTIL_UUID_LEN + 1], path[108];
	struct avm *vm;
	void *b = NULL;

	(void)ctx;
	if (query == NULL || mg_get_var(query, strlen(query), "ticket", ticket,
	    sizeof(ticket)) < 0 || ticket_redeem(&vnc_tickets, ticket, uuid,
	    sizeof(uuid)) < 0) {
		log_warnx("vnc: invalid or expired ticket");
		return NULL;
	}
	if ((vm = vmhost_get(uuid)) == NULL)
		return NULL;
	if (vnc_socket_path(vm, path, sizeof(path)) == 0)
		b = serial_bridge_open(c, path);
	vmhost_put(vm);
	return b;
}

const struct httpd_ws_route vnc_ws_route = {
	"/agent/v1/vnc", vnc_ws_open, serial_bridge_ready, serial_bridge_data,
	serial_bridge_close,
};
