/* leasefile.c - the lease records on shared storage as the agent reads
 * them (every host's DOMAIN/leases/HOST.json, for the manager) and the
 * isolation record of the HA VMs an isolated agent powered off
 * (DOMAIN/leases/HOST.isolation.json). The keeper writes the leases
 * (kdomain.c); this file never renews anything. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"

static int
lease_path(const char *root, const char *suffix, char *out, size_t sz)
{
	return util_fmt(out, sz, "%s/leases/%s%s", root, agent_cfg.name, suffix);
}

#define LEASE_RECORD_MAX	(64 * 1024)

/* A record by name in the leases directory: the name alone is looked up
 * (openat), not every component of its path, which a shared filesystem
 * without a dentry cache sends to every replica (store.c); never through
 * a symlink, and a FIFO put there does not block the open; read whole
 * (json_loadfd reads a byte per read(2)). NULL when it cannot be read. */
static json_t *
lease_load_at(int dfd, const char *name)
{
	json_t *v = NULL;
	char *buf = NULL;
	size_t len;
	int fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) >= 0 &&
	    (buf = util_read_fd(fd, LEASE_RECORD_MAX, &len)) != NULL)
		v = json_loadb(buf, len, 0, NULL);
	if (fd >= 0)
		close(fd);
	free(buf);
	return v;
}

json_t *
lease_read_all(const char *root, char *err, size_t errsz)
{
	char dir[PATH_MAX];
	json_t *out = json_object();
	struct dirent *de;
	DIR *d = NULL;
	int dfd = -1;

	if (util_fmt(dir, sizeof(dir), "%s/leases", root) < 0 ||
	    (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (d = fdopendir(dfd)) == NULL) {
		snprintf(err, errsz, "cannot read leases: %s", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		json_decref(out);
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		const char *kind = NULL;
		char host[UTIL_NAME_MAX + 1];
		json_t *v, *h;

		if (n > 15 && strcmp(de->d_name + n - 15, ".isolation.json") == 0) {
			kind = "isolation";
			n -= 15;
		} else if (n > 5 && strcmp(de->d_name + n - 5, ".json") == 0) {
			kind = "lease";
			n -= 5;
		}
		if (kind == NULL || n > UTIL_NAME_MAX)
			continue;
		snprintf(host, sizeof(host), "%.*s", (int)n, de->d_name);
		if (!util_name_valid(host) ||
		    (v = lease_load_at(dirfd(d), de->d_name)) == NULL)
			continue;
		/* A record read while it was rewritten is no observation. */
		if (strcmp(kind, "lease") == 0 && json_object_get(v, "seq_end") &&
		    !json_equal(json_object_get(v, "seq"), json_object_get(v,
		    "seq_end"))) {
			json_decref(v);
			continue;
		}
		if ((h = json_object_get(out, host)) == NULL) {
			h = json_object();
			json_object_set_new(out, host, h);
		}
		json_object_set_new(h, kind, v);
	}
	closedir(d);
	return out;
}

int
lease_isolation_write(const char *root, json_t *rec)
{
	char path[PATH_MAX];
	char *s = NULL;
	int rc = -1;

	if ((s = json_dumps(rec, JSON_COMPACT)) != NULL &&
	    lease_path(root, ".isolation.json", path, sizeof(path)) == 0)
		rc = util_write_file_atomic(path, s, strlen(s), 0644);
	free(s);
	return rc;
}

void
lease_isolation_remove(const char *root)
{
	char path[PATH_MAX];

	if (lease_path(root, ".isolation.json", path, sizeof(path)) == 0)
		(void)unlink(path);
}
