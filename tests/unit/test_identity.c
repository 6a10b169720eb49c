/* test_identity.c - host identity (issue 15): a client that expects host
 * h1 refuses any other host's certificate of the same CA
 * (src/common/tls_tunnel.c tls_client_identity); join tokens are used
 * once and expire, existing names never register with a token, and
 * certificates name only what the manager grants (src/manager/hostid.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/pki.h"
#include "common/tls.h"
#include "common/util.h"
#include "manager/manager_int.h"
#include "unit_db.h"

static char dir[] = "/tmp/cvirt-identity-XXXXXX";

/* dir/NAME.key and dir/NAME.pem: a certificate of the test CA for cn,
 * with OU ou (or none) and SANs san. */
static void
t_cert(const char *name, const char *cn, const char *ou, const char *san)
{
	char key[256], pem[256], err[256], *csr, *cert;

	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	snprintf(pem, sizeof(pem), "%s/%s.pem", dir, name);
	assert_int_equal(pki_key_ensure(key, err, sizeof(err)), 0);
	csr = pki_csr(key, cn, err, sizeof(err));
	assert_non_null(csr);
	cert = pki_sign(dir, csr, cn, ou, san, 1, err, sizeof(err));
	assert_non_null(cert);
	assert_int_equal(util_write_file_atomic(pem, cert, strlen(cert), 0644),
	    0);
	free(csr);
	free(cert);
}

struct t_server {
	int	 fd;
	char	 name[32];
	int	 got;		/* bytes the client sent after the handshake */
};

/* One TLS server connection on fd presenting dir/NAME.pem; counts what
 * the client sends until it closes. */
static void *
t_serve(void *arg)
{
	struct t_server *s = arg;
	char path[256], key[256], buf[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl;
	int n;

	snprintf(path, sizeof(path), "%s/%s.pem", dir, s->name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, s->name);
	SSL_CTX_use_certificate_chain_file(ctx, path);
	SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, s->fd);
	if (SSL_accept(ssl) == 1)
		while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
			s->got += n;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(s->fd);
	ERR_clear_error();
	return NULL;
}

/* Connects a client expecting host expect (OU ou unless NULL) to a
 * server presenting certificate name; 0 when the client accepted it (it
 * then sends "GET"), -1 with err. *got: what the server received. */
static int
t_connect(const char *name, const char *expect, const char *ou, char *err,
    size_t errsz, int *got)
{
	char ca[256];
	struct tls_tunnel_config tc = { .host = "127.0.0.1", .port = 0,
	    .expect_name = expect, .expect_ou = ou };
	struct t_server s;
	pthread_t th;
	SSL *ssl;
	int sv[2], rc = -1;

	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	tc.ca_file = ca;
	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", name);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, t_serve, &s), 0);
	err[0] = '\0';
	if ((ssl = tls_client_open(sv[0], &tc, err, errsz)) != NULL) {
		assert_int_equal(SSL_write(ssl, "GET", 3), 3);
		SSL_shutdown(ssl);
		tls_client_close(ssl);
		rc = 0;
	}
	close(sv[0]);
	pthread_join(th, NULL);
	*got = s.got;
	return rc;
}

/* Guards tls_client_identity: without the CN check the forged "h2 with
 * DNS:h1" passes for h1; without X509_check_host the "h1 with DNS:h2"
 * does; without either, h2's own certificate (127.0.0.1, like h1's). */
static void
test_server_must_be_the_host(void **state)
{
	char err[256];
	int got;

	(void)state;
	t_cert("h1", "h1", "hosts", "h1,127.0.0.1");
	t_cert("h2", "h2", "hosts", "h2,127.0.0.1");
	t_cert("forged", "h2", "hosts", "h1,127.0.0.1");
	t_cert("odd", "h1", "hosts", "h2,127.0.0.1");
	t_cert("noou", "h1", NULL, "h1,127.0.0.1");
	assert_int_equal(t_connect("h1", "h1", "hosts", err, sizeof(err),
	    &got), 0);
	assert_int_equal(got, 3);
	assert_int_equal(t_connect("h2", "h2", NULL, err, sizeof(err), &got),
	    0);
	assert_int_equal(t_connect("h2", "h1", NULL, err, sizeof(err), &got),
	    -1);
	assert_string_equal(err, "host h1 presented a certificate for h2");
	assert_int_equal(got, 0);	/* not a byte of the request */
	assert_int_equal(t_connect("forged", "h1", NULL, err, sizeof(err),
	    &got), -1);
	assert_string_equal(err, "host h1 presented a certificate for h2");
	assert_int_equal(t_connect("odd", "h1", NULL, err, sizeof(err), &got),
	    -1);
	assert_int_equal(got, 0);
	assert_int_equal(t_connect("noou", "h1", "hosts", err, sizeof(err),
	    &got), -1);
	assert_non_null(strstr(err, "OU"));
	/* Without a name to expect, as for the manager's API: address only. */
	assert_int_equal(t_connect("h2", NULL, NULL, err, sizeof(err), &got),
	    0);
}

static void
t_req(struct httpd_req *r, const char *principal, const char *token)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->principal, sizeof(r->principal), "%s", principal);
	r->token = token;
	snprintf(r->remote, sizeof(r->remote), "127.0.0.1");
}

static void
t_token(const char *tok, const char *id, int64_t expires)
{
	char hash[UTIL_HASH_LEN + 1];

	util_hash_hex(tok, hash);
	assert_int_equal(db_exec("INSERT INTO join_tokens (hash, id, created, "
	    "expires, creator) VALUES (?, ?, ?, ?, 'admin')", "ssii", hash, id,
	    util_wall_ms(), expires), 1);
}

/* Guards hostid_auth_join (used and expired tokens refused, saying so)
 * and hostid_consume (one registration uses a token up). */
static void
test_join_token_once(void **state)
{
	static const char tok[] = "aaaa000000000000000000000000000000000000"
	    "000000000000000000000000";
	static const char old[] = "bbbb000000000000000000000000000000000000"
	    "000000000000000000000000";
	char hash[UTIL_HASH_LEN + 1], err[256];
	struct httpd_req r;
	struct hostid id;

	(void)state;
	t_token(tok, "1111111111111111", util_wall_ms() + 3600000);
	t_token(old, "2222222222222222", util_wall_ms() - 1);
	util_hash_hex(tok, hash);
	t_req(&r, "anonymous", tok);
	assert_int_equal(hostid_auth_join(&r, hash), 0);
	assert_string_equal(r.principal, "join:1111111111111111");
	assert_int_equal(hostid_admit(&r, "j1", 0, &id, err, sizeof(err)), 0);
	assert_int_equal(id.how, HOSTID_NEW);
	assert_int_equal(db_exec("INSERT INTO hosts (name, url, state, "
	    "agent_key, key_source) VALUES ('j1', 'http://x:1', 'up', "
	    "'k1', 'agent')", NULL), 1);
	assert_int_equal(hostid_consume(&id, "j1"), 0);
	/* A second registration racing the first loses. */
	assert_int_equal(hostid_consume(&id, "j2"), -1);
	hostid_free(&id);
	t_req(&r, "anonymous", tok);
	assert_int_equal(hostid_auth_join(&r, hash), 401);
	assert_non_null(strstr(r.auth_err, "join token already used (it "
	    "admitted host j1)"));
	util_hash_hex(old, hash);
	t_req(&r, "anonymous", old);
	assert_int_equal(hostid_auth_join(&r, hash), 401);
	assert_non_null(strstr(r.auth_err, "join token expired at "));
	assert_int_equal(db_exec("DELETE FROM hosts", NULL), 1);
}

/* Guards hostid_admit: an existing name never registers with a token
 * (legacy rows re-key once with the admin's), a reset one does. */
static void
test_admit(void **state)
{
	static const char tok[] = "cccc000000000000000000000000000000000000"
	    "000000000000000000000000";
	char hash[UTIL_HASH_LEN + 1], err[256];
	struct httpd_req r;
	struct hostid id;

	(void)state;
	assert_int_equal(db_exec("INSERT INTO hosts (name, url, state, "
	    "agent_key, key_source) VALUES ('a1', 'http://x:1', 'up', 'ka1', "
	    "'agent')", NULL), 1);
	assert_int_equal(db_exec("INSERT INTO hosts (name, url, state, "
	    "agent_key) VALUES ('old', 'http://x:2', 'up', 'kold')", NULL), 1);
	assert_int_equal(db_exec("INSERT INTO hosts (name, url, state, "
	    "key_source) VALUES ('gone', 'http://x:3', 'down', 'reset')", NULL),
	    1);
	t_token(tok, "3333333333333333", util_wall_ms() + 3600000);
	util_hash_hex(tok, hash);
	t_req(&r, "admin", "x");
	assert_int_equal(hostid_admit(&r, "a1", 0, &id, err, sizeof(err)),
	    409);
	assert_non_null(strstr(err, "host a1 exists: delete it"));
	hostid_free(&id);
	assert_int_equal(hostid_admit(&r, "old", 0, &id, err, sizeof(err)), 0);
	assert_int_equal(id.how, HOSTID_REKEY);
	hostid_free(&id);
	assert_int_equal(hostid_admit(&r, "cvirt-manager", 0, &id, err,
	    sizeof(err)), 400);
	hostid_free(&id);
	t_req(&r, "anonymous", tok);
	assert_int_equal(hostid_auth_join(&r, hash), 0);
	assert_int_equal(hostid_admit(&r, "a1", 0, &id, err, sizeof(err)),
	    409);
	hostid_free(&id);
	assert_int_equal(hostid_admit(&r, "old", 0, &id, err, sizeof(err)),
	    409);
	hostid_free(&id);
	assert_int_equal(hostid_admit(&r, "gone", 0, &id, err, sizeof(err)), 0);
	assert_int_equal(id.how, HOSTID_NEW);
	hostid_free(&id);
	/* A host registers itself only. */
	t_req(&r, "host:a1", "ka1");
	assert_int_equal(hostid_admit(&r, "a1", 0, &id, err, sizeof(err)), 0);
	assert_int_equal(id.how, HOSTID_SAME);
	hostid_free(&id);
	assert_int_equal(hostid_admit(&r, "old", 0, &id, err, sizeof(err)),
	    403);
	hostid_free(&id);
	db_exec("DELETE FROM hosts", NULL);
}

/* Guards hostid_auth_host and hostid_auth_agent: a host with a
 * certificate is known by key only together with it; its reports carry
 * the very certificate it registered with. */
static void
test_host_with_certificate(void **state)
{
	struct httpd_req r;

	(void)state;
	assert_int_equal(db_exec("INSERT INTO hosts (name, url, state, "
	    "agent_key, key_source, cert_fp) VALUES ('c1', 'https://x:1', "
	    "'up', 'kc1', 'agent', 'fp1')", NULL), 1);
	t_req(&r, "anonymous", "kc1");
	assert_int_equal(hostid_auth_host(&r), 401);
	assert_non_null(strstr(r.auth_err, "present it"));
	t_req(&r, "anonymous", "kc1");
	snprintf(r.peer_cn, sizeof(r.peer_cn), "c2");
	assert_int_equal(hostid_auth_host(&r), 401);
	t_req(&r, "anonymous", "kc1");
	snprintf(r.peer_cn, sizeof(r.peer_cn), "c1");
	snprintf(r.peer_fp, sizeof(r.peer_fp), "fp2");	/* renewed */
	assert_int_equal(hostid_auth_host(&r), 0);
	assert_string_equal(r.principal, "host:c1");
	t_req(&r, "anonymous", "kc1");
	snprintf(r.peer_cn, sizeof(r.peer_cn), "c1");
	snprintf(r.peer_fp, sizeof(r.peer_fp), "fp2");
	assert_int_equal(hostid_auth_agent(&r), 401);
	t_req(&r, "anonymous", "kc1");
	snprintf(r.peer_cn, sizeof(r.peer_cn), "c1");
	snprintf(r.peer_fp, sizeof(r.peer_fp), "fp1");
	assert_int_equal(hostid_auth_agent(&r), 0);
	/* Its certificate without its key (a lost key file): re-key. */
	t_req(&r, "anonymous", "unknown");
	snprintf(r.peer_cn, sizeof(r.peer_cn), "c1");
	snprintf(r.peer_fp, sizeof(r.peer_fp), "fp1");
	assert_int_equal(hostid_auth_host(&r), 0);
	assert_string_equal(r.principal, "cert:c1");
	/* ... but not with another certificate of its name. */
	t_req(&r, "anonymous", "unknown");
	snprintf(r.peer_cn, sizeof(r.peer_cn), "c1");
	snprintf(r.peer_fp, sizeof(r.peer_fp), "fp9");
	assert_int_equal(hostid_auth_host(&r), 1);
	db_exec("DELETE FROM hosts", NULL);
}

/* Guards hostid_sans: the certificate names the host, the address the
 * request came from, the token's and the approved addresses; what the
 * request asks for besides is pending. */
static void
test_sans(void **state)
{
	char out[PKI_SAN_MAX * 260];
	json_t *pending;
	struct hostid id;

	(void)state;
	memset(&id, 0, sizeof(id));
	id.token = json_pack("{s:s}", "addresses", "[\"10.8.8.8\"]");
	assert_int_equal(hostid_sans(&id, "h1", "127.0.0.1",
	    "10.9.9.9,127.0.0.1,evil.example,10.8.8.8", out, sizeof(out),
	    &pending), 0);
	assert_string_equal(out, "h1,127.0.0.1,10.8.8.8");
	assert_int_equal(json_array_size(pending), 2);
	assert_string_equal(json_string_value(json_array_get(pending, 0)),
	    "10.9.9.9");
	assert_string_equal(json_string_value(json_array_get(pending, 1)),
	    "evil.example");
	json_decref(pending);
	json_decref(id.token);
	id.token = NULL;
	id.row = json_pack("{s:s}", "approved", "[\"10.9.9.9\"]");
	assert_int_equal(hostid_sans(&id, "h1", "127.0.0.1", "10.9.9.9", out,
	    sizeof(out), &pending), 0);
	assert_string_equal(out, "h1,127.0.0.1,10.9.9.9");
	assert_int_equal(json_array_size(pending), 0);
	json_decref(pending);
	hostid_free(&id);
}

static int
setup(void **state)
{
	char err[256];

	(void)state;
	signal(SIGPIPE, SIG_IGN);	/* a peer that closed, as in daemons */
	if (mkdtemp(dir) == NULL || pki_ca_ensure(dir, err, sizeof(err)) < 0)
		return -1;
	return unit_db_open("identity");
}

static int
teardown(void **state)
{
	(void)state;
	unit_db_close();
	return util_rm_rf(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_must_be_the_host),
		cmocka_unit_test(test_join_token_once),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_host_with_certificate),
		cmocka_unit_test(test_sans),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
