/* db.c - the inventory in SQLite (WAL): schema, migrations, query helpers.
 * One connection behind a recursive lock; callers never hold it across
 * I/O with agents or QEMU. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "common/log.h"
#include "manager/manager_int.h"

static sqlite3 *db;
static pthread_mutex_t db_lock;

/* Migrations run in order; meta.schema_version says how many have run. */
static const char *const db_migrations[] = {
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE tokens (hash TEXT PRIMARY KEY, name TEXT NOT NULL,"
	"  role INTEGER NOT NULL, created INTEGER NOT NULL);"
	"CREATE TABLE hosts (name TEXT PRIMARY KEY, url TEXT NOT NULL,"
	"  state TEXT NOT NULL, accel TEXT, accel_reason TEXT, cpus INTEGER,"
	"  memory_mib INTEGER, agent_key TEXT UNIQUE, last_seen INTEGER,"
	"  maintenance INTEGER NOT NULL DEFAULT 0, info TEXT,"
	"  registered INTEGER);"
	"CREATE TABLE vms (uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	"  state TEXT NOT NULL, host TEXT, pid INTEGER, spec TEXT NOT NULL,"
	"  task_id INTEGER, created INTEGER NOT NULL, updated INTEGER);"
	"CREATE INDEX vms_host ON vms(host);"
	"CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL, state TEXT NOT NULL, progress INTEGER NOT NULL,"
	"  error TEXT, result TEXT, vm TEXT, params TEXT, owner TEXT,"
	"  created INTEGER NOT NULL, updated INTEGER NOT NULL);"
	"CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL, severity TEXT NOT NULL, kind TEXT NOT NULL,"
	"  object TEXT, message TEXT NOT NULL);",
};

static int
db_migrate(void)
{
	sqlite3_stmt *st = NULL;
	size_t have = 0, i;
	char *msg = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE "
	    "key='schema_version'", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		have = (size_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (have > sizeof(db_migrations) / sizeof(db_migrations[0])) {
		log_error("database schema %zu is newer than this cvirt", have);
		return -1;
	}
	for (i = have; i < sizeof(db_migrations) / sizeof(db_migrations[0]); i++) {
		char ver[96];

		snprintf(ver, sizeof(ver), "INSERT OR REPLACE INTO meta VALUES"
		    "('schema_version', '%zu');", i + 1);
		if (sqlite3_exec(db, "BEGIN", NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, db_migrations[i], NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, ver, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
			log_error("database migration %zu: %s", i + 1,
			    msg ? msg : "failed");
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			goto cleanup;
		}
	}
	rc = 0;
cleanup:
	sqlite3_free(msg);
	return rc;
}

int
db_open(const char *path)
{
	pthread_mutexattr_t ma;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&db_lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		log_error("cannot open database %s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	    "PRAGMA foreign_keys=ON;", NULL, NULL, NULL);
	return db_migrate();
}

void
db_close(void)
{
	if (db)
		sqlite3_close(db);
	db = NULL;
}

static sqlite3_stmt *
db_prepare(const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st = NULL;
	int i, rc = SQLITE_OK;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("db: %s: %s", sqlite3_errmsg(db), sql);
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
		log_error("db: bind: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static json_t *
db_row_json(sqlite3_stmt *st)
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
db_vquery(const char *sql, const char *types, va_list ap, int first)
{
	sqlite3_stmt *st;
	json_t *rows = NULL, *ret = NULL;
	int rc;

	pthread_mutex_lock(&db_lock);
	if ((st = db_prepare(sql, types, ap)) == NULL)
		goto cleanup;
	rows = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_array_append_new(rows, db_row_json(st));
		if (first)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		log_error("db: %s: %s", sqlite3_errmsg(db), sql);
		goto cleanup;
	}
	ret = rows;
	rows = NULL;
cleanup:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&db_lock);
	json_decref(rows);
	return ret;
}

json_t *
db_query(const char *sql, const char *types, ...)
{
	va_list ap;
	json_t *r;

	va_start(ap, types);
	r = db_vquery(sql, types, ap, 0);
	va_end(ap);
	return r;
}

json_t *
db_row(const char *sql, const char *types, ...)
{
	va_list ap;
	json_t *rows, *r = NULL;

	va_start(ap, types);
	rows = db_vquery(sql, types, ap, 1);
	va_end(ap);
	if (rows && json_array_size(rows) > 0)
		r = json_incref(json_array_get(rows, 0));
	else
		errno = ENOENT;
	json_decref(rows);
	return r;
}

int
db_exec(const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc = -1, step;

	pthread_mutex_lock(&db_lock);
	va_start(ap, types);
	st = db_prepare(sql, types, ap);
	va_end(ap);
	if (st == NULL)
		goto cleanup;
	step = sqlite3_step(st);
	if (step == SQLITE_DONE || step == SQLITE_ROW) {
		rc = sqlite3_changes(db);
	} else if ((step & 0xff) == SQLITE_CONSTRAINT) {
		errno = EEXIST;
	} else {
		log_error("db: %s: %s", sqlite3_errmsg(db), sql);
		errno = EIO;
	}
cleanup:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&db_lock);
	return rc;
}

int64_t
db_last_id(void)
{
	return sqlite3_last_insert_rowid(db);
}

int
db_begin(void)
{
	pthread_mutex_lock(&db_lock);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		log_error("db: begin: %s", sqlite3_errmsg(db));
		pthread_mutex_unlock(&db_lock);
		return -1;
	}
	return 0;
}

int
db_commit(void)
{
	int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;

	if (rc < 0) {
		log_error("db: commit: %s", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	pthread_mutex_unlock(&db_lock);
	return rc;
}

void
db_rollback(void)
{
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&db_lock);
}
