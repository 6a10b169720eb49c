/* health.c - HA monitors that look into the guest: the guest agent
 * heartbeat (--ha-monitor heartbeat) and a TCP check of a guest port
 * (tcp:PORT), one thread per VM that has one; and the devices each
 * monitor needs (the watchdog's too).
 *
 * A VM counts misses only once its guest has answered since QEMU started
 * or the guest last rebooted, so a slow boot (or a service that is not up
 * yet) is no failure. ha_monitor_misses misses in a row while the VM runs
 * end its QEMU the way a fired watchdog does (vmhost_fail); the manager
 * then restarts it like any failed HA VM. The thread never holds vm->lock
 * across I/O. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qga.h"
#include "qemu/qmp.h"

#define HEALTH_POLL_MS	50	/* between looks at a TCP probe's progress */

/* From the manager's replies (cluster settings); report.c sets them. */
static atomic_int health_interval_ms = HEALTH_INTERVAL_DEF;
static atomic_int health_misses = HEALTH_MISSES_DEF;

void
health_settings(int interval_ms, int misses)
{
	if (interval_ms >= HEALTH_INTERVAL_MIN &&
	    interval_ms <= HEALTH_INTERVAL_MAX)
		atomic_store(&health_interval_ms, interval_ms);
	if (misses >= 1 && misses <= HEALTH_MISSES_MAX)
		atomic_store(&health_misses, misses);
}

/* HEALTH_NONE, HEALTH_HEARTBEAT, or HEALTH_TCP with the guest port. */
int
health_kind(const char *monitor, int *port)
{
	uint64_t p;

	*port = 0;
	if (strcmp(monitor, "heartbeat") == 0)
		return HEALTH_HEARTBEAT;
	if (strncmp(monitor, "tcp:", 4) == 0 &&
	    util_parse_u64(monitor + 4, 1, 65535, &p) == 0) {
		*port = (int)p;
		return HEALTH_TCP;
	}
	return HEALTH_NONE;
}

/* A loopback port nobody listens on now, for QEMU's hostfwd. */
static int
health_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* The spec's IPv4 address of the NIC with this MAC, or NULL. */
static const char *
health_nic_ip(json_t *spec, const char *mac)
{
	struct in_addr a;
	const char *ip;
	json_t *n;
	size_t i;

	json_array_foreach(json_object_get(spec, "nics"), i, n) {
		const char *m = json_string_value(json_object_get(n, "mac"));

		ip = json_string_value(json_object_get(n, "ip"));
		if (m && strcasecmp(m, mac) == 0 && ip &&
		    inet_pton(AF_INET, ip, &a) == 1)
			return ip;
	}
	return NULL;
}

int
health_qemu_spec(struct avm *vm, json_t *spec, struct qemu_vm_spec *q,
    char *err, size_t errsz)
{
	int kind = health_kind(vm->ha_monitor, &vm->health_port), i;
	const char *ip;

	vm->qga_path[0] = vm->health_addr[0] = '\0';
	vm->fwd_port = 0;
	/* The i6300esb that raises QMP WATCHDOG (vmhost.c ends the VM). */
	q->watchdog = strcmp(vm->ha_monitor, "watchdog") == 0;
	if (kind == HEALTH_HEARTBEAT) {
		/* The guest agent's port, a unix socket next to QMP's. */
		if (util_fmt(vm->qga_path, sizeof(vm->qga_path), "%s/%.8s.qga",
		    agent_cfg.run, vm->uuid) < 0) {
			snprintf(err, errsz, "path too long for VM %s", vm->name);
			return -1;
		}
		(void)unlink(vm->qga_path);
		snprintf(q->qga_path, sizeof(q->qga_path), "%s", vm->qga_path);
		return 0;
	}
	if (kind != HEALTH_TCP)
		return 0;
	/* User-mode networking: a loopback port forwarded to the guest's. */
	for (i = 0; i < q->nnics; i++) {
		if (strcmp(q->nics[i].type, "user") != 0)
			continue;
		if ((vm->fwd_port = health_free_port()) < 0 ||
		    util_fmt(q->nics[i].hostfwd, sizeof(q->nics[i].hostfwd),
		    "tcp:127.0.0.1:%d-:%d", vm->fwd_port, vm->health_port) < 0) {
			vm->fwd_port = 0;
			snprintf(err, errsz, "no free local port to forward to "
			    "port %d of VM %s", vm->health_port, vm->name);
			return -1;
		}
		snprintf(vm->health_addr, sizeof(vm->health_addr), "127.0.0.1");
		return 0;
	}
	/* A NIC on a host network: its address, as the spec gives it. */
	for (i = 0; i < q->nnics; i++)
		if ((ip = health_nic_ip(spec, q->nics[i].mac)) != NULL) {
			snprintf(vm->health_addr, sizeof(vm->health_addr), "%s", ip);
			return 0;
		}
	snprintf(err, errsz, "ha_monitor %s needs a user-mode NIC or a NIC "
	    "with an IP address", vm->ha_monitor);
	return -1;
}

void
health_record_save(struct avm *vm, json_t *rec)
{
	pthread_mutex_lock(&vm->lock);
	json_object_set_new(rec, "health", json_pack("{s:s, s:s, s:i, s:i, s:b}",
	    "qga_path", vm->qga_path, "addr", vm->health_addr, "port",
	    vm->health_port, "fwd_port", vm->fwd_port, "armed",
	    vm->health_armed));
	pthread_mutex_unlock(&vm->lock);
}

void
health_record_load(struct avm *vm, json_t *rec)
{
	json_t *h = json_object_get(rec, "health");
	const char *s;
	json_int_t v;

	if ((s = json_string_value(json_object_get(h, "qga_path"))) != NULL)
		snprintf(vm->qga_path, sizeof(vm->qga_path), "%s", s);
	if ((s = json_string_value(json_object_get(h, "addr"))) != NULL)
		snprintf(vm->health_addr, sizeof(vm->health_addr), "%s", s);
	v = json_integer_value(json_object_get(h, "port"));
	vm->health_port = v > 0 && v <= 65535 ? (int)v : 0;
	v = json_integer_value(json_object_get(h, "fwd_port"));
	vm->fwd_port = v > 0 && v <= 65535 ? (int)v : 0;
	vm->health_armed = json_is_true(json_object_get(h, "armed"));
}

static int
health_heartbeat(struct avm *vm, struct qga **g, int timeout_ms, char *why,
    size_t whysz)
{
	if (*g == NULL && (*g = qga_open(vm->qga_path, why, whysz)) == NULL)
		return -1;
	if (qga_ping(*g, timeout_ms, why, whysz) == 0)
		return 0;
	qga_close(*g);		/* a half reply may be left: start afresh */
	*g = NULL;
	return -1;
}

/* QEMU's user-mode stack accepts the loopback connection itself before it
 * asks the guest: whether the guest answered shows only in its connection
 * table (HMP "info usernet"), an ESTABLISHED line from the forward's
 * loopback port to the guest port. (A connection the guest opened itself
 * lists the guest as its source: one to some server's port 80 is no
 * answer of the guest's port 80.) */
static int
health_usernet_established(struct avm *vm, int fwd_port, int port)
{
	json_t *args, *ret = NULL;
	char err[256], state[32], saddr[64], daddr[64];
	const char *text, *line;
	int found = 0, fd, sport, dport;

	args = json_pack("{s:s}", "command-line", "info usernet");
	if (qmp_command(vm->qmp, "human-monitor-command", args, 2000, &ret, err,
	    sizeof(err)) < 0 || (text = json_string_value(ret)) == NULL)
		goto cleanup;
	for (line = text; line && *line && !found; line = strchr(line, '\n'),
	    line = line ? line + 1 : NULL)
		found = sscanf(line, " TCP[%31[^]]] %d %63s %d %63s %d", state,
		    &fd, saddr, &sport, daddr, &dport) == 6 &&
		    strcmp(state, "ESTABLISHED") == 0 && strcmp(saddr,
		    "127.0.0.1") == 0 && sport == fwd_port && dport == port;
cleanup:
	json_decref(args);
	json_decref(ret);
	return found;
}

static int
health_tcp(struct avm *vm, int timeout_ms, char *why, size_t whysz)
{
	int64_t deadline = util_mono_ms() + timeout_ms;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct pollfd pfd = { .events = POLLOUT };
	int fwd = vm->fwd_port > 0, rc = -1, soerr = 0;
	socklen_t len = sizeof(soerr);
	char c;

	sa.sin_port = htons((uint16_t)(fwd ? vm->fwd_port : vm->health_port));
	if (inet_pton(AF_INET, vm->health_addr, &sa.sin_addr) != 1) {
		snprintf(why, whysz, "no address to check");
		return -1;
	}
	if ((pfd.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0) {
		snprintf(why, whysz, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(pfd.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, whysz, "connection refused");
		goto cleanup;
	}
	if (poll(&pfd, 1, timeout_ms) != 1 || getsockopt(pfd.fd, SOL_SOCKET,
	    SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
		snprintf(why, whysz, "%s", soerr == ECONNREFUSED ? "connection "
		    "refused" : soerr ? strerror(soerr) : "no answer");
		goto cleanup;
	}
	if (!fwd) {
		rc = 0;		/* the guest itself accepted */
		goto cleanup;
	}
	/* Through the forward: wait for the guest's own answer. */
	pfd.events = POLLIN;
	while (rc < 0 && util_mono_ms() < deadline) {
		if (poll(&pfd, 1, HEALTH_POLL_MS) == 1) {
			ssize_t n = recv(pfd.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
			if (n > 0) {
				rc = 0;		/* it spoke first */
				break;
			}
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				snprintf(why, whysz, "connection refused");
				goto cleanup;
			}
		}
		if (health_usernet_established(vm, vm->fwd_port,
		    vm->health_port))
			rc = 0;
	}
	if (rc < 0)
		snprintf(why, whysz, "no answer");
cleanup:
	close(pfd.fd);
	return rc;
}

/* Arm or disarm, and keep the agent's record in step (agent restarts). */
static void
health_arm(struct avm *vm, int armed)
{
	int gone;

	pthread_mutex_lock(&vm->lock);
	vm->health_armed = armed;
	gone = vm->exited;	/* its record is gone: do not bring it back */
	pthread_mutex_unlock(&vm->lock);
	if (!gone && vmhost_record_save(vm) < 0)
		log_warn("vm %s: cannot record the health monitor", vm->name);
}

static void *
health_run(void *arg)
{
	struct avm *vm = arg;
	struct qga *g = NULL;
	char why[80], reason[192];
	int kind, port, misses = 0, running, armed;
	int64_t boots;

	kind = health_kind(vm->ha_monitor, &port);
	pthread_mutex_lock(&vm->lock);
	boots = vm->boots;
	pthread_mutex_unlock(&vm->lock);
	for (;;) {
		int interval = atomic_load(&health_interval_ms);
		int timeout = interval / 2 < HEALTH_TIMEOUT_MIN ?
		    HEALTH_TIMEOUT_MIN : interval / 2;
		int ok;

		if (vmhost_wait_exit(vm, interval))
			break;
		pthread_mutex_lock(&vm->lock);
		running = strcmp(vm->state, "running") == 0 && !vm->migrating &&
		    !vm->stop_requested && vm->fail_reason[0] == '\0';
		armed = vm->health_armed;
		if (vm->boots != boots) {
			boots = vm->boots;	/* rebooted: wait for it again */
			armed = -1;
		}
		pthread_mutex_unlock(&vm->lock);
		if (armed < 0) {
			health_arm(vm, 0);
			armed = 0;
		}
		if (!running) {
			misses = 0;
			continue;
		}
		ok = kind == HEALTH_HEARTBEAT ?
		    health_heartbeat(vm, &g, timeout, why, sizeof(why)) :
		    health_tcp(vm, timeout, why, sizeof(why));
		if (ok == 0) {
			if (!armed) {
				log_info("vm %s: %s answers: its HA monitor is "
				    "armed", vm->name, kind == HEALTH_HEARTBEAT ?
				    "the guest agent" : "the guest port");
				health_arm(vm, 1);
			} else if (misses > 0) {
				log_info("vm %s: %s answers again after %d "
				    "miss(es)", vm->name, vm->ha_monitor, misses);
			}
			misses = 0;
			continue;
		}
		if (!armed) {
			log_debug("vm %s: %s: %s (not answered yet)", vm->name,
			    vm->ha_monitor, why);
			continue;
		}
		misses++;
		log_warnx("vm %s: %s miss %d of %d: %s", vm->name,
		    vm->ha_monitor, misses, atomic_load(&health_misses), why);
		if (misses < atomic_load(&health_misses))
			continue;
		if (kind == HEALTH_HEARTBEAT)
			snprintf(reason, sizeof(reason), "guest heartbeat lost: "
			    "the guest agent missed %d pings in a row (%s)",
			    misses, why);
		else
			snprintf(reason, sizeof(reason), "TCP health check of "
			    "guest port %d failed %d times in a row (%s)", port,
			    misses, why);
		vmhost_fail(vm, reason);
		misses = 0;
	}
	qga_close(g);
	vmhost_put(vm);		/* the thread's own reference */
	return NULL;
}

int
health_start(struct avm *vm)
{
	pthread_attr_t attr;
	pthread_t t;
	int port, rc;

	if (health_kind(vm->ha_monitor, &port) == HEALTH_NONE)
		return 0;
	pthread_mutex_lock(&vm->lock);
	vm->refs++;
	pthread_mutex_unlock(&vm->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, health_run, vm);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		vmhost_put(vm);
		return -1;
	}
	return 0;
}
