/* auth.c - API tokens: created once, stored only as hashes, checked per
 * request against the user's current role; agent keys, host
 * certificates and join tokens through hostid.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/log.h"
#include "manager/manager_int.h"

static const char *const auth_roles[] = {
	[ROLE_VIEWER] = "viewer", [ROLE_OPERATOR] = "operator",
	[ROLE_ADMIN] = "admin",
};

int
auth_role_parse(const char *s)
{
	int i;

	for (i = ROLE_VIEWER; s != NULL && i <= ROLE_ADMIN; i++)
		if (strcmp(s, auth_roles[i]) == 0)
			return i;
	return ROLE_NONE;
}

const char *
auth_role_name(int role)
{
	return role >= ROLE_VIEWER && role <= ROLE_ADMIN ? auth_roles[role] :
	    "none";
}

int
auth_init(void)
{
	char path[PATH_MAX], token[UTIL_TOKEN_LEN + 1], hash[UTIL_HASH_LEN + 1];
	char line[UTIL_TOKEN_LEN + 2];
	json_t *row;

	if (sodium_init() < 0 ||
	    util_fmt(path, sizeof(path), "%s/admin.token", mgr_cfg.data) < 0)
		return -1;
	/* The first admin is a user like any other (its role may not drop). */
	if (db_exec("INSERT INTO users (name, role, created) VALUES ('admin', ?, ?)"
	    " ON CONFLICT(name) DO NOTHING", "ii", (int64_t)ROLE_ADMIN,
	    util_wall_ms()) < 0)
		return -1;
	if (util_read_token(path, token, sizeof(token)) < 0) {
		if (errno != ENOENT) {
			log_error("cannot read %s: %s", path, strerror(errno));
			return -1;
		}
		util_random_hex(token, UTIL_TOKEN_LEN / 2);
		snprintf(line, sizeof(line), "%s\n", token);
		if (util_write_file_atomic(path, line, strlen(line), 0600) < 0) {
			log_error("cannot write %s: %s", path, strerror(errno));
			return -1;
		}
		log_info("wrote a new admin API token to %s", path);
	}
	util_hash_hex(token, hash);
	row = db_row("SELECT hash FROM tokens WHERE hash = ?", "s", hash);
	if (row == NULL && db_exec("INSERT INTO tokens (hash, name, role, created)"
	    " VALUES (?, 'admin', ?, ?)", "sii", hash, (int64_t)ROLE_ADMIN,
	    util_wall_ms()) < 0)
		return -1;
	json_decref(row);
	return 0;
}

int
auth_check(struct httpd_req *r, int min_role)
{
	char hash[UTIL_HASH_LEN + 1];
	json_t *row = NULL, *exp;
	int rc = 401;

	if (r->token == NULL || r->token[0] == '\0' || strlen(r->token) > 256)
		goto cleanup;
	if (min_role == ROLE_AGENT) {
		rc = hostid_auth_agent(r);
		goto cleanup;
	}
	/* Registration: a host's own key or certificate first (hostid.c). */
	if (min_role == ROLE_JOIN && (rc = hostid_auth_host(r)) != 1)
		goto cleanup;
	rc = 401;
	util_hash_hex(r->token, hash);
	row = db_row("SELECT t.name AS name, u.role AS role, t.expires AS "
	    "expires FROM tokens t JOIN users u ON u.name = t.name "
	    "WHERE t.hash = ?", "s", hash);
	if (row == NULL) {
		if (min_role == ROLE_JOIN)
			rc = hostid_auth_join(r, hash);
		goto cleanup;
	}
	exp = json_object_get(row, "expires");
	if (json_is_integer(exp) && json_integer_value(exp) <= util_wall_ms()) {
		db_exec("DELETE FROM tokens WHERE hash = ?", "s", hash);
		goto cleanup;
	}
	r->role = (int)json_integer_value(json_object_get(row, "role"));
	snprintf(r->principal, sizeof(r->principal), "%s",
	    json_string_value(json_object_get(row, "name")));
	if (min_role == ROLE_JOIN)
		min_role = ROLE_ADMIN;
	rc = r->role >= min_role ? 0 : 403;
cleanup:
	json_decref(row);
	return rc;
}
