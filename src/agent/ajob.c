/* ajob.c - the agent's background jobs (backups, disk copies, merges): run
 * in their own thread, polled by the manager through /agent/v1/jobs/ID.
 *
 * The table owns every job; a finished job is kept until the table needs
 * its slot (oldest finished first), so a manager that restarts mid-poll
 * still finds the outcome for a while. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/util.h"

#define AJOB_MAX 256

struct ajob {
	char		 id[AJOB_ID_LEN + 1];
	ajob_fn		 fn;
	json_t		*args;
	/* under ajob_lock: */
	int		 done, ok, progress;
	int64_t		 finished_ms;
	json_t		*result;
	char		 err[512];
};

static pthread_mutex_t ajob_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ajob *ajobs[AJOB_MAX];

static void *
ajob_main(void *arg)
{
	struct ajob *j = arg;
	json_t *result = NULL;
	char err[512] = "";
	int rc;

	rc = j->fn(j, j->args, &result, err, sizeof(err));
	if (rc < 0 && err[0] == '\0')
		snprintf(err, sizeof(err), "job failed");
	if (rc < 0)
		log_warnx("job %s failed: %s", j->id, err);
	pthread_mutex_lock(&ajob_lock);
	j->done = 1;
	j->ok = rc == 0;
	j->progress = rc == 0 ? 100 : j->progress;
	j->result = result;
	j->finished_ms = util_mono_ms();
	snprintf(j->err, sizeof(j->err), "%s", err);
	pthread_mutex_unlock(&ajob_lock);
	return NULL;
}

static void
ajob_free(struct ajob *j)
{
	if (j == NULL)
		return;
	json_decref(j->args);
	json_decref(j->result);
	free(j);
}

/* A free slot, evicting the oldest finished job if needed; -1 if full. */
static int
ajob_slot(void)
{
	int i, old = -1;

	for (i = 0; i < AJOB_MAX; i++) {
		if (ajobs[i] == NULL)
			return i;
		if (ajobs[i]->done && (old < 0 ||
		    ajobs[i]->finished_ms < ajobs[old]->finished_ms))
			old = i;
	}
	if (old >= 0) {
		ajob_free(ajobs[old]);
		ajobs[old] = NULL;
	}
	return old;
}

int
ajob_start(ajob_fn fn, json_t *args, char *id, size_t idsz)
{
	pthread_attr_t attr;
	pthread_t th;
	struct ajob *j;
	int slot, rc = -1;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		json_decref(args);
		return -1;
	}
	j->fn = fn;
	j->args = args;
	util_random_hex(j->id, AJOB_ID_LEN / 2);
	pthread_mutex_lock(&ajob_lock);
	if ((slot = ajob_slot()) >= 0)
		ajobs[slot] = j;
	pthread_mutex_unlock(&ajob_lock);
	if (slot < 0)
		goto cleanup;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 1 << 20);
	if (pthread_create(&th, &attr, ajob_main, j) != 0) {
		pthread_attr_destroy(&attr);
		pthread_mutex_lock(&ajob_lock);
		ajobs[slot] = NULL;
		pthread_mutex_unlock(&ajob_lock);
		goto cleanup;
	}
	pthread_attr_destroy(&attr);
	snprintf(id, idsz, "%s", j->id);
	return 0;
cleanup:
	ajob_free(j);
	return rc;
}

void
ajob_progress(struct ajob *j, int pct)
{
	pthread_mutex_lock(&ajob_lock);
	j->progress = pct < 0 ? 0 : pct > 99 ? 99 : pct;
	pthread_mutex_unlock(&ajob_lock);
}

json_t *
ajob_get(const char *id)
{
	json_t *o = NULL;
	int i;

	pthread_mutex_lock(&ajob_lock);
	for (i = 0; i < AJOB_MAX; i++) {
		struct ajob *j = ajobs[i];
		if (j == NULL || strcmp(j->id, id) != 0)
			continue;
		o = json_pack("{s:s, s:s, s:i, s:s?, s:O?}", "id", j->id,
		    "state", !j->done ? "running" : j->ok ? "succeeded" : "failed",
		    "progress", j->progress, "error", j->done && !j->ok ? j->err :
		    NULL, "result", j->result);
		break;
	}
	pthread_mutex_unlock(&ajob_lock);
	return o;
}
