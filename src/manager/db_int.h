/* db_int.h - the inventory's storage backends (SQLite, PostgreSQL) behind
 * db.c. db.c holds the one lock around every call, so backends need none. */
#ifndef CVIRT_DB_INT_H
#define CVIRT_DB_INT_H

#include <stdarg.h>
#include <stdint.h>
#include <jansson.h>

#include "manager/manager_int.h"

#define DB_EACH_COLS	32	/* columns of a db_each query */

struct db_backend {
	const char	*name;		/* "sqlite", "postgresql" */
	const char	*begin_sql;	/* starts a write transaction */
	/* target: a file path or a libpq URL. */
	int		 (*open)(const char *target);
	void		 (*close)(void);
	/* Rows as objects (integer, NULL or text values); NULL on error.
	 * first: stop after one row. */
	json_t		*(*query)(const char *sql, const char *types, va_list ap,
			    int first);
	/* Calls fn for each row (see db_each); 0 or -1. */
	int		 (*each)(const char *sql, const char *types, va_list ap,
			    db_each_fn fn, void *arg);
	/* Changed rows, or -1 with errno EEXIST (constraint) or EIO. */
	int		 (*exec)(const char *sql, const char *types, va_list ap);
	int64_t		 (*last_id)(void);
	/* One or more statements without parameters (DDL, BEGIN...). */
	int		 (*script)(const char *sql);
	/* 1 when the table exists, 0 when not, -1 on error. */
	int		 (*has_table)(const char *name);
	/* Serialises migrations between managers sharing one database. */
	int		 (*migrate_lock)(int on);
};

extern const struct db_backend db_sqlite_backend, db_pg_backend;

/* db_pg.c: "?" placeholders as $1, $2... outside quotes; malloc'd. */
char	*db_pg_placeholders(const char *sql);
/* db_pg.c: a migration in PostgreSQL's dialect (INTEGER is 64-bit,
 * AUTOINCREMENT ids are BIGSERIAL); malloc'd. */
char	*db_pg_ddl(const char *sql);

#endif
