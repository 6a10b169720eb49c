/* db_pqload.c - libpq loaded on the first PostgreSQL call, not at start.
 * Linked, libpq brings GnuTLS, Kerberos and LDAP into every process of
 * the one binary (agents, CLI runs, SQLite managers): ~3.5 MiB of resident
 * memory each (docs/performance.md). The binary calls the PQ functions
 * below, which forward to the library; a PQ function used elsewhere and
 * missing here fails the link, so add it to PQ_FUNCS. Without libpq.so.5,
 * PQconnectdb returns NULL and PQerrorMessage says why. */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

#include <libpq-fe.h>

/* ret, name, (parameters), (arguments), value when libpq is missing */
#define PQ_FUNCS(X)							\
	X(PGconn *, PQconnectdb, (const char *a), (a), NULL)		\
	X(PGconn *, PQconnectdbParams, (const char *const *a,		\
	    const char *const *b, int c), (a, b, c), NULL)		\
	X(int, PQsendQuery, (PGconn *a, const char *b), (a, b), 0)	\
	X(PGresult *, PQgetResult, (PGconn *a), (a), NULL)		\
	X(int, PQisBusy, (PGconn *a), (a), 0)				\
	X(int, PQconsumeInput, (PGconn *a), (a), 0)			\
	X(int, PQsocket, (const PGconn *a), (a), -1)			\
	X(ConnStatusType, PQstatus, (const PGconn *a), (a), CONNECTION_BAD) \
	X(char *, PQerrorMessage, (const PGconn *a), (a), pqload_why)	\
	X(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn *a,		\
	    PQnoticeProcessor b, void *c), (a, b, c), NULL)		\
	X(PGresult *, PQexec, (PGconn *a, const char *b), (a, b), NULL)	\
	X(PGresult *, PQexecParams, (PGconn *a, const char *b, int c,	\
	    const Oid *d, const char *const *e, const int *f,		\
	    const int *g, int h), (a, b, c, d, e, f, g, h), NULL)	\
	X(ExecStatusType, PQresultStatus, (const PGresult *a), (a),	\
	    PGRES_FATAL_ERROR)						\
	X(char *, PQresultErrorMessage, (const PGresult *a), (a), pqload_why) \
	X(char *, PQresultErrorField, (const PGresult *a, int b), (a, b), NULL) \
	X(int, PQntuples, (const PGresult *a), (a), 0)			\
	X(int, PQnfields, (const PGresult *a), (a), 0)			\
	X(char *, PQfname, (const PGresult *a, int b), (a, b), NULL)	\
	X(Oid, PQftype, (const PGresult *a, int b), (a, b), 0)		\
	X(char *, PQgetvalue, (const PGresult *a, int b, int c), (a, b, c), \
	    NULL)							\
	X(int, PQgetisnull, (const PGresult *a, int b, int c), (a, b, c), 1) \
	X(int, PQgetlength, (const PGresult *a, int b, int c), (a, b, c), 0) \
	X(char *, PQcmdStatus, (PGresult *a), (a), pqload_empty)	\
	X(char *, PQcmdTuples, (PGresult *a), (a), pqload_empty)

#define PQ_VOID_FUNCS(X)						\
	X(PQclear, (PGresult *a), (a))					\
	X(PQfinish, (PGconn *a), (a))					\
	X(PQreset, (PGconn *a), (a))

static char pqload_why[] = "the PostgreSQL client library (libpq.so.5) "
    "cannot be loaded\n";
static char pqload_empty[] = "";

#define PQ_PTR(ret, name, params, args, dflt)	ret (*name) params;
#define PQ_VPTR(name, params, args)		void (*name) params;
static struct {
	PQ_FUNCS(PQ_PTR)
	PQ_VOID_FUNCS(PQ_VPTR)
	int	 ok;
} pqload;
static pthread_once_t pqload_once = PTHREAD_ONCE_INIT;

static void
pqload_open(void)
{
	void *lib = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
	int ok = lib != NULL;

	/* dlsym's object pointer to a function pointer: POSIX allows it. */
#define PQ_SYM(ret, name, params, args, dflt)				\
	ok = ok && (*(void **)&pqload.name = dlsym(lib, #name)) != NULL;
#define PQ_VSYM(name, params, args)					\
	ok = ok && (*(void **)&pqload.name = dlsym(lib, #name)) != NULL;
	PQ_FUNCS(PQ_SYM)
	PQ_VOID_FUNCS(PQ_VSYM)
	pqload.ok = ok;
}

#define PQ_DEF(ret, name, params, args, dflt)				\
ret name params								\
{									\
	pthread_once(&pqload_once, pqload_open);			\
	return pqload.ok ? pqload.name args : dflt;			\
}
#define PQ_VDEF(name, params, args)					\
void name params							\
{									\
	pthread_once(&pqload_once, pqload_open);			\
	if (pqload.ok)							\
		pqload.name args;					\
}
PQ_FUNCS(PQ_DEF)
PQ_VOID_FUNCS(PQ_VDEF)
