/* keeper.h - the lease keeper process (`cvirt keeper`): its decision state,
 * the per-domain I/O threads and the watchdog (docs/keeper.md). */
#ifndef CVIRT_KEEPER_H
#define CVIRT_KEEPER_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

#define KEEPER_MAX_DOMAINS	16	/* AGENT_MAX_STORAGE */
#define KEEPER_MAX_VMS		512
#define KEEPER_TICK_MS		100	/* T: the decision loop's period */
#define KEEPER_KILL_GRACE_MS	250	/* K: SIGKILL at last_ok + F - K */
#define KEEPER_RECORD_SIZE	4096	/* one lease record, O_DIRECT-aligned */
#define KEEPER_COMM		"cvirt-keeper"
/* Taking over from an older version's keeper (klegacy.c): how long to
 * watch it for a renewal, and to wait for it to end. */
#define KEEPER_LEGACY_SEE_MS	3000
#define KEEPER_LEGACY_STOP_MS	1000

/* Domain states (the "state" word of status in parentheses). */
enum kd_state {
	KD_OK,		/* renewed within 2R ("ok") */
	KD_LATE,	/* not renewed for more than 2R ("late") */
	KD_FENCING,	/* its QEMUs were sent SIGKILL ("fencing") */
	KD_FENCED,	/* every one of them is confirmed gone ("fenced") */
	KD_UNCONFIRMED,	/* not confirmed by last_ok + F: no pets ("unconfirmed") */
};

/* Timing, one set per keeper (docs/keeper.md, docs/ha.md). */
struct ktiming {
	int64_t	renew_ms;	/* R */
	int64_t	fence_ms;	/* F */
	int64_t	kill_grace_ms;	/* K */
	int64_t	tick_ms;	/* T */
	int64_t	watchdog_ms;	/* W */
};

/* What the decision loop knows of one domain. Inputs (io_*) are copied
 * from the domain's I/O thread before each keeper_decide(). */
struct kdstate {
	char	name[UTIL_NAME_MAX + 1];
	int	direct;		/* QEMU's disks bypass the page cache */
	int	state;		/* enum kd_state */
	int64_t	last_ok;	/* start of the last counted renewal (mono ms) */
	int64_t	fence_at;	/* when its kill was decided */
	int64_t	exit_max;	/* latest exit seen of a QEMU it killed */
	int64_t	sync_req;	/* a syncfs was asked for at this time, or 0 */
	int64_t	hold_until;	/* leave mode: no kill before this (mono ms) */
	/* inputs */
	int64_t	io_last_ok;	/* counted renewal start (I/O thread's rule) */
	int64_t	io_last_done;	/* start of the latest completed renewal */
	int64_t	io_sync_done;	/* start of the latest completed syncfs */
};

/* One guarded QEMU. */
struct kvm {
	char		uuid[UTIL_UUID_LEN + 1];
	pid_t		pid;
	int		pidfd;
	uint32_t	mask;		/* bit i: its disks or files on domain i */
	int64_t		killed_at;	/* SIGKILL sent at, or 0 */
	int		exited;		/* input: its pidfd is readable */
};

struct kstate {
	struct ktiming	t;
	int		ndom;
	struct kdstate	dom[KEEPER_MAX_DOMAINS];
	int		nvm;
	struct kvm	vm[KEEPER_MAX_VMS];
	int		watchdog;	/* 1: a watchdog backend is armed */
	int64_t		last_pet;
	int64_t		tick_late;	/* input: this tick's lateness */
};

/* What keeper_decide asks for; the loop carries it out. */
struct kacts {
	int		nkill;
	int		kill[KEEPER_MAX_VMS];	/* indexes into vm[] */
	uint32_t	revive;		/* bit i: I/O thread's last_ok := dom.last_ok */
	uint32_t	sync;		/* bit i: post a syncfs to domain i */
	uint32_t	changed;	/* bit i: its state changed this tick */
	int		pet;
};

/* kmain.c: the process */
int	 keeper_main(int argc, char **argv);
/* The agent's and the keeper's start-up check of R, F, K and W
 * (docs/keeper.md); -1 with the arithmetic in err. */
int	 keeper_timing_check(const struct ktiming *t, char *err, size_t errsz);

/* keeper.c: the decision */
/* A predecessor's entry of RUN/keeper.state (its state and last_ok) into
 * d, which starts fenced: only a plausible one is taken (last_ok neither
 * in the future nor before boot, a known state), so a torn or corrupt
 * file errs towards the kill. 0 taken, -1 not. */
int	 keeper_state_take(struct kdstate *d, int32_t state, int64_t last_ok,
	    int64_t now);
/* The whole decision for one tick at monotonic `now`: no I/O, no clock.
 * Removes exited VMs from s (closing nothing: their pidfds are put in
 * closed[] for the caller, *nclosed of them). */
void	 keeper_decide(struct kstate *s, int64_t now, struct kacts *out,
	    int *closed, int *nclosed);
const char *keeper_state_name(int state);
/* The 4096-byte lease record (docs/keeper.md) into buf. */
int	 keeper_record(char *buf, size_t size, const char *host, int64_t seq,
	    const char *boot, const char *fence, const struct ktiming *t,
	    int64_t wall);

/* kdomain.c: one I/O thread per domain; only it touches the storage. */
struct kdom {
	char		name[UTIL_NAME_MAX + 1];
	char		path[PATH_MAX];
	char		lease[PATH_MAX];	/* DOMAIN/leases/HOST.json */
	char		host[UTIL_NAME_MAX + 1];
	const char	*boot;
	const char	*fence;
	struct ktiming	t;

	pthread_mutex_t	lock;		/* never held across I/O */
	pthread_cond_t	cond;		/* monotonic */
	int64_t		last_ok;	/* counted renewal start */
	int64_t		last_done;	/* latest completed renewal start */
	int64_t		last_fail;	/* latest failed renewal end */
	int64_t		hold_until;	/* leave mode: kdom_counted */
	char		error[160];	/* why the last renewal failed */
	int64_t		sync_req;	/* syncfs wanted (time asked) */
	int64_t		sync_done;	/* start of the latest completed syncfs */
	int64_t		seq;
	int		direct;		/* lease file opened O_DIRECT */
	int		quit;		/* stop renewing; remove_lease: unlink */
	int		remove_lease;
	int		done;		/* the thread has finished */
};

/* A renewal that completed at done counts (moves last_ok) only when it
 * completed before the kill time of the one before it, last_ok + F - K:
 * a late success revives no VM. Or, in leave mode, before hold_until (the
 * kill held since then, nothing killed: the manager, which restarts only
 * a host it has not heard for H, has restarted nothing), unless no
 * renewal was ever counted (last_ok 0). */
int	 kdom_counted(const struct ktiming *t, int64_t last_ok, int64_t done,
	    int64_t hold_until);
/* Its lock and (monotonic) condition, once, before anything uses d. */
int	 kdom_init(struct kdom *d);
/* Start d's thread (detached: a hung write blocks only it). */
int	 kdom_start(struct kdom *d);
/* Ask it to stop; with remove, it unlinks the lease after its last
 * renewal. Returns 1 once it finished within timeout_ms, else 0. */
int	 kdom_stop(struct kdom *d, int remove, int64_t timeout_ms);

/* watchdog.c: the device, the test stand-in, or none (kill-only). */
enum wd_kind { WD_NONE, WD_DEVICE, WD_UNIX };
struct wd {
	int	kind;
	int	fd;
	int	timeout_ms;
	char	spec[PATH_MAX];
	char	path[PATH_MAX];		/* device, or the stand-in's socket */
};
/* spec: "auto" (/dev/watchdog if it opens, else none), "none", a device
 * path, or "unix:PATH". 0 (w->kind says what) or -1 with one line in err. */
int	 wd_open(struct wd *w, const char *spec, int timeout_ms, char *err,
	    size_t errsz);
int	 wd_pet(struct wd *w);
/* Stop the timer (only when the host leaves on purpose) and close. */
void	 wd_disarm(struct wd *w);
/* Close without disarming: the timer keeps running. */
void	 wd_close(struct wd *w);
/* "watchdog" or "kill-only". */
const char *wd_fence(const struct wd *w);

/* kmain.c: the keeper process's state, owned by the decision loop's
 * thread (kmain.c, kctl.c); the scan queue has its own lock. */
#define KEEPER_MSG_MAX		4096
#define KEEPER_MAX_CONNS	16
#define KEEPER_CONN_MS		1000	/* a client that sends nothing */
#define KEEPER_QUEUE		64

/* RUN/keeper.state (mmap'd, 4096 bytes): what a successor keeper of the
 * same boot needs, and how this one ended (read by the agent). */
#define KEEPER_STATE_MAGIC	"cvkeep1"
struct kfile {
	char	magic[8];
	char	boot[40];
	uint32_t ndom;
	uint32_t pad;
	struct {
		char	name[UTIL_NAME_MAX + 1];
		int64_t	last_ok;
		int64_t	seq;
		int32_t	state;
		int32_t	pad;
	} dom[KEEPER_MAX_DOMAINS];
	int32_t	pid;		/* the keeper that writes it */
	int32_t	exited;		/* 1: it ended by itself, with status */
	int32_t	status;
	int32_t	pad2;
};

struct kfound {
	char		uuid[UTIL_UUID_LEN + 1];
	pid_t		pid;
	int		pidfd;
	uint32_t	mask;
};

struct kproc {
	char		data[PATH_MAX];
	char		run[PATH_MAX];
	char		host[UTIL_NAME_MAX + 1];
	char		wdspec[PATH_MAX];
	char		hash[UTIL_HASH_LEN + 1];
	char		boot[40];
	struct kstate	s;
	struct kdom	dom[KEEPER_MAX_DOMAINS];
	struct wd	wd;
	struct kfile	*file;
	int64_t		start;
	int64_t		tick_late_max;
	int		lock_fd;
	int		listen_fd;
	int		conns[KEEPER_MAX_CONNS];
	int64_t		conn_at[KEEPER_MAX_CONNS];
	int		stop;		/* the host leaves: remove leases */
	int		quit;
	/* the records scan hands its finds over here */
	pthread_mutex_t	qlock;
	struct kfound	queue[KEEPER_QUEUE];
	int		nqueue;
};
extern struct kproc kproc;

int	 keeper_dom_index(const char *name);
/* Renewal times and states into RUN/keeper.state (memory stores). */
void	 keeper_state_save(void);
/* A pidfd on pid, only when it runs the QEMU of uuid (checked after the
 * pidfd is open: no pid-reuse race); -1 otherwise. */
int	 keeper_vm_open(const char *uuid, pid_t pid);
int	 keeper_vm_find(const char *uuid);
/* Guard a QEMU (its pidfd taken over); -1 when the table is full. */
int	 keeper_vm_insert(const struct kfound *f);

/* klegacy.c: the first start after an upgrade */
/* From the old keeper's DATA/keeper.status text, seen replaced after
 * monotonic `before`: a lower bound of the start of its last renewal of
 * domain. 0, or -1 when the text does not say (then no bound). */
int	 klegacy_bound(const char *status, const char *domain, int64_t before,
	    int64_t *last_ok);
/* With an old keeper of DATA running: watch it for each domain's latest
 * renewal (up to KEEPER_LEGACY_SEE_MS), take those times over, save them,
 * then stop it (up to KEEPER_LEGACY_STOP_MS). Removes its files. */
void	 keeper_legacy_takeover(void);

/* kctl.c: the control socket */
int	 keeper_listen(char *err, size_t errsz);
void	 keeper_accept(void);
/* Answer the request waiting on fd, then close it (not yet sent: kept). */
void	 keeper_serve(int fd);

#endif
