/* config.c - one parser for every daemon's config file: "key = value"
 * lines become "--key value" arguments ahead of the real command line.
 * '#' starts a comment; "key =" with nothing after is a flag alone; a key
 * may repeat (e.g. storage = NAME=PATH on agents). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

#define CONFIG_MAX_ARGS	256
#define CONFIG_MAX_SIZE	(1 << 20)

/* The merged command line lives until exit, like the original argv; held
 * here so that it stays reachable (a leak checker at exit counts an array
 * only the caller's stack pointed to as leaked, and fails the daemon). */
static char **config_argv;

static char *
config_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Appends the file's options to out (*n so far); -1 on a bad line. */
static int
config_parse(const char *path, char *text, char **out, int *n)
{
	char *line, *save = NULL, *eq, *key, *val;
	int lineno = 0;

	for (line = strtok_r(text, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if ((eq = strchr(line, '#')) != NULL)
			*eq = '\0';
		if (*config_trim(line) == '\0')
			continue;
		if ((eq = strchr(line, '=')) == NULL) {
			log_error("%s:%d: expected key = value", path, lineno);
			return -1;
		}
		*eq = '\0';
		key = config_trim(line);
		val = config_trim(eq + 1);
		if (!*key || strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789-")
		    != strlen(key) || strcmp(key, "config") == 0) {
			log_error("%s:%d: invalid key \"%s\"", path, lineno, key);
			return -1;
		}
		if (*n + 2 >= CONFIG_MAX_ARGS) {
			log_error("%s: too many settings", path);
			return -1;
		}
		if ((out[(*n)++] = malloc(strlen(key) + 3)) == NULL)
			return -1;
		snprintf(out[*n - 1], strlen(key) + 3, "--%s", key);
		if (*val && (out[(*n)++] = strdup(val)) == NULL)
			return -1;
	}
	return 0;
}

int
config_args(const char *role, int *argc, char ***argv)
{
	char path[512] = "", *text = NULL, **out = NULL;
	int i, n = 0, rc = -1, explicit = 0;

	for (i = 1; i < *argc; i++) {
		if (strcmp((*argv)[i], "--config") == 0 && i + 1 < *argc) {
			explicit = util_fmt(path, sizeof(path), "%s",
			    (*argv)[i + 1]) == 0;
			break;
		}
		if (strncmp((*argv)[i], "--config=", 9) == 0) {
			explicit = util_fmt(path, sizeof(path), "%s",
			    (*argv)[i] + 9) == 0;
			break;
		}
	}
	if (!explicit && (util_fmt(path, sizeof(path), "%s/%s.conf", CONFIG_DIR,
	    role) < 0 || access(path, F_OK) != 0))
		return 0;	/* no file: the command line alone */
	if ((text = util_read_file(path, CONFIG_MAX_SIZE, NULL)) == NULL) {
		log_error("cannot read config file %s: %s", path, strerror(errno));
		return -1;
	}
	if ((out = calloc(CONFIG_MAX_ARGS + (size_t)*argc, sizeof(*out))) == NULL)
		goto cleanup;
	out[n++] = (*argv)[0];
	if (config_parse(path, text, out, &n) < 0)
		goto cleanup;
	for (i = 1; i < *argc; i++) {
		if (strcmp((*argv)[i], "--config") == 0) {
			i++;
			continue;
		}
		if (strncmp((*argv)[i], "--config=", 9) != 0)
			out[n++] = (*argv)[i];
	}
	out[n] = NULL;
	*argc = n;
	*argv = config_argv = out;
	out = NULL;
	rc = 0;
cleanup:
	/* On error out holds argv[0] and the file's strings only. */
	for (i = 1; out != NULL && i < n; i++)
		free(out[i]);
	free(out);
	free(text);
	return rc;
}
