/* fuzz_router.c - libFuzzer target: the request router (every manager and
 * agent route table) and request-body JSON decoding.
 * Input: "METHOD PATH\nBODY". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "common/httpd.h"
#include "manager/manager_int.h"

static void
fuzz_routes(const struct httpd_route *rt, size_t n, const char *path)
{
	struct httpd_req r;
	size_t k;
	int i;

	for (k = 0; k < n; k++) {
		memset(&r, 0, sizeof(r));
		if (!httpd_route_match(rt[k].pattern, path, &r))
			continue;
		/* A captured segment is never empty and never spans '/'. */
		if (r.nparams > HTTPD_MAX_PARAMS)
			abort();
		for (i = 0; i < r.nparams; i++) {
			if (r.params[i][0] == '\0' || strchr(r.params[i], '/'))
				abort();
			free(r.params[i]);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[8192], err[256];
	const char *nl = memchr(data, '\n', size), *path;
	size_t n = nl ? (size_t)(nl - (const char *)data) : size;
	json_t *j;

	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, data, n);
	line[n] = '\0';
	path = strchr(line, ' ') ? strchr(line, ' ') + 1 : line;
	fuzz_routes(api_vm_routes, api_vm_nroutes, path);
	fuzz_routes(api_host_routes, api_host_nroutes, path);
	fuzz_routes(api_task_routes, api_task_nroutes, path);
	fuzz_routes(api_misc_routes, api_misc_nroutes, path);
	fuzz_routes(api_users_routes, api_users_nroutes, path);
	fuzz_routes(api_agent_routes, api_agent_nroutes, path);
	fuzz_routes(agent_routes, agent_nroutes, path);
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
