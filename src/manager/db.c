/* db.c - the inventory: one storage interface over SQLite (WAL, default) or
 * PostgreSQL, the shared schema migrations and the query helpers. One
 * connection behind a recursive lock; callers never hold it across I/O with
 * agents or QEMU.
 *
 * Migrations are written once for both backends: INTEGER (64-bit on both),
 * TEXT, "INTEGER PRIMARY KEY AUTOINCREMENT" for ids, upserts with ON
 * CONFLICT (never INSERT OR REPLACE/IGNORE), no JSON functions; append only. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "manager/db_int.h"
#include "manager/manager_int.h"

static const struct db_backend *be;
static pthread_mutex_t db_lock = PTHREAD_MUTEX_INITIALIZER;
static int db_lock_ready;
static uint64_t db_vms_changes;	/* see db_vms_gen(); under db_lock */

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
	/* 2: the spec's size as columns, so placement sums without JSON
	 * functions (db_fixup fills rows written before). */
	"ALTER TABLE vms ADD COLUMN cpus INTEGER;"
	"ALTER TABLE vms ADD COLUMN memory_mib INTEGER;",
	/* 3: users (argon2id password hashes), token kinds and expiry,
	 * one-use join tokens for agents, the audit log. */
	"CREATE TABLE users (name TEXT PRIMARY KEY, role INTEGER NOT NULL,"
	"  password TEXT, created INTEGER NOT NULL);"
	"ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';"
	"ALTER TABLE tokens ADD COLUMN expires INTEGER;"
	"CREATE TABLE join_tokens (hash TEXT PRIMARY KEY, id TEXT NOT NULL,"
	"  created INTEGER NOT NULL, expires INTEGER NOT NULL, host TEXT,"
	"  creator TEXT);"
	"CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time INTEGER NOT NULL, principal TEXT NOT NULL, remote TEXT,"
	"  method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL);",
	/* storage: imported images and backups (snapshots live in the VM
	 * spec, so they travel with vm.json on shared storage). */
	"CREATE TABLE images (name TEXT PRIMARY KEY, storage TEXT NOT NULL,"
	"  file TEXT NOT NULL, format TEXT NOT NULL, virtual_size INTEGER NOT"
	"  NULL, size_bytes INTEGER NOT NULL, sha256 TEXT, state TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE backups (id TEXT PRIMARY KEY, vm TEXT NOT NULL,"
	"  vm_uuid TEXT NOT NULL, storage TEXT NOT NULL, state TEXT NOT NULL,"
	"  size_bytes INTEGER, manifest TEXT, created INTEGER NOT NULL);"
	"CREATE INDEX backups_vm ON backups(vm);",
	/* HA: what the user wants of a VM (running/stopped), so a failure is
	 * told from a stop. */
	"ALTER TABLE vms ADD COLUMN desired TEXT;",
	/* scale: placement sums sizes from an index alone; vms.grouped says
	 * whether the spec names an (anti-)affinity group (NULL: unknown,
	 * read the spec; db_fixup fills it). */
	"ALTER TABLE vms ADD COLUMN grouped INTEGER;"
	"CREATE INDEX vms_placement ON vms(grouped, host, memory_mib, cpus,"
	"  uuid);",
	/* networks (docs/network.md): one row per virtual network; nics holds
	 * every vNIC's MAC (unique cluster-wide) and its IPAM address
	 * (unique per network). */
	"CREATE TABLE networks (name TEXT PRIMARY KEY, id INTEGER NOT NULL"
	"  UNIQUE, type TEXT NOT NULL, subnet TEXT, gateway TEXT, dhcp INTEGER"
	"  NOT NULL, mtu INTEGER NOT NULL, vni INTEGER UNIQUE, vlan INTEGER,"
	"  uplink TEXT, created INTEGER NOT NULL);"
	"CREATE TABLE nics (mac TEXT PRIMARY KEY, vm TEXT NOT NULL,"
	"  network TEXT NOT NULL, ip TEXT, UNIQUE (network, ip));"
	"CREATE INDEX nics_vm ON nics(vm);",
	/* HA per storage domain (issue 14, docs/ha.md): a host's domains the
	 * manager fenced (kept until a lease with another seq is seen, so a
	 * restarted manager never un-fences), how each host fences itself,
	 * its timing, and an operator's confirm-off. */
	"CREATE TABLE host_domains (host TEXT NOT NULL, storage TEXT NOT NULL,"
	"  state TEXT NOT NULL, lease_seq INTEGER, fenced_seq INTEGER,"
	"  direct INTEGER, updated INTEGER NOT NULL,"
	"  PRIMARY KEY (host, storage));"
	"ALTER TABLE hosts ADD COLUMN fence TEXT;"
	"ALTER TABLE hosts ADD COLUMN timing TEXT;"
	"ALTER TABLE hosts ADD COLUMN confirmed_off INTEGER;",
	/* host identity (issue 15, docs/security.md "Admitting hosts"): how
	 * a host's key came to be (key_source: 'agent' chose it, 'manager'
	 * made it; NULL: registered before this, re-keyable once), the
	 * SHA-256 of the certificate it registered with (its reports must
	 * present that one), the addresses an admin approved for its
	 * certificate and those it asked for besides; join tokens are used
	 * once (used: when) and may carry approved addresses. */
	"ALTER TABLE hosts ADD COLUMN key_source TEXT;"
	"ALTER TABLE hosts ADD COLUMN cert_fp TEXT;"
	"ALTER TABLE hosts ADD COLUMN approved TEXT;"
	"ALTER TABLE hosts ADD COLUMN pending TEXT;"
	"ALTER TABLE join_tokens ADD COLUMN used INTEGER;"
	"ALTER TABLE join_tokens ADD COLUMN addresses TEXT;",
	/* TOTP second factor (docs/security.md "Logins"): the base32 secret
	 * (NULL: none) and the last time step a code was accepted for (a
	 * code of that step or before is a replay). */
	"ALTER TABLE users ADD COLUMN totp_secret TEXT;"
	"ALTER TABLE users ADD COLUMN totp_step INTEGER;",
};

static int
db_schema_version(size_t *have)
{
	json_t *row;
	uint64_t v = 0;
	int t;

	*have = 0;
	if ((t = be->has_table("meta")) <= 0)
		return t;
	row = db_row("SELECT value FROM meta WHERE key = 'schema_version'", NULL);
	if (row != NULL && util_parse_u64(json_string_value(json_object_get(row,
	    "value")), 0, 1000000, &v) < 0) {
		json_decref(row);
		log_error("database: unreadable schema_version");
		return -1;
	}
	json_decref(row);
	*have = (size_t)v;
	return 0;
}

/* Each migration and its version number commit together. */
static int
db_migrate_one(size_t i)
{
	char *ddl = NULL, ver[24];
	int rc = -1;

	ddl = strcmp(be->name, "postgresql") == 0 ? db_pg_ddl(db_migrations[i]) :
	    strdup(db_migrations[i]);
	snprintf(ver, sizeof(ver), "%zu", i + 1);
	if (ddl == NULL || db_begin() < 0)
		goto cleanup;
	if (be->script(ddl) < 0 || db_exec("INSERT INTO meta (key, value) "
	    "VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET "
	    "value = excluded.value", "s", ver) < 0) {
		db_rollback();
		goto cleanup;
	}
	rc = db_commit();
cleanup:
	if (rc < 0)
		log_error("database migration %zu failed", i + 1);
	free(ddl);
	return rc;
}

static int
db_migrate(void)
{
	size_t have, i, n = sizeof(db_migrations) / sizeof(db_migrations[0]);
	int rc = -1;

	if (be->migrate_lock(1) < 0)
		return -1;
	if (db_schema_version(&have) < 0)
		goto cleanup;
	if (have > n) {
		log_error("database schema %zu is newer than this cvirt (%zu)",
		    have, n);
		goto cleanup;
	}
	for (i = have; i < n; i++)
		if (db_migrate_one(i) < 0)
			goto cleanup;
	rc = 0;
cleanup:
	be->migrate_lock(0);
	return rc;
}

/* Rows written before the placement columns (or by paths that do not
 * set them) get them from the spec. */
static void
db_fixup(void)
{
	json_t *rows, *row, *spec;
	size_t i;

	rows = db_query("SELECT uuid, spec FROM vms WHERE memory_mib IS NULL OR "
	    "cpus IS NULL OR grouped IS NULL", NULL);
	json_array_foreach(rows, i, row) {
		spec = json_loads(json_string_value(json_object_get(row, "spec")),
		    0, NULL);
		db_exec("UPDATE vms SET cpus = ?, memory_mib = ?, grouped = ? "
		    "WHERE uuid = ?", "iiis",
		    json_integer_value(json_object_get(spec, "cpus")),
		    json_integer_value(json_object_get(spec, "memory_mib")),
		    (int64_t)(json_object_get(spec, "affinity") != NULL ||
		    json_object_get(spec, "anti_affinity") != NULL),
		    json_string_value(json_object_get(row, "uuid")));
		json_decref(spec);
	}
	json_decref(rows);
}

int
db_open(const char *url)
{
	pthread_mutexattr_t ma;
	const char *target = url;

	if (!db_lock_ready) {
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&db_lock, &ma);
		pthread_mutexattr_destroy(&ma);
		db_lock_ready = 1;
	}
	if (strncmp(url, "postgresql://", 13) == 0 ||
	    strncmp(url, "postgres://", 11) == 0) {
		be = &db_pg_backend;
	} else {
		be = &db_sqlite_backend;
		if (strncmp(url, "sqlite:", 7) == 0)
			target = url + 7;
	}
	if (be->open(target) < 0) {
		be = NULL;
		return -1;
	}
	if (db_migrate() < 0) {
		db_close();
		return -1;
	}
	db_fixup();
	pthread_mutex_lock(&db_lock);
	db_vms_changes++;	/* another inventory: nothing cached holds */
	pthread_mutex_unlock(&db_lock);
	log_info("inventory: %s", be->name);
	return 0;
}

void
db_close(void)
{
	if (be)
		be->close();
	be = NULL;
}

const char *
db_backend_name(void)
{
	return be ? be->name : "none";
}

static json_t *
db_vquery(const char *sql, const char *types, va_list ap, int first)
{
	json_t *r;

	pthread_mutex_lock(&db_lock);
	r = be->query(sql, types, ap, first);
	pthread_mutex_unlock(&db_lock);
	return r;
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

int
db_each(const char *sql, db_each_fn fn, void *arg, const char *types, ...)
{
	va_list ap;
	int rc;

	pthread_mutex_lock(&db_lock);
	va_start(ap, types);
	rc = be->each(sql, types, ap, fn, arg);
	va_end(ap);
	pthread_mutex_unlock(&db_lock);
	return rc;
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

/* Can this statement change what placement sums (rows of vms, their
 * host, sizes or group flag)? Updates of other vms columns cannot, nor
 * can a new row without a host (placement counts only placed VMs). */
static int
db_vms_sized(const char *sql)
{
	static const char *const cols[] = { "host", "cpus", "memory_mib",
	    "grouped", NULL };
	const char *set, *end;
	size_t i;

	if (strstr(sql, "vms") == NULL)
		return 0;
	if (strncmp(sql, "INSERT INTO vms (", 17) == 0 &&
	    (end = strchr(sql, ')')) != NULL) {
		const char *h = strstr(sql, "host");

		return (h != NULL && h < end) || strstr(sql, "ON CONFLICT");
	}
	if (strncmp(sql, "UPDATE vms SET ", 15) != 0)
		return 1;
	set = sql + 15;
	if ((end = strstr(set, " WHERE ")) == NULL)
		end = set + strlen(set);
	for (i = 0; cols[i]; i++) {
		const char *c = strstr(set, cols[i]);

		if (c != NULL && c < end)
			return 1;
	}
	return 0;
}

int
db_exec(const char *sql, const char *types, ...)
{
	va_list ap;
	int rc;

	pthread_mutex_lock(&db_lock);
	va_start(ap, types);
	rc = be->exec(sql, types, ap);
	va_end(ap);
	if (rc != 0 && db_vms_sized(sql))
		db_vms_changes++;
	pthread_mutex_unlock(&db_lock);
	return rc;
}

void
db_hold(void)
{
	pthread_mutex_lock(&db_lock);
}

void
db_release(void)
{
	pthread_mutex_unlock(&db_lock);
}

uint64_t
db_vms_gen(void)
{
	uint64_t g;

	pthread_mutex_lock(&db_lock);
	g = db_vms_changes;
	pthread_mutex_unlock(&db_lock);
	return g;
}

/* Valid right after the INSERT, under the lock (inside a transaction). */
int64_t
db_last_id(void)
{
	int64_t id;

	pthread_mutex_lock(&db_lock);
	id = be->last_id();
	pthread_mutex_unlock(&db_lock);
	return id;
}

int
db_begin(void)
{
	pthread_mutex_lock(&db_lock);
	if (be->script(be->begin_sql) < 0) {
		pthread_mutex_unlock(&db_lock);
		return -1;
	}
	return 0;
}

int
db_commit(void)
{
	int rc = be->script("COMMIT");

	if (rc < 0) {
		be->script("ROLLBACK");
		db_vms_changes++;	/* what the transaction noted is undone */
	}
	pthread_mutex_unlock(&db_lock);
	return rc;
}

void
db_rollback(void)
{
	be->script("ROLLBACK");
	db_vms_changes++;
	pthread_mutex_unlock(&db_lock);
}
