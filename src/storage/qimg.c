/* qimg.c - disk image files through qemu-img, and streamed checksums. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/proc.h"
#include "common/util.h"
#include "storage/qimg.h"

#define QIMG_TIMEOUT_MS	(6 * 3600 * 1000)	/* a copy of a huge disk */
#define QIMG_OUT	65536

/* Run qemu-img; on failure err gets "what: <qemu-img's last line>". */
static int
qimg_run(char *const argv[], const char *what, char *out, size_t outsz,
    char *err, size_t errsz)
{
	char line[256];
	int st;

	st = proc_run(argv, out, outsz, QIMG_TIMEOUT_MS);
	if (st == 0)
		return 0;
	proc_last_line(out, line, sizeof(line));
	snprintf(err, errsz, "%s: %s", what, line[0] ? line : "qemu-img failed");
	return -1;
}

int
qimg_create(const char *path, int64_t size_bytes, const char *backing,
    char *err, size_t errsz)
{
	char size[32], out[1024];
	char *argv[16];
	int n = 0;

	argv[n++] = "qemu-img";
	argv[n++] = "create";
	argv[n++] = "-q";
	argv[n++] = "-f";
	argv[n++] = "qcow2";
	if (backing) {
		argv[n++] = "-b";
		argv[n++] = (char *)backing;
		argv[n++] = "-F";
		argv[n++] = "qcow2";
	}
	argv[n++] = (char *)path;
	if (size_bytes > 0) {
		snprintf(size, sizeof(size), "%lld", (long long)size_bytes);
		argv[n++] = size;
	}
	argv[n] = NULL;
	if (qimg_run(argv, "cannot create disk", out, sizeof(out), err,
	    errsz) < 0) {
		(void)unlink(path);
		return -1;
	}
	return 0;
}

int
qimg_convert(const char *src, const char *src_fmt, const char *dst,
    char *err, size_t errsz)
{
	char *argv[] = { "qemu-img", "convert", "-q", "-f",
	    (char *)(src_fmt ? src_fmt : "qcow2"), "-O", "qcow2", "-W",
	    (char *)src, (char *)dst, NULL };
	char out[1024];

	if (qimg_run(argv, "cannot copy disk", out, sizeof(out), err,
	    errsz) < 0) {
		(void)unlink(dst);
		return -1;
	}
	return 0;
}

json_t *
qimg_info(const char *path, const char *fmt, char *err, size_t errsz)
{
	char *argv[10];
	char *out = NULL;
	json_t *info = NULL;
	int n = 0;

	argv[n++] = "qemu-img";
	argv[n++] = "info";
	argv[n++] = "-U";
	argv[n++] = "--output=json";
	if (fmt) {
		argv[n++] = "-f";
		argv[n++] = (char *)fmt;
	}
	argv[n++] = (char *)path;
	argv[n] = NULL;
	if ((out = malloc(QIMG_OUT)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (qimg_run(argv, "cannot read image", out, QIMG_OUT, err, errsz) == 0 &&
	    (info = json_loads(out, 0, NULL)) == NULL)
		snprintf(err, errsz, "cannot read image: unexpected qemu-img "
		    "output");
	free(out);
	return info;
}

int
qimg_check(const char *path, char *err, size_t errsz)
{
	char *argv[] = { "qemu-img", "check", "-q", "-f", "qcow2", (char *)path,
	    NULL };
	char out[4096];

	return qimg_run(argv, "image check failed", out, sizeof(out), err,
	    errsz);
}

int
qimg_commit(const char *path, char *err, size_t errsz)
{
	char *argv[] = { "qemu-img", "commit", "-q", "-d", "-f", "qcow2",
	    (char *)path, NULL };
	char out[1024];

	return qimg_run(argv, "cannot merge snapshot", out, sizeof(out), err,
	    errsz);
}

int
qimg_rebase_unsafe(const char *path, const char *backing, char *err,
    size_t errsz)
{
	char *argv[] = { "qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-b",
	    (char *)backing, "-F", "qcow2", (char *)path, NULL };
	char out[1024];

	return qimg_run(argv, "cannot relink overlay", out, sizeof(out), err,
	    errsz);
}

int
qimg_resize(const char *path, int64_t size_mib, char *err, size_t errsz)
{
	char size[32], out[1024];
	char *argv[] = { "qemu-img", "resize", "-q", "-f", "qcow2",
	    (char *)path, size, NULL };

	snprintf(size, sizeof(size), "%lldM", (long long)size_mib);
	return qimg_run(argv, "cannot resize disk", out, sizeof(out), err,
	    errsz);
}

/* OpenSSL's SHA-256 uses the CPU's SHA extensions where there are some: a
 * backup's checksum then costs a fraction of its copy. */
int
qimg_sha256(const char *path, char out[QIMG_SHA256_HEX + 1], uint64_t *bytes,
    char *err, size_t errsz)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[EVP_MAX_MD_SIZE], *buf = NULL;
	EVP_MD_CTX *ctx = NULL;
	unsigned int dlen = 0, i;
	uint64_t total = 0;
	ssize_t n;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errsz, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(1 << 20)) == NULL || (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		snprintf(err, errsz, "cannot start a checksum");
		goto cleanup;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while ((n = read(fd, buf, 1 << 20)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errsz, "cannot read %s: %s", path,
			    strerror(errno));
			goto cleanup;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			snprintf(err, errsz, "checksum failed");
			goto cleanup;
		}
		total += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 || dlen * 2 >
	    QIMG_SHA256_HEX) {
		snprintf(err, errsz, "checksum failed");
		goto cleanup;
	}
	for (i = 0; i < dlen; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[2 * dlen] = '\0';
	if (bytes)
		*bytes = total;
	rc = 0;
cleanup:
	EVP_MD_CTX_free(ctx);
	free(buf);
	close(fd);
	return rc;
}
