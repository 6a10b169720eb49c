/* netbpf_prog.h - the configuration the eBPF VLAN programs carry (their
 * .rodata), shared by netbpf.bpf.c (the programs) and netbpf.c (the
 * loader, which also reads it back from attached programs). */
#ifndef CVIRT_NETBPF_PROG_H
#define CVIRT_NETBPF_PROG_H

#include <linux/types.h>

#define NETBPF_MAGIC	0x63766e76u	/* "cvnv": a cvirt VLAN program */
#define NETBPF_IN	1	/* uplink ingress: untag vid, to target */
#define NETBPF_OUT	2	/* trunk veth ingress: tag vid, to target */
#define NETBPF_OWNER_MAX 64

/* The programs read only vid and target; the rest says whose filter it
 * is and where it sits, for the agent that finds it again later. */
struct netbpf_cfg {
	__u32	magic;
	__u32	role;		/* NETBPF_IN or NETBPF_OUT */
	__u32	vid;		/* 1..4094 */
	__u32	target;		/* ifindex frames are redirected to (egress) */
	__u32	attached;	/* ifindex whose ingress runs the program */
	__u32	netid;		/* the network's id (the filter's handle) */
	char	owner[NETBPF_OWNER_MAX];	/* the agent's mark */
};

#endif
