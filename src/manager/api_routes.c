/* api_routes.c - every route table the manager serves, in match order: the
 * one list the server, the OpenAPI document and tests/fuzz walk. */
#include <stdlib.h>
#include <string.h>

#include "manager/manager_int.h"

/* First match wins (common/httpd.c), so literal routes go before the
 * tables whose "{}" segments would take them. */
/* api_X_routes and api_X_nroutes, named as they are in the source. */
#define API_TABLE(x)	{ "api_" #x "_routes", api_##x##_routes, \
			  &api_##x##_nroutes }

const struct api_route_table api_route_tables[] = {
	API_TABLE(web),
	API_TABLE(storage),
	API_TABLE(media),
	API_TABLE(snapshot),
	API_TABLE(network),
	API_TABLE(vm),
	API_TABLE(host),
	API_TABLE(task),
	API_TABLE(agent),
	API_TABLE(misc),
	API_TABLE(users),
	API_TABLE(login),
	API_TABLE(audit),
	API_TABLE(pki),
	API_TABLE(cluster),
};
const size_t api_route_ntables = sizeof(api_route_tables) /
    sizeof(api_route_tables[0]);

struct httpd_route *
api_routes_join(size_t *n)
{
	struct httpd_route *all;
	size_t i, total = 0;

	for (i = 0; i < api_route_ntables; i++)
		total += *api_route_tables[i].n;
	if ((all = calloc(total, sizeof(*all))) == NULL)
		return NULL;
	for (*n = 0, i = 0; i < api_route_ntables; i++) {
		memcpy(all + *n, api_route_tables[i].routes,
		    *api_route_tables[i].n * sizeof(*all));
		*n += *api_route_tables[i].n;
	}
	return all;
}
