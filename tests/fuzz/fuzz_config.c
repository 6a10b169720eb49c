/* fuzz_config.c - libFuzzer target: the daemons' config file parser
 * (config_args: the input is the file), then the option parser every
 * command uses (global and command options, --name=value, "--",
 * positionals) and the value checks behind it (numbers, names, UUIDs) on
 * the input as NUL-separated words. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cli/cli_int.h"
#include "common/config.h"
#include "common/util.h"

static int
fuzz_nop(struct cli_ctx *c, int argc, char **argv)
{
	(void)c; (void)argc; (void)argv;
	return 0;
}

static const struct cli_cmd fuzz_cmd = { "vm", "create", fuzz_nop,
    "NAME --cpus N [--ha]", "fuzz" };

static void
fuzz_values(const char *w)
{
	uint64_t v;

	if (util_parse_u64(w, 1, 256, &v) == 0 && (v < 1 || v > 256))
		abort();
	if (util_name_valid(w) && (strchr(w, '/') || strcmp(w, ".") == 0 ||
	    strcmp(w, "..") == 0 || strlen(w) > UTIL_NAME_MAX))
		abort();
	if (util_uuid_valid(w) && strlen(w) != UTIL_UUID_LEN)
		abort();
}

static char fuzz_path[64];

static void
fuzz_unlink(void)
{
	unlink(fuzz_path);
}

/* The input as a config file: every line either refused or turned into
 * "--key [value]" arguments ahead of the command line. */
static void
fuzz_config_file(const uint8_t *data, size_t size)
{
	char *path = fuzz_path;
	char *orig[] = { "cvirt", "--config", path, "--data", "/d", NULL };
	char **argv = orig;
	int argc = 5, i, j, ours;
	FILE *f;

	if (path[0] == '\0') {
		snprintf(fuzz_path, sizeof(fuzz_path), "%s/cvirt-fuzz-%d.conf",
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
		    (int)getpid());
		atexit(fuzz_unlink);
	}
	/* No fsync: this file only needs to be read back at once. */
	if ((f = fopen(path, "w")) == NULL)
		return;
	if (fwrite(data, 1, size, f) != size) {
		fclose(f);
		return;
	}
	fclose(f);
	if (config_args("manager", &argc, &argv) < 0 || argv == orig)
		return;
	/* The command line comes last, without its --config FILE; the file
	 * gave "--key" words, each maybe followed by a value. */
	if (argc < 3 || strcmp(argv[argc - 1], "/d") != 0 ||
	    strcmp(argv[argc - 2], "--data") != 0 || argv[argc] != NULL ||
	    argv[0] != orig[0])
		abort();
	for (i = 1; i < argc; i++) {
		if (argv[i] == orig[1] || argv[i] == orig[2])
			abort();
		for (ours = 0, j = 0; orig[j]; j++)
			ours |= argv[i] == orig[j];
		if (!ours)
			free(argv[i]);
	}
	free(argv);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *argv[64], *pos[2];
	const char *cpus = NULL;
	int ha = 0, argc = 0, npos = 0, rc;
	struct cli_opt opts[] = {
		{ "cpus", CLI_OPT_STR, &cpus },
		{ "ha", CLI_OPT_FLAG, &ha },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	struct cli_ctx c;
	size_t i, start = 0;

	fuzz_config_file(data, size);
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (i = 0; i <= size && argc < 64; i++) {
		if (buf[i] == '\0') {
			argv[argc++] = buf + start;
			fuzz_values(buf + start);
			start = i + 1;
		}
	}
	memset(&c, 0, sizeof(c));
	c.cmd = &fuzz_cmd;
	if (cli_opts_parse(&c, argc, argv, opts, pos, 1, 2, &npos, &rc) == 0 &&
	    (npos < 1 || npos > 2))
		abort();
	free(buf);
	return 0;
}
