/* decap.h: the backend-side decapsulation (xdp_decap.c).
 *
 * On a backend, the load balancer's IPIP packets (outer IPv4 protocol 4/41
 * or outer IPv6 next header 41/4) are stripped of their outer header when the
 * inner destination is a VIP this backend serves (decap_vips), and the inner
 * packet goes to the stack with XDP_PASS; the L2 header (MACs, VLAN tags) is
 * kept and the ethertype follows the inner family. Everything else passes
 * untouched. Every packet is counted under one reason in decap_stats.
 */
#ifndef XDPLB_DECAP_H
#define XDPLB_DECAP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "constants.h"
#include "encap.h"
#include "parsing.h"
#include "reasons.h"
#include "stats.h"

/* VIP addresses served by this backend -> 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_DECAP_MAX_VIPS);
	__type(key, struct decap_key);
	__type(value, __u32);
} decap_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_REASON_MAX);
	__type(key, __u32);
	__type(value, struct lb_counter);
} decap_stats SEC(".maps");

static __always_inline int decap_verdict(__u32 frame_len, __u32 reason, int action)
{
	count_in(&decap_stats, reason, frame_len);
	return action;
}

static __always_inline int xdplb_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = ctx->data_end - ctx->data;
	struct cursor c = { .pos = data, .end = data_end };
	struct decap_key k = {};
	struct ethhdr *eth;
	__u8 mac_dst[ETH_ALEN], mac_src[ETH_ALEN];
	__be32 tags[2] = {};
	__be16 inner_eth;
	__u8 vlans, frag;
	void *l3;
	int proto;
	long olen;

	proto = parse_ethhdr(&c, &eth, &vlans);
	if (proto < 0)
		return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
	l3 = c.pos;
	if (proto == ETH_P_IP_BE) {
		struct iphdr *ip;

		proto = parse_iphdr(&c, &ip, &frag);
	} else if (proto == ETH_P_IPV6_BE) {
		struct ipv6hdr *ip6;

		proto = parse_ipv6hdr(&c, &ip6, &frag);
	} else {
		return decap_verdict(frame_len, XDPLB_PASS_NOT_IP, XDP_PASS);
	}
	if (proto < 0)
		return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
	if (proto != XDPLB_IPPROTO_IPIP && proto != XDPLB_IPPROTO_IPV6)
		return decap_verdict(frame_len, XDPLB_DECAP_PASS_NOT_TUNNEL, XDP_PASS);
	if (frag)
		return decap_verdict(frame_len, XDPLB_DECAP_PASS_FRAGMENT, XDP_PASS);

	if (proto == XDPLB_IPPROTO_IPIP) {
		struct iphdr *in = c.pos;

		if ((void *)(in + 1) > data_end)
			return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
		k.addr[0] = in->daddr;
		k.family = XDPLB_FAMILY_V4;
		inner_eth = ETH_P_IP_BE;
	} else {
		struct ipv6hdr *in = c.pos;

		if ((void *)(in + 1) > data_end)
			return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
		__builtin_memcpy(k.addr, &in->daddr, 16);
		k.family = XDPLB_FAMILY_V6;
		inner_eth = ETH_P_IPV6_BE;
	}
	if (!bpf_map_lookup_elem(&decap_vips, &k))
		return decap_verdict(frame_len, XDPLB_DECAP_PASS_NOT_LOCAL, XDP_PASS);

	/* Outer header length (IPv4 options, IPv6 extension headers). */
	olen = c.pos - l3;
	if (olen < XDPLB_IPV4_HDR_LEN || olen > 512)
		return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
	__builtin_memcpy(mac_dst, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(mac_src, eth->h_source, ETH_ALEN);
	if (l2_save_tags(data, data_end, vlans, tags))
		return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
	if (bpf_xdp_adjust_head(ctx, (int)olen))
		return decap_verdict(frame_len, XDPLB_DROP_DECAP_FAILED, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l2_write(data, data_end, vlans, tags, mac_dst, mac_src, inner_eth))
		return decap_verdict(frame_len, XDPLB_DROP_DECAP_FAILED, XDP_DROP);
	return decap_verdict(frame_len, XDPLB_DECAP_OK, XDP_PASS);
}

#endif /* XDPLB_DECAP_H */
