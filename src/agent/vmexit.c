/* vmexit.c - how the agent learns that a VM's QEMU has ended: its pidfd,
 * never "a signal was sent" or "the leader is a zombie" (a thread stuck in
 * storage I/O outlives both, with writes in flight).
 *
 * Each running VM has a monitor thread that reads QMP events and polls the
 * pidfd; it does no storage I/O (a hung domain must not stop it). A QEMU
 * that has been killed (by us, by the keeper, by anyone) but does not exit
 * within VMEXIT_KILL_WAIT_MS is reported "unknown" ("QEMU pid N does not
 * exit (uninterruptible I/O)"): it stays in the table and no exit is
 * recorded, so the manager starts no second copy, until the pidfd says the
 * last thread is gone (docs/ha.md). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"
#include "qemu/qmp.h"

#define VMEXIT_QUIT_MS	5000	/* QMP closed: QEMU exits by itself */
#define VMEXIT_LOG_MS	60000	/* "still does not exit" that often */
#define VMEXIT_LOOK_MS	250	/* a kill is noticed that soon (/proc) */

/* 1 when pid runs another program than the QEMU of vm: a command line
 * that reads, without -uuid vm->uuid. One that is empty or unreadable (a
 * zombie leader whose threads are still in I/O) may still be it: 0. */
static int
vmexit_other(struct avm *vm)
{
	char path[64], *buf;
	size_t len = 0;

	if (vm->child || util_pid_has_arg(vm->pid, vm->uuid))
		return 0;	/* an unreaped child's pid cannot be reused */
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)vm->pid);
	if ((buf = util_read_file(path, 1 << 20, &len)) == NULL)
		return 0;
	free(buf);
	return len > 0;
}

/* A pidfd on vm->pid, checked (after the open: the pid cannot be reused
 * meanwhile) not to run another program; -1 with errno ESRCH when there
 * is no such QEMU any more. */
static int
vmexit_open(struct avm *vm)
{
	int fd;

	if ((fd = util_pidfd_open(vm->pid)) < 0)
		return -1;
	if (util_pidfd_exited(fd, 0) == 0 && vmexit_other(vm)) {
		close(fd);
		errno = ESRCH;
		return -1;
	}
	return fd;
}

int
vmexit_kill(struct avm *vm, int sig)
{
	int fd, rc;

	if (vm->pidfd >= 0)
		return util_pidfd_kill(vm->pidfd, sig);
	if (vm->child)		/* not reaped: its pid cannot be reused */
		return kill(vm->pid, sig);
	/* No pidfd (an adopted QEMU's could not be opened): one for now. */
	if ((fd = vmexit_open(vm)) < 0)
		return -1;
	rc = util_pidfd_kill(fd, sig);
	close(fd);
	return rc;
}

int
vmexit_gone(struct avm *vm, int64_t ms)
{
	int gone;

	/* Our child without a pidfd (none could be opened): wait() reaps a
	 * leader only once its whole thread group has exited. */
	if (vm->child && vm->pidfd < 0) {
		int64_t deadline = util_mono_ms() + ms;
		pid_t r;

		while ((r = waitpid(vm->pid, NULL, WNOHANG)) == 0 &&
		    util_mono_ms() < deadline)
			util_sleep_ms(20);
		return r == vm->pid || (r < 0 && errno == ECHILD);
	}
	/* Only the VM's owner thread (starter, attach thread, monitor) gets
	 * here: it alone may set vm->pidfd. */
	if (vm->pidfd < 0 && (vm->pidfd = vmexit_open(vm)) < 0) {
		if (errno != ESRCH) {	/* EMFILE...: it may live, wait */
			util_sleep_ms(ms);
			return 0;
		}
		gone = 1;
	} else {
		gone = util_pidfd_exited(vm->pidfd, (int)ms) == 1;
	}
	/* Our child: reap it (no zombie left; nothing else waits for it). */
	if (gone && vm->child)
		(void)waitpid(vm->pid, NULL, WNOHANG);
	return gone;
}

/* Killed but not exited in time: "unknown" with the reason, once. */
static void
vmexit_unexited(struct avm *vm)
{
	int first;

	pthread_mutex_lock(&vm->lock);
	first = strcmp(vm->unknown_reason, "") == 0 ||
	    strstr(vm->unknown_reason, "does not exit") == NULL;
	snprintf(vm->state, sizeof(vm->state), "unknown");
	snprintf(vm->unknown_reason, sizeof(vm->unknown_reason), "QEMU pid %d "
	    "does not exit (uninterruptible I/O)", (int)vm->pid);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	if (first) {
		log_warnx("vm %s: QEMU pid %d was killed but does not exit "
		    "(uninterruptible I/O): reported unknown until it does",
		    vm->name, (int)vm->pid);
		report_kick();
	}
}

void
vmexit_stop_failed(struct avm *vm, char *err, size_t errsz)
{
	vmexit_unexited(vm);
	snprintf(err, errsz, "QEMU pid %d of VM %s does not exit "
	    "(uninterruptible I/O): it stays unknown until it does",
	    (int)vm->pid, vm->name);
}

/* The keeper killed QEMUs on one of vm's domains moments ago (its status
 * says that domain's lease failed). Asked now, not from the status of
 * the last 100 ms: the keeper marks the domain fencing before its kill,
 * so only a status asked after the exit is sure to say so (a cached
 * "late" made a fence "QEMU exited unexpectedly"). */
static int
vmexit_fenced_recently(struct avm *vm)
{
	int i;

	for (i = 0; i < agent_cfg.nstorage; i++)
		if ((vm->domains & (1u << i)) &&
		    !lease_storage_ok(agent_cfg.storage[i].name, 1))
			return 1;
	return 0;
}

/* Why an incoming QEMU ended, from its log: up to two errors QEMU printed
 * right before its last "load of migration failed" (the cause), else that
 * line. -1 when the log says nothing of the kind. */
static int
vmexit_incoming_reason(struct avm *vm, char *out, size_t outsz)
{
	static const char pfx[] = "qemu-system-x86_64: ";
	char log[PATH_MAX], *buf = NULL, *lines[3] = { NULL, NULL, NULL };
	char *line, *end, *load = NULL, *cause[2] = { NULL, NULL };
	size_t len;
	int rc = -1;

	if (util_fmt(log, sizeof(log), "%s/logs/%s.log", agent_cfg.data,
	    vm->uuid) < 0 || (buf = util_read_file(log, 1 << 20, &len)) == NULL)
		return -1;
	for (line = buf; line < buf + len; line = end + 1) {
		if ((end = strchr(line, '\n')) == NULL)
			end = buf + len;
		*end = '\0';
		if (strncmp(line, pfx, sizeof(pfx) - 1) != 0 ||
		    strstr(line, "warning") != NULL)
			line = NULL;
		else
			line += sizeof(pfx) - 1;
		if (line && strncmp(line, "load of migration failed", 24) == 0) {
			load = line;
			cause[0] = lines[1];
			cause[1] = lines[2];
		}
		lines[0] = lines[1];
		lines[1] = lines[2];
		lines[2] = line;
	}
	if (load != NULL) {
		if (cause[0] && cause[1])
			snprintf(out, outsz, "%s; %s", cause[0], cause[1]);
		else
			snprintf(out, outsz, "%s", cause[1] ? cause[1] :
			    cause[0] ? cause[0] : load);
		rc = 0;
	}
	free(buf);
	return rc;
}

static void vmexit_end(struct avm *vm, int64_t dying_since);

/* QMP events and the pidfd until QEMU has exited (or QMP closed). */
static void *
vmexit_monitor(void *arg)
{
	struct avm *vm = arg;
	int64_t last_check = 0, dying_since = 0, now;
	struct pollfd pfd[2];
	int n;

	pfd[0].fd = vm->qmp ? qmp_fd(vm->qmp) : -1;	/* < 0: ignored */
	pfd[0].events = POLLIN;
	pfd[1].events = POLLIN;
	for (;;) {
		if (vm->pidfd < 0 && vmexit_gone(vm, 0))
			break;
		pfd[1].fd = vm->pidfd;
		pfd[0].revents = pfd[1].revents = 0;
		n = poll(pfd, 2, VMEXIT_LOOK_MS);
		if (n > 0 && (pfd[1].revents & (POLLIN | POLLHUP))) {
			/* Every thread of QEMU has exited. What it sent
			 * before (SHUTDOWN: a guest's poweroff is a clean
			 * stop) is still in the socket when both are
			 * readable at once: read it first. */
			if (vm->qmp)
				(void)qmp_dispatch_events(vm->qmp);
			break;
		}
		if (n > 0 && pfd[0].revents) {
			if (qmp_dispatch_events(vm->qmp) < 0)
				break;
			/* While a command is in flight its thread reads
			 * the socket (and our events): don't spin on it. */
			util_sleep_ms(5);
		}
		now = util_mono_ms();
		if (now - last_check >= VMEXIT_LOOK_MS) {
			/* Killed (by the keeper, by a stop...) and still
			 * not gone: a thread stuck in storage I/O. Its
			 * QMP socket stays open as long as that thread. */
			last_check = now;
			if (dying_since == 0 && util_pid_dying(vm->pid))
				dying_since = now;
			if (dying_since && now - dying_since >=
			    VMEXIT_KILL_WAIT_MS)
				vmexit_unexited(vm);
		}
	}
	vmexit_end(vm, dying_since);
	return NULL;
}

/* QEMU has exited or its QMP closed: dying_since is when it was first
 * seen killed (0: not seen). Nothing counts as gone but the pidfd: a QEMU
 * that does not exit stays (unknown) until it does. */
static void
vmexit_end(struct avm *vm, int64_t dying_since)
{
	const char *state, *reason = NULL;
	char why[256];
	int64_t left;

	if (dying_since == 0 && util_pid_dying(vm->pid))
		dying_since = util_mono_ms();
	/* QMP closed: QEMU exits by itself, or is killed. */
	if (!vmexit_gone(vm, dying_since ? 0 : VMEXIT_QUIT_MS)) {
		if (dying_since == 0) {
			log_warnx("vm %s: QMP closed but pid %d lives; "
			    "killing it", vm->name, (int)vm->pid);
			if (vmexit_kill(vm, SIGKILL) < 0 && errno != ESRCH)
				log_warn("vm %s: SIGKILL", vm->name);
			dying_since = util_mono_ms();
		}
		left = dying_since + VMEXIT_KILL_WAIT_MS - util_mono_ms();
		if (!vmexit_gone(vm, left > 0 ? left : 0)) {
			vmexit_unexited(vm);
			while (!vmexit_gone(vm, VMEXIT_LOG_MS))
				log_warnx("vm %s: QEMU pid %d still does not "
				    "exit", vm->name, (int)vm->pid);
			log_info("vm %s: QEMU pid %d has exited at last",
			    vm->name, (int)vm->pid);
		}
	}
	nic_release(vm);	/* its TAPs: QEMU has ended for good here */
	pthread_mutex_lock(&vm->lock);
	if (vm->fail_reason[0] && !vm->migrated) {
		state = "failed";
		reason = vm->fail_reason;
	} else if (vm->migrated)
		state = "migrated";
	else if (vm->incoming)
		state = "incoming-failed";
	else if (vm->clean_shutdown || vm->stop_requested)
		state = "stopped";
	else
		state = "failed";
	pthread_mutex_unlock(&vm->lock);
	log_info("vm %s: QEMU pid %d exited (%s)", vm->name, (int)vm->pid, state);
	if (strcmp(state, "incoming-failed") == 0 &&
	    vmexit_incoming_reason(vm, why, sizeof(why)) == 0)
		reason = why;
	if (reason == NULL && strcmp(state, "failed") == 0)
		reason = vmexit_fenced_recently(vm) ? "fenced: the storage lease "
		    "could not be renewed" : "QEMU exited unexpectedly";
	vmhost_record_exit(vm, state, reason ? reason : state);
	pthread_mutex_lock(&vm->lock);
	vm->exited = 1;
	snprintf(vm->state, sizeof(vm->state), "%s", state);
	vm->unknown_reason[0] = '\0';
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vmhost_remove(vm);
	serialcopy_kick();	/* its last serial output to storage */
	report_kick();
	vmhost_put(vm);		/* the caller's (monitor's) own reference */
}

/* QEMU has exited or its QMP closed (agent_int.h). */
void
vmexit_ended(struct avm *vm)
{
	vmexit_end(vm, 0);
}

int
vmexit_monitor_start(struct avm *vm)
{
	pthread_attr_t attr;
	int rc;

	pthread_mutex_lock(&vm->lock);
	vm->refs++;
	pthread_mutex_unlock(&vm->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&vm->monitor, &attr, vmexit_monitor, vm);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		vmhost_put(vm);
		return -1;
	}
	vm->monitor_started = 1;
	return 0;
}
