/* lease.c - the storage lease. A keeper process per host (forked from the
 * agent, outliving it like the QEMUs do) renews DOMAIN/leases/HOST.json on
 * every storage domain each second. When it cannot renew a domain for
 * LEASE_FENCE_MS it SIGKILLs this host's QEMUs on that domain (self-fencing)
 * before the manager, which gives up on a lease after its own timeout
 * (longer), restarts them elsewhere. An agent cut off from the manager and
 * from every peer records on the lease which HA VMs it powered off
 * (isolation). The agent dying alone changes nothing: the keeper goes on. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"

#define LEASE_RENEW_MS	1000
#define LEASE_FENCE_MS	3000	/* < the manager's lease timeout (5 s) */
#define KEEPER_NAME	"cvirt-keeper"

static volatile sig_atomic_t keeper_quit;

static int
lease_path(const char *root, const char *suffix, char *out, size_t sz)
{
	return util_fmt(out, sz, "%s/leases/%s%s", root, agent_cfg.name, suffix);
}

/* SIGKILL every QEMU this host runs from storage domain `name`. */
static int
keeper_fence(const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *de;
	int killed = 0;
	DIR *d;

	if (util_fmt(dir, sizeof(dir), "%s/vms", agent_cfg.data) < 0 ||
	    (d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		json_t *rec;
		pid_t pid;
		const char *uuid, *st;

		if (strstr(de->d_name, ".json") == NULL ||
		    util_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) < 0 ||
		    (rec = json_load_file(path, 0, NULL)) == NULL)
			continue;
		pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
		uuid = json_string_value(json_object_get(rec, "uuid"));
		st = json_string_value(json_object_get(rec, "storage"));
		if (uuid && st && strcmp(st, name) == 0 && util_pid_alive(pid) &&
		    util_pid_has_arg(pid, uuid) && kill(pid, SIGKILL) == 0)
			killed++;
		json_decref(rec);
	}
	closedir(d);
	return killed;
}

static void
keeper_status(const int *ok, const int64_t *last_ok, int64_t now)
{
	char path[PATH_MAX];
	json_t *st = json_object();
	char *s;
	int i;

	for (i = 0; i < agent_cfg.nstorage; i++)
		json_object_set_new(st, agent_cfg.storage[i].name, json_pack(
		    "{s:b, s:I}", "ok", ok[i], "age_ms",
		    (json_int_t)(now - last_ok[i])));
	if (util_fmt(path, sizeof(path), "%s/keeper.status", agent_cfg.data) == 0 &&
	    (s = json_dumps(st, JSON_COMPACT)) != NULL) {
		util_write_file_atomic(path, s, strlen(s), 0600);
		free(s);
	}
	json_decref(st);
}

static void
keeper_onsig(int sig)
{
	(void)sig;
	keeper_quit = 1;
}

static void
keeper_loop(void)
{
	int64_t last_ok[AGENT_MAX_STORAGE], seq = 0, now;
	int ok[AGENT_MAX_STORAGE], fenced[AGENT_MAX_STORAGE], i;
	char path[PATH_MAX], buf[256];

	prctl(PR_SET_NAME, KEEPER_NAME, 0, 0, 0);
	signal(SIGTERM, keeper_onsig);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	now = util_mono_ms();
	for (i = 0; i < agent_cfg.nstorage; i++) {
		last_ok[i] = now;
		ok[i] = 1;
		fenced[i] = 0;
	}
	while (!keeper_quit) {
		int64_t start = util_mono_ms();

		seq++;
		for (i = 0; i < agent_cfg.nstorage; i++) {
			snprintf(buf, sizeof(buf), "{\"host\":\"%s\",\"seq\":%lld,"
			    "\"renewed\":%lld,\"pid\":%d}\n", agent_cfg.name,
			    (long long)seq, (long long)util_wall_ms(), (int)getpid());
			ok[i] = lease_path(agent_cfg.storage[i].path, ".json", path,
			    sizeof(path)) == 0 && util_write_file_atomic(path, buf,
			    strlen(buf), 0644) == 0;
			now = util_mono_ms();
			if (ok[i]) {
				last_ok[i] = now;
				fenced[i] = 0;
			} else if (now - last_ok[i] > LEASE_FENCE_MS) {
				int n = keeper_fence(agent_cfg.storage[i].name);
				if (n > 0 || !fenced[i])
					log_error("keeper: lease on storage %s not renewed "
					    "for %lld ms: fenced %d QEMU(s)",
					    agent_cfg.storage[i].name,
					    (long long)(now - last_ok[i]), n);
				fenced[i] = 1;
			}
		}
		keeper_status(ok, last_ok, util_mono_ms());
		now = util_mono_ms();
		if (now - start < LEASE_RENEW_MS)
			util_sleep_ms(LEASE_RENEW_MS - (now - start));
	}
	_exit(0);
}

/* The keeper of this data dir, if it runs. */
static pid_t
keeper_running(void)
{
	char path[PATH_MAX], comm[64], *s;
	uint64_t v;
	pid_t pid = 0;

	if (util_fmt(path, sizeof(path), "%s/keeper.pid", agent_cfg.data) < 0 ||
	    (s = util_read_file(path, 64, NULL)) == NULL)
		return 0;
	s[strcspn(s, "\n")] = '\0';
	if (util_parse_u64(s, 1, INT32_MAX, &v) == 0)
		pid = (pid_t)v;
	free(s);
	if (pid <= 0 || !util_pid_alive(pid))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if ((s = util_read_file(path, 64, NULL)) == NULL)
		return 0;
	snprintf(comm, sizeof(comm), "%s", s);
	free(s);
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, KEEPER_NAME) == 0 ? pid : 0;
}

int
lease_keeper_start(void)
{
	char path[PATH_MAX], num[32];
	int fds[2], rc = -1;
	pid_t pid, old;
	ssize_t n;

	if ((old = keeper_running()) > 0) {
		/* A new agent may bring other storage: the keeper restarts. */
		kill(old, SIGTERM);
		util_sleep_ms(50);
	}
	if (pipe(fds) < 0)
		return -1;
	if ((pid = fork()) < 0)
		goto cleanup;
	if (pid == 0) {
		/* Double fork: the keeper is nobody's child, like QEMU. It
		 * outlives the agent, so it must not hold the agent's lock. */
		close(fds[0]);
		if (agent_cfg.lock_fd > 2)
			close(agent_cfg.lock_fd);
		setsid();
		if ((pid = fork()) != 0) {
			if (pid > 0)
				(void)!write(fds[1], &pid, sizeof(pid));
			_exit(0);
		}
		close(fds[1]);
		/* Nothing blocked or ignored that the agent inherited. */
		proc_child_signals();
		keeper_loop();
	}
	close(fds[1]);
	fds[1] = -1;
	waitpid(pid, NULL, 0);
	n = read(fds[0], &pid, sizeof(pid));
	if (n != (ssize_t)sizeof(pid))
		goto cleanup;
	snprintf(num, sizeof(num), "%d\n", (int)pid);
	if (util_fmt(path, sizeof(path), "%s/keeper.pid", agent_cfg.data) < 0 ||
	    util_write_file_atomic(path, num, strlen(num), 0600) < 0)
		goto cleanup;
	log_info("lease keeper pid %d renews this host's storage leases", (int)pid);
	rc = 0;
cleanup:
	close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return rc;
}

void
lease_keeper_stop(void)
{
	pid_t pid = keeper_running();
	char path[PATH_MAX];
	int i;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	/* Gone before the leases go: a renewal in flight would bring one
	 * back (it is nobody's child: poll, up to 2 s). */
	for (i = 0; i < 100 && util_pid_alive(pid); i++)
		util_sleep_ms(20);
	/* A host leaving on purpose removes its leases: nothing to fence. */
	for (i = 0; i < agent_cfg.nstorage; i++)
		if (lease_path(agent_cfg.storage[i].path, ".json", path,
		    sizeof(path)) == 0)
			(void)unlink(path);
	log_info("lease keeper stopped");
}

int
lease_storage_ok(const char *name)
{
	char path[PATH_MAX];
	json_t *st, *e;
	int ok = 1;

	if (util_fmt(path, sizeof(path), "%s/keeper.status", agent_cfg.data) < 0 ||
	    (st = json_load_file(path, 0, NULL)) == NULL)
		return 1;
	e = json_object_get(st, name);
	if (e && !json_is_true(json_object_get(e, "ok")) &&
	    json_integer_value(json_object_get(e, "age_ms")) > LEASE_RENEW_MS)
		ok = 0;
	json_decref(st);
	return ok;
}

json_t *
lease_read_all(const char *root, char *err, size_t errsz)
{
	char dir[PATH_MAX], path[PATH_MAX];
	json_t *out = json_object();
	struct dirent *de;
	DIR *d;

	if (util_fmt(dir, sizeof(dir), "%s/leases", root) < 0 ||
	    (d = opendir(dir)) == NULL) {
		snprintf(err, errsz, "cannot read leases: %s", strerror(errno));
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
		if (!util_name_valid(host) || util_fmt(path, sizeof(path), "%s/%s",
		    dir, de->d_name) < 0 || (v = json_load_file(path, 0, NULL)) ==
		    NULL)
			continue;
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
lease_isolation_record(json_t *stopped)
{
	char path[PATH_MAX];
	json_t *rec;
	char *s = NULL;
	int i, rc = 0;

	rec = json_pack("{s:s, s:b, s:O, s:I}", "host", agent_cfg.name,
	    "isolated", 1, "stopped", stopped, "time", (json_int_t)util_wall_ms());
	if (rec == NULL || (s = json_dumps(rec, JSON_COMPACT)) == NULL)
		rc = -1;
	for (i = 0; rc == 0 && i < agent_cfg.nstorage; i++)
		if (lease_path(agent_cfg.storage[i].path, ".isolation.json", path,
		    sizeof(path)) < 0 || util_write_file_atomic(path, s,
		    strlen(s), 0644) < 0)
			rc = -1;
	free(s);
	json_decref(rec);
	return rc;
}

void
lease_isolation_clear(void)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < agent_cfg.nstorage; i++)
		if (lease_path(agent_cfg.storage[i].path, ".isolation.json", path,
		    sizeof(path)) == 0)
			(void)unlink(path);
}
