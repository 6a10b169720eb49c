/* cli_int.h - internals shared by the client command files (src/cli/). */
#ifndef CVIRT_CLI_INT_H
#define CVIRT_CLI_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define CLI_EXIT_OK	0
#define CLI_EXIT_FAIL	1	/* the command failed: one line on stderr */
#define CLI_EXIT_USAGE	2	/* unknown command/option, missing argument */
#define CLI_EXIT_INTR	130	/* Ctrl-C while waiting on a task */

#define CLI_DEFAULT_URL	"http://127.0.0.1:7480"
#define CLI_URL_MAX	1024
#define CLI_PATH_MAX	2048	/* API path with query */

struct cli_cmd;

/* One invocation. Global options fill the opt_* fields (pointers into argv);
 * url and token are resolved from them, the environment and the defaults on
 * the first request. */
struct cli_ctx {
	const char		*opt_url;
	const char		*opt_token;
	const char		*opt_token_file;
	const char		*opt_ca_file;
	int			 json;		/* --json */
	int			 help;		/* --help seen */
	const struct cli_cmd	*cmd;		/* the command being run */
	int			 resolved;
	char			 url[CLI_URL_MAX];	/* no trailing '/' */
	char			*token;			/* owned, or NULL */
	const char		*ca_file;	/* extra trust for https, or NULL */
	volatile int		 interrupted;	/* set by Ctrl-C while waiting */
};

/* Handlers get the words after "cvirt NOUN VERB" and return an exit code. */
typedef int (*cli_fn)(struct cli_ctx *c, int argc, char **argv);

struct cli_cmd {
	const char	*noun;
	const char	*verb;
	cli_fn		 fn;
	const char	*usage;		/* arguments after "cvirt NOUN VERB" */
	const char	*help;		/* one line: what it does */
};

/* Command options: flags set an int to 1, strings point into argv. */
enum cli_opt_kind { CLI_OPT_FLAG, CLI_OPT_STR };

struct cli_opt {
	const char		*name;	/* without the leading "--" */
	enum cli_opt_kind	 kind;
	void			*dst;	/* int * or const char ** */
};

/* Value formats for tables and key: value output. */
enum cli_fmt {
	CLI_F_STR,	/* string or number as is */
	CLI_F_MIB,	/* integer MiB -> "512MiB" */
	CLI_F_BYTES,	/* integer bytes -> "1024MiB" */
	CLI_F_BOOL,	/* true/false -> "yes"/"no" */
	CLI_F_PCT,	/* integer -> "45%" */
	CLI_F_COUNT,	/* list -> its length */
	CLI_F_NAMES	/* list of strings -> "a,b,c" */
};

struct cli_col {
	const char	*header;	/* table header, or label for key: value */
	const char	*key;		/* JSON member */
	enum cli_fmt	 fmt;
};

/* Done callback for a long operation: prints the result line for people. */
typedef void (*cli_done_fn)(struct cli_ctx *c, json_t *task, void *arg);

/* cli.c */
void	 cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int	 cli_usage_error(struct cli_ctx *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 cli_cmd_usage(const struct cli_cmd *cmd, int to_stderr);
/* Parses argv (the words after NOUN VERB): the command's options (opts,
 * NULL-terminated, may be NULL), the global ones, and between min and max
 * positional words stored into pos. Returns 0 to go on, or -1 with *rc set:
 * CLI_EXIT_OK after --help, CLI_EXIT_USAGE after a one-line complaint. */
int	 cli_opts_parse(struct cli_ctx *c, int argc, char **argv,
	    const struct cli_opt *opts, char **pos, int min, int max, int *npos,
	    int *rc);
/* Range-checked number; prints "cvirt: WHAT must be ..." on failure. */
int	 cli_parse_num(const char *what, const char *s, uint64_t min,
	    uint64_t max, uint64_t *out);
/* util_name_valid with a message naming what (e.g. "VM"). */
int	 cli_check_name(const char *what, const char *name);
/* The exit code of a failed command: CLI_EXIT_INTR after Ctrl-C. */
int	 cli_fail(struct cli_ctx *c);

/* cli_api.c */
/* One request to the manager at /api/v1 + path. On a 2xx reply returns 0
 * and *out (when out is not NULL) gets the parsed JSON, owned by the caller
 * (NULL for an empty body). Otherwise prints one line and returns -1. */
int	 cli_api(struct cli_ctx *c, const char *method, const char *path,
	    json_t *body, json_t **out);
/* As cli_api but silent: the error line goes to err. */
int	 cli_api_try(struct cli_ctx *c, const char *method, const char *path,
	    json_t *body, json_t **out, char *err, size_t errsize);
/* One request; on success --json prints the reply, else print(reply) when
 * print is given and the reply is an object, else printf(done, name).
 * Returns the exit code. */
int	 cli_call(struct cli_ctx *c, const char *method, const char *path,
	    json_t *body, void (*print)(json_t *), const char *done,
	    const char *name);
/* PUT /api/v1 + path with size bytes of fd as the body (a progress line
 * on a terminal, label naming it); 0 and the reply in *out (owned), or
 * -1 after one line. */
int	 cli_api_upload(struct cli_ctx *c, const char *path, int fd,
	    long long size, const char *label, json_t **out);
/* Resolves url and token once; prints one line and returns -1 on error. */
int	 cli_ctx_resolve(struct cli_ctx *c);
void	 cli_ctx_free(struct cli_ctx *c);

/* cli_output.c */
/* Prints j as indented JSON plus a newline on stdout. */
void	 cli_out_json(json_t *j);
/* Formats v into buf (always NUL-terminated); null/absent -> "-". Control
 * characters from the server are replaced so they cannot drive a terminal. */
void	 cli_out_value(json_t *v, enum cli_fmt fmt, char *buf, size_t size);
/* An aligned table with a header, one row per object of arr. */
int	 cli_out_table(json_t *arr, const struct cli_col *cols, size_t ncols);
/* A list command: GET path, then the JSON (--json) or a table. Returns
 * the exit code. */
int	 cli_out_list(struct cli_ctx *c, const char *path,
	    const struct cli_col *cols, size_t n);
/* "label:" then arr as a table indented by two spaces ("label: -" when
 * empty); nothing when arr is not a list. */
int	 cli_out_sublist(const char *label, json_t *arr,
	    const struct cli_col *cols, size_t ncols);
/* "label: value" lines for the given fields, then every other scalar
 * member of obj not named in fields. */
void	 cli_out_kv(json_t *obj, const struct cli_col *fields, size_t n);
/* Copies s into buf with control characters replaced by '?'. */
void	 cli_out_clean(const char *s, char *buf, size_t size);
/* JSON string member or dflt. */
const char *cli_json_str(json_t *obj, const char *key, const char *dflt);

/* cli_task.c */
/* Waits until the task (an object with "id") ends, drawing a progress bar
 * on stderr when it is a terminal. *final gets the last task JSON (caller
 * decrefs) whatever the outcome. Returns 0 when the task succeeded, -1
 * after printing one line otherwise (c->interrupted is set on Ctrl-C). */
int	 cli_task_wait(struct cli_ctx *c, json_t *task, json_t **final);
/* The tail of every long operation: with no_wait prints the task id (or
 * its JSON); otherwise waits, then prints the final task JSON (--json) or
 * calls done. Returns the exit code. */
int	 cli_task_finish(struct cli_ctx *c, json_t *task, int no_wait,
	    cli_done_fn done, void *arg);
int	 cli_task_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_task_show(struct cli_ctx *c, int argc, char **argv);
int	 cli_task_waitcmd(struct cli_ctx *c, int argc, char **argv);
int	 cli_event_list(struct cli_ctx *c, int argc, char **argv);

/* cli_host.c */
int	 cli_host_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_host_show(struct cli_ctx *c, int argc, char **argv);
int	 cli_host_maintenance(struct cli_ctx *c, int argc, char **argv);
int	 cli_host_delete(struct cli_ctx *c, int argc, char **argv);
int	 cli_host_confirm_off(struct cli_ctx *c, int argc, char **argv);
int	 cli_host_reset(struct cli_ctx *c, int argc, char **argv);
int	 cli_host_approve_address(struct cli_ctx *c, int argc, char **argv);
int	 cli_storage_list(struct cli_ctx *c, int argc, char **argv);

/* cli_vm.c */
int	 cli_vm_create(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_show(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_start(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_stop(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_reboot(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_pause(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_resume(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_delete(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_serial(struct cli_ctx *c, int argc, char **argv);

/* cli_cluster.c */
int	 cli_vm_migrate(struct cli_ctx *c, int argc, char **argv);
int	 cli_cluster_show(struct cli_ctx *c, int argc, char **argv);
int	 cli_cluster_set(struct cli_ctx *c, int argc, char **argv);

/* cli_user.c */
/* cli_network.c */
int	 cli_network_create(struct cli_ctx *c, int argc, char **argv);
int	 cli_network_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_network_show(struct cli_ctx *c, int argc, char **argv);
int	 cli_network_delete(struct cli_ctx *c, int argc, char **argv);
int	 cli_nic_add(struct cli_ctx *c, int argc, char **argv);
int	 cli_nic_remove(struct cli_ctx *c, int argc, char **argv);
int	 cli_nic_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_user_create(struct cli_ctx *c, int argc, char **argv);
int	 cli_user_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_user_delete(struct cli_ctx *c, int argc, char **argv);
int	 cli_user_token(struct cli_ctx *c, int argc, char **argv);
int	 cli_user_passwd(struct cli_ctx *c, int argc, char **argv);
int	 cli_user_totp(struct cli_ctx *c, int argc, char **argv);
int	 cli_login(struct cli_ctx *c, int argc, char **argv);
int	 cli_host_join_token(struct cli_ctx *c, int argc, char **argv);
int	 cli_audit_list(struct cli_ctx *c, int argc, char **argv);

/* cli_storage.c: images, snapshots, backups, clones, templates */
int	 cli_image_import(struct cli_ctx *c, int argc, char **argv);
int	 cli_image_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_image_delete(struct cli_ctx *c, int argc, char **argv);
int	 cli_snapshot_create(struct cli_ctx *c, int argc, char **argv);
int	 cli_snapshot_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_snapshot_revert(struct cli_ctx *c, int argc, char **argv);
int	 cli_snapshot_delete(struct cli_ctx *c, int argc, char **argv);
int	 cli_backup_create(struct cli_ctx *c, int argc, char **argv);
int	 cli_backup_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_backup_show(struct cli_ctx *c, int argc, char **argv);
int	 cli_backup_restore(struct cli_ctx *c, int argc, char **argv);
int	 cli_backup_verify(struct cli_ctx *c, int argc, char **argv);
int	 cli_backup_delete(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_clone(struct cli_ctx *c, int argc, char **argv);
int	 cli_vm_template(struct cli_ctx *c, int argc, char **argv);
int	 cli_disk_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_disk_add(struct cli_ctx *c, int argc, char **argv);
int	 cli_disk_resize(struct cli_ctx *c, int argc, char **argv);
/* vm create's --cdrom, --hostname, --user-data FILE, --ssh-key FILE (each
 * may be NULL) into body; -1 after printing one line. */
int	 cli_vm_boot_media(struct cli_ctx *c, const char *cdrom,
	    const char *storage, const char *hostname, const char *user_data,
	    const char *ssh_key, json_t *body);
/* cli_media.c: arg (of option opt) as the API names a host file of area
 * ("isos", "kernels", "images"): STORAGE:AREA/NAME or an absolute path
 * in a media area or media directory the manager reports passes as is
 * (the hosts' file, never read here); anything else is this client's
 * file, uploaded into AREA of storage (or the only domain) under a
 * content-addressed name unless there already, then named
 * STORAGE:AREA/NAME. 0 with out, or -1 after one line. *uploaded (may be
 * NULL): whether this call uploaded it. */
int	 cli_media_arg(struct cli_ctx *c, const char *opt, const char *area,
	    const char *arg, const char *storage, char *out, size_t outsz,
	    int *uploaded);
int	 cli_iso_upload(struct cli_ctx *c, int argc, char **argv);
int	 cli_iso_list(struct cli_ctx *c, int argc, char **argv);
int	 cli_iso_delete(struct cli_ctx *c, int argc, char **argv);
/* --firmware bios|uefi (may be NULL) into body; -1 after one line. */
int	 cli_vm_firmware(const char *firmware, json_t *body);

/* cli_console.c */
int	 cli_vm_console(struct cli_ctx *c, int argc, char **argv);

#endif
