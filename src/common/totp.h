/* totp.h - time-based one-time passwords (RFC 6238 over RFC 4226's HOTP,
 * HMAC-SHA-1, 6 digits, 30 s steps: what authenticator apps assume). */
#ifndef CVIRT_TOTP_H
#define CVIRT_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define TOTP_STEP_S	30
#define TOTP_DIGITS	6
#define TOTP_KEY_LEN	20	/* bytes of a secret (160 bits, RFC 4226) */
#define TOTP_B32_LEN	32	/* base32 characters of such a secret */

/* HOTP of key for counter, digits (6..8) decimal digits: the value. */
uint32_t totp_hotp(const unsigned char *key, size_t keylen, uint64_t counter,
	    int digits);
/* The time step holding unix time t. */
uint64_t totp_step(int64_t t);
/* Which step of now - 1 .. now + 1 (clock skew of one step either way)
 * code (exactly TOTP_DIGITS decimal digits) belongs to, in *matched; only
 * steps after last count (a code once used is refused: replay). 0, or -1
 * when it matches none. Compares in constant time per step. */
int	 totp_check(const unsigned char *key, size_t keylen, const char *code,
	    uint64_t now_step, uint64_t last, uint64_t *matched);
/* RFC 4648 base32 (no padding) of len bytes into out (NUL-terminated);
 * -1 when out is too small. */
int	 totp_b32_encode(const unsigned char *in, size_t len, char *out,
	    size_t outsz);
/* The bytes of a base32 secret (upper case, no padding), their number in
 * *lenp; -1 on a character outside the alphabet or too long a secret. */
int	 totp_b32_decode(const char *in, unsigned char *out, size_t outsz,
	    size_t *lenp);

#endif
