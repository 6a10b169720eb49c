/* cli_user.c - `cvirt user ...`, `cvirt login`, `cvirt host join-token`
 * and `cvirt audit list`: users, tokens, passwords, TOTP, sessions, join
 * tokens, the audit log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli_int.h"
#include "common/httpc.h"
#include "common/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define CLI_PW_MAX 1024

/* A password from a file (first line) or stdin; on a terminal it is asked
 * for without echo. 0 or -1 after one line. */
static int
cli_password_read(const char *file, char *out, size_t size)
{
	struct termios old, raw;
	FILE *f = stdin;
	int tty = 0, rc = -1;
	size_t n;

	if (file != NULL && (f = fopen(file, "r")) == NULL) {
		cli_err("cannot read %s: %s", file, strerror(errno));
		return -1;
	}
	if (file == NULL && isatty(STDIN_FILENO) &&
	    tcgetattr(STDIN_FILENO, &old) == 0) {
		tty = 1;
		raw = old;
		raw.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
		fputs("Password: ", stderr);
	}
	if (fgets(out, (int)size, f) == NULL) {
		cli_err("no password given");
		goto cleanup;
	}
	n = strcspn(out, "\r\n");
	if (out[n] == '\0' && n == size - 1) {
		cli_err("password longer than %zu bytes", size - 2);
		goto cleanup;
	}
	out[n] = '\0';
	rc = 0;
cleanup:
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

int
cli_user_create(struct cli_ctx *c, int argc, char **argv)
{
	const char *role = NULL, *pwfile = NULL;
	int with_pw = 0;
	const struct cli_opt opts[] = {
		{ "role", CLI_OPT_STR, &role },
		{ "password-file", CLI_OPT_STR, &pwfile },
		{ "password", CLI_OPT_FLAG, &with_pw },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char *pos[1], pw[CLI_PW_MAX + 2];
	json_t *body = NULL, *reply = NULL;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (role == NULL)
		return cli_usage_error(c, "user create needs --role "
		    "admin|operator|viewer");
	rc = CLI_EXIT_FAIL;
	if (cli_check_name("user", pos[0]) != 0)
		goto cleanup;
	if (strcmp(role, "admin") != 0 && strcmp(role, "operator") != 0 &&
	    strcmp(role, "viewer") != 0) {
		cli_err("--role must be admin, operator or viewer, not \"%s\"",
		    role);
		goto cleanup;
	}
	body = json_pack("{s:s, s:s}", "name", pos[0], "role", role);
	if (pwfile != NULL || with_pw) {
		if (cli_password_read(pwfile, pw, sizeof(pw)) != 0)
			goto cleanup;
		json_object_set_new(body, "password", json_string(pw));
	}
	if (cli_api(c, "POST", "/users", body, &reply) != 0)
		goto cleanup;
	if (c->json)
		cli_out_json(reply);
	else
		printf("%s\n", cli_json_str(reply, "token", ""));
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(body);
	json_decref(reply);
	return rc;
}

int
cli_user_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "ROLE", "role", CLI_F_STR },
		{ "PASSWORD", "password", CLI_F_BOOL },
		{ "TOKENS", "tokens", CLI_F_STR },
		{ "CREATED", "created", CLI_F_STR },
	};
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	return cli_out_list(c, "/users", cols, NELEM(cols));
}

/* One request on /users/NAME[/sub]; prints the JSON or line. */
static int
cli_user_call(struct cli_ctx *c, const char *method, const char *name,
    const char *sub, json_t *body, const char *line_key, const char *line)
{
	json_t *reply = NULL;
	char path[160];
	int rc = CLI_EXIT_FAIL;

	if (cli_check_name("user", name) != 0)
		goto cleanup;
	snprintf(path, sizeof(path), "/users/%s%s", name, sub);
	if (cli_api(c, method, path, body, &reply) != 0)
		goto cleanup;
	if (c->json)
		cli_out_json(reply);
	else if (line_key != NULL)
		printf("%s\n", cli_json_str(reply, line_key, ""));
	else
		printf(line, name);
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(reply);
	return rc;
}

int
cli_user_delete(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[1];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	return cli_user_call(c, "DELETE", pos[0], "", NULL, NULL,
	    "user %s deleted\n");
}

int
cli_user_token(struct cli_ctx *c, int argc, char **argv)
{
	int revoke = 0;
	const struct cli_opt opts[] = {
		{ "revoke", CLI_OPT_FLAG, &revoke },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char *pos[1];
	json_t *body;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	body = json_pack("{s:b}", "revoke", revoke);
	rc = cli_user_call(c, "POST", pos[0], "/token", body,
	    revoke ? NULL : "token", "every token of user %s is revoked\n");
	json_decref(body);
	return rc;
}

int
cli_user_passwd(struct cli_ctx *c, int argc, char **argv)
{
	const char *pwfile = NULL;
	const struct cli_opt opts[] = {
		{ "password-file", CLI_OPT_STR, &pwfile },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char *pos[1], pw[CLI_PW_MAX + 2];
	json_t *body;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("user", pos[0]) != 0 ||
	    cli_password_read(pwfile, pw, sizeof(pw)) != 0)
		return CLI_EXIT_FAIL;
	body = json_pack("{s:s}", "password", pw);
	rc = cli_user_call(c, "POST", pos[0], "/password", body, NULL,
	    "password of user %s set\n");
	json_decref(body);
	return rc;
}

/* `cvirt user totp enable|disable NAME`: enable prints the secret and
 * the otpauth:// URI an authenticator app takes (once: the manager keeps
 * it only to check codes). */
int
cli_user_totp(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[2];
	json_t *reply = NULL;
	char path[160];
	int rc, enable;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 2, 2, NULL, &rc) != 0)
		return rc;
	if (strcmp(pos[0], "enable") != 0 && strcmp(pos[0], "disable") != 0)
		return cli_usage_error(c, "user totp wants enable or disable, "
		    "not \"%s\"", pos[0]);
	enable = pos[0][0] == 'e';
	if (cli_check_name("user", pos[1]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/users/%s/totp", pos[1]);
	if (cli_api(c, enable ? "POST" : "DELETE", path, NULL, &reply) != 0)
		return cli_fail(c);
	if (c->json)
		cli_out_json(reply);
	else if (enable)
		printf("secret: %s\nuri: %s\n", cli_json_str(reply, "secret",
		    ""), cli_json_str(reply, "uri", ""));
	else
		printf("TOTP of user %s disabled\n", pos[1]);
	json_decref(reply);
	return CLI_EXIT_OK;
}

/* A one-time code, asked for on the terminal (read from stdin else). */
static int
cli_otp_read(char *out, size_t size)
{
	size_t n;

	if (isatty(STDIN_FILENO))
		fputs("One-time code: ", stderr);
	if (fgets(out, (int)size, stdin) == NULL) {
		cli_err("no one-time code given");
		return -1;
	}
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	return 0;
}

/* POST /login without a token; the reply (any status) in *reply. */
static int
cli_login_post(struct cli_ctx *c, json_t *body, json_t **reply,
    long *status)
{
	struct httpc_resp r;
	char url[CLI_URL_MAX + 16];
	int rc = -1;

	memset(&r, 0, sizeof(r));
	if (cli_ctx_resolve(c) != 0)
		return -1;
	snprintf(url, sizeof(url), "%s/api/v1/login", c->url);
	if (httpc_request("POST", url, NULL, body, 30000, &r) != 0 ||
	    r.status == 0) {
		cli_err("cannot reach the manager at %s: %s", c->url, r.err);
		goto cleanup;
	}
	*status = r.status;
	*reply = r.json;
	r.json = NULL;
	rc = 0;
cleanup:
	httpc_resp_free(&r);
	return rc;
}

/* `cvirt login NAME`: a session token (12 h) for the password, and the
 * one-time code when the user has TOTP, on stdout (export
 * CVIRT_TOKEN=$(cvirt login alice)); when it expires on stderr. */
int
cli_login(struct cli_ctx *c, int argc, char **argv)
{
	const char *pwfile = NULL, *otp = NULL;
	const struct cli_opt opts[] = {
		{ "password-file", CLI_OPT_STR, &pwfile },
		{ "otp", CLI_OPT_STR, &otp },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char *pos[1], pw[CLI_PW_MAX + 2], code[32];
	json_t *body = NULL, *reply = NULL;
	long status = 0;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	rc = CLI_EXIT_FAIL;
	if (cli_check_name("user", pos[0]) != 0 ||
	    cli_password_read(pwfile, pw, sizeof(pw)) != 0)
		goto cleanup;
	body = json_pack("{s:s, s:s}", "name", pos[0], "password", pw);
	sodium_memzero(pw, sizeof(pw));
	if (otp != NULL)
		json_object_set_new(body, "otp", json_string(otp));
	if (cli_login_post(c, body, &reply, &status) != 0)
		goto cleanup;
	if (status == 401 && otp == NULL && json_is_true(json_object_get(reply,
	    "otp_required"))) {
		if (cli_otp_read(code, sizeof(code)) != 0)
			goto cleanup;
		json_object_set_new(body, "otp", json_string(code));
		json_decref(reply);
		reply = NULL;
		if (cli_login_post(c, body, &reply, &status) != 0)
			goto cleanup;
	}
	if (status != 200) {
		cli_err("%s", json_is_string(json_object_get(reply, "error")) ?
		    json_string_value(json_object_get(reply, "error")) :
		    "login refused");
		goto cleanup;
	}
	if (c->json)
		cli_out_json(reply);
	else {
		printf("%s\n", cli_json_str(reply, "token", ""));
		fprintf(stderr, "session of %s expires %s\n", pos[0],
		    cli_json_str(reply, "expires", "?"));
	}
	rc = CLI_EXIT_OK;
cleanup:
	if (body != NULL && json_object_get(body, "password") != NULL)
		json_object_del(body, "password");
	json_decref(body);
	json_decref(reply);
	return rc;
}

/* The token on stdout (TOKEN=$(cvirt host join-token) takes it), when it
 * expires on stderr. */
int
cli_host_join_token(struct cli_ctx *c, int argc, char **argv)
{
	const char *ttl = NULL, *addr = NULL;
	const struct cli_opt opts[] = {
		{ "ttl", CLI_OPT_STR, &ttl },
		{ "address", CLI_OPT_STR, &addr },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	json_t *body = json_object(), *reply = NULL, *list;
	const char *p;
	uint64_t v;
	size_t n;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, NULL, 0, 0, NULL, &rc) != 0)
		goto cleanup;
	rc = CLI_EXIT_FAIL;
	if (ttl != NULL) {
		if (cli_parse_num("--ttl", ttl, 60, 604800, &v) != 0)
			goto cleanup;
		json_object_set_new(body, "ttl_s", json_integer((json_int_t)v));
	}
	if (addr != NULL) {
		list = json_array();
		for (p = addr; *p != '\0'; p += n + (p[n] == ',')) {
			n = strcspn(p, ",");
			if (n > 0)
				json_array_append_new(list, json_stringn(p, n));
		}
		json_object_set_new(body, "addresses", list);
	}
	if (cli_api(c, "POST", "/join-tokens", body, &reply) != 0)
		goto cleanup;
	if (c->json) {
		cli_out_json(reply);
	} else {
		printf("%s\n", cli_json_str(reply, "token", ""));
		fprintf(stderr, "join token %s admits one new host, once; it "
		    "expires %s\n", cli_json_str(reply, "id", "?"),
		    cli_json_str(reply, "expires", "?"));
	}
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(body);
	json_decref(reply);
	return rc;
}

int
cli_audit_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "ID", "id", CLI_F_STR }, { "TIME", "time", CLI_F_STR },
		{ "USER", "user", CLI_F_STR }, { "REMOTE", "remote", CLI_F_STR },
		{ "METHOD", "method", CLI_F_STR }, { "PATH", "path", CLI_F_STR },
		{ "STATUS", "status", CLI_F_STR },
	};
	const char *limit = NULL, *user = NULL;
	const struct cli_opt opts[] = {
		{ "limit", CLI_OPT_STR, &limit },
		{ "user", CLI_OPT_STR, &user },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char path[CLI_PATH_MAX];
	uint64_t n = 100;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	if (limit != NULL && cli_parse_num("--limit", limit, 1, 100000, &n) != 0)
		return CLI_EXIT_FAIL;
	if (user != NULL && strlen(user) > 70) {
		cli_err("--user too long");
		return CLI_EXIT_FAIL;
	}
	/* Principals are user names or host:NAME / join:ID: URL-safe. */
	if (user != NULL && strspn(user, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:") != strlen(user)) {
		cli_err("invalid --user \"%s\"", user);
		return CLI_EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "/audit?limit=%llu%s%s",
	    (unsigned long long)n, user ? "&user=" : "", user ? user : "");
	return cli_out_list(c, path, cols, NELEM(cols));
}
