/* cli_output.c - what people read: aligned tables, key: value lines, and
 * the API's JSON as is for scripts (--json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"

#define CLI_CELL_MAX 1024

void
cli_out_json(json_t *j)
{
	if (j == NULL) {
		printf("null\n");
		return;
	}
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	printf("\n");
}

void
cli_out_clean(const char *s, char *buf, size_t size)
{
	size_t i;

	if (size == 0)
		return;
	for (i = 0; s[i] != '\0' && i + 1 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	buf[i] = '\0';
}

const char *
cli_json_str(json_t *obj, const char *key, const char *dflt)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

/* A list of strings, or of objects with "name" or "host" (and "ok": a
 * false one is marked), as "a,b,c". */
static void
cli_out_names(json_t *arr, char *buf, size_t size)
{
	size_t i, off = 0;
	json_t *v;
	int n;

	buf[0] = '\0';
	json_array_foreach(arr, i, v) {
		const char *s = json_is_string(v) ? json_string_value(v) :
		    cli_json_str(v, "name", cli_json_str(v, "host", "?"));

		n = snprintf(buf + off, size - off, "%s%s%s", i ? "," : "", s,
		    json_is_false(json_object_get(v, "ok")) ? "(not ok)" : "");
		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
	if (buf[0] == '\0')
		snprintf(buf, size, "-");
}

/* Anything else: the value's own text. */
static void
cli_out_plain(json_t *v, char *buf, size_t size)
{
	char *dump;

	if (json_is_string(v))
		snprintf(buf, size, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, size, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, size, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
	else if ((dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY))) {
		snprintf(buf, size, "%s", dump);
		free(dump);
	} else
		snprintf(buf, size, "?");
}

void
cli_out_value(json_t *v, enum cli_fmt fmt, char *buf, size_t size)
{
	char raw[CLI_CELL_MAX];

	if (v == NULL || json_is_null(v)) {
		snprintf(buf, size, "-");
		return;
	}
	if (fmt == CLI_F_MIB && json_is_integer(v))
		snprintf(raw, sizeof(raw), "%lldMiB",
		    (long long)json_integer_value(v));
	else if (fmt == CLI_F_BYTES && json_is_number(v))
		snprintf(raw, sizeof(raw), "%.0fMiB",
		    json_number_value(v) / (1024.0 * 1024.0));
	else if (fmt == CLI_F_PCT && json_is_number(v))
		snprintf(raw, sizeof(raw), "%.0f%%", json_number_value(v));
	else if (fmt == CLI_F_COUNT && json_is_array(v))
		snprintf(raw, sizeof(raw), "%zu", json_array_size(v));
	else if (fmt == CLI_F_NAMES && json_is_array(v))
		cli_out_names(v, raw, sizeof(raw));
	else
		cli_out_plain(v, raw, sizeof(raw));
	cli_out_clean(raw, buf, size);
}

static void
cli_out_row(char **cells, const size_t *w, size_t ncols, int indent)
{
	size_t j;

	printf("%*s", indent, "");
	for (j = 0; j < ncols; j++) {
		if (j + 1 == ncols)
			printf("%s\n", cells[j]);
		else
			printf("%-*s  ", (int)w[j], cells[j]);
	}
}

static int
cli_out_table_ind(json_t *arr, const struct cli_col *cols, size_t ncols,
    int indent)
{
	size_t i, j, nrows, w[16];
	char **cells = NULL, *hdr[16], buf[CLI_CELL_MAX];
	int rc = -1;

	if (!json_is_array(arr) || ncols > 16) {
		cli_err("unexpected reply from the manager (not a list)");
		return -1;
	}
	nrows = json_array_size(arr);
	if ((cells = calloc(nrows * ncols + 1, sizeof(*cells))) == NULL) {
		cli_err("out of memory");
		goto cleanup;
	}
	for (j = 0; j < ncols; j++) {
		hdr[j] = (char *)cols[j].header;
		w[j] = strlen(cols[j].header);
	}
	for (i = 0; i < nrows; i++) {
		for (j = 0; j < ncols; j++) {
			cli_out_value(json_object_get(json_array_get(arr, i),
			    cols[j].key), cols[j].fmt, buf, sizeof(buf));
			if ((cells[i * ncols + j] = strdup(buf)) == NULL) {
				cli_err("out of memory");
				goto cleanup;
			}
			if (strlen(buf) > w[j])
				w[j] = strlen(buf);
		}
	}
	cli_out_row(hdr, w, ncols, indent);
	for (i = 0; i < nrows; i++)
		cli_out_row(cells + i * ncols, w, ncols, indent);
	rc = 0;
cleanup:
	for (i = 0; cells != NULL && i < nrows * ncols; i++)
		free(cells[i]);
	free(cells);
	return rc;
}

int
cli_out_table(json_t *arr, const struct cli_col *cols, size_t ncols)
{
	return cli_out_table_ind(arr, cols, ncols, 0);
}

int
cli_out_sublist(const char *label, json_t *arr, const struct cli_col *cols,
    size_t ncols)
{
	if (!json_is_array(arr))
		return 0;
	printf("%s:%s\n", label, json_array_size(arr) ? "" : " -");
	if (json_array_size(arr) == 0)
		return 0;
	return cli_out_table_ind(arr, cols, ncols, 2);
}

static int
cli_out_named(const char *key, const struct cli_col *fields, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(key, fields[i].key) == 0)
			return 1;
	return 0;
}

void
cli_out_kv(json_t *obj, const struct cli_col *fields, size_t n)
{
	char buf[CLI_CELL_MAX], label[80], kbuf[72];
	const char *key;
	size_t i, w = 0;
	json_t *v;

	for (i = 0; i < n; i++)
		if (strlen(fields[i].header) > w)
			w = strlen(fields[i].header);
	json_object_foreach(obj, key, v) {
		if (!cli_out_named(key, fields, n) && !json_is_array(v) &&
		    !json_is_object(v) && strlen(key) > w && strlen(key) < 40)
			w = strlen(key);
	}
	for (i = 0; i < n; i++) {
		if ((v = json_object_get(obj, fields[i].key)) == NULL)
			continue;
		cli_out_value(v, fields[i].fmt, buf, sizeof(buf));
		snprintf(label, sizeof(label), "%s:", fields[i].header);
		printf("%-*s %s\n", (int)w + 1, label, buf);
	}
	json_object_foreach(obj, key, v) {
		if (cli_out_named(key, fields, n) || json_is_array(v) ||
		    json_is_object(v))
			continue;
		cli_out_value(v, CLI_F_STR, buf, sizeof(buf));
		cli_out_clean(key, kbuf, sizeof(kbuf));
		snprintf(label, sizeof(label), "%s:", kbuf);
		printf("%-*s %s\n", (int)w + 1, label, buf);
	}
}

int
cli_out_list(struct cli_ctx *c, const char *path, const struct cli_col *cols,
    size_t n)
{
	json_t *arr = NULL;
	int rc = CLI_EXIT_FAIL;

	if (cli_api(c, "GET", path, NULL, &arr) != 0)
		goto cleanup;
	if (c->json)
		cli_out_json(arr);
	else if (cli_out_table(arr, cols, n) != 0)
		goto cleanup;
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(arr);
	return rc;
}
