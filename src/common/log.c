/* log.c - levelled logging to stderr (journald picks it up under systemd). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

static const char *log_prog = "cvirt";
static enum log_level log_min = LOG_LVL_INFO;
static int log_journal;		/* stderr is journald's: "<N>" priorities */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
log_init(const char *progname, enum log_level min)
{
	const char *env = getenv("CVIRT_LOG");
	enum log_level l;

	if (progname)
		log_prog = progname;
	log_min = min;
	/* systemd sets JOURNAL_STREAM for services whose stderr it reads:
	 * a "<N>" prefix files each line under its syslog priority. */
	log_journal = getenv("JOURNAL_STREAM") != NULL;
	if (env && log_level_parse(env, &l) == 0)
		log_min = l;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void
log_emit(enum log_level lvl, const char *tag, int err, const char *fmt,
    va_list ap)
{
	char ts[32];
	struct timespec now;
	struct tm tm;

	if (lvl < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	pthread_mutex_lock(&log_lock);
	if (log_journal)	/* debug 7, info 6, warning 4, error 3 */
		fprintf(stderr, "<%d>", lvl == LOG_LVL_DEBUG ? 7 :
		    lvl == LOG_LVL_INFO ? 6 : lvl == LOG_LVL_WARN ? 4 : 3);
	fprintf(stderr, "%s.%03ld %s %s: ", ts, now.tv_nsec / 1000000L,
	    log_prog, tag);
	vfprintf(stderr, fmt, ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
}

#define LOG_FN(name, lvl, tag, useerr)                     \
	void name(const char *fmt, ...)                    \
	{                                                  \
		int e = errno;                             \
		va_list ap;                                \
		va_start(ap, fmt);                         \
		log_emit(lvl, tag, useerr ? e : 0, fmt, ap); \
		va_end(ap);                                \
		errno = e;                                 \
	}

LOG_FN(log_debug, LOG_LVL_DEBUG, "debug", 0)
LOG_FN(log_info, LOG_LVL_INFO, "info", 0)
LOG_FN(log_warn, LOG_LVL_WARN, "warn", 1)
LOG_FN(log_warnx, LOG_LVL_WARN, "warn", 0)
LOG_FN(log_error, LOG_LVL_ERROR, "error", 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, "fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
