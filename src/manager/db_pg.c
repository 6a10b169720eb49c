/* db_pg.c - the PostgreSQL inventory backend (libpq): one connection,
 * serialised by db.c; "?" placeholders become $n, results map to the same
 * JSON rows as SQLite's (integers, NULL, text). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "manager/db_int.h"

#define PG_MAX_PARAMS	64
/* pg_advisory_lock key serialising migrations ("cvirtmig"). */
#define PG_MIGRATE_KEY	"7161698027713097065"

static PGconn *pg;
static int pg_in_tx;		/* between BEGIN and COMMIT/ROLLBACK */
static int pg_tx_lost;		/* the connection was reset inside it */

#define PG_MSG_MAX	512

/* libpq's messages span lines ("... failed: Connection refused\n\tIs the
 * server running ...?\n"): the same words on one line, for the log. */
static const char *
pg_msg(const char *msg, char *buf, size_t bufsz)
{
	size_t i, n = 0;
	int gap = 0;

	if (msg == NULL)
		msg = "";
	for (i = 0; msg[i] != '\0' && n + 2 < bufsz; i++) {
		if (isspace((unsigned char)msg[i])) {
			gap = n > 0;
			continue;
		}
		if (gap)
			buf[n++] = ' ';
		gap = 0;
		buf[n++] = msg[i];
	}
	buf[n] = '\0';
	return buf;
}

/* Quiet NOTICEs ("relation exists, skipping") go to the debug log. */
static void
pg_notice(void *arg, const char *msg)
{
	log_debug("postgresql: %s", msg);
}

static int
pg_open(const char *url)
{
	char msg[PG_MSG_MAX];

	pg = PQconnectdb(url);
	if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
		/* libpq's message names the server, never the password;
		 * with no connection at all (libpq missing, db_pqload.c)
		 * it says why too. */
		log_error("cannot connect to PostgreSQL: %s",
		    pg_msg(PQerrorMessage(pg), msg, sizeof(msg)));
		PQfinish(pg);
		pg = NULL;
		return -1;
	}
	PQsetNoticeProcessor(pg, pg_notice, NULL);
	return 0;
}

static void
pg_close(void)
{
	PQfinish(pg);
	pg = NULL;
}

/* A dropped connection (server restart) is re-opened before the next
 * statement; an open transaction on it is lost and its COMMIT fails. */
static int
pg_ready(void)
{
	char msg[PG_MSG_MAX];

	if (PQstatus(pg) == CONNECTION_OK)
		return 0;
	log_warnx("PostgreSQL connection lost; reconnecting");
	if (pg_in_tx)
		pg_tx_lost = 1;
	PQreset(pg);
	if (PQstatus(pg) != CONNECTION_OK) {
		log_error("cannot reconnect to PostgreSQL: %s",
		    pg_msg(PQerrorMessage(pg), msg, sizeof(msg)));
		return -1;
	}
	return 0;
}

static int
pg_is_word(const char *p, const char *w, const char *start)
{
	size_t n = strlen(w);

	return strncmp(p, w, n) == 0 && !isalnum((unsigned char)p[n]) &&
	    p[n] != '_' && (p == start || (!isalnum((unsigned char)p[-1]) &&
	    p[-1] != '_'));
}

/* Rewrites outside quoted text: ph turns "?" into $n; ddl maps types. */
static char *
pg_rewrite(const char *sql, int ph, int ddl)
{
	static const char autoinc[] = "INTEGER PRIMARY KEY AUTOINCREMENT";
	size_t len = strlen(sql), cap = len * 2 + 64, o = 0;
	char *out = malloc(cap), quote = 0;
	const char *p;
	int n = 0;

	if (out == NULL)
		return NULL;
	for (p = sql; *p; p++) {
		if (cap - o < 32) {
			char *bigger = realloc(out, cap *= 2);
			if (bigger == NULL) {
				free(out);
				return NULL;
			}
			out = bigger;
		}
		if (quote) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (ph && *p == '?') {
			o += (size_t)snprintf(out + o, cap - o, "$%d", ++n);
			continue;
		} else if (ddl && pg_is_word(p, autoinc, sql)) {
			o += (size_t)snprintf(out + o, cap - o, "BIGSERIAL PRIMARY KEY");
			p += sizeof(autoinc) - 2;
			continue;
		} else if (ddl && pg_is_word(p, "INTEGER", sql)) {
			o += (size_t)snprintf(out + o, cap - o, "BIGINT");
			p += 6;
			continue;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
	return out;
}

char *
db_pg_placeholders(const char *sql)
{
	return pg_rewrite(sql, 1, 0);
}

char *
db_pg_ddl(const char *sql)
{
	return pg_rewrite(sql, 0, 1);
}

/* Runs sql with the typed arguments; the caller PQclear()s the result. */
static PGresult *
pg_run(const char *sql, const char *types, va_list ap)
{
	char nums[PG_MAX_PARAMS][24], *q = NULL;
	const char *vals[PG_MAX_PARAMS];
	PGresult *res = NULL;
	int i, n = 0;

	for (i = 0; types && types[i]; i++, n++) {
		if (i >= PG_MAX_PARAMS) {
			log_error("db: more than %d parameters", PG_MAX_PARAMS);
			return NULL;
		}
		switch (types[i]) {
		case 's':
			vals[i] = va_arg(ap, const char *);
			break;
		case 'i':
			snprintf(nums[i], sizeof(nums[i]), "%" PRId64,
			    va_arg(ap, int64_t));
			vals[i] = nums[i];
			break;
		default:
			vals[i] = NULL;
			break;
		}
	}
	if (pg_ready() < 0 || (q = db_pg_placeholders(sql)) == NULL)
		return NULL;
	res = PQexecParams(pg, q, n, NULL, vals, NULL, NULL, 0);
	free(q);
	return res;
}

static void
pg_set_value(json_t *o, PGresult *res, int row, int col)
{
	const char *name = PQfname(res, col), *v;
	long long ll;
	char *end;

	if (PQgetisnull(res, row, col)) {
		json_object_set_new(o, name, json_null());
		return;
	}
	v = PQgetvalue(res, row, col);
	switch (PQftype(res, col)) {
	case 16:	/* bool */
		json_object_set_new(o, name, json_integer(v[0] == 't'));
		return;
	case 20: case 21: case 23:	/* int8, int2, int4 */
	case 1700:	/* numeric: SUM() of bigints; integral values only */
		errno = 0;
		ll = strtoll(v, &end, 10);
		if (errno == 0 && *end == '\0' && end != v) {
			json_object_set_new(o, name, json_integer(ll));
			return;
		}
		break;
	}
	json_object_set_new(o, name, json_stringn(v,
	    (size_t)PQgetlength(res, row, col)));
}

static int
pg_failed(PGresult *res, const char *sql)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *state;
	char msg[PG_MSG_MAX];

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return 0;
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (state && strncmp(state, "23", 2) == 0) {
		errno = EEXIST;	/* integrity constraint violation */
	} else {
		log_error("db: %s: %s", pg_msg(res ? PQresultErrorMessage(res) :
		    PQerrorMessage(pg), msg, sizeof(msg)), sql);
		errno = EIO;
	}
	return -1;
}

static json_t *
pg_query(const char *sql, const char *types, va_list ap, int first)
{
	PGresult *res = pg_run(sql, types, ap);
	json_t *rows = NULL, *o;
	int r, c, nr, nc;

	if (pg_failed(res, sql) < 0)
		goto cleanup;
	rows = json_array();
	nr = PQntuples(res);
	nc = PQnfields(res);
	for (r = 0; r < nr && (!first || r < 1); r++) {
		o = json_object();
		for (c = 0; c < nc; c++)
			pg_set_value(o, res, r, c);
		json_array_append_new(rows, o);
	}
cleanup:
	PQclear(res);
	return rows;
}

/* A value as db_each hands it: the types pg_set_value makes integers. */
static void
pg_col(PGresult *res, int row, int col, struct db_col *c)
{
	long long ll;
	char *end;

	c->type = DB_TEXT;
	if (PQgetisnull(res, row, col)) {
		*c = (struct db_col){ NULL, 0, DB_NULL };
		return;
	}
	c->val = PQgetvalue(res, row, col);
	c->len = (size_t)PQgetlength(res, row, col);
	switch (PQftype(res, col)) {
	case 16:	/* bool */
		*c = (struct db_col){ c->val[0] == 't' ? "1" : "0", 1, DB_INT };
		break;
	case 20: case 21: case 23:	/* int8, int2, int4 */
	case 1700:	/* numeric: integral values only */
		errno = 0;
		ll = strtoll(c->val, &end, 10);
		(void)ll;
		if (errno == 0 && *end == '\0' && end != c->val)
			c->type = DB_INT;
		break;
	}
}

static int
pg_each(const char *sql, const char *types, va_list ap, db_each_fn fn,
    void *arg)
{
	struct db_col cols[DB_EACH_COLS];
	PGresult *res = pg_run(sql, types, ap);
	int r, c, nr, nc, rc = -1;

	if (pg_failed(res, sql) < 0)
		goto cleanup;
	if ((nc = PQnfields(res)) > DB_EACH_COLS) {
		log_error("db: more than %d columns: %s", DB_EACH_COLS, sql);
		goto cleanup;
	}
	nr = PQntuples(res);
	for (r = 0; r < nr; r++) {
		for (c = 0; c < nc; c++)
			pg_col(res, r, c, &cols[c]);
		if (fn(arg, cols, nc) < 0)
			break;
	}
	rc = 0;
cleanup:
	PQclear(res);
	return rc;
}

static int
pg_exec(const char *sql, const char *types, va_list ap)
{
	PGresult *res = pg_run(sql, types, ap);
	int rc = -1;

	if (pg_failed(res, sql) < 0)
		goto cleanup;
	rc = (int)strtol(PQcmdTuples(res), NULL, 10);
cleanup:
	PQclear(res);
	return rc;
}

static int64_t
pg_last_id(void)
{
	PGresult *res = PQexec(pg, "SELECT lastval()");
	int64_t id = -1;
	char msg[PG_MSG_MAX];

	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else
		log_error("db: lastval: %s", pg_msg(PQerrorMessage(pg), msg,
		    sizeof(msg)));
	PQclear(res);
	return id;
}

static int
pg_script(const char *sql)
{
	PGresult *res;
	int rc = -1, begin = strncmp(sql, "BEGIN", 5) == 0;
	int end = strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0;

	if (begin)
		pg_tx_lost = 0;
	if (pg_ready() < 0)
		goto cleanup;
	res = PQexec(pg, sql);
	rc = pg_failed(res, sql);
	/* COMMIT of a transaction that failed part-way answers "ROLLBACK". */
	if (rc == 0 && strcmp(sql, "COMMIT") == 0 &&
	    strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		log_error("db: a statement failed; the transaction was rolled back");
		rc = -1;
	}
	PQclear(res);
	if (end && pg_tx_lost)
		rc = -1;
cleanup:
	if (begin)
		pg_in_tx = rc == 0;
	if (end)
		pg_in_tx = pg_tx_lost = 0;
	return rc;
}

static int
pg_has_table(const char *name)
{
	const char *vals[1] = { name };
	PGresult *res;
	int rc = -1;

	if (pg_ready() < 0)
		return -1;
	res = PQexecParams(pg, "SELECT 1 FROM information_schema.tables WHERE "
	    "table_schema = current_schema() AND table_name = $1", 1, NULL,
	    vals, NULL, NULL, 0);
	if (pg_failed(res, "has_table") == 0)
		rc = PQntuples(res) > 0;
	PQclear(res);
	return rc;
}

/* Two managers starting together must not both run a migration. */
static int
pg_migrate_lock(int on)
{
	PGresult *res = PQexec(pg, on ?
	    "SELECT pg_advisory_lock(" PG_MIGRATE_KEY ")" :
	    "SELECT pg_advisory_unlock(" PG_MIGRATE_KEY ")");
	int rc = pg_failed(res, "advisory lock");

	PQclear(res);
	return rc;
}

const struct db_backend db_pg_backend = {
	.name = "postgresql",
	.begin_sql = "BEGIN",
	.open = pg_open,
	.close = pg_close,
	.query = pg_query,
	.each = pg_each,
	.exec = pg_exec,
	.last_id = pg_last_id,
	.script = pg_script,
	.has_table = pg_has_table,
	.migrate_lock = pg_migrate_lock,
};
