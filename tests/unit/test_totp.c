/* test_totp.c - unit tests for src/common/totp.c: RFC 6238's SHA-1 test
 * vectors (appendix B), RFC 4226's HOTP values (appendix D), the step
 * window (skew of one step either way), replay, base32 (RFC 4648). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/totp.h"

static const unsigned char key[] = "12345678901234567890";
#define KEYLEN 20

static void
test_rfc6238_vectors(void **state)
{
	static const struct { int64_t t; uint32_t code; } v[] = {
		{ 59, 94287082 }, { 1111111109, 7081804 },
		{ 1111111111, 14050471 }, { 1234567890, 89005924 },
		{ 2000000000, 69279037 }, { 20000000000LL, 65353130 },
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(totp_hotp(key, KEYLEN, totp_step(v[i].t), 8),
		    v[i].code);
}

static void
test_rfc4226_hotp(void **state)
{
	static const uint32_t want[] = { 755224, 287082, 359152, 969429,
	    338314, 254676, 287922, 162583, 399871, 520489 };
	uint64_t c;

	for (c = 0; c < 10; c++)
		assert_int_equal(totp_hotp(key, KEYLEN, c, 6), want[c]);
}

static const char *
code_at(uint64_t step)
{
	static char s[16];

	snprintf(s, sizeof(s), "%06u", (unsigned)totp_hotp(key, KEYLEN, step,
	    6));
	return s;
}

static void
test_window_and_replay(void **state)
{
	uint64_t now = totp_step(1111111111), m = 0;

	/* RFC 4226 vector 1 is 287082 at counter 1; leading zeros kept. */
	assert_int_equal(totp_check(key, KEYLEN, code_at(now), now, 0, &m), 0);
	assert_int_equal(m, now);
	assert_int_equal(totp_check(key, KEYLEN, code_at(now - 1), now, 0, &m),
	    0);
	assert_int_equal(m, now - 1);
	assert_int_equal(totp_check(key, KEYLEN, code_at(now + 1), now, 0, &m),
	    0);
	assert_int_equal(m, now + 1);
	/* Two steps off either way: refused. */
	assert_int_equal(totp_check(key, KEYLEN, code_at(now - 2), now, 0, &m),
	    -1);
	assert_int_equal(totp_check(key, KEYLEN, code_at(now + 2), now, 0, &m),
	    -1);
	/* A code of a step already used (or before it): refused. */
	assert_int_equal(totp_check(key, KEYLEN, code_at(now), now, now, &m),
	    -1);
	assert_int_equal(totp_check(key, KEYLEN, code_at(now - 1), now, now,
	    &m), -1);
	assert_int_equal(totp_check(key, KEYLEN, code_at(now + 1), now, now,
	    &m), 0);
	/* Malformed codes. */
	assert_int_equal(totp_check(key, KEYLEN, "", now, 0, &m), -1);
	assert_int_equal(totp_check(key, KEYLEN, "12345", now, 0, &m), -1);
	assert_int_equal(totp_check(key, KEYLEN, "1234567", now, 0, &m), -1);
	assert_int_equal(totp_check(key, KEYLEN, "12a456", now, 0, &m), -1);
	assert_int_equal(totp_check(key, KEYLEN, NULL, now, 0, &m), -1);
	/* Step 0 has no step before it. */
	assert_int_equal(totp_check(key, KEYLEN, code_at(0), 0, 0, &m), -1);
	assert_int_equal(totp_check(key, KEYLEN, code_at(1), 0, 0, &m), 0);
}

static void
test_base32(void **state)
{
	unsigned char out[64];
	char b32[64];
	size_t n;

	/* RFC 4648 section 10, without padding. */
	assert_int_equal(totp_b32_encode((const unsigned char *)"foobar", 6,
	    b32, sizeof(b32)), 0);
	assert_string_equal(b32, "MZXW6YTBOI");
	assert_int_equal(totp_b32_encode((const unsigned char *)"f", 1, b32,
	    sizeof(b32)), 0);
	assert_string_equal(b32, "MY");
	assert_int_equal(totp_b32_encode(key, KEYLEN, b32, sizeof(b32)), 0);
	assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	assert_int_equal(strlen(b32), TOTP_B32_LEN);
	assert_int_equal(totp_b32_encode(key, KEYLEN, b32, TOTP_B32_LEN), -1);
	assert_int_equal(totp_b32_decode(b32, out, sizeof(out), &n), 0);
	assert_int_equal(n, KEYLEN);
	assert_memory_equal(out, key, KEYLEN);
	assert_int_equal(totp_b32_decode("MZXW6YTBOI", out, sizeof(out), &n), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "foobar", 6);
	assert_int_equal(totp_b32_decode("MZXW1", out, sizeof(out), &n), -1);
	assert_int_equal(totp_b32_decode("mzxw", out, sizeof(out), &n), -1);
	assert_int_equal(totp_b32_decode(b32, out, 4, &n), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors),
		cmocka_unit_test(test_rfc4226_hotp),
		cmocka_unit_test(test_window_and_replay),
		cmocka_unit_test(test_base32),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
