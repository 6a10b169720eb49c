/* store.h - storage domains: the on-disk layout every host shares.
 *
 *   DOMAIN/domain.json           {"name", "version"}
 *   DOMAIN/vms/UUID/vm.json      VM metadata, versioned, written atomically
 *   DOMAIN/vms/UUID/disk0.qcow2  disks
 *   DOMAIN/vms/UUID/serial.log   serial output (QEMU appends; bounded)
 *   DOMAIN/vms/UUID/serial.log.0 the previous serial chunk
 *   DOMAIN/leases/               host leases (HA)
 */
#ifndef CVIRT_STORE_H
#define CVIRT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define STORE_META_VERSION 1

/* Prepare a domain directory (creates it and its layout). */
int	store_domain_init(const char *root, const char *name, char *err,
	    size_t errsz);
/* Usable: exists, is a directory, its vms/ writable; and its space. 0 or
 * -1 with reason. root's path is resolved once, the rest relative to it
 * (see store.c). */
int	store_domain_check(const char *root, uint64_t *total, uint64_t *avail,
	    char *err, size_t errsz);
/* Whether the domain at root takes O_DIRECT I/O: ROOT/.probe-HOST opened
 * O_DIRECT, a 4096-byte aligned block written, fdatasync'd, read back and
 * compared, then removed. 1 yes; 0 no (EINVAL, or other data read back;
 * why in err); -1 the probe failed (err). It may hang with the storage. */
int	store_domain_probe_direct(const char *root, const char *host, char *err,
	    size_t errsz);
int	store_vm_dir(const char *root, const char *uuid, char *out, size_t size);
/* Create VM dir, blank disks ("size_mib" of each spec disk) and vm.json.
 * On failure nothing is left behind. */
int	store_vm_define(const char *root, json_t *spec, char *err, size_t errsz);
int	store_vm_write_meta(const char *root, json_t *spec, char *err,
	    size_t errsz);
/* Reads vm.json (checked by store_meta_parse); new reference or NULL. */
json_t	*store_vm_read_meta(const char *root, const char *uuid);
/* meta.c: vm.json content checked before use (size, types, uuid, names,
 * disk files as single names, absolute kernel/initrd without ".."); new
 * reference or NULL with err. Pure: for tests and the fuzzer. */
#define STORE_META_MAX	(1024 * 1024)
json_t	*store_meta_parse(const char *buf, size_t len, char *err,
	    size_t errsz);
int	store_vm_remove(const char *root, const char *uuid);
/* Absolute path of a disk file of the VM. */
int	store_disk_path(const char *root, const char *uuid, const char *file,
	    char *out, size_t size);

#endif
