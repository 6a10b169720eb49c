/* netbpf.bpf.c - the eBPF VLAN datapath (kernels without 802.1Q): two
 * tc programs (clsact ingress, direct action), built with clang -target
 * bpf and embedded in cvirt (netbpf_obj.c); docs/network.md. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "net/netbpf_prog.h"

/* Set by the loader before the program is loaded (frozen .rodata). */
const volatile struct netbpf_cfg cvn_cfg = { 0 };

/*
 * On the uplink's ingress, one filter per VLAN network: a frame whose
 * outer tag is 802.1Q with this VLAN id loses that tag and goes out of
 * the network's trunk veth (whose peer is a port of the network's
 * bridge). Every other frame -- untagged, another id, an 802.1ad outer
 * tag -- is not this filter's: TC_ACT_UNSPEC lets the next filter (the
 * next VLAN network) or the normal path have it. The kernel has already
 * moved the outer tag into skb->vlan_tci; only that one is looked at, so
 * a double-tagged frame goes by its outer id, its inner tag staying
 * inside that VLAN as payload.
 */
SEC("tc")
int
cvn_vlan_in(struct __sk_buff *skb)
{
	if (!skb->vlan_present ||
	    skb->vlan_proto != bpf_htons(ETH_P_8021Q) ||
	    (skb->vlan_tci & 0x0fff) != cvn_cfg.vid)
		return TC_ACT_UNSPEC;
	if (bpf_skb_vlan_pop(skb) != 0)
		return TC_ACT_SHOT;
	return bpf_redirect(cvn_cfg.target, 0);
}

/*
 * On the trunk veth's ingress (frames the bridge sent to its port): every
 * frame gets this VLAN's tag and leaves through the uplink. A frame that
 * already has a tag keeps it inside (802.1Q in 802.1Q): nothing a guest
 * sends leaves on another VLAN id.
 */
SEC("tc")
int
cvn_vlan_out(struct __sk_buff *skb)
{
	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), cvn_cfg.vid) != 0)
		return TC_ACT_SHOT;
	return bpf_redirect(cvn_cfg.target, 0);
}

/* No license section: the programs call no GPL-only helper. */
