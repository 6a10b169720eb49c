/* fuzz_router.c - libFuzzer target: request routing over every route table
 * a server has (the manager's api_route_tables, in its match order, the
 * agent's and cvirt sim's) and request-body JSON decoding.
 * Input: "METHOD PATH\nBODY". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/httpd.h"
#include "manager/manager_int.h"
#include "sim/sim_int.h"

static FILE *fuzz_err;	/* stderr, kept open past -close_fd_mask=2 */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* libFuzzer calls us before it closes the target's stderr. */
	if ((fuzz_err = fdopen(dup(2), "w")) == NULL)
		abort();
	setvbuf(fuzz_err, NULL, _IONBF, 0);
	return 0;
}

/* Routes path through one server's table as httpd_dispatch does: the
 * first route whose pattern and method match takes it. Any route that
 * matches yields only non-empty, slash-free captures; and no route after
 * the one taken, with its method, matches with fewer captures (it would
 * be more literal, so shadowed: a route nobody can reach). */
static void
fuzz_table(const struct httpd_route *rt, size_t n, const char *method,
    const char *path)
{
	struct httpd_req r;
	size_t k;
	int i, taken = -1;

	for (k = 0; k < n; k++) {
		memset(&r, 0, sizeof(r));
		if (!httpd_route_match(rt[k].pattern, path, &r))
			continue;
		if (r.nparams > HTTPD_MAX_PARAMS)
			abort();
		for (i = 0; i < r.nparams; i++)
			if (r.params[i][0] == '\0' || strchr(r.params[i], '/'))
				abort();
		if (strcmp(rt[k].method, method) == 0) {
			if (taken < 0) {
				taken = r.nparams;
			} else if (r.nparams < taken) {
				fprintf(fuzz_err, "fuzz_router: %s %s shadowed\n",
				    rt[k].method, rt[k].pattern);
				abort();
			}
		}
		for (i = 0; i < r.nparams; i++)
			free(r.params[i]);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct httpd_route *mgr;
	static size_t nmgr;
	char line[8192], err[256];
	const char *nl = memchr(data, '\n', size), *path, *method = "GET";
	size_t n = nl ? (size_t)(nl - (const char *)data) : size;
	json_t *j;

	if (mgr == NULL && (mgr = api_routes_join(&nmgr)) == NULL)
		abort();
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, data, n);
	line[n] = '\0';
	path = line;
	if (strchr(line, ' ') != NULL) {
		path = strchr(line, ' ') + 1;
		line[path - line - 1] = '\0';
		method = line;
	}
	fuzz_table(mgr, nmgr, method, path);
	fuzz_table(agent_routes, agent_nroutes, method, path);
	fuzz_table(sim_routes, sim_nroutes, method, path);
	if (nl != NULL) {
		/* The body length comes from the newline, not from n, which
		 * is clipped to the line buffer. */
		j = httpd_json_decode(nl + 1,
		    size - (size_t)(nl - (const char *)data) - 1, err,
		    sizeof(err));
		if (j != NULL && !json_is_object(j))
			abort();
		json_decref(j);
	}
	return 0;
}
