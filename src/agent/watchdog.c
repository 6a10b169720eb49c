/* watchdog.c - the keeper's watchdog: a Linux watchdog device (softdog on
 * production hosts), a test stand-in on a unix datagram socket, or none
 * (fence=kill-only). The keeper pets it while it can vouch for its fences;
 * when it stops, the host resets (docs/keeper.md). */
#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/keeper.h"
#include "common/log.h"

#define WD_DEFAULT_DEVICE	"/dev/watchdog"

static int
wd_open_device(struct wd *w, char *err, size_t errsz)
{
	struct stat st;
	int secs = (w->timeout_ms + 999) / 1000;

	if ((w->fd = open(w->path, O_WRONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errsz, "watchdog %s: %s", w->path, strerror(errno));
		return -1;
	}
	if (fstat(w->fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
		snprintf(err, errsz, "watchdog %s: not a character device",
		    w->path);
		goto fail;
	}
	if (ioctl(w->fd, WDIOC_SETTIMEOUT, &secs) < 0) {
		snprintf(err, errsz, "watchdog %s: cannot set a %d s timeout: %s",
		    w->path, secs, strerror(errno));
		goto fail;
	}
	if (ioctl(w->fd, WDIOC_KEEPALIVE, 0) < 0) {
		snprintf(err, errsz, "watchdog %s: cannot pet it: %s", w->path,
		    strerror(errno));
		goto fail;
	}
	w->kind = WD_DEVICE;
	return 0;
fail:
	/* Opened means armed: close with the magic character so that a
	 * device we refuse does not reset the host. */
	(void)!write(w->fd, "V", 1);
	close(w->fd);
	w->fd = -1;
	return -1;
}

static int
wd_open_unix(struct wd *w, char *err, size_t errsz)
{
	struct sockaddr_un sa;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (util_fmt(sa.sun_path, sizeof(sa.sun_path), "%s", w->path) < 0) {
		snprintf(err, errsz, "watchdog unix:%s: path too long", w->path);
		return -1;
	}
	if ((w->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(w->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errsz, "watchdog unix:%s: %s", w->path,
		    strerror(errno));
		if (w->fd >= 0)
			close(w->fd);
		w->fd = -1;
		return -1;
	}
	w->kind = WD_UNIX;
	if (wd_pet(w) < 0) {
		snprintf(err, errsz, "watchdog unix:%s: %s", w->path,
		    strerror(errno));
		wd_close(w);
		return -1;
	}
	return 0;
}

int
wd_open(struct wd *w, const char *spec, int timeout_ms, char *err,
    size_t errsz)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->kind = WD_NONE;
	w->timeout_ms = timeout_ms;
	if (util_fmt(w->spec, sizeof(w->spec), "%s", spec) < 0) {
		snprintf(err, errsz, "watchdog: spec too long");
		return -1;
	}
	if (timeout_ms < 1000 || timeout_ms > 60000) {
		snprintf(err, errsz, "watchdog: timeout %d ms is not in "
		    "1000..60000", timeout_ms);
		return -1;
	}
	if (strcmp(spec, "none") == 0)
		return 0;
	if (strcmp(spec, "auto") == 0) {
		snprintf(w->path, sizeof(w->path), "%s", WD_DEFAULT_DEVICE);
		if (wd_open_device(w, err, errsz) < 0) {
			log_warnx("%s: no watchdog, this host is fence=kill-only "
			    "(the manager restarts its VMs only once it reports "
			    "them gone or an operator confirms it is off)", err);
			w->kind = WD_NONE;
		}
		return 0;
	}
	if (strncmp(spec, "unix:", 5) == 0 && spec[5] == '/') {
		snprintf(w->path, sizeof(w->path), "%s", spec + 5);
		return wd_open_unix(w, err, errsz);
	}
	if (spec[0] == '/') {
		snprintf(w->path, sizeof(w->path), "%s", spec);
		return wd_open_device(w, err, errsz);
	}
	snprintf(err, errsz, "watchdog \"%s\": want auto, none, a device path "
	    "or unix:/PATH", spec);
	return -1;
}

int
wd_pet(struct wd *w)
{
	char msg[32];
	int n;

	switch (w->kind) {
	case WD_DEVICE:
		return ioctl(w->fd, WDIOC_KEEPALIVE, 0) < 0 ? -1 : 0;
	case WD_UNIX:
		n = snprintf(msg, sizeof(msg), "pet %d\n", w->timeout_ms);
		/* Never block the decision loop on a slow stand-in. */
		return send(w->fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) ==
		    n ? 0 : -1;
	default:
		return 0;
	}
}

void
wd_disarm(struct wd *w)
{
	if (w->kind == WD_DEVICE)
		(void)!write(w->fd, "V", 1);
	else if (w->kind == WD_UNIX)
		(void)!send(w->fd, "disarm\n", 7, MSG_DONTWAIT | MSG_NOSIGNAL);
	wd_close(w);
}

void
wd_close(struct wd *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	w->kind = WD_NONE;
}

const char *
wd_fence(const struct wd *w)
{
	return w->kind == WD_NONE ? "kill-only" : "watchdog";
}
