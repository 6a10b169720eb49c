/* metrics.c - fixed-size tables of Prometheus histograms and counters under
 * one mutex: cheap enough to record from every request thread. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "common/metrics.h"

#define METRICS_SERIES	256	/* per family; later label sets are dropped */
#define METRICS_COUNTERS 64
#define METRICS_LABEL	96

static const double metrics_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5, 10, 30, 60, 300,
};
#define METRICS_NB (sizeof(metrics_bounds) / sizeof(metrics_bounds[0]))

struct metrics_series {
	char		l1[METRICS_LABEL], l2[METRICS_LABEL];
	uint64_t	buckets[METRICS_NB];	/* non-cumulative */
	uint64_t	count;
	double		sum;
};

static const struct {
	const char	*name, *help, *k1, *k2;
} metrics_fams[METRICS_NFAMILIES] = {
	[METRICS_HTTP] = { "cvirt_api_request_duration_seconds",
	    "Time to answer an API request, by route.", "method", "route" },
	[METRICS_TASK] = { "cvirt_task_duration_seconds",
	    "Time from submission to the end of a task, by kind.", "kind",
	    "result" },
	[METRICS_SCHED] = { "cvirt_placement_duration_seconds",
	    "Time to choose a host for a VM.", "result", NULL },
};

static struct metrics_series metrics_tab[METRICS_NFAMILIES][METRICS_SERIES];
static size_t metrics_n[METRICS_NFAMILIES];
static struct {
	char		name[64], label[32], value[METRICS_LABEL];
	uint64_t	n;
} metrics_ctr[METRICS_COUNTERS];
static size_t metrics_nctr;
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

void
metrics_observe(enum metrics_family fam, const char *l1, const char *l2,
    double seconds)
{
	struct metrics_series *s = NULL;
	size_t i;

	if (fam >= METRICS_NFAMILIES)
		return;
	l1 = l1 ? l1 : "";
	l2 = l2 ? l2 : "";
	pthread_mutex_lock(&metrics_lock);
	for (i = 0; i < metrics_n[fam]; i++) {
		s = &metrics_tab[fam][i];
		if (strncmp(s->l1, l1, METRICS_LABEL - 1) == 0 &&
		    strncmp(s->l2, l2, METRICS_LABEL - 1) == 0)
			break;
	}
	if (i == metrics_n[fam]) {
		if (i == METRICS_SERIES) {
			pthread_mutex_unlock(&metrics_lock);
			return;
		}
		s = &metrics_tab[fam][metrics_n[fam]++];
		snprintf(s->l1, sizeof(s->l1), "%s", l1);
		snprintf(s->l2, sizeof(s->l2), "%s", l2);
	}
	for (i = 0; i < METRICS_NB && seconds > metrics_bounds[i]; i++)
		;
	if (i < METRICS_NB)
		s->buckets[i]++;
	s->count++;
	s->sum += seconds;
	pthread_mutex_unlock(&metrics_lock);
}

void
metrics_count(const char *name, const char *label, const char *value)
{
	size_t i;

	pthread_mutex_lock(&metrics_lock);
	for (i = 0; i < metrics_nctr; i++)
		if (strcmp(metrics_ctr[i].name, name) == 0 &&
		    strcmp(metrics_ctr[i].value, value) == 0)
			break;
	if (i == metrics_nctr && metrics_nctr < METRICS_COUNTERS) {
		snprintf(metrics_ctr[i].name, sizeof(metrics_ctr[i].name), "%s",
		    name);
		snprintf(metrics_ctr[i].label, sizeof(metrics_ctr[i].label),
		    "%s", label);
		snprintf(metrics_ctr[i].value, sizeof(metrics_ctr[i].value),
		    "%s", value);
		metrics_nctr++;
	}
	if (i < metrics_nctr)
		metrics_ctr[i].n++;
	pthread_mutex_unlock(&metrics_lock);
}

void
metrics_escape(const char *in, char *out, size_t outsz)
{
	size_t o = 0;

	for (; in && *in && o + 3 < outsz; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n') {
			out[o++] = '\\';
			out[o++] = *in == '\n' ? 'n' : *in;
		} else {
			out[o++] = *in;
		}
	}
	if (outsz)
		out[o < outsz ? o : outsz - 1] = '\0';
}

static void
metrics_write_family(FILE *f, size_t fam)
{
	char a[2 * METRICS_LABEL], b[2 * METRICS_LABEL], lab[5 * METRICS_LABEL];
	const char *n = metrics_fams[fam].name;
	uint64_t cum;
	size_t i, k;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", n,
	    metrics_fams[fam].help, n);
	for (i = 0; i < metrics_n[fam]; i++) {
		struct metrics_series *s = &metrics_tab[fam][i];

		metrics_escape(s->l1, a, sizeof(a));
		metrics_escape(s->l2, b, sizeof(b));
		/* The labels of this series: k1="a" or k1="a",k2="b". */
		snprintf(lab, sizeof(lab), metrics_fams[fam].k2 ?
		    "%s=\"%s\",%s=\"%s\"" : "%s=\"%s\"", metrics_fams[fam].k1, a,
		    metrics_fams[fam].k2, b);
		for (cum = 0, k = 0; k < METRICS_NB; k++) {
			cum += s->buckets[k];
			fprintf(f, "%s_bucket{%s,le=\"%g\"} %llu\n", n, lab,
			    metrics_bounds[k], (unsigned long long)cum);
		}
		fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n", n, lab,
		    (unsigned long long)s->count);
		fprintf(f, "%s_sum{%s} %.6f\n", n, lab, s->sum);
		fprintf(f, "%s_count{%s} %llu\n", n, lab,
		    (unsigned long long)s->count);
	}
}

void
metrics_write(FILE *f)
{
	char v[2 * METRICS_LABEL];
	size_t fam, i, k;

	pthread_mutex_lock(&metrics_lock);
	for (fam = 0; fam < METRICS_NFAMILIES; fam++)
		metrics_write_family(f, fam);
	/* Counters grouped by name: one HELP/TYPE per name. */
	for (i = 0; i < metrics_nctr; i++) {
		for (k = 0; k < i; k++)
			if (strcmp(metrics_ctr[k].name, metrics_ctr[i].name) == 0)
				break;
		if (k < i)
			continue;
		fprintf(f, "# HELP cvirt_%s_total Events counted since the "
		    "manager started.\n# TYPE cvirt_%s_total counter\n",
		    metrics_ctr[i].name, metrics_ctr[i].name);
		for (k = i; k < metrics_nctr; k++) {
			if (strcmp(metrics_ctr[k].name, metrics_ctr[i].name) != 0)
				continue;
			metrics_escape(metrics_ctr[k].value, v, sizeof(v));
			fprintf(f, "cvirt_%s_total{%s=\"%s\"} %llu\n",
			    metrics_ctr[k].name, metrics_ctr[k].label, v,
			    (unsigned long long)metrics_ctr[k].n);
		}
	}
	pthread_mutex_unlock(&metrics_lock);
}
