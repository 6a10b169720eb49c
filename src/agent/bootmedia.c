/* bootmedia.c - what a VM boots and configures itself from besides its
 * disks: an installer ISO as a CD-ROM, and a cloud-init NoCloud seed (a small
 * vfat volume labelled CIDATA with meta-data and user-data, rebuilt at every
 * start from the spec so edits apply on the next boot), and UEFI firmware. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "qemu/qemu_cmd.h"

#define SEED_KIB	"2048"

static int bootmedia_disks(json_t *spec, const char *dir,
    struct qemu_vm_spec *q, char *err, size_t errsz);

static const char *
js(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static int
bm_write(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];

	return util_fmt(path, sizeof(path), "%s/%s", dir, name) < 0 ? -1 :
	    util_write_file_atomic(path, text, strlen(text), 0600);
}

/* meta-data and user-data as cloud-init's NoCloud reads them. */
static int
bm_seed_files(const char *tmp, const char *uuid, json_t *ci)
{
	const char *host = js(ci, "hostname");
	json_t *keys = json_object_get(ci, "ssh_keys"), *k;
	char *meta = NULL, *user = NULL;
	size_t i, msz = 1024, usz = 1024;
	int rc = -1;

	json_array_foreach(keys, i, k) {
		msz += strlen(json_string_value(k)) + 16;
		usz += strlen(json_string_value(k)) + 16;
	}
	if ((meta = malloc(msz)) == NULL || (user = malloc(usz)) == NULL)
		goto cleanup;
	snprintf(meta, msz, "instance-id: %s\nlocal-hostname: %s\n%s", uuid, host,
	    json_array_size(keys) ? "public-keys:\n" : "");
	snprintf(user, usz, "#cloud-config\nhostname: %s\n%s", host,
	    json_array_size(keys) ? "ssh_authorized_keys:\n" : "");
	/* Keys were checked by the manager: one line, no quotes. */
	json_array_foreach(keys, i, k) {
		size_t ml = strlen(meta), ul = strlen(user);
		snprintf(meta + ml, msz - ml, "  - \"%s\"\n", json_string_value(k));
		snprintf(user + ul, usz - ul, "  - \"%s\"\n", json_string_value(k));
	}
	if (bm_write(tmp, "meta-data", meta) < 0 ||
	    bm_write(tmp, "user-data", json_is_string(json_object_get(ci,
	    "user_data")) ? js(ci, "user_data") : user) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	free(meta);
	free(user);
	return rc;
}

/* Build DIR/cidata.img (via a temp name); its path goes to out. */
static int
bm_seed_build(const char *dir, const char *uuid, json_t *ci, char *out,
    size_t outsz, char *err, size_t errsz)
{
	char tmp[PATH_MAX], img[PATH_MAX], md[PATH_MAX], ud[PATH_MAX];
	char buf[1024], line[256];
	int rc = -1;

	if (util_fmt(tmp, sizeof(tmp), "%s/.cidata.XXXXXX", dir) < 0 ||
	    mkdtemp(tmp) == NULL) {
		snprintf(err, errsz, "cannot build the cloud-init seed: %s",
		    strerror(errno));
		return -1;
	}
	if (util_fmt(img, sizeof(img), "%s/seed.img", tmp) < 0 ||
	    util_fmt(md, sizeof(md), "%s/meta-data", tmp) < 0 ||
	    util_fmt(ud, sizeof(ud), "%s/user-data", tmp) < 0 ||
	    util_fmt(out, outsz, "%s/cidata.img", dir) < 0 ||
	    bm_seed_files(tmp, uuid, ci) < 0) {
		snprintf(err, errsz, "cannot write the cloud-init seed");
		goto cleanup;
	}
	{
		char *mkfs[] = { "mkfs.vfat", "-C", "-n", "CIDATA", img, SEED_KIB,
		    NULL };
		char *mcopy[] = { "mcopy", "-i", img, md, ud, "::/", NULL };

		if (proc_run(mkfs, buf, sizeof(buf), 30000) != 0 ||
		    proc_run(mcopy, buf, sizeof(buf), 30000) != 0) {
			proc_last_line(buf, line, sizeof(line));
			snprintf(err, errsz, "cannot build the cloud-init seed: %s",
			    line);
			goto cleanup;
		}
	}
	if (rename(img, out) < 0) {
		snprintf(err, errsz, "cannot store the cloud-init seed: %s",
		    strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	util_rm_rf(tmp);
	return rc;
}

/* OVMF code and variable template: $CVIRT_OVMF_CODE/_VARS, else Debian's
 * 4 MiB pair, else the 2 MiB one (code and vars must come as a pair). */
static int
bm_ovmf(char *code, size_t csz, char *vars, size_t vsz)
{
	static const char *const pairs[][2] = {
		{ "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd" },
		{ "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd" },
	};
	const char *ec = getenv("CVIRT_OVMF_CODE"), *ev = getenv("CVIRT_OVMF_VARS");
	size_t i;

	if (ec && ev && ec[0] && ev[0])
		return util_fmt(code, csz, "%s", ec) < 0 ||
		    util_fmt(vars, vsz, "%s", ev) < 0 ? -1 : 0;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (access(pairs[i][0], R_OK) == 0 && access(pairs[i][1], R_OK) == 0)
			return util_fmt(code, csz, "%s", pairs[i][0]) < 0 ||
			    util_fmt(vars, vsz, "%s", pairs[i][1]) < 0 ? -1 : 0;
	return -1;
}

/* UEFI: OVMF's code, and the VM's own NVRAM on its storage (a copy of the
 * template on first start), so its boot entries follow it to any host. */
static int
bm_uefi(const char *dir, struct qemu_vm_spec *q, char *err, size_t errsz)
{
	char tmpl[PATH_MAX];
	char *buf;
	size_t len;

	if (bm_ovmf(q->fw_code, sizeof(q->fw_code), tmpl, sizeof(tmpl)) < 0) {
		snprintf(err, errsz, "UEFI firmware (OVMF) is not installed on "
		    "host %s", agent_cfg.name);
		return -1;
	}
	if (util_fmt(q->fw_vars, sizeof(q->fw_vars), "%s/uefi-vars.fd",
	    dir) < 0)
		return -1;
	if (access(q->fw_vars, F_OK) == 0)
		return 0;
	if ((buf = util_read_file(tmpl, 64 << 20, &len)) == NULL ||
	    util_write_file_atomic(q->fw_vars, buf, len, 0644) < 0) {
		snprintf(err, errsz, "cannot create the UEFI variable store: %s",
		    strerror(errno));
		free(buf);
		return -1;
	}
	free(buf);
	return 0;
}

int
bootmedia_add(json_t *spec, const char *dir, struct qemu_vm_spec *q,
    char *err, size_t errsz)
{
	if (strcmp(js(spec, "firmware"), "uefi") == 0 &&
	    bm_uefi(dir, q, err, errsz) < 0)
		return -1;
	return bootmedia_disks(spec, dir, q, err, errsz);
}

static int
bootmedia_disks(json_t *spec, const char *dir, struct qemu_vm_spec *q,
    char *err, size_t errsz)
{
	const char *cdrom = js(spec, "cdrom");
	json_t *ci = json_object_get(spec, "cloud_init");
	struct qemu_disk *d;
	int fd, set;

	if (cdrom[0]) {
		if (q->ndisks >= QEMU_MAX_DISKS)
			goto full;
		/* Opened beneath isos/ here; QEMU gets the open file in an
		 * fdset and never resolves the path. */
		if ((fd = media_open("cdrom", cdrom, err, errsz)) < 0)
			return -1;
		if ((set = qemu_spec_fdset(q, fd, "cdrom")) < 0) {
			close(fd);
			snprintf(err, errsz, "too many files for QEMU");
			return -1;
		}
		d = &q->disks[q->ndisks++];
		memset(d, 0, sizeof(*d));
		d->fdset = set;
		snprintf(d->path, sizeof(d->path), "%s", cdrom);
		snprintf(d->format, sizeof(d->format), "raw");
		d->cdrom = 1;
		d->readonly = 1;
	}
	if (json_is_object(ci)) {
		if (q->ndisks >= QEMU_MAX_DISKS)
			goto full;
		d = &q->disks[q->ndisks];
		memset(d, 0, sizeof(*d));
		if (bm_seed_build(dir, js(spec, "uuid"), ci, d->path,
		    sizeof(d->path), err, errsz) < 0)
			return -1;
		snprintf(d->format, sizeof(d->format), "raw");
		d->readonly = 1;
		q->ndisks++;
	}
	return 0;
full:
	snprintf(err, errsz, "too many disks");
	return -1;
}
