/* qimg.h - disk image files through qemu-img: create, overlay, convert,
 * inspect, commit, rebase, resize, and streamed checksums. Each call runs
 * qemu-img once and gives a one-line reason in err on failure. */
#ifndef CVIRT_QIMG_H
#define CVIRT_QIMG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define QIMG_SHA256_HEX 64

/* A blank qcow2 of size_bytes, or (backing non-NULL) an overlay on the
 * qcow2 backing (absolute path); size_bytes 0 keeps the backing's size. */
int	qimg_create(const char *path, int64_t size_bytes, const char *backing,
	    char *err, size_t errsz);
/* Copy src (its whole backing chain flattened) into a new qcow2 dst;
 * src_fmt NULL means qcow2. Removes dst on failure. */
int	qimg_convert(const char *src, const char *src_fmt, const char *dst,
	    char *err, size_t errsz);
/* `qemu-img info --output=json` (-U: the image may be in use); new ref. */
json_t	*qimg_info(const char *path, const char *fmt, char *err, size_t errsz);
/* qcow2 consistency check: 0 when clean. */
int	qimg_check(const char *path, char *err, size_t errsz);
/* Offline: merge the overlay at path into its backing file. */
int	qimg_commit(const char *path, char *err, size_t errsz);
/* Offline: point path's backing file at backing (data already there). */
int	qimg_rebase_unsafe(const char *path, const char *backing, char *err,
	    size_t errsz);
int	qimg_resize(const char *path, int64_t size_mib, char *err,
	    size_t errsz);
/* SHA-256 of the file, streamed, as lower-case hex; size in *bytes. */
int	qimg_sha256(const char *path, char out[QIMG_SHA256_HEX + 1],
	    uint64_t *bytes, char *err, size_t errsz);

#endif
