/* netbpf.c - the eBPF VLAN datapath: load, attach, find and detach the
 * programs of netbpf.bpf.c with libbpf (kernels without 802.1Q). */
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/log.h"
#include "net/net_int.h"

#define NETBPF_MAX_TOUCHED	64

/* The object file, embedded by netbpf_obj.c. */
extern const unsigned char netbpf_obj[], netbpf_obj_end[];

static pthread_once_t netbpf_once = PTHREAD_ONCE_INIT;
static int netbpf_loadable;	/* a program loaded once: eBPF works here */

/* libbpf's own messages (the verifier's log among them) are details:
 * the debug log. Users see one line built from the error code. */
static int
netbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t len;

	(void)level;
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	if (len > 0 && line[len - 1] == '\n')
		line[len - 1] = '\0';
	log_debug("libbpf: %s", line);
	return 0;
}

static void
netbpf_setup(void)
{
	libbpf_set_print(netbpf_print);
}

void
netbpf_cfg_make(struct netbpf_cfg *c, int role, const char *owner, long id,
    int vid, unsigned target, unsigned attached)
{
	memset(c, 0, sizeof(*c));
	c->magic = NETBPF_MAGIC;
	c->role = (__u32)role;
	c->vid = (__u32)vid;
	c->target = target;
	c->attached = attached;
	c->netid = (__u32)id;
	snprintf(c->owner, sizeof(c->owner), "%s", owner);
}

int
netbpf_plan(int exists, const struct netbpf_cfg *have,
    const struct netbpf_cfg *want)
{
	if (!exists)
		return NETBPF_ATTACH;
	if (have == NULL || have->magic != NETBPF_MAGIC ||
	    strncmp(have->owner, want->owner, sizeof(have->owner)) != 0)
		return NETBPF_FOREIGN;
	if (have->role == want->role && have->vid == want->vid &&
	    have->target == want->target && have->attached == want->attached &&
	    have->netid == want->netid)
		return NETBPF_KEEP;
	return NETBPF_REPLACE;
}

/* The configuration an attached program was loaded with: from its
 * frozen .rodata map. 0, or -1 when prog_id is no cvirt VLAN program. */
static int
netbpf_prog_cfg(__u32 prog_id, struct netbpf_cfg *out)
{
	struct bpf_prog_info info;
	struct bpf_map_info mi;
	__u32 ids[8], len, i, key = 0;
	int fd, mfd, rc = -1;

	if ((fd = bpf_prog_get_fd_by_id(prog_id)) < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = 8;
	info.map_ids = (__u64)(uintptr_t)ids;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0 ||
	    info.type != BPF_PROG_TYPE_SCHED_CLS ||
	    strncmp(info.name, "cvn_vlan_", 9) != 0)
		goto cleanup;
	for (i = 0; i < info.nr_map_ids && i < 8 && rc < 0; i++) {
		if ((mfd = bpf_map_get_fd_by_id(ids[i])) < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		len = sizeof(mi);
		if (bpf_obj_get_info_by_fd(mfd, &mi, &len) == 0 &&
		    mi.type == BPF_MAP_TYPE_ARRAY && mi.max_entries == 1 &&
		    mi.value_size == sizeof(*out) &&
		    bpf_map_lookup_elem(mfd, &key, out) == 0 &&
		    out->magic == NETBPF_MAGIC)
			rc = 0;
		close(mfd);
	}
cleanup:
	close(fd);
	return rc;
}

/* Load the program called name with cfg as its .rodata; its fd (the
 * object is closed: the fd keeps the program), or -errno. */
static int
netbpf_load(const char *name, const struct netbpf_cfg *cfg)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "cvn_vlan");
	struct bpf_object *obj;
	struct bpf_program *p, *want = NULL;
	struct bpf_map *m, *ro = NULL;
	int rc, fd;

	pthread_once(&netbpf_once, netbpf_setup);
	obj = bpf_object__open_mem(netbpf_obj, (size_t)(netbpf_obj_end -
	    netbpf_obj), &oo);
	if (obj == NULL)
		return errno ? -errno : -EINVAL;
	bpf_object__for_each_program(p, obj) {
		int me = strcmp(bpf_program__name(p), name) == 0;

		bpf_program__set_autoload(p, me);
		if (me)
			want = p;
	}
	bpf_object__for_each_map(m, obj) {
		const char *mn = bpf_map__name(m);
		size_t n = strlen(mn);

		if (bpf_map__is_internal(m) && n >= 7 &&
		    strcmp(mn + n - 7, ".rodata") == 0)
			ro = m;
	}
	if (want == NULL || ro == NULL) {
		rc = -ENOENT;
		goto cleanup;
	}
	if ((rc = bpf_map__set_initial_value(ro, cfg, sizeof(*cfg))) < 0 ||
	    (rc = bpf_object__load(obj)) < 0)
		goto cleanup;
	if ((fd = bpf_program__fd(want)) < 0 || (rc = dup(fd)) < 0)
		rc = -errno;
cleanup:
	bpf_object__close(obj);
	return rc;
}

int
netbpf_probe(char *err, size_t errsz)
{
	struct netbpf_cfg c;
	int fd;

	if (netbpf_loadable)
		return 0;
	netbpf_cfg_make(&c, NETBPF_IN, "probe", 1, 1, 1, 1);
	if ((fd = netbpf_load("cvn_vlan_in", &c)) < 0)
		return net_errf(err, errsz, "%s", strerror(-fd));
	close(fd);
	netbpf_loadable = 1;
	return 0;
}

/* The filter (handle netid, our prio) on ifindex's ingress: its program
 * id in *prog_id (0: there is none, or no clsact at all). */
static int
netbpf_query(unsigned ifindex, __u32 netid, __u32 *prog_id)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex,
	    .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = netid,
	    .priority = NETBPF_PRIO);
	int rc;

	*prog_id = 0;
	rc = bpf_tc_query(&hook, &q);
	if (rc == 0)
		*prog_id = q.prog_id;
	/* ENOENT: no such filter; EINVAL: no clsact qdisc (nothing here). */
	return rc == 0 || rc == -ENOENT || rc == -EINVAL ? 0 : rc;
}

/* Make the filter on want->attached's ingress run the program name with
 * want, unless it does already; -1 with err. */
static int
netbpf_filter_set(const struct netbpf_cfg *want, const char *name,
    const char *dev, char *err, size_t errsz)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)want->attached,
	    .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = want->netid,
	    .priority = NETBPF_PRIO);
	struct netbpf_cfg have;
	__u32 id;
	int rc, fd = -1, plan, made = 0;

	if ((rc = netbpf_query(want->attached, want->netid, &id)) < 0)
		return net_errf(err, errsz, "cannot read the tc filters of %s: "
		    "%s", dev, strerror(-rc));
	plan = netbpf_plan(id != 0, id && netbpf_prog_cfg(id, &have) == 0 ?
	    &have : NULL, want);
	if (plan == NETBPF_KEEP)
		return 0;
	if (plan == NETBPF_FOREIGN)
		return net_errf(err, errsz, "the tc filter %u (prio %d) on %s's "
		    "ingress is not this agent's", want->netid, NETBPF_PRIO, dev);
	if ((fd = netbpf_load(name, want)) < 0)
		return net_errf(err, errsz, "cannot load the eBPF program %s: %s",
		    name, strerror(-fd));
	rc = bpf_tc_hook_create(&hook);
	if (rc < 0 && rc != -EEXIST) {
		net_errf(err, errsz, "cannot add a clsact qdisc to %s: %s", dev,
		    strerror(-rc));
		goto cleanup;
	}
	made = rc == 0;
	opts.prog_fd = fd;
	opts.flags = plan == NETBPF_REPLACE ? BPF_TC_F_REPLACE : 0;
	if ((rc = bpf_tc_attach(&hook, &opts)) < 0) {
		net_errf(err, errsz, "cannot attach %s to %s: %s", name, dev,
		    strerror(-rc));
		if (made) {
			hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&hook);
		}
		goto cleanup;
	}
	log_info("net: %s %s on %s (vlan %u, handle %u)", plan ==
	    NETBPF_REPLACE ? "replaced" : "attached", name, dev, want->vid,
	    want->netid);
	rc = 0;
cleanup:
	close(fd);
	return rc < 0 ? -1 : 0;
}

int
netbpf_vlan_apply(const char *owner, long id, int vid, const char *uplink,
    const char *trunk, char *err, size_t errsz)
{
	struct netbpf_cfg out, in;
	unsigned up = if_nametoindex(uplink), tr = if_nametoindex(trunk);

	if (up == 0 || tr == 0)
		return net_errf(err, errsz, "%s not found", up == 0 ? uplink :
		    trunk);
	/* Outward first: frames from the uplink come in only once they can
	 * also go back out. */
	netbpf_cfg_make(&out, NETBPF_OUT, owner, id, vid, up, tr);
	netbpf_cfg_make(&in, NETBPF_IN, owner, id, vid, tr, up);
	if (netbpf_filter_set(&out, "cvn_vlan_out", trunk, err, errsz) < 0 ||
	    netbpf_filter_set(&in, "cvn_vlan_in", uplink, err, errsz) < 0)
		return -1;
	return 0;
}

/* Take the clsact qdisc off ifindex when no filter is left on it in
 * either direction (an empty clsact does nothing; one with someone
 * else's filters stays). */
static void
netbpf_clsact_drop(unsigned ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex,
	    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	char dev[IF_NAMESIZE], err[256];
	int in, eg;

	if (if_indextoname(ifindex, dev) == NULL)
		return;
	in = netk_tc_filters(dev, "ingress", err, sizeof(err));
	eg = in == 0 ? netk_tc_filters(dev, "egress", err, sizeof(err)) : -1;
	if (in != 0 || eg != 0)
		return;
	if (bpf_tc_hook_destroy(&hook) == 0)
		log_info("net: removed the empty clsact qdisc of %s", dev);
}

/* Detach the uplink filter of c (found running program prog_id). */
static int
netbpf_detach(const struct netbpf_cfg *c, __u32 prog_id)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)c->attached,
	    .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = c->netid,
	    .priority = NETBPF_PRIO);
	__u32 at;
	int rc;

	/* Only the very filter that runs it: the handle may since have been
	 * given to another program. */
	if (netbpf_query(c->attached, c->netid, &at) < 0 || at != prog_id)
		return -1;
	if ((rc = bpf_tc_detach(&hook, &opts)) < 0) {
		log_warnx("net: cannot detach the VLAN filter %u from ifindex "
		    "%u: %s", c->netid, c->attached, strerror(-rc));
		return -1;
	}
	log_info("net: detached the VLAN filter of network %u (vlan %u) from "
	    "ifindex %u", c->netid, c->vid, c->attached);
	return 0;
}

void
netbpf_reconcile(const char *owner, int (*wanted)(void *arg, long id,
    unsigned ifindex), void *arg)
{
	unsigned touched[NETBPF_MAX_TOUCHED];
	struct netbpf_cfg c;
	__u32 id = 0;
	size_t nt = 0, i;

	while (bpf_prog_get_next_id(id, &id) == 0) {
		if (netbpf_prog_cfg(id, &c) < 0 || c.role != NETBPF_IN ||
		    strncmp(c.owner, owner, sizeof(c.owner)) != 0 ||
		    wanted(arg, (long)c.netid, c.attached) ||
		    netbpf_detach(&c, id) < 0)
			continue;
		for (i = 0; i < nt && touched[i] != c.attached; i++)
			;
		if (i == nt && nt < NETBPF_MAX_TOUCHED)
			touched[nt++] = c.attached;
	}
	for (i = 0; i < nt; i++)
		netbpf_clsact_drop(touched[i]);
}
