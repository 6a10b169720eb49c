/* netk.c - kernel network objects through ip(8), bridge(8) and nft(8). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc.h"
#include "net/net_int.h"

#define NETK_TIMEOUT_MS	15000
#define NETK_MAX_WORDS	32

static int
netk_exec(char *const argv[], char *out, size_t outsz, char *err,
    size_t errsz)
{
	int rc = proc_run(argv, out, outsz, NETK_TIMEOUT_MS);

	if (rc == 0)
		return 0;
	proc_last_line(out, err, errsz);
	if (err[0] == '\0')
		snprintf(err, errsz, "%s failed", argv[0]);
	log_debug("net: %s %s: %s", argv[0], argv[1] ? argv[1] : "", out);
	return -1;
}

int
netk_run(char *err, size_t errsz, const char *fmt, ...)
{
	char line[1024], out[2048], *argv[NETK_MAX_WORDS + 1], *save = NULL,
	    *w;
	va_list ap;
	int n = 0, len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(line)) {
		snprintf(err, errsz, "command too long");
		return -1;
	}
	log_debug("net: %s", line);	/* before strtok_r splits it */
	for (w = strtok_r(line, " ", &save); w && n < NETK_MAX_WORDS;
	    w = strtok_r(NULL, " ", &save))
		argv[n++] = w;
	argv[n] = NULL;
	if (n == 0 || w != NULL) {
		snprintf(err, errsz, "bad command");
		return -1;
	}
	return netk_exec(argv, out, sizeof(out), err, errsz);
}

int
netk_batch(const char *tool, const char *dir, const char *text, char *err,
    size_t errsz)
{
	char path[4096], out[2048];
	char *argv[4];
	int rc = -1;

	if (util_fmt(path, sizeof(path), "%s/%s.batch", dir, tool) < 0 ||
	    util_write_file_atomic(path, text, strlen(text), 0600) < 0) {
		snprintf(err, errsz, "cannot write %s: %s", path,
		    strerror(errno));
		return -1;
	}
	argv[0] = (char *)tool;
	argv[1] = strcmp(tool, "nft") == 0 ? "-f" : "-batch";
	argv[2] = path;
	argv[3] = NULL;
	rc = netk_exec(argv, out, sizeof(out), err, errsz);
	unlink(path);
	return rc;
}

/* Run argv and parse its JSON output; new reference or NULL. */
static json_t *
netk_json(char *const argv[], char *err, size_t errsz)
{
	size_t outsz = 4 * 1024 * 1024;
	char *out = malloc(outsz);
	json_error_t je;
	json_t *j = NULL;

	if (out == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if (netk_exec(argv, out, outsz, err, errsz) < 0)
		goto cleanup;
	/* An empty answer (no fdb entries, no tables) is an empty list. */
	if (strspn(out, " \t\r\n") == strlen(out))
		j = json_array();
	else if ((j = json_loads(out, 0, &je)) == NULL)
		snprintf(err, errsz, "%s: unreadable JSON: %s", argv[0],
		    je.text);
cleanup:
	free(out);
	return j;
}

json_t *
netk_links(char *err, size_t errsz)
{
	char *argv[] = { "ip", "-d", "-j", "link", "show", NULL };
	json_t *j = netk_json(argv, err, errsz);

	if (j != NULL && !json_is_array(j)) {
		json_decref(j);
		snprintf(err, errsz, "ip: unexpected link list");
		return NULL;
	}
	return j;
}

json_t *
netk_link(json_t *links, const char *name)
{
	json_t *l;
	size_t i;

	json_array_foreach(links, i, l) {
		const char *n = json_string_value(json_object_get(l, "ifname"));
		if (n && strcmp(n, name) == 0)
			return l;
	}
	return NULL;
}

const char *
netk_kind(json_t *link)
{
	const char *k = json_string_value(json_object_get(json_object_get(link,
	    "linkinfo"), "info_kind"));

	return k ? k : "";
}

json_t *
netk_data(json_t *link)
{
	return json_object_get(json_object_get(link, "linkinfo"), "info_data");
}

int
netk_has_flag(json_t *link, const char *flag)
{
	json_t *f;
	size_t i;

	json_array_foreach(json_object_get(link, "flags"), i, f) {
		if (json_is_string(f) && strcmp(json_string_value(f), flag) == 0)
			return 1;
	}
	return 0;
}

static int
netk_str_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

int
netk_fdb_dsts(const char *dev, char (**out)[16], size_t *n, char *err,
    size_t errsz)
{
	char *argv[] = { "bridge", "-j", "fdb", "show", "dev", (char *)dev,
	    NULL };
	json_t *j = netk_json(argv, err, errsz), *e;
	uint32_t a;
	size_t i;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (j == NULL)
		return -1;
	if ((*out = calloc(json_array_size(j) + 1, 16)) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto cleanup;
	}
	json_array_foreach(j, i, e) {
		const char *mac = json_string_value(json_object_get(e, "mac"));
		const char *dst = json_string_value(json_object_get(e, "dst"));

		if (mac && dst && strcmp(mac, "00:00:00:00:00:00") == 0 &&
		    net_ipv4_parse(dst, &a) == 0)
			snprintf((*out)[(*n)++], 16, "%s", dst);
	}
	qsort(*out, *n, 16, netk_str_cmp);
	rc = 0;
cleanup:
	json_decref(j);
	return rc;
}

json_t *
netk_nft_tables(const char *family, const char *prefix, char *err,
    size_t errsz)
{
	char *argv[] = { "nft", "-j", "list", "tables", (char *)family, NULL };
	json_t *j = netk_json(argv, err, errsz), *res, *e, *out;
	size_t i;

	if (j == NULL)
		return NULL;
	out = json_array();
	/* {"nftables": [{"metainfo": {...}}, {"table": {"family", "name"}}]} */
	res = json_object_get(j, "nftables");
	json_array_foreach(res, i, e) {
		const char *name = json_string_value(json_object_get(
		    json_object_get(e, "table"), "name"));

		if (name && strncmp(name, prefix, strlen(prefix)) == 0)
			json_array_append_new(out, json_string(name));
	}
	json_decref(j);
	return out;
}

int
netk_tc_filters(const char *dev, const char *dir, char *err, size_t errsz)
{
	char *argv[] = { "tc", "-j", "filter", "show", "dev", (char *)dev,
	    (char *)dir, NULL };
	json_t *j = netk_json(argv, err, errsz);
	int n;

	if (j == NULL)
		return -1;
	n = json_is_array(j) ? (int)json_array_size(j) : -1;
	if (n < 0)
		snprintf(err, errsz, "tc: unexpected filter list");
	json_decref(j);
	return n;
}

int
netk_owned(json_t *link, const char *owner)
{
	const char *a = json_string_value(json_object_get(link, "ifalias"));

	return a != NULL && owner[0] && strcmp(a, owner) == 0;
}

int
netk_link_add(const char *name, const char *owner, char *err, size_t errsz,
    const char *fmt, ...)
{
	char args[768];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(args))
		return net_errf(err, errsz, "command too long");
	if (netk_run(err, errsz, "ip link add %s", args) < 0)
		return -1;
	if (netk_run(err, errsz, "ip link set dev %s alias %s", name,
	    owner) < 0) {
		char e2[256];

		netk_run(e2, sizeof(e2), "ip link del dev %s", name);
		return -1;
	}
	return 0;
}

int
netk_nft_owned(const char *family, const char *table, const char *owner)
{
	char *argv[] = { "nft", "list", "table", (char *)family, (char *)table,
	    NULL };
	char out[65536], want[128];

	if (proc_run(argv, out, sizeof(out), NETK_TIMEOUT_MS) != 0)
		return -1;
	if (util_fmt(want, sizeof(want), "comment \"%s\"", owner) < 0)
		return 0;
	return strstr(out, want) != NULL;
}
