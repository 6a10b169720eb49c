/* login.c - password hashing (argon2id), password login with rate limiting
 * of failures per client address, UI sessions (expiring tokens). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "manager/manager_int.h"

#define LOGIN_MAX_FAILS		5	/* failures per window ... */
#define LOGIN_WINDOW_MS		60000	/* ... then refused for this long */
#define LOGIN_SLOTS		256
#define LOGIN_SESSION_MS	(12 * 3600 * 1000LL)
#define LOGIN_HASHERS		2	/* argon2id takes 64 MiB each */

struct login_slot {
	char	remote[64];
	int	fails;
	int64_t	first_ms;	/* first failure of the window */
};

static pthread_mutex_t login_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t login_cond = PTHREAD_COND_INITIALIZER;
static struct login_slot login_slots[LOGIN_SLOTS];
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

static int
login_pw_verify(const char *stored, const char *pw)
{
	int rc;

	login_hash_enter();
	rc = crypto_pwhash_str_verify(stored, pw, strlen(pw));
	login_hash_leave();
	return rc == 0 ? 0 : -1;
}

/* Seconds the address must still wait, 0 when it may try. */
static int64_t
login_blocked(const char *remote, int64_t now)
{
	int64_t wait = 0;
	int i;

	pthread_mutex_lock(&login_lock);
	for (i = 0; i < LOGIN_SLOTS; i++) {
		struct login_slot *s = &login_slots[i];
		if (strcmp(s->remote, remote) != 0)
			continue;
		if (now - s->first_ms >= LOGIN_WINDOW_MS)
			s->remote[0] = '\0';	/* window over: forget */
		else if (s->fails >= LOGIN_MAX_FAILS)
			wait = (s->first_ms + LOGIN_WINDOW_MS - now + 999) / 1000;
		break;
	}
	pthread_mutex_unlock(&login_lock);
	return wait;
}

static void
login_failed(const char *remote, int64_t now)
{
	struct login_slot *s, *free_slot = NULL, *oldest = &login_slots[0];
	int i;

	pthread_mutex_lock(&login_lock);
	for (i = 0; i < LOGIN_SLOTS; i++) {
		s = &login_slots[i];
		if (strcmp(s->remote, remote) == 0 && s->remote[0] != '\0') {
			s->fails++;
			goto cleanup;
		}
		if (s->remote[0] == '\0' && free_slot == NULL)
			free_slot = s;
		if (s->first_ms < oldest->first_ms)
			oldest = s;
	}
	/* Full table: the oldest window gives way. */
	s = free_slot ? free_slot : oldest;
	snprintf(s->remote, sizeof(s->remote), "%s", remote);
	s->fails = 1;
	s->first_ms = now;
cleanup:
	pthread_mutex_unlock(&login_lock);
}

/* Every answer takes one argon2id verification, known user or not. */
static int
login_verify_user(const char *name, const char *pw, int *role)
{
	static const char *dummy;
	static char dummy_buf[crypto_pwhash_STRBYTES];
	json_t *row = NULL;
	const char *stored;
	int rc = -1;

	row = db_row("SELECT role, password FROM users WHERE name = ?", "s",
	    name);
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
		goto cleanup;
	}
	if (login_pw_verify(stored, pw) < 0)
		goto cleanup;
	*role = (int)json_integer_value(json_object_get(row, "role"));
	rc = 0;
cleanup:
	json_decref(row);
	return rc;
}

static int
api_login(struct httpd_req *r)
{
	static const char *const fields[] = { "name", "password", NULL };
	char tok[UTIL_TOKEN_LEN + 1], hash[UTIL_HASH_LEN + 1], when[40];
	const char *name, *pw;
	int64_t now = util_wall_ms(), wait;
	int role = ROLE_NONE;

	if (r->body == NULL)
		return httpd_reply_error(r, 400, "body required: "
		    "{\"name\", \"password\"}");
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", UTIL_NAME_MAX, &name) < 0 ||
	    api_str_field(r, "password", 1024, &pw) < 0)
		return 0;
	if (name == NULL || pw == NULL)
		return httpd_reply_error(r, 400, "name and password required");
	if ((wait = login_blocked(r->remote, now)) > 0)
		return httpd_reply_error(r, 429, "too many failed logins; try "
		    "again in %lld s", (long long)wait);
	if (!util_name_valid(name) || login_verify_user(name, pw, &role) < 0) {
		login_failed(r->remote, now);
		log_warnx("failed login for \"%.64s\" from %s", name, r->remote);
		return httpd_reply_error(r, 401, "wrong user name or password");
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
