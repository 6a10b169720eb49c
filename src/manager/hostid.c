/* hostid.c - host identity: which credential may register as, report as
 * or get a certificate for which host. A join token admits one new host,
 * once; from then on a host proves itself with the key its agent chose
 * and, once it holds a certificate, with that certificate too. Nobody
 * registers an existing name with a token: an admin deletes or resets
 * the host first (docs/security.md, "Admitting hosts"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/pki.h"
#include "manager/manager_int.h"

#define JS(o, k) json_string_value(json_object_get((o), (k)))

#define HOSTID_COLS "SELECT name, url, agent_key, key_source, cert_fp, " \
	"approved FROM hosts "

/* Registered before agents chose their keys (or by an agent that sent
 * none): its agent may take a new key once, with an admin token or its
 * certificate. A reset host is not. */
static int
hostid_legacy(json_t *row)
{
	return JS(row, "key_source") == NULL && JS(row, "agent_key") != NULL;
}

/* Whether the host must present a certificate: it registered with one,
 * or (registered before fingerprints were kept) its URL is https. */
static int
hostid_has_cert(json_t *row)
{
	const char *url = JS(row, "url");

	return JS(row, "cert_fp") != NULL || (hostid_legacy(row) && url &&
	    strncmp(url, "https://", 8) == 0);
}

/* The certificate r presents fits the host of row (0) or not (401 with
 * r->auth_err). report: the very certificate it registered with; else
 * any the cluster CA issued for its name (a renewed one). */
static int
hostid_cert_check(struct httpd_req *r, json_t *row, int report)
{
	const char *name = JS(row, "name"), *fp = JS(row, "cert_fp");

	if (r->peer_cn[0] != '\0' && strcmp(r->peer_cn, name) != 0) {
		snprintf(r->auth_err, sizeof(r->auth_err), "the key of host %s "
		    "came with the certificate of %s", name, r->peer_cn);
		return 401;
	}
	if (hostid_has_cert(row) && r->peer_cn[0] == '\0') {
		snprintf(r->auth_err, sizeof(r->auth_err), "host %s has a "
		    "certificate: present it (mutual TLS over https://)", name);
		return 401;
	}
	if (report && fp != NULL && strcmp(r->peer_fp, fp) != 0) {
		snprintf(r->auth_err, sizeof(r->auth_err), "host %s presented "
		    "a certificate other than the one it registered with", name);
		return 401;
	}
	/* A host from before fingerprints: the first one seen is its. */
	if (report && fp == NULL && r->peer_fp[0] != '\0')
		db_exec("UPDATE hosts SET cert_fp = ? WHERE name = ? AND "
		    "cert_fp IS NULL", "ss", r->peer_fp, name);
	return 0;
}

int
hostid_auth_agent(struct httpd_req *r)
{
	json_t *row;
	int rc = 401;

	row = db_row(HOSTID_COLS "WHERE agent_key = ?", "s", r->token);
	if (row == NULL || JS(row, "name") == NULL)
		goto cleanup;
	if ((rc = hostid_cert_check(r, row, 1)) != 0) {
		log_warnx("report refused: %s", r->auth_err);
		goto cleanup;
	}
	snprintf(r->principal, sizeof(r->principal), "host:%s",
	    JS(row, "name"));
	r->role = ROLE_AGENT;
cleanup:
	json_decref(row);
	return rc;
}

int
hostid_auth_host(struct httpd_req *r)
{
	json_t *row;
	const char *fp;
	int rc = 1;

	row = db_row(HOSTID_COLS "WHERE agent_key = ?", "s", r->token);
	if (row != NULL && JS(row, "name") != NULL) {
		if ((rc = hostid_cert_check(r, row, 0)) != 0) {
			log_warnx("registration refused: %s", r->auth_err);
			goto cleanup;
		}
		snprintf(r->principal, sizeof(r->principal), "host:%s",
		    JS(row, "name"));
		r->role = ROLE_JOIN;
		goto cleanup;
	}
	json_decref(row);
	row = NULL;
	/* No key, but the certificate the host registered with (or, from
	 * before fingerprints, one the CA issued for it): the host lost its
	 * key file and takes a new key. */
	if (r->peer_cn[0] == '\0' || !util_name_valid(r->peer_cn) ||
	    (row = db_row(HOSTID_COLS "WHERE name = ?", "s", r->peer_cn)) ==
	    NULL || JS(row, "agent_key") == NULL)
		goto cleanup;
	fp = JS(row, "cert_fp");
	if ((fp != NULL && strcmp(fp, r->peer_fp) == 0) ||
	    (fp == NULL && hostid_legacy(row))) {
		snprintf(r->principal, sizeof(r->principal), "cert:%s",
		    r->peer_cn);
		r->role = ROLE_JOIN;
		rc = 0;
	}
cleanup:
	json_decref(row);
	return rc;
}

int
hostid_auth_join(struct httpd_req *r, const char *hash)
{
	json_t *row;
	char when[40];
	int rc = 401;

	row = db_row("SELECT id, expires, host, used FROM join_tokens WHERE "
	    "hash = ?", "s", hash);
	if (row == NULL)
		goto cleanup;
	if (json_is_integer(json_object_get(row, "used"))) {
		snprintf(r->auth_err, sizeof(r->auth_err), "join token already "
		    "used (it admitted host %.64s): create a new one (cvirt "
		    "host join-token)", JS(row, "host") ? JS(row, "host") : "?");
		goto cleanup;
	}
	/* Wall clock: a clock stepped forward ends tokens early, one
	 * stepped back keeps them longer by the step. */
	if (json_integer_value(json_object_get(row, "expires")) <=
	    util_wall_ms()) {
		util_time_iso(json_integer_value(json_object_get(row,
		    "expires")), when, sizeof(when));
		snprintf(r->auth_err, sizeof(r->auth_err), "join token expired "
		    "at %s: create a new one (cvirt host join-token)", when);
		goto cleanup;
	}
	snprintf(r->principal, sizeof(r->principal), "join:%s",
	    JS(row, "id"));
	r->role = ROLE_JOIN;
	rc = 0;
cleanup:
	json_decref(row);
	return rc;
}

void
hostid_free(struct hostid *id)
{
	if (id == NULL)
		return;
	json_decref(id->row);
	json_decref(id->token);
	id->row = id->token = NULL;
}

/* A token credential (an admin's or a join token) for name: a new host,
 * a reset one, or one registered before agents chose keys. */
static int
hostid_admit_token(struct httpd_req *r, const char *name, int cert,
    struct hostid *id, char *err, size_t errsz)
{
	char hash[UTIL_HASH_LEN + 1];
	int join = strncmp(r->principal, "join:", 5) == 0;

	if (join) {
		util_hash_hex(r->token, hash);
		id->token = db_row("SELECT id, host, addresses FROM join_tokens "
		    "WHERE hash = ?", "s", hash);
		if (id->token == NULL) {
			snprintf(err, errsz, "invalid join token");
			return 401;
		}
		if (JS(id->token, "host") && strcmp(JS(id->token, "host"),
		    name) != 0) {
			snprintf(err, errsz, "this join token was issued a "
			    "certificate for host %s, not %s",
			    JS(id->token, "host"), name);
			return 401;
		}
	}
	if (id->row != NULL && JS(id->row, "agent_key") != NULL &&
	    !(hostid_legacy(id->row) && !join)) {
		snprintf(err, errsz, "host %s exists: delete it (cvirt host "
		    "delete) or reset it (cvirt host reset) first", name);
		return 409;
	}
	id->how = id->row != NULL && JS(id->row, "agent_key") != NULL ?
	    HOSTID_REKEY : HOSTID_NEW;
	/* Where the manager issues certificates, a host joins with one. */
	if (!cert && pki_mgr_ready() && strcmp(r->peer_cn, name) != 0) {
		snprintf(err, errsz, "this cluster issues certificates: get "
		    "one for host %s first (POST /api/v1/agent/certificate)",
		    name);
		return 409;
	}
	return 0;
}

int
hostid_admit(struct httpd_req *r, const char *name, int cert,
    struct hostid *id, char *err, size_t errsz)
{
	const char *who = r->principal + 5;

	memset(id, 0, sizeof(*id));
	if (strcmp(name, HOSTID_RESERVED) == 0) {
		snprintf(err, errsz, "host name %s is reserved", HOSTID_RESERVED);
		return 400;
	}
	id->row = db_row(HOSTID_COLS "WHERE name = ?", "s", name);
	if (strncmp(r->principal, "host:", 5) == 0 ||
	    strncmp(r->principal, "cert:", 5) == 0) {
		if (strcmp(who, name) != 0 || id->row == NULL) {
			snprintf(err, errsz, "a host may only register itself");
			return 403;
		}
		id->how = r->principal[0] == 'h' ? HOSTID_SAME : HOSTID_REKEY;
		return 0;
	}
	return hostid_admit_token(r, name, cert, id, err, errsz);
}

/* Adds the addresses of JSON text s (a list) to the JSON text of the
 * row's approved column; the merged list as JSON text, malloc'd. */
static char *
hostid_merge(const char *have, const char *add)
{
	json_t *a = have ? json_loads(have, 0, NULL) : NULL;
	json_t *b = add ? json_loads(add, 0, NULL) : NULL, *v, *w;
	size_t i, j;
	char *out;

	if (!json_is_array(a)) {
		json_decref(a);
		a = json_array();
	}
	json_array_foreach(b, i, v) {
		json_array_foreach(a, j, w)
			if (json_equal(v, w))
				break;
		if (j == json_array_size(a) && json_is_string(v))
			json_array_append(a, v);
	}
	out = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	json_decref(b);
	return out;
}

int
hostid_consume(const struct hostid *id, const char *name)
{
	char *approved;
	json_t *row;
	int rc;

	if (id->token == NULL)
		return 0;
	if (db_exec("UPDATE join_tokens SET used = ?, host = ? WHERE id = ? "
	    "AND used IS NULL AND expires > ? AND (host IS NULL OR host = ?)",
	    "issis", util_wall_ms(), name, JS(id->token, "id"), util_wall_ms(),
	    name) != 1)
		return -1;
	if (JS(id->token, "addresses") == NULL)
		return 0;
	row = db_row("SELECT approved FROM hosts WHERE name = ?", "s", name);
	approved = hostid_merge(row ? JS(row, "approved") : NULL,
	    JS(id->token, "addresses"));
	rc = approved && db_exec("UPDATE hosts SET approved = ? WHERE name = ?",
	    "ss", approved, name) >= 0 ? 0 : -1;
	free(approved);
	json_decref(row);
	return rc;
}

int
hostid_bind(const struct hostid *id, const char *name)
{
	if (id->token == NULL)
		return 0;
	return db_exec("UPDATE join_tokens SET host = ? WHERE id = ? AND used "
	    "IS NULL AND expires > ? AND (host IS NULL OR host = ?)", "ssis",
	    name, JS(id->token, "id"), util_wall_ms(), name) == 1 ? 0 : -1;
}

/* Appends a to the "A,B" list out unless it is there; -1 when full. */
static int
hostid_san_add(char *out, size_t outsz, int *n, const char *a)
{
	size_t len = strlen(a), used = strlen(out);
	const char *p = out;

	if (a[0] == '\0' || !pki_san_valid(a))
		return 0;
	while ((p = strstr(p, a)) != NULL) {
		if ((p == out || p[-1] == ',') && (p[len] == ',' ||
		    p[len] == '\0'))
			return 0;
		p += len;
	}
	if (*n >= PKI_SAN_MAX || util_fmt(out + used, outsz - used, "%s%s",
	    used ? "," : "", a) < 0)
		return -1;
	(*n)++;
	return 0;
}

/* Every string of JSON text s (a list) through hostid_san_add. */
static int
hostid_san_list(char *out, size_t outsz, int *n, const char *s)
{
	json_t *l = s ? json_loads(s, 0, NULL) : NULL, *v;
	size_t i;
	int rc = 0;

	json_array_foreach(l, i, v)
		if (json_is_string(v) && hostid_san_add(out, outsz, n,
		    json_string_value(v)) < 0)
			rc = -1;
	json_decref(l);
	return rc;
}

int
hostid_sans(const struct hostid *id, const char *name, const char *remote,
    const char *want, char *out, size_t outsz, json_t **pending)
{
	char one[256], probe[PKI_SAN_MAX * 260];
	const char *p = want;
	size_t k;
	int n = 0, m;

	*pending = json_array();
	out[0] = '\0';
	if (hostid_san_add(out, outsz, &n, name) < 0 ||
	    hostid_san_add(out, outsz, &n, remote) < 0 ||
	    hostid_san_list(out, outsz, &n, id->token ? JS(id->token,
	    "addresses") : NULL) < 0 ||
	    hostid_san_list(out, outsz, &n, id->row ? JS(id->row, "approved") :
	    NULL) < 0)
		return -1;
	while (p != NULL && *p != '\0') {
		k = strcspn(p, ",");
		if (k > 0 && k < sizeof(one)) {
			memcpy(one, p, k);
			one[k] = '\0';
			/* Pending: valid, and not yet among those granted. */
			snprintf(probe, sizeof(probe), "%s", out);
			m = 0;
			if (pki_san_valid(one) && hostid_san_add(probe,
			    sizeof(probe), &m, one) == 0 &&
			    strcmp(probe, out) != 0)
				json_array_append_new(*pending, json_string(one));
		}
		p += k + (p[k] == ',');
	}
	return 0;
}
