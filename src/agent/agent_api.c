/* agent_api.c - the agent's HTTP routes, called by the manager only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/util.h"
#include "storage/store.h"

/* The manager's key, which the agent learns when it registers: until
 * then (just after a start, while the manager still holds the key of the
 * agent before) it answers 503 and says why, not "invalid API token".
 * With certificates the caller must also be the manager: another host's
 * certificate and a leaked key are not enough. Its OU, which managers'
 * certificates have carried since issue 15, must be "managers" when
 * present (a certificate from before has none). */
int
agent_auth(struct httpd_req *r, int min_role)
{
	char key[128];

	(void)min_role;
	if (agent_tls_on() && (strcmp(r->peer_cn, "cvirt-manager") != 0 ||
	    (r->peer_ou[0] != '\0' && strcmp(r->peer_ou, "managers") != 0))) {
		snprintf(r->auth_err, sizeof(r->auth_err), "only the manager "
		    "calls this host (certificate of %s)", r->peer_cn[0] ?
		    r->peer_cn : "nobody");
		return 403;
	}
	report_agent_key(key, sizeof(key));
	if (key[0] == '\0') {
		httpd_reply_error(r, 503, "host %s is starting: its agent has "
		    "not registered with the manager yet", agent_cfg.name);
		return 503;
	}
	if (r->token == NULL || !util_str_eq_ct(r->token, key))
		return 401;
	snprintf(r->principal, sizeof(r->principal), "manager");
	return 0;
}

static const char *
api_uuid(struct httpd_req *r)
{
	if (r->nparams < 1 || !util_uuid_valid(r->params[0])) {
		httpd_reply_error(r, 400, "invalid VM uuid");
		return NULL;
	}
	return r->params[0];
}

/* The uuid of the path when the body is that VM's spec; NULL after a 400. */
static const char *
api_spec_uuid(struct httpd_req *r)
{
	const char *uuid = api_uuid(r), *spec;

	if (uuid == NULL)
		return NULL;
	spec = json_string_value(json_object_get(r->body, "uuid"));
	if (spec == NULL || strcmp(spec, uuid) != 0) {
		httpd_reply_error(r, 400, "VM spec does not match the uuid");
		return NULL;
	}
	return uuid;
}

static int
api_reply_result(struct httpd_req *r, int rc, int status, const char *err,
    json_t *result)
{
	if (rc < 0) {
		json_decref(result);
		return httpd_reply_error(r, status, "%s", err);
	}
	return httpd_reply_json(r, 200, result ? result : json_object());
}

/* Storage I/O never happens here: the domains' state is domwatch's cache
 * (a hung domain must not stop registration or the manager's calls). */
json_t *
agent_storage(void)
{
	json_t *st = domwatch_storage_json(), *e;
	size_t i;

	json_array_foreach(st, i, e) {
		if (json_is_true(json_object_get(e, "ok")) && !lease_storage_ok(
		    json_string_value(json_object_get(e, "name")), 0)) {
			json_object_set_new(e, "ok", json_false());
			json_object_set_new(e, "error", json_string("its lease "
			    "cannot be renewed"));
		}
	}
	return st;
}

static json_t *
api_info(void)
{
	json_t *st = agent_storage(), *info;

	info = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:o, s:o, s:s, "
	    "s:o}",
	    "name", agent_cfg.name, "url", agent_cfg.url,
	    "migration_addr", agent_cfg.migration_addr,
	    "accel", agent_cfg.accel, "accel_reason", agent_cfg.accel_reason,
	    "cpus", agent_cfg.cpus, "memory_mib", (json_int_t)agent_cfg.memory_mib,
	    "storage", st, "vms", vmhost_list(), "scan", vmadopt_scan(),
	    "media_dirs", media_dirs_json());
	if (info)
		keeperctl_info(info);	/* fence, timing, keeper, leases */
	return info;
}

static int
api_get_info(struct httpd_req *r)
{
	return httpd_reply_json(r, 200, api_info());
}

static int
api_define(struct httpd_req *r)
{
	char err[512];
	int status = 500, rc;
	const char *uuid = api_spec_uuid(r);

	if (uuid == NULL)
		return 0;
	rc = vmhost_define(r->body, err, sizeof(err), &status);
	return api_reply_result(r, rc, status, err, NULL);
}

static int
api_undefine(struct httpd_req *r)
{
	char err[512], storage[UTIL_NAME_MAX + 1];
	int status = 500, rc;
	const char *uuid = api_uuid(r);

	if (uuid == NULL)
		return 0;
	if (httpd_query(r, "storage", storage, sizeof(storage)) < 0)
		return httpd_reply_error(r, 400, "storage query parameter missing");
	rc = vmhost_undefine(uuid, storage, err, sizeof(err), &status);
	return api_reply_result(r, rc, status, err, NULL);
}

static int
api_start(struct httpd_req *r)
{
	json_t *result = NULL;
	char err[512];
	int status = 500, rc;
	const char *uuid = api_spec_uuid(r);

	if (uuid == NULL)
		return 0;
	rc = vmhost_start(r->body, 0, &result, err, sizeof(err), &status);
	return api_reply_result(r, rc, status, err, result);
}

static int
api_stop(struct httpd_req *r)
{
	char err[512];
	int status = 500, rc, force;
	json_int_t timeout = agent_cfg.stop_timeout_s;
	const char *uuid = api_uuid(r);

	if (uuid == NULL)
		return 0;
	force = json_is_true(json_object_get(r->body, "force"));
	if (json_is_integer(json_object_get(r->body, "timeout_s")))
		timeout = json_integer_value(json_object_get(r->body, "timeout_s"));
	if (timeout < 0 || timeout > 3600)
		return httpd_reply_error(r, 400, "timeout_s must be 0..3600");
	rc = vmhost_stop(uuid, force, (int)timeout, err, sizeof(err), &status);
	return api_reply_result(r, rc, status, err, NULL);
}

static int
api_op(struct httpd_req *r)
{
	char err[512];
	int status = 500, rc;
	const char *uuid = api_uuid(r);

	static const struct {
		const char	*op;
		int		 (*fn)(const char *, char *, size_t, int *);
	} mig_ops[] = {
		{ "migrate-cancel", mig_cancel },
		{ "migrate-finish", mig_finish },
	};
	size_t i;

	if (uuid == NULL)
		return 0;
	for (i = 0; i < sizeof(mig_ops) / sizeof(mig_ops[0]); i++)
		if (strcmp(r->params[1], mig_ops[i].op) == 0)
			break;
	if (i < sizeof(mig_ops) / sizeof(mig_ops[0]))
		rc = mig_ops[i].fn(uuid, err, sizeof(err), &status);
	else	/* pause, resume, reboot */
		rc = vmhost_simple(uuid, r->params[1], err, sizeof(err), &status);
	return api_reply_result(r, rc, status, err, NULL);
}

static int
api_serial(struct httpd_req *r)
{
	char storage[UTIL_NAME_MAX + 1], off[32], dir[PATH_MAX], err[256];
	const char *uuid = api_uuid(r), *root;
	uint64_t offset = 0;
	int64_t from = -1;
	json_t *res;

	if (uuid == NULL)
		return 0;
	if (httpd_query(r, "storage", storage, sizeof(storage)) < 0 ||
	    (root = vmhost_storage_path(storage)) == NULL)
		return httpd_reply_error(r, 400, "unknown storage");
	if (domwatch_ok(storage, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 503, "%s", err);
	if (httpd_query(r, "offset", off, sizeof(off)) == 0) {
		if (util_parse_u64(off, 0, INT64_MAX, &offset) < 0)
			return httpd_reply_error(r, 400, "invalid offset");
		from = (int64_t)offset;
	}
	if (store_vm_dir(root, uuid, dir, sizeof(dir)) < 0)
		return httpd_reply_error(r, 400, "invalid VM uuid");
	if ((res = serial_read(dir, from, err, sizeof(err))) == NULL)
		return httpd_reply_error(r, 500, "%s", err);
	return httpd_reply_json(r, 200, res);
}

static int
api_console(struct httpd_req *r)
{
	char ticket[64];
	struct avm *vm;
	const char *uuid = api_uuid(r);

	if (uuid == NULL)
		return 0;
	if ((vm = vmhost_get(uuid)) == NULL)
		return httpd_reply_error(r, 404, "VM is not running on this host");
	vmhost_put(vm);
	if (serial_ticket_new(uuid, ticket, sizeof(ticket)) < 0)
		return httpd_reply_error(r, 500, "cannot issue a ticket");
	return httpd_reply_json(r, 200, json_pack("{s:s}", "ticket", ticket));
}

/* The body is the VM's spec plus "migration" ({"psk", "source"}), which
 * never goes where the spec is kept. */
static int
api_incoming(struct httpd_req *r)
{
	json_t *result = NULL, *mig;
	char err[512];
	int status = 500, rc;
	const char *uuid = api_spec_uuid(r);

	if (uuid == NULL)
		return 0;
	mig = json_incref(json_object_get(r->body, "migration"));
	json_object_del(r->body, "migration");
	rc = mig_incoming(r->body, mig, &result, err, sizeof(err), &status);
	json_decref(mig);
	return api_reply_result(r, rc, status, err, result);
}

static int
api_migrate(struct httpd_req *r)
{
	char err[512];
	int status = 500, rc;
	const char *uuid = api_uuid(r);

	if (uuid == NULL)
		return 0;
	if (r->body == NULL)
		return httpd_reply_error(r, 400, "a JSON body is required");
	rc = mig_start(uuid, r->body, err, sizeof(err), &status);
	return api_reply_result(r, rc, status, err, NULL);
}

static int
api_migration(struct httpd_req *r)
{
	char err[512];
	int status = 500;
	const char *uuid = api_uuid(r);
	json_t *res;

	if (uuid == NULL)
		return 0;
	res = mig_status(uuid, err, sizeof(err), &status);
	return api_reply_result(r, res ? 0 : -1, status, err, res);
}

static int
api_migrate_resume(struct httpd_req *r)
{
	char err[512];
	int status = 500, rc;
	const char *uuid = api_uuid(r);

	if (uuid == NULL)
		return 0;
	rc = mig_resume(uuid, r->body, err, sizeof(err), &status);
	return api_reply_result(r, rc, status, err, NULL);
}

/* How the VM's QEMU last ended on this host (the manager asks about a
 * migration's destination): {uuid, pid, state, reason}. */
static int
api_exit(struct httpd_req *r)
{
	const char *uuid = api_uuid(r);
	json_t *e;

	if (uuid == NULL)
		return 0;
	if ((e = vmhost_exit_of(uuid)) == NULL)
		return httpd_reply_error(r, 404, "no exit of VM %s is known on "
		    "host %s", uuid, agent_cfg.name);
	return httpd_reply_json(r, 200, e);
}

/* Peers ask this to tell "the manager is gone" from "I am cut off". */
static int
api_ping(struct httpd_req *r)
{
	char key[128];

	/* registered: the manager has taken this agent's key (since this
	 * start), so the manager's calls are answered, not refused 503. */
	report_agent_key(key, sizeof(key));
	return httpd_reply_json(r, 200, json_pack("{s:s, s:b}", "name",
	    agent_cfg.name, "registered", key[0] != '\0'));
}

/* Every host's lease on a storage domain, as seen from here: domwatch's
 * last snapshot, with how long ago its read started and how long it took
 * (the manager dates what it learns by them). */
static int
api_leases(struct httpd_req *r)
{
	char storage[UTIL_NAME_MAX + 1], err[256];
	int status;
	json_t *l;

	if (httpd_query(r, "storage", storage, sizeof(storage)) < 0)
		return httpd_reply_error(r, 400, "unknown storage");
	if ((l = domwatch_leases(storage, err, sizeof(err), &status)) == NULL)
		return httpd_reply_error(r, status, "%s", err);
	return httpd_reply_json(r, 200, l);
}

const struct httpd_route agent_routes[] = {
	{ "GET",    "/agent/v1/ping",                 api_ping, HTTPD_NOAUTH, 0 },
	{ "GET",    "/agent/v1/leases",               api_leases, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/incoming",      api_incoming, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/migrate",       api_migrate, 0, 0 },
	{ "GET",    "/agent/v1/vms/{}/migration",     api_migration, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/migrate-resume", api_migrate_resume, 0, 0 },
	{ "GET",    "/agent/v1/vms/{}/exit",          api_exit, 0, 0 },
	{ "GET",    "/agent/v1/info",                 api_get_info, 0, 0 },
	{ "PUT",    "/agent/v1/vms/{}",               api_define, 0, 0 },
	{ "DELETE", "/agent/v1/vms/{}",               api_undefine, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/start",         api_start, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/stop",          api_stop, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/console",       api_console, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/vnc",           vnc_api_ticket, 0, 0 },
	{ "GET",    "/agent/v1/vms/{}/serial",        api_serial, 0, 0 },
	{ "POST",   "/agent/v1/block/{}/snapshot",    blockapi_snapshot, 0, 0 },
	{ "POST",   "/agent/v1/block/{}/disk",        blockapi_disk, 0, 0 },
	{ "POST",   "/agent/v1/jobs",                 blockapi_job_start, 0, 0 },
	{ "GET",    "/agent/v1/jobs/{}",              blockapi_job_get, 0, 0 },
	{ "DELETE", "/agent/v1/files/{}/{}",          blockapi_remove, 0, 0 },
	{ "PUT",    "/agent/v1/media/{}/{}/{}",       mediaapi_put, HTTPD_STREAM, 0 },
	{ "GET",    "/agent/v1/media/{}/{}",          mediaapi_list, 0, 0 },
	{ "POST",   "/agent/v1/media-check",          mediaapi_check, 0, 0 },
	{ "DELETE", "/agent/v1/media/{}/{}/{}",       mediaapi_delete, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/nics",          nicapi_plug, 0, 0 },
	{ "DELETE", "/agent/v1/vms/{}/nics/{}",       nicapi_unplug, 0, 0 },
	{ "POST",   "/agent/v1/vms/{}/{}",            api_op, 0, 0 },
};
const size_t agent_nroutes = sizeof(agent_routes) / sizeof(agent_routes[0]);

json_t *
agent_info(void)
{
	return api_info();
}
