/* cli_api.c - the client's side of the REST API: URL, token, requests and
 * turning every failure into one line for the user. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"

#define CLI_TOKEN_FILE_MAX	4096
#define CLI_REQ_TIMEOUT_MS	60000L

static const char *
cli_env(const char *name)
{
	const char *v = getenv(name);

	return (v != NULL && v[0] != '\0') ? v : NULL;
}

/* Reads a token file: one line, surrounding white space dropped. */
static int
cli_token_read(struct cli_ctx *c, const char *path)
{
	char *buf = NULL, *s, *e;
	size_t len;
	int rc = -1;

	if ((buf = util_read_file(path, CLI_TOKEN_FILE_MAX, &len)) == NULL) {
		cli_err("cannot read token file %s: %s", path, strerror(errno));
		goto cleanup;
	}
	for (s = buf; *s != '\0' && isspace((unsigned char)*s); s++)
		;
	for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	for (e = s; *e != '\0' && isgraph((unsigned char)*e); e++)
		;
	if (*s == '\0' || *e != '\0') {
		cli_err("token file %s does not hold a token", path);
		goto cleanup;
	}
	if ((c->token = strdup(s)) == NULL) {
		cli_err("out of memory");
		goto cleanup;
	}
	rc = 0;
cleanup:
	free(buf);
	return rc;
}

/* Flags beat the environment; a token beats a token file; the file `cvirt
 * up` writes is the fallback. */
static int
cli_token_resolve(struct cli_ctx *c)
{
	const char *tok = c->opt_token, *file = c->opt_token_file;
	char dir[1024], dflt[1100];

	if (tok == NULL && file == NULL) {
		tok = cli_env("CVIRT_TOKEN");
		if (tok == NULL)
			file = cli_env("CVIRT_TOKEN_FILE");
	}
	if (tok != NULL) {
		if ((c->token = strdup(tok)) == NULL) {
			cli_err("out of memory");
			return -1;
		}
		return 0;
	}
	if (file != NULL)
		return cli_token_read(c, file);
	if (util_default_data_dir(dir, sizeof(dir)) == 0 &&
	    util_fmt(dflt, sizeof(dflt), "%s/admin.token", dir) == 0 &&
	    access(dflt, R_OK) == 0)
		return cli_token_read(c, dflt);
	return 0;	/* no token: the manager says 401 if it needs one */
}

/* Every manager URL the user gave (comma-separated). */
static char cli_api_urls[4 * CLI_URL_MAX];

int
cli_ctx_resolve(struct cli_ctx *c)
{
	const char *url;
	size_t n;

	if (c->resolved)
		return 0;
	url = c->opt_url ? c->opt_url : cli_env("CVIRT_URL");
	if (url == NULL)
		url = CLI_DEFAULT_URL;
	/* URL1,URL2,...: managers sharing one database; the first that
	 * answers (not a standby) serves. */
	for (n = 0; util_list_item(url, n, c->url, sizeof(c->url)) == 0; n++)
		if (strncmp(c->url, "http://", 7) != 0 &&
		    strncmp(c->url, "https://", 8) != 0)
			break;
	if (n == 0 || util_list_item(url, n, c->url, sizeof(c->url)) == 0 ||
	    util_fmt(cli_api_urls, sizeof(cli_api_urls), "%s", url) != 0) {
		cli_err("invalid manager URL \"%s\" (expected http://HOST:PORT "
		    "or https://HOST:PORT, several separated by commas)", url);
		return -1;
	}
	util_list_item(url, 0, c->url, sizeof(c->url));
	for (n = strlen(c->url); n > 0 && c->url[n - 1] == '/'; n--)
		c->url[n - 1] = '\0';
	c->ca_file = c->opt_ca_file ? c->opt_ca_file : cli_env("CVIRT_CA_FILE");
	if (c->ca_file != NULL) {
		if (access(c->ca_file, R_OK) != 0) {
			cli_err("cannot read CA file %s: %s", c->ca_file,
			    strerror(errno));
			return -1;
		}
		httpc_set_cafile(c->ca_file);
	}
	if (cli_token_resolve(c) != 0)
		return -1;
	c->resolved = 1;
	return 0;
}

void
cli_ctx_free(struct cli_ctx *c)
{
	if (c == NULL)
		return;
	free(c->token);
	c->token = NULL;
}

/* The one line for a reply that is not a 2xx. */
static void
cli_api_errline(struct cli_ctx *c, const struct httpc_resp *r, char *err,
    size_t errsize)
{
	json_t *e = json_object_get(r->json, "error");
	const char *msg = json_is_string(e) ? json_string_value(e) : NULL;

	if (r->status == 401 && c->token == NULL)
		snprintf(err, errsize, "the manager wants an API token: use "
		    "--token, --token-file or CVIRT_TOKEN");
	else if (r->status == 401)
		snprintf(err, errsize, "the manager refused the API token");
	else if (msg != NULL)
		snprintf(err, errsize, "%s", msg);
	else
		snprintf(err, errsize, "the manager replied with HTTP status "
		    "%ld", r->status);
}

/* After a transport error or a standby's 503 on c->url: the next manager
 * of the list that answers becomes c->url. 0 when one did. */
static int
cli_api_failover(struct cli_ctx *c, const char *method, const char *path,
    json_t *body, struct httpc_resp *r)
{
	char base[CLI_URL_MAX], url[CLI_URL_MAX + CLI_PATH_MAX];
	size_t i;

	for (i = 0; util_list_item(cli_api_urls, i, base, sizeof(base)) == 0;
	    i++) {
		if (strncmp(base, c->url, strlen(c->url)) == 0 ||
		    util_fmt(url, sizeof(url), "%s/api/v1%s", base, path) != 0)
			continue;
		httpc_resp_free(r);
		memset(r, 0, sizeof(*r));
		if (httpc_request(method, url, c->token, body,
		    CLI_REQ_TIMEOUT_MS, r) == 0 && r->status != 503) {
			log_debug("%s %s -> %ld (failed over)", method, url,
			    r->status);
			snprintf(c->url, sizeof(c->url), "%s", base);
			return 0;
		}
	}
	return -1;
}

int
cli_api_try(struct cli_ctx *c, const char *method, const char *path,
    json_t *body, json_t **out, char *err, size_t errsize)
{
	struct httpc_resp r;
	char url[CLI_URL_MAX + CLI_PATH_MAX];
	int rc = -1;

	memset(&r, 0, sizeof(r));
	if (out != NULL)
		*out = NULL;
	if (cli_ctx_resolve(c) != 0) {
		snprintf(err, errsize, "%s", "");
		return -1;
	}
	if (util_fmt(url, sizeof(url), "%s/api/v1%s", c->url, path) != 0) {
		snprintf(err, errsize, "request path too long");
		return -1;
	}
	if ((httpc_request(method, url, c->token, body, CLI_REQ_TIMEOUT_MS,
	    &r) != 0 || r.status == 503) && strchr(cli_api_urls, ',') &&
	    cli_api_failover(c, method, path, body, &r) == 0)
		;	/* r is the answer of another manager */
	else if (r.status == 0) {
		log_debug("%s %s: %s", method, url, r.err);
		snprintf(err, errsize, "cannot reach the manager at %s: %s",
		    c->url, r.err);
		goto cleanup;
	}
	log_debug("%s %s -> %ld (%zu bytes)%s%s", method, url, r.status, r.len,
	    r.err[0] ? ": " : "", r.err);
	if (r.status < 200 || r.status > 299) {
		cli_api_errline(c, &r, err, errsize);
		goto cleanup;
	}
	if (r.len > 0 && r.json == NULL) {
		snprintf(err, errsize, "unexpected reply from the manager "
		    "(HTTP %ld, not JSON)", r.status);
		goto cleanup;
	}
	if (out != NULL) {
		*out = r.json;
		r.json = NULL;
	}
	rc = 0;
cleanup:
	httpc_resp_free(&r);
	return rc;
}

int
cli_api(struct cli_ctx *c, const char *method, const char *path,
    json_t *body, json_t **out)
{
	char err[512];

	err[0] = '\0';
	if (cli_api_try(c, method, path, body, out, err, sizeof(err)) == 0)
		return 0;
	if (err[0] != '\0')	/* empty: cli_ctx_resolve said it already */
		cli_err("%s", err);
	return -1;
}

/* One request whose reply is an object: --json prints it, else print()
 * or the line done (with %s: the name). */
int
cli_call(struct cli_ctx *c, const char *method, const char *path,
    json_t *body, void (*print)(json_t *), const char *done, const char *name)
{
	json_t *reply = NULL;
	int rc = CLI_EXIT_FAIL;

	if (cli_api(c, method, path, body, &reply) != 0)
		goto cleanup;
	if (c->json)
		cli_out_json(reply ? reply : json_null());
	else if (print && json_is_object(reply))
		print(reply);
	else if (done)
		printf(done, name);
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(reply);
	return rc;
}

/* ---- uploads ------------------------------------------------------------ */

struct cli_upload {
	int		 fd;
	long long	 size, sent;
	int		 tty, pct;
	const char	*label;
};

/* The file's next bytes, with a progress line on a terminal. */
static int
cli_upload_read(void *arg, void *buf, size_t n)
{
	struct cli_upload *u = arg;
	ssize_t got = read(u->fd, buf, n);
	int pct;

	if (got <= 0)
		return (int)got;
	u->sent += got;
	pct = u->size > 0 ? (int)(u->sent * 100 / u->size) : 100;
	if (u->tty && pct != u->pct) {
		fprintf(stderr, "\r%s: %3d%% (%lld MiB)", u->label, pct,
		    u->sent >> 20);
		if (pct == 100)
			fputc('\n', stderr);
	}
	u->pct = pct;
	return (int)got;
}

int
cli_api_upload(struct cli_ctx *c, const char *path, int fd, long long size,
    const char *label, json_t **out)
{
	struct cli_upload u = { .fd = fd, .size = size, .pct = -1,
	    .label = label, .tty = isatty(STDERR_FILENO) };
	struct httpc_opts o = { .body_read = cli_upload_read, .body_arg = &u,
	    .body_len = size };
	struct httpc_resp r;
	char url[CLI_URL_MAX + CLI_PATH_MAX], err[512];
	int rc = -1;

	memset(&r, 0, sizeof(r));
	*out = NULL;
	if (cli_ctx_resolve(c) != 0)
		return -1;
	if (util_fmt(url, sizeof(url), "%s/api/v1%s", c->url, path) != 0) {
		cli_err("request path too long");
		return -1;
	}
	/* Hours at most: the manager's own read deadlines cut a stall. */
	if (httpc_request_opts("PUT", url, c->token, NULL, 6L * 3600 * 1000,
	    &o, &r) != 0) {
		cli_err("upload of %s failed: %s", label, r.err);
		goto cleanup;
	}
	if (r.status < 200 || r.status > 299) {
		cli_api_errline(c, &r, err, sizeof(err));
		cli_err("%s", err);
		goto cleanup;
	}
	*out = r.json;
	r.json = NULL;
	rc = 0;
cleanup:
	if (u.tty && u.pct >= 0 && u.pct < 100)
		fputc('\n', stderr);
	httpc_resp_free(&r);
	return rc;
}
