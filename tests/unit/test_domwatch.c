/* test_domwatch.c - unit test of the agent's per-domain storage threads
 * (src/agent/domwatch.c) and of what reads their cache (agent_info in
 * src/agent/agent_api.c): one of two domains hangs, and nothing but its
 * own thread waits on it.
 *
 * Domain "shared" is a FUSE filesystem served by this test (fusestall.c)
 * that stops answering, a real hang as on a stalled storage daemon;
 * "second" is a plain directory. Needs root (mount); skipped otherwise,
 * like test_privdrop. One test: the threads live for the process. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/httpd.h"
#include "common/util.h"
#include "fusestall.h"

/* A domain whose thread's call has been under way for over 3000 ms
 * (DW_STALE_MS) does not answer: 3500 ms after the stall it does not. A
 * call that reads the cache takes microseconds; 500 ms is a bound that
 * only a blocking call misses. */
#define T_STALE_WAIT_MS	3500
#define T_FAST_MS	500
/* A slow "shared": each FUSE request answered after 300 ms. A check is 5
 * requests (stat, lookup and access of vms/, statfs), a lease read 3 or 4:
 * each call at most 1500 ms, under the 3000 ms bound, while from the
 * start of a check to the end of the next one takes over 4 s. */
#define T_SLOW_REQ_MS	300
#define T_SLOW_FOR_MS	9000

static char t_dir[64];
static struct fusestall *t_fs;

/* A failed test still unmounts: nothing may be left hanging on it. */
static int
teardown(void **state)
{
	(void)state;
	fusestall_stop(t_fs);
	t_fs = NULL;
	return 0;
}

static json_t *
t_entry(json_t *storage, const char *name)
{
	json_t *e;
	size_t i;

	json_array_foreach(storage, i, e)
		if (strcmp(json_string_value(json_object_get(e, "name")),
		    name) == 0)
			return e;
	return NULL;
}

struct t_call {
	json_t		*info;
	volatile int	 done;
};

static void *
t_agent_info(void *arg)
{
	struct t_call *c = arg;

	c->info = agent_info();
	c->done = 1;
	return NULL;
}

/* A fake manager: registration answers a key, reports are kept. */
static pthread_mutex_t t_mgr_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *t_reports;

static int
t_register(struct httpd_req *r)
{
	return httpd_reply_json(r, 200, json_pack("{s:s, s:i}", "agent_key",
	    "k1", "heartbeat_interval_ms", 200));
}

static int
t_report(struct httpd_req *r)
{
	pthread_mutex_lock(&t_mgr_lock);
	json_array_append(t_reports, r->body);
	pthread_mutex_unlock(&t_mgr_lock);
	return httpd_reply_json(r, 200, json_pack("{s:b, s:[]}", "ok", 1,
	    "stop"));
}

static const struct httpd_route t_mgr_routes[] = {
	{ "POST", "/api/v1/agent/register", t_register, HTTPD_NOAUTH, 0 },
	{ "POST", "/api/v1/agent/report", t_report, HTTPD_NOAUTH, 0 },
};

/* A free loopback port (bound and released: taken again at once). */
static int
t_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* The reports sent while "shared" hangs: they go on every 200 ms, and each
 * says how each domain is (ok, error, direct) and its lease, from caches
 * (the manager restarts a domain's VMs on a report that says it is
 * lost). Guards report.c report_send() (storage and keeperctl_info's
 * fields; before, reports had no storage) and the report thread not
 * waiting on storage. */
static void
t_reports_go_on(void)
{
	struct httpd_config hc;
	struct httpd *h;
	char listen[64];
	json_t *last, *e;
	int64_t until;
	size_t n = 0;

	memset(&hc, 0, sizeof(hc));
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", t_port());
	hc.listen = listen;
	hc.threads = 2;
	hc.routes = t_mgr_routes;
	hc.nroutes = sizeof(t_mgr_routes) / sizeof(t_mgr_routes[0]);
	assert_non_null(t_reports = json_array());
	assert_non_null(h = httpd_start(&hc));
	snprintf(agent_cfg.manager, sizeof(agent_cfg.manager), "http://%s",
	    listen);
	snprintf(agent_cfg.token, sizeof(agent_cfg.token), "t1");
	assert_int_equal(report_start(), 0);
	for (until = util_mono_ms() + 5000; n < 3 && util_mono_ms() < until; ) {
		util_sleep_ms(50);
		pthread_mutex_lock(&t_mgr_lock);
		n = json_array_size(t_reports);
		pthread_mutex_unlock(&t_mgr_lock);
	}
	report_stop();
	httpd_stop(h);
	assert_true(n >= 3);
	last = json_array_get(t_reports, n - 1);
	assert_non_null(json_object_get(last, "fence"));
	assert_non_null(json_object_get(last, "keeper"));
	e = t_entry(json_object_get(last, "storage"), "shared");
	assert_non_null(e);
	assert_true(json_is_false(json_object_get(e, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(e, "error")),
	    "does not answer"));
	/* No keeper answers here: nobody renews, the lease is lost. */
	assert_string_equal(json_string_value(json_object_get(e, "lease")),
	    "lost");
	assert_true(json_is_boolean(json_object_get(e, "direct")));
	assert_non_null(t_entry(json_object_get(last, "storage"), "second"));
	json_decref(t_reports);
	t_reports = NULL;
}

/* "shared" is slow but live: every call of its thread ends within the
 * bound, a round and the next check take longer. It answers all along:
 * requests wait for a slow call under way and go on. Guards domwatch.c
 * dw_busy, dw_wait and dw_usable (before: a domain whose last check
 * started over 1500 ms ago did not answer, which counted the round's other
 * calls and its pause as silence; `vm serial` failed on a busy GlusterFS
 * after a failover, in CI's fault suite). */
static void
t_slow_domain_answers(struct fusestall *fs)
{
	char err[256];
	int64_t until;
	json_t *l;
	int status, n = 0;

	fusestall_slow(fs, T_SLOW_REQ_MS);
	for (until = util_mono_ms() + T_SLOW_FOR_MS; util_mono_ms() < until;
	    n++, util_sleep_ms(50)) {
		if (domwatch_ok("shared", err, sizeof(err)) < 0)
			fail_msg("a slow domain does not answer: %s", err);
		if ((l = domwatch_leases("shared", err, sizeof(err),
		    &status)) == NULL)
			fail_msg("a slow domain's leases: %d %s", status, err);
		json_decref(l);
	}
	fusestall_slow(fs, 0);
	assert_true(n > 3);
}

/* Guards domwatch.c (the cache, its 3000 ms bound, the snapshot's
 * ages, the isolation jobs on each domain's own thread) and agent_api.c
 * api_info (the cache only: before, it called store_domain_check and
 * statvfs on every domain and hung with the domain). */
static void
test_one_hung_domain_blocks_nothing_else(void **state)
{
	char path[PATH_MAX], link[PATH_MAX], err[256];
	struct fusestall *fs;
	struct t_call c = { NULL, 0 };
	json_t *l, *e, *spec;
	pthread_t thr;
	int64_t t0, until;
	int status, fd, direct;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(fs = t_fs = fusestall_start(agent_cfg.storage[0].path));
	/* What the kernel says of O_DIRECT on "second", asked directly. */
	assert_int_equal(util_fmt(path, sizeof(path), "%s/odirect",
	    agent_cfg.storage[1].path), 0);
	fd = open(path, O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	direct = fd >= 0;
	if (fd >= 0)
		close(fd);
	unlink(path);

	assert_int_equal(domwatch_start(), 0);
	/* The FUSE domain creates no file: no O_DIRECT there. */
	assert_int_equal(agent_cfg.storage[0].direct, 0);
	assert_int_equal(agent_cfg.storage[1].direct, direct);
	/* The threads' first rounds, checks and lease snapshots (a readiness
	 * wait, no bound under test: 2 s ran out once beside a load of 8.5
	 * on 2 cores, and a full run's load once left "shared" ok but its
	 * snapshot not yet read, or a round late). */
	for (until = util_mono_ms() + 10000, l = NULL; util_mono_ms() < until;
	    util_sleep_ms(20)) {
		if (domwatch_ok("shared", err, sizeof(err)) < 0 ||
		    domwatch_ok("second", err, sizeof(err)) < 0)
			continue;
		if ((l = domwatch_leases("shared", err, sizeof(err),
		    &status)) != NULL)
			break;
	}
	assert_int_equal(domwatch_ok("shared", err, sizeof(err)), 0);
	assert_int_equal(domwatch_ok("second", err, sizeof(err)), 0);
	assert_non_null(l);
	assert_int_equal(status, 200);
	assert_true(json_integer_value(json_object_get(l,
	    "read_start_age_ms")) <= 3000);
	assert_true(json_is_integer(json_object_get(l, "read_ms")));
	assert_int_equal(json_object_size(json_object_get(l, "leases")), 0);
	json_decref(l);
	assert_null(domwatch_leases("third", err, sizeof(err), &status));
	assert_int_equal(status, 400);

	/* Another host's lease record on "second" shows in its snapshot. */
	assert_int_equal(util_fmt(path, sizeof(path), "%s/leases/h2.json",
	    agent_cfg.storage[1].path), 0);
	assert_int_equal(util_write_file_atomic(path,
	    "{\"host\":\"h2\",\"seq\":5,\"seq_end\":5}", 33, 0644), 0);
	util_sleep_ms(1100);
	assert_non_null(l = domwatch_leases("second", err, sizeof(err),
	    &status));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    json_object_get(json_object_get(l, "leases"), "h2"), "lease"),
	    "seq")), 5);
	json_decref(l);
	/* A record that is a symlink (to a record outside the domain) is not
	 * read: leasefile.c opens each O_NOFOLLOW. */
	assert_int_equal(util_fmt(path, sizeof(path), "%s/h3.json", t_dir), 0);
	assert_int_equal(util_write_file_atomic(path,
	    "{\"host\":\"h3\",\"seq\":7,\"seq_end\":7}", 33, 0644), 0);
	assert_int_equal(util_fmt(link, sizeof(link), "%s/leases/h3.json",
	    agent_cfg.storage[1].path), 0);
	assert_int_equal(symlink(path, link), 0);
	util_sleep_ms(1100);
	assert_non_null(l = domwatch_leases("second", err, sizeof(err),
	    &status));
	assert_non_null(json_object_get(json_object_get(l, "leases"), "h2"));
	assert_null(json_object_get(json_object_get(l, "leases"), "h3"));
	json_decref(l);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(unlink(path), 0);
	/* A FIFO named like a record blocks no read: the snapshot after it
	 * was made is new (a blocked open left the one before, ever older). */
	assert_int_equal(mkfifo(link, 0644), 0);
	util_sleep_ms(1100);
	assert_non_null(l = domwatch_leases("second", err, sizeof(err),
	    &status));
	assert_true(json_integer_value(json_object_get(l,
	    "read_start_age_ms")) < 1000);
	assert_non_null(json_object_get(json_object_get(l, "leases"), "h2"));
	json_decref(l);
	assert_int_equal(unlink(link), 0);

	t_slow_domain_answers(fs);

	/* "shared" hangs. */
	fusestall_stall(fs);
	util_sleep_ms(T_STALE_WAIT_MS);
	t0 = util_mono_ms();
	assert_int_equal(domwatch_ok("shared", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "storage shared does not answer on host "
	    "h1"));
	assert_null(domwatch_leases("shared", err, sizeof(err), &status));
	assert_int_equal(status, 503);
	assert_non_null(strstr(err, "storage shared: lease read stalled for "));
	assert_int_equal(domwatch_ok("second", err, sizeof(err)), 0);
	assert_non_null(l = domwatch_leases("second", err, sizeof(err),
	    &status));
	json_decref(l);
	spec = json_pack("{s:s, s:[]}", "storage", "second", "disks");
	assert_int_equal(domwatch_ready(spec, err, sizeof(err)), 0);
	json_object_set_new(spec, "storage", json_string("shared"));
	assert_int_equal(domwatch_ready(spec, err, sizeof(err)), -1);
	json_decref(spec);
	assert_true(util_mono_ms() - t0 < T_FAST_MS);

	/* Registration's body: from the cache, at once. */
	assert_int_equal(pthread_create(&thr, NULL, t_agent_info, &c), 0);
	for (until = util_mono_ms() + T_FAST_MS; !c.done &&
	    util_mono_ms() < until; )
		util_sleep_ms(5);
	if (!c.done)
		fail_msg("agent_info() blocks on the hung domain");
	pthread_join(thr, NULL);
	e = t_entry(json_object_get(c.info, "storage"), "shared");
	assert_non_null(e);
	assert_true(json_is_false(json_object_get(e, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(e, "error")),
	    "does not answer"));
	assert_true(json_is_false(json_object_get(e, "direct")));
	json_decref(c.info);

	t_reports_go_on();

	/* The isolation record goes to "second" although "shared" hangs. */
	spec = json_pack("[s]", "u1");
	t0 = util_mono_ms();
	domwatch_isolation(spec);
	assert_true(util_mono_ms() - t0 < T_FAST_MS);
	json_decref(spec);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/leases/h1."
	    "isolation.json", agent_cfg.storage[1].path), 0);
	for (until = util_mono_ms() + 2000; access(path, F_OK) < 0 &&
	    util_mono_ms() < until; )
		util_sleep_ms(20);
	assert_int_equal(access(path, F_OK), 0);
	domwatch_isolation_clear();
	for (until = util_mono_ms() + 2000; access(path, F_OK) == 0 &&
	    util_mono_ms() < until; )
		util_sleep_ms(20);
	assert_int_equal(access(path, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_one_hung_domain_blocks_nothing_else,
		    teardown),
	};
	char path[PATH_MAX];
	int rc, i;

	signal(SIGPIPE, SIG_IGN);
	snprintf(t_dir, sizeof(t_dir), "/tmp/cvirt-domwatch.XXXXXX");
	if (mkdtemp(t_dir) == NULL)
		return 1;
	snprintf(agent_cfg.name, sizeof(agent_cfg.name), "h1");
	snprintf(agent_cfg.data, sizeof(agent_cfg.data), "%s/data", t_dir);
	snprintf(agent_cfg.run, sizeof(agent_cfg.run), "%s/run", t_dir);
	for (i = 0; i < 2; i++) {
		snprintf(agent_cfg.storage[i].name,
		    sizeof(agent_cfg.storage[i].name), "%s", i ? "second" :
		    "shared");
		if (util_fmt(agent_cfg.storage[i].path,
		    sizeof(agent_cfg.storage[i].path), "%s/%s", t_dir,
		    agent_cfg.storage[i].name) < 0 ||
		    util_mkdir_p(agent_cfg.storage[i].path, 0700) < 0)
			return 1;
	}
	agent_cfg.nstorage = 2;
	if (util_fmt(path, sizeof(path), "%s/vms", agent_cfg.storage[1].path) <
	    0 || util_mkdir_p(path, 0700) < 0 ||
	    util_fmt(path, sizeof(path), "%s/leases",
	    agent_cfg.storage[1].path) < 0 || util_mkdir_p(path, 0700) < 0 ||
	    vmhost_init() < 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	util_rm_rf(t_dir);
	return rc;
}
