/* icmp.h: "packet too big" replies built in place.
 *
 * When the encapsulated packet would exceed the configured MTU, the client is
 * told the largest size that fits: ICMP destination unreachable /
 * fragmentation needed (IPv4, only when DF is set) or ICMPv6 packet too big.
 * The frame is turned around: MACs swapped (VLAN tags kept), a new IP header
 * from the VIP to the client, the ICMP header, and the start of the offending
 * packet as the quote, truncated so the reply is 576 (IPv4) or 1280 (IPv6)
 * bytes of IP. All checksums are computed here.
 *
 * IPv4 with DF clear: an XDP program cannot fragment, and a host that lets
 * the path fragment ignores frag-needed. Such packets are dropped and counted
 * (DROP_TOO_BIG); the remedy is a larger MTU toward the backends or L2 DSR.
 */
#ifndef XDPLB_ICMP_H
#define XDPLB_ICMP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "constants.h"
#include "csum.h"
#include "encap.h"
#include "parsing.h"
#include "pkt.h"

#define ICMP4_REPLY_LEN (XDPLB_IPV4_HDR_LEN + 8 + XDPLB_ICMP4_QUOTE_LEN) /* 576 */
#define ICMP6_REPLY_LEN (XDPLB_IPV6_HDR_LEN + 8 + XDPLB_ICMP6_QUOTE_LEN) /* 1280 */

/* Turn the frame around at L2 after the head grew by `grow` bytes. */
static __always_inline int icmp_turn_l2(struct xdp_md *ctx, const struct pkt *p, int grow, __be16 proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 client_mac[ETH_ALEN], our_mac[ETH_ALEN];
	__be32 tags[2] = {};

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(client_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(our_mac, eth->h_dest, ETH_ALEN);
	if (l2_save_tags(data, data_end, p->vlans, tags))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -grow))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	return l2_write(data, data_end, p->vlans, tags, client_mac, our_mac, proto);
}

/* Shrink the frame to `len` bytes. */
static __always_inline int icmp_truncate(struct xdp_md *ctx, __u32 len)
{
	int delta = (int)len - (int)(ctx->data_end - ctx->data);

	if (delta >= 0)
		return 0;
	return bpf_xdp_adjust_tail(ctx, delta);
}

/* IPv4 fragmentation needed. `f` is the flow (client -> VIP); `mtu` the
 * largest inner packet that fits. Returns 0 (send XDP_TX), -1 when the
 * frame was left untouched (cannot quote: drop), -2 after a partial
 * rewrite. */
static __always_inline int icmp4_too_big(struct xdp_md *ctx, const struct pkt *p, const struct flow_key *f,
					 __u16 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l3_off = pkt_l3_off(p);
	struct icmp_any_hdr *icmp;
	struct iphdr *ip;
	void *quote;
	__u64 sum;

	/* The quote must exist before anything moves. */
	if (data + l3_off + XDPLB_ICMP4_QUOTE_LEN > data_end)
		return -1;
	if (icmp_turn_l2(ctx, p, 28, ETH_P_IP_BE))
		return -2;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = data + l3_off;
	if ((void *)ip + ICMP4_REPLY_LEN > data_end)
		return -2;
	icmp = (void *)(ip + 1);
	quote = icmp + 1;

	*(__u8 *)ip = 0x45;
	ip->tos = 0xc0; /* internetwork control, as hosts send ICMP errors */
	ip->tot_len = bpf_htons(ICMP4_REPLY_LEN);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = XDPLB_TTL;
	ip->protocol = XDPLB_IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = f->dst[0];
	ip->daddr = f->src[0];
	ip->check = ipv4_hdr_csum(ip);

	icmp->type = XDPLB_ICMP_DEST_UNREACH;
	icmp->code = XDPLB_ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->data = bpf_htonl((__u32)mtu); /* unused(16) then next-hop MTU(16) */

	sum = bpf_csum_diff(0, 0, (__be32 *)icmp, sizeof(*icmp), 0);
	sum = bpf_csum_diff(0, 0, quote, 512, csum_reduce32(sum));
	sum = bpf_csum_diff(0, 0, quote + 512, XDPLB_ICMP4_QUOTE_LEN - 512, csum_reduce32(sum));
	icmp->checksum = csum_fold64(sum);

	if (icmp_truncate(ctx, l3_off + ICMP4_REPLY_LEN))
		return -2;
	return 0;
}

/* ICMPv6 packet too big; same contract as icmp4_too_big. */
static __always_inline int icmp6_too_big(struct xdp_md *ctx, const struct pkt *p, const struct flow_key *f,
					 __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l3_off = pkt_l3_off(p);
	struct icmp_any_hdr *icmp;
	struct ipv6hdr *ip6;
	void *quote;
	__u64 sum;

	if (data + l3_off + XDPLB_ICMP6_QUOTE_LEN > data_end)
		return -1;
	if (icmp_turn_l2(ctx, p, 48, ETH_P_IPV6_BE))
		return -2;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip6 = data + l3_off;
	if ((void *)ip6 + ICMP6_REPLY_LEN > data_end)
		return -2;
	icmp = (void *)(ip6 + 1);
	quote = icmp + 1;

	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(ICMP6_REPLY_LEN - XDPLB_IPV6_HDR_LEN);
	ip6->nexthdr = XDPLB_IPPROTO_ICMPV6;
	ip6->hop_limit = XDPLB_TTL;
	__builtin_memcpy(&ip6->saddr, f->dst, 16);
	__builtin_memcpy(&ip6->daddr, f->src, 16);

	icmp->type = XDPLB_ICMPV6_PKT_TOOBIG;
	icmp->code = 0;
	icmp->checksum = 0;
	icmp->data = bpf_htonl(mtu);

	/* pseudo header: addresses, upper-layer length, next header */
	sum = bpf_csum_diff(0, 0, (__be32 *)&ip6->saddr, 32, 0);
	sum += bpf_htonl(ICMP6_REPLY_LEN - XDPLB_IPV6_HDR_LEN);
	sum += bpf_htonl(XDPLB_IPPROTO_ICMPV6);
	sum = bpf_csum_diff(0, 0, (__be32 *)icmp, sizeof(*icmp), csum_reduce32(sum));
	sum = bpf_csum_diff(0, 0, quote, 512, csum_reduce32(sum));
	sum = bpf_csum_diff(0, 0, quote + 512, 512, csum_reduce32(sum));
	sum = bpf_csum_diff(0, 0, quote + 1024, XDPLB_ICMP6_QUOTE_LEN - 1024, csum_reduce32(sum));
	icmp->checksum = csum_fold64(sum);

	if (icmp_truncate(ctx, l3_off + ICMP6_REPLY_LEN))
		return -2;
	return 0;
}

#endif /* XDPLB_ICMP_H */
