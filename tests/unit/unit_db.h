/* unit_db.h - a throwaway SQLite inventory for unit tests. */
#ifndef CVIRT_UNIT_DB_H
#define CVIRT_UNIT_DB_H

/* Opens /tmp/cvirt-test-NAME.PID.db afresh (db_open); 0 or -1. */
int	unit_db_open(const char *name);
/* Closes it and removes the file and its -wal and -shm files. */
void	unit_db_close(void);

#endif
