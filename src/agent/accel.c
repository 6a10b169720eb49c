/* accel.c - decide between KVM and TCG: detected, never assumed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "agent/agent_int.h"
#include "common/log.h"

/* 1 when /proc/cpuinfo lists vmx or svm among the CPU flags. */
static int
accel_cpu_has_virt(void)
{
	char line[8192];
	FILE *f;
	int found = 0;

	if ((f = fopen("/proc/cpuinfo", "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		found = strstr(line, " vmx") != NULL || strstr(line, " svm") != NULL;
	}
	fclose(f);
	return found;
}

/* 0 when KVM is usable: /dev/kvm opens, the API version is right and a VM
 * can be created; else -1 with the reason. */
static int
accel_kvm_usable(char *why, size_t whysz)
{
	int fd = -1, vmfd = -1, rc = -1;

	if ((fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) {
		snprintf(why, whysz, "/dev/kvm: %s", strerror(errno));
		goto cleanup;
	}
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(why, whysz, "/dev/kvm: unexpected API version");
		goto cleanup;
	}
	if (!accel_cpu_has_virt()) {
		snprintf(why, whysz, "the CPU reports neither vmx nor svm");
		goto cleanup;
	}
	if ((vmfd = ioctl(fd, KVM_CREATE_VM, 0)) < 0) {
		snprintf(why, whysz, "KVM_CREATE_VM: %s", strerror(errno));
		goto cleanup;
	}
	snprintf(why, whysz, "/dev/kvm works and the CPU has vmx/svm");
	rc = 0;
cleanup:
	if (vmfd >= 0)
		close(vmfd);
	if (fd >= 0)
		close(fd);
	return rc;
}

int
accel_detect(const char *mode, char *out, size_t outsz, char *why,
    size_t whysz)
{
	char reason[160];

	if (mode == NULL || strcmp(mode, "auto") == 0) {
		if (accel_kvm_usable(reason, sizeof(reason)) == 0) {
			snprintf(out, outsz, "kvm");
			snprintf(why, whysz, "detected: %s", reason);
		} else {
			snprintf(out, outsz, "tcg");
			snprintf(why, whysz, "software emulation: %s", reason);
		}
		return 0;
	}
	if (strcmp(mode, "tcg") == 0) {
		snprintf(out, outsz, "tcg");
		snprintf(why, whysz, "forced by --accel tcg");
		return 0;
	}
	if (strcmp(mode, "kvm") == 0) {
		if (accel_kvm_usable(reason, sizeof(reason)) < 0)
			log_warnx("--accel kvm forced although %s", reason);
		snprintf(out, outsz, "kvm");
		snprintf(why, whysz, "forced by --accel kvm");
		return 0;
	}
	errno = EINVAL;
	return -1;
}
