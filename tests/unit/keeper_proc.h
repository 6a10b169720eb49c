/* keeper_proc.h - real `cvirt keeper` processes for unit tests (test_keeper.c,
 * test_klegacy.c): a data directory with two domains d0 and d1, stand-in
 * QEMUs (the test binary re-executed with "-uuid U"), a stand-in of the
 * keeper of cvirt before issue 14 (src/agent/lease.c then), and storage
 * that hangs (the lease file replaced by a FIFO, whose open() never
 * returns). Every process dies with the test (PR_SET_PDEATHSIG). */
#ifndef CVIRT_KEEPER_PROC_H
#define CVIRT_KEEPER_PROC_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/util.h"

/* The process tests' timing: fast, still valid (keeper_timing_check). */
#define KP_R	100
#define KP_F	1500
#define KP_K	250
#define KP_W	1000

struct kp {
	char	base[64];
	char	data[128], run[128], d[2][128], sock[160], wdsock[160];
	pid_t	keeper;
	int	wd;		/* the watchdog stand-in's socket, or -1 */
	pid_t	vm[2];
	char	uuid[2][UTIL_UUID_LEN + 1];
	pid_t	legacy;		/* the old keeper's stand-in, or 0 */
};

/* First thing in main(): runs a stand-in, or the keeper the agent's code
 * spawns (`keeper --data D`), when argv asks for one (never returns
 * then); else remembers this binary's path. */
void	 kp_child(int argc, char **argv);
void	 kp_mkdir(const char *p);
/* A stand-in QEMU: this binary with "-uuid U" on its command line. */
pid_t	 kp_standin(const char *uuid);
/* One control request (printf format); fails the test without a reply. */
json_t	*kp_call(struct kp *k, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* The state word of domain d<i> in the keeper's status. */
const char *kp_domstate(struct kp *k, int i);
/* The directories and keeper.conf (watchdog "unix" for a stand-in socket
 * k->wd, or "none"; direct: the domains' "direct"), no process. */
void	 kp_setup(struct kp *k, const char *watchdog, int direct);
/* Two stand-in QEMUs, k->vm[i] on d<i>, with their DATA/vms records. */
void	 kp_vms(struct kp *k);
/* kp_setup, a keeper (as uid when uid > 0) with both domains ok, and two
 * stand-in QEMUs guarded through vm_add. */
void	 kp_start(struct kp *k, const char *watchdog, int direct, uid_t uid);
/* A keeper process on data (dies with this test). */
pid_t	 kp_keeper(const char *data);
/* Wait up to ms for the keeper's socket to answer status. 0 or -1. */
int	 kp_wait_sock(struct kp *k, int64_t ms);
/* Also the teardown of a failed test: nothing of it stays. */
void	 kp_stop(struct kp *k);
/* Storage of d<i> hangs for ever: any (re)open of its lease blocks. */
int64_t	 kp_hang(struct kp *k, int i);
/* The seq of d<i>'s lease record. */
int64_t	 kp_seq(struct kp *k, int i);
/* Hang d0 and check its whole fence: its QEMU dies within F + T of the
 * hang (not before F - K - R), d1 renews on and keeps its QEMU, d0 ends
 * fenced. */
void	 kp_fence_hung(struct kp *k);
/* Pets received by the watchdog stand-in within ms; kp_drain: forget. */
int	 kp_pets(struct kp *k, int64_t ms);
void	 kp_drain(struct kp *k);

/* The old keeper's stand-in (what cvirt before issue 14 forked from its
 * agent, src/agent/lease.c: keeper_loop), for data with d0 and d1: named
 * cvirt-keeper, it renews DOMAIN/leases/h1.json by rename each round and
 * then writes data/keeper.status by rename. mode: "ok"; "fixed-mtime"
 * (each status file dated 2001, as after a wall clock step); "stale-d0"
 * (its renewals of d0 fail: not renewed for 10 s and counting); "silent"
 * (one status, then its round hangs: no more, deaf to SIGTERM);
 * "last-round" (exits right after its second status).
 * other_data: the --data on its command line (its agent's); NULL: data.
 * Writes data/keeper.pid (as the old agent did) and returns once its
 * first status is written. */
pid_t	 kp_legacy(struct kp *k, const char *mode, const char *other_data);
/* Wait until data/keeper.status is replaced (a round ended). */
void	 kp_legacy_round(struct kp *k);

#endif
