/* test_login.c - unit tests for login throttling (src/manager/
 * loginlimit.c): attempts are reserved before they are checked, a blocked
 * address stays blocked however many others fail, IPv6 counts per /64,
 * and attempts in flight are capped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "manager/manager_int.h"

#define T0	1000000000000LL	/* a wall clock, ms */

static int
reserve(const char *addr, int64_t now)
{
	char err[160];

	return loginlimit_reserve(addr, now, err, sizeof(err));
}

/* Five reservations in flight from one address: the sixth is refused
 * before any of them is known to fail (check-then-act let ~32 through). */
static void
test_reserve_before_check(void **state)
{
	char err[160];
	int i;

	for (i = 0; i < 5; i++)
		assert_int_equal(reserve("192.0.2.1", T0), 0);
	assert_int_equal(loginlimit_reserve("192.0.2.1", T0, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "try again in"));
	assert_null(strchr(err, '\n'));
	/* Successes free their reservation and count nothing. */
	for (i = 0; i < 5; i++)
		loginlimit_release("192.0.2.1", 0);
	assert_int_equal(reserve("192.0.2.1", T0), 0);
	loginlimit_release("192.0.2.1", 1);
	/* Failures stay for the window. */
	for (i = 0; i < 4; i++) {
		assert_int_equal(reserve("192.0.2.1", T0 + 1), 0);
		loginlimit_release("192.0.2.1", 1);
	}
	assert_int_equal(reserve("192.0.2.1", T0 + 59000), -1);
	assert_int_equal(reserve("192.0.2.1", T0 + 60000), 0);
	loginlimit_release("192.0.2.1", 0);
}

/* A blocked address is not evicted by failures from 5,000 others (the
 * table holds 4,096; the oldest-first eviction before gave its slot away
 * and its count restarted). */
static void
test_blocked_not_evicted(void **state)
{
	char addr[64];
	int i;
	int64_t now = T0 + 1000000;

	for (i = 0; i < 5; i++) {
		assert_int_equal(reserve("198.51.100.7", now), 0);
		loginlimit_release("198.51.100.7", 1);
	}
	assert_int_equal(reserve("198.51.100.7", now), -1);
	for (i = 0; i < 5000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.1", i / 256, i % 256);
		assert_int_equal(reserve(addr, now + 1), 0);
		loginlimit_release(addr, 1);
	}
	assert_int_equal(reserve("198.51.100.7", now + 2), -1);
	/* Once the window is over, it may try again. */
	assert_int_equal(reserve("198.51.100.7", now + 60000), 0);
	loginlimit_release("198.51.100.7", 0);
}

/* Every slot blocked: a new address is refused, not given a blocked
 * one's slot. */
static void
test_full_table_refuses(void **state)
{
	char addr[64], err[160];
	int i, k;
	int64_t now = T0 + 3000000;

	for (i = 0; i < 4096; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.2", i / 256, i % 256);
		for (k = 0; k < 5; k++) {
			assert_int_equal(reserve(addr, now), 0);
			loginlimit_release(addr, 1);
		}
	}
	assert_int_equal(loginlimit_reserve("192.0.2.99", now + 1, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "too many clients"));
	assert_int_equal(reserve("10.0.0.2", now + 1), -1);
	assert_int_equal(reserve("192.0.2.99", now + 60000), 0);
	loginlimit_release("192.0.2.99", 0);
}

/* An address with a few failures may give way to a new one; one blocked
 * may not. */
static void
test_partial_may_be_evicted(void **state)
{
	char addr[64];
	int i;
	int64_t now = T0 + 5000000;

	assert_int_equal(reserve("203.0.113.9", now), 0);
	loginlimit_release("203.0.113.9", 1);
	for (i = 0; i < 5000; i++) {
		snprintf(addr, sizeof(addr), "172.16.%d.%d", i / 256, i % 256);
		assert_int_equal(reserve(addr, now + 1), 0);
		loginlimit_release(addr, 1);
	}
	/* Evicted (its one failure forgotten) or still there: either way
	 * it has at least four attempts left. */
	for (i = 0; i < 4; i++) {
		assert_int_equal(reserve("203.0.113.9", now + 2), 0);
		loginlimit_release("203.0.113.9", 1);
	}
}

/* IPv6 addresses count per /64; IPv4-mapped ones as IPv4. */
static void
test_ipv6_prefix(void **state)
{
	int64_t now = T0 + 9000000;
	int i;

	for (i = 0; i < 5; i++) {
		assert_int_equal(reserve("2001:db8:1:2::1", now), 0);
		loginlimit_release("2001:db8:1:2::1", 1);
	}
	assert_int_equal(reserve("2001:db8:1:2:ffff::9", now), -1);
	assert_int_equal(reserve("2001:db8:1:3::1", now), 0);
	loginlimit_release("2001:db8:1:3::1", 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(reserve("::ffff:192.0.2.200", now), 0);
		loginlimit_release("::ffff:192.0.2.200", 1);
	}
	assert_int_equal(reserve("192.0.2.200", now), -1);
}

/* At most 16 attempts in flight, all addresses together. */
static void
test_inflight_cap(void **state)
{
	char addr[64], err[160];
	int64_t now = T0 + 13000000;
	int i;

	for (i = 0; i < 16; i++) {
		snprintf(addr, sizeof(addr), "100.64.0.%d", i);
		assert_int_equal(reserve(addr, now), 0);
	}
	assert_int_equal(loginlimit_reserve("100.64.1.1", now, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "at once"));
	for (i = 0; i < 16; i++) {
		snprintf(addr, sizeof(addr), "100.64.0.%d", i);
		loginlimit_release(addr, 0);
	}
	assert_int_equal(reserve("100.64.1.1", now), 0);
	loginlimit_release("100.64.1.1", 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve_before_check),
		cmocka_unit_test(test_blocked_not_evicted),
		cmocka_unit_test(test_full_table_refuses),
		cmocka_unit_test(test_partial_may_be_evicted),
		cmocka_unit_test(test_ipv6_prefix),
		cmocka_unit_test(test_inflight_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
