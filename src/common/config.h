/* config.h - daemon config files: /etc/cvirt/ROLE.conf (or --config FILE)
 * holds "key = value" lines with the long flags' names; they are read
 * before the command line, so flags override the file. */
#ifndef CVIRT_CONFIG_H
#define CVIRT_CONFIG_H

#define CONFIG_DIR "/etc/cvirt"

/* Rewrites argc and argv to: argv[0], the file's options, then the command
 * line without --config. The file is --config FILE when given (it must
 * exist), else CONFIG_DIR/ROLE.conf when it exists. The new argv lives
 * until the process exits. -1 with one line logged on a bad file. */
int	config_args(const char *role, int *argc, char ***argv);

#endif
