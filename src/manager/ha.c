/* ha.c - manager high availability on PostgreSQL. The manager holding a
 * session advisory lock on its own connection is the leader and runs the
 * background services (task engine, host monitor, balancer); a standby
 * answers API calls with 503 and tries the lock every HA_POLL_MS. A
 * leader's lock dies with its process or connection, so a standby takes
 * over within a poll interval of a crash. On SQLite there is one manager:
 * it leads at once. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "common/metrics.h"
#include "manager/manager_int.h"

#define HA_POLL_MS	500
/* pg_try_advisory_lock key of the leader lease ("cvirtldr"). */
#define HA_LOCK_KEY	"7167031797307171954"

static PGconn *ha_conn;
static pthread_t ha_thread;
static int ha_thread_on;
static atomic_int ha_leader, ha_quit;
static int (*ha_lead)(void);

int
ha_is_leader(void)
{
	return atomic_load(&ha_leader);
}

/* 1 when the query answers "t", 0 "f", -1 on a connection error. */
static int
ha_bool(const char *sql)
{
	PGresult *res = PQexec(ha_conn, sql);
	int rc = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		rc = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return rc;
}

static void
ha_take_over(void)
{
	log_info("this manager is now the leader");
	atomic_store(&ha_leader, 1);
	/* Agents move to us after the old leader's end: give each host a
	 * full heartbeat timeout from now before calling it down. */
	db_exec("UPDATE hosts SET last_seen = ? WHERE state = 'up'", "i",
	    util_wall_ms());
	event_add("warning", "manager.takeover", NULL, "manager on %s took "
	    "over as the leader", mgr_cfg.listen);
	metrics_count("manager_takeovers", "listen", mgr_cfg.listen);
	if (ha_lead() < 0) {
		log_error("cannot start the leader's services; stopping");
		kill(getpid(), SIGTERM);
	}
}

static void *
ha_loop(void *arg)
{
	int waited, got;

	while (!atomic_load(&ha_quit)) {
		if (PQstatus(ha_conn) != CONNECTION_OK)
			PQreset(ha_conn);
		if (!atomic_load(&ha_leader)) {
			got = ha_bool("SELECT pg_try_advisory_lock(" HA_LOCK_KEY ")");
			if (got == 1)
				ha_take_over();
		} else if (ha_bool("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE "
		    "locktype = 'advisory' AND pid = pg_backend_pid() AND "
		    "granted)") != 1) {
			/* Our lease is gone (connection lost): another manager
			 * may lead now, so this one must stop writing. */
			log_error("lost the leader lock; stopping this manager");
			atomic_store(&ha_leader, 0);
			kill(getpid(), SIGTERM);
			break;
		}
		for (waited = 0; waited < HA_POLL_MS && !atomic_load(&ha_quit);
		    waited += 50)
			usleep(50 * 1000);
	}
	return NULL;
}

int
ha_start(const char *db_url, int (*lead)(void))
{
	ha_lead = lead;
	if (strcmp(db_backend_name(), "postgresql") != 0) {
		atomic_store(&ha_leader, 1);
		return lead();
	}
	ha_conn = PQconnectdb(db_url);
	if (PQstatus(ha_conn) != CONNECTION_OK) {
		log_error("cannot connect to PostgreSQL for the leader lock: %s",
		    PQerrorMessage(ha_conn));
		return -1;
	}
	log_info("standby until this manager holds the leader lock");
	if (pthread_create(&ha_thread, NULL, ha_loop, NULL) != 0)
		return -1;
	ha_thread_on = 1;
	return 0;
}

/* No take-over after this; the lock is kept until ha_close(). */
void
ha_stop(void)
{
	atomic_store(&ha_quit, 1);
	if (ha_thread_on)
		pthread_join(ha_thread, NULL);
	ha_thread_on = 0;
}

/* After the leader's services have stopped: a standby may take over. */
void
ha_close(void)
{
	PQfinish(ha_conn);
	ha_conn = NULL;
	atomic_store(&ha_leader, 0);
}

int
ha_auth(struct httpd_req *r, int min_role)
{
	/* Metrics stay readable so monitoring sees which manager leads. */
	if (!atomic_load(&ha_leader) && strcmp(r->path, "/metrics") != 0) {
		httpd_reply_error(r, 503, "this manager is a standby; ask the "
		    "leader");
		return 503;
	}
	return auth_check(r, min_role);
}
