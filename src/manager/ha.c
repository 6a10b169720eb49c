/* ha.c - manager high availability on PostgreSQL. The manager holding a
 * session advisory lock on its own connection is the leader and runs the
 * background services (task engine, host monitor, balancer); a standby
 * answers API calls with 503 and tries the lock every HA_POLL_MS. A
 * leader's lock dies with its process or connection.
 *
 * Two managers never lead at once. The leader renews a lease every
 * HA_POLL_MS while its session holds the lock: in the table cvirt_leader,
 * until the database server's clock + HA_LEASE_MS; and by its own clock,
 * it leads only while its last successful renewal was sent less than
 * HA_LEASE_MS ago. A manager that gets the lock leads once the server's
 * clock has passed the recorded lease (at once on a first start, or after
 * a clean stop, which ends the lease): by then any old leader, alive but
 * cut off from the database, has stopped acting. Only the server's clock
 * is compared with itself. The lock's session lives only while it is
 * used: the server ends it after HA_LEASE_MS idle (idle_session_timeout),
 * so a leader behind a stalled network loses its lock too, and no lock
 * query waits more than HA_QUERY_MS. A leader that finds its lock gone
 * (or its lock query unanswered) stops with status 1 (systemd restarts it
 * as a standby). On SQLite there is one manager: it leads at once. */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "common/metrics.h"
#include "manager/manager_int.h"

#define HA_POLL_MS	500
/* Six renewals per lease: one may take 2.5 s before the leader pauses
 * (503, no background rounds) until the next one succeeds. */
#define HA_LEASE_MS	3000
/* A lock query unanswered this long: the connection counts as lost. */
#define HA_QUERY_MS	(2 * HA_LEASE_MS)
#define HA_CONNECT_S	"5"
#define HA_STR2(x)	#x
#define HA_STR(x)	HA_STR2(x)
#define HA_NOW_MS	"(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#define HA_HELD		"EXISTS (SELECT 1 FROM pg_locks WHERE locktype = " \
	"'advisory' AND pid = pg_backend_pid() AND granted)"
/* pg_try_advisory_lock key of the leader lease ("cvirtldr"). */
#define HA_LOCK_KEY	"7167031797307171954"

static PGconn *ha_conn;		/* NULL while not connected */
static char ha_url[PATH_MAX];
static pthread_t ha_thread;
static int ha_thread_on;
static atomic_int ha_leader, ha_quit, ha_lost, ha_pg;
/* Monotonic ms at which the leader's last successful lock check was sent. */
static _Atomic int64_t ha_confirmed;
static int (*ha_lead)(void);

int
ha_is_leader(void)
{
	if (!atomic_load(&ha_leader))
		return 0;
	return !atomic_load(&ha_pg) ||
	    util_mono_ms() - atomic_load(&ha_confirmed) < HA_LEASE_MS;
}

int
ha_lost_lock(void)
{
	return atomic_load(&ha_lost);
}

static void
ha_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("postgresql (leader lock): %s", msg);
}

/* The result of sql on ha_conn (the caller clears it), or NULL when the
 * connection is lost or the server has not answered in HA_QUERY_MS: then
 * ha_conn is closed (NULL) and so is the session, with its lock. */
static PGresult *
ha_exec(const char *sql)
{
	int64_t end = util_mono_ms() + HA_QUERY_MS, left;
	PGresult *res = NULL, *r;
	struct pollfd pfd;
	int ok = 0;

	if (ha_conn == NULL)
		return NULL;
	if (!PQsendQuery(ha_conn, sql))
		goto cleanup;
	pfd.fd = PQsocket(ha_conn);
	pfd.events = POLLIN;
	while (PQconsumeInput(ha_conn) && PQisBusy(ha_conn)) {
		if ((left = end - util_mono_ms()) <= 0) {
			log_warnx("the leader lock's database connection has not "
			    "answered in %d ms", HA_QUERY_MS);
			goto cleanup;
		}
		(void)poll(&pfd, 1, (int)(left < 100 ? left : 100));
	}
	while ((r = PQgetResult(ha_conn)) != NULL) {
		PQclear(res);
		res = r;
	}
	ok = res != NULL && PQstatus(ha_conn) == CONNECTION_OK;
cleanup:
	if (!ok) {
		if (PQstatus(ha_conn) != CONNECTION_OK)
			log_warnx("the leader lock's database connection: %s",
			    PQerrorMessage(ha_conn));
		PQclear(res);
		res = NULL;
		PQfinish(ha_conn);
		ha_conn = NULL;
	}
	return res;
}

/* 1 when the query answers "t", 0 "f", -1 on an error. */
static int
ha_bool(const char *sql)
{
	PGresult *res = ha_exec(sql);
	int rc = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		rc = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return rc;
}

/* Rows a statement returned (0 for a command), -1 on an error. */
static int
ha_rows(const char *sql)
{
	PGresult *res = ha_exec(sql);
	int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) :
	    PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;

	if (rc < 0 && res != NULL)
		log_warnx("leader lock: %s", PQresultErrorMessage(res));
	PQclear(res);
	return rc;
}

/* A new session for the lock: 0, or -1 (ha_conn NULL). */
static int
ha_connect(void)
{
	static const char *const keys[] = { "dbname", "connect_timeout",
	    NULL };
	const char *vals[] = { ha_url, HA_CONNECT_S, NULL };

	ha_conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(ha_conn) != CONNECTION_OK) {
		log_warnx("cannot connect to PostgreSQL for the leader lock: %s",
		    PQerrorMessage(ha_conn));
		PQfinish(ha_conn);
		ha_conn = NULL;
		return -1;
	}
	PQsetNoticeProcessor(ha_conn, ha_notice, NULL);
	/* We query every HA_POLL_MS: a session idle for a lease is cut off
	 * from us, and the server ends it, freeing the lock. */
	if (ha_rows("SET idle_session_timeout = " HA_STR(HA_LEASE_MS)) < 0 &&
	    ha_conn != NULL)
		log_warnx("PostgreSQL before 14: a leader behind a stalled "
		    "network keeps the leader lock until the server drops "
		    "its connection");
	return ha_conn != NULL ? 0 : -1;
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

/* While our session holds the lock: the lease runs to the server's clock
 * + HA_LEASE_MS. 1 renewed, 0 the lock is not ours, -1 an error. */
static int
ha_renew(void)
{
	return ha_rows("UPDATE cvirt_leader SET until_ms = " HA_NOW_MS " + "
	    HA_STR(HA_LEASE_MS) " WHERE id = 1 AND " HA_HELD " RETURNING id");
}

/* How long the last leader's lease still runs, in ms (0: over), on the
 * server's clock; -1 on an error. Only the lock holder calls this. */
static int64_t
ha_lease_left(void)
{
	PGresult *res = NULL;
	int64_t left = -1;

	if (ha_rows("CREATE TABLE IF NOT EXISTS cvirt_leader (id INTEGER "
	    "PRIMARY KEY, until_ms BIGINT NOT NULL) ") < 0 ||
	    ha_rows("INSERT INTO cvirt_leader (id, until_ms) VALUES (1, 0) ON "
	    "CONFLICT (id) DO NOTHING") < 0)
		goto cleanup;
	res = ha_exec("SELECT GREATEST(0, until_ms - " HA_NOW_MS ") "
	    "FROM cvirt_leader WHERE id = 1");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		left = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
cleanup:
	PQclear(res);
	return left;
}

/* A standby's round: try the lock; once it is ours, lead when the last
 * leader's lease has run out. *lead_at: 0 without the lock, else when
 * (monotonic ms) we may lead. */
static void
ha_standby_round(int64_t *lead_at)
{
	int64_t left, sent;

	if (*lead_at == 0) {
		if (ha_bool("SELECT pg_try_advisory_lock(" HA_LOCK_KEY ")") != 1)
			return;
		/* An unreadable lease counts as a whole one. */
		if ((left = ha_lease_left()) < 0)
			left = HA_LEASE_MS;
		*lead_at = util_mono_ms() + (left > 0 ? left + 100 : 0);
		if (left > 0)
			log_info("holding the leader lock; the last leader's lease "
			    "runs %lld ms more", (long long)left);
	}
	if (util_mono_ms() < *lead_at) {
		if (ha_bool("SELECT " HA_HELD) != 1) {
			log_warnx("lost the leader lock before leading; standby "
			    "again");
			*lead_at = 0;
		}
		return;
	}
	sent = util_mono_ms();
	if (ha_renew() != 1) {
		log_warnx("cannot take the leader lease");
		*lead_at = 0;
		return;
	}
	atomic_store(&ha_confirmed, sent);
	ha_take_over();
}

static void *
ha_loop(void *arg)
{
	int64_t sent, lead_at = 0;
	int waited;

	(void)arg;
	while (!atomic_load(&ha_quit)) {
		if (atomic_load(&ha_leader)) {
			sent = util_mono_ms();
			if (ha_renew() != 1) {
				/* Our lock is gone (connection lost): another
				 * manager may lead once our lease is over. */
				log_error("lost the leader lock; stopping this "
				    "manager");
				atomic_store(&ha_leader, 0);
				atomic_store(&ha_lost, 1);
				kill(getpid(), SIGTERM);
				break;
			}
			atomic_store(&ha_confirmed, sent);
		} else if (ha_conn != NULL || ha_connect() == 0) {
			ha_standby_round(&lead_at);
		}
		if (ha_conn == NULL)
			lead_at = 0;	/* the lock went with the session */
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
	atomic_store(&ha_pg, 1);
	if (snprintf(ha_url, sizeof(ha_url), "%s", db_url) >=
	    (int)sizeof(ha_url)) {
		log_error("the database URL is too long");
		return -1;
	}
	if (ha_connect() < 0)
		return -1;
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

/* After the leader's services have stopped: a standby may take over, at
 * once (our lease ends here). */
void
ha_close(void)
{
	if (ha_conn != NULL && atomic_load(&ha_leader))
		(void)ha_rows("UPDATE cvirt_leader SET until_ms = 0 WHERE id = 1 "
		    "AND " HA_HELD " RETURNING id");
	PQfinish(ha_conn);
	ha_conn = NULL;
	atomic_store(&ha_leader, 0);
}

int
ha_auth(struct httpd_req *r, int min_role)
{
	/* Metrics stay readable so monitoring sees which manager leads. */
	if (!ha_is_leader() && strcmp(r->path, "/metrics") != 0) {
		httpd_reply_error(r, 503, "this manager is a standby; ask the "
		    "leader");
		return 503;
	}
	return auth_check(r, min_role);
}
