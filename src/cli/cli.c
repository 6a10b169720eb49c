/* cli.c - the client entry point: global options, command table, usage. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/util.h"

/* Every client command; usage and help here are the help text. */
static const struct cli_cmd cli_cmds[] = {
	{ "host", "list", cli_host_list, "[--json]",
	    "list hypervisor hosts" },
	{ "host", "show", cli_host_show, "HOST [--json]",
	    "show one host" },
	{ "host", "maintenance", cli_host_maintenance, "HOST on|off [--json]",
	    "put a host into maintenance or take it out" },
	{ "host", "delete", cli_host_delete, "HOST [--json]",
	    "forget a host whose agent is stopped and that runs no VM" },
	{ "host", "confirm-off", cli_host_confirm_off, "HOST [--json]",
	    "vouch that a host without a watchdog is off: its VMs may restart" },
	{ "host", "reset", cli_host_reset, "HOST [--json]",
	    "revoke a host's key and certificate: it joins again with a token" },
	{ "host", "approve-address", cli_host_approve_address,
	    "HOST ADDRESS [--json]",
	    "let a host's certificate name ADDRESS (IP or DNS name)" },
	{ "storage", "list", cli_storage_list, "[--json]",
	    "list storage domains" },
	{ "vm", "create", cli_vm_create,
	    "NAME --cpus N --memory MIB [--disk MIB] [--image NAME]\n"
	    "          [--kernel PATH [--initrd PATH] [--cmdline STR]] "
	    "[--net NETWORK]\n"
	    "          [--host HOST] [--storage S] [--ha] "
	    "[--ha-monitor M]\n"
	    "          [--affinity GROUP] [--anti-affinity GROUP]\n"
	    "          [--cdrom ISO] [--hostname H] [--user-data FILE] "
	    "[--ssh-key FILE]\n"
	    "          [--firmware bios|uefi] [--display vnc|none] [--json]",
	    "define a VM (it stays stopped)" },
	{ "vm", "list", cli_vm_list, "[--json]",
	    "list VMs" },
	{ "vm", "show", cli_vm_show, "NAME [--json]",
	    "show one VM" },
	{ "vm", "start", cli_vm_start, "NAME [--host HOST] [--no-wait] [--json]",
	    "start a VM and wait until it runs" },
	{ "vm", "stop", cli_vm_stop,
	    "NAME [--force] [--timeout S] [--no-wait] [--json]",
	    "shut a VM down (ACPI, then forced after the timeout)" },
	{ "vm", "reboot", cli_vm_reboot, "NAME [--force] [--no-wait] [--json]",
	    "reboot a VM" },
	{ "vm", "pause", cli_vm_pause, "NAME [--no-wait] [--json]",
	    "pause a running VM" },
	{ "vm", "resume", cli_vm_resume, "NAME [--no-wait] [--json]",
	    "resume a paused VM" },
	{ "vm", "delete", cli_vm_delete, "NAME [--force] [--no-wait] [--json]",
	    "delete a VM and its disks (--force: even when running)" },
	{ "vm", "serial", cli_vm_serial, "NAME [--follow] [--json]",
	    "print the serial output captured so far" },
	{ "vm", "console", cli_vm_console, "NAME",
	    "interactive serial console (Ctrl-] detaches)" },
	{ "vm", "migrate", cli_vm_migrate, "NAME [--to HOST] [--downtime-ms N] "
	    "[--bandwidth MIBS] [--timeout S] [--no-auto-converge] [--no-wait] "
	    "[--json]", "live-migrate a running VM; prints downtime_ms" },
	{ "cluster", "show", cli_cluster_show, "[--json]",
	    "cluster settings (overcommit, migration, balancer)" },
	{ "cluster", "set", cli_cluster_set, "KEY=VALUE...",
	    "change cluster settings, e.g. balancer_mode=automatic" },
	{ "vm", "clone", cli_vm_clone,
	    "NAME NEWNAME [--linked] [--storage S] [--no-wait] [--json]",
	    "copy a stopped VM (--linked: an overlay on a template)" },
	{ "vm", "template", cli_vm_template, "NAME [--json]",
	    "turn a stopped VM into a template to clone from" },
	{ "disk", "list", cli_disk_list, "VM [--json]",
	    "list a VM's disks" },
	{ "disk", "add", cli_disk_add, "VM --size MIB [--no-wait] [--json]",
	    "add a blank disk to a stopped VM" },
	{ "disk", "resize", cli_disk_resize,
	    "VM DISK --size MIB [--no-wait] [--json]",
	    "grow a disk (the VM may run)" },
	{ "image", "import", cli_image_import,
	    "FILE --name NAME [--storage S] [--host HOST] [--no-wait] [--json]",
	    "import a raw or qcow2 disk image (a local FILE is uploaded)" },
	{ "iso", "upload", cli_iso_upload,
	    "FILE [--storage S] [--name NAME] [--json]",
	    "upload an ISO into a storage domain's isos/" },
	{ "iso", "list", cli_iso_list, "[--storage S] [--json]",
	    "list the ISOs of a storage domain" },
	{ "iso", "delete", cli_iso_delete, "NAME [--storage S]",
	    "delete an ISO no VM uses" },
	{ "image", "list", cli_image_list, "[--json]",
	    "list disk images" },
	{ "image", "delete", cli_image_delete, "NAME",
	    "delete an image no VM is based on" },
	{ "snapshot", "create", cli_snapshot_create,
	    "VM SNAP [--no-wait] [--json]",
	    "snapshot every disk of a VM at one instant (running or not)" },
	{ "snapshot", "list", cli_snapshot_list, "VM [--json]",
	    "list a VM's snapshots, oldest first" },
	{ "snapshot", "revert", cli_snapshot_revert,
	    "VM SNAP [--no-wait] [--json]",
	    "bring a stopped VM's disks back to a snapshot" },
	{ "snapshot", "delete", cli_snapshot_delete,
	    "VM SNAP [--no-wait] [--json]",
	    "merge a snapshot away (the VM may run)" },
	{ "backup", "create", cli_backup_create,
	    "VM [--storage S] [--keep N] [--no-wait] [--json]",
	    "full, consistent backup of a VM (it may run)" },
	{ "backup", "list", cli_backup_list, "[VM] [--json]",
	    "list backups" },
	{ "backup", "show", cli_backup_show, "BACKUP [--json]",
	    "show a backup and its files' checksums" },
	{ "backup", "restore", cli_backup_restore,
	    "BACKUP --name NEWVM [--storage S] [--no-wait] [--json]",
	    "restore a backup into a new VM" },
	{ "backup", "verify", cli_backup_verify, "BACKUP [--no-wait] [--json]",
	    "check a backup's files against their checksums" },
	{ "backup", "delete", cli_backup_delete, "BACKUP",
	    "delete a backup" },
	{ "task", "list", cli_task_list, "[--limit N] [--json]",
	    "list tasks, newest first" },
	{ "task", "show", cli_task_show, "ID [--json]",
	    "show one task" },
	{ "task", "wait", cli_task_waitcmd, "ID [--json]",
	    "wait until a task ends" },
	{ "event", "list", cli_event_list, "[--limit N] [--since ID] [--json]",
	    "list events, newest first" },
	{ "network", "create", cli_network_create,
	    "NAME --type user|nat|bridge|vlan|vxlan [--subnet CIDR] [--vni N]\n"
	    "          [--vlan ID] [--uplink IF] [--mtu N] [--dhcp on|off] "
	    "[--json]",
	    "define a virtual network (every host realizes it)" },
	{ "network", "list", cli_network_list, "[--json]",
	    "list virtual networks (user is built in)" },
	{ "network", "show", cli_network_show, "NAME [--json]",
	    "show a network, the VMs on it and its state on each host" },
	{ "network", "delete", cli_network_delete, "NAME [--json]",
	    "delete a network no VM uses" },
	{ "nic", "add", cli_nic_add, "VM --net NETWORK [--mac MAC] [--ip IP] "
	    "[--json]",
	    "add a NIC to a VM (hot-plugged when it runs)" },
	{ "nic", "remove", cli_nic_remove, "VM MAC [--json]",
	    "remove a NIC from a VM (hot-unplugged when it runs)" },
	{ "nic", "list", cli_nic_list, "VM [--json]",
	    "list a VM's NICs with their addresses" },
	{ "user", "create", cli_user_create,
	    "NAME --role admin|operator|viewer [--password | --password-file F]"
	    " [--json]",
	    "create a user and print its API token" },
	{ "user", "list", cli_user_list, "[--json]",
	    "list users" },
	{ "user", "delete", cli_user_delete, "NAME",
	    "delete a user and every token of it" },
	{ "user", "token", cli_user_token, "NAME [--revoke] [--json]",
	    "print a new API token (the old ones stop working), or revoke all" },
	{ "user", "passwd", cli_user_passwd, "NAME [--password-file F]",
	    "set a user's password for the web UI (read from stdin)" },
	{ "user", "totp", cli_user_totp, "enable|disable NAME [--json]",
	    "give a user a TOTP second factor (prints its secret and "
	    "otpauth:// URI), or take it away" },
	{ "login", "", cli_login, "NAME [--password-file F] [--otp CODE] "
	    "[--json]",
	    "log in with a password (and one-time code): print a session "
	    "token" },
	{ "host", "join-token", cli_host_join_token,
	    "[--ttl S] [--address A[,A...]] [--json]",
	    "print a token that lets one new agent join, once (default 1 h)" },
	{ "audit", "list", cli_audit_list,
	    "[--limit N] [--user NAME] [--json]",
	    "list the audit log (who changed what), newest first" },
};
#define CLI_NCMDS (sizeof(cli_cmds) / sizeof(cli_cmds[0]))

static const char cli_global_help[] =
    "Global options (before or after the command):\n"
    "  --url URL          manager URL (env CVIRT_URL; default "
    CLI_DEFAULT_URL ")\n"
    "  --token TOKEN      API token (env CVIRT_TOKEN)\n"
    "  --token-file FILE  file holding the API token (env CVIRT_TOKEN_FILE;\n"
    "                     default ~/.local/share/cvirt/admin.token if present)\n"
    "  --ca-file FILE     CA certificate(s) to trust for https (env "
    "CVIRT_CA_FILE)\n"
    "  --json             print the API's JSON instead of tables\n"
    "  --help             this text, or a command's usage\n";

void
cli_err(const char *fmt, ...)
{
	char raw[1024], clean[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	cli_out_clean(raw, clean, sizeof(clean));
	fflush(stdout);
	fprintf(stderr, "cvirt: %s\n", clean);
}

int
cli_usage_error(struct cli_ctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c != NULL && c->cmd != NULL)
		cli_err("%s (try 'cvirt %s%s%s --help')", msg, c->cmd->noun,
		    c->cmd->verb[0] ? " " : "", c->cmd->verb);
	else
		cli_err("%s (try 'cvirt --help')", msg);
	return CLI_EXIT_USAGE;
}

int
cli_fail(struct cli_ctx *c)
{
	return c->interrupted ? CLI_EXIT_INTR : CLI_EXIT_FAIL;
}

int
cli_parse_num(const char *what, const char *s, uint64_t min, uint64_t max,
    uint64_t *out)
{
	if (util_parse_u64(s, min, max, out) == 0)
		return 0;
	cli_err("%s must be a whole number from %llu to %llu, not \"%s\"",
	    what, (unsigned long long)min, (unsigned long long)max, s);
	return -1;
}

int
cli_check_name(const char *what, const char *name)
{
	if (util_name_valid(name))
		return 0;
	cli_err("invalid %s name \"%s\" (letters, digits, '.', '_', '-'; "
	    "at most %d, starting with a letter or digit)", what, name,
	    UTIL_NAME_MAX);
	return -1;
}

void
cli_cmd_usage(const struct cli_cmd *cmd, int to_stderr)
{
	FILE *f = to_stderr ? stderr : stdout;

	fprintf(f, "usage: cvirt %s%s%s %s\n  %s\n\n%s", cmd->noun,
	    cmd->verb[0] ? " " : "", cmd->verb, cmd->usage, cmd->help,
	    cli_global_help);
}

/* The command list, all of it or one noun's. */
static void
cli_usage(FILE *f, const char *noun)
{
	char syn[64];
	size_t i;

	fprintf(f, "usage: cvirt [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
	    "Commands:\n");
	for (i = 0; i < CLI_NCMDS; i++) {
		if (noun != NULL && strcmp(noun, cli_cmds[i].noun) != 0)
			continue;
		snprintf(syn, sizeof(syn), "%s %s", cli_cmds[i].noun,
		    cli_cmds[i].verb);
		fprintf(f, "  %-18s %s\n", syn, cli_cmds[i].help);
	}
	if (noun == NULL)
		fprintf(f, "\nDaemons: cvirt manager | agent | up | sim "
		    "(see docs/cli.md)\n");
	fprintf(f, "\n%s\n'cvirt NOUN VERB --help' shows a command's "
	    "arguments.\n", cli_global_help);
}

static const struct cli_opt *
cli_opt_find(const struct cli_opt *opts, const char *name, size_t len)
{
	for (; opts != NULL && opts->name != NULL; opts++) {
		if (strlen(opts->name) == len &&
		    strncmp(opts->name, name, len) == 0)
			return opts;
	}
	return NULL;
}

/* One "--name[=value]" at argv[*i]; consumes its value. */
static int
cli_opt_one(struct cli_ctx *c, const struct cli_opt *opts, int argc,
    char **argv, int *i)
{
	const struct cli_opt globals[] = {
		{ "url",	CLI_OPT_STR,	&c->opt_url },
		{ "token",	CLI_OPT_STR,	&c->opt_token },
		{ "token-file",	CLI_OPT_STR,	&c->opt_token_file },
		{ "ca-file",	CLI_OPT_STR,	&c->opt_ca_file },
		{ "json",	CLI_OPT_FLAG,	&c->json },
		{ "help",	CLI_OPT_FLAG,	&c->help },
		{ NULL,		CLI_OPT_FLAG,	NULL },
	};
	const char *a = argv[*i], *name = a + 2, *eq;
	const struct cli_opt *o;
	size_t len;

	if (strcmp(a, "-h") == 0) {
		c->help = 1;
		return 0;
	}
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	if (a[1] != '-' || (o = cli_opt_find(opts, name, len)) == NULL) {
		if (a[1] != '-' || (o = cli_opt_find(globals, name, len)) == NULL)
			return cli_usage_error(c, "unknown option %.*s",
			    (int)(eq ? eq - a : (long)strlen(a)), a);
	}
	if (o->kind == CLI_OPT_FLAG) {
		if (eq != NULL)
			return cli_usage_error(c, "option --%s takes no value",
			    o->name);
		*(int *)o->dst = 1;
		return 0;
	}
	if (eq != NULL) {
		*(const char **)o->dst = eq + 1;
		return 0;
	}
	if (*i + 1 >= argc)
		return cli_usage_error(c, "option --%s needs a value", o->name);
	*(const char **)o->dst = argv[++*i];
	return 0;
}

/* "vm create needs NAME": the usage up to its first option. */
static void
cli_missing(struct cli_ctx *c)
{
	const char *u = c->cmd->usage, *opt = strstr(u, " --");
	size_t n = strcspn(u, "[\n");

	if (opt != NULL && (size_t)(opt - u) < n)
		n = (size_t)(opt - u);
	while (n > 0 && u[n - 1] == ' ')
		n--;
	cli_usage_error(c, "%s%s%s needs %.*s", c->cmd->noun,
	    c->cmd->verb[0] ? " " : "", c->cmd->verb, (int)n, u);
}

int
cli_opts_parse(struct cli_ctx *c, int argc, char **argv,
    const struct cli_opt *opts, char **pos, int min, int max, int *npos,
    int *rc)
{
	int i, n = 0, endopts = 0;

	*rc = CLI_EXIT_USAGE;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!endopts && strcmp(a, "--") == 0) {
			endopts = 1;
		} else if (!endopts && a[0] == '-' && a[1] != '\0') {
			if (cli_opt_one(c, opts, argc, argv, &i) != 0)
				return -1;
		} else if (n >= max) {
			if (!c->help) {
				cli_usage_error(c, "unexpected argument \"%s\"",
				    a);
				return -1;
			}
		} else {
			pos[n++] = argv[i];
		}
	}
	if (c->help) {
		cli_cmd_usage(c->cmd, 0);
		*rc = CLI_EXIT_OK;
		return -1;
	}
	if (n < min) {
		cli_missing(c);
		return -1;
	}
	if (npos != NULL)
		*npos = n;
	return 0;
}

/* Global options from argv[start] up to the next word; returns the index
 * of that word (argc when none), or -1 after a complaint. */
static int
cli_globals(struct cli_ctx *c, int argc, char **argv, int start)
{
	int i;

	for (i = start; i < argc && argv[i][0] == '-' && argv[i][1] != '\0';
	    i++) {
		if (strcmp(argv[i], "--") == 0)
			return i + 1;
		if (cli_opt_one(c, NULL, argc, argv, &i) != 0)
			return -1;
	}
	return i;
}

static int
cli_noun_known(const char *noun)
{
	size_t i;

	for (i = 0; i < CLI_NCMDS; i++)
		if (strcmp(cli_cmds[i].noun, noun) == 0)
			return 1;
	return 0;
}

static const struct cli_cmd *
cli_cmd_find(const char *noun, const char *verb)
{
	size_t i;

	for (i = 0; i < CLI_NCMDS; i++)
		if (strcmp(cli_cmds[i].noun, noun) == 0 &&
		    strcmp(cli_cmds[i].verb, verb) == 0)
			return &cli_cmds[i];
	return NULL;
}

/* "cvirt help [NOUN [VERB]]". */
static int
cli_help(int argc, char **argv)
{
	const struct cli_cmd *cmd;

	if (argc >= 2 && (cmd = cli_cmd_find(argv[0], argv[1])) != NULL) {
		cli_cmd_usage(cmd, 0);
		return CLI_EXIT_OK;
	}
	if (argc >= 1 && cli_noun_known(argv[0]) && argc < 2) {
		cli_usage(stdout, argv[0]);
		return CLI_EXIT_OK;
	}
	if (argc >= 1)
		return cli_usage_error(NULL, "unknown command \"%s%s%s\"",
		    argv[0], argc >= 2 ? " " : "", argc >= 2 ? argv[1] : "");
	cli_usage(stdout, NULL);
	return CLI_EXIT_OK;
}

/* Finds and runs NOUN VERB; argv[0] is the noun. Global options may sit
 * between the noun and the verb too. */
static int
cli_dispatch(struct cli_ctx *c, int argc, char **argv)
{
	const char *noun = argv[0];
	int v;

	if (strcmp(noun, "help") == 0)
		return cli_help(argc - 1, argv + 1);
	if (!cli_noun_known(noun))
		return cli_usage_error(NULL, "unknown command \"%s\"", noun);
	/* A command of one word ("cvirt login NAME"). */
	if ((c->cmd = cli_cmd_find(noun, "")) != NULL)
		return c->cmd->fn(c, argc - 1, argv + 1);
	if ((v = cli_globals(c, argc, argv, 1)) < 0)
		return CLI_EXIT_USAGE;
	if (v >= argc) {
		if (c->help) {
			cli_usage(stdout, noun);
			return CLI_EXIT_OK;
		}
		cli_err("%s needs a command (try 'cvirt %s --help')", noun,
		    noun);
		return CLI_EXIT_USAGE;
	}
	if ((c->cmd = cli_cmd_find(noun, argv[v])) == NULL) {
		cli_err("unknown command \"%s %s\" (try 'cvirt %s --help')",
		    noun, argv[v], noun);
		return CLI_EXIT_USAGE;
	}
	return c->cmd->fn(c, argc - v - 1, argv + v + 1);
}

int
cli_main(int argc, char **argv)
{
	struct cli_ctx c;
	int i, rc = CLI_EXIT_OK;

	memset(&c, 0, sizeof(c));
	if ((i = cli_globals(&c, argc, argv, 1)) < 0) {
		rc = CLI_EXIT_USAGE;
		goto cleanup;
	}
	if (i >= argc) {
		if (c.help)
			cli_usage(stdout, NULL);
		else
			rc = cli_usage_error(NULL, "missing command, e.g. "
			    "'cvirt vm list'");
		goto cleanup;
	}
	rc = cli_dispatch(&c, argc - i, argv + i);
cleanup:
	cli_ctx_free(&c);
	fflush(stdout);
	return rc;
}
