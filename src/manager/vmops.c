/* vmops.c - task handlers for VM lifecycle operations. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))

/* Load the task's VM; NULL with t->err set. */
static json_t *
vmops_load(struct task *t)
{
	json_t *row = vm_find(t->vm);

	if (row == NULL)
		snprintf(t->err, sizeof(t->err), "vm \"%s\" not found", t->vm);
	return row;
}

static int
vmops_host_known(const char *name)
{
	json_t *h = db_row("SELECT name FROM hosts WHERE name = ?", "s", name);
	int known = h != NULL;

	json_decref(h);
	return known;
}

/* migrate: a running or paused VM, and a host to go to other than its own. */
static int
vmops_check_migrate(json_t *row, const char *to, char *err, size_t errsz)
{
	const char *name = JS(row, "name"), *state = JS(row, "state");
	json_t *other = NULL;
	int rc = -1;

	errno = EBUSY;
	if (strcmp(state, "running") != 0 && strcmp(state, "paused") != 0) {
		snprintf(err, errsz, "vm \"%s\" is %s: only a running or paused "
		    "VM migrates", name, state);
	} else if (to != NULL && JS(row, "host") != NULL &&
	    strcmp(to, JS(row, "host")) == 0) {
		snprintf(err, errsz, "vm \"%s\" already runs on %s", name, to);
	} else if (to != NULL && !vmops_host_known(to)) {
		snprintf(err, errsz, "host \"%s\" not found", to);
		errno = ENOENT;
	} else if (to == NULL && (other = db_row("SELECT name FROM hosts WHERE "
	    "name <> ? LIMIT 1", "s", JS(row, "host") ? JS(row, "host") :
	    "")) == NULL) {
		snprintf(err, errsz, "no other host is registered");
		errno = ENOSPC;
	} else {
		rc = 0;
	}
	json_decref(other);
	return rc;
}

int
vmops_check(const char *op, json_t *row, json_t *params, char *err,
    size_t errsz)
{
	const char *name = JS(row, "name"), *state = JS(row, "state");
	const char *need = NULL;
	int down = strcmp(state, "stopped") == 0 ||
	    strcmp(state, "failed") == 0;

	errno = EBUSY;
	if (strcmp(op, "migrate") == 0)
		return vmops_check_migrate(row, JS(params, "to"), err, errsz);
	if (strcmp(op, "start") == 0) {
		if (strcmp(state, "unknown") == 0) {
			snprintf(err, errsz, "vm \"%s\" is unknown on host %s: its "
			    "QEMU (pid %lld) does not answer; stop it with --force "
			    "or wait", name, JS(row, "host") ? JS(row, "host") : "?",
			    (long long)json_integer_value(json_object_get(row,
			    "pid")));
			return -1;
		}
		if (!down) {
			snprintf(err, errsz, "vm \"%s\" is %s", name, state);
			return -1;
		}
		if (JS(params, "host") && !vmops_host_known(JS(params, "host"))) {
			snprintf(err, errsz, "host \"%s\" not found",
			    JS(params, "host"));
			errno = ENOENT;
			return -1;
		}
		return 0;
	}
	if (strcmp(op, "delete") == 0) {
		if (down || json_is_true(json_object_get(params, "force")))
			return 0;
		snprintf(err, errsz, "vm \"%s\" is %s: stop it first or use "
		    "--force", name, state);
		return -1;
	}
	if (strcmp(op, "pause") == 0)
		need = "running";
	else if (strcmp(op, "resume") == 0)
		need = "paused";
	else if (strcmp(op, "reboot") != 0)
		return 0;
	if (JS(row, "host") == NULL || strcmp(state, "stopped") == 0) {
		snprintf(err, errsz, "vm \"%s\" is not running", name);
		return -1;
	}
	if (need && strcmp(state, need) != 0) {
		snprintf(err, errsz, "vm \"%s\" is %s, not %s", name, state,
		    need);
		return -1;
	}
	return 0;
}

static int
vmops_agent(struct task *t, const char *host, const char *method,
    const char *uuid, const char *suffix, json_t *body, long timeout_ms,
    json_t **reply)
{
	char path[256], err[512];
	int status = 0;

	/* suffix: "/start", "?storage=S", ... */
	if (util_fmt(path, sizeof(path), "/agent/v1/vms/%s%s", uuid, suffix) < 0) {
		snprintf(t->err, sizeof(t->err), "request path too long");
		return -1;
	}
	if (agentc_call(host, method, path, body, timeout_ms, &status, reply,
	    err, sizeof(err)) < 0 || status >= 400) {
		snprintf(t->err, sizeof(t->err), "%s", err);
		if (reply) {
			json_decref(*reply);
			*reply = NULL;
		}
		return -1;
	}
	return 0;
}

int
vmops_start(struct task *t)
{
	json_t *row = NULL, *spec = NULL, *reply = NULL;
	const char *want = JS(t->params, "host");
	char host[UTIL_NAME_MAX + 1];
	int rc = -1;

	if ((row = vmops_load(t)) == NULL)
		goto cleanup;
	if (vmops_check("start", row, t->params, t->err, sizeof(t->err)) < 0)
		goto cleanup;
	spec = vm_spec(row);
	/* params.host (vm start --host, an in-place HA restart) is a demand;
	 * the creation-time host only a preference, so an HA restart that
	 * excludes a failed host still finds another. */
	if (failover_admit(row, t->err, sizeof(t->err)) < 0 ||
	    sched_place(row, want, JS(spec, "host"), JS(t->params, "exclude"),
	    host, sizeof(host), t->err, sizeof(t->err)) < 0)
		goto cleanup;
	task_progress(t, 20);
	vm_set_state(JS(row, "uuid"), "starting", host, 0);
	if (vmops_agent(t, host, "POST", JS(row, "uuid"), "/start", spec, 60000,
	    &reply) < 0) {
		vm_set_state(JS(row, "uuid"), "stopped", NULL, 0);
		/* A failed HA restart counts against in-place restarts. */
		if (JS(t->params, "reason") && strcmp(JS(t->params, "reason"),
		    "ha") == 0)
			failover_vm_failed(t->vm, host, t->err);
		goto cleanup;
	}
	db_exec("UPDATE vms SET desired = 'running' WHERE uuid = ?", "s",
	    JS(row, "uuid"));
	vm_set_state(JS(row, "uuid"), "running", host,
	    json_integer_value(json_object_get(reply, "pid")));
	event_add("info", "vm.started", t->vm, "vm %s started on host %s", t->vm,
	    host);
	t->result = json_pack("{s:s, s:O}", "host", host, "pid",
	    json_object_get(reply, "pid") ? json_object_get(reply, "pid") :
	    json_null());
	rc = 0;
cleanup:
	json_decref(reply);
	json_decref(spec);
	json_decref(row);
	return rc;
}

/* The VM must run on a host; copies it into host. */
static json_t *
vmops_load_running(struct task *t, char *host, size_t hostsz)
{
	json_t *row = vmops_load(t);
	const char *state;

	if (row == NULL)
		return NULL;
	state = JS(row, "state");
	if (JS(row, "host") == NULL || strcmp(state, "stopped") == 0) {
		snprintf(t->err, sizeof(t->err), "vm \"%s\" is not running",
		    t->vm);
		json_decref(row);
		return NULL;
	}
	snprintf(host, hostsz, "%s", JS(row, "host"));
	return row;
}

int
vmops_stop(struct task *t)
{
	char host[UTIL_NAME_MAX + 1];
	json_t *row, *body;
	int64_t timeout = 60;
	int rc = -1;

	/* Stopping a VM that does not run (stopped, or failed between HA
	 * restarts) still records that the user wants it off. */
	if ((row = vmops_load(t)) == NULL)
		return -1;
	if (JS(row, "host") == NULL) {
		db_exec("UPDATE vms SET desired = 'stopped', state = 'stopped' "
		    "WHERE uuid = ?", "s", JS(row, "uuid"));
		t->result = json_pack("{s:s}", "note", "it was not running");
		json_decref(row);
		return 0;
	}
	json_decref(row);
	if ((row = vmops_load_running(t, host, sizeof(host))) == NULL)
		return -1;
	if (json_is_integer(json_object_get(t->params, "timeout_s")))
		timeout = json_integer_value(json_object_get(t->params, "timeout_s"));
	body = json_pack("{s:b, s:I}", "force",
	    json_is_true(json_object_get(t->params, "force")), "timeout_s",
	    (json_int_t)timeout);
	/* The user wants it off: HA leaves it alone from now on. */
	db_exec("UPDATE vms SET desired = 'stopped' WHERE uuid = ?", "s",
	    JS(row, "uuid"));
	vm_set_state(JS(row, "uuid"), "stopping", host, 0);
	task_progress(t, 20);
	if (vmops_agent(t, host, "POST", JS(row, "uuid"), "/stop", body,
	    (timeout + 30) * 1000, NULL) < 0) {
		vm_set_state(JS(row, "uuid"), JS(row, "state"), host, 0);
		goto cleanup;
	}
	vm_set_state(JS(row, "uuid"), "stopped", NULL, 0);
	event_add("info", "vm.stopped", t->vm, "vm %s stopped%s", t->vm,
	    json_is_true(json_object_get(t->params, "force")) ? " (forced)" : "");
	rc = 0;
cleanup:
	json_decref(body);
	json_decref(row);
	return rc;
}

/* pause, resume, reboot: one QMP command on the VM's host. */
static int
vmops_simple(struct task *t, const char *op, const char *after)
{
	char host[UTIL_NAME_MAX + 1], suffix[32];
	json_t *row;
	int rc = -1;

	if ((row = vmops_load(t)) == NULL)
		return -1;
	if (vmops_check(op, row, t->params, t->err, sizeof(t->err)) < 0)
		goto cleanup;
	snprintf(host, sizeof(host), "%s", JS(row, "host"));
	snprintf(suffix, sizeof(suffix), "/%s", op);
	if (vmops_agent(t, host, "POST", JS(row, "uuid"), suffix, NULL, 30000,
	    NULL) < 0)
		goto cleanup;
	if (after)
		vm_set_state(JS(row, "uuid"), after, host,
		    json_integer_value(json_object_get(row, "pid")));
	event_add("info", "vm.state", t->vm, "vm %s: %s", t->vm, op);
	rc = 0;
cleanup:
	json_decref(row);
	return rc;
}

int
vmops_pause(struct task *t)
{
	return vmops_simple(t, "pause", "paused");
}

int
vmops_resume(struct task *t)
{
	return vmops_simple(t, "resume", "running");
}

int
vmops_reboot(struct task *t)
{
	return vmops_simple(t, "reboot", NULL);
}

int
vmops_delete(struct task *t)
{
	char host[UTIL_NAME_MAX + 1], path[256];
	json_t *row, *spec = NULL;
	int rc = -1;

	if ((row = vmops_load(t)) == NULL)
		return -1;
	if (vmops_check("delete", row, t->params, t->err, sizeof(t->err)) < 0)
		goto cleanup;
	if (strcmp(JS(row, "state"), "stopped") != 0 &&
	    strcmp(JS(row, "state"), "failed") != 0) {
		json_object_set_new(t->params, "timeout_s", json_integer(0));
		if (vmops_stop(t) < 0)
			goto cleanup;
	}
	task_progress(t, 50);
	spec = vm_spec(row);
	if (agentc_host_with_storage(JS(spec, "storage"), JS(row, "host"), host,
	    sizeof(host)) < 0) {
		snprintf(t->err, sizeof(t->err), "no host with storage %s is up "
		    "to delete the VM's files", JS(spec, "storage"));
		goto cleanup;
	}
	snprintf(path, sizeof(path), "?storage=%s", JS(spec, "storage"));
	if (vmops_agent(t, host, "DELETE", JS(row, "uuid"), path, NULL, 60000,
	    NULL) < 0)
		goto cleanup;
	db_exec("DELETE FROM vms WHERE uuid = ?", "s", JS(row, "uuid"));
	vnet_nics_release(JS(row, "uuid"), NULL);
	event_add("info", "vm.deleted", t->vm, "vm %s deleted", t->vm);
	rc = 0;
cleanup:
	json_decref(spec);
	json_decref(row);
	return rc;
}
