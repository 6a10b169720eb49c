/* proc.h - run a helper program (qemu-img, ip, ...) and capture its output. */
#ifndef CVIRT_PROC_H
#define CVIRT_PROC_H

#include <stddef.h>

/* Run argv (argv[0] searched in PATH) with stdin from /dev/null and
 * stdout+stderr captured into out (truncated, NUL-terminated). Kills it
 * after timeout_ms. Returns the exit status (0..255), or -1 when it could
 * not run or was killed; out then holds a reason. */
int	proc_run(char *const argv[], char *out, size_t outsz, int timeout_ms);
/* Last non-empty line of s, copied into out (for one-line errors). */
void	proc_last_line(const char *s, char *out, size_t outsz);

#endif
