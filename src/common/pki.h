/* pki.h - the cluster's certificates (OpenSSL): a CA the manager creates,
 * keys and signing requests on hosts, certificates signed at join. */
#ifndef CVIRT_PKI_H
#define CVIRT_PKI_H

#include <stddef.h>

#define PKI_PEM_MAX	(64 * 1024)
#define PKI_SAN_MAX	16	/* names and addresses in one certificate */

/* An EC P-256 key at path (mode 0600) unless one is there; 0 or -1. */
int	 pki_key_ensure(const char *path, char *err, size_t errsz);
/* A PEM certificate signing request for the key at keypath with subject
 * CN=cn; malloc'd, NULL with err. */
char	*pki_csr(const char *keypath, const char *cn, char *err, size_t errsz);
/* dir/ca.key and dir/ca.pem (10 years) unless both exist; 0 or -1. */
int	 pki_ca_ensure(const char *dir, char *err, size_t errsz);
/* Signs the public key of csr_pem with the CA in dir. The subject is
 * CN=cn, OU=ou (none when NULL) whatever the request says; san
 * ("ADDR[,ADDR...]": IP addresses or DNS names, at most PKI_SAN_MAX; may
 * be NULL) becomes the subjectAltName: the caller's list, never the
 * request's; usable for TLS servers and clients.
 * PEM, malloc'd, or NULL with err. */
char	*pki_sign(const char *dir, const char *csr_pem, const char *cn,
	    const char *ou, const char *san, int days, char *err,
	    size_t errsz);
/* 1 when san is a list pki_sign takes. */
int	 pki_san_valid(const char *san);
/* The OU of the certificate at path ("" when none); 0, or -1 when the
 * file is no certificate or has no OU. */
int	 pki_cert_ou(const char *path, char *ou, size_t ousz);
/* 1 when the certificate at path ends within days (or is unreadable). */
int	 pki_cert_expires_within(const char *path, int days);
/* 1 when the certificate at path is signed by the CA at capath and not
 * expired. */
int	 pki_cert_valid(const char *path, const char *capath);
/* The Diffie-Hellman group ffdhe2048 (RFC 7919) as PEM "DH PARAMETERS",
 * for a TLS server that would otherwise generate parameters of its own
 * (QEMU's tls-creds without dh-params.pem: ~1 s of CPU each). A named,
 * public group: nothing secret. malloc'd, NULL with err. */
char	*pki_dh_params(char *err, size_t errsz);

#endif
