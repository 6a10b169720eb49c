/* kctl.c - the keeper's control socket RUN/keeper.sock: who may connect
 * (root or the keeper's uid, mode 0600), one bounded JSON request per
 * connection, and the ops status, vm_add, vm_del, hold and stop
 * (docs/keeper.md). Runs in the decision loop's thread: no op blocks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/keeper.h"
#include "common/log.h"

static json_t *
keeper_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
keeper_fail(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

static int
keeper_unconfirmed(void)
{
	int i;

	for (i = 0; i < kproc.s.ndom; i++)
		if (kproc.s.dom[i].state == KD_UNCONFIRMED)
			return 1;
	return 0;
}

static json_t *
keeper_op_status(json_t *req, int64_t now)
{
	json_t *doms = json_object();
	int i;

	(void)req;
	for (i = 0; i < kproc.s.ndom; i++) {
		struct kdstate *d = &kproc.s.dom[i];
		char err[160];

		pthread_mutex_lock(&kproc.dom[i].lock);
		snprintf(err, sizeof(err), "%s", kproc.dom[i].error);
		pthread_mutex_unlock(&kproc.dom[i].lock);
		/* No renewal known yet (a keeper without its predecessor's
		 * state): no age at all, rather than one counted from 0. */
		/* held: past its kill time, the kill held (leave mode) */
		json_object_set_new(doms, d->name, json_pack("{s:s, s:o, s:b, "
		    "s:s}", "state", d->state == KD_LATE && d->last_ok &&
		    now - d->last_ok >= kproc.s.t.fence_ms -
		    kproc.s.t.kill_grace_ms ? "held" :
		    keeper_state_name(d->state), "age_ms",
		    d->last_ok ? json_integer(now - d->last_ok) : json_null(),
		    "direct", d->direct, "error", err));
	}
	return json_pack("{s:b, s:i, s:s, s:s, s:I, s:o, s:i, s:{s:I, s:I, "
	    "s:I, s:I, s:I}, s:s, s:s}", "ok", 1, "pid", (int)getpid(),
	    "fence", wd_fence(&kproc.wd), "watchdog", kproc.wd.kind == WD_NONE ?
	    "none" : keeper_unconfirmed() ? "unpetted" : "armed",
	    "tick_late_max_ms",
	    (json_int_t)kproc.tick_late_max, "domains", doms, "vms", kproc.s.nvm,
	    "timing", "renew_ms", (json_int_t)kproc.s.t.renew_ms, "fence_ms",
	    (json_int_t)kproc.s.t.fence_ms, "kill_grace_ms",
	    (json_int_t)kproc.s.t.kill_grace_ms, "tick_ms",
	    (json_int_t)kproc.s.t.tick_ms,
	    "watchdog_ms", (json_int_t)kproc.s.t.watchdog_ms, "conf", kproc.hash,
	    "host", kproc.host);
}

static json_t *
keeper_op_vm_add(json_t *req, int64_t now)
{
	const char *uuid = json_string_value(json_object_get(req, "uuid"));
	json_t *pidj = json_object_get(req, "pid"), *doms, *e;
	struct kfound f;
	size_t i;
	int k;

	doms = json_object_get(req, "domains");
	if (!util_uuid_valid(uuid) || !json_is_integer(pidj) ||
	    json_integer_value(pidj) <= 0 || json_integer_value(pidj) >
	    INT32_MAX || !json_is_array(doms) || json_array_size(doms) == 0)
		return keeper_fail("vm_add wants uuid, pid and domains");
	memset(&f, 0, sizeof(f));
	json_array_foreach(doms, i, e) {
		struct kdstate *d;

		if ((k = keeper_dom_index(json_string_value(e))) < 0)
			return keeper_fail("storage %s: not guarded by this keeper",
			    json_is_string(e) ? json_string_value(e) : "?");
		d = &kproc.s.dom[k];
		if (d->last_ok == 0)
			return keeper_fail("storage %s: lease not renewed yet",
			    d->name);
		if (d->state != KD_OK || now - d->last_ok >= 2 * kproc.s.t.renew_ms)
			return keeper_fail("storage %s: lease not renewed (age "
			    "%lld ms)", d->name, (long long)(now - d->last_ok));
		f.mask |= 1u << k;
	}
	if (kproc.wd.kind != WD_NONE && keeper_unconfirmed())
		return keeper_fail("the watchdog is not petted: a fence is "
		    "unconfirmed");
	snprintf(f.uuid, sizeof(f.uuid), "%s", uuid);
	f.pid = (pid_t)json_integer_value(pidj);
	if ((f.pidfd = keeper_vm_open(uuid, f.pid)) < 0)
		return keeper_fail("pid %d is not the QEMU of vm %s", (int)f.pid,
		    uuid);
	if (keeper_vm_insert(&f) < 0)
		return keeper_fail("more than %d VMs", KEEPER_MAX_VMS);
	return json_pack("{s:b}", "ok", 1);
}

static json_t *
keeper_op_vm_del(json_t *req, int64_t now)
{
	const char *uuid = json_string_value(json_object_get(req, "uuid"));
	int j;

	(void)now;
	if (!util_uuid_valid(uuid))
		return keeper_fail("vm_del wants a uuid");
	if ((j = keeper_vm_find(uuid)) >= 0) {
		close(kproc.s.vm[j].pidfd);
		kproc.s.vm[j] = kproc.s.vm[--kproc.s.nvm];
	}
	return json_pack("{s:b}", "ok", 1);
}

static json_t *
keeper_op_hold(json_t *req, int64_t now)
{
	int k = keeper_dom_index(json_string_value(json_object_get(req,
	    "domain")));
	json_t *u = json_object_get(req, "until_ms");

	if (k < 0 || !json_is_integer(u) || json_integer_value(u) < 0 ||
	    json_integer_value(u) > now + 60000)
		return keeper_fail("hold wants a guarded domain and until_ms "
		    "(monotonic, at most 60 s ahead)");
	kproc.s.dom[k].hold_until = json_integer_value(u);
	pthread_mutex_lock(&kproc.dom[k].lock);
	kproc.dom[k].hold_until = json_integer_value(u);
	pthread_mutex_unlock(&kproc.dom[k].lock);
	return json_pack("{s:b}", "ok", 1);
}

static json_t *
keeper_op_stop(json_t *req, int64_t now)
{
	(void)req;
	(void)now;
	if (kproc.s.nvm > 0)
		return keeper_fail("%d VMs are still guarded", kproc.s.nvm);
	kproc.stop = kproc.quit = 1;
	return json_pack("{s:b}", "ok", 1);
}

static const struct {
	const char	*op;
	json_t		*(*fn)(json_t *req, int64_t now);
} keeper_ops[] = {
	{ "hold",	keeper_op_hold },
	{ "status",	keeper_op_status },
	{ "stop",	keeper_op_stop },
	{ "vm_add",	keeper_op_vm_add },
	{ "vm_del",	keeper_op_vm_del },
};

void
keeper_serve(int fd)
{
	char buf[KEEPER_MSG_MAX + 1], *s = NULL;
	json_t *req = NULL, *rep = NULL;
	const char *op = NULL;
	ssize_t n;
	size_t i;

	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;		/* not yet: stays in the poll set */
	if (n <= 0)
		goto cleanup;
	if (n > KEEPER_MSG_MAX)
		rep = keeper_fail("message over %d bytes", KEEPER_MSG_MAX);
	else if ((req = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL || !json_is_object(req) ||
	    (op = json_string_value(json_object_get(req, "op"))) == NULL)
		rep = keeper_fail("want one JSON object with an \"op\"");
	for (i = 0; rep == NULL && i < sizeof(keeper_ops) /
	    sizeof(keeper_ops[0]); i++)
		if (strcmp(op, keeper_ops[i].op) == 0)
			rep = keeper_ops[i].fn(req, util_mono_ms());
	if (rep == NULL)
		rep = keeper_fail("unknown op");
	if ((s = json_dumps(rep, JSON_COMPACT)) != NULL)
		(void)send(fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL);
cleanup:
	free(s);
	json_decref(rep);
	json_decref(req);
	for (i = 0; i < KEEPER_MAX_CONNS; i++)
		if (kproc.conns[i] == fd)
			kproc.conns[i] = -1;
	close(fd);
}

void
keeper_accept(void)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd, i;

	if ((fd = accept4(kproc.listen_fd, NULL, NULL, SOCK_CLOEXEC |
	    SOCK_NONBLOCK)) < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		log_warnx("keeper: refused a control connection from uid %d",
		    (int)cr.uid);
		close(fd);
		return;
	}
	for (i = 0; i < KEEPER_MAX_CONNS; i++) {
		if (kproc.conns[i] < 0) {
			kproc.conns[i] = fd;
			kproc.conn_at[i] = util_mono_ms();
			return;
		}
	}
	close(fd);	/* busy: the client retries */
}

int
keeper_listen(char *err, size_t errsz)
{
	struct sockaddr_un sa;
	mode_t old;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (util_fmt(sa.sun_path, sizeof(sa.sun_path), "%s/keeper.sock",
	    kproc.run) < 0) {
		snprintf(err, errsz, "%s/keeper.sock: path too long", kproc.run);
		return -1;
	}
	(void)unlink(sa.sun_path);
	if ((kproc.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);	/* 0600 from the start: no window */
	rc = bind(kproc.listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(sa.sun_path, 0600) < 0 ||
	    listen(kproc.listen_fd, 16) < 0) {
		snprintf(err, errsz, "%s: %s", sa.sun_path, strerror(errno));
		return -1;
	}
	return 0;
}

