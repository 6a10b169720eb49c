/* httpc.c - blocking HTTP requests with JSON bodies over libcurl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/httpc.h"

static const char *httpc_cafile;
static const char *httpc_cert, *httpc_key;	/* client certificate */

void
httpc_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
httpc_set_cafile(const char *path)
{
	httpc_cafile = path;
}

void
httpc_set_client_cert(const char *cert, const char *key)
{
	httpc_cert = cert;
	httpc_key = key;
}

static size_t
httpc_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct httpc_resp *r = ud;
	size_t n = size * nmemb;
	char *nb;

	if (r->len + n > HTTPC_RESP_MAX)
		return 0;
	if ((nb = realloc(r->body, r->len + n + 1)) == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

int
httpc_request(const char *method, const char *url, const char *token,
    json_t *body, long timeout_ms, struct httpc_resp *resp)
{
	struct curl_slist *hdrs = NULL;
	char auth[512], *payload = NULL;
	CURL *c = NULL;
	CURLcode cc;
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	if ((c = curl_easy_init()) == NULL) {
		snprintf(resp->err, sizeof(resp->err), "cannot initialise curl");
		goto cleanup;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms < 5000 ? timeout_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, httpc_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	if (httpc_cafile)
		curl_easy_setopt(c, CURLOPT_CAINFO, httpc_cafile);
	if (httpc_cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, httpc_cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, httpc_key);
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (body) {
		if ((payload = json_dumps(body, JSON_COMPACT)) == NULL) {
			snprintf(resp->err, sizeof(resp->err), "cannot encode JSON");
			goto cleanup;
		}
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		snprintf(resp->err, sizeof(resp->err), "%s",
		    curl_easy_strerror(cc));
		goto cleanup;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	if (resp->body) {
		resp->json = json_loadb(resp->body, resp->len, 0, NULL);
		if (resp->status >= 400) {
			json_t *e = json_object_get(resp->json, "error");
			snprintf(resp->err, sizeof(resp->err), "%s",
			    json_is_string(e) ? json_string_value(e) :
			    "unexpected reply");
		}
	} else if (resp->status >= 400) {
		snprintf(resp->err, sizeof(resp->err), "HTTP status %ld",
		    resp->status);
	}
	rc = 0;
cleanup:
	curl_slist_free_all(hdrs);
	free(payload);
	if (c)
		curl_easy_cleanup(c);
	return rc;
}

void
httpc_resp_free(struct httpc_resp *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	json_decref(resp->json);
	resp->body = NULL;
	resp->json = NULL;
}
