/* up.c - `cvirt up`: manager + one local agent + storage "local" on one
 * machine, supervised in the foreground. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "manager/manager.h"

struct up_child {
	const char	*what;
	char		*argv[20];
	pid_t		 pid;
	int64_t		 started;
	int		 restarts;
};

static pid_t
up_spawn(struct up_child *c)
{
	pid_t pid = fork();

	if (pid == 0) {
		proc_child_signals();
		execv(c->argv[0], c->argv);
		fprintf(stderr, "cvirt up: cannot run %s: %s\n", c->argv[0],
		    strerror(errno));
		_exit(127);
	}
	c->pid = pid;
	c->started = util_mono_ms();
	return pid;
}

/* Whether st is one of the comma-separated words of list. */
static int
up_word_in(const char *st, const char *list)
{
	size_t n = strlen(st);
	const char *p;

	for (p = list; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 :
	    NULL)
		if (strncmp(p, st, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

/* Poll url until it answers 200 (and, with want, its JSON field is one
 * of want's comma-separated words; a boolean is "true" or "false"); -1 at
 * once when kid, the daemon that should answer, has exited (it said why
 * on stderr). */
static int
up_wait_http(struct up_child *kid, const char *url, const char *token,
    const char *field, const char *want, int ms)
{
	int64_t deadline = util_mono_ms() + ms;
	struct httpc_resp r;
	const char *st;
	json_t *v;

	while (util_mono_ms() < deadline) {
		if (waitpid(kid->pid, NULL, WNOHANG) == kid->pid) {
			kid->pid = 0;
			return -1;
		}
		v = NULL;
		if (httpc_request("GET", url, token, NULL, 2000, &r) == 0 &&
		    r.status == 200)
			v = json_object_get(r.json, field ? field : "");
		st = json_is_boolean(v) ? (json_is_true(v) ? "true" : "false") :
		    json_string_value(v);
		if (r.status == 200 && (want == NULL || (st != NULL &&
		    st[0] != '\0' && up_word_in(st, want)))) {
			httpc_resp_free(&r);
			return 0;
		}
		httpc_resp_free(&r);
		util_sleep_ms(100);
	}
	return -1;
}

static void
up_host_name(char *out, size_t outsz)
{
	char h[256];
	size_t i;

	if (gethostname(h, sizeof(h)) < 0 || !isalnum((unsigned char)h[0]))
		snprintf(h, sizeof(h), "localhost");
	h[strcspn(h, ".")] = '\0';
	for (i = 0; h[i]; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '_')
			h[i] = '-';
	snprintf(out, outsz, "%.63s", h);
}

static void
up_stop(struct up_child *kids, int n)
{
	int64_t deadline;
	int i;

	for (i = n - 1; i >= 0; i--)
		if (kids[i].pid > 0)
			kill(kids[i].pid, SIGTERM);
	deadline = util_mono_ms() + 10000;
	for (i = n - 1; i >= 0; i--) {
		while (kids[i].pid > 0 && util_mono_ms() < deadline) {
			if (waitpid(kids[i].pid, NULL, WNOHANG) == kids[i].pid)
				kids[i].pid = 0;
			else
				util_sleep_ms(50);
		}
		if (kids[i].pid > 0) {
			kill(kids[i].pid, SIGKILL);
			waitpid(kids[i].pid, NULL, 0);
		}
	}
}

/* Restart a child that died, at most 5 times in quick succession. */
static int
up_supervise(struct up_child *kids, int n, sigset_t *set)
{
	struct timespec ts = { 1, 0 };
	int i, status, sig;

	for (;;) {
		sig = sigtimedwait(set, NULL, &ts);
		if (sig > 0 && sig != SIGHUP)
			return 0;
		for (i = 0; i < n; i++) {
			if (kids[i].pid <= 0 || waitpid(kids[i].pid, &status,
			    WNOHANG) != kids[i].pid)
				continue;
			log_warnx("%s exited (status %d); restarting it",
			    kids[i].what, WIFEXITED(status) ? WEXITSTATUS(status) :
			    128 + WTERMSIG(status));
			if (util_mono_ms() - kids[i].started > 60000)
				kids[i].restarts = 0;
			if (++kids[i].restarts > 5) {
				log_error("%s keeps failing; giving up", kids[i].what);
				kids[i].pid = 0;
				return 1;
			}
			util_sleep_ms(500);
			up_spawn(&kids[i]);
		}
	}
}

/* One cvirt up per data directory: a second one started a second agent
 * for the same host, its lease keeper and QMP clients of the first one's
 * VMs. The lock lasts as long as this process (O_CLOEXEC: the children
 * do not hold it). Returns the locked fd, or -1 after one line. */
static int
up_lock(const char *data)
{
	char path[PATH_MAX];
	int fd = -1;

	if (util_fmt(path, sizeof(path), "%s/up.lock", data) < 0 ||
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_error("cannot open %s/up.lock: %s", data, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_error(errno == EWOULDBLOCK ? "%s is in use by another cvirt "
		    "up" : "cannot lock %s", data);
		close(fd);
		return -1;
	}
	return fd;
}

int
up_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "accel", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char data[PATH_MAX], listen[128] = "127.0.0.1:7480", exe[PATH_MAX];
	char agentdata[PATH_MAX], token[PATH_MAX], storage[PATH_MAX + 8];
	char url[160], alisten[160], name[64], hosturl[300], tok[256];
	char agenturl[220];
	const char *accel = "auto";
	struct up_child kids[2];
	uint64_t port;
	sigset_t set;
	ssize_t n;
	char *colon;
	int c, rc = 1, lockfd;

	memset(kids, 0, sizeof(kids));
	if (util_default_data_dir(data, sizeof(data)) < 0)
		return 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': snprintf(data, sizeof(data), "%s", optarg); break;
		case 'l': snprintf(listen, sizeof(listen), "%s", optarg); break;
		case 'a': accel = optarg; break;
		case 'h':
			puts("usage: cvirt up [--data DIR] [--listen HOST:PORT] "
			    "[--accel auto|kvm|tcg]");
			return 0;
		default:
			log_error("unknown option %s (see cvirt up --help)",
			    argv[optind - 1]);
			return 2;
		}
	}
	if (strcmp(accel, "auto") != 0 && strcmp(accel, "kvm") != 0 &&
	    strcmp(accel, "tcg") != 0) {
		log_error("--accel wants auto, kvm or tcg");
		return 2;
	}
	colon = strrchr(listen, ':');
	if (colon == NULL || util_parse_u64(colon + 1, 1, 65534, &port) < 0) {
		log_error("--listen wants HOST:PORT");
		return 2;
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0)
		return 1;
	exe[n] = '\0';
	up_host_name(name, sizeof(name));
	if (util_fmt(agentdata, sizeof(agentdata), "%s/agent", data) < 0 ||
	    util_fmt(token, sizeof(token), "%s/admin.token", data) < 0 ||
	    util_fmt(storage, sizeof(storage), "local=%s/storage/local", data) < 0 ||
	    util_fmt(url, sizeof(url), "http://%s", listen) < 0 ||
	    util_fmt(alisten, sizeof(alisten), "%.*s:%llu", (int)(colon - listen),
	    listen, (unsigned long long)port + 1) < 0 ||
	    util_mkdir_p(data, 0700) < 0) {
		log_error("cannot prepare %s", data);
		return 1;
	}
	if ((lockfd = up_lock(data)) < 0)
		return 1;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	kids[0] = (struct up_child){ "manager", { exe, "manager", "--data", data,
	    "--listen", listen, NULL }, 0, 0, 0 };
	kids[1] = (struct up_child){ "agent", { exe, "agent", "--data", agentdata,
	    "--manager", url, "--token-file", token, "--name", name, "--listen",
	    alisten, "--storage", storage, "--accel", (char *)accel,
	    /* One machine: no other host to restart its VMs on, and never a
	     * hardware watchdog armed on a workstation (docs/keeper.md). */
	    "--watchdog", "none", NULL },
	    0, 0, 0 };
	up_spawn(&kids[0]);
	snprintf(hosturl, sizeof(hosturl), "%s/api/v1/health", url);
	if (up_wait_http(&kids[0], hosturl, NULL, NULL, NULL, 15000) < 0 ||
	    util_read_token(token, tok, sizeof(tok)) < 0) {
		log_error("the manager did not come up on %s", listen);
		goto cleanup;
	}
	up_spawn(&kids[1]);
	snprintf(hosturl, sizeof(hosturl), "%s/api/v1/hosts/%s", url, name);
	/* A host the user put into maintenance registers as such. The
	 * manager's record of the host may be from an earlier run (up from
	 * before a restart): the agent itself says when the manager has
	 * taken its key, and until then it refuses the manager's calls. */
	if (up_wait_http(&kids[1], hosturl, tok, "state", "up,maintenance",
	    20000) < 0 || util_fmt(agenturl, sizeof(agenturl),
	    "http://%s/agent/v1/ping", alisten) < 0 ||
	    up_wait_http(&kids[1], agenturl, NULL, "registered", "true",
	    20000) < 0) {
		log_error("the local agent did not register");
		goto cleanup;
	}
	printf("cvirt is up.\n"
	    "  URL:        %s\n"
	    "  token file: %s\n"
	    "  host:       %s (storage \"local\" in %s/storage/local)\n"
	    "Try:  cvirt host list;  cvirt vm create demo --cpus 1 --memory 256 "
	    "--disk 1024\n"
	    "Stop with Ctrl-C (VMs keep running and are re-attached next time).\n",
	    url, token, name, data);
	fflush(stdout);
	rc = up_supervise(kids, 2, &set);
cleanup:
	up_stop(kids, 2);
	close(lockfd);
	return rc;
}
