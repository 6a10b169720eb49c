/* unit_db.c - a throwaway SQLite inventory for unit tests (unit_db.h). */
#include <stdio.h>
#include <unistd.h>

#include "manager/manager_int.h"
#include "unit_db.h"

static char unit_db_path[96];

int
unit_db_open(const char *name)
{
	snprintf(unit_db_path, sizeof(unit_db_path), "/tmp/cvirt-test-%s.%d.db",
	    name, (int)getpid());
	unlink(unit_db_path);
	return db_open(unit_db_path);
}

void
unit_db_close(void)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char p[128];
	size_t i;

	db_close();
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", unit_db_path, sfx[i]);
		unlink(p);
	}
}
