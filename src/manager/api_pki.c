/* api_pki.c - the cluster CA on the manager (created when the API runs
 * over TLS), the manager's client certificate for calls to agents, and
 * POST /api/v1/agent/certificate: a host's certificate at join. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/pki.h"
#include "common/tls.h"
#include "manager/manager_int.h"

#define PKI_HOST_DAYS	825
#define PKI_HOST_OU	"hosts"		/* OU of hosts' certificates */
#define PKI_MGR_OU	"managers"	/* ... and of the manager's */
#define PKI_CSR_MAX	16384

static char pki_dir[PATH_MAX], pki_ca[PATH_MAX], pki_key[PATH_MAX],
    pki_cert[PATH_MAX];
static int pki_ready;

int
pki_mgr_init(struct httpd_config *hc)
{
	char err[256], ou[32], *csr = NULL, *cert = NULL;
	int rc = -1;

	if (util_fmt(pki_dir, sizeof(pki_dir), "%s/pki", mgr_cfg.data) < 0 ||
	    util_fmt(pki_ca, sizeof(pki_ca), "%s/ca.pem", pki_dir) < 0 ||
	    util_fmt(pki_key, sizeof(pki_key), "%s/manager.key", pki_dir) < 0 ||
	    util_fmt(pki_cert, sizeof(pki_cert), "%s/manager.pem", pki_dir) < 0)
		return -1;
	if (pki_ca_ensure(pki_dir, err, sizeof(err)) < 0 ||
	    pki_key_ensure(pki_key, err, sizeof(err)) < 0)
		goto fail;
	/* Re-issued when it predates OUs: agents want OU=managers. */
	if (!pki_cert_valid(pki_cert, pki_ca) || pki_cert_ou(pki_cert, ou,
	    sizeof(ou)) < 0 || strcmp(ou, PKI_MGR_OU) != 0) {
		if ((csr = pki_csr(pki_key, HOSTID_RESERVED, err,
		    sizeof(err))) == NULL || (cert = pki_sign(pki_dir, csr,
		    HOSTID_RESERVED, PKI_MGR_OU, NULL, PKI_HOST_DAYS, err,
		    sizeof(err))) == NULL)
			goto fail;
		if (util_write_file_atomic(pki_cert, cert, strlen(cert),
		    0644) < 0) {
			snprintf(err, sizeof(err), "cannot write "
			    "manager.pem: %s", strerror(errno));
			goto fail;
		}
	}
	/* Agents present certificates from this CA; we present ours. */
	hc->tls_client_ca = pki_ca;
	httpc_set_cafile(pki_ca);
	httpc_set_client_cert(pki_cert, pki_key);
	pki_ready = 1;
	log_info("cluster CA in %s: agents get certificates at join",
	    pki_dir);
	rc = 0;
	goto cleanup;
fail:
	log_error("cluster certificates: %s", err);
cleanup:
	free(csr);
	free(cert);
	return rc;
}

int
pki_mgr_ready(void)
{
	return pki_ready;
}

int
pki_mgr_tunnel(const char *name, const char *addr, int port,
    int *local_port, char *err, size_t errsz)
{
	struct tls_tunnel_config tc = { .host = addr, .port = port,
	    .ca_file = pki_ca, .cert = pki_cert, .key = pki_key,
	    .expect_name = name };

	if (!pki_ready) {
		snprintf(err, errsz, "this cluster has no certificates");
		return -1;
	}
	return tls_tunnel_open(&tc, local_port, err, errsz);
}

/* A host's certificate: CN its name, OU hosts, and the names the
 * manager grants (hostid_sans: its name, where the request came from, the
 * join token's and the admin-approved addresses), never those the
 * request asks for; those it asked for besides are reported pending. A
 * new host gets one with an admin or join token (the token is then bound
 * to the name until the registration uses it), a known host renews with
 * its key and certificate. */
static int
api_agent_certificate(struct httpd_req *r)
{
	static const char *const fields[] = { "name", "csr", "address", NULL };
	const char *name, *csr, *addr;
	char err[256], sans[PKI_SAN_MAX * 260], *cert = NULL, *ca = NULL;
	char *pend = NULL;
	json_t *pending = NULL;
	struct hostid id;
	size_t len;
	int st;

	memset(&id, 0, sizeof(id));
	if (!pki_ready)
		return httpd_reply_error(r, 409, "this cluster has no "
		    "certificates (the manager runs without --tls-cert)");
	if (r->body == NULL)
		return httpd_reply_error(r, 400, "body required: "
		    "{\"name\", \"csr\", \"address\"}");
	if (api_check_fields(r, fields) < 0 ||
	    api_str_field(r, "name", UTIL_NAME_MAX, &name) < 0 ||
	    api_str_field(r, "csr", PKI_CSR_MAX, &csr) < 0 ||
	    api_str_field(r, "address", 255, &addr) < 0)
		return 0;
	if (name == NULL || !util_name_valid(name) || csr == NULL)
		return httpd_reply_error(r, 400, "name and csr required");
	if ((st = hostid_admit(r, name, 1, &id, err, sizeof(err))) != 0) {
		log_warnx("certificate for host %s refused to %s: %s", name,
		    r->principal, err);
		httpd_reply_error(r, st, "%s", err);
		goto cleanup;
	}
	if (hostid_sans(&id, name, r->remote, addr, sans, sizeof(sans),
	    &pending) < 0) {
		httpd_reply_error(r, 400, "too many addresses for host %s", name);
		goto cleanup;
	}
	if (hostid_bind(&id, name) < 0) {
		httpd_reply_error(r, 401, "join token already used or expired");
		goto cleanup;
	}
	if ((cert = pki_sign(pki_dir, csr, name, PKI_HOST_OU, sans,
	    PKI_HOST_DAYS, err, sizeof(err))) == NULL) {
		httpd_reply_error(r, 400, "%s", err);
		goto cleanup;
	}
	if ((ca = util_read_file(pki_ca, PKI_PEM_MAX, &len)) == NULL) {
		httpd_reply_error(r, 500, "cannot read the cluster CA");
		goto cleanup;
	}
	pend = json_dumps(pending, JSON_COMPACT);
	if (id.row != NULL)
		db_exec("UPDATE hosts SET pending = ? WHERE name = ?", "ss",
		    json_array_size(pending) ? pend : NULL, name);
	event_add("info", "host.certificate", name, "host %s got a "
	    "certificate from the cluster CA for %s (by %s)", name, sans,
	    r->principal);
	if (json_array_size(pending))
		event_add("warning", "host.address_pending", name, "host %s "
		    "asked for addresses %s in its certificate: not approved "
		    "(cvirt host approve-address)", name, pend);
	httpd_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:O}", "cert",
	    cert, "ca", ca, "names", sans, "pending_addresses", pending));
cleanup:
	hostid_free(&id);
	json_decref(pending);
	free(pend);
	free(cert);
	free(ca);
	return 0;
}

const struct httpd_route api_pki_routes[] = {
	{ "POST", "/api/v1/agent/certificate", api_agent_certificate, 0,
	    ROLE_JOIN },
};
const size_t api_pki_nroutes = sizeof(api_pki_routes) /
    sizeof(api_pki_routes[0]);
