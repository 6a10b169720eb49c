/* migstream.c - a live migration's stream, authenticated both ways:
 * both QEMUs speak TLS with a one-time pre-shared key the manager makes
 * for this migration alone (tls-creds-psk), and the destination's agent
 * listens itself and hands QEMU only a connection from the source's
 * addresses; any other is closed unread. Once the source connected, or
 * after MIG_ACCEPT_MS, the listener closes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/log.h"
#include "common/pki.h"
#include "qemu/qmp.h"

#define MIG_ACCEPT_MS	60000	/* the source connects within this */
#define MIG_HANDSHAKE_MS 30000	/* ... and QEMU's TLS is up within this */
#define MIG_PSK_LEN	64	/* hex digits */
#define MIG_PSK_USER	"cvirt"
#define MIG_SOURCES_MAX	8
#define MIG_FDNAME	"cvirt-migin"

struct mig_listen {
	char	 uuid[UTIL_UUID_LEN + 1];
	int	 lfd;
	json_t	*source;		/* the addresses a stream may come from */
	char	 dir[PATH_MAX];		/* the key's directory, removed at end */
};

int
migstream_check(json_t *p, int incoming, char *err, size_t errsz)
{
	const char *psk = json_string_value(json_object_get(p, "psk"));
	json_t *src = json_object_get(p, "source"), *v;
	unsigned char a[16];
	size_t i;

	if (psk == NULL || strlen(psk) != MIG_PSK_LEN ||
	    strspn(psk, "0123456789abcdef") != MIG_PSK_LEN) {
		snprintf(err, errsz, "a migration needs its one-time key (psk: "
		    "%d hex digits) from the manager", MIG_PSK_LEN);
		return -1;
	}
	if (!incoming)
		return 0;
	if (!json_is_array(src) || json_array_size(src) == 0 ||
	    json_array_size(src) > MIG_SOURCES_MAX) {
		snprintf(err, errsz, "an incoming migration names its source: "
		    "1 to %d addresses", MIG_SOURCES_MAX);
		return -1;
	}
	json_array_foreach(src, i, v)
		if (!json_is_string(v) || (inet_pton(AF_INET,
		    json_string_value(v), a) != 1 && inet_pton(AF_INET6,
		    json_string_value(v), a) != 1)) {
			snprintf(err, errsz, "source: IP addresses only");
			return -1;
		}
	return 0;
}

/* ffdhe2048 as PEM, made once (pki_dh_params); NULL when it failed. */
static pthread_once_t mig_dh_once = PTHREAD_ONCE_INIT;
static char *mig_dh_pem;

static void
migstream_dh_init(void)
{
	char err[256];

	if ((mig_dh_pem = pki_dh_params(err, sizeof(err))) == NULL)
		log_warnx("migration: %s: each receiving QEMU makes its own",
		    err);
}

/* DATA/migration/UUID-WHICH/keys.psk ("cvirt:KEY", 0600) for QEMU's
 * tls-creds-psk, and beside it dh-params.pem: without that file a
 * receiving QEMU generates 2048-bit parameters inside object-add (~0.8 s
 * of CPU on an idle core here; past the 5 s QMP timeout on a busy host,
 * which failed migrations). The directory into dir. 0 or -1 with err. */
static int
migstream_key(const char *uuid, const char *which, const char *psk,
    char *dir, size_t dirsz, char *err, size_t errsz)
{
	char path[PATH_MAX], dh[PATH_MAX], line[MIG_PSK_LEN + 16];

	if (util_fmt(dir, dirsz, "%s/migration/%s-%s", agent_cfg.data, uuid,
	    which) < 0 || util_fmt(path, sizeof(path), "%s/keys.psk", dir) < 0 ||
	    util_fmt(dh, sizeof(dh), "%s/dh-params.pem", dir) < 0) {
		dir[0] = '\0';		/* never a cut path to remove */
		snprintf(err, errsz, "migration key path too long");
		return -1;
	}
	pthread_once(&mig_dh_once, migstream_dh_init);
	snprintf(line, sizeof(line), "%s:%s\n", MIG_PSK_USER, psk);
	if (util_mkdir_p(dir, 0700) < 0 ||
	    util_write_file_atomic(path, line, strlen(line), 0600) < 0 ||
	    (mig_dh_pem && util_write_file_atomic(dh, mig_dh_pem,
	    strlen(mig_dh_pem), 0600) < 0)) {
		snprintf(err, errsz, "cannot write the migration key: %s",
		    strerror(errno));
		util_rm_rf(dir);
		return -1;
	}
	return 0;
}

/* QEMU's TLS credentials from dir, used by its next migration (server:
 * receiving). 0 or -1 with err. */
static int
migstream_creds(struct qmp *q, const char *dir, int server, char *err,
    size_t errsz)
{
	const char *id = server ? "cvirt-mig-psk-in" : "cvirt-mig-psk-out";
	char e2[128];
	json_t *args;
	int rc;

	/* A retried migration finds the object of the last attempt. */
	args = json_pack("{s:s}", "id", id);
	qmp_command(q, "object-del", args, 5000, NULL, e2, sizeof(e2));
	json_decref(args);
	args = json_pack("{s:s, s:s, s:s, s:s}", "qom-type", "tls-creds-psk",
	    "id", id, "dir", dir, "endpoint", server ? "server" : "client");
	if (!server)
		json_object_set_new(args, "username", json_string(MIG_PSK_USER));
	rc = qmp_command(q, "object-add", args, 5000, NULL, err, errsz);
	json_decref(args);
	if (rc < 0)
		return -1;
	args = json_pack("{s:s}", "tls-creds", id);
	rc = qmp_command(q, "migrate-set-parameters", args, 5000, NULL, err,
	    errsz);
	json_decref(args);
	return rc;
}

int
migstream_source(struct avm *vm, json_t *p, char *err, size_t errsz)
{
	char dir[PATH_MAX];
	int rc;

	if (migstream_key(vm->uuid, "out", json_string_value(json_object_get(p,
	    "psk")), dir, sizeof(dir), err, errsz) < 0)
		return -1;
	/* The client's QEMU reads its key when the object is made. */
	rc = migstream_creds(vm->qmp, dir, 0, err, errsz);
	util_rm_rf(dir);
	if (rc == 0)
		log_info("vm %s: migration stream over TLS with a one-time key",
		    vm->name);
	return rc;
}

/* 1 when the connection's peer is one of the sources; its address into
 * addr. */
static int
migstream_named(int fd, json_t *source, char *addr, size_t addrsz)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	unsigned char a[16], b[16];
	const void *pa;
	json_t *v;
	size_t i, n;
	int fam;

	snprintf(addr, addrsz, "?");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	fam = ss.ss_family;
	if (fam == AF_INET) {
		pa = &((struct sockaddr_in *)&ss)->sin_addr;
		n = 4;
	} else if (fam == AF_INET6) {
		pa = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		n = 16;
	} else {
		return 0;
	}
	memcpy(a, pa, n);
	inet_ntop(fam, pa, addr, (socklen_t)addrsz);
	json_array_foreach(source, i, v)
		if (inet_pton(fam, json_string_value(v), b) == 1 &&
		    memcmp(a, b, n) == 0)
			return 1;
	return 0;
}

/* Hands the source's connection fd to QEMU: migrate-incoming on it. */
static int
migstream_take(struct avm *vm, int fd, char *err, size_t errsz)
{
	json_t *args;
	int rc;

	if (qmp_send_fd(vm->qmp, MIG_FDNAME, fd, 5000, err, errsz) < 0)
		return -1;
	args = json_pack("{s:s}", "uri", "fd:" MIG_FDNAME);
	rc = qmp_command(vm->qmp, "migrate-incoming", args, 10000, NULL, err,
	    errsz);
	json_decref(args);
	return rc;
}

/* Until QEMU's TLS handshake is over (its incoming state leaves setup),
 * for at most MIG_HANDSHAKE_MS: the server reads its key file then. */
static void
migstream_wait_handshake(struct avm *vm)
{
	int64_t end = util_mono_ms() + MIG_HANDSHAKE_MS;
	const char *st;
	char err[128];
	json_t *m;

	while (util_mono_ms() < end) {
		m = NULL;
		if (qmp_command(vm->qmp, "query-migrate", NULL, 5000, &m, err,
		    sizeof(err)) < 0)
			return;
		st = json_string_value(json_object_get(m, "status"));
		if (st != NULL && strcmp(st, "setup") != 0 &&
		    strcmp(st, "none") != 0) {
			json_decref(m);
			return;
		}
		json_decref(m);
		util_sleep_ms(100);
	}
}

/* Accepts until the source's connection (handed to QEMU) or the
 * deadline; strangers are closed unread. */
static void *
migstream_main(void *arg)
{
	struct mig_listen *ml = arg;
	struct pollfd pfd = { .fd = ml->lfd, .events = POLLIN };
	int64_t end = util_mono_ms() + MIG_ACCEPT_MS;
	struct avm *vm;
	char addr[64], err[256];
	int fd, handed = 0;

	while (!handed && util_mono_ms() < end) {
		if ((vm = vmhost_get(ml->uuid)) == NULL)
			break;		/* stopped: the migration is over */
		if (poll(&pfd, 1, 250) != 1 || (fd = accept4(ml->lfd, NULL,
		    NULL, SOCK_CLOEXEC)) < 0) {
			vmhost_put(vm);
			continue;
		}
		if (!migstream_named(fd, ml->source, addr, sizeof(addr))) {
			log_warnx("vm %s: migration stream from %s refused: not "
			    "its source", vm->name, addr);
			close(fd);
		} else if (migstream_take(vm, fd, err, sizeof(err)) < 0) {
			log_warnx("vm %s: migration stream from %s: %s",
			    vm->name, addr, err);
			close(fd);
			handed = -1;
		} else {
			close(fd);	/* QEMU has its own */
			log_info("vm %s: migration stream from %s over TLS "
			    "with a one-time key", vm->name, addr);
			migstream_wait_handshake(vm);
			handed = 1;
		}
		vmhost_put(vm);
	}
	if (handed == 0)
		log_warnx("vm %s: no migration stream from its source",
		    ml->uuid);
	close(ml->lfd);
	util_rm_rf(ml->dir);
	json_decref(ml->source);
	free(ml);
	return NULL;
}

/* A listening socket on our migration address, any port; -1 with err. */
static int
migstream_socket(int *port, char *err, size_t errsz)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	if (inet_pton(AF_INET, agent_cfg.migration_addr, &sa.sin_addr) != 1) {
		snprintf(err, errsz, "migration address %s is not IPv4",
		    agent_cfg.migration_addr);
		return -1;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		snprintf(err, errsz, "cannot listen on %s: %s",
		    agent_cfg.migration_addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int
migstream_listen(struct avm *vm, json_t *p, int *port, char *err,
    size_t errsz)
{
	struct mig_listen *ml;
	pthread_attr_t attr;
	pthread_t th;
	int rc = -1;

	if ((ml = calloc(1, sizeof(*ml))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	ml->lfd = -1;
	snprintf(ml->uuid, sizeof(ml->uuid), "%s", vm->uuid);
	ml->source = json_incref(json_object_get(p, "source"));
	if (migstream_key(vm->uuid, "in", json_string_value(json_object_get(p,
	    "psk")), ml->dir, sizeof(ml->dir), err, errsz) < 0)
		goto fail;
	if (migstream_creds(vm->qmp, ml->dir, 1, err, errsz) < 0 ||
	    (ml->lfd = migstream_socket(port, err, errsz)) < 0)
		goto fail;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, migstream_main, ml);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		return 0;
	snprintf(err, errsz, "cannot start the migration listener");
	rc = -1;
fail:
	if (ml->lfd >= 0)
		close(ml->lfd);
	if (ml->dir[0])
		util_rm_rf(ml->dir);
	json_decref(ml->source);
	free(ml);
	return rc;
}
