/* test_routes.c - the manager's route registry (src/manager/api_routes.c):
 * every route table defined in src/manager/ is in it, and every route in
 * it is reachable in the server's first-match order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpd.h"
#include "manager/manager_int.h"

static int
routes_registered(const char *sym)
{
	size_t i;

	for (i = 0; i < api_route_ntables; i++)
		if (strcmp(api_route_tables[i].name, sym) == 0)
			return 1;
	return 0;
}

/* Guards api_route_tables (api_routes.c): a table left out of it would
 * be neither served nor fuzzed (tests/fuzz/fuzz_router.c walks it). Reads
 * the sources from the repository root, where tests/run runs us. */
static void
test_every_table_registered(void **state)
{
	char path[512], line[1024], sym[128];
	regmatch_t m[2];
	regex_t re;
	struct dirent *de;
	DIR *d;
	FILE *f;
	int found = 0;

	assert_int_equal(regcomp(&re, "const struct httpd_route "
	    "([a-z_]+)\\[\\] *=", REG_EXTENDED), 0);
	d = opendir("src/manager");
	assert_non_null(d);	/* run from the repository root */
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 3 || strcmp(de->d_name + len - 2, ".c") != 0)
			continue;
		snprintf(path, sizeof(path), "src/manager/%s", de->d_name);
		assert_non_null(f = fopen(path, "r"));
		while (fgets(line, sizeof(line), f) != NULL) {
			if (regexec(&re, line, 2, m, 0) != 0)
				continue;
			snprintf(sym, sizeof(sym), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			if (!routes_registered(sym))
				fail_msg("%s: route table %s is not in "
				    "api_route_tables (src/manager/api_routes.c)",
				    path, sym);
			found++;
		}
		fclose(f);
	}
	closedir(d);
	regfree(&re);
	/* Each registered table was found once in the sources. */
	assert_int_equal((size_t)found, api_route_ntables);
}

static int
routes_match(const struct httpd_route *rt, const char *path)
{
	struct httpd_req r;
	int i, ok;

	memset(&r, 0, sizeof(r));
	ok = httpd_route_match(rt->pattern, path, &r);
	for (i = 0; i < r.nparams; i++)
		free(r.params[i]);
	return ok;
}

/* Guards the order of api_route_tables and of each table: with first
 * match winning (common/httpd.c: httpd_dispatch), a route listed after
 * one that takes all its paths would never run. Each route's own path,
 * with "{}" filled in, must reach that route first. */
static void
test_every_route_reachable(void **state)
{
	struct httpd_route *all;
	char path[512];
	size_t n, i, k, o;
	const char *p;

	all = api_routes_join(&n);
	assert_non_null(all);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		for (o = 0, p = all[i].pattern; *p && o + 3 < sizeof(path); p++) {
			if (p[0] == '{' && p[1] == '}') {
				memcpy(path + o, "x1", 2);
				o += 2;
				p++;
			} else {
				path[o++] = *p;
			}
		}
		path[o] = '\0';
		for (k = 0; k < n; k++)
			if (strcmp(all[k].method, all[i].method) == 0 &&
			    routes_match(&all[k], path))
				break;
		assert_true(k < n);
		if (k != i)
			fail_msg("%s %s is taken by %s %s listed before it",
			    all[i].method, all[i].pattern, all[k].method,
			    all[k].pattern);
	}
	free(all);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_table_registered),
		cmocka_unit_test(test_every_route_reachable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
