/* api_media.c - the media areas of storage domains (isos/, kernels/,
 * images/): the check of every host file a VM or an image import names
 * (api_media_ref), and /api/v1/storage/S/AREA[/NAME] (upload, list,
 * delete), relayed to an agent that sees the domain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/beneath.h"
#include "common/httpc.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))
#define API_MEDIA_TIMEOUT_MS (6LL * 3600 * 1000)	/* a slow client's ISO */

static const char *
api_media_area(const char *what)
{
	if (strcmp(what, "cdrom") == 0)
		return BENEATH_AREA_ISOS;
	if (strcmp(what, "kernel") == 0 || strcmp(what, "initrd") == 0)
		return BENEATH_AREA_KERNELS;
	return BENEATH_AREA_IMAGES;		/* "file": an image import */
}

/* Whether path lies in area beneath a domain root or beneath a media
 * directory that some host reports. Text only: the agent that opens the
 * file checks again, beneath the directory, with no link followed. */
static int
api_media_known(const char *path, const char *area)
{
	json_t *rows = db_query("SELECT info FROM hosts", NULL), *h, *info, *s;
	size_t i, j, alen = strlen(area);
	const char *rel;
	int ok = 0;

	json_array_foreach(rows, i, h) {
		info = json_loads(JS(h, "info") ? JS(h, "info") : "{}", 0, NULL);
		json_array_foreach(json_object_get(info, "storage"), j, s) {
			rel = JS(s, "path") ? beneath_rel(JS(s, "path"), path) : NULL;
			if (rel && strncmp(rel, area, alen) == 0 &&
			    rel[alen] == '/' && beneath_name_ok(rel))
				ok = 1;
		}
		json_array_foreach(json_object_get(info, "media_dirs"), j, s) {
			rel = json_is_string(s) ? beneath_rel(json_string_value(s),
			    path) : NULL;
			if (rel && beneath_name_ok(rel))
				ok = 1;
		}
		json_decref(info);
	}
	json_decref(rows);
	return ok;
}

int
api_media_ref(struct httpd_req *r, const char *what, const char *value,
    char *out, size_t outsz)
{
	const char *area = api_media_area(what), *colon;
	char st[UTIL_NAME_MAX + 1], root[4096], msg[300];

	/* STORAGE:AREA/NAME names it by domain; else the path as hosts
	 * see it. */
	colon = value[0] != '/' ? strchr(value, ':') : NULL;
	if (colon && (size_t)(colon - value) < sizeof(st)) {
		snprintf(st, sizeof(st), "%.*s", (int)(colon - value), value);
		if (!util_name_valid(st) || storops_storage_path(st, root,
		    sizeof(root)) < 0 || util_fmt(out, outsz, "%s/%s", root,
		    colon + 1) < 0)
			goto refuse;
	} else if (util_fmt(out, outsz, "%s", value) < 0) {
		goto refuse;
	}
	if (out[0] == '/' && api_media_known(out, area))
		return 0;
refuse:
	beneath_refusal(msg, sizeof(msg), what, value, area);
	httpd_reply_error(r, 400, "%s", msg);
	return -1;
}

int
api_media_check(struct httpd_req *r, const char *what, const char *value,
    const char *path, const char *storage, const char *prefer)
{
	char host[UTIL_NAME_MAX + 1], err[512];
	json_t *body;
	int status = 0, rc;

	if (agentc_host_with_storage(storage, prefer, host, sizeof(host)) < 0) {
		httpd_reply_error(r, 503, "no host with storage %s is up",
		    storage);
		return -1;
	}
	body = json_pack("{s:s, s:s}", "what", what, "path", path);
	rc = agentc_call(host, "POST", "/agent/v1/media-check", body, 30000,
	    &status, NULL, err, sizeof(err));
	json_decref(body);
	if (rc < 0 || status >= 500) {
		httpd_reply_error(r, 502, "%s", err);
		return -1;
	}
	if (status >= 400) {
		/* The agent's refusal names the path as hosts see it; the
		 * client hears its own words, in the same one text. */
		beneath_refusal(err, sizeof(err), what, value, api_media_area(
		    what));
		httpd_reply_error(r, 400, "%s", err);
		return -1;
	}
	return 0;
}

/* The storage and area of a route; -1 after replying. */
static int
api_media_where(struct httpd_req *r, char *host, size_t hostsz)
{
	const char *st = r->params[0], *area = r->params[1];
	char root[4096];

	if (!util_name_valid(st) || storops_storage_path(st, root,
	    sizeof(root)) < 0) {
		httpd_reply_error(r, 404, "storage \"%.64s\" not found", st);
		return -1;
	}
	if (strcmp(area, BENEATH_AREA_ISOS) != 0 &&
	    strcmp(area, BENEATH_AREA_KERNELS) != 0 &&
	    strcmp(area, BENEATH_AREA_IMAGES) != 0) {
		httpd_reply_error(r, 404, "no media area \"%.32s\": isos, kernels "
		    "or images", area);
		return -1;
	}
	if (agentc_host_with_storage(st, NULL, host, hostsz) < 0) {
		httpd_reply_error(r, 503, "no host with storage %s is up", st);
		return -1;
	}
	return 0;
}

static int
api_media_body(void *arg, void *buf, size_t n)
{
	return httpd_body_read(arg, buf, n);
}

/* The agent's answer, as it came (its status and JSON). */
static int
api_media_relay(struct httpd_req *r, int status, json_t *reply,
    const char *err)
{
	if (status >= 400)
		return httpd_reply_error(r, status, "%s", err);
	return httpd_reply_json(r, status, reply ? json_incref(reply) :
	    json_object());
}

/* PUT /api/v1/storage/S/AREA/NAME: the body streams to an agent of S,
 * which stores it under a temp name, links it to NAME once complete and
 * answers its size and SHA-256. */
static int
api_media_put(struct httpd_req *r)
{
	struct httpc_opts stream = { .body_read = api_media_body,
	    .body_arg = r };
	char host[UTIL_NAME_MAX + 1], path[512], err[512];
	json_t *reply = NULL;
	int status = 0;

	if (!beneath_upload_name_ok(r->params[2]))
		return httpd_reply_error(r, 400, "invalid file name: 1-200 "
		    "letters, digits, '.', '_', '-' or '+', not starting with "
		    "'.'");
	if (r->content_length < 0)
		return httpd_reply_error(r, 411, "an upload needs a "
		    "Content-Length");
	if (r->content_length > mgr_cfg.upload_max)
		return httpd_reply_error(r, 413, "the upload is larger than the "
		    "limit of %lld MiB", (long long)(mgr_cfg.upload_max >> 20));
	if (api_media_where(r, host, sizeof(host)) < 0)
		return 0;
	stream.body_len = r->content_length;
	if (util_fmt(path, sizeof(path), "/agent/v1/media/%s/%s/%s?max=%lld",
	    r->params[0], r->params[1], r->params[2],
	    (long long)mgr_cfg.upload_max) < 0)
		return httpd_reply_error(r, 400, "name too long");
	if (agentc_call_stream(host, "PUT", path, NULL, &stream,
	    API_MEDIA_TIMEOUT_MS, &status, &reply, err, sizeof(err)) < 0) {
		/* The client's body ended early, or the agent went away. */
		return httpd_reply_error(r, strstr(err, "ended early") ? 400 : 502,
		    "upload of %s/%s failed: %s", r->params[1], r->params[2], err);
	}
	if (status < 400)
		event_add("info", "media.uploaded", r->params[2], "%s/%s uploaded "
		    "to storage %s by %s (%lld bytes, sha256 %s)", r->params[1],
		    r->params[2], r->params[0], r->principal, r->content_length,
		    JS(reply, "sha256") ? JS(reply, "sha256") : "?");
	api_media_relay(r, status, reply, err);
	json_decref(reply);
	return 0;
}

/* GET /api/v1/storage/S/AREA */
static int
api_media_list(struct httpd_req *r)
{
	char host[UTIL_NAME_MAX + 1], path[256], err[512];
	json_t *reply = NULL;
	int status = 0;

	if (api_media_where(r, host, sizeof(host)) < 0)
		return 0;
	if (util_fmt(path, sizeof(path), "/agent/v1/media/%s/%s",
	    r->params[0], r->params[1]) < 0 || agentc_call(host, "GET", path,
	    NULL, 30000, &status, &reply, err, sizeof(err)) < 0)
		return httpd_reply_error(r, 502, "%s", err);
	api_media_relay(r, status, reply, err);
	json_decref(reply);
	return 0;
}

/* Who uses the file at path: a VM (cdrom, kernel, initrd) or an image
 * (its file). 1 with a reply sent, else 0. */
static int
api_media_in_use(struct httpd_req *r, const char *path)
{
	char like[4200];
	json_t *row;

	if (util_fmt(like, sizeof(like), "%%\"%s\"%%", path) == 0 &&
	    (row = db_row("SELECT name FROM vms WHERE spec LIKE ?", "s",
	    like)) != NULL) {
		httpd_reply_error(r, 409, "%s/%s is used by vm \"%s\"",
		    r->params[1], r->params[2], JS(row, "name"));
		json_decref(row);
		return 1;
	}
	if ((row = db_row("SELECT name FROM images WHERE file = ?", "s",
	    path)) != NULL) {
		httpd_reply_error(r, 409, "%s/%s is the file of image \"%s\"",
		    r->params[1], r->params[2], JS(row, "name"));
		json_decref(row);
		return 1;
	}
	return 0;
}

/* DELETE /api/v1/storage/S/AREA/NAME: refused while in use. */
static int
api_media_delete(struct httpd_req *r)
{
	char host[UTIL_NAME_MAX + 1], root[4096], file[4400], path[512];
	char err[512];
	json_t *reply = NULL;
	int status = 0;

	if (api_media_where(r, host, sizeof(host)) < 0)
		return 0;
	if (r->params[2][0] == '.' || !beneath_name_ok(r->params[2]) ||
	    storops_storage_path(r->params[0], root, sizeof(root)) < 0 ||
	    util_fmt(file, sizeof(file), "%s/%s/%s", root, r->params[1],
	    r->params[2]) < 0)
		return httpd_reply_error(r, 404, "no file \"%.64s\" in %s/",
		    r->params[2], r->params[1]);
	if (api_media_in_use(r, file))
		return 0;
	if (util_fmt(path, sizeof(path), "/agent/v1/media/%s/%s/%s",
	    r->params[0], r->params[1], r->params[2]) < 0 ||
	    agentc_call(host, "DELETE", path, NULL, 60000, &status, &reply,
	    err, sizeof(err)) < 0)
		return httpd_reply_error(r, 502, "%s", err);
	if (status < 400)
		event_add("info", "media.deleted", r->params[2], "%s/%s deleted "
		    "from storage %s by %s", r->params[1], r->params[2],
		    r->params[0], r->principal);
	api_media_relay(r, status, reply, err);
	json_decref(reply);
	return 0;
}

const struct httpd_route api_media_routes[] = {
	{ "PUT",    "/api/v1/storage/{}/{}/{}", api_media_put, HTTPD_STREAM,
	    ROLE_OPERATOR },
	{ "DELETE", "/api/v1/storage/{}/{}/{}", api_media_delete, 0,
	    ROLE_OPERATOR },
	{ "GET",    "/api/v1/storage/{}/{}",    api_media_list, 0, ROLE_VIEWER },
};
const size_t api_media_nroutes = sizeof(api_media_routes) /
    sizeof(api_media_routes[0]);
