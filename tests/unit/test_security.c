/* test_security.c - unit tests for hostile-input checks (body decoding,
 * JSON depth, route matching, QMP messages, vm.json) and the cluster PKI
 * (CA, signing requests, certificates with the right name and SAN). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/httpd.h"
#include "common/pki.h"
#include "common/util.h"
#include "qemu/qmp.h"
#include "storage/store.h"

#define UUID "0b6f5b2e-4d3c-4d0e-8a55-3c1f0e9d2a71"

static void
test_json_depth(void **state)
{
	char buf[200];

	assert_int_equal(httpd_json_depth_ok("{}", 2, 1), 1);
	assert_int_equal(httpd_json_depth_ok("[[]]", 4, 1), 0);
	/* Brackets inside strings (escaped quotes too) do not count. */
	snprintf(buf, sizeof(buf), "{\"a\":\"[[[\\\"[[[\"}");
	assert_int_equal(httpd_json_depth_ok(buf, strlen(buf), 1), 1);
	memset(buf, '[', 40);
	assert_int_equal(httpd_json_depth_ok(buf, 40, HTTPD_JSON_DEPTH), 0);
	assert_int_equal(httpd_json_depth_ok(buf, HTTPD_JSON_DEPTH,
	    HTTPD_JSON_DEPTH), 1);
}

static void
test_json_decode(void **state)
{
	static const char *bad[] = { "", "[]", "1", "\"s\"", "null", "{",
	    "{\"a\":1,\"a\":2}", "{\"a\":}", "\xff", NULL };
	char err[256], deep[4000];
	json_t *j;
	int i;

	j = httpd_json_decode("{\"name\":\"web\",\"cpus\":2}", 23, err,
	    sizeof(err));
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "cpus")), 2);
	json_decref(j);
	for (i = 0; bad[i]; i++) {
		err[0] = '\0';
		if ((j = httpd_json_decode(bad[i], strlen(bad[i]), err,
		    sizeof(err))) != NULL)
			fail_msg("accepted %s", bad[i]);
		assert_true(err[0] != '\0');
	}
	/* Deep nesting is refused before jansson recurses into it. */
	memset(deep, '[', sizeof(deep) / 2);
	memset(deep + sizeof(deep) / 2, ']', sizeof(deep) / 2);
	assert_null(httpd_json_decode(deep, sizeof(deep), err, sizeof(err)));
	assert_non_null(strstr(err, "nested"));
}

static void
test_route_match(void **state)
{
	struct httpd_req r;
	int i;

	memset(&r, 0, sizeof(r));
	assert_int_equal(httpd_route_match("/api/v1/vms/{}/start",
	    "/api/v1/vms/web/start", &r), 1);
	assert_int_equal(r.nparams, 1);
	assert_string_equal(r.params[0], "web");
	free(r.params[0]);
	static const char *nomatch[] = { "/api/v1/vms//start",
	    "/api/v1/vms/a/b/start", "/api/v1/vms/web", "/api/v1/vms/web/stop",
	    "/api/v1/vms/web/start/x", NULL };
	for (i = 0; nomatch[i]; i++) {
		memset(&r, 0, sizeof(r));
		if (httpd_route_match("/api/v1/vms/{}/start", nomatch[i], &r))
			fail_msg("matched %s", nomatch[i]);
		assert_int_equal(r.nparams, 0);
	}
}

static void
test_qmp_parse(void **state)
{
	static const char *bad[] = { "", "[]", "{}", "{\"return\":1,"
	    "\"error\":{}}", "{\"error\":{\"desc\":1}}", "{\"event\":5}",
	    "{\"event\":\"X\",\"data\":[]}", "{\"return\":1,\"return\":2}",
	    NULL };
	char why[256];
	json_t *m;
	int ev = -1, i;

	assert_int_equal(qmp_parse_line("{\"return\": {}}", 14, &m, &ev, why,
	    sizeof(why)), 0);
	assert_int_equal(ev, 0);
	json_decref(m);
	assert_int_equal(qmp_parse_line("{\"event\":\"STOP\"}", 16, &m, &ev, why,
	    sizeof(why)), 0);
	assert_int_equal(ev, 1);
	json_decref(m);
	for (i = 0; bad[i]; i++) {
		if (qmp_parse_line(bad[i], strlen(bad[i]), &m, &ev, why,
		    sizeof(why)) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_null(m);
	}
}

static void
test_store_meta(void **state)
{
	static const char *bad[] = {
		"[]", "{\"uuid\":\"x\",\"name\":\"a\"}",
		"{\"uuid\":\"" UUID "\",\"name\":\"../a\"}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"meta_version\":99}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"cpus\":\"2\"}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"disks\":[{\"file\":"
		    "\"../../etc/shadow\"}]}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"disks\":[{\"file\":"
		    "\"..\"}]}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"disks\":{}}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"kernel\":\"rel\"}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"initrd\":\"/a/../b\"}",
		"{\"uuid\":\"" UUID "\",\"name\":\"a\",\"kernel\":\"/a/..\"}",
		NULL };
	const char *good = "{\"uuid\":\"" UUID "\",\"name\":\"web\",\"cpus\":2,"
	    "\"meta_version\":1,\"disks\":[{\"file\":\"disk0.qcow2\","
	    "\"size_mib\":64}],\"kernel\":\"/boot/vmlinuz\",\"initrd\":null}";
	char err[256], *big;
	json_t *m;
	int i;

	m = store_meta_parse(good, strlen(good), err, sizeof(err));
	assert_non_null(m);
	json_decref(m);
	for (i = 0; bad[i]; i++) {
		if ((m = store_meta_parse(bad[i], strlen(bad[i]), err,
		    sizeof(err))) != NULL)
			fail_msg("accepted %s", bad[i]);
	}
	big = calloc(1, STORE_META_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', STORE_META_MAX + 1);
	assert_null(store_meta_parse(big, STORE_META_MAX + 1, err, sizeof(err)));
	assert_non_null(strstr(err, "too large"));
	free(big);
}

static X509 *
t_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	return c;
}

static void
test_pki(void **state)
{
	char dir[] = "/tmp/cvirt-pki-XXXXXX", key[128], cert[128], ca[128];
	char err[256], cn[64], *csr, *pem, *san;
	X509 *c;
	GENERAL_NAMES *names;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(pki_ca_ensure(dir, err, sizeof(err)), 0);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(key, sizeof(key), "%s/ca.key", dir);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	snprintf(key, sizeof(key), "%s/h.key", dir);
	snprintf(cert, sizeof(cert), "%s/h.pem", dir);
	assert_int_equal(pki_key_ensure(key, err, sizeof(err)), 0);
	/* The request says "evil"; the certificate names the host we chose. */
	csr = pki_csr(key, "evil", err, sizeof(err));
	assert_non_null(csr);
	pem = pki_sign(dir, csr, "h1", NULL, "127.0.0.1,node1.example", 1, err,
	    sizeof(err));
	assert_non_null(pem);
	c = t_cert(pem);
	assert_non_null(c);
	X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn,
	    sizeof(cn));
	assert_string_equal(cn, "h1");
	assert_int_equal(X509_check_ip_asc(c, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_host(c, "node1.example", 0, 0, &san), 1);
	OPENSSL_free(san);
	assert_int_equal(X509_check_ip_asc(c, "10.0.0.1", 0), 0);
	names = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(names), 2);
	GENERAL_NAMES_free(names);
	assert_int_equal(X509_check_purpose(c, X509_PURPOSE_SSL_CLIENT, 0), 1);
	assert_int_equal(X509_check_purpose(c, X509_PURPOSE_SSL_SERVER, 0), 1);
	X509_free(c);
	assert_int_equal(util_write_file_atomic(cert, pem, strlen(pem), 0644), 0);
	assert_int_equal(pki_cert_valid(cert, ca), 1);
	/* Bad requests and addresses are refused. */
	assert_null(pki_sign(dir, "garbage", "h1", NULL, NULL, 1, err,
	    sizeof(err)));
	assert_null(pki_sign(dir, csr, "h1", NULL, "a b", 1, err,
	    sizeof(err)));
	assert_null(pki_sign(dir, csr, "h1", NULL, "1.2.3.4,,x", 1, err,
	    sizeof(err)));
	free(pem);
	free(csr);
	/* Another CA's certificate does not pass for ours. */
	snprintf(ca, sizeof(ca), "%s/other", dir);
	assert_int_equal(pki_ca_ensure(ca, err, sizeof(err)), 0);
	snprintf(ca, sizeof(ca), "%s/other/ca.pem", dir);
	assert_int_equal(pki_cert_valid(cert, ca), 0);
	assert_int_equal(util_rm_rf(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_depth),
		cmocka_unit_test(test_json_decode),
		cmocka_unit_test(test_route_match),
		cmocka_unit_test(test_qmp_parse),
		cmocka_unit_test(test_store_meta),
		cmocka_unit_test(test_pki),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
