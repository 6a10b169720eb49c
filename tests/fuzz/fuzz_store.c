/* fuzz_store.c - libFuzzer target: VM metadata (vm.json) read from shared
 * storage, which another host may have written. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "storage/store.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *m, *d;
	size_t i;

	m = store_meta_parse((const char *)data, size, err, sizeof(err));
	if (m == NULL)
		return 0;
	/* Accepted metadata never names a file outside the VM directory. */
	if (!util_uuid_valid(json_string_value(json_object_get(m, "uuid"))) ||
	    !util_name_valid(json_string_value(json_object_get(m, "name"))))
		abort();
	json_array_foreach(json_object_get(m, "disks"), i, d) {
		const char *f = json_string_value(json_object_get(d, "file"));
		if (f && (strchr(f, '/') || strcmp(f, "..") == 0))
			abort();
	}
	json_decref(m);
	return 0;
}
