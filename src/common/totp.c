/* totp.c - RFC 6238 time-based one-time passwords for the login's second
 * factor. A few lines over OpenSSL's HMAC, not liboath: authenticator apps
 * assume HMAC-SHA-1, which libsodium does not have, OpenSSL is linked
 * already (TLS), and liboath would be a new dependency for RFC 4226's
 * truncation and base32. Checked against RFC 6238's test vectors
 * (tests/unit/test_totp.c). */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/totp.h"

static const char totp_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

uint32_t
totp_hotp(const unsigned char *key, size_t keylen, uint64_t counter,
    int digits)
{
	unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0, off;
	uint32_t v, mod = 1;
	int i;

	for (i = 7; i >= 0; i--, counter >>= 8)
		msg[i] = (unsigned char)(counter & 0xff);
	if (HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof(msg), mac,
	    &maclen) == NULL || maclen < 20)
		return UINT32_MAX;	/* matches no code: at most 8 digits */
	off = mac[maclen - 1] & 0x0f;	/* RFC 4226 5.3: dynamic truncation */
	v = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
	    ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
	for (i = 0; i < digits; i++)
		mod *= 10;
	return v % mod;
}

uint64_t
totp_step(int64_t t)
{
	return t < 0 ? 0 : (uint64_t)t / TOTP_STEP_S;
}

int
totp_check(const unsigned char *key, size_t keylen, const char *code,
    uint64_t now_step, uint64_t last, uint64_t *matched)
{
	char want[16];
	uint64_t s;
	int i, found = 0;

	if (code == NULL || strlen(code) != TOTP_DIGITS ||
	    strspn(code, "0123456789") != TOTP_DIGITS)
		return -1;
	/* Oldest first: of two matches the earlier step is recorded. */
	for (i = -1; i <= 1; i++) {
		if (i < 0 && now_step == 0)
			continue;
		s = i < 0 ? now_step - 1 : now_step + (uint64_t)i;
		if (s <= last)
			continue;
		snprintf(want, sizeof(want), "%0*u", TOTP_DIGITS,
		    (unsigned)totp_hotp(key, keylen, s, TOTP_DIGITS));
		if (CRYPTO_memcmp(want, code, TOTP_DIGITS) == 0 && !found) {
			*matched = s;
			found = 1;
		}
	}
	return found ? 0 : -1;
}

int
totp_b32_encode(const unsigned char *in, size_t len, char *out,
    size_t outsz)
{
	size_t i, n = 0;
	unsigned int buf = 0, bits = 0;

	if (outsz < (len * 8 + 4) / 5 + 1)
		return -1;
	for (i = 0; i < len; i++) {
		buf = (buf << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			out[n++] = totp_b32[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[n++] = totp_b32[(buf << (5 - bits)) & 31];
	out[n] = '\0';
	return 0;
}

int
totp_b32_decode(const char *in, unsigned char *out, size_t outsz,
    size_t *lenp)
{
	const char *p;
	size_t n = 0;
	unsigned int buf = 0, bits = 0;

	for (; *in; in++) {
		if ((p = strchr(totp_b32, *in)) == NULL)
			return -1;
		buf = (buf << 5) | (unsigned int)(p - totp_b32);
		bits += 5;
		if (bits >= 8) {
			if (n >= outsz)
				return -1;
			out[n++] = (unsigned char)(buf >> (bits - 8));
			bits -= 8;
		}
		buf &= (1u << bits) - 1;
	}
	*lenp = n;
	return 0;
}
