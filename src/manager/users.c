/* users.c - users and their roles, API tokens (new, revoke), passwords,
 * TOTP secrets, and the join tokens that let an agent register once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "common/pki.h"
#include "common/totp.h"
#include "manager/manager_int.h"

#define USERS_PW_MIN	8
#define USERS_PW_MAX	1024
#define JOIN_TTL_DEFAULT_S	3600
#define JOIN_TTL_MAX_S		(7 * 24 * 3600)

int
users_token_new(const char *name, int replace, char *out, size_t outsz)
{
	char hash[UTIL_HASH_LEN + 1];
	json_t *user;
	int rc = -1;

	if (outsz < UTIL_TOKEN_LEN + 1 || util_random_hex(out,
	    UTIL_TOKEN_LEN / 2) < 0)
		return -1;
	util_hash_hex(out, hash);
	if (db_begin() < 0)
		return -1;
	if ((user = db_row("SELECT role FROM users WHERE name = ?", "s",
	    name)) == NULL)
		goto cleanup;
	if (replace && db_exec("DELETE FROM tokens WHERE name = ? AND "
	    "kind = 'api'", "s", name) < 0)
		goto cleanup;
	if (db_exec("INSERT INTO tokens (hash, name, role, created, kind) "
	    "VALUES (?, ?, ?, ?, 'api')", "ssii", hash, name,
	    json_integer_value(json_object_get(user, "role")),
	    util_wall_ms()) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	json_decref(user);
	if (rc == 0 && db_commit() == 0)
		return 0;
	if (rc < 0)
		db_rollback();
	sodium_memzero(out, outsz);
	return -1;
}

static json_t *
users_json(json_t *row)
{
	char when[40];

	util_time_iso(json_integer_value(json_object_get(row, "created")), when,
	    sizeof(when));
	return json_pack("{s:O, s:s, s:s, s:b, s:O, s:b}",
	    "name", json_object_get(row, "name"),
	    "role", auth_role_name((int)json_integer_value(json_object_get(row,
	    "role"))), "created", when,
	    "password", json_is_string(json_object_get(row, "password")),
	    "tokens", json_object_get(row, "tokens"),
	    "totp", json_integer_value(json_object_get(row, "totp")) != 0);
}

static json_t *
users_rows(const char *name)
{
	static const char sel[] = "SELECT u.name AS name, u.role AS role, "
	    "u.created AS created, u.password AS password, (SELECT COUNT(*) "
	    "FROM tokens t WHERE t.name = u.name AND t.kind = 'api') AS tokens, "
	    "CASE WHEN u.totp_secret IS NULL THEN 0 ELSE 1 END AS totp "
	    "FROM users u";
	char sql[512];

	if (name == NULL)
		return db_query(sel, NULL);
	snprintf(sql, sizeof(sql), "%s WHERE u.name = ?", sel);
	return db_query(sql, "s", name);
}

/* The {} user of the path, which must exist; NULL after replying. */
static json_t *
users_find(struct httpd_req *r)
{
	json_t *rows;

	if (r->nparams < 1 || !util_name_valid(r->params[0])) {
		httpd_reply_error(r, 400, "invalid user name");
		return NULL;
	}
	rows = users_rows(r->params[0]);
	if (rows == NULL || json_array_size(rows) == 0) {
		json_decref(rows);
		httpd_reply_error(r, 404, "user %s not found", r->params[0]);
		return NULL;
	}
	return rows;
}

static int
api_users_list(struct httpd_req *r)
{
	json_t *rows = users_rows(NULL), *out, *row;
	size_t i;

	if (rows == NULL)
		return httpd_reply_error(r, 500, "cannot read users");
	out = json_array();
	json_array_foreach(rows, i, row)
		json_array_append_new(out, users_json(row));
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

static int
api_users_show(struct httpd_req *r)
{
	json_t *rows = users_find(r);

	if (rows == NULL)
		return 0;
	httpd_reply_json(r, 200, users_json(json_array_get(rows, 0)));
	json_decref(rows);
	return 0;
}

/* Optional "password" field: hashed into pwhash, "" when absent. */
static int
users_password_field(struct httpd_req *r, char *pwhash, size_t size)
{
	const char *pw;
	size_t n;

	pwhash[0] = '\0';
	if (api_str_field(r, "password", USERS_PW_MAX, &pw) < 0)
		return -1;
	if (pw == NULL)
		return 0;
	n = strlen(pw);
	if (n < USERS_PW_MIN) {
		httpd_reply_error(r, 400, "password must have at least %d "
		    "characters", USERS_PW_MIN);
		return -1;
	}
	if (login_pw_hash(pw, pwhash, size) < 0) {
		httpd_reply_error(r, 500, "cannot hash the password");
		return -1;
	}
	return 0;
}

static int
api_users_create(struct httpd_req *r)
{
	static const char *const fields[] = { "name", "role", "password", NULL };
	char pwhash[crypto_pwhash_STRBYTES], tok[UTIL_TOKEN_LEN + 1];
	const char *name, *rolestr;
	json_t *rows = NULL;
	int role;

	if (r->body == NULL)
		return httpd_reply_error(r, 400, "body required: "
		    "{\"name\", \"role\", \"password\"?}");
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", UTIL_NAME_MAX, &name) < 0 ||
	    api_str_field(r, "role", 16, &rolestr) < 0)
		return 0;
	if (name == NULL || !util_name_valid(name))
		return httpd_reply_error(r, 400, "invalid user name (letters, "
		    "digits, '.', '_', '-'; at most %d)", UTIL_NAME_MAX);
	if ((role = auth_role_parse(rolestr)) == ROLE_NONE)
		return httpd_reply_error(r, 400, "role must be admin, operator "
		    "or viewer");
	if (users_password_field(r, pwhash, sizeof(pwhash)) < 0)
		return 0;
	if (db_exec("INSERT INTO users (name, role, password, created) VALUES "
	    "(?, ?, ?, ?)", "sisi", name, (int64_t)role, pwhash[0] ? pwhash :
	    NULL, util_wall_ms()) < 0)
		return httpd_reply_error(r, errno == EEXIST ? 409 : 500,
		    errno == EEXIST ? "user %s already exists" :
		    "cannot create user %s", name);
	if (users_token_new(name, 1, tok, sizeof(tok)) < 0) {
		db_exec("DELETE FROM users WHERE name = ?", "s", name);
		return httpd_reply_error(r, 500, "cannot create a token for %s",
		    name);
	}
	rows = users_rows(name);
	httpd_reply_json(r, 201, json_pack("{s:o, s:s}", "user",
	    users_json(json_array_get(rows, 0)), "token", tok));
	sodium_memzero(tok, sizeof(tok));
	json_decref(rows);
	return 0;
}

static int
api_users_delete(struct httpd_req *r)
{
	json_t *rows = users_find(r), *admins = NULL;
	int rc;

	if (rows == NULL)
		return 0;
	if (strcmp(r->params[0], r->principal) == 0) {
		httpd_reply_error(r, 409, "you cannot delete yourself");
		goto cleanup;
	}
	if (db_begin() < 0) {
		httpd_reply_error(r, 500, "database busy");
		goto cleanup;
	}
	admins = db_row("SELECT COUNT(*) AS n FROM users WHERE role = ? AND "
	    "name <> ?", "is", (int64_t)ROLE_ADMIN, r->params[0]);
	if (json_integer_value(json_object_get(admins, "n")) == 0) {
		db_rollback();
		httpd_reply_error(r, 409, "%s is the last admin", r->params[0]);
		goto cleanup;
	}
	rc = db_exec("DELETE FROM tokens WHERE name = ?", "s", r->params[0]);
	if (rc >= 0)
		rc = db_exec("DELETE FROM users WHERE name = ?", "s",
		    r->params[0]);
	if (rc < 0) {
		db_rollback();
		httpd_reply_error(r, 500, "cannot delete user %s", r->params[0]);
		goto cleanup;
	}
	db_commit();
	httpd_reply_json(r, 200, json_pack("{s:s}", "deleted", r->params[0]));
cleanup:
	json_decref(admins);
	json_decref(rows);
	return 0;
}

/* {"revoke": true}: every token and session of the user goes; otherwise
 * a new API token replaces the old ones. */
static int
api_users_token(struct httpd_req *r)
{
	static const char *const fields[] = { "revoke", NULL };
	char tok[UTIL_TOKEN_LEN + 1];
	json_t *rows = users_find(r);
	int revoke = 0;

	if (rows == NULL)
		return 0;
	json_decref(rows);
	if (r->body && (api_check_fields(r, fields) < 0 ||
	    api_bool_field(r, "revoke", &revoke) < 0))
		return 0;
	if (revoke) {
		if (db_exec("DELETE FROM tokens WHERE name = ?", "s",
		    r->params[0]) < 0)
			return httpd_reply_error(r, 500, "cannot revoke");
		return httpd_reply_json(r, 200, json_pack("{s:s, s:b}",
		    "name", r->params[0], "revoked", 1));
	}
	if (users_token_new(r->params[0], 1, tok, sizeof(tok)) < 0)
		return httpd_reply_error(r, 500, "cannot create a token");
	httpd_reply_json(r, 200, json_pack("{s:s, s:s}", "name", r->params[0],
	    "token", tok));
	sodium_memzero(tok, sizeof(tok));
	return 0;
}

/* Admins set anyone's password; others only their own. Sessions end. */
static int
api_users_password(struct httpd_req *r)
{
	static const char *const fields[] = { "password", NULL };
	char pwhash[crypto_pwhash_STRBYTES];
	json_t *rows;

	if (r->nparams < 1 || (r->role < ROLE_ADMIN &&
	    strcmp(r->params[0], r->principal) != 0))
		return httpd_reply_error(r, 403, "permission denied for this "
		    "operation");
	if ((rows = users_find(r)) == NULL)
		return 0;
	json_decref(rows);
	if (r->body == NULL || json_object_get(r->body, "password") == NULL)
		return httpd_reply_error(r, 400, "body required: "
		    "{\"password\"}");
	if (api_check_fields(r, fields) < 0 ||
	    users_password_field(r, pwhash, sizeof(pwhash)) < 0)
		return 0;
	if (db_exec("UPDATE users SET password = ? WHERE name = ?", "ss",
	    pwhash, r->params[0]) < 0 || db_exec("DELETE FROM tokens WHERE "
	    "name = ? AND kind = 'session'", "s", r->params[0]) < 0)
		return httpd_reply_error(r, 500, "cannot set the password");
	return httpd_reply_json(r, 200, json_pack("{s:s, s:b}", "name",
	    r->params[0], "password", 1));
}

/* A new TOTP secret for the user (409 when it has one: an admin disables
 * it first); the reply carries it once, base32 and as an otpauth:// URI
 * (what authenticator apps scan). Its sessions end: the next login needs
 * a code. */
static int
api_users_totp_enable(struct httpd_req *r)
{
	unsigned char key[TOTP_KEY_LEN];
	char b32[TOTP_B32_LEN + 1], uri[256];
	json_t *rows = users_find(r);
	int n;

	if (rows == NULL)
		return 0;
	json_decref(rows);
	randombytes_buf(key, sizeof(key));
	if (totp_b32_encode(key, sizeof(key), b32, sizeof(b32)) < 0 ||
	    util_fmt(uri, sizeof(uri), "otpauth://totp/cvirt:%s?secret=%s&"
	    "issuer=cvirt&algorithm=SHA1&digits=%d&period=%d", r->params[0],
	    b32, TOTP_DIGITS, TOTP_STEP_S) < 0) {
		n = -1;
		goto cleanup;
	}
	n = db_exec("UPDATE users SET totp_secret = ?, totp_step = NULL "
	    "WHERE name = ? AND totp_secret IS NULL", "ss", b32, r->params[0]);
	if (n == 1)
		db_exec("DELETE FROM tokens WHERE name = ? AND kind = 'session'",
		    "s", r->params[0]);
cleanup:
	if (n < 0)
		httpd_reply_error(r, 500, "cannot set a TOTP secret");
	else if (n == 0)
		httpd_reply_error(r, 409, "user %s has TOTP enabled already; "
		    "disable it first", r->params[0]);
	else
		httpd_reply_json(r, 200, json_pack("{s:s, s:s, s:s}", "name",
		    r->params[0], "secret", b32, "uri", uri));
	sodium_memzero(key, sizeof(key));
	sodium_memzero(b32, sizeof(b32));
	sodium_memzero(uri, sizeof(uri));
	return 0;
}

/* The user logs in with the password alone again. */
static int
api_users_totp_disable(struct httpd_req *r)
{
	json_t *rows = users_find(r);
	int n;

	if (rows == NULL)
		return 0;
	json_decref(rows);
	if ((n = db_exec("UPDATE users SET totp_secret = NULL, totp_step = "
	    "NULL WHERE name = ? AND totp_secret IS NOT NULL", "s",
	    r->params[0])) < 0)
		return httpd_reply_error(r, 500, "cannot disable TOTP");
	return httpd_reply_json(r, 200, json_pack("{s:s, s:b, s:b}", "name",
	    r->params[0], "totp", 0, "changed", n > 0));
}

/* body "addresses": a list of IPs or DNS names the joining host's
 * certificate may name beyond its join address (pre-approved); *out the
 * list as JSON text (malloc'd) or NULL. -1 after replying. */
static int
api_join_addresses(struct httpd_req *r, char **out)
{
	json_t *l = json_object_get(r->body, "addresses"), *v;
	size_t i;

	*out = NULL;
	if (l == NULL)
		return 0;
	if (!json_is_array(l) || json_array_size(l) > PKI_SAN_MAX - 2) {
		httpd_reply_error(r, 400, "addresses must be a list of at most "
		    "%d addresses", PKI_SAN_MAX - 2);
		return -1;
	}
	json_array_foreach(l, i, v)
		if (!json_is_string(v) || strchr(json_string_value(v), ',') ||
		    !pki_san_valid(json_string_value(v))) {
			httpd_reply_error(r, 400, "addresses: each an IP address "
			    "or a DNS name");
			return -1;
		}
	*out = json_dumps(l, JSON_COMPACT);
	return 0;
}

/* A join token admits one new host, once, until it expires (ttl_s,
 * default JOIN_TTL_DEFAULT_S). */
static int
api_join_create(struct httpd_req *r)
{
	static const char *const fields[] = { "ttl_s", "addresses", NULL };
	char tok[UTIL_TOKEN_LEN + 1], hash[UTIL_HASH_LEN + 1], id[17], when[40];
	int64_t ttl = JOIN_TTL_DEFAULT_S, now = util_wall_ms();
	char *addrs = NULL;
	int rc;

	if (r->body && (api_check_fields(r, fields) < 0 ||
	    api_int_field(r, "ttl_s", 60, JOIN_TTL_MAX_S, &ttl, NULL) < 0 ||
	    api_join_addresses(r, &addrs) < 0))
		return 0;
	util_random_hex(tok, UTIL_TOKEN_LEN / 2);
	util_random_hex(id, 8);
	util_hash_hex(tok, hash);
	rc = db_exec("INSERT INTO join_tokens (hash, id, created, expires, "
	    "creator, addresses) VALUES (?, ?, ?, ?, ?, ?)", "ssiiss", hash, id,
	    now, now + ttl * 1000, r->principal, addrs);
	free(addrs);
	if (rc < 0)
		return httpd_reply_error(r, 500, "cannot record the join token");
	util_time_iso(now + ttl * 1000, when, sizeof(when));
	httpd_reply_json(r, 201, json_pack("{s:s, s:s, s:s, s:I, s:O}", "id",
	    id, "token", tok, "expires", when, "ttl_s", (json_int_t)ttl,
	    "addresses", json_object_get(r->body, "addresses") ?
	    json_object_get(r->body, "addresses") : json_null()));
	sodium_memzero(tok, sizeof(tok));
	return 0;
}

static int
api_join_list(struct httpd_req *r)
{
	json_t *rows, *row, *out, *o, *addrs;
	int64_t now = util_wall_ms();
	char c[40], e[40], u[40];
	const char *a;
	size_t i;

	if ((rows = db_query("SELECT * FROM join_tokens ORDER BY created",
	    NULL)) == NULL)
		return httpd_reply_error(r, 500, "cannot read join tokens");
	out = json_array();
	json_array_foreach(rows, i, row) {
		json_t *used = json_object_get(row, "used");

		util_time_iso(json_integer_value(json_object_get(row,
		    "created")), c, sizeof(c));
		util_time_iso(json_integer_value(json_object_get(row,
		    "expires")), e, sizeof(e));
		util_time_iso(json_integer_value(used), u, sizeof(u));
		a = json_string_value(json_object_get(row, "addresses"));
		addrs = a ? json_loads(a, 0, NULL) : NULL;
		o = json_pack("{s:O, s:s, s:s, s:O, s:O, s:s}",
		    "id", json_object_get(row, "id"), "created", c,
		    "expires", e, "host", json_object_get(row, "host"),
		    "creator", json_object_get(row, "creator"), "state",
		    json_is_integer(used) ? "used" : json_integer_value(
		    json_object_get(row, "expires")) <= now ? "expired" :
		    "unused");
		json_object_set_new(o, "used", json_is_integer(used) ?
		    json_string(u) : json_null());
		json_object_set_new(o, "addresses", addrs ? addrs : json_null());
		json_array_append_new(out, o);
	}
	json_decref(rows);
	return httpd_reply_json(r, 200, out);
}

static int
api_join_delete(struct httpd_req *r)
{
	int n;

	if (r->nparams < 1 || strlen(r->params[0]) != 16)
		return httpd_reply_error(r, 400, "invalid join token id");
	if ((n = db_exec("DELETE FROM join_tokens WHERE id = ?", "s",
	    r->params[0])) < 0)
		return httpd_reply_error(r, 500, "cannot delete");
	if (n == 0)
		return httpd_reply_error(r, 404, "join token %s not found",
		    r->params[0]);
	return httpd_reply_json(r, 200, json_pack("{s:s}", "deleted",
	    r->params[0]));
}

const struct httpd_route api_users_routes[] = {
	{ "GET",    "/api/v1/users",               api_users_list,   0, ROLE_ADMIN },
	{ "POST",   "/api/v1/users",               api_users_create, 0, ROLE_ADMIN },
	{ "GET",    "/api/v1/users/{}",            api_users_show,   0, ROLE_ADMIN },
	{ "DELETE", "/api/v1/users/{}",            api_users_delete, 0, ROLE_ADMIN },
	{ "POST",   "/api/v1/users/{}/token",      api_users_token,  0, ROLE_ADMIN },
	{ "POST",   "/api/v1/users/{}/password",   api_users_password, 0, ROLE_VIEWER },
	{ "POST",   "/api/v1/users/{}/totp",       api_users_totp_enable, 0, ROLE_ADMIN },
	{ "DELETE", "/api/v1/users/{}/totp",       api_users_totp_disable, 0, ROLE_ADMIN },
	{ "GET",    "/api/v1/join-tokens",         api_join_list,    0, ROLE_ADMIN },
	{ "POST",   "/api/v1/join-tokens",         api_join_create,  0, ROLE_ADMIN },
	{ "DELETE", "/api/v1/join-tokens/{}",      api_join_delete,  0, ROLE_ADMIN },
};
const size_t api_users_nroutes = sizeof(api_users_routes) /
    sizeof(api_users_routes[0]);
