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

#define KEEPER_SCAN_MS		1000

_Static_assert(sizeof(struct kfile) <= 4096, "keeper.state is one page");

struct kproc kproc;

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
		struct kdom *d = &kproc.dom[i];
		size_t j;

		if (!util_name_valid(name) || path == NULL || path[0] != '/' ||
		    util_fmt(d->path, sizeof(d->path), "%s", path) < 0) {
			snprintf(err, errsz, "domain %zu: want a valid name and "
			    "an absolute path", i);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(kproc.dom[j].name, name) == 0) {
				snprintf(err, errsz, "domain %s given twice", name);
				return -1;
			}
		snprintf(d->name, sizeof(d->name), "%s", name);
		if (kdom_init(d) < 0) {
			snprintf(err, errsz, "domain %s: cannot set up its lock", name);
			return -1;
		}
		snprintf(kproc.s.dom[i].name, sizeof(kproc.s.dom[i].name), "%s", name);
		kproc.s.dom[i].direct = json_is_true(json_object_get(e, "direct"));
	}
	kproc.s.ndom = (int)json_array_size(list);
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
	struct ktiming *t = &kproc.s.t;
	int rc = -1;

	if (util_fmt(path, sizeof(path), "%s/keeper.conf", kproc.data) < 0 ||
	    (text = util_read_file(path, 65536, NULL)) == NULL) {
		snprintf(err, errsz, "cannot read %s/keeper.conf: %s", kproc.data,
		    strerror(errno));
		goto cleanup;
	}
	util_hash_hex(text, kproc.hash);
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
	    util_fmt(kproc.wdspec, sizeof(kproc.wdspec), "%s", wd) < 0) {
		snprintf(err, errsz, "%s: want host, run (short absolute path) "
		    "and watchdog", path);
		goto cleanup;
	}
	snprintf(kproc.host, sizeof(kproc.host), "%s", host);
	snprintf(kproc.run, sizeof(kproc.run), "%s", run);
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

	if (util_fmt(path, sizeof(path), "%s/keeper.lock", kproc.data) < 0 ||
	    (kproc.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errsz, "cannot open %s/keeper.lock: %s", kproc.data,
		    strerror(errno));
		return -1;
	}
	for (i = 0; i < 100; i++) {
		if (flock(kproc.lock_fd, LOCK_EX | LOCK_NB) == 0) {
			char pid[16];
			int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

			/* Who holds it, for the agent (keeperctl_holder). */
			if (ftruncate(kproc.lock_fd, 0) < 0 ||
			    pwrite(kproc.lock_fd, pid, (size_t)n, 0) != n)
				log_warn("keeper: cannot write its pid to %s", path);
			return 0;
		}
		util_sleep_ms(20);
	}
	snprintf(err, errsz, "another keeper runs for %s", kproc.data);
	return -1;
}

static void
keeper_boot_id(void)
{
	char *s = util_read_file("/proc/sys/kernel/random/boot_id", 64, NULL);

	snprintf(kproc.boot, sizeof(kproc.boot), "%s", s ? s : "unknown");
	kproc.boot[strcspn(kproc.boot, "\n")] = '\0';
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

	if (util_fmt(path, sizeof(path), "%s/keeper.state", kproc.run) < 0 ||
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errsz, "cannot open %s/keeper.state: %s", kproc.run,
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
	kproc.file = f;
	n = f->ndom < KEEPER_MAX_DOMAINS ? f->ndom : KEEPER_MAX_DOMAINS;
	if (memcmp(f->magic, KEEPER_STATE_MAGIC, 8) == 0 &&
	    strncmp(f->boot, kproc.boot, sizeof(f->boot)) == 0)
		loaded = 1;
	for (i = 0; i < kproc.s.ndom; i++) {
		struct kdstate *d = &kproc.s.dom[i];

		d->state = KD_FENCED;
		d->fence_at = kproc.start;
		d->last_ok = 0;
		kproc.dom[i].seq = (int64_t)(((uint64_t)random() << 16) ^
		    (uint64_t)random()) & ((INT64_C(1) << 48) - 1);
		for (k = 0; loaded && k < (int)n; k++) {
			if (strncmp(f->dom[k].name, d->name, sizeof(d->name)) != 0)
				continue;
			if (keeper_state_take(d, f->dom[k].state, f->dom[k].last_ok,
			    kproc.start) == 0)
				kproc.dom[i].seq = f->dom[k].seq;
			else
				log_warnx("keeper: storage %s: its saved state is not "
				    "plausible (state %d, last renewal at %lld ms): "
				    "ignored", d->name, (int)f->dom[k].state,
				    (long long)f->dom[k].last_ok);
		}
		kproc.dom[i].last_ok = d->last_ok;
	}
	f->pid = (int32_t)getpid();
	f->exited = 0;
	log_info("keeper: %s", loaded ? "renewal times taken over from the "
	    "previous keeper" : "no previous state: every domain starts fenced");
	return 0;
}

void
keeper_state_save(void)
{
	struct kfile *f = kproc.file;
	int i;

	memcpy(f->magic, KEEPER_STATE_MAGIC, 8);
	snprintf(f->boot, sizeof(f->boot), "%s", kproc.boot);
	f->ndom = (uint32_t)kproc.s.ndom;
	for (i = 0; i < kproc.s.ndom; i++) {
		snprintf(f->dom[i].name, sizeof(f->dom[i].name), "%s",
		    kproc.s.dom[i].name);
		f->dom[i].last_ok = kproc.s.dom[i].last_ok;
		f->dom[i].state = kproc.s.dom[i].state;
		pthread_mutex_lock(&kproc.dom[i].lock);
		f->dom[i].seq = kproc.dom[i].seq;
		pthread_mutex_unlock(&kproc.dom[i].lock);
	}
}

int
keeper_dom_index(const char *name)
{
	int i;

	for (i = 0; name && i < kproc.s.ndom; i++)
		if (strcmp(kproc.s.dom[i].name, name) == 0)
			return i;
	return -1;
}

/* A pidfd on pid, only when it runs the QEMU of uuid (checked after the
 * pidfd is open: no pid-reuse race). */
int
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

	if (util_fmt(dir, sizeof(dir), "%s/vms", kproc.data) < 0 ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n != UTIL_UUID_LEN + 5 || strcmp(de->d_name + UTIL_UUID_LEN,
		    ".json") != 0 || util_fmt(path, sizeof(path), "%s/%s", dir,
		    de->d_name) < 0 || keeper_scan_one(path, &f) < 0)
			continue;
		pthread_mutex_lock(&kproc.qlock);
		if (kproc.nqueue < KEEPER_QUEUE)
			kproc.queue[kproc.nqueue++] = f;
		else
			close(f.pidfd);
		pthread_mutex_unlock(&kproc.qlock);
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

int
keeper_vm_find(const char *uuid)
{
	int j;

	for (j = 0; j < kproc.s.nvm; j++)
		if (strcmp(kproc.s.vm[j].uuid, uuid) == 0)
			return j;
	return -1;
}

/* Guard a QEMU (pidfd taken over); -1 when the table is full. */
int
keeper_vm_insert(const struct kfound *f)
{
	struct kvm *v;
	int j = keeper_vm_find(f->uuid);

	if (j >= 0 && kproc.s.vm[j].pid == f->pid) {
		kproc.s.vm[j].mask |= f->mask;
		close(f->pidfd);
		return 0;
	}
	if (j >= 0 || kproc.s.nvm >= KEEPER_MAX_VMS) {
		/* Another pid for a guarded uuid: the old one is still
		 * guarded; once it ends the next scan brings the new one. */
		close(f->pidfd);
		return j >= 0 ? 0 : -1;
	}
	v = &kproc.s.vm[kproc.s.nvm++];
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

	pthread_mutex_lock(&kproc.qlock);
	for (i = 0; i < kproc.nqueue; i++)
		if (keeper_vm_insert(&kproc.queue[i]) < 0)
			log_warnx("keeper: more than %d VMs: vm %s is not guarded",
			    KEEPER_MAX_VMS, kproc.queue[i].uuid);
	kproc.nqueue = 0;
	pthread_mutex_unlock(&kproc.qlock);
}

/* "pid 311 (R,D,D)": the pids of domain i still alive and the state of
 * each of their threads, for the log. */
static void
keeper_dom_pids(int i, char *out, size_t outsz)
{
	size_t used = 0;
	int j;

	out[0] = '\0';
	for (j = 0; j < kproc.s.nvm && used + 32 < outsz; j++) {
		char path[64], *st, *p;

		if (!(kproc.s.vm[j].mask & (1u << i)))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)kproc.s.vm[j].pid);
		st = util_read_file(path, 4096, NULL);
		p = st ? strrchr(st, ')') : NULL;
		used += (size_t)snprintf(out + used, outsz - used, "%s%d(%c)",
		    used ? " " : "", (int)kproc.s.vm[j].pid, p && p[1] && p[2] ?
		    p[2] : '?');
		free(st);
	}
}

static void
keeper_log_changes(const struct kacts *a, int64_t now, const int *old)
{
	char pids[256];
	int i;

	for (i = 0; i < kproc.s.ndom; i++) {
		struct kdstate *d = &kproc.s.dom[i];

		if (!(a->changed & (1u << i)))
			continue;
		keeper_dom_pids(i, pids, sizeof(pids));
		if (d->state > KD_LATE && d->state != KD_FENCED &&
		    old[i] == KD_FENCED && d->last_ok == 0)
			/* The kill of QEMUs found by a keeper that knows no
			 * renewal: their deadline may have passed already. */
			log_warnx("keeper: storage %s: no renewal of it is known "
			    "(this keeper started without its predecessor's "
			    "state): QEMU pids %s found on it are killed; %s until "
			    "they are gone", d->name, pids[0] ? pids : "none",
			    kproc.wd.kind != WD_NONE ? "the watchdog is not petted "
			    "and no VM starts" : "no VM starts on it");
		else if (d->state == KD_FENCING && old[i] <= KD_LATE)
			log_error("keeper: storage %s lease not renewed for %lld ms:"
			    " killing its QEMUs (pids %s)", d->name,
			    (long long)(now - d->last_ok), pids[0] ? pids : "none");
		else if (d->state == KD_FENCED)
			log_warnx("keeper: storage %s fenced: every QEMU on it is "
			    "confirmed gone", d->name);
		else if (d->state == KD_UNCONFIRMED && d->last_ok == 0)
			log_error("keeper: storage %s: fence NOT confirmed %lld ms "
			    "after the kill (no renewal of it known): %s%s%s",
			    d->name, (long long)(now - d->fence_at),
			    pids[0] ? "QEMU pids (state) left: " :
			    "its page cache is not flushed (syncfs hangs)",
			    pids[0] ? pids : "", kproc.wd.kind != WD_NONE ? "; the "
			    "watchdog is no longer petted" : "; no watchdog "
			    "(kill-only)");
		else if (d->state == KD_UNCONFIRMED)
			log_error("keeper: storage %s: fence NOT confirmed %lld ms "
			    "after the last renewal: %s%s%s", d->name,
			    (long long)(now - d->last_ok),
			    pids[0] ? "QEMU pids (state) left: " :
			    "its page cache is not flushed (syncfs hangs)",
			    pids[0] ? pids : "", kproc.wd.kind != WD_NONE ? "; the "
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
	for (i = 0; i < kproc.s.ndom; i++) {
		struct kdom *d = &kproc.dom[i];

		pthread_mutex_lock(&d->lock);
		kproc.s.dom[i].io_last_ok = d->last_ok;
		kproc.s.dom[i].io_last_done = d->last_done;
		kproc.s.dom[i].io_sync_done = d->sync_done;
		pthread_mutex_unlock(&d->lock);
		old[i] = kproc.s.dom[i].state;
	}
	for (i = 0; i < kproc.s.nvm; i++)
		kproc.s.vm[i].exited = util_pidfd_exited(kproc.s.vm[i].pidfd, 0) == 1;
	if (late > kproc.tick_late_max)
		kproc.tick_late_max = late;
	kproc.s.tick_late = late;
	keeper_decide(&kproc.s, now, &a, closed, &nclosed);
	for (i = 0; i < a.nkill; i++) {
		struct kvm *v = &kproc.s.vm[a.kill[i]];

		if (util_pidfd_kill(v->pidfd, SIGKILL) < 0 && errno != ESRCH)
			log_warn("keeper: cannot kill QEMU pid %d (vm %s)",
			    (int)v->pid, v->uuid);
		else
			log_warnx("keeper: SIGKILL sent to QEMU pid %d (vm %s): a "
			    "storage lease of it is lost", (int)v->pid, v->uuid);
	}
	keeper_log_changes(&a, now, old);
	for (i = 0; i < kproc.s.ndom; i++) {
		struct kdom *d = &kproc.dom[i];

		if (!((a.revive | a.sync) & (1u << i)))
			continue;
		pthread_mutex_lock(&d->lock);
		if (a.revive & (1u << i))
			d->last_ok = kproc.s.dom[i].last_ok;
		if (a.sync & (1u << i))
			d->sync_req = kproc.s.dom[i].sync_req;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	if (a.pet && wd_pet(&kproc.wd) < 0) {
		if (!pet_failed++)
			log_warn("keeper: cannot pet the watchdog %s", kproc.wdspec);
	} else if (a.pet) {
		pet_failed = 0;
	}
	for (i = 0; i < nclosed; i++)
		close(closed[i]);
	keeper_state_save();
}

static void
keeper_loop(int sigfd)
{
	int64_t next = util_mono_ms() + kproc.s.t.tick_ms;

	while (!kproc.quit) {
		struct pollfd p[2 + KEEPER_MAX_CONNS];
		int64_t now = util_mono_ms();
		int n = 0, i, r;

		p[n].fd = sigfd;
		p[n++].events = POLLIN;
		p[n].fd = kproc.listen_fd;
		p[n++].events = POLLIN;
		for (i = 0; i < KEEPER_MAX_CONNS; i++) {
			if (kproc.conns[i] >= 0 && now - kproc.conn_at[i] > KEEPER_CONN_MS) {
				close(kproc.conns[i]);
				kproc.conns[i] = -1;
			}
			if (kproc.conns[i] >= 0) {
				p[n].fd = kproc.conns[i];
				p[n++].events = POLLIN;
			}
		}
		r = poll(p, (nfds_t)n, next > now ? (int)(next - now) : 0);
		if (r > 0 && (p[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si) &&
			    si.ssi_signo != SIGHUP)
				kproc.quit = 1;
		}
		if (r > 0 && (p[1].revents & POLLIN))
			keeper_accept();
		for (i = 2; r > 0 && i < n; i++)
			if (p[i].revents)
				keeper_serve(p[i].fd);
		now = util_mono_ms();
		if (now >= next) {
			keeper_tick(now, now - next);
			next += kproc.s.t.tick_ms;
			if (next <= now)
				next = now + kproc.s.t.tick_ms;
		}
	}
}

static int
keeper_start_threads(char *err, size_t errsz)
{
	pthread_attr_t attr;
	pthread_t th;
	int i, rc;

	for (i = 0; i < kproc.s.ndom; i++) {
		struct kdom *d = &kproc.dom[i];

		snprintf(d->host, sizeof(d->host), "%s", kproc.host);
		d->boot = kproc.boot;
		d->fence = wd_fence(&kproc.wd);
		d->t = kproc.s.t;
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

	for (i = 0; i < kproc.s.ndom; i++)
		if (!kdom_stop(&kproc.dom[i], 1, 2000))
			log_warnx("keeper: storage %s hangs: its lease stays",
			    kproc.s.dom[i].name);
	wd_disarm(&kproc.wd);
	if (util_fmt(path, sizeof(path), "%s/keeper.state", kproc.run) == 0)
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
		    util_fmt(kproc.data, sizeof(kproc.data), "%s", optarg) == 0)
			continue;
		fputs(keeper_usage, c == 'h' ? stdout : stderr);
		return -1;
	}
	if (optind < argc || kproc.data[0] == '\0') {
		fputs(keeper_usage, stderr);
		return -1;
	}
	return 0;
}

/* The decision loop logs: a full pipe on stderr (a stalled log reader)
 * must not stop a fence. A pipe gets a non-blocking open file of its own
 * (the agent's stays blocking); a line that does not fit is lost. */
static void
keeper_stderr(void)
{
	struct stat st;
	int fd;

	if (fstat(2, &st) < 0 || !S_ISFIFO(st.st_mode) ||
	    (fd = open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NONBLOCK |
	    O_CLOEXEC)) < 0)
		return;
	if (fd != 2) {
		(void)dup2(fd, 2);
		close(fd);
	}
}

int
keeper_main(int argc, char **argv)
{
	char err[2 * PATH_MAX], path[PATH_MAX];
	sigset_t set;
	int sigfd = -1, i, rc = 1;

	memset(&kproc, 0, sizeof(kproc));
	kproc.lock_fd = kproc.listen_fd = -1;
	for (i = 0; i < KEEPER_MAX_CONNS; i++)
		kproc.conns[i] = -1;
	pthread_mutex_init(&kproc.qlock, NULL);
	if (keeper_args(argc, argv) < 0)
		return 2;
	prctl(PR_SET_NAME, KEEPER_COMM, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	keeper_stderr();
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts: only the signalfd gets them; one
	 * that comes while it starts ends it cleanly once it runs. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	kproc.start = util_mono_ms();
	srandom((unsigned)(getpid() ^ kproc.start));
	keeper_boot_id();
	if ((sigfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
	if (sigfd < 0 || keeper_conf_load(err, sizeof(err)) < 0 ||
	    keeper_lock(err, sizeof(err)) < 0 ||
	    wd_open(&kproc.wd, kproc.wdspec, (int)kproc.s.t.watchdog_ms, err,
	    sizeof(err)) < 0 || keeper_state_open(err, sizeof(err)) < 0)
		goto fail;
	kproc.s.watchdog = kproc.wd.kind != WD_NONE;
	/* The first start after an upgrade: the old keeper still guards. */
	keeper_legacy_takeover();
	keeper_scan();
	keeper_queue_drain();
	if (keeper_listen(err, sizeof(err)) < 0 ||
	    keeper_start_threads(err, sizeof(err)) < 0)
		goto fail;
	log_info("keeper pid %d: host %s, %d domain(s), %d VM(s), fence=%s, "
	    "renew %lld ms, fence %lld ms, watchdog %lld ms", (int)getpid(),
	    kproc.host, kproc.s.ndom, kproc.s.nvm, wd_fence(&kproc.wd),
	    (long long)kproc.s.t.renew_ms, (long long)kproc.s.t.fence_ms,
	    (long long)kproc.s.t.watchdog_ms);
	keeper_loop(sigfd);
	if (kproc.stop)
		keeper_leave();
	else
		wd_close(&kproc.wd);	/* a successor takes over: no disarm */
	if (util_fmt(path, sizeof(path), "%s/keeper.sock", kproc.run) == 0)
		(void)unlink(path);
	rc = 0;
	goto cleanup;
fail:
	log_error("keeper: %s", err);
cleanup:
	/* How it ended, for the agent (a keeper that dies of a signal or
	 * crashes leaves exited at 0) and for the log. */
	if (kproc.file) {
		kproc.file->status = rc;
		kproc.file->exited = 1;
	}
	if (rc == 0)
		log_info("keeper pid %d exits with status 0", (int)getpid());
	else
		log_error("keeper pid %d exits with status %d", (int)getpid(), rc);
	if (sigfd >= 0)
		close(sigfd);
	return rc;
}
