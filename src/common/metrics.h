/* metrics.h - in-process Prometheus histograms and counters (API latency,
 * task durations, HA events), written out in the text exposition format. */
#ifndef CVIRT_METRICS_H
#define CVIRT_METRICS_H

#include <stdio.h>

/* Families; each keeps one series per distinct label value set. */
enum metrics_family {
	METRICS_HTTP,		/* labels: method, route; seconds */
	METRICS_TASK,		/* labels: kind, result; seconds */
	METRICS_SCHED,		/* labels: result, (unused); seconds */
	METRICS_NFAMILIES
};

/* Records one observation; label values are copied (truncated at 95). */
void	metrics_observe(enum metrics_family fam, const char *l1,
	    const char *l2, double seconds);
/* Counter metric cvirt_<name>_total{label="value"} += 1. */
void	metrics_count(const char *name, const char *label, const char *value);
/* Writes every family and counter with HELP/TYPE lines. */
void	metrics_write(FILE *f);
/* A label value with \, " and newline escaped, into out. */
void	metrics_escape(const char *in, char *out, size_t outsz);

#endif
