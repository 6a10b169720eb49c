/* pki.c - cluster CA, host keys, signing requests and certificates with
 * OpenSSL (EC P-256, SHA-256). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/dh.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/pki.h"
#include "common/util.h"

static void
pki_err(char *err, size_t errsz, const char *what)
{
	unsigned long e = ERR_get_error();

	snprintf(err, errsz, "%s: %s", what, e ? ERR_reason_error_string(e) :
	    strerror(errno));
	ERR_clear_error();
}

static EVP_PKEY *
pki_key_load(const char *path)
{
	EVP_PKEY *k = NULL;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static X509 *
pki_cert_load(const char *path)
{
	X509 *c = NULL;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	c = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return c;
}

/* Writes a key or certificate PEM atomically with mode. */
static int
pki_write(const char *path, EVP_PKEY *key, X509 *cert, mode_t mode)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int rc = -1;

	if (b == NULL)
		return -1;
	if ((key && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL,
	    NULL) != 1) || (cert && PEM_write_bio_X509(b, cert) != 1))
		goto cleanup;
	len = BIO_get_mem_data(b, &data);
	rc = util_write_file_atomic(path, data, (size_t)len, mode);
cleanup:
	BIO_free(b);
	return rc;
}

int
pki_key_ensure(const char *path, char *err, size_t errsz)
{
	EVP_PKEY *k;
	int rc;

	if ((k = pki_key_load(path)) != NULL) {
		EVP_PKEY_free(k);
		return 0;
	}
	if ((k = EVP_EC_gen("P-256")) == NULL) {
		pki_err(err, errsz, "key generation");
		return -1;
	}
	if ((rc = pki_write(path, k, NULL, 0600)) < 0)
		snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno));
	EVP_PKEY_free(k);
	return rc;
}

static char *
pki_bio_string(BIO *b)
{
	char *data, *out;
	long len = BIO_get_mem_data(b, &data);

	if (len <= 0 || (out = malloc((size_t)len + 1)) == NULL)
		return NULL;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return out;
}

char *
pki_dh_params(char *err, size_t errsz)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
	EVP_PKEY *params = NULL;
	BIO *b = NULL;
	char *out = NULL;

	if (ctx == NULL || EVP_PKEY_paramgen_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_dh_nid(ctx, NID_ffdhe2048) <= 0 ||
	    EVP_PKEY_paramgen(ctx, &params) <= 0 ||
	    (b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_Parameters(b, params) != 1 ||
	    (out = pki_bio_string(b)) == NULL)
		pki_err(err, errsz, "DH parameters");
	BIO_free(b);
	EVP_PKEY_free(params);
	EVP_PKEY_CTX_free(ctx);
	return out;
}

char *
pki_csr(const char *keypath, const char *cn, char *err, size_t errsz)
{
	EVP_PKEY *k = pki_key_load(keypath);
	X509_REQ *req = NULL;
	X509_NAME *name;
	BIO *b = NULL;
	char *out = NULL;

	if (k == NULL) {
		pki_err(err, errsz, keypath);
		return NULL;
	}
	if ((req = X509_REQ_new()) == NULL || (b = BIO_new(BIO_s_mem())) == NULL)
		goto fail;
	name = X509_REQ_get_subject_name(req);
	if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1 ||
	    X509_REQ_sign(req, k, EVP_sha256()) <= 0 ||
	    PEM_write_bio_X509_REQ(b, req) != 1)
		goto fail;
	out = pki_bio_string(b);
	goto cleanup;
fail:
	pki_err(err, errsz, "signing request");
cleanup:
	BIO_free(b);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return out;
}

static int
pki_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	rc = X509_add_ext(cert, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

/* A certificate for pub with subject CN=cn (and OU=ou unless NULL) issued
 * by issuer (NULL: self). */
static X509 *
pki_cert_new(EVP_PKEY *pub, const char *cn, const char *ou, X509 *issuer,
    int days)
{
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	X509 *c = X509_new();

	if (c == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;	/* positive */
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) == NULL ||
	    X509_set_version(c, 2) != 1 || X509_set_pubkey(c, pub) != 1 ||
	    (ou != NULL && X509_NAME_add_entry_by_NID(X509_get_subject_name(c),
	    NID_organizationalUnitName, MBSTRING_UTF8,
	    (const unsigned char *)ou, -1, -1, 0) != 1) ||
	    X509_NAME_add_entry_by_NID(X509_get_subject_name(c),
	    NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
	    0) != 1 ||
	    X509_set_issuer_name(c, X509_get_subject_name(issuer ? issuer :
	    c)) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(c), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(c), (long)days * 86400) == NULL)
		goto fail;
	BN_free(bn);
	return c;
fail:
	BN_free(bn);
	X509_free(c);
	return NULL;
}

int
pki_ca_ensure(const char *dir, char *err, size_t errsz)
{
	char kp[4096], cp[4096];
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	int rc = -1;

	if (util_fmt(kp, sizeof(kp), "%s/ca.key", dir) < 0 ||
	    util_fmt(cp, sizeof(cp), "%s/ca.pem", dir) < 0 ||
	    util_mkdir_p(dir, 0700) < 0) {
		snprintf(err, errsz, "cannot use %s: %s", dir, strerror(errno));
		return -1;
	}
	if (access(kp, R_OK) == 0 && access(cp, R_OK) == 0)
		return 0;
	if (pki_key_ensure(kp, err, errsz) < 0 || (k = pki_key_load(kp)) == NULL)
		goto cleanup;
	if ((c = pki_cert_new(k, "cvirt cluster CA", NULL, NULL, 3650)) == NULL ||
	    pki_ext(c, c, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    pki_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    pki_ext(c, c, NID_subject_key_identifier, "hash") < 0 ||
	    X509_sign(c, k, EVP_sha256()) <= 0) {
		pki_err(err, errsz, "cluster CA");
		goto cleanup;
	}
	if (pki_write(cp, NULL, c, 0644) < 0) {
		snprintf(err, errsz, "cannot write %s: %s", cp, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	X509_free(c);
	EVP_PKEY_free(k);
	return rc;
}

/* One "IP:a.b.c.d" or "DNS:name" entry appended to out. */
static int
pki_san_one(const char *v, size_t n, char *out, size_t outsz)
{
	unsigned char buf[16];
	char one[256];
	size_t used = strlen(out);

	if (n == 0 || n >= sizeof(one))
		return -1;
	memcpy(one, v, n);
	one[n] = '\0';
	if (inet_pton(AF_INET, one, buf) == 1 ||
	    inet_pton(AF_INET6, one, buf) == 1)
		return util_fmt(out + used, outsz - used, "%sIP:%s",
		    used ? "," : "", one);
	if (strspn(one, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n)
		return -1;
	return util_fmt(out + used, outsz - used, "%sDNS:%s", used ? "," : "",
	    one);
}

/* "a,b": addresses or DNS names, at most PKI_SAN_MAX; -1 on anything
 * else. */
static int
pki_san(const char *san, char *out, size_t outsz)
{
	const char *p = san;
	size_t n;
	int count = 0;

	out[0] = '\0';
	for (;;) {
		n = strcspn(p, ",");
		if (++count > PKI_SAN_MAX || pki_san_one(p, n, out, outsz) < 0)
			return -1;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

char *
pki_sign(const char *dir, const char *csr_pem, const char *cn,
    const char *ou, const char *san, int days, char *err, size_t errsz)
{
	char kp[4096], cp[4096], sanval[PKI_SAN_MAX * 260];
	EVP_PKEY *cakey = NULL, *pub = NULL;
	X509 *ca = NULL, *c = NULL;
	X509_REQ *req = NULL;
	BIO *b = NULL;
	char *out = NULL;

	if (util_fmt(kp, sizeof(kp), "%s/ca.key", dir) < 0 ||
	    util_fmt(cp, sizeof(cp), "%s/ca.pem", dir) < 0 ||
	    (cakey = pki_key_load(kp)) == NULL || (ca = pki_cert_load(cp)) == NULL) {
		pki_err(err, errsz, "cluster CA");
		goto cleanup;
	}
	if (san != NULL && pki_san(san, sanval, sizeof(sanval)) < 0) {
		snprintf(err, errsz, "invalid address for the certificate");
		goto cleanup;
	}
	if ((b = BIO_new_mem_buf(csr_pem, -1)) == NULL ||
	    (req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL)) == NULL ||
	    (pub = X509_REQ_get_pubkey(req)) == NULL ||
	    X509_REQ_verify(req, pub) != 1) {
		pki_err(err, errsz, "invalid certificate signing request");
		goto cleanup;
	}
	if ((c = pki_cert_new(pub, cn, ou, ca, days)) == NULL ||
	    pki_ext(c, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    pki_ext(c, ca, NID_key_usage,
	    "critical,digitalSignature,keyEncipherment") < 0 ||
	    pki_ext(c, ca, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    (san != NULL && pki_ext(c, ca, NID_subject_alt_name, sanval) < 0) ||
	    X509_sign(c, cakey, EVP_sha256()) <= 0) {
		pki_err(err, errsz, "signing");
		goto cleanup;
	}
	BIO_free(b);
	if ((b = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(b, c) != 1) {
		pki_err(err, errsz, "certificate");
		goto cleanup;
	}
	out = pki_bio_string(b);
cleanup:
	BIO_free(b);
	X509_REQ_free(req);
	EVP_PKEY_free(pub);
	X509_free(c);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	return out;
}

int
pki_cert_valid(const char *path, const char *capath)
{
	X509 *c = pki_cert_load(path), *ca = pki_cert_load(capath);
	EVP_PKEY *pub = ca ? X509_get0_pubkey(ca) : NULL;
	int ok = 0;

	if (c && pub && X509_verify(c, pub) == 1 &&
	    X509_cmp_current_time(X509_get0_notAfter(c)) > 0)
		ok = 1;
	X509_free(c);
	X509_free(ca);
	ERR_clear_error();
	return ok;
}

int
pki_san_valid(const char *san)
{
	char out[PKI_SAN_MAX * 260];

	return san != NULL && pki_san(san, out, sizeof(out)) == 0;
}

int
pki_cert_ou(const char *path, char *ou, size_t ousz)
{
	X509 *c = pki_cert_load(path);
	int rc = -1;

	if (ousz > 0)
		ou[0] = '\0';
	if (c != NULL && X509_NAME_get_text_by_NID(X509_get_subject_name(c),
	    NID_organizationalUnitName, ou, (int)ousz) >= 0)
		rc = 0;
	if (rc < 0 && ousz > 0)
		ou[0] = '\0';
	X509_free(c);
	ERR_clear_error();
	return rc;
}

int
pki_cert_expires_within(const char *path, int days)
{
	X509 *c = pki_cert_load(path);
	time_t when = time(NULL) + (time_t)days * 86400;
	int rc = 1;

	if (c != NULL && X509_cmp_time(X509_get0_notAfter(c), &when) > 0)
		rc = 0;
	X509_free(c);
	ERR_clear_error();
	return rc;
}
