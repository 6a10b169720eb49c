/* meta.c - reading VM metadata (vm.json) from shared storage, which any
 * host can write: size, types, names and paths are checked before use. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "storage/store.h"

#define META_MAX_DISKS	64
#define META_MAX_NICS	32

static int
meta_fail(char *err, size_t errsz, const char *what)
{
	snprintf(err, errsz, "invalid VM metadata: %s", what);
	return -1;
}

/* Optional integer member within [min, max]. */
static int
meta_int(json_t *o, const char *key, json_int_t min, json_int_t max)
{
	json_t *v = json_object_get(o, key);

	return v == NULL || json_is_null(v) || (json_is_integer(v) &&
	    json_integer_value(v) >= min && json_integer_value(v) <= max);
}

/* Optional absolute path without "..": it is handed to QEMU. */
static int
meta_path(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	const char *s;

	if (v == NULL || json_is_null(v))
		return 1;
	if (!json_is_string(v) || (s = json_string_value(v))[0] != '/' ||
	    strlen(s) > 4095 || strlen(s) != json_string_length(v))
		return 0;
	return strstr(s, "/../") == NULL && (strlen(s) < 3 ||
	    strcmp(s + strlen(s) - 3, "/..") != 0);
}

static int
meta_disks(json_t *disks)
{
	json_t *d, *f;
	size_t i;

	if (disks == NULL)
		return 1;
	if (!json_is_array(disks) || json_array_size(disks) > META_MAX_DISKS)
		return 0;
	json_array_foreach(disks, i, d) {
		f = json_object_get(d, "file");
		/* A disk file is one name inside the VM's directory. */
		if (!json_is_object(d) || (f != NULL && (!json_is_string(f) ||
		    !util_name_valid(json_string_value(f)))) ||
		    !meta_int(d, "size_mib", 0, INT64_C(1) << 36))
			return 0;
	}
	return 1;
}

json_t *
store_meta_parse(const char *buf, size_t len, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *m, *nics;
	const char *uuid, *name;

	if (len > STORE_META_MAX) {
		meta_fail(err, errsz, "too large");
		return NULL;
	}
	if ((m = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(err, errsz, "invalid VM metadata: %s", jerr.text);
		return NULL;
	}
	uuid = json_string_value(json_object_get(m, "uuid"));
	name = json_string_value(json_object_get(m, "name"));
	nics = json_object_get(m, "nics");
	if (!json_is_object(m))
		meta_fail(err, errsz, "not an object");
	else if (uuid == NULL || !util_uuid_valid(uuid))
		meta_fail(err, errsz, "uuid");
	else if (name == NULL || !util_name_valid(name))
		meta_fail(err, errsz, "name");
	else if (!meta_int(m, "meta_version", 1, STORE_META_VERSION))
		meta_fail(err, errsz, "meta_version (newer cvirt?)");
	else if (!meta_int(m, "cpus", 1, 1024) ||
	    !meta_int(m, "memory_mib", 1, INT64_C(1) << 32))
		meta_fail(err, errsz, "cpus or memory_mib");
	else if (!meta_disks(json_object_get(m, "disks")))
		meta_fail(err, errsz, "disks");
	else if (nics != NULL && (!json_is_array(nics) ||
	    json_array_size(nics) > META_MAX_NICS))
		meta_fail(err, errsz, "nics");
	else if (!meta_path(m, "kernel") || !meta_path(m, "initrd"))
		meta_fail(err, errsz, "kernel or initrd path");
	else
		return m;
	json_decref(m);
	return NULL;
}
