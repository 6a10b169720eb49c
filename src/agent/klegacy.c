/* klegacy.c - the first start after an upgrade: taking over from the
 * lease keeper of an older cvirt (forked inside the agent, src/agent/lease.c
 * before issue 14) without killing the VMs it guards. That keeper wrote its
 * pid to DATA/keeper.pid, renewed the leases by rename once a second and,
 * after each round, wrote DATA/keeper.status {"DOMAIN":{"ok":B,"age_ms":N}}
 * by rename, N being the monotonic time since its last renewal of DOMAIN.
 * It left no monotonic date on disk, so the new keeper watches it: a
 * status file replaced after moment t says the domain was renewed at or
 * after t - age_ms. That lower bound becomes the domain's last_ok, the old
 * keeper is stopped, and the usual rules (docs/keeper.md) run from there.
 * Without such an observation (the old keeper dead or stuck) a domain
 * starts fenced, as without any state: its QEMUs are killed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/keeper.h"
#include "common/log.h"

#define KLEGACY_POLL_MS		10	/* the status file's stat, locally */
#define KLEGACY_AGE_MAX		86400000	/* a day: anything more is junk */

int
klegacy_bound(const char *status, const char *domain, int64_t before,
    int64_t *last_ok)
{
	json_t *o, *d, *age;
	int rc = -1;

	if (status == NULL || domain == NULL ||
	    (o = json_loads(status, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return -1;
	d = json_is_object(o) ? json_object_get(o, domain) : NULL;
	age = json_is_object(d) ? json_object_get(d, "age_ms") : NULL;
	if (json_is_integer(age) && json_integer_value(age) >= 0 &&
	    json_integer_value(age) <= KLEGACY_AGE_MAX &&
	    before - json_integer_value(age) > 0) {
		*last_ok = before - json_integer_value(age);
		rc = 0;
	}
	json_decref(o);
	return rc;
}

/* Whether pid is an old keeper of our data directory: named cvirt-keeper,
 * not a keeper of this version (`cvirt keeper`), and when its command
 * line (the old agent's) names --data, ours. */
static int
klegacy_ours(pid_t pid)
{
	char path[64], *buf, *p, *comm;
	size_t len;
	int argi = 0, ours;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if ((comm = util_read_file(path, 64, NULL)) == NULL)
		return 0;
	comm[strcspn(comm, "\n")] = '\0';
	ours = strcmp(comm, KEEPER_COMM) == 0;
	free(comm);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (!ours || (buf = util_read_file(path, 1 << 16, &len)) == NULL)
		return 0;
	for (p = buf; ours && p < buf + len; p += strlen(p) + 1, argi++) {
		if (argi == 1 && strcmp(p, "keeper") == 0)
			ours = 0;
		else if (strncmp(p, "--data=", 7) == 0)
			ours = strcmp(p + 7, kproc.data) == 0;
		else if (strcmp(p, "--data") == 0 && p + strlen(p) + 1 < buf + len)
			ours = strcmp(p + strlen(p) + 1, kproc.data) == 0;
	}
	free(buf);
	return ours;
}

/* The old keeper from DATA/keeper.pid, with a pidfd (identity checked
 * after the pidfd is open: a reused pid is not signalled); 0 if none. */
static pid_t
klegacy_find(int *pidfd)
{
	char path[PATH_MAX], *s;
	uint64_t v = 0;
	int fd;

	*pidfd = -1;
	if (util_fmt(path, sizeof(path), "%s/keeper.pid", kproc.data) < 0 ||
	    (s = util_read_file(path, 64, NULL)) == NULL)
		return 0;
	s[strcspn(s, "\n")] = '\0';
	if (util_parse_u64(s, 2, INT32_MAX, &v) < 0 || (pid_t)v == getpid())
		v = 0;
	free(s);
	if (v == 0 || (fd = util_pidfd_open((pid_t)v)) < 0)
		return 0;
	if (util_pidfd_exited(fd, 0) != 0 || !klegacy_ours((pid_t)v)) {
		close(fd);
		return 0;
	}
	*pidfd = fd;
	return (pid_t)v;
}

static int
klegacy_same(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Watch DATA/keeper.status for up to KEEPER_LEGACY_SEE_MS: the first
 * replacement that parses gives a bound for each domain it names. Returns
 * the number of domains bounded (have[i], bound[i]). */
static int
klegacy_observe(int pidfd, int64_t *bound, int *have)
{
	char path[PATH_MAX], *text;
	int64_t end = util_mono_ms() + KEEPER_LEGACY_SEE_MS, before;
	struct stat prev, cur;
	int known, i, n = 0, gone = 0;

	if (util_fmt(path, sizeof(path), "%s/keeper.status", kproc.data) < 0)
		return 0;
	before = util_mono_ms();
	known = stat(path, &prev) == 0;
	while (n == 0 && !gone && util_mono_ms() < end) {
		int64_t t;

		/* Ended: one last look, for a status written just before. */
		gone = util_pidfd_exited(pidfd, KLEGACY_POLL_MS) == 1;
		t = util_mono_ms();
		if (stat(path, &cur) < 0 || (known && klegacy_same(&prev, &cur))) {
			before = t;	/* unchanged when this stat began */
			continue;
		}
		/* Replaced after `before`: each age is since a renewal that
		 * started no earlier than before - age. */
		text = util_read_file(path, 65536, NULL);
		for (i = 0; text && i < kproc.s.ndom; i++)
			if (klegacy_bound(text, kproc.s.dom[i].name, before,
			    &bound[i]) == 0) {
				have[i] = 1;
				n++;
			}
		free(text);
		prev = cur;
		known = 1;
		before = t;
	}
	return n;
}

/* SIGKILL: it has nothing to clean up (its agent removed the leases), and
 * on SIGTERM it would first sleep out its round, up to a second with no
 * renewal by anyone. Seen right after a round, it is asleep, not halfway
 * through a rename (which would only leave a temporary file). */
static void
klegacy_stop(pid_t pid, int pidfd)
{
	(void)util_pidfd_kill(pidfd, SIGKILL);
	if (util_pidfd_exited(pidfd, KEEPER_LEGACY_STOP_MS) != 1)
		log_warnx("keeper: the previous keeper pid %d is still in I/O "
		    "after SIGKILL: its renewal in flight is its last", (int)pid);
	else
		log_info("keeper: the previous keeper pid %d stopped", (int)pid);
}

static void
klegacy_remove(const char *name)
{
	char path[PATH_MAX];

	if (util_fmt(path, sizeof(path), "%s/%s", kproc.data, name) == 0)
		(void)unlink(path);
}

void
keeper_legacy_takeover(void)
{
	int64_t bound[KEEPER_MAX_DOMAINS], now;
	int have[KEEPER_MAX_DOMAINS], fd, i;
	pid_t pid;

	memset(have, 0, sizeof(have));
	if ((pid = klegacy_find(&fd)) <= 0)
		goto cleanup;
	log_info("keeper: the previous version's keeper pid %d guards this "
	    "host's VMs: taking over from it", (int)pid);
	(void)klegacy_observe(fd, bound, have);
	now = util_mono_ms();
	for (i = 0; i < kproc.s.ndom; i++) {
		struct kdstate *d = &kproc.s.dom[i];

		if (!have[i]) {
			log_warnx("keeper: storage %s: the previous keeper showed "
			    "no renewal%s", d->name, d->state > KD_LATE ?
			    ": its QEMUs are killed" : "");
			continue;
		}
		if (d->state > KD_LATE || bound[i] > d->last_ok) {
			d->state = KD_OK;
			d->last_ok = bound[i] > d->last_ok ? bound[i] : d->last_ok;
		}
		kproc.dom[i].last_ok = d->last_ok;
		log_info("keeper: storage %s: renewed by the previous keeper "
		    "%lld ms ago", d->name, (long long)(now - d->last_ok));
	}
	/* Saved before the old keeper goes: should this one die now, its
	 * successor still knows the renewal times. */
	keeper_state_save();
	klegacy_stop(pid, fd);
	close(fd);
cleanup:
	/* Nobody reads these any more; a stale keeper.pid could name a
	 * reused pid later. */
	klegacy_remove("keeper.pid");
	klegacy_remove("keeper.status");
}
