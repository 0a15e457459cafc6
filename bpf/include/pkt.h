/* pkt.h: what the load balancer learned about the packet while parsing it,
 * carried from the parser to forwarding, encapsulation and ICMP code. Not
 * shared with user space. */
#ifndef XDPLB_PKT_H
#define XDPLB_PKT_H

#include <linux/types.h>

struct pkt {
	__u32 frame_len; /* bytes of the frame as received (counters) */
	__u32 ports;     /* first 4 bytes of TCP/UDP as on the wire; 0 if absent */
	__u16 l3_len;    /* IP datagram length claimed by the header */
	__u8 vlans;      /* VLAN tags between the MACs and the ethertype (0..2) */
	__u8 family;     /* XDPLB_FAMILY_V4 / _V6 */
	__u8 frag;       /* FRAG_NONE / FRAG_FIRST / FRAG_LATER */
	__u8 tos;        /* IPv4 TOS or IPv6 traffic class, copied outward */
	__u8 df;         /* IPv4 don't-fragment bit was set */
	__u8 icmp_error; /* an ICMP error being forwarded (never answered) */
};

/* Offset of the L3 header: 14 bytes of Ethernet plus 4 per VLAN tag. The
 * mask keeps the verifier's bound tight after the value went through the
 * stack. */
static __always_inline __u32 pkt_l3_off(const struct pkt *p)
{
	return (14 + 4 * (__u32)p->vlans) & 0x1f;
}

#endif /* XDPLB_PKT_H */
