/* lease.c - the agent's side of the storage lease: it starts the lease
 * keeper (`cvirt keeper`, its own process, nobody's child, outliving the
 * agent like the QEMUs do), restarts a dead one at once, asks it whether
 * a domain may take VMs, and reads the lease records of a domain. The
 * keeper itself is keeper.c, kmain.c, kdomain.c and watchdog.c
 * (docs/keeper.md). An agent cut off from the manager and from every peer
 * records on the lease which HA VMs it powered off (isolation). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "agent/keeper.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"

#define KC_STATUS_MS	200	/* a keeper slower than this is not live */
#define KC_START_MS	1000	/* a new keeper answers within this */
#define KC_BACKOFF_MAX	3200

static struct {
	pthread_mutex_t	lock;		/* the fields below */
	pid_t		pid;
	int		pidfd;		/* the keeper's, or -1 */
	char		hash[UTIL_HASH_LEN + 1];	/* of keeper.conf */
	json_t		*status;	/* last status reply */
	int64_t		status_at;
	pthread_t	watcher;
	int		watching;
	int		quit;
} kc = { PTHREAD_MUTEX_INITIALIZER, 0, -1, "", NULL, 0, 0, 0, 0 };

json_t *
keeperctl_call_at(const char *sock, json_t *req, int timeout_ms, char *err,
    size_t errsz)
{
	int64_t deadline = util_mono_ms() + timeout_ms;
	struct sockaddr_un sa;
	char buf[KEEPER_RECORD_SIZE + 1], *s = NULL;
	struct pollfd p;
	json_t *rep = NULL;
	ssize_t n;
	int fd = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (util_fmt(sa.sun_path, sizeof(sa.sun_path), "%s", sock) < 0 ||
	    (s = json_dumps(req, JSON_COMPACT)) == NULL) {
		snprintf(err, errsz, "keeper socket path too long");
		goto cleanup;
	}
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) < 0)
		goto fail;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EAGAIN || util_mono_ms() >= deadline)
			goto fail;
		util_sleep_ms(5);
	}
	if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0)
		goto fail;
	p.fd = fd;
	p.events = POLLIN;
	for (;;) {
		int64_t left = deadline - util_mono_ms();
		int r = poll(&p, 1, left > 0 ? (int)left : 0);

		if (r > 0)
			break;
		if (r == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (errno != EINTR)
			goto fail;
	}
	if ((n = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0) {
		if (n == 0)
			errno = ECONNRESET;
		goto fail;
	}
	if ((rep = json_loadb(buf, (size_t)n, 0, NULL)) == NULL ||
	    !json_is_object(rep)) {
		json_decref(rep);
		rep = NULL;
		snprintf(err, errsz, "the lease keeper sent a bad reply");
	}
	goto cleanup;
fail:
	snprintf(err, errsz, "the lease keeper does not answer: %s",
	    strerror(errno));
cleanup:
	if (fd >= 0)
		close(fd);
	free(s);
	return rep;
}

static json_t *
keeperctl_call(json_t *req, int timeout_ms, char *err, size_t errsz)
{
	char sock[PATH_MAX];
	json_t *rep;

	if (util_fmt(sock, sizeof(sock), "%s/keeper.sock", agent_cfg.run) < 0) {
		snprintf(err, errsz, "run directory path too long");
		json_decref(req);
		return NULL;
	}
	rep = keeperctl_call_at(sock, req, timeout_ms, err, errsz);
	json_decref(req);
	return rep;
}

/* A reply {"ok":false,"error":...} into err; 0 when ok. */
static int
keeperctl_ok(json_t *rep, char *err, size_t errsz)
{
	if (rep == NULL)
		return -1;
	if (json_is_true(json_object_get(rep, "ok")))
		return 0;
	snprintf(err, errsz, "%s", json_string_value(json_object_get(rep,
	    "error")) ? json_string_value(json_object_get(rep, "error")) :
	    "the lease keeper refused");
	return -1;
}

json_t *
keeperctl_status(int timeout_ms)
{
	char err[256];
	json_t *rep;

	rep = keeperctl_call(json_pack("{s:s}", "op", "status"), timeout_ms,
	    err, sizeof(err));
	if (keeperctl_ok(rep, err, sizeof(err)) < 0) {
		json_decref(rep);
		rep = NULL;
	}
	pthread_mutex_lock(&kc.lock);
	json_decref(kc.status);
	kc.status = rep ? json_incref(rep) : NULL;
	kc.status_at = util_mono_ms();
	pthread_mutex_unlock(&kc.lock);
	return rep;
}

/* The last status no older than 100 ms, else a fresh one; new ref. */
static json_t *
keeperctl_status_recent(void)
{
	json_t *st = NULL;

	pthread_mutex_lock(&kc.lock);
	if (kc.status && util_mono_ms() - kc.status_at < 100)
		st = json_incref(kc.status);
	pthread_mutex_unlock(&kc.lock);
	return st ? st : keeperctl_status(KC_STATUS_MS);
}

int
keeperctl_live(void)
{
	json_t *st = keeperctl_status_recent();
	int live = st != NULL;

	json_decref(st);
	return live;
}

int
keeperctl_ready(const char *storage, char *err, size_t errsz)
{
	json_t *st = keeperctl_status_recent(), *d;
	const char *state;
	int rc = -1;

	if (st == NULL) {
		snprintf(err, errsz, "the lease keeper of host %s does not answer:"
		    " no VM starts here until it does", agent_cfg.name);
		return -1;
	}
	d = json_object_get(json_object_get(st, "domains"), storage ? storage :
	    "");
	state = json_string_value(json_object_get(d, "state"));
	if (d == NULL)
		snprintf(err, errsz, "storage %s is not attached to host %s",
		    storage ? storage : "?", agent_cfg.name);
	else if ((state == NULL || strcmp(state, "ok") != 0) &&
	    !json_is_integer(json_object_get(d, "age_ms")))
		snprintf(err, errsz, "storage %s: its lease is not renewed on "
		    "host %s yet (%s)", storage, agent_cfg.name,
		    state ? state : "?");
	else if (state == NULL || strcmp(state, "ok") != 0)
		snprintf(err, errsz, "storage %s: its lease is not renewed on "
		    "host %s (age %lld ms, %s)", storage, agent_cfg.name,
		    (long long)json_integer_value(json_object_get(d, "age_ms")),
		    state ? state : "?");
	else if (strcmp(json_string_value(json_object_get(st, "watchdog")) ?
	    json_string_value(json_object_get(st, "watchdog")) : "",
	    "unpetted") == 0)
		snprintf(err, errsz, "host %s has an unconfirmed fence: its "
		    "watchdog is no longer petted", agent_cfg.name);
	else
		rc = 0;
	json_decref(st);
	return rc;
}

/* A renewal that is late, not failed (the keeper takes a VM only on a
 * lease renewed within two renew intervals), is waited for up to two more
 * intervals: a loaded host's start is not refused for a renewal that comes
 * a few hundred ms after its time. A lost lease is refused at once. */
int
keeperctl_vm_add(const char *uuid, pid_t pid, json_t *domains, char *err,
    size_t errsz)
{
	int64_t until = util_mono_ms() + 2 * agent_cfg.renew_ms;
	json_t *rep;
	int rc;

	for (;;) {
		rep = keeperctl_call(json_pack("{s:s, s:s, s:i, s:O}", "op",
		    "vm_add", "uuid", uuid, "pid", (int)pid, "domains",
		    domains), KC_STATUS_MS, err, errsz);
		rc = keeperctl_ok(rep, err, errsz);
		json_decref(rep);
		if (rc == 0 || strstr(err, "lease not renewed (age") == NULL ||
		    util_mono_ms() >= until)
			break;
		util_sleep_ms(50);
	}
	return rc;
}

int
keeperctl_vm_del(const char *uuid)
{
	char err[256];
	json_t *rep = keeperctl_call(json_pack("{s:s, s:s}", "op", "vm_del",
	    "uuid", uuid), KC_STATUS_MS, err, sizeof(err));
	int rc = keeperctl_ok(rep, err, sizeof(err));

	json_decref(rep);
	return rc;
}

int
keeperctl_hold(const char *domain, int64_t until_ms)
{
	char err[256];
	json_t *rep = keeperctl_call(json_pack("{s:s, s:s, s:I}", "op", "hold",
	    "domain", domain, "until_ms", (json_int_t)until_ms), KC_STATUS_MS,
	    err, sizeof(err));
	int rc = keeperctl_ok(rep, err, sizeof(err));

	json_decref(rep);
	return rc;
}

/* DATA/keeper.conf from agent_cfg (the one config structure); its hash
 * tells whether a running keeper has the same. */
static int
keeperctl_conf_write(void)
{
	json_t *c, *doms = json_array();
	char path[PATH_MAX], *s = NULL;
	int i, rc = -1;

	for (i = 0; i < agent_cfg.nstorage; i++)
		json_array_append_new(doms, json_pack("{s:s, s:s, s:b}", "name",
		    agent_cfg.storage[i].name, "path", agent_cfg.storage[i].path,
		    "direct", agent_cfg.storage[i].direct));
	c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "host",
	    agent_cfg.name, "run", agent_cfg.run, "watchdog", agent_cfg.watchdog,
	    "renew_ms", (json_int_t)agent_cfg.renew_ms, "fence_ms",
	    (json_int_t)agent_cfg.fence_ms, "kill_grace_ms",
	    (json_int_t)agent_cfg.kill_grace_ms, "watchdog_ms",
	    (json_int_t)agent_cfg.watchdog_ms, "domains", doms);
	if (c == NULL || (s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS)) ==
	    NULL || util_fmt(path, sizeof(path), "%s/keeper.conf",
	    agent_cfg.data) < 0 || util_write_file_atomic(path, s, strlen(s),
	    0600) < 0)
		goto cleanup;
	pthread_mutex_lock(&kc.lock);
	util_hash_hex(s, kc.hash);
	pthread_mutex_unlock(&kc.lock);
	rc = 0;
cleanup:
	free(s);
	json_decref(c);
	return rc;
}

/* fork + exec of `cvirt keeper --data DATA`, double forked so that it is
 * nobody's child; safe from any thread. The keeper's pid, or -1. */
static pid_t
keeperctl_spawn(void)
{
	char *argv[] = { "cvirt", "keeper", "--data", agent_cfg.data, NULL };
	pid_t pid = -1, mid;
	int fds[2];
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	if ((mid = fork()) < 0)
		goto cleanup;
	if (mid == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		setsid();
		if ((pid = fork()) != 0) {
			(void)!write(fds[1], &pid, sizeof(pid));
			_exit(0);
		}
		if (nul >= 0)
			dup2(nul, 0);
		/* Only stdin, stdout and stderr: no lock, socket or QEMU
		 * descriptor of the agent goes along. */
		(void)syscall(SYS_close_range, 3, ~0U, 0);
		proc_child_signals();
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fds[1]);
	fds[1] = -1;
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	n = read(fds[0], &pid, sizeof(pid));
	if (n != (ssize_t)sizeof(pid) || pid <= 0)
		pid = -1;
cleanup:
	close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return pid;
}

/* Every domain of a status reply ok (a new keeper starts them fenced
 * until its first renewal: ~1 tick). */
static int
keeperctl_all_ok(json_t *st)
{
	const char *name;
	json_t *d;

	json_object_foreach(json_object_get(st, "domains"), name, d)
		if (strcmp(json_string_value(json_object_get(d, "state")) ?
		    json_string_value(json_object_get(d, "state")) : "", "ok") != 0)
			return 0;
	return 1;
}

/* Spawn one and wait for it to answer; it becomes kc.pid/pidfd. Then up
 * to KC_START_MS for its first renewals, so that the host does not
 * register its storage as lost (a hung domain stays lost). */
static int
keeperctl_launch(void)
{
	int64_t deadline, ok_by = 0;
	pid_t pid;
	int fd;

	char path[PATH_MAX];

	if ((pid = keeperctl_spawn()) < 0 || (fd = util_pidfd_open(pid)) < 0)
		return -1;
	deadline = util_mono_ms() + KC_START_MS + 2000;	/* + lock wait */
	/* The first start after an upgrade: it watches and stops the old
	 * version's keeper first (klegacy.c). */
	if (util_fmt(path, sizeof(path), "%s/keeper.pid", agent_cfg.data) == 0 &&
	    access(path, F_OK) == 0)
		deadline += KEEPER_LEGACY_SEE_MS + KEEPER_LEGACY_STOP_MS;
	while (util_mono_ms() < (ok_by ? ok_by + 2 * KC_STATUS_MS : deadline) &&
	    util_pidfd_exited(fd, 20) == 0) {
		json_t *st = keeperctl_status(KC_STATUS_MS);
		int mine = st && json_integer_value(json_object_get(st, "pid")) ==
		    pid;

		if (mine && ok_by == 0)
			ok_by = util_mono_ms() + KC_START_MS;
		if (mine && !keeperctl_all_ok(st) && util_mono_ms() < ok_by)
			mine = 0;
		json_decref(st);
		if (mine) {
			pthread_mutex_lock(&kc.lock);
			if (kc.pidfd >= 0)
				close(kc.pidfd);
			kc.pid = pid;
			kc.pidfd = fd;
			pthread_mutex_unlock(&kc.lock);
			return 0;
		}
	}
	if (util_pidfd_exited(fd, 0) == 0)
		(void)util_pidfd_kill(fd, SIGKILL);
	close(fd);
	return -1;
}

/* How keeper pid ended, from what it recorded in RUN/keeper.state, for
 * the log: an exit it chose (its status) or a death (a signal, a crash),
 * which the test suite's harness counts as a crash (docs/testing.md). */
static void
keeperctl_log_end(pid_t pid)
{
	char path[PATH_MAX];
	struct kfile f;
	int fd = -1, told = 0;

	if (util_fmt(path, sizeof(path), "%s/keeper.state", agent_cfg.run) == 0 &&
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0 &&
	    pread(fd, &f, sizeof(f), 0) == (ssize_t)sizeof(f) &&
	    f.pid == pid && f.exited)
		told = 1;
	if (fd >= 0)
		close(fd);
	if (told)
		log_error("lease keeper pid %d exited with status %d: starting "
		    "another", (int)pid, (int)f.status);
	else
		log_error("lease keeper pid %d died (killed by a signal or "
		    "crashed): starting another", (int)pid);
}

/* With the keeper dead and not back, a kill-only host ends its QEMUs
 * itself F - K after the death: the manager may restart them after the
 * lease timeout. (A watchdog host resets instead: nobody pets it.) */
static void
keeperctl_orphan_fence(void)
{
	json_t *vms = vmhost_list(), *v;
	size_t i;

	json_array_foreach(vms, i, v) {
		const char *uuid = json_string_value(json_object_get(v, "uuid"));
		pid_t pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
		int fd = util_pidfd_open(pid);

		if (fd < 0)
			continue;
		if (uuid && util_pid_has_arg(pid, uuid)) {
			log_error("keeper dead: killing QEMU pid %d (vm %s): "
			    "nobody renews its lease", (int)pid, uuid);
			(void)util_pidfd_kill(fd, SIGKILL);
		}
		close(fd);
	}
	json_decref(vms);
}

static void *
keeperctl_watch(void *arg)
{
	int64_t dead_since = 0, backoff = 100, next_try = 0;
	int orphan_done = 0;

	(void)arg;
	for (;;) {
		int fd, gone;

		pthread_mutex_lock(&kc.lock);
		fd = kc.pidfd;
		if (kc.quit) {
			pthread_mutex_unlock(&kc.lock);
			break;
		}
		pthread_mutex_unlock(&kc.lock);
		gone = fd < 0 || util_pidfd_exited(fd, 100) == 1;
		if (!gone)
			continue;
		if (dead_since == 0) {
			dead_since = util_mono_ms();
			keeperctl_log_end(kc.pid);
		}
		if (util_mono_ms() >= next_try) {
			if (keeperctl_launch() == 0) {
				log_info("lease keeper pid %d took over after %lld ms",
				    (int)kc.pid, (long long)(util_mono_ms() -
				    dead_since));
				dead_since = 0;
				backoff = 100;
				orphan_done = 0;
				continue;
			}
			next_try = util_mono_ms() + backoff;
			backoff = backoff * 2 > KC_BACKOFF_MAX ? KC_BACKOFF_MAX :
			    backoff * 2;
		}
		if (!orphan_done && strcmp(agent_cfg.watchdog, "none") == 0 &&
		    util_mono_ms() - dead_since >= agent_cfg.fence_ms -
		    agent_cfg.kill_grace_ms) {
			keeperctl_orphan_fence();
			orphan_done = 1;
		}
		util_sleep_ms(20);
	}
	return NULL;
}

static int
keeperctl_is_keeper(pid_t pid)
{
	char path[64], *comm;
	int yes;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	comm = util_read_file(path, 64, NULL);
	yes = comm && strncmp(comm, KEEPER_COMM "\n", sizeof(KEEPER_COMM)) == 0;
	free(comm);
	return yes;
}

/* The keeper that holds DATA/keeper.lock (it does for life, and writes
 * its pid there): 1 with a pidfd on it in *fd, 0 when none holds it, -1
 * on an error. A lock is what tells that a keeper lives, not an answer
 * in time: one stopped or starved for a while must get no sibling. */
static int
keeperctl_holder(pid_t *pid, int *fd)
{
	char path[PATH_MAX], buf[16];
	int lfd, tries, rc = -1;
	uint64_t v;
	ssize_t n;

	*fd = -1;
	if (util_fmt(path, sizeof(path), "%s/keeper.lock", agent_cfg.data) < 0)
		return -1;
	if ((lfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	/* A keeper that has just taken it writes its pid a moment later. */
	for (tries = 0; tries < 100 && rc < 0; tries++) {
		if (flock(lfd, LOCK_EX | LOCK_NB) == 0) {
			(void)flock(lfd, LOCK_UN);
			rc = 0;
			break;
		}
		if (errno != EWOULDBLOCK)
			break;
		n = pread(lfd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		if (util_parse_u64(buf, 1, INT32_MAX, &v) == 0 &&
		    (*fd = util_pidfd_open((pid_t)v)) >= 0) {
			/* Checked after the pidfd is open: not a reused pid. */
			if (keeperctl_is_keeper((pid_t)v)) {
				*pid = (pid_t)v;
				rc = 1;
				break;
			}
			close(*fd);
			*fd = -1;
		}
		util_sleep_ms(10);
	}
	close(lfd);
	return rc;
}

/* The status of the keeper that holds the lock, however long it takes
 * it to answer; NULL once it has ended. */
static json_t *
keeperctl_wait_holder(pid_t pid, int fd)
{
	int64_t t0 = util_mono_ms(), told = 0;
	json_t *st;

	while ((st = keeperctl_status(KC_STATUS_MS)) == NULL &&
	    util_pidfd_exited(fd, 0) == 0) {
		if (util_mono_ms() - t0 >= told + 2000) {
			told = util_mono_ms() - t0;
			log_warnx("lease keeper pid %d holds %s/keeper.lock but has "
			    "not answered for %lld ms (stopped or starved): "
			    "waiting for it, no second keeper", (int)pid,
			    agent_cfg.data, (long long)told);
		}
		util_sleep_ms(50);
	}
	return st;
}

int
keeperctl_start(void)
{
	json_t *st = NULL;
	pid_t hpid = 0;
	int same = 0, hfd = -1, held;

	if (keeperctl_conf_write() < 0) {
		log_warn("cannot write %s/keeper.conf", agent_cfg.data);
		return -1;
	}
	if ((held = keeperctl_holder(&hpid, &hfd)) < 0) {
		log_warn("cannot tell whether a lease keeper holds %s/keeper.lock",
		    agent_cfg.data);
		return -1;
	}
	if (held)
		st = keeperctl_wait_holder(hpid, hfd);
	if (hfd >= 0)
		close(hfd);
	/* A keeper left by the previous agent: kept when its configuration
	 * is ours (no gap at all), else replaced (it takes over the renewal
	 * times through RUN/keeper.state). */
	if (st != NULL) {
		pid_t pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
		int fd = util_pidfd_open(pid);

		pthread_mutex_lock(&kc.lock);
		same = fd >= 0 && strcmp(json_string_value(json_object_get(st,
		    "conf")) ? json_string_value(json_object_get(st, "conf")) :
		    "", kc.hash) == 0;
		pthread_mutex_unlock(&kc.lock);
		if (same) {
			kc.pid = pid;
			kc.pidfd = fd;
			log_info("lease keeper pid %d kept", (int)pid);
		} else if (fd >= 0) {
			log_info("lease keeper pid %d replaced: new configuration",
			    (int)pid);
			(void)util_pidfd_kill(fd, SIGTERM);
			if (util_pidfd_exited(fd, 3000) != 1) {
				log_error("lease keeper pid %d did not exit within 3 s "
				    "of SIGTERM: killed", (int)pid);
				(void)util_pidfd_kill(fd, SIGKILL);
				(void)util_pidfd_exited(fd, 2000);
			}
			close(fd);
		}
		json_decref(st);
	}
	if (!same && keeperctl_launch() < 0) {
		log_error("cannot start the lease keeper (see its error above)");
		return -1;
	}
	if (!same)
		log_info("lease keeper pid %d renews this host's storage leases",
		    (int)kc.pid);
	if (pthread_create(&kc.watcher, NULL, keeperctl_watch, NULL) != 0)
		return -1;
	kc.watching = 1;
	return 0;
}

void
keeperctl_stop(int leave)
{
	char err[256];
	json_t *rep = NULL;
	int fd;

	if (kc.watching) {
		pthread_mutex_lock(&kc.lock);
		kc.quit = 1;
		pthread_mutex_unlock(&kc.lock);
		pthread_join(kc.watcher, NULL);
		kc.watching = 0;
	}
	if (!leave)
		goto cleanup;
	rep = keeperctl_call(json_pack("{s:s}", "op", "stop"), 1000, err,
	    sizeof(err));
	if (keeperctl_ok(rep, err, sizeof(err)) < 0) {
		log_info("lease keeper left running: %s", err);
	} else {
		pthread_mutex_lock(&kc.lock);
		fd = kc.pidfd;
		pthread_mutex_unlock(&kc.lock);
		/* It removes the leases after its last renewal, then exits. */
		if (fd >= 0 && util_pidfd_exited(fd, 3000) != 1)
			log_warnx("lease keeper pid %d still stopping: its "
			    "storage may hang", (int)kc.pid);
		else
			log_info("lease keeper stopped, leases removed");
	}
cleanup:
	json_decref(rep);
	pthread_mutex_lock(&kc.lock);
	if (kc.pidfd >= 0)
		close(kc.pidfd);
	kc.pidfd = -1;
	json_decref(kc.status);
	kc.status = NULL;
	pthread_mutex_unlock(&kc.lock);
}

/* Lease word of a keeper state for reports: ok, late or lost. */
static const char *
keeperctl_lease_word(const char *state)
{
	if (state && (strcmp(state, "ok") == 0 || strcmp(state, "late") == 0))
		return state;
	return "lost";
}

void
keeperctl_info(json_t *info)
{
	json_t *st = keeperctl_status_recent(), *doms, *e, *t;
	size_t i;

	doms = json_object_get(st, "domains");
	t = json_object_get(st, "timing");
	json_object_set_new(info, "fence", json_string(st ? json_string_value(
	    json_object_get(st, "fence")) : strcmp(agent_cfg.watchdog,
	    "none") == 0 ? "kill-only" : "watchdog"));
	json_object_set_new(info, "timing", t ? json_incref(t) : json_pack(
	    "{s:I, s:I, s:I, s:I, s:I}", "renew_ms",
	    (json_int_t)agent_cfg.renew_ms, "fence_ms",
	    (json_int_t)agent_cfg.fence_ms, "kill_grace_ms",
	    (json_int_t)agent_cfg.kill_grace_ms, "tick_ms",
	    (json_int_t)KEEPER_TICK_MS, "watchdog_ms",
	    (json_int_t)agent_cfg.watchdog_ms));
	json_object_set_new(info, "keeper", json_pack("{s:b, s:I}", "live",
	    st != NULL, "pid", st ? json_integer_value(json_object_get(st,
	    "pid")) : (json_int_t)0));
	json_array_foreach(json_object_get(info, "storage"), i, e) {
		json_t *d = json_object_get(doms, json_string_value(
		    json_object_get(e, "name")));
		const char *state = json_string_value(json_object_get(d, "state"));

		json_object_set_new(e, "lease", json_string(
		    keeperctl_lease_word(state)));
		/* null: no keeper answers, or no renewal is known yet */
		json_object_set_new(e, "lease_age_ms", json_is_integer(
		    json_object_get(d, "age_ms")) ? json_integer(
		    json_integer_value(json_object_get(d, "age_ms"))) :
		    json_null());
		/* No keeper: nobody can vouch for a fence. */
		json_object_set_new(e, "fence", json_string(state == NULL ?
		    "unconfirmed" : strcmp(state, "ok") == 0 || strcmp(state,
		    "late") == 0 ? "none" : state));
		if (json_object_get(e, "direct") == NULL)
			json_object_set_new(e, "direct", json_boolean(d &&
			    json_is_true(json_object_get(d, "direct"))));
	}
	json_decref(st);
}

int
lease_storage_ok(const char *name, int fresh)
{
	json_t *st = fresh ? keeperctl_status(KC_STATUS_MS) :
	    keeperctl_status_recent(), *d;
	const char *state;
	int ok;

	d = json_object_get(json_object_get(st, "domains"), name);
	state = json_string_value(json_object_get(d, "state"));
	ok = state && (strcmp(state, "ok") == 0 || strcmp(state, "late") == 0);
	json_decref(st);
	return ok;
}
