/* migrate.c - live migration on the agent: receive (-incoming defer, the
 * stream through migstream.c) and send (migrate with limits), status,
 * cancel, finish. The manager orchestrates; QEMU moves the state directly
 * between hosts, over TLS with a key made for that migration. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "qemu/qmp.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))

static struct avm *
mig_vm(const char *uuid, char *err, size_t errsz, int *status)
{
	struct avm *vm = vmhost_get(uuid);

	if (vm == NULL) {
		snprintf(err, errsz, "VM %s is not on host %s", uuid,
		    agent_cfg.name);
		*status = 404;
	}
	return vm;
}

static int
mig_caps(struct avm *vm, int auto_converge, char *err, size_t errsz)
{
	json_t *args;
	int rc;

	args = json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities",
	    "capability", "events", "state", 1,
	    "capability", "auto-converge", "state", auto_converge);
	rc = qmp_command(vm->qmp, "migrate-set-capabilities", args, 5000, NULL,
	    err, errsz);
	json_decref(args);
	return rc;
}

/* Receive: QEMU waits (-incoming defer) with the migration's key, and
 * our listener hands it the source's connection (migstream.c). mig: the
 * manager's {"psk", "source"} for this migration. */
int
mig_incoming(json_t *spec, json_t *mig, json_t **result, char *err,
    size_t errsz, int *status)
{
	struct avm *vm = NULL;
	json_t *res = NULL;
	char uri[128];
	int port, rc = -1;

	*status = 400;
	if (migstream_check(mig, 1, err, errsz) < 0)
		return -1;
	if (vmhost_start(spec, 1, &res, err, errsz, status) < 0)
		goto cleanup;
	*status = 502;
	if ((vm = mig_vm(JS(spec, "uuid"), err, errsz, status)) == NULL)
		goto cleanup;
	if (mig_caps(vm, 0, err, errsz) < 0 ||
	    migstream_listen(vm, mig, &port, err, errsz) < 0)
		goto fail;
	snprintf(uri, sizeof(uri), "tcp:%s:%d", agent_cfg.migration_addr, port);
	log_info("vm %s: waiting for its migration on %s", vm->name, uri);
	*result = json_pack("{s:s, s:O}", "uri", uri, "pid",
	    json_object_get(res, "pid"));
	*status = 200;
	rc = 0;
	goto cleanup;
fail:
	{
		char e2[128];
		int st2;
		vmhost_stop(vm->uuid, 1, 0, e2, sizeof(e2), &st2);
	}
cleanup:
	json_decref(res);
	vmhost_put(vm);
	return rc;
}

int
mig_start(const char *uuid, json_t *p, char *err, size_t errsz, int *status)
{
	json_int_t downtime = 10, bw = 0;
	const char *uri = JS(p, "uri");
	json_t *args = NULL;
	struct avm *vm;
	int rc = -1;

	if ((vm = mig_vm(uuid, err, errsz, status)) == NULL)
		return -1;
	*status = 400;
	if (uri == NULL || strncmp(uri, "tcp:", 4) != 0) {
		snprintf(err, errsz, "uri must be tcp:HOST:PORT");
		goto cleanup;
	}
	if (migstream_check(p, 0, err, errsz) < 0)
		goto cleanup;
	if (json_is_integer(json_object_get(p, "downtime_ms")))
		downtime = json_integer_value(json_object_get(p, "downtime_ms"));
	if (json_is_integer(json_object_get(p, "bandwidth_mibs")))
		bw = json_integer_value(json_object_get(p, "bandwidth_mibs"));
	if (downtime < 1 || downtime > 60000 || bw < 0 || bw > 1000000) {
		snprintf(err, errsz, "downtime_ms 1..60000, bandwidth_mibs 0..1000000");
		goto cleanup;
	}
	*status = 502;
	/* A bandwidth of 0 means "as fast as possible". */
	args = json_pack("{s:I, s:I}", "downtime-limit", downtime,
	    "max-bandwidth", bw ? bw * 1024 * 1024 : (json_int_t)1 << 40);
	if (mig_caps(vm, !json_is_false(json_object_get(p, "auto_converge")),
	    err, errsz) < 0 || qmp_command(vm->qmp, "migrate-set-parameters",
	    args, 5000, NULL, err, errsz) < 0 ||
	    migstream_source(vm, p, err, errsz) < 0)
		goto cleanup;
	json_decref(args);
	args = json_pack("{s:s}", "uri", uri);
	pthread_mutex_lock(&vm->lock);
	vm->migrating = 1;
	pthread_mutex_unlock(&vm->lock);
	vmhost_set_state(vm, "migrating");
	if (qmp_command(vm->qmp, "migrate", args, 10000, NULL, err, errsz) < 0) {
		pthread_mutex_lock(&vm->lock);
		vm->migrating = 0;
		pthread_mutex_unlock(&vm->lock);
		vmhost_set_state(vm, "running");
		goto cleanup;
	}
	log_info("vm %s: migrating to %s (downtime limit %lld ms)", vm->name,
	    uri, (long long)downtime);
	*status = 200;
	rc = 0;
cleanup:
	json_decref(args);
	vmhost_put(vm);
	return rc;
}

json_t *
mig_status(const char *uuid, char *err, size_t errsz, int *status)
{
	json_t *mig = NULL, *st = NULL, *ret = NULL;
	struct avm *vm;
	char state[16];

	if ((vm = mig_vm(uuid, err, errsz, status)) == NULL)
		return NULL;
	*status = 502;
	if (qmp_command(vm->qmp, "query-migrate", NULL, 5000, &mig, err,
	    errsz) < 0 || qmp_command(vm->qmp, "query-status", NULL, 5000, &st,
	    err, errsz) < 0)
		goto cleanup;
	pthread_mutex_lock(&vm->lock);
	snprintf(state, sizeof(state), "%s", vm->state);
	pthread_mutex_unlock(&vm->lock);
	ret = json_pack("{s:O, s:O, s:s, s:I}", "migration", mig, "status",
	    json_object_get(st, "status") ? json_object_get(st, "status") :
	    json_null(), "state", state, "pid", (json_int_t)vm->pid);
	*status = 200;
cleanup:
	json_decref(mig);
	json_decref(st);
	vmhost_put(vm);
	return ret;
}

int
mig_cancel(const char *uuid, char *err, size_t errsz, int *status)
{
	struct avm *vm;
	int rc;

	if ((vm = mig_vm(uuid, err, errsz, status)) == NULL)
		return -1;
	rc = qmp_command(vm->qmp, "migrate_cancel", NULL, 5000, NULL, err, errsz);
	*status = rc < 0 ? 502 : 200;
	if (rc == 0)
		log_info("vm %s: migration cancelled", vm->name);
	vmhost_put(vm);
	return rc;
}

/* The VM (held: the caller puts it) whose QEMU has sent its state and
 * waits, paused, in "postmigrate", its copy not handed over yet: what
 * mig_finish ends and mig_resume runs again. NULL otherwise, with err
 * and *status (409 for any other state, or when QMP does not answer). */
static struct avm *
mig_postmigrate(const char *uuid, char *err, size_t errsz, int *status)
{
	struct avm *vm, *ret = NULL;
	json_t *st = NULL;
	char qs[32];

	if ((vm = mig_vm(uuid, err, errsz, status)) == NULL)
		return NULL;
	*status = 409;
	if (qmp_command(vm->qmp, "query-status", NULL, 5000, &st, err, errsz) < 0)
		goto cleanup;
	snprintf(qs, sizeof(qs), "%s", JS(st, "status") ? JS(st, "status") : "");
	pthread_mutex_lock(&vm->lock);
	if (vm->migrated)
		snprintf(qs, sizeof(qs), "handed over");
	pthread_mutex_unlock(&vm->lock);
	if (strcmp(qs, "postmigrate") != 0) {
		snprintf(err, errsz, "VM %s is %s here, not paused after sending "
		    "its state", vm->name, qs);
		goto cleanup;
	}
	ret = vm;
	vm = NULL;
cleanup:
	json_decref(st);
	vmhost_put(vm);
	return ret;
}

/* The destination runs: end the paused source copy. */
int
mig_finish(const char *uuid, char *err, size_t errsz, int *status)
{
	struct avm *vm;
	int rc;

	if ((vm = mig_postmigrate(uuid, err, errsz, status)) == NULL)
		return -1;
	pthread_mutex_lock(&vm->lock);
	vm->migrated = 1;
	pthread_mutex_unlock(&vm->lock);
	rc = vmhost_stop(uuid, 1, 0, err, errsz, status);
	vmhost_put(vm);
	return rc;
}

/* The destination ended without ever running the VM (it could not load
 * the state): take the paused source copy back. QEMU re-activates its
 * disks on `cont` after a completed migration; a VM that was paused
 * before the migration is paused again at once. */
int
mig_resume(const char *uuid, json_t *p, char *err, size_t errsz, int *status)
{
	struct avm *vm;
	int rc = -1;

	if ((vm = mig_postmigrate(uuid, err, errsz, status)) == NULL)
		return -1;
	*status = 502;
	if (qmp_command(vm->qmp, "cont", NULL, 30000, NULL, err, errsz) < 0)
		goto cleanup;
	pthread_mutex_lock(&vm->lock);
	vm->migrating = 0;
	pthread_mutex_unlock(&vm->lock);
	if (json_is_true(json_object_get(p, "paused")) &&
	    qmp_command(vm->qmp, "stop", NULL, 5000, NULL, err, errsz) < 0)
		goto cleanup;
	log_info("vm %s: its destination did not take it over: runs here "
	    "again", vm->name);
	*status = 200;
	rc = 0;
cleanup:
	vmhost_put(vm);
	return rc;
}

/* Called from the RESUME event of an arrived VM (events may send QMP).
 * QEMU's timings for its own post-migration announcements. */
void
mig_announce(struct avm *vm)
{
	char err[256];
	json_t *args;

	args = json_pack("{s:i, s:i, s:i, s:i}", "initial", 50, "max", 550,
	    "rounds", 5, "step", 100);
	if (qmp_command(vm->qmp, "announce-self", args, 5000, NULL, err,
	    sizeof(err)) < 0)
		log_warnx("vm %s: %s", vm->name, err);
	else
		log_info("vm %s: announced on this host after its migration",
		    vm->name);
	json_decref(args);
}
