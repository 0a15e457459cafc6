/* parsing.h: the one packet-parsing contract of the xdplb programs.
 *
 * A struct cursor walks the packet. Every parse_* function checks bounds with
 * `if ((void *)(h + 1) > c->end)` immediately before it reads a header, moves
 * the cursor past that header, and returns the next protocol (>= 0) or a
 * negative PARSE_* error. The functions check structure only (versions,
 * header lengths); callers compare the lengths a header claims with what the
 * frame holds, because an ICMP error quotes a packet longer than its quote.
 */
#ifndef XDPLB_PARSING_H
#define XDPLB_PARSING_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include "constants.h"

#define PARSE_TRUNCATED (-1) /* the header does not fit in the frame */
#define PARSE_INVALID (-2)   /* the header fits but its fields are impossible */

struct cursor {
	void *pos;
	void *end;
};

/* 802.1Q / 802.1ad tag as it follows the MAC addresses. */
struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* Generic IPv6 extension header (hop-by-hop, routing, destination options). */
struct ipv6_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen; /* in 8-byte units, not counting the first 8 bytes */
};

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | M */
	__be32 identification;
};

/* packet_frag values: where a datagram fragment sits. */
#define FRAG_NONE 0
#define FRAG_FIRST 1 /* offset 0, more fragments: carries the L4 header */
#define FRAG_LATER 2 /* offset > 0: no L4 header */

/* Ethernet with up to two VLAN tags. Returns the ethertype (network order),
 * *vlans gets the number of tags skipped. */
static __always_inline int parse_ethhdr(struct cursor *c, struct ethhdr **ethp, __u8 *vlans)
{
	struct ethhdr *eth = c->pos;
	struct vlan_hdr *vh;
	__be16 proto;

	if ((void *)(eth + 1) > c->end)
		return PARSE_TRUNCATED;
	*ethp = eth;
	proto = eth->h_proto;
	c->pos = eth + 1;
	*vlans = 0;

#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q_BE && proto != ETH_P_8021AD_BE)
			break;
		vh = c->pos;
		if ((void *)(vh + 1) > c->end)
			return PARSE_TRUNCATED;
		proto = vh->encap_proto;
		c->pos = vh + 1;
		*vlans = i + 1;
	}
	return proto;
}

/* IPv4 header with options. Returns the L4 protocol; *frag gets FRAG_*. */
static __always_inline int parse_iphdr(struct cursor *c, struct iphdr **iphp, __u8 *frag)
{
	struct iphdr *iph = c->pos;
	__u32 hlen;

	if ((void *)(iph + 1) > c->end)
		return PARSE_TRUNCATED;
	if (iph->version != 4 || iph->ihl < 5)
		return PARSE_INVALID;
	hlen = iph->ihl * 4;
	if (c->pos + hlen > c->end)
		return PARSE_TRUNCATED;
	if (bpf_ntohs(iph->tot_len) < hlen)
		return PARSE_INVALID;
	*iphp = iph;
	*frag = FRAG_NONE;
	if (iph->frag_off & IP_FRAG_BITS_BE)
		*frag = (iph->frag_off & IP_OFFSET_BE) ? FRAG_LATER : FRAG_FIRST;
	c->pos += hlen;
	return iph->protocol;
}

/* IPv6 header and the extension headers a load balancer must step over
 * (hop-by-hop, routing, destination options, fragment), at most
 * XDPLB_MAX_IPV6_EXT_HDRS of them: PARSE_INVALID if more follow. Returns the
 * upper protocol; stops at the fragment header of a non-first fragment, whose
 * payload is not a header. *frag gets FRAG_*; an atomic fragment (offset 0,
 * no M flag, RFC 6946) is not a fragment. */
static __always_inline int parse_ipv6hdr(struct cursor *c, struct ipv6hdr **ip6p, __u8 *frag)
{
	struct ipv6hdr *ip6 = c->pos;
	struct ipv6_ext_hdr *ext;
	struct ipv6_frag_hdr *fh;
	__u8 nexthdr;

	if ((void *)(ip6 + 1) > c->end)
		return PARSE_TRUNCATED;
	if (ip6->version != 6)
		return PARSE_INVALID;
	*ip6p = ip6;
	*frag = FRAG_NONE;
	nexthdr = ip6->nexthdr;
	c->pos = ip6 + 1;

#pragma unroll
	for (int i = 0; i < XDPLB_MAX_IPV6_EXT_HDRS; i++) {
		switch (nexthdr) {
		case XDPLB_IPPROTO_HOPOPTS:
		case XDPLB_IPPROTO_ROUTING:
		case XDPLB_IPPROTO_DSTOPTS:
			ext = c->pos;
			if ((void *)(ext + 1) > c->end)
				return PARSE_TRUNCATED;
			nexthdr = ext->nexthdr;
			c->pos += (ext->hdrlen + 1) * 8;
			break;
		case XDPLB_IPPROTO_FRAGMENT:
			fh = c->pos;
			if ((void *)(fh + 1) > c->end)
				return PARSE_TRUNCATED;
			nexthdr = fh->nexthdr;
			c->pos = fh + 1;
			if (fh->frag_off & IP6_FRAG_OFFSET_BE) {
				*frag = FRAG_LATER;
				return nexthdr;
			}
			if (fh->frag_off & IP6_FRAG_MF_BE)
				*frag = FRAG_FIRST;
			break;
		default:
			return nexthdr;
		}
	}
	/* XDPLB_MAX_IPV6_EXT_HDRS headers walked: what follows the last one is
	 * the upper protocol, unless it is one more extension header, which we
	 * do not walk (the caller cannot find L4: malformed for us). */
	switch (nexthdr) {
	case XDPLB_IPPROTO_HOPOPTS:
	case XDPLB_IPPROTO_ROUTING:
	case XDPLB_IPPROTO_DSTOPTS:
	case XDPLB_IPPROTO_FRAGMENT:
		return PARSE_INVALID;
	default:
		return nexthdr;
	}
}

/* The first 4 bytes of a TCP or UDP header: source and destination port as
 * on the wire, loaded as one word (the flow hash's "ports" word). Does not
 * move the cursor: the full header is checked by parse_tcphdr/parse_udphdr. */
static __always_inline int parse_ports(struct cursor *c, __u32 *ports)
{
	__u32 *p = c->pos;

	if ((void *)(p + 1) > c->end)
		return PARSE_TRUNCATED;
	*ports = *p;
	return 0;
}

/* TCP header with options; *hlen gets its length. Returns 0 or an error. */
static __always_inline int parse_tcphdr(struct cursor *c, struct tcphdr **tcpp, __u32 *hlen)
{
	struct tcphdr *tcp = c->pos;
	__u32 len;

	if ((void *)(tcp + 1) > c->end)
		return PARSE_TRUNCATED;
	len = tcp->doff * 4;
	if (len < sizeof(*tcp))
		return PARSE_INVALID;
	if (c->pos + len > c->end)
		return PARSE_TRUNCATED;
	*tcpp = tcp;
	*hlen = len;
	c->pos += len;
	return 0;
}

/* UDP header; *dlen gets the datagram length it claims. Returns 0 or an error. */
static __always_inline int parse_udphdr(struct cursor *c, struct udphdr **udpp, __u32 *dlen)
{
	struct udphdr *udp = c->pos;
	__u32 len;

	if ((void *)(udp + 1) > c->end)
		return PARSE_TRUNCATED;
	len = bpf_ntohs(udp->len);
	if (len < sizeof(*udp))
		return PARSE_INVALID;
	*udpp = udp;
	*dlen = len;
	c->pos = udp + 1;
	return 0;
}

/* ICMP and ICMPv6 headers share their first 8 bytes' layout for the errors
 * we handle (type, code, checksum, 4 bytes of type-specific data). Returns
 * the ICMP type. */
struct icmp_any_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 data; /* v4 frag-needed: unused(2), next-hop MTU(2); v6 too-big: MTU */
};

static __always_inline int parse_icmp_any(struct cursor *c, struct icmp_any_hdr **icmpp)
{
	struct icmp_any_hdr *icmp = c->pos;

	if ((void *)(icmp + 1) > c->end)
		return PARSE_TRUNCATED;
	*icmpp = icmp;
	c->pos = icmp + 1;
	return icmp->type;
}

#endif /* XDPLB_PARSING_H */
