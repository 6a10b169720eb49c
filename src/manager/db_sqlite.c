/* db_sqlite.c - the SQLite (WAL) inventory backend: one connection; db.c
 * serialises every call. */
#include <errno.h>
#include <stdio.h>

#include <sqlite3.h>

#include "common/log.h"
#include "manager/db_int.h"

static sqlite3 *sq;

static int
sq_open(const char *path)
{
	if (sqlite3_open_v2(path, &sq, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		log_error("cannot open database %s: %s", path,
		    sq ? sqlite3_errmsg(sq) : "out of memory");
		sqlite3_close(sq);
		sq = NULL;
		return -1;
	}
	sqlite3_busy_timeout(sq, 5000);
	/* WAL + FULL: a commit answered to a client survives a power cut
	 * (NORMAL lost the last ones: WAL synced only at checkpoints); the
	 * cost, one fsync per commit, is in docs/performance.md. */
	sqlite3_exec(sq, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
	return 0;
}

static void
sq_close(void)
{
	if (sq)
		sqlite3_close(sq);
	sq = NULL;
}

static sqlite3_stmt *
sq_prepare(const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st = NULL;
	int i, rc = SQLITE_OK;

	if (sqlite3_prepare_v2(sq, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("db: %s: %s", sqlite3_errmsg(sq), sql);
		return NULL;
	}
	for (i = 0; types && types[i] && rc == SQLITE_OK; i++) {
		const char *s;
		switch (types[i]) {
		case 's':
			s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i + 1, s, -1,
			    SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
			break;
		case 'i':
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		default:
			rc = sqlite3_bind_null(st, i + 1);
			break;
		}
	}
	if (rc != SQLITE_OK) {
		log_error("db: bind: %s", sqlite3_errmsg(sq));
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static json_t *
sq_row_json(sqlite3_stmt *st)
{
	json_t *o = json_object();
	int i, n = sqlite3_column_count(st);

	for (i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(st, i);
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			json_object_set_new(o, name,
			    json_integer(sqlite3_column_int64(st, i)));
			break;
		case SQLITE_NULL:
			json_object_set_new(o, name, json_null());
			break;
		default:
			json_object_set_new(o, name, json_stringn(
			    (const char *)sqlite3_column_text(st, i),
			    (size_t)sqlite3_column_bytes(st, i)));
			break;
		}
	}
	return o;
}

static json_t *
sq_query(const char *sql, const char *types, va_list ap, int first)
{
	sqlite3_stmt *st;
	json_t *rows = NULL, *ret = NULL;
	int rc;

	if ((st = sq_prepare(sql, types, ap)) == NULL)
		goto cleanup;
	rows = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(rows, sq_row_json(st));
		if (first)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		log_error("db: %s: %s", sqlite3_errmsg(sq), sql);
		goto cleanup;
	}
	ret = rows;
	rows = NULL;
cleanup:
	sqlite3_finalize(st);
	json_decref(rows);
	return ret;
}

static int
sq_each(const char *sql, const char *types, va_list ap, db_each_fn fn,
    void *arg)
{
	struct db_col cols[DB_EACH_COLS];
	sqlite3_stmt *st;
	int i, n, step, rc = -1;

	if ((st = sq_prepare(sql, types, ap)) == NULL)
		goto cleanup;
	if ((n = sqlite3_column_count(st)) > DB_EACH_COLS) {
		log_error("db: more than %d columns: %s", DB_EACH_COLS, sql);
		goto cleanup;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		for (i = 0; i < n; i++) {
			/* The type first: reading the text converts the value. */
			int t = sqlite3_column_type(st, i);

			cols[i].type = t == SQLITE_NULL ? DB_NULL :
			    t == SQLITE_INTEGER ? DB_INT : DB_TEXT;
			cols[i].val = (const char *)sqlite3_column_text(st, i);
			cols[i].len = (size_t)sqlite3_column_bytes(st, i);
			if (cols[i].val == NULL)
				cols[i].type = DB_NULL;
		}
		if (fn(arg, cols, n) < 0)
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		log_error("db: %s: %s", sqlite3_errmsg(sq), sql);
		goto cleanup;
	}
	rc = 0;
cleanup:
	sqlite3_finalize(st);
	return rc;
}

static int
sq_exec(const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st;
	int rc = -1, step;

	if ((st = sq_prepare(sql, types, ap)) == NULL) {
		errno = EIO;
		goto cleanup;
	}
	step = sqlite3_step(st);
	if (step == SQLITE_DONE || step == SQLITE_ROW) {
		rc = sqlite3_changes(sq);
	} else if ((step & 0xff) == SQLITE_CONSTRAINT) {
		errno = EEXIST;
	} else {
		log_error("db: %s: %s", sqlite3_errmsg(sq), sql);
		errno = EIO;
	}
cleanup:
	sqlite3_finalize(st);
	return rc;
}

static int64_t
sq_last_id(void)
{
	return sqlite3_last_insert_rowid(sq);
}

static int
sq_script(const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(sq, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("db: %s: %.200s", msg ? msg : "failed", sql);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
sq_has_table(const char *name)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(sq, "SELECT 1 FROM sqlite_master WHERE "
	    "type = 'table' AND name = ?", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT) == SQLITE_OK) {
		int step = sqlite3_step(st);
		rc = step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(st);
	return rc;
}

/* One file, one writer process: the file lock is enough. */
static int
sq_migrate_lock(int on)
{
	return 0;
}

const struct db_backend db_sqlite_backend = {
	.name = "sqlite",
	.begin_sql = "BEGIN IMMEDIATE",
	.open = sq_open,
	.close = sq_close,
	.query = sq_query,
	.each = sq_each,
	.exec = sq_exec,
	.last_id = sq_last_id,
	.script = sq_script,
	.has_table = sq_has_table,
	.migrate_lock = sq_migrate_lock,
};
