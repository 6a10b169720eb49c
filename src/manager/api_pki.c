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
#define PKI_CSR_MAX	16384

static char pki_dir[PATH_MAX], pki_ca[PATH_MAX], pki_key[PATH_MAX],
    pki_cert[PATH_MAX];
static int pki_ready;

int
pki_mgr_init(struct httpd_config *hc)
{
	char err[256], *csr = NULL, *cert = NULL;
	int rc = -1;

	if (util_fmt(pki_dir, sizeof(pki_dir), "%s/pki", mgr_cfg.data) < 0 ||
	    util_fmt(pki_ca, sizeof(pki_ca), "%s/ca.pem", pki_dir) < 0 ||
	    util_fmt(pki_key, sizeof(pki_key), "%s/manager.key", pki_dir) < 0 ||
	    util_fmt(pki_cert, sizeof(pki_cert), "%s/manager.pem", pki_dir) < 0)
		return -1;
	if (pki_ca_ensure(pki_dir, err, sizeof(err)) < 0 ||
	    pki_key_ensure(pki_key, err, sizeof(err)) < 0)
		goto fail;
	if (!pki_cert_valid(pki_cert, pki_ca)) {
		if ((csr = pki_csr(pki_key, "cvirt-manager", err,
		    sizeof(err))) == NULL || (cert = pki_sign(pki_dir, csr,
		    "cvirt-manager", NULL, PKI_HOST_DAYS, err,
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
pki_mgr_tunnel(const char *host, int port, int *local_port, char *err,
    size_t errsz)
{
	struct tls_tunnel_config tc = { .host = host, .port = port,
	    .ca_file = pki_ca, .cert = pki_cert, .key = pki_key };

	if (!pki_ready) {
		snprintf(err, errsz, "this cluster has no certificates");
		return -1;
	}
	return tls_tunnel_open(&tc, local_port, err, errsz);
}

static int
api_agent_certificate(struct httpd_req *r)
{
	static const char *const fields[] = { "name", "csr", "address", NULL };
	const char *name, *csr, *addr;
	char err[256], *cert = NULL, *ca = NULL;
	size_t len;

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
	if (name == NULL || !util_name_valid(name) || csr == NULL ||
	    addr == NULL)
		return httpd_reply_error(r, 400, "name, csr and address required");
	if (r->role == ROLE_JOIN && users_join_claim(r->token, name) < 0)
		return httpd_reply_error(r, 401, "join token already used by "
		    "another host, expired, or host %s exists", name);
	if ((cert = pki_sign(pki_dir, csr, name, addr, PKI_HOST_DAYS, err,
	    sizeof(err))) == NULL)
		return httpd_reply_error(r, 400, "%s", err);
	if ((ca = util_read_file(pki_ca, PKI_PEM_MAX, &len)) == NULL) {
		free(cert);
		return httpd_reply_error(r, 500, "cannot read the cluster CA");
	}
	event_add("info", "host.certificate", name, "host %s got a "
	    "certificate from the cluster CA (by %s)", name, r->principal);
	httpd_reply_json(r, 200, json_pack("{s:s, s:s}", "cert", cert,
	    "ca", ca));
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
