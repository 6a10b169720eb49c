/* auth.c - API tokens: created once, stored only as hashes, checked per request. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "manager/manager_int.h"

int
auth_init(void)
{
	char path[PATH_MAX], token[UTIL_TOKEN_LEN + 1], hash[UTIL_HASH_LEN + 1];
	char line[UTIL_TOKEN_LEN + 2];
	json_t *row;

	if (util_fmt(path, sizeof(path), "%s/admin.token", mgr_cfg.data) < 0)
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
	json_t *row = NULL;
	int rc = 401;

	if (r->token == NULL || r->token[0] == '\0' || strlen(r->token) > 256)
		goto cleanup;
	if (min_role == ROLE_AGENT) {
		row = db_row("SELECT name FROM hosts WHERE agent_key = ?", "s",
		    r->token);
		if (row == NULL)
			goto cleanup;
		snprintf(r->principal, sizeof(r->principal), "host:%s",
		    json_string_value(json_object_get(row, "name")));
		r->role = ROLE_AGENT;
		rc = 0;
		goto cleanup;
	}
	util_hash_hex(r->token, hash);
	row = db_row("SELECT name, role FROM tokens WHERE hash = ?", "s", hash);
	if (row == NULL)
		goto cleanup;
	r->role = (int)json_integer_value(json_object_get(row, "role"));
	snprintf(r->principal, sizeof(r->principal), "%s",
	    json_string_value(json_object_get(row, "name")));
	rc = r->role >= min_role ? 0 : 403;
cleanup:
	json_decref(row);
	return rc;
}
