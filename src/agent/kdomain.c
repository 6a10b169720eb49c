/* kdomain.c - one I/O thread per storage domain: the only code of the
 * keeper that touches shared storage. It renews DOMAIN/leases/HOST.json
 * in place every R ms and runs the syncfs the decision loop asks for. A
 * hung write blocks this thread alone; nothing waits for it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/keeper.h"
#include "common/log.h"

int
kdom_counted(const struct ktiming *t, int64_t last_ok, int64_t done,
    int64_t hold_until)
{
	return done < last_ok + t->fence_ms - t->kill_grace_ms ||
	    (last_ok > 0 && done < hold_until);
}

/* (Re)open the lease file when it is not open, or was replaced or removed
 * (a renewal of an unlinked file would renew nothing). */
static int
kdom_open(struct kdom *d, int *fd, char *err, size_t errsz)
{
	struct stat a, b;
	char dir[PATH_MAX];
	int tries;

	if (*fd >= 0 && (stat(d->lease, &a) < 0 || fstat(*fd, &b) < 0 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
		close(*fd);
		*fd = -1;
	}
	for (tries = 0; *fd < 0 && tries < 2; tries++) {
		/* O_WRONLY: the keeper never reads its own lease back. */
		*fd = open(d->lease, O_WRONLY | O_CREAT | O_CLOEXEC | O_DIRECT,
		    0644);
		d->direct = *fd >= 0;
		if (*fd < 0 && errno == EINVAL)
			*fd = open(d->lease, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (*fd < 0 && errno == ENOENT && tries == 0 &&
		    util_fmt(dir, sizeof(dir), "%s/leases", d->path) == 0)
			(void)mkdir(dir, 0755);
		else if (*fd < 0)
			break;
	}
	if (*fd < 0) {
		snprintf(err, errsz, "open leases/%s.json: %s", d->host,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
kdom_renew(struct kdom *d, int *fd, char *buf, int64_t seq, char *err,
    size_t errsz)
{
	ssize_t n;

	if (kdom_open(d, fd, err, errsz) < 0)
		return -1;
	if (keeper_record(buf, KEEPER_RECORD_SIZE, d->host, seq, d->boot,
	    d->fence, &d->t, util_wall_ms()) < 0) {
		snprintf(err, errsz, "cannot build the lease record");
		return -1;
	}
	n = pwrite(*fd, buf, KEEPER_RECORD_SIZE, 0);
	if (n != KEEPER_RECORD_SIZE) {
		snprintf(err, errsz, "write leases/%s.json: %s", d->host, n < 0 ?
		    strerror(errno) : "short write");
		goto fail;
	}
	if (fdatasync(*fd) < 0) {
		snprintf(err, errsz, "fdatasync leases/%s.json: %s", d->host,
		    strerror(errno));
		goto fail;
	}
	return 0;
fail:
	/* Reopen next time: an fd that failed may be stuck in an error. */
	close(*fd);
	*fd = -1;
	return -1;
}

/* syncfs of the domain: the dirty pages of QEMUs killed on it are on
 * storage once it returns (for domains without O_DIRECT). */
static int
kdom_syncfs(struct kdom *d)
{
	int fd, rc;

	if ((fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = syncfs(fd);
	close(fd);
	return rc;
}

static void *
kdom_main(void *arg)
{
	struct kdom *d = arg;
	char *buf = NULL, err[160];
	int64_t next = util_mono_ms(), served = 0;
	int fd = -1;

	if (posix_memalign((void **)&buf, KEEPER_RECORD_SIZE,
	    KEEPER_RECORD_SIZE) != 0)
		buf = NULL;
	pthread_mutex_lock(&d->lock);
	while (!d->quit) {
		int64_t t0, t1, req, seq;
		int rc;

		if (d->sync_req > served) {
			req = d->sync_req;
			pthread_mutex_unlock(&d->lock);
			t0 = util_mono_ms();
			rc = kdom_syncfs(d);
			pthread_mutex_lock(&d->lock);
			served = req;
			if (rc == 0 && t0 > d->sync_done)
				d->sync_done = t0;
			continue;
		}
		if (util_mono_ms() < next) {
			(void)util_cond_wait_until(&d->cond, &d->lock, next);
			continue;
		}
		seq = ++d->seq;
		pthread_mutex_unlock(&d->lock);
		t0 = util_mono_ms();
		next = t0 + d->t.renew_ms;
		rc = buf ? kdom_renew(d, &fd, buf, seq, err, sizeof(err)) :
		    (snprintf(err, sizeof(err), "out of memory"), -1);
		t1 = util_mono_ms();
		pthread_mutex_lock(&d->lock);
		if (rc == 0) {
			d->last_done = t0;
			if (kdom_counted(&d->t, d->last_ok, t1, d->hold_until))
				d->last_ok = t0;
			d->error[0] = '\0';
		} else {
			d->last_fail = t1;
			snprintf(d->error, sizeof(d->error), "%s", err);
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&d->lock);
	/* A host leaving on purpose: after the last renewal, none follows. */
	if (d->remove_lease)
		(void)unlink(d->lease);
	d->done = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	free(buf);
	return NULL;
}

int
kdom_init(struct kdom *d)
{
	if (pthread_mutex_init(&d->lock, NULL) != 0)
		return -1;
	return util_cond_init_mono(&d->cond);
}

int
kdom_start(struct kdom *d)
{
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	if (util_fmt(d->lease, sizeof(d->lease), "%s/leases/%s.json", d->path,
	    d->host) < 0)
		return -1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, kdom_main, d);
	pthread_attr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

int
kdom_stop(struct kdom *d, int remove, int64_t timeout_ms)
{
	int64_t deadline = util_mono_ms() + timeout_ms;
	int done;

	pthread_mutex_lock(&d->lock);
	d->quit = 1;
	d->remove_lease = remove;
	pthread_cond_broadcast(&d->cond);
	while (!d->done && util_cond_wait_until(&d->cond, &d->lock,
	    deadline) == 0)
		;
	done = d->done;
	pthread_mutex_unlock(&d->lock);
	return done;
}
