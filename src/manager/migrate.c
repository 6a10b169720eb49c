/* migrate.c - live migration orchestrated by the manager: the destination
 * waits with -incoming, the source sends, we watch QEMU's own figures, and
 * the source ends only once the destination runs. Any failure before that
 * leaves the VM running on the source and the destination cleaned up. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define JI(o, k) json_integer_value(json_object_get((o), (k)))

/* One agent call about the VM; -1 with err on failure (no answer or 4xx/5xx). */
static int
mig_call(const char *host, const char *method, const char *uuid,
    const char *op, json_t *body, long timeout_ms, json_t **reply, char *err,
    size_t errsz)
{
	char path[160];
	int status = 0;

	snprintf(path, sizeof(path), "/agent/v1/vms/%s/%s", uuid, op);
	if (agentc_call(host, method, path, body, timeout_ms, &status, reply,
	    err, errsz) < 0)
		return -1;
	if (status >= 400) {
		if (reply) {
			json_decref(*reply);
			*reply = NULL;
		}
		return -1;
	}
	return 0;
}

static int
mig_host_alive(const char *host)
{
	char err[256];
	int status = 0;

	return agentc_call(host, "GET", "/agent/v1/info", NULL, 1500, &status,
	    NULL, err, sizeof(err)) == 0 && status == 200;
}

/* Clean up the destination's waiting QEMU. */
static void
mig_abort_dest(const char *dest, const char *uuid)
{
	char err[256];
	json_t *b = json_pack("{s:b, s:i}", "force", 1, "timeout_s", 0);

	if (mig_call(dest, "POST", uuid, "stop", b, 15000, NULL, err,
	    sizeof(err)) < 0)
		log_warnx("migration: cleaning up on %s: %s", dest, err);
	json_decref(b);
}

struct mig_watch {
	const char	*src, *dest, *uuid;
	int64_t		 deadline;
	int		 lo, hi;	/* task progress range */
	json_t		*final;		/* query-migrate at the end */
	char		 err[512];
};

/* After a cancel: did QEMU complete anyway? Asks the source, then the
 * destination (the source's agent may be gone). */
static int
mig_settled_on_dest(struct mig_watch *w)
{
	json_t *st = NULL;
	char err[256];
	int done = 0, i;

	for (i = 0; i < 20 && !done; i++) {
		if (mig_call(w->src, "GET", w->uuid, "migration", NULL, 3000, &st,
		    err, sizeof(err)) == 0) {
			const char *s = JS(json_object_get(st, "migration"), "status");
			if (s && strcmp(s, "completed") == 0) {
				w->final = json_incref(json_object_get(st, "migration"));
				done = 1;
			} else if (s && strcmp(s, "cancelling") != 0) {
				json_decref(st);
				break;	/* cancelled or failed: the source runs */
			}
			json_decref(st);
			st = NULL;
		} else if (mig_call(w->dest, "GET", w->uuid, "migration", NULL,
		    3000, &st, err, sizeof(err)) == 0) {
			done = JS(st, "status") && strcmp(JS(st, "status"),
			    "running") == 0;
			json_decref(st);
			st = NULL;
			if (!done)
				break;
		}
		if (!done)
			util_sleep_ms(100);
	}
	if (done)
		w->err[0] = '\0';
	return done;
}

/* Poll the source until QEMU says completed (0) or failed/cancelled or we
 * gave up (-1, the migration cancelled and the source running). */
static int
mig_watch(struct task *t, struct mig_watch *w)
{
	int64_t last_ping = 0;
	int src_fail = 0, unfigured = 0;

	for (;;) {
		json_t *st = NULL, *m;
		const char *status;
		char err[256];

		util_sleep_ms(50);
		if (util_mono_ms() > w->deadline) {
			snprintf(w->err, sizeof(w->err), "migration did not finish "
			    "in time: cancelled, the VM stays on %s", w->src);
			goto cancel;
		}
		if (util_mono_ms() - last_ping > 1000) {
			last_ping = util_mono_ms();
			if (!mig_host_alive(w->dest)) {
				snprintf(w->err, sizeof(w->err), "destination host "
				    "%s stopped answering: cancelled, the VM stays "
				    "on %s", w->dest, w->src);
				goto cancel;
			}
		}
		if (mig_call(w->src, "GET", w->uuid, "migration", NULL, 3000, &st,
		    err, sizeof(err)) < 0) {
			/* The source agent may be gone while QEMU goes on: ask
			 * the destination whether the VM runs there now. */
			json_t *d = NULL;
			int done = mig_call(w->dest, "GET", w->uuid, "migration",
			    NULL, 3000, &d, err, sizeof(err)) == 0 && JS(d, "status") &&
			    strcmp(JS(d, "status"), "running") == 0;
			json_decref(d);
			if (done)
				return 0;
			if (++src_fail % 20 == 1)
				log_warnx("migration: source %s: %s", w->src, err);
			continue;
		}
		src_fail = 0;
		m = json_object_get(st, "migration");
		status = JS(m, "status") ? JS(m, "status") : "none";
		/* QEMU says completed a moment before it has worked out the
		 * figures (total-time and downtime read 0 until then): ask
		 * again, for up to about 2 s. */
		if (strcmp(status, "completed") == 0 && JI(m, "total-time") <= 0 &&
		    ++unfigured < 40) {
			json_decref(st);
			continue;
		}
		if (strcmp(status, "completed") == 0) {
			w->final = json_incref(m);
			json_decref(st);
			return 0;
		}
		if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0) {
			snprintf(w->err, sizeof(w->err), "migration %s: %s", status,
			    JS(m, "error-desc") ? JS(m, "error-desc") : "QEMU gave no "
			    "reason");
			json_decref(st);
			return -1;
		}
		{
			json_t *ram = json_object_get(m, "ram");
			int64_t done = JI(ram, "transferred"), left = JI(ram, "remaining");
			if (done + left > 0)
				task_progress(t, w->lo + (int)((w->hi - w->lo) * done /
				    (done + left)));
		}
		json_decref(st);
	}
cancel:
	{
		char err[256];
		if (mig_call(w->src, "POST", w->uuid, "migrate-cancel", NULL, 5000,
		    NULL, err, sizeof(err)) < 0)
			log_warnx("migration: cancel on %s: %s", w->src, err);
	}
	/* The migration may have completed just before the cancel: then the
	 * destination runs and must not be torn down. */
	if (mig_settled_on_dest(w))
		return 0;
	return -1;
}

/* QEMU's figures when the completion was seen through the destination
 * (the source agent was slow or away): ask the source again. */
static json_t *
mig_final_figures(const char *src, const char *uuid)
{
	json_t *st = NULL, *m = NULL;
	char err[256];
	int i;

	for (i = 0; i < 5 && m == NULL; i++) {
		if (mig_call(src, "GET", uuid, "migration", NULL, 5000, &st, err,
		    sizeof(err)) == 0 && JS(json_object_get(st, "migration"),
		    "status") && strcmp(JS(json_object_get(st, "migration"),
		    "status"), "completed") == 0 && (i == 4 ||
		    JI(json_object_get(st, "migration"), "total-time") > 0))
			m = json_incref(json_object_get(st, "migration"));
		json_decref(st);
		st = NULL;
		if (m == NULL)
			util_sleep_ms(500);
	}
	return m;
}

/* How the destination's QEMU (inc_pid) ended, when it has: 1 when it
 * exited still waiting for the state (it never ran the VM; its reason in
 * why), 0 when it ended otherwise, -1 when it has not ended (or its agent
 * does not say). */
static int
mig_dest_exit(const char *dest, const char *uuid, int64_t inc_pid, char *why,
    size_t whysz)
{
	json_t *e = NULL;
	char err[256];
	int rc = -1;

	if (inc_pid <= 0 || mig_call(dest, "GET", uuid, "exit", NULL, 3000, &e,
	    err, sizeof(err)) < 0 || JI(e, "pid") != inc_pid)
		goto cleanup;
	rc = 0;
	if (JS(e, "state") && strcmp(JS(e, "state"), "incoming-failed") == 0) {
		snprintf(why, whysz, "%s", JS(e, "reason") ? JS(e, "reason") :
		    "it gave no reason");
		rc = 1;
	}
cleanup:
	json_decref(e);
	return rc;
}

/* Wait until the destination's QEMU says running: 0, with its pid; -2
 * when it exited without ever running the VM (why says what QEMU said);
 * -1 when it ended otherwise or did not run in time. */
static int
mig_dest_running(const char *dest, const char *uuid, int64_t inc_pid,
    int64_t *pid, char *why, size_t whysz)
{
	int64_t deadline = util_mono_ms() + 20000;
	char err[256];

	while (util_mono_ms() < deadline) {
		json_t *d = NULL;
		int ok, gone;

		gone = mig_call(dest, "GET", uuid, "migration", NULL, 3000, &d,
		    err, sizeof(err)) < 0;
		ok = !gone && JS(d, "status") && strcmp(JS(d, "status"),
		    "running") == 0;
		if (ok)
			*pid = JI(d, "pid");
		json_decref(d);
		if (ok)
			return 0;
		if (gone) {
			switch (mig_dest_exit(dest, uuid, inc_pid, why, whysz)) {
			case 1:
				return -2;
			case 0:
				return -1;
			default:
				break;
			}
		}
		util_sleep_ms(20);
	}
	return -1;
}

/* QEMU on the source says only that the stream broke: did the
 * destination's QEMU exit because it could not load the state? It exits
 * right after saying why, so wait for that a moment (up to 2 s). */
static int
mig_failed_at_dest(const char *dest, const char *uuid, int64_t inc_pid,
    char *why, size_t whysz)
{
	int i, e = -1;

	for (i = 0; i < 20 && e < 0; i++) {
		if ((e = mig_dest_exit(dest, uuid, inc_pid, why, whysz)) < 0)
			util_sleep_ms(100);
	}
	return e == 1;
}

/* The destination never ran the VM: the source, paused in postmigrate,
 * takes it back (paused again when it was paused before). */
static int
mig_take_back(const char *src, const char *uuid, const char *prev, char *err,
    size_t errsz)
{
	json_t *b = json_pack("{s:b}", "paused", strcmp(prev, "paused") == 0);
	int rc;

	rc = mig_call(src, "POST", uuid, "migrate-resume", b, 35000, NULL, err,
	    errsz);
	json_decref(b);
	return rc;
}

/* Where src's migration stream may come from: the address it registers
 * from, its migration address and its URL's host (numeric addresses
 * only), as a JSON list; the destination's agent takes no stream from
 * elsewhere (agent migstream.c). */
static json_t *
mig_sources(const char *src)
{
	json_t *row = db_row("SELECT url, info FROM hosts WHERE name = ?", "s",
	    src), *info = NULL, *out = json_array(), *v;
	const char *cand[3] = { NULL, NULL, NULL }, *url;
	char host[128];
	unsigned char a[16];
	size_t i, j, n;

	if (row != NULL && JS(row, "info") != NULL)
		info = json_loads(JS(row, "info"), 0, NULL);
	cand[0] = JS(info, "address");
	cand[1] = JS(info, "migration_addr");
	if ((url = JS(row, "url")) != NULL && (url = strstr(url, "://")) !=
	    NULL) {
		url += 3;
		n = *url == '[' ? strcspn(++url, "]") : strcspn(url, ":/");
		if (n < sizeof(host)) {
			memcpy(host, url, n);
			host[n] = '\0';
			cand[2] = host;
		}
	}
	for (i = 0; i < 3; i++) {
		if (cand[i] == NULL || (inet_pton(AF_INET, cand[i], a) != 1 &&
		    inet_pton(AF_INET6, cand[i], a) != 1))
			continue;
		json_array_foreach(out, j, v)
			if (strcmp(json_string_value(v), cand[i]) == 0)
				break;
		if (j == json_array_size(out))
			json_array_append_new(out, json_string(cand[i]));
	}
	json_decref(info);
	json_decref(row);
	return out;
}

/* Move one running VM (row) to dest. The stream goes over TLS with a
 * key made for this attempt alone (never logged or kept), and the
 * destination takes it only from src's addresses. */
static int
mig_one(struct task *t, json_t *row, const char *dest, int lo, int hi,
    json_t **result)
{
	char psk[65];
	struct cluster_settings cs;
	struct mig_watch w;
	json_t *spec = vm_spec(row), *reply = NULL, *body = NULL;
	const char *uuid = JS(row, "uuid"), *src = JS(row, "host");
	const char *prev = JS(row, "state");
	int64_t t0 = util_mono_ms(), pid = 0;
	char why[384];
	int rc = -1, drc;

	cluster_get(&cs);
	memset(&w, 0, sizeof(w));
	util_random_hex(psk, 32);
	json_object_set_new(spec, "migration", json_pack("{s:s, s:o}", "psk",
	    psk, "source", mig_sources(src)));
	vm_set_state(uuid, "migrating", src, JI(row, "pid"));
	if (mig_call(dest, "POST", uuid, "incoming", spec, 30000, &reply, t->err,
	    sizeof(t->err)) < 0) {
		vm_set_state(uuid, prev, src, JI(row, "pid"));
		goto cleanup;
	}
	body = json_pack("{s:s, s:I, s:I, s:b}", "uri", JS(reply, "uri"),
	    "downtime_ms", (json_int_t)(json_is_integer(json_object_get(t->params,
	    "downtime_ms")) ? JI(t->params, "downtime_ms") :
	    cs.migration_downtime_ms), "bandwidth_mibs", (json_int_t)(
	    json_is_integer(json_object_get(t->params, "bandwidth_mibs")) ?
	    JI(t->params, "bandwidth_mibs") : cs.migration_bandwidth_mibs),
	    "auto_converge", !json_is_false(json_object_get(t->params,
	    "auto_converge")));
	json_object_set_new(body, "psk", json_string(psk));
	if (mig_call(src, "POST", uuid, "migrate", body, 15000, NULL, t->err,
	    sizeof(t->err)) < 0) {
		mig_abort_dest(dest, uuid);
		vm_set_state(uuid, prev, src, JI(row, "pid"));
		goto cleanup;
	}
	w.src = src;
	w.dest = dest;
	w.uuid = uuid;
	w.lo = lo;
	w.hi = hi;
	w.deadline = util_mono_ms() + (int64_t)1000 * (json_is_integer(
	    json_object_get(t->params, "timeout_s")) ? JI(t->params, "timeout_s") :
	    cs.migration_timeout_s);
	if (mig_watch(t, &w) < 0) {
		snprintf(t->err, sizeof(t->err), "%s", w.err);
		if (strncmp(w.err, "migration failed", 16) == 0 &&
		    mig_failed_at_dest(dest, uuid, JI(reply, "pid"), why,
		    sizeof(why)))
			snprintf(t->err, sizeof(t->err), "migration failed: the "
			    "destination %s could not load the VM's state (%s); "
			    "the VM stays on %s", dest, why, src);
		mig_abort_dest(dest, uuid);
		vm_set_state(uuid, prev, src, JI(row, "pid"));
		goto cleanup;
	}
	drc = mig_dest_running(dest, uuid, JI(reply, "pid"), &pid, why,
	    sizeof(why));
	if (drc == -2 && mig_take_back(src, uuid, prev, w.err,
	    sizeof(w.err)) == 0) {
		/* QEMU completed on the source but the destination could not
		 * load the state and exited: it never ran the VM, so the
		 * paused source copy is the VM, and runs on. */
		snprintf(t->err, sizeof(t->err), "migration failed: the "
		    "destination %s could not load the VM's state (%s); the VM "
		    "runs on %s again", dest, why, src);
		vm_set_state(uuid, prev, src, JI(row, "pid"));
		event_add("warning", "vm.state", JS(row, "name"), "vm %s: %s",
		    JS(row, "name"), t->err);
		goto cleanup;
	}
	if (drc == -2)
		log_warnx("migration of %s: the source %s did not resume: %s",
		    JS(row, "name"), src, w.err);
	if (drc < 0) {
		/* QEMU handed the VM over (the source is paused for good) but
		 * the destination never ran it: the VM has failed; HA, if on,
		 * boots it again from its disks. */
		snprintf(t->err, sizeof(t->err), "the destination %s died right "
		    "after taking the VM over; the VM has failed", dest);
		mig_abort_dest(dest, uuid);
		mig_call(src, "POST", uuid, "migrate-finish", NULL, 15000, NULL,
		    w.err, sizeof(w.err));
		vm_set_state(uuid, "failed", NULL, 0);
		failover_vm_failed(JS(row, "name"), dest, "destination died");
		event_add("error", "vm.state", JS(row, "name"), "%s", t->err);
		goto cleanup;
	}
	if (w.final == NULL)
		w.final = mig_final_figures(src, uuid);
	/* The destination runs: only now does the source copy end. */
	vm_set_state(uuid, "running", dest, pid);
	if (mig_call(src, "POST", uuid, "migrate-finish", NULL, 15000, NULL,
	    t->err, sizeof(t->err)) < 0)
		log_warnx("migration of %s: source %s not cleaned yet (%s); it "
		    "is told to stop its paused copy when it reports", JS(row,
		    "name"), src, t->err);
	t->err[0] = '\0';
	*result = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "from", src, "to",
	    dest, "downtime_ms", (json_int_t)JI(w.final, "downtime"),
	    "total_ms", (json_int_t)JI(w.final, "total-time"),
	    "transferred_bytes", (json_int_t)JI(json_object_get(w.final, "ram"),
	    "transferred"), "elapsed_ms", (json_int_t)(util_mono_ms() - t0));
	event_add("info", "vm.migrated", JS(row, "name"), "vm %s migrated from "
	    "%s to %s: downtime %lld ms, total %lld ms", JS(row, "name"), src,
	    dest, (long long)JI(w.final, "downtime"),
	    (long long)JI(w.final, "total-time"));
	rc = 0;
cleanup:
	sodium_memzero(psk, sizeof(psk));
	json_decref(w.final);
	json_decref(body);
	json_decref(reply);
	json_decref(spec);
	return rc;
}

int
vmops_migrate(struct task *t)
{
	const char *to = JS(t->params, "to");
	char dest[UTIL_NAME_MAX + 1];
	json_t *row = vm_find(t->vm);
	int rc = -1;

	if (row == NULL) {
		snprintf(t->err, sizeof(t->err), "vm \"%s\" not found", t->vm);
		goto cleanup;
	}
	if (vmops_check("migrate", row, t->params, t->err, sizeof(t->err)) < 0)
		goto cleanup;
	if (sched_pick(row, to, JS(row, "host"), dest, sizeof(dest), t->err,
	    sizeof(t->err)) < 0)
		goto cleanup;
	task_progress(t, 5);
	rc = mig_one(t, row, dest, 5, 99, &t->result);
cleanup:
	json_decref(row);
	return rc;
}

/* Maintenance: move every running VM off the host, one at a time. */
int
hostops_evacuate(struct task *t)
{
	const char *host = JS(t->params, "host");
	json_t *rows, *row;
	char dest[UTIL_NAME_MAX + 1], err[512], failed[1024] = "";
	size_t i, n, moved = 0, flen = 0;

	rows = db_query("SELECT * FROM vms WHERE host = ? AND state IN "
	    "('running', 'paused') ORDER BY name", "s", host);
	n = json_array_size(rows);
	json_array_foreach(rows, i, row) {
		json_t *res = NULL;
		int lo = (int)(100 * i / (n ? n : 1)), hi = (int)(100 * (i + 1) / n);
		int ok;

		/* Take the VM like a task would, so nobody else acts on it. */
		if (db_exec("UPDATE vms SET task_id = ? WHERE uuid = ? AND task_id "
		    "IS NULL", "is", t->id, JS(row, "uuid")) != 1) {
			ok = 0;
			snprintf(err, sizeof(err), "busy");
		} else {
			ok = sched_pick(row, NULL, host, dest, sizeof(dest), err,
			    sizeof(err)) == 0 && mig_one(t, row, dest, lo, hi,
			    &res) == 0;
			if (!ok && t->err[0])
				snprintf(err, sizeof(err), "%s", t->err);
			db_exec("UPDATE vms SET task_id = NULL WHERE uuid = ? AND "
			    "task_id = ?", "si", JS(row, "uuid"), t->id);
		}
		json_decref(res);
		t->err[0] = '\0';
		if (ok) {
			moved++;
		} else {
			int k = snprintf(failed + flen, sizeof(failed) - flen,
			    "%s%s (%s)", flen ? "; " : "", JS(row, "name"), err);
			if (k > 0 && (size_t)k < sizeof(failed) - flen)
				flen += (size_t)k;
		}
		task_progress(t, hi > 99 ? 99 : hi);
	}
	json_decref(rows);
	t->result = json_pack("{s:s, s:I, s:I}", "host", host, "moved",
	    (json_int_t)moved, "failed", (json_int_t)(n - moved));
	if (moved < n) {
		/* The list may be long: the task error keeps its start. */
		snprintf(t->err, sizeof(t->err), "host %s: %zu of %zu VMs could "
		    "not move: %.400s", host, n - moved, n, failed);
		return -1;
	}
	event_add("info", "host.evacuated", host, "host %s evacuated: %zu VMs "
	    "moved", host, moved);
	return 0;
}
