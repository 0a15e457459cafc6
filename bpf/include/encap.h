/* encap.h: frame rewrites that send a packet on to a backend: the L2 header
 * rebuild shared by every rewrite (MACs, VLAN tags kept, ethertype), L2 DSR
 * (MACs only), IPIP encapsulation (IPv4 or IPv6 outer header, chosen by the
 * backend's family; the inner family picks protocol 4 or 41) and GUE (the
 * same outer header, then UDP, the GUE header and the slot's second hop).
 */
#ifndef XDPLB_ENCAP_H
#define XDPLB_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "constants.h"
#include "csum.h"
#include "pkt.h"

/* Copy the (up to two) VLAN tags that follow the MACs, TPID and TCI, before
 * the frame head moves. */
static __always_inline int l2_save_tags(void *data, void *data_end, __u8 vlans, __be32 tags[2])
{
	__be32 *t = data + 12;

	if (vlans == 0)
		return 0;
	if ((void *)(t + 2) > data_end)
		return -1;
	tags[0] = t[0];
	tags[1] = t[1];
	return 0;
}

/* Write an L2 header at the start of the frame: MACs, saved tags, ethertype. */
static __always_inline int l2_write(void *data, void *data_end, __u8 vlans, const __be32 tags[2],
				    const __u8 *dst, const __u8 *src, __be16 proto)
{
	struct ethhdr *eth = data;
	__be32 *t = data + 12;
	__be16 *et;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
	if (vlans == 0) {
		eth->h_proto = proto;
		return 0;
	}
	if ((void *)(t + 2) > data_end)
		return -1;
	t[0] = tags[0];
	if (vlans > 1)
		t[1] = tags[1];
	et = data + 12 + 4 * (vlans > 1 ? 2 : 1);
	if ((void *)(et + 1) > data_end)
		return -1;
	*et = proto;
	return 0;
}

/* L2 DSR: the frame goes unchanged to the backend's own MAC. */
static __always_inline int l2dsr_rewrite(void *data, void *data_end, const struct backend *be,
					 const struct lb_ctl *ctl)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, ctl->src_mac, ETH_ALEN);
	return 0;
}

/* Bytes an IPIP encapsulation toward this backend adds. */
static __always_inline __u32 encap_overhead(const struct backend *be)
{
	return be->family == XDPLB_FAMILY_V6 ? XDPLB_IPV6_HDR_LEN : XDPLB_IPV4_HDR_LEN;
}

/* Bytes of the GUE private data carrying a second hop of this family. */
static __always_inline __u32 gue_hop_len(__u8 family)
{
	return family == XDPLB_FAMILY_V6 ? 20 : 8;
}

/* Bytes a GUE encapsulation toward this backend adds (with a second hop or not). */
static __always_inline __u32 gue_overhead(const struct backend *be, int with_hop)
{
	return encap_overhead(be) + XDPLB_UDP_HDR_LEN + XDPLB_GUE_HDR_LEN + (with_hop ? gue_hop_len(be->family) : 0);
}

/* Grow the head by the outer IP header and `extra` bytes (what follows it
 * before the client's packet), rebuild L2 and write the outer header to the
 * backend with protocol `proto`. The outer source is taken from the control
 * prefixes plus `entropy` (per flow), so that the backend's RSS spreads
 * flows over its queues. Returns the offset of the byte after the outer IP
 * header, or -1 when the head cannot grow (the frame is then untouched), or
 * -2 after a failure that left the frame half-written (not reachable with a
 * verified program). */
static __always_inline int encap_outer(struct xdp_md *ctx, const struct pkt *p, const struct backend *be,
				       const struct lb_ctl *ctl, __u32 entropy, __u32 extra, __u8 proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int outer_v6 = be->family == XDPLB_FAMILY_V6;
	__u32 ip_len = outer_v6 ? XDPLB_IPV6_HDR_LEN : XDPLB_IPV4_HDR_LEN;
	__be32 tags[2] = {};
	__u32 l3_off;

	if (l2_save_tags(data, data_end, p->vlans, tags))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)(ip_len + extra)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l2_write(data, data_end, p->vlans, tags, be->mac, ctl->src_mac,
		     outer_v6 ? ETH_P_IPV6_BE : ETH_P_IP_BE))
		return -2;
	l3_off = pkt_l3_off(p);

	if (!outer_v6) {
		struct iphdr *ip = data + l3_off;

		if ((void *)(ip + 1) > data_end)
			return -2;
		*(__u8 *)ip = 0x45; /* version 4, 5 words */
		ip->tos = p->tos;
		ip->tot_len = bpf_htons(p->l3_len + XDPLB_IPV4_HDR_LEN + extra);
		ip->id = 0;
		ip->frag_off = IP_DF_BE;
		ip->ttl = XDPLB_TTL;
		ip->protocol = proto;
		ip->check = 0;
		ip->saddr = (ctl->v4_src_prefix & ctl->v4_src_mask) | ((__be32)entropy & ~ctl->v4_src_mask);
		ip->daddr = be->addr[0];
		ip->check = ipv4_hdr_csum(ip);
	} else {
		struct ipv6hdr *ip6 = data + l3_off;

		if ((void *)(ip6 + 1) > data_end)
			return -2;
		/* version 6, traffic class, flow label from the flow's entropy */
		*(__be32 *)ip6 = bpf_htonl(0x60000000 | ((__u32)p->tos << 20) | (entropy & 0xfffff));
		ip6->payload_len = bpf_htons(p->l3_len + extra);
		ip6->nexthdr = proto;
		ip6->hop_limit = XDPLB_TTL;
		ip6->saddr.in6_u.u6_addr32[0] = ctl->v6_src_prefix[0];
		ip6->saddr.in6_u.u6_addr32[1] = ctl->v6_src_prefix[1];
		ip6->saddr.in6_u.u6_addr32[2] = ctl->v6_src_prefix[2];
		ip6->saddr.in6_u.u6_addr32[3] = (__be32)entropy;
		ip6->daddr.in6_u.u6_addr32[0] = be->addr[0];
		ip6->daddr.in6_u.u6_addr32[1] = be->addr[1];
		ip6->daddr.in6_u.u6_addr32[2] = be->addr[2];
		ip6->daddr.in6_u.u6_addr32[3] = be->addr[3];
	}
	return (int)(l3_off + ip_len);
}

/* IPIP: the outer header only; the inner family picks protocol 4 or 41.
 * Returns 0, or -1 / -2 as encap_outer. */
static __always_inline int encap_ipip(struct xdp_md *ctx, const struct pkt *p, const struct backend *be,
				      const struct lb_ctl *ctl, __u32 entropy)
{
	int off = encap_outer(ctx, p, be, ctl, entropy, 0, p->family == XDPLB_FAMILY_V4 ? XDPLB_IPPROTO_IPIP : XDPLB_IPPROTO_IPV6);

	return off < 0 ? off : 0;
}

/* GUE (docs/second-chance.md): outer IP, UDP to XDPLB_GUE_PORT from a source
 * port of the flow's entropy (the backend's RSS spreads on it), checksum 0
 * (RFC 6935 for IPv6 tunnels: the inner packet has its own), the GUE header
 * and, with a second hop, xdplb's private data naming it (hops left 1).
 * Returns 0, or -1 / -2 as encap_outer. */
static __always_inline int encap_gue(struct xdp_md *ctx, const struct pkt *p, const struct backend *be,
				     const struct backend *hop, const struct lb_ctl *ctl, __u32 entropy)
{
	__u32 hop_len = hop ? gue_hop_len(be->family) : 0;
	__u32 extra = XDPLB_UDP_HDR_LEN + XDPLB_GUE_HDR_LEN + hop_len;
	struct udphdr *udp;
	struct gue_hdr *gue;
	struct gue_hop *h;
	void *data, *data_end;
	int off;

	off = encap_outer(ctx, p, be, ctl, entropy, extra, XDPLB_IPPROTO_UDP);
	if (off < 0)
		return off;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (off > 256)
		return -2;
	udp = data + off;
	if ((void *)(udp + 1) > data_end)
		return -2;
	udp->source = bpf_htons(0xc000 | (entropy & 0x3fff));
	udp->dest = bpf_htons(XDPLB_GUE_PORT);
	udp->len = bpf_htons(p->l3_len + extra);
	udp->check = 0;
	gue = (void *)(udp + 1);
	if ((void *)(gue + 1) > data_end)
		return -2;
	gue->hlen_c = hop_len / 4;
	gue->proto = p->family == XDPLB_FAMILY_V4 ? XDPLB_IPPROTO_IPIP : XDPLB_IPPROTO_IPV6;
	gue->flags = 0;
	if (!hop)
		return 0;
	h = (void *)(gue + 1);
	if ((void *)h + 8 > data_end)
		return -2;
	h->magic = XDPLB_GUE_HOP_MAGIC;
	h->version = XDPLB_GUE_HOP_VERSION;
	h->hops_left = 1;
	h->family = be->family;
	h->addr[0] = hop->addr[0];
	if (be->family != XDPLB_FAMILY_V6)
		return 0;
	if ((void *)(h + 1) > data_end)
		return -2;
	h->addr[1] = hop->addr[1];
	h->addr[2] = hop->addr[2];
	h->addr[3] = hop->addr[3];
	return 0;
}

#endif /* XDPLB_ENCAP_H */
