/* login.c - password hashing (argon2id), password login (throttled by
 * loginlimit.c) with an optional TOTP second factor, UI sessions
 * (expiring tokens). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/totp.h"
#include "manager/manager_int.h"

#define LOGIN_SESSION_MS	(12 * 3600 * 1000LL)
#define LOGIN_HASHERS		2	/* argon2id takes 64 MiB each */

static pthread_mutex_t login_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t login_cond = PTHREAD_COND_INITIALIZER;
static int login_hashing;

/* Bound the memory argon2id takes however many requests arrive. */
static void
login_hash_enter(void)
{
	pthread_mutex_lock(&login_lock);
	while (login_hashing >= LOGIN_HASHERS)
		pthread_cond_wait(&login_cond, &login_lock);
	login_hashing++;
	pthread_mutex_unlock(&login_lock);
}

static void
login_hash_leave(void)
{
	pthread_mutex_lock(&login_lock);
	login_hashing--;
	pthread_cond_signal(&login_cond);
	pthread_mutex_unlock(&login_lock);
}

int
login_pw_hash(const char *pw, char *out, size_t outsz)
{
	int rc;

	if (outsz < crypto_pwhash_STRBYTES)
		return -1;
	login_hash_enter();
	rc = crypto_pwhash_str(out, pw, strlen(pw),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE);
	login_hash_leave();
	return rc == 0 ? 0 : -1;
}

/* Every run is counted in /metrics (cvirt_login_password_checks_total):
 * what the throttle in loginlimit.c lets through, as an operator sees it. */
static int
login_pw_verify(const char *stored, const char *pw)
{
	int rc;

	login_hash_enter();
	rc = crypto_pwhash_str_verify(stored, pw, strlen(pw));
	login_hash_leave();
	metrics_count("login_password_checks", "result", rc == 0 ?
	    "match" : "mismatch");
	return rc == 0 ? 0 : -1;
}

/* Every answer takes one argon2id verification, known user or not. On
 * success the user's row (role, totp_secret, totp_step), a new reference. */
static json_t *
login_verify_user(const char *name, const char *pw)
{
	static const char *dummy;
	static char dummy_buf[crypto_pwhash_STRBYTES];
	json_t *row = NULL;
	const char *stored;

	row = db_row("SELECT role, password, totp_secret, totp_step FROM users "
	    "WHERE name = ?", "s", name);
	stored = json_string_value(json_object_get(row, "password"));
	if (stored == NULL) {
		pthread_mutex_lock(&login_lock);
		if (dummy == NULL && crypto_pwhash_str(dummy_buf, "x", 1,
		    crypto_pwhash_OPSLIMIT_INTERACTIVE,
		    crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0)
			dummy = dummy_buf;
		pthread_mutex_unlock(&login_lock);
		if (dummy)
			login_pw_verify(dummy, pw);
		goto fail;
	}
	if (login_pw_verify(stored, pw) < 0)
		goto fail;
	return row;
fail:
	json_decref(row);
	return NULL;
}

/* The second factor of a user whose row has a TOTP secret: 0 when otp is
 * a code of the current step (one either way) not used before, which it
 * then is (the UPDATE is the check: two requests with one code, one
 * wins); -1 otherwise. */
static int
login_totp(const char *name, json_t *row, const char *otp, int64_t now)
{
	unsigned char key[64];
	size_t keylen;
	json_int_t last = json_integer_value(json_object_get(row, "totp_step"));
	uint64_t step;
	int rc = -1;

	if (totp_b32_decode(json_string_value(json_object_get(row,
	    "totp_secret")), key, sizeof(key), &keylen) < 0 || keylen == 0) {
		log_warnx("user %s: unreadable TOTP secret", name);
		goto cleanup;
	}
	if (totp_check(key, keylen, otp, totp_step(now / 1000),
	    last > 0 ? (uint64_t)last : 0, &step) < 0)
		goto cleanup;
	if (db_exec("UPDATE users SET totp_step = ? WHERE name = ? AND "
	    "(totp_step IS NULL OR totp_step < ?)", "isi", (int64_t)step, name,
	    (int64_t)step) == 1)
		rc = 0;
cleanup:
	sodium_memzero(key, sizeof(key));
	return rc;
}

/* Checks a login (the attempt reserved already); the user's role on
 * success, -1 with the reply's status and text otherwise; *otp_missing
 * when only the one-time code is missing. */
static int
login_check(const char *name, const char *pw, const char *otp, int64_t now,
    int *otp_missing)
{
	json_t *row = NULL;
	int role = -1;

	*otp_missing = 0;
	if (!util_name_valid(name) || (row = login_verify_user(name,
	    pw)) == NULL)
		goto cleanup;
	if (json_is_string(json_object_get(row, "totp_secret"))) {
		if (otp == NULL) {
			*otp_missing = 1;
			goto cleanup;
		}
		if (login_totp(name, row, otp, now) < 0)
			goto cleanup;
	}
	role = (int)json_integer_value(json_object_get(row, "role"));
cleanup:
	json_decref(row);
	return role;
}

/* Every attempt is reserved before its password is hashed and counts as
 * a failure unless it ends in a session (loginlimit.c); one whose code
 * is missing too, so that knowing the password buys no extra guesses. */
static int
api_login(struct httpd_req *r)
{
	static const char *const fields[] = { "name", "password", "otp", NULL };
	char tok[UTIL_TOKEN_LEN + 1], hash[UTIL_HASH_LEN + 1], when[40];
	char err[160];
	const char *name, *pw, *otp;
	int64_t now = util_wall_ms();
	int role, otp_missing;

	if (r->body == NULL)
		return httpd_reply_error(r, 400, "body required: "
		    "{\"name\", \"password\"}");
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", UTIL_NAME_MAX, &name) < 0 ||
	    api_str_field(r, "password", 1024, &pw) < 0 ||
	    api_str_field(r, "otp", 16, &otp) < 0)
		return 0;
	if (name == NULL || pw == NULL)
		return httpd_reply_error(r, 400, "name and password required");
	if (loginlimit_reserve(r->remote, now, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 429, "%s", err);
	role = login_check(name, pw, otp, now, &otp_missing);
	loginlimit_release(r->remote, role < 0);
	if (otp_missing) {
		log_warnx("login for \"%.64s\" from %s without its one-time "
		    "code", name, r->remote);
		return httpd_reply_json(r, 401, json_pack("{s:s, s:b}",
		    "error", "one-time code required (\"otp\")",
		    "otp_required", 1));
	}
	if (role < 0) {
		log_warnx("failed login for \"%.64s\" from %s", name,
		    r->remote);
		return httpd_reply_error(r, 401, otp ? "wrong user name, "
		    "password or one-time code" : "wrong user name or "
		    "password");
	}
	util_random_hex(tok, UTIL_TOKEN_LEN / 2);
	util_hash_hex(tok, hash);
	if (db_exec("INSERT INTO tokens (hash, name, role, created, kind, "
	    "expires) VALUES (?, ?, ?, ?, 'session', ?)", "ssiii", hash, name,
	    (int64_t)role, now, now + LOGIN_SESSION_MS) < 0)
		return httpd_reply_error(r, 500, "cannot record the session");
	snprintf(r->principal, sizeof(r->principal), "%s", name);
	/* Expired sessions of everyone go now, so the table stays small. */
	db_exec("DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= ?",
	    "i", now);
	util_time_iso(now + LOGIN_SESSION_MS, when, sizeof(when));
	return httpd_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:s}",
	    "token", tok, "name", name, "role", auth_role_name(role),
	    "expires", when));
}

/* Ends the session the request came with (API tokens stay). */
static int
api_logout(struct httpd_req *r)
{
	char hash[UTIL_HASH_LEN + 1];
	int n;

	util_hash_hex(r->token, hash);
	n = db_exec("DELETE FROM tokens WHERE hash = ? AND kind = 'session'",
	    "s", hash);
	if (n < 0)
		return httpd_reply_error(r, 500, "cannot end the session");
	return httpd_reply_json(r, 200, json_pack("{s:b}", "ended", n > 0));
}

const struct httpd_route api_login_routes[] = {
	{ "POST", "/api/v1/login",  api_login,  HTTPD_NOAUTH, 0 },
	{ "POST", "/api/v1/logout", api_logout, 0, ROLE_VIEWER },
};
const size_t api_login_nroutes = sizeof(api_login_routes) /
    sizeof(api_login_routes[0]);
