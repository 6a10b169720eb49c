/* agent_tls.c - this host's place in a cluster with certificates: a key
 * of its own, a certificate from the cluster CA (asked for with the
 * token file's token at the first start, renewed with the host's key and
 * certificate at every start), then mutual TLS both ways. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/pki.h"
#include "common/util.h"

static char tls_key[PATH_MAX], tls_cert[PATH_MAX], tls_ca[PATH_MAX];
static int tls_on;	/* set once at start-up */
static json_t *tls_pending;	/* addresses not granted; set at start-up */

/* The host part of --listen and the migration address: what the
 * certificate must name for the manager and for migrating peers. */
static void
agent_tls_address(char *out, size_t outsz)
{
	const char *colon = strrchr(agent_cfg.listen, ':');
	int n = colon ? (int)(colon - agent_cfg.listen) : 0;
	size_t used;

	if (n > 1 && agent_cfg.listen[0] == '[')
		snprintf(out, outsz, "%.*s", n - 2, agent_cfg.listen + 1);
	else
		snprintf(out, outsz, "%.*s", n, agent_cfg.listen);
	used = strlen(out);
	if (agent_cfg.migration_addr[0] &&
	    strcmp(agent_cfg.migration_addr, out) != 0 &&
	    util_fmt(out + used, outsz - used, ",%s",
	    agent_cfg.migration_addr) < 0)
		out[used] = '\0';	/* too long: the listen address only */
}

/* Saves what the manager answered; 0 or -1. */
static int
agent_tls_save(json_t *reply)
{
	const char *cert = json_string_value(json_object_get(reply, "cert"));
	const char *ca = json_string_value(json_object_get(reply, "ca"));

	if (cert == NULL || ca == NULL || strlen(cert) > PKI_PEM_MAX ||
	    strlen(ca) > PKI_PEM_MAX) {
		log_error("the manager sent no certificate");
		return -1;
	}
	if (util_write_file_atomic(tls_ca, ca, strlen(ca), 0644) < 0 ||
	    util_write_file_atomic(tls_cert, cert, strlen(cert), 0644) < 0) {
		log_error("cannot save the certificate: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The numeric address of --listen, to connect to the manager from: the
 * manager names in the certificate the address the request came from.
 * "" for a wildcard or a name. */
static void
agent_tls_source(char *out, size_t outsz)
{
	unsigned char buf[16];
	char one[256], *comma;

	agent_tls_address(one, sizeof(one));
	if ((comma = strchr(one, ',')) != NULL)
		*comma = '\0';
	if ((inet_pton(AF_INET, one, buf) != 1 && inet_pton(AF_INET6, one,
	    buf) != 1) || strcmp(one, "0.0.0.0") == 0 || strcmp(one, "::") == 0)
		one[0] = '\0';
	snprintf(out, outsz, "%s", one);
}

/* One certificate request with credential cred, from our listen address
 * (or, when that cannot reach the manager, from any); 0 with an answer
 * in resp, -1 when no manager answered. */
static int
agent_tls_ask(const char *url, const char *cred, json_t *body,
    long timeout_ms, struct httpc_resp *resp)
{
	struct httpc_opts o = { .source = NULL };
	char src[128];

	agent_tls_source(src, sizeof(src));
	if (src[0] != '\0') {
		o.source = src;
		if (httpc_request_opts("POST", url, cred, body, timeout_ms, &o,
		    resp) == 0)
			return 0;
		log_warnx("cannot reach the manager from %s: %s", src,
		    resp->err);
		httpc_resp_free(resp);
	}
	return httpc_request("POST", url, cred, body, timeout_ms, resp);
}

/* Takes the manager's answer: the certificate saved, the addresses it
 * did not grant said. 0 or -1. */
static int
agent_tls_take(json_t *reply)
{
	json_t *pend = json_object_get(reply, "pending_addresses"), *v;
	size_t i;

	if (json_is_array(pend)) {
		json_decref(tls_pending);
		tls_pending = json_incref(pend);
	}
	json_array_foreach(pend, i, v)
		log_warnx("the manager did not put %s in this host's "
		    "certificate: an admin may (cvirt host approve-address %s "
		    "%s), then restart this agent", json_string_value(v) ?
		    json_string_value(v) : "?", agent_cfg.name,
		    json_string_value(v) ? json_string_value(v) : "?");
	return agent_tls_save(reply);
}

/* 0 got one; 1 the cluster has no certificates; -1 refused. With the
 * host's key first (a known host whose certificate is gone), then the
 * token. once: a renewal, one attempt that may fail (-1) without harm;
 * else retries while no manager answers (SIGTERM still ends the agent
 * here). */
static int
agent_tls_join(const char *csr, int once)
{
	struct httpc_resp resp;
	char url[640], first[512], addr[256];
	const char *cred;
	json_t *body;
	int rc = -1, i;

	snprintf(first, sizeof(first), "%.*s", (int)strcspn(agent_cfg.manager,
	    ","), agent_cfg.manager);
	snprintf(url, sizeof(url), "%s/api/v1/agent/certificate", first);
	agent_tls_address(addr, sizeof(addr));
	body = json_pack("{s:s, s:s, s:s}", "name", agent_cfg.name, "csr", csr,
	    "address", addr);
	for (i = 0; (cred = report_cred(i)) != NULL; i++) {
		while (agent_tls_ask(url, cred, body, once ? 3000 : 10000,
		    &resp) < 0) {
			log_warnx("cannot reach the manager at %s: %s", first,
			    resp.err);
			httpc_resp_free(&resp);
			if (once)
				goto cleanup;
			util_sleep_ms(1000);
		}
		if (resp.status == 200) {
			rc = agent_tls_take(resp.json);
			httpc_resp_free(&resp);
			goto cleanup;
		}
		if (resp.status == 409 && strstr(resp.err, "no certificates")) {
			rc = 1;
			httpc_resp_free(&resp);
			goto cleanup;
		}
		if (once || report_cred(i + 1) != NULL)
			log_info("no certificate for this host with its key: %s",
			    resp.err);
		else
			log_error("the manager refused this host a certificate: "
			    "%s", resp.err);
		httpc_resp_free(&resp);
		if (once)
			break;		/* a renewal is with the key alone */
	}
cleanup:
	json_decref(body);
	return rc;
}

/* A new certificate for our key at every start: approved addresses
 * arrive, the expiry moves on. The old one stays when this fails. */
static void
agent_tls_renew(void)
{
	char err[256], *csr;

	httpc_set_client_cert(tls_cert, tls_key);
	if ((csr = pki_csr(tls_key, agent_cfg.name, err, sizeof(err))) ==
	    NULL) {
		log_warnx("certificate renewal: %s", err);
		return;
	}
	if (agent_tls_join(csr, 1) == 0)
		log_info("host %s renewed its certificate", agent_cfg.name);
	else if (pki_cert_expires_within(tls_cert, 30))
		log_warnx("this host's certificate ends within 30 days and "
		    "was not renewed");
	free(csr);
}

int
agent_tls_on(void)
{
	return tls_on;
}

json_t *
agent_tls_pending(void)
{
	return json_incref(tls_pending);
}

int
agent_tls_setup(struct httpd_config *hc)
{
	char dir[PATH_MAX], err[256];
	char *csr = NULL;
	int rc = -1;

	memset(hc, 0, sizeof(*hc));
	if (util_fmt(dir, sizeof(dir), "%s/pki", agent_cfg.data) < 0 ||
	    util_fmt(tls_key, sizeof(tls_key), "%s/agent.key", dir) < 0 ||
	    util_fmt(tls_cert, sizeof(tls_cert), "%s/agent.pem", dir) < 0 ||
	    util_fmt(tls_ca, sizeof(tls_ca), "%s/ca.pem", dir) < 0 ||
	    util_mkdir_p(dir, 0700) < 0) {
		log_error("cannot prepare %s/pki: %s", agent_cfg.data,
		    strerror(errno));
		return -1;
	}
	/* A host with a certificate talks to its manager over TLS only: a
	 * plain URL would send its key in clear and drop mutual TLS. */
	if (strncmp(agent_cfg.manager, "https://", 8) != 0) {
		if (access(tls_cert, F_OK) == 0) {
			log_error("this host has a cluster certificate (%s): its "
			    "manager URL must be https://", tls_cert);
			return -1;
		}
		return 0;
	}
	if (pki_cert_valid(tls_cert, tls_ca)) {
		agent_tls_renew();
	} else {
		if (pki_key_ensure(tls_key, err, sizeof(err)) < 0 ||
		    (csr = pki_csr(tls_key, agent_cfg.name, err,
		    sizeof(err))) == NULL) {
			log_error("%s", err);
			goto cleanup;
		}
		if ((rc = agent_tls_join(csr, 0)) != 0) {
			if (rc == 1) {
				log_info("the cluster has no certificates: "
				    "plain HTTP to this host");
				rc = 0;
			}
			goto cleanup;
		}
		log_info("host %s joined the cluster's CA", agent_cfg.name);
	}
	tls_on = 1;
	hc->tls_cert = tls_cert;
	hc->tls_key = tls_key;
	hc->tls_client_ca = tls_ca;
	hc->tls_require_client = 1;
	httpc_set_client_cert(tls_cert, tls_key);
	if (util_fmt(agent_cfg.url, sizeof(agent_cfg.url), "https://%s",
	    agent_cfg.listen) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	free(csr);
	return rc;
}
