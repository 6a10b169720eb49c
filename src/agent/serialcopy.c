/* serialcopy.c - QEMU writes a VM's serial output to a file on this host's
 * own disk (DATA/serial/UUID.log); a serial thread per storage domain
 * copies what is new to the VM's serial.log there every 500 ms, one write
 * per round, and rotates those logs every 2 s. Its own thread, not the
 * domain's check thread (domwatch.c): a slow copy must not make the
 * domain look hung (requests there fail 503 once its check is 1.5 s
 * old), and a hung domain stops that domain's copies only.
 *
 * QEMU writes its serial log one byte per write(2), in the vCPU thread,
 * holding the global lock: on a networked filesystem every byte the guest
 * printed was a round trip to the storage servers (a booting guest's 22 KB
 * of kernel messages, 22,000 replicated writes on GlusterFS) during which
 * the guest stood still, and a hung domain froze a guest that only
 * printed. A local file takes those writes at memory speed.
 *
 * DATA/serial/UUID.json records {storage, dir, ino, copied}: the bytes of
 * the local file (inode ino) already on storage. It is written after each
 * copy, so an agent that dies between the two copies a batch twice, never
 * loses one; a restarted agent goes on from it. Fully copied logs of VMs
 * no longer on this host are removed. Once the local file is past
 * SC_LOCAL_MAX and fully copied it is truncated (QEMU appends: it goes on
 * at the new end); bytes written between the last look at its size and
 * the truncation would be lost (microseconds, once per SC_LOCAL_MAX).
 * serialcopy_begin copies an earlier run's leftovers from the starting
 * thread; a round copying them at the same moment sends them twice. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"

#define SC_LOCAL_MAX	((off_t)1 << 20)	/* truncated once copied */
#define SC_PERIOD_MS	500		/* a round per domain */
#define SC_ROTATE_MS	2000		/* the logs on storage kept bounded */
/* Most copied in one round: half of what rotation keeps (serial_max, 1
 * MiB), so that the line saying what was not kept is kept too. */
#define SC_BATCH_MAX	((agent_cfg.serial_max ? agent_cfg.serial_max : \
	    ((size_t)1 << 20)) / 2)

static int
sc_path(const char *uuid, const char *ext, char *out, size_t outsz)
{
	return util_fmt(out, outsz, "%s/serial/%s.%s", agent_cfg.data, uuid,
	    ext);
}

int
serialcopy_local_path(const char *uuid, char *out, size_t outsz)
{
	return sc_path(uuid, "log", out, outsz);
}

static json_t *
sc_state_load(const char *uuid)
{
	char path[PATH_MAX];

	if (sc_path(uuid, "json", path, sizeof(path)) < 0)
		return NULL;
	return json_load_file(path, 0, NULL);
}

static int
sc_state_save(const char *uuid, const char *storage, const char *dir,
    json_int_t ino, json_int_t copied)
{
	char path[PATH_MAX], *s = NULL;
	json_t *o;
	int rc = -1;

	o = json_pack("{s:s, s:s, s:I, s:I}", "storage", storage, "dir", dir,
	    "ino", ino, "copied", copied);
	if (o && sc_path(uuid, "json", path, sizeof(path)) == 0 &&
	    (s = json_dumps(o, JSON_COMPACT)) != NULL)
		rc = util_write_file_atomic(path, s, strlen(s), 0600);
	free(s);
	json_decref(o);
	return rc;
}

/* Appends buf to dir/serial.log on storage (one write, O_APPEND: a
 * short write is retried for the rest); 0 or -1. */
static int
sc_append(const char *dir, const char *buf, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int fd, rc = 0;

	if ((fd = serial_log_open(dir, O_WRONLY | O_APPEND | O_CREAT)) < 0)
		return -1;
	while (rc == 0 && off < len) {
		n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = -1;
		else
			off += (size_t)n;
	}
	close(fd);
	return rc;
}

/* A copy that fails (storage errors) is retried every round; said at
 * most once a minute. */
static void
sc_warn(const char *uuid, const char *dir)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int64_t last;
	int64_t now = util_mono_ms();
	int say;

	pthread_mutex_lock(&lock);
	if ((say = last == 0 || now - last >= 60000))
		last = now;
	pthread_mutex_unlock(&lock);
	if (say)
		log_warn("vm %s: cannot copy its serial output to %s (retried "
		    "every round)", uuid, dir);
}

static const char *
sc_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* Copies what is new in uuid's local log (state st) to storage. 1 when
 * all of it is there (or there is no log), 0 when not, -1 on an error. */
static int
sc_flush(const char *uuid, json_t *st)
{
	char path[PATH_MAX], mark[96], *buf = NULL;
	const char *dir = sc_str(st, "dir");
	json_int_t copied, ino;
	struct stat sb;
	size_t len, mlen, off;
	ssize_t n;
	int fd = -1, rc = -1;

	if (dir[0] == '\0' || serialcopy_local_path(uuid, path,
	    sizeof(path)) < 0)
		return -1;
	copied = json_integer_value(json_object_get(st, "copied"));
	ino = json_integer_value(json_object_get(st, "ino"));
	if ((fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 1 : -1;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		goto cleanup;
	/* Another file than the one counted, or shorter: from its start. */
	if ((json_int_t)sb.st_ino != ino || copied > (json_int_t)sb.st_size ||
	    copied < 0)
		copied = 0;
	ino = (json_int_t)sb.st_ino;
	mark[0] = '\0';
	if ((json_int_t)sb.st_size - copied > (json_int_t)SC_BATCH_MAX) {
		/* Far behind (the agent or storage was away): the newest
		 * SC_BATCH_MAX. */
		snprintf(mark, sizeof(mark), "\r\n[cvirt: %lld bytes of serial "
		    "output not kept]\r\n", (long long)((json_int_t)sb.st_size -
		    copied - (json_int_t)SC_BATCH_MAX));
		copied = (json_int_t)sb.st_size - (json_int_t)SC_BATCH_MAX;
	}
	len = (size_t)((json_int_t)sb.st_size - copied);
	mlen = strlen(mark);
	if (len > 0) {
		if ((buf = malloc(mlen + len)) == NULL)
			goto cleanup;
		memcpy(buf, mark, mlen);
		for (off = 0; off < len; off += (size_t)n) {
			n = pread(fd, buf + mlen + off, len - off,
			    (off_t)copied + (off_t)off);
			if (n < 0 && errno == EINTR)
				n = 0;
			else if (n <= 0)
				goto cleanup;
		}
		if (sc_append(dir, buf, mlen + len) < 0) {
			/* The VM's directory is gone (deleted): nowhere to
			 * copy to, nothing left to keep. */
			if (errno == ENOENT)
				rc = 1;
			else
				sc_warn(uuid, dir);
			goto cleanup;
		}
		copied += (json_int_t)len;
	}
	/* All on storage and large: start the local file over, unless QEMU
	 * wrote meanwhile. */
	if (copied >= (json_int_t)SC_LOCAL_MAX && fstat(fd, &sb) == 0 &&
	    (json_int_t)sb.st_size == copied && ftruncate(fd, 0) == 0)
		copied = 0;
	if ((len > 0 || copied == 0) && sc_state_save(uuid, sc_str(st,
	    "storage"), dir, ino, copied) < 0)
		log_warn("vm %s: serial copy state", uuid);
	rc = fstat(fd, &sb) == 0 && (json_int_t)sb.st_size == copied;
cleanup:
	close(fd);
	free(buf);
	return rc;
}

/* Removes uuid's local log and state (vmhost_unless_here: the VM is not
 * on this host, and no start of it can begin meanwhile). */
static void
sc_forget(const char *uuid)
{
	char path[PATH_MAX];

	if (serialcopy_local_path(uuid, path, sizeof(path)) == 0)
		(void)unlink(path);
	if (sc_path(uuid, "json", path, sizeof(path)) == 0)
		(void)unlink(path);
}

int
serialcopy_begin(const char *uuid, const char *storage, const char *dir)
{
	char path[PATH_MAX];
	json_t *st;
	int rc;

	if (util_fmt(path, sizeof(path), "%s/serial", agent_cfg.data) < 0 ||
	    util_mkdir_p(path, 0700) < 0)
		return -1;
	/* What an earlier run here left uncopied goes first, where it was
	 * meant to go. */
	if ((st = sc_state_load(uuid)) != NULL) {
		(void)sc_flush(uuid, st);
		json_decref(st);
	}
	st = sc_state_load(uuid);
	rc = sc_state_save(uuid, storage, dir, json_integer_value(
	    json_object_get(st, "ino")), json_integer_value(json_object_get(st,
	    "copied")));
	json_decref(st);
	return rc;
}

void
serialcopy_round(const char *storage)
{
	char path[PATH_MAX], uuid[UTIL_UUID_LEN + 1];
	struct dirent *de;
	json_t *st;
	DIR *d;

	if (util_fmt(path, sizeof(path), "%s/serial", agent_cfg.data) < 0 ||
	    (d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != UTIL_UUID_LEN + 5 ||
		    strcmp(de->d_name + UTIL_UUID_LEN, ".json") != 0)
			continue;
		memcpy(uuid, de->d_name, UTIL_UUID_LEN);
		uuid[UTIL_UUID_LEN] = '\0';
		if (!util_uuid_valid(uuid) || (st = sc_state_load(uuid)) == NULL)
			continue;
		/* Forgotten only once the start-up scan has put every QEMU
		 * of ours in the table: before, a VM not in it may still run
		 * here and write the file (an agent just restarted). */
		if (strcmp(sc_str(st, "storage"), storage) == 0 &&
		    sc_flush(uuid, st) == 1 && vmadopt_complete())
			vmhost_unless_here(uuid, sc_forget);
		json_decref(st);
	}
	closedir(d);
}

static pthread_mutex_t sc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sc_cond;		/* CLOCK_MONOTONIC */
static unsigned sc_kicks;		/* under sc_lock */
static int sc_idx[AGENT_MAX_STORAGE];

static void *
sc_main(void *arg)
{
	const char *name = agent_cfg.storage[*(int *)arg].name;
	int64_t t0, last_rotate = 0;
	unsigned seen;

	for (;;) {
		t0 = util_mono_ms();
		pthread_mutex_lock(&sc_lock);
		seen = sc_kicks;
		pthread_mutex_unlock(&sc_lock);
		serialcopy_round(name);
		if (t0 - last_rotate >= SC_ROTATE_MS) {
			vmhost_rotate_serials(name);
			last_rotate = t0;
		}
		pthread_mutex_lock(&sc_lock);
		while (sc_kicks == seen && util_cond_wait_until(&sc_cond,
		    &sc_lock, t0 + SC_PERIOD_MS) == 0)
			;
		pthread_mutex_unlock(&sc_lock);
	}
	return NULL;
}

int
serialcopy_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int i, rc = 0;

	if (util_cond_init_mono(&sc_cond) != 0)
		return -1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Nobody joins these: a hung one must not stop the agent. */
	for (i = 0; rc == 0 && i < agent_cfg.nstorage; i++) {
		sc_idx[i] = i;
		if (pthread_create(&t, &attr, sc_main, &sc_idx[i]) != 0)
			rc = -1;
	}
	pthread_attr_destroy(&attr);
	return rc;
}

void
serialcopy_kick(void)
{
	pthread_mutex_lock(&sc_lock);
	sc_kicks++;
	pthread_cond_broadcast(&sc_cond);
	pthread_mutex_unlock(&sc_lock);
}
