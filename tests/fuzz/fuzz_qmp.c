/* fuzz_qmp.c - libFuzzer target: QMP messages from QEMU, one per line, as
 * the transport decodes and checks them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/qmp.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	char why[256];
	json_t *msg;
	int event;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (qmp_parse_line(p, (size_t)(nl - p), &msg, &event, why,
		    sizeof(why)) == 0) {
			/* What the transport hands on is what it checked. */
			if (!json_is_object(msg) || (event &&
			    !json_is_string(json_object_get(msg, "event"))))
				abort();
			json_decref(msg);
		} else if (msg != NULL || why[0] == '\0') {
			abort();
		}
		p = nl + 1;
	}
	return 0;
}
