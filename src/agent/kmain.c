/* kmain.c - the keeper process: its configuration (DATA/keeper.conf,
 * written by the agent), its crash-safe state (RUN/keeper.state), the
 * records scan, the control socket (RUN/keeper.sock) and the loop that
 * runs keeper_decide() every tick. See docs/keeper.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/keeper.h"
#include "common/log.h"

#define KEEPER_MSG_MAX		4096
#define KEEPER_MAX_CONNS	16
#define KEEPER_CONN_MS		1000	/* a client that sends nothing */
#define KEEPER_SCAN_MS		1000
#define KEEPER_QUEUE		64
#define KEEPER_STATE_MAGIC	"cvkeep1"

/* RUN/keeper.state: what a successor keeper of the same boot needs. */
struct kfile {
	char	magic[8];
	char	boot[40];
	uint32_t ndom;
	uint32_t pad;
	struct {
		char	name[UTIL_NAME_MAX + 1];
		int64_t	last_ok;
		int64_t	seq;
		int32_t	state;
		int32_t	pad;
	} dom[KEEPER_MAX_DOMAINS];
};

struct kfound {
	char		uuid[UTIL_UUID_LEN + 1];
	pid_t		pid;
	int		pidfd;
	uint32_t	mask;
};

static struct {
	char		data[PATH_MAX];
	char		run[PATH_MAX];
	char		host[UTIL_NAME_MAX + 1];
	char		wdspec[PATH_MAX];
	char		hash[UTIL_HASH_LEN + 1];
	char		boot[40];
	struct kstate	s;
	struct kdom	dom[KEEPER_MAX_DOMAINS];
	struct wd	wd;
	struct kfile	*file;
	int64_t		start;
	int64_t		tick_late_max;
	int		lock_fd;
	int		listen_fd;
	int		conns[KEEPER_MAX_CONNS];
	int64_t		conn_at[KEEPER_MAX_CONNS];
	int		stop;		/* the host leaves: remove leases */
	int		quit;
	/* the records scan hands its finds over here */
	pthread_mutex_t	qlock;
	struct kfound	queue[KEEPER_QUEUE];
	int		nqueue;
} K;

static const char keeper_usage[] = "usage: cvirt keeper --data DIR "
    "(started by the agent: docs/keeper.md)\n";

int
keeper_timing_check(const struct ktiming *t, char *err, size_t errsz)
{
	if (t->renew_ms < 100 || t->renew_ms > 2000)
		snprintf(err, errsz, "renew %lld ms is not in 100..2000",
		    (long long)t->renew_ms);
	else if (t->kill_grace_ms < 100 || t->kill_grace_ms > t->fence_ms / 4)
		snprintf(err, errsz, "kill grace %lld ms is not in 100..fence/4",
		    (long long)t->kill_grace_ms);
	else if (t->fence_ms > 60000 || t->fence_ms < 2 * t->renew_ms +
	    t->kill_grace_ms + 1000)
		snprintf(err, errsz, "fence %lld ms is not in 2 x renew %lld ms "
		    "+ kill grace %lld ms + 1000 ms = %lld..60000 ms",
		    (long long)t->fence_ms, (long long)t->renew_ms,
		    (long long)t->kill_grace_ms, (long long)(2 * t->renew_ms +
		    t->kill_grace_ms + 1000));
	else if (t->watchdog_ms < 1000 || t->watchdog_ms > 60000)
		snprintf(err, errsz, "watchdog timeout %lld ms is not in "
		    "1000..60000", (long long)t->watchdog_ms);
	else
		return 0;
	return -1;
}

static int
keeper_conf_int(json_t *c, const char *key, int64_t def, int64_t *out,
    char *err, size_t errsz)
{
	json_t *v = json_object_get(c, key);

	if (v == NULL && def >= 0) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v)) {
		snprintf(err, errsz, "%s: want an integer", key);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static int
keeper_conf_domains(json_t *list, char *err, size_t errsz)
{
	size_t i;
	json_t *e;

	if (!json_is_array(list) || json_array_size(list) == 0 ||
	    json_array_size(list) > KEEPER_MAX_DOMAINS) {
		snprintf(err, errsz, "domains: want 1..%d", KEEPER_MAX_DOMAINS);
		return -1;
	}
	json_array_foreach(list, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *path = json_string_value(json_object_get(e, "path"));
		struct kdom *d = &K.dom[i];
		size_t j;

		if (!util_name_valid(name) || path == NULL || path[0] != '/' ||
		    util_fmt(d->path, sizeof(d->path), "%s", path) < 0) {
			snprintf(err, errsz, "domain %zu: want a valid name and "
			    "an absolute path", i);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(K.dom[j].name, name) == 0) {
				snprintf(err, errsz, "domain %s given twice", name);
				return -1;
			}
		snprintf(d->name, sizeof(d->name), "%s", name);
		snprintf(K.s.dom[i].name, sizeof(K.s.dom[i].name), "%s", name);
		K.s.dom[i].direct = json_is_true(json_object_get(e, "direct"));
	}
	K.s.ndom = (int)json_array_size(list);
	return 0;
}

/* DATA/keeper.conf: {host, run, watchdog, renew_ms, fence_ms,
 * kill_grace_ms?, watchdog_ms, domains: [{name, path, direct?}]}. */
static int
keeper_conf_load(char *err, size_t errsz)
{
	char path[PATH_MAX], *text = NULL;
	const char *host, *run, *wd;
	json_t *c = NULL;
	struct ktiming *t = &K.s.t;
	int rc = -1;

	if (util_fmt(path, sizeof(path), "%s/keeper.conf", K.data) < 0 ||
	    (text = util_read_file(path, 65536, NULL)) == NULL) {
		snprintf(err, errsz, "cannot read %s/keeper.conf: %s", K.data,
		    strerror(errno));
		goto cleanup;
	}
	util_hash_hex(text, K.hash);
	if ((c = json_loads(text, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(c)) {
		snprintf(err, errsz, "%s: not a JSON object", path);
		goto cleanup;
	}
	host = json_string_value(json_object_get(c, "host"));
	run = json_string_value(json_object_get(c, "run"));
	wd = json_string_value(json_object_get(c, "watchdog"));
	if (!util_name_valid(host) || run == NULL || run[0] != '/' ||
	    strlen(run) > 80 || wd == NULL ||
	    util_fmt(K.wdspec, sizeof(K.wdspec), "%s", wd) < 0) {
		snprintf(err, errsz, "%s: want host, run (short absolute path) "
		    "and watchdog", path);
		goto cleanup;
	}
	snprintf(K.host, sizeof(K.host), "%s", host);
	snprintf(K.run, sizeof(K.run), "%s", run);
	t->tick_ms = KEEPER_TICK_MS;
	if (keeper_conf_int(c, "renew_ms", -1, &t->renew_ms, err, errsz) < 0 ||
	    keeper_conf_int(c, "fence_ms", -1, &t->fence_ms, err, errsz) < 0 ||
	    keeper_conf_int(c, "kill_grace_ms", KEEPER_KILL_GRACE_MS,
	    &t->kill_grace_ms, err, errsz) < 0 ||
	    keeper_conf_int(c, "watchdog_ms", -1, &t->watchdog_ms, err,
	    errsz) < 0 || keeper_timing_check(t, err, errsz) < 0 ||
	    keeper_conf_domains(json_object_get(c, "domains"), err, errsz) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	json_decref(c);
	free(text);
	return rc;
}

/* One keeper per data directory: a successor waits (2 s at most) for
 * the one it replaces to be gone. */
static int
keeper_lock(char *err, size_t errsz)
{
	char path[PATH_MAX];
	int i;

	if (util_fmt(path, sizeof(path), "%s/keeper.lock", K.data) < 0 ||
	    (K.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errsz, "cannot open %s/keeper.lock: %s", K.data,
		    strerror(errno));
		return -1;
	}
	for (i = 0; i < 100; i++) {
		if (flock(K.lock_fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		util_sleep_ms(20);
	}
	snprintf(err, errsz, "another keeper runs for %s", K.data);
	return -1;
}

static void
keeper_boot_id(void)
{
	char *s = util_read_file("/proc/sys/kernel/random/boot_id", 64, NULL);

	snprintf(K.boot, sizeof(K.boot), "%s", s ? s : "unknown");
	K.boot[strcspn(K.boot, "\n")] = '\0';
	free(s);
}

/* Map RUN/keeper.state and take over a predecessor's renewal times
 * (monotonic times hold across processes within one boot). Without it
 * every domain starts fenced: a QEMU found on one is killed. */
static int
keeper_state_open(char *err, size_t errsz)
{
	char path[PATH_MAX];
	struct kfile *f;
	int fd, i, k, loaded = 0;
	uint32_t n;

	if (util_fmt(path, sizeof(path), "%s/keeper.state", K.run) < 0 ||
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errsz, "cannot open %s/keeper.state: %s", K.run,
		    strerror(errno));
		return -1;
	}
	if (ftruncate(fd, 4096) < 0 || (f = mmap(NULL, 4096, PROT_READ |
	    PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		snprintf(err, errsz, "cannot map %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	K.file = f;
	n = f->ndom < KEEPER_MAX_DOMAINS ? f->ndom : KEEPER_MAX_DOMAINS;
	if (memcmp(f->magic, KEEPER_STATE_MAGIC, 8) == 0 &&
	    strncmp(f->boot, K.boot, sizeof(f->boot)) == 0)
		loaded = 1;
	for (i = 0; i < K.s.ndom; i++) {
		struct kdstate *d = &K.s.dom[i];

		d->state = KD_FENCED;
		d->fence_at = K.start;
		d->last_ok = 0;
		K.dom[i].seq = (int64_t)(((uint64_t)random() << 16) ^
		    (uint64_t)random()) & ((INT64_C(1) << 48) - 1);
		for (k = 0; loaded && k < (int)n; k++) {
			if (strncmp(f->dom[k].name, d->name, sizeof(d->name)) != 0)
				continue;
			K.dom[i].seq = f->dom[k].seq;
			if (f->dom[k].state <= KD_LATE) {
				d->state = KD_OK;
				d->last_ok = f->dom[k].last_ok;
			} else {
				/* Its fence was under way: redo it. */
				d->state = KD_FENCING;
				d->last_ok = f->dom[k].last_ok;
			}
			d->fence_at = K.start;
		}
		K.dom[i].last_ok = d->last_ok;
	}
	log_info("keeper: %s", loaded ? "renewal times taken over from the "
	    "previous keeper" : "no previous state: every domain starts fenced");
	return 0;
}

static void
keeper_state_save(void)
{
	struct kfile *f = K.file;
	int i;

	memcpy(f->magic, KEEPER_STATE_MAGIC, 8);
	snprintf(f->boot, sizeof(f->boot), "%s", K.boot);
	f->ndom = (uint32_t)K.s.ndom;
	for (i = 0; i < K.s.ndom; i++) {
		snprintf(f->dom[i].name, sizeof(f->dom[i].name), "%s",
		    K.s.dom[i].name);
		f->dom[i].last_ok = K.s.dom[i].last_ok;
		f->dom[i].state = K.s.dom[i].state;
		pthread_mutex_lock(&K.dom[i].lock);
		f->dom[i].seq = K.dom[i].seq;
		pthread_mutex_unlock(&K.dom[i].lock);
	}
}

static int
keeper_dom_index(const char *name)
{
	int i;

	for (i = 0; name && i < K.s.ndom; i++)
		if (strcmp(K.s.dom[i].name, name) == 0)
			return i;
	return -1;
}

/* A pidfd on pid, only when it runs the QEMU of uuid (checked after the
 * pidfd is open: no pid-reuse race). */
static int
keeper_vm_open(const char *uuid, pid_t pid)
{
	int fd = util_pidfd_open(pid);

	if (fd < 0)
		return -1;
	if (!util_pid_has_arg(pid, uuid) || util_pidfd_exited(fd, 0) != 0) {
		close(fd);
		errno = ESRCH;
		return -1;
	}
	return fd;
}

/* One DATA/vms/UUID.json record: {uuid, pid, storage, domains?}. */
static int
keeper_scan_one(const char *path, struct kfound *f)
{
	json_t *rec = json_load_file(path, 0, NULL), *doms, *e;
	const char *uuid;
	json_int_t pid;
	size_t i;
	int rc = -1, k;

	if (rec == NULL)
		return -1;
	uuid = json_string_value(json_object_get(rec, "uuid"));
	pid = json_integer_value(json_object_get(rec, "pid"));
	if (!util_uuid_valid(uuid) || pid <= 0 || pid > INT32_MAX)
		goto cleanup;
	memset(f, 0, sizeof(*f));
	snprintf(f->uuid, sizeof(f->uuid), "%s", uuid);
	f->pid = (pid_t)pid;
	if ((k = keeper_dom_index(json_string_value(json_object_get(rec,
	    "storage")))) >= 0)
		f->mask |= 1u << k;
	doms = json_object_get(rec, "domains");
	json_array_foreach(doms, i, e)
		if ((k = keeper_dom_index(json_string_value(e))) >= 0)
			f->mask |= 1u << k;
	if (f->mask == 0 || (f->pidfd = keeper_vm_open(uuid, f->pid)) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	json_decref(rec);
	return rc;
}

/* The agent's records of its VMs (local files): each live one goes to
 * the queue. A bridge until every start calls vm_add. */
static void
keeper_scan(void)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *de;
	struct kfound f;
	DIR *d;

	if (util_fmt(dir, sizeof(dir), "%s/vms", K.data) < 0 ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n != UTIL_UUID_LEN + 5 || strcmp(de->d_name + UTIL_UUID_LEN,
		    ".json") != 0 || util_fmt(path, sizeof(path), "%s/%s", dir,
		    de->d_name) < 0 || keeper_scan_one(path, &f) < 0)
			continue;
		pthread_mutex_lock(&K.qlock);
		if (K.nqueue < KEEPER_QUEUE)
			K.queue[K.nqueue++] = f;
		else
			close(f.pidfd);
		pthread_mutex_unlock(&K.qlock);
	}
	closedir(d);
}

static void *
keeper_scan_main(void *arg)
{
	(void)arg;
	for (;;) {
		util_sleep_ms(KEEPER_SCAN_MS);
		keeper_scan();
	}
	return NULL;
}

static int
keeper_vm_find(const char *uuid)
{
	int j;

	for (j = 0; j < K.s.nvm; j++)
		if (strcmp(K.s.vm[j].uuid, uuid) == 0)
			return j;
	return -1;
}

/* Guard a QEMU (pidfd taken over); -1 when the table is full. */
static int
keeper_vm_insert(const struct kfound *f)
{
	struct kvm *v;
	int j = keeper_vm_find(f->uuid);

	if (j >= 0 && K.s.vm[j].pid == f->pid) {
		K.s.vm[j].mask |= f->mask;
		close(f->pidfd);
		return 0;
	}
	if (j >= 0 || K.s.nvm >= KEEPER_MAX_VMS) {
		/* Another pid for a guarded uuid: the old one is still
		 * guarded; once it ends the next scan brings the new one. */
		close(f->pidfd);
		return j >= 0 ? 0 : -1;
	}
	v = &K.s.vm[K.s.nvm++];
	memset(v, 0, sizeof(*v));
	snprintf(v->uuid, sizeof(v->uuid), "%s", f->uuid);
	v->pid = f->pid;
	v->pidfd = f->pidfd;
	v->mask = f->mask;
	return 0;
}

static void
keeper_queue_drain(void)
{
	int i;

	pthread_mutex_lock(&K.qlock);
	for (i = 0; i < K.nqueue; i++)
		if (keeper_vm_insert(&K.queue[i]) < 0)
			log_warnx("keeper: more than %d VMs: vm %s is not guarded",
			    KEEPER_MAX_VMS, K.queue[i].uuid);
	K.nqueue = 0;
	pthread_mutex_unlock(&K.qlock);
}

/* "pid 311 (R,D,D)": the pids of domain i still alive and the state of
 * each of their threads, for the log. */
static void
keeper_dom_pids(int i, char *out, size_t outsz)
{
	size_t used = 0;
	int j;

	out[0] = '\0';
	for (j = 0; j < K.s.nvm && used + 32 < outsz; j++) {
		char path[64], *st, *p;

		if (!(K.s.vm[j].mask & (1u << i)))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)K.s.vm[j].pid);
		st = util_read_file(path, 4096, NULL);
		p = st ? strrchr(st, ')') : NULL;
		used += (size_t)snprintf(out + used, outsz - used, "%s%d(%c)",
		    used ? " " : "", (int)K.s.vm[j].pid, p && p[1] && p[2] ?
		    p[2] : '?');
		free(st);
	}
}

static void
keeper_log_changes(const struct kacts *a, int64_t now, const int *old)
{
	char pids[256];
	int i;

	for (i = 0; i < K.s.ndom; i++) {
		struct kdstate *d = &K.s.dom[i];

		if (!(a->changed & (1u << i)))
			continue;
		keeper_dom_pids(i, pids, sizeof(pids));
		if (d->state == KD_FENCING && old[i] <= KD_LATE)
			log_error("keeper: storage %s lease not renewed for %lld ms:"
			    " killing its QEMUs (pids %s)", d->name,
			    (long long)(now - d->last_ok), pids[0] ? pids : "none");
		else if (d->state == KD_FENCED)
			log_warnx("keeper: storage %s fenced: every QEMU on it is "
			    "confirmed gone", d->name);
		else if (d->state == KD_UNCONFIRMED)
			log_error("keeper: storage %s: fence NOT confirmed %lld ms "
			    "after the last renewal: %s%s%s", d->name,
			    (long long)(d->last_ok ? now - d->last_ok : -1),
			    pids[0] ? "QEMU pids (state) left: " :
			    "its page cache is not flushed (syncfs hangs)",
			    pids[0] ? pids : "", K.wd.kind != WD_NONE ? "; the "
			    "watchdog is no longer petted" : "; no watchdog "
			    "(kill-only)");
		else if (d->state == KD_OK && old[i] > KD_LATE)
			log_info("keeper: storage %s lease renewed again: it takes "
			    "new VMs", d->name);
		else if (d->state == KD_LATE)
			log_warnx("keeper: storage %s lease late (%lld ms)",
			    d->name, (long long)(now - d->last_ok));
	}
}

static void
keeper_tick(int64_t now, int64_t late)
{
	int closed[KEEPER_MAX_VMS], nclosed, old[KEEPER_MAX_DOMAINS], i;
	struct kacts a;
	static int pet_failed;

	keeper_queue_drain();
	for (i = 0; i < K.s.ndom; i++) {
		struct kdom *d = &K.dom[i];

		pthread_mutex_lock(&d->lock);
		K.s.dom[i].io_last_ok = d->last_ok;
		K.s.dom[i].io_last_done = d->last_done;
		K.s.dom[i].io_sync_done = d->sync_done;
		pthread_mutex_unlock(&d->lock);
		old[i] = K.s.dom[i].state;
	}
	for (i = 0; i < K.s.nvm; i++)
		K.s.vm[i].exited = util_pidfd_exited(K.s.vm[i].pidfd, 0) == 1;
	if (late > K.tick_late_max)
		K.tick_late_max = late;
	K.s.tick_late = late;
	keeper_decide(&K.s, now, &a, closed, &nclosed);
	for (i = 0; i < a.nkill; i++) {
		struct kvm *v = &K.s.vm[a.kill[i]];

		if (util_pidfd_kill(v->pidfd, SIGKILL) < 0 && errno != ESRCH)
			log_warn("keeper: cannot kill QEMU pid %d (vm %s)",
			    (int)v->pid, v->uuid);
		else
			log_warnx("keeper: SIGKILL sent to QEMU pid %d (vm %s): a "
			    "storage lease of it is lost", (int)v->pid, v->uuid);
	}
	keeper_log_changes(&a, now, old);
	for (i = 0; i < K.s.ndom; i++) {
		struct kdom *d = &K.dom[i];

		if (!((a.revive | a.sync) & (1u << i)))
			continue;
		pthread_mutex_lock(&d->lock);
		if (a.revive & (1u << i))
			d->last_ok = K.s.dom[i].last_ok;
		if (a.sync & (1u << i))
			d->sync_req = K.s.dom[i].sync_req;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	if (a.pet && wd_pet(&K.wd) < 0) {
		if (!pet_failed++)
			log_warn("keeper: cannot pet the watchdog %s", K.wdspec);
	} else if (a.pet) {
		pet_failed = 0;
	}
	for (i = 0; i < nclosed; i++)
		close(closed[i]);
	keeper_state_save();
}

/* ---- control socket: one request per connection, same uid or root */

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

	for (i = 0; i < K.s.ndom; i++)
		if (K.s.dom[i].state == KD_UNCONFIRMED)
			return 1;
	return 0;
}

static json_t *
keeper_op_status(json_t *req, int64_t now)
{
	json_t *doms = json_object();
	int i;

	(void)req;
	for (i = 0; i < K.s.ndom; i++) {
		struct kdstate *d = &K.s.dom[i];
		char err[160];

		pthread_mutex_lock(&K.dom[i].lock);
		snprintf(err, sizeof(err), "%s", K.dom[i].error);
		pthread_mutex_unlock(&K.dom[i].lock);
		json_object_set_new(doms, d->name, json_pack("{s:s, s:I, s:b, "
		    "s:s}", "state", keeper_state_name(d->state), "age_ms",
		    (json_int_t)(now - d->last_ok), "direct", d->direct,
		    "error", err));
	}
	return json_pack("{s:b, s:i, s:s, s:s, s:I, s:o, s:i, s:{s:I, s:I, "
	    "s:I, s:I, s:I}, s:s, s:s}", "ok", 1, "pid", (int)getpid(),
	    "fence", wd_fence(&K.wd), "watchdog", K.wd.kind == WD_NONE ? "none" :
	    keeper_unconfirmed() ? "unpetted" : "armed", "tick_late_max_ms",
	    (json_int_t)K.tick_late_max, "domains", doms, "vms", K.s.nvm,
	    "timing", "renew_ms", (json_int_t)K.s.t.renew_ms, "fence_ms",
	    (json_int_t)K.s.t.fence_ms, "kill_grace_ms",
	    (json_int_t)K.s.t.kill_grace_ms, "tick_ms", (json_int_t)K.s.t.tick_ms,
	    "watchdog_ms", (json_int_t)K.s.t.watchdog_ms, "conf", K.hash,
	    "host", K.host);
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
		d = &K.s.dom[k];
		if (d->state != KD_OK || now - d->last_ok >= 2 * K.s.t.renew_ms)
			return keeper_fail("storage %s: lease not renewed (age "
			    "%lld ms)", d->name, (long long)(now - d->last_ok));
		f.mask |= 1u << k;
	}
	if (K.wd.kind != WD_NONE && keeper_unconfirmed())
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
		close(K.s.vm[j].pidfd);
		K.s.vm[j] = K.s.vm[--K.s.nvm];
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
	K.s.dom[k].hold_until = json_integer_value(u);
	return json_pack("{s:b}", "ok", 1);
}

static json_t *
keeper_op_stop(json_t *req, int64_t now)
{
	(void)req;
	(void)now;
	if (K.s.nvm > 0)
		return keeper_fail("%d VMs are still guarded", K.s.nvm);
	K.stop = K.quit = 1;
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

static void
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
		if (K.conns[i] == fd)
			K.conns[i] = -1;
	close(fd);
}

static void
keeper_accept(void)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd, i;

	if ((fd = accept4(K.listen_fd, NULL, NULL, SOCK_CLOEXEC |
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
		if (K.conns[i] < 0) {
			K.conns[i] = fd;
			K.conn_at[i] = util_mono_ms();
			return;
		}
	}
	close(fd);	/* busy: the client retries */
}

static int
keeper_listen(char *err, size_t errsz)
{
	struct sockaddr_un sa;
	mode_t old;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (util_fmt(sa.sun_path, sizeof(sa.sun_path), "%s/keeper.sock",
	    K.run) < 0) {
		snprintf(err, errsz, "%s/keeper.sock: path too long", K.run);
		return -1;
	}
	(void)unlink(sa.sun_path);
	if ((K.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);	/* 0600 from the start: no window */
	rc = bind(K.listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(sa.sun_path, 0600) < 0 ||
	    listen(K.listen_fd, 16) < 0) {
		snprintf(err, errsz, "%s: %s", sa.sun_path, strerror(errno));
		return -1;
	}
	return 0;
}

static void
keeper_loop(int sigfd)
{
	int64_t next = util_mono_ms() + K.s.t.tick_ms;

	while (!K.quit) {
		struct pollfd p[2 + KEEPER_MAX_CONNS];
		int64_t now = util_mono_ms();
		int n = 0, i, r;

		p[n].fd = sigfd;
		p[n++].events = POLLIN;
		p[n].fd = K.listen_fd;
		p[n++].events = POLLIN;
		for (i = 0; i < KEEPER_MAX_CONNS; i++) {
			if (K.conns[i] >= 0 && now - K.conn_at[i] > KEEPER_CONN_MS) {
				close(K.conns[i]);
				K.conns[i] = -1;
			}
			if (K.conns[i] >= 0) {
				p[n].fd = K.conns[i];
				p[n++].events = POLLIN;
			}
		}
		r = poll(p, (nfds_t)n, next > now ? (int)(next - now) : 0);
		if (r > 0 && (p[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si) &&
			    si.ssi_signo != SIGHUP)
				K.quit = 1;
		}
		if (r > 0 && (p[1].revents & POLLIN))
			keeper_accept();
		for (i = 2; r > 0 && i < n; i++)
			if (p[i].revents)
				keeper_serve(p[i].fd);
		now = util_mono_ms();
		if (now >= next) {
			keeper_tick(now, now - next);
			next += K.s.t.tick_ms;
			if (next <= now)
				next = now + K.s.t.tick_ms;
		}
	}
}

static int
keeper_start_threads(char *err, size_t errsz)
{
	pthread_attr_t attr;
	pthread_t th;
	int i, rc;

	for (i = 0; i < K.s.ndom; i++) {
		struct kdom *d = &K.dom[i];

		snprintf(d->host, sizeof(d->host), "%s", K.host);
		d->boot = K.boot;
		d->fence = wd_fence(&K.wd);
		d->t = K.s.t;
		if (kdom_start(d) < 0) {
			snprintf(err, errsz, "cannot start the I/O thread of %s",
			    d->name);
			return -1;
		}
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, keeper_scan_main, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		snprintf(err, errsz, "cannot start the records scan");
		return -1;
	}
	return 0;
}

/* The host leaves on purpose (op stop): the leases go after the last
 * renewal, the watchdog is disarmed. */
static void
keeper_leave(void)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < K.s.ndom; i++)
		if (!kdom_stop(&K.dom[i], 1, 2000))
			log_warnx("keeper: storage %s hangs: its lease stays",
			    K.s.dom[i].name);
	wd_disarm(&K.wd);
	if (util_fmt(path, sizeof(path), "%s/keeper.state", K.run) == 0)
		(void)unlink(path);
	log_info("keeper: stopped, leases removed");
}

static int
keeper_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'd' && optarg[0] == '/' &&
		    util_fmt(K.data, sizeof(K.data), "%s", optarg) == 0)
			continue;
		fputs(keeper_usage, c == 'h' ? stdout : stderr);
		return -1;
	}
	if (optind < argc || K.data[0] == '\0') {
		fputs(keeper_usage, stderr);
		return -1;
	}
	return 0;
}

int
keeper_main(int argc, char **argv)
{
	char err[2 * PATH_MAX], path[PATH_MAX];
	sigset_t set;
	int sigfd = -1, i, rc = 1;

	memset(&K, 0, sizeof(K));
	K.lock_fd = K.listen_fd = -1;
	for (i = 0; i < KEEPER_MAX_CONNS; i++)
		K.conns[i] = -1;
	pthread_mutex_init(&K.qlock, NULL);
	if (keeper_args(argc, argv) < 0)
		return 2;
	prctl(PR_SET_NAME, KEEPER_COMM, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	K.start = util_mono_ms();
	srandom((unsigned)(getpid() ^ K.start));
	keeper_boot_id();
	if (keeper_conf_load(err, sizeof(err)) < 0 ||
	    keeper_lock(err, sizeof(err)) < 0 ||
	    wd_open(&K.wd, K.wdspec, (int)K.s.t.watchdog_ms, err,
	    sizeof(err)) < 0 || keeper_state_open(err, sizeof(err)) < 0)
		goto fail;
	K.s.watchdog = K.wd.kind != WD_NONE;
	keeper_scan();
	keeper_queue_drain();
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts: only the signalfd gets them. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if ((sigfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
		goto fail;
	}
	if (keeper_listen(err, sizeof(err)) < 0 ||
	    keeper_start_threads(err, sizeof(err)) < 0)
		goto fail;
	log_info("keeper pid %d: host %s, %d domain(s), %d VM(s), fence=%s, "
	    "renew %lld ms, fence %lld ms, watchdog %lld ms", (int)getpid(),
	    K.host, K.s.ndom, K.s.nvm, wd_fence(&K.wd),
	    (long long)K.s.t.renew_ms, (long long)K.s.t.fence_ms,
	    (long long)K.s.t.watchdog_ms);
	keeper_loop(sigfd);
	if (K.stop)
		keeper_leave();
	else
		wd_close(&K.wd);	/* a successor takes over: no disarm */
	if (util_fmt(path, sizeof(path), "%s/keeper.sock", K.run) == 0)
		(void)unlink(path);
	rc = 0;
	goto cleanup;
fail:
	log_error("keeper: %s", err);
cleanup:
	if (sigfd >= 0)
		close(sigfd);
	return rc;
}
