/* vmfake.h - a stand-in QEMU and helpers for unit tests of the agent's VM
 * table (test_vmadopt.c, test_vmexit.c). */
#ifndef CVIRT_VMFAKE_H
#define CVIRT_VMFAKE_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

/* Run this test binary again as a fake QEMU of uuid: it only waits for a
 * signal; its argv carries -uuid and a QMP socket path like QEMU's. With
 * open_path it first opens that file (and keeps it open). Returns once it
 * has exec'd. */
pid_t	 vmfake_qemu(const char *uuid, const char *qmp, const char *open_path);
/* Call first in main(): in a fake QEMU it never returns. */
void	 vmfake_main(int argc, char **argv);
/* A fresh agent under a new directory made from tmpl ("/tmp/NAME.XXXXXX",
 * into dir): agent_cfg's data, run, name h1 and one storage domain
 * "local" (DIR/storage), their directories, a new uuid with its VM
 * directory there, and its QMP socket path (qmp). */
void	 vmfake_agent(const char *tmpl, char *dir, size_t dirsz, char *uuid,
	    char *qmp, size_t qmpsz);
/* SIGKILL and reap *pid (when > 0); *pid becomes 0. */
void	 vmfake_reap(pid_t *pid);
/* The agent's record of uuid's QEMU (vmhost_record_save's fields). */
void	 vmfake_record(const char *uuid, pid_t pid, const char *qmp);
/* The VM's state in the table ("" when it is not there) and its pid. */
void	 vmfake_state(const char *uuid, char *out, size_t outsz, pid_t *pid);
/* Fail the test unless the state is want within ms. */
void	 vmfake_wait_state(const char *uuid, const char *want, int ms);
/* The exit queued for uuid (a copy), all exits acknowledged; NULL when
 * none. */
json_t	*vmfake_exit(const char *uuid);
/* The entry of uuid in what the agent reports (vmhost_list), a copy. */
json_t	*vmfake_listed(const char *uuid);

#endif
