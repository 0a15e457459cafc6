/* decap.h: the backend-side decapsulation (xdp_decap.c).
 *
 * On a backend, the load balancer's IPIP packets (outer IPv4 protocol 4/41
 * or outer IPv6 next header 41/4) and GUE packets (UDP to XDPLB_GUE_PORT)
 * are stripped of their outer headers when the inner destination is a VIP
 * this backend serves (decap_vips), and the inner packet goes to the stack
 * with XDP_PASS; the L2 header (MACs, VLAN tags) is kept and the ethertype
 * follows the inner family. A GUE packet that carries a second hop and is
 * of a TCP flow this host does not know (no SYN, no local socket, no valid
 * syncookie) is sent on to the second hop instead (second chance,
 * docs/second-chance.md). Everything else passes untouched. Every packet is
 * counted under one reason in decap_stats (and second chance's outcome as
 * an event).
 */
#ifndef XDPLB_DECAP_H
#define XDPLB_DECAP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "csum.h"
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

/* The GUE header and private data at the cursor (past the outer UDP header):
 * the inner protocol, and the second hop (*hop NULL when none or none left).
 * Returns the inner protocol (4 or 41), or a PARSE_* error for a header that
 * is not ours (another version, a control message, private data we do not
 * know). */
static __always_inline int parse_gue(struct cursor *c, __u8 outer_family, struct gue_hop **hop)
{
	struct gue_hdr *g = c->pos;
	struct gue_hop *h;
	__u32 words;

	*hop = NULL;
	if ((void *)(g + 1) > c->end)
		return PARSE_TRUNCATED;
	if (g->hlen_c & 0xe0) /* version 0 and C clear: a data packet */
		return PARSE_INVALID;
	if (g->proto != XDPLB_IPPROTO_IPIP && g->proto != XDPLB_IPPROTO_IPV6)
		return PARSE_INVALID;
	words = g->hlen_c & 0x1f;
	c->pos = g + 1;
	if (words == 0)
		return g->proto;
	if (words != gue_hop_len(outer_family) / 4)
		return PARSE_INVALID;
	h = c->pos;
	if ((void *)h + 8 > c->end)
		return PARSE_TRUNCATED;
	if (h->magic != XDPLB_GUE_HOP_MAGIC || h->version != XDPLB_GUE_HOP_VERSION || h->family != outer_family)
		return PARSE_INVALID;
	if (outer_family == XDPLB_FAMILY_V6 && (void *)(h + 1) > c->end)
		return PARSE_TRUNCATED;
	c->pos += words * 4;
	if (h->hops_left > 0)
		*hop = h;
	return g->proto;
}

/* sc_local_tcp's answer for a packet second chance does not judge (not TCP,
 * or IPv4 options): delivered here, no event counted. */
#define SC_NOT_JUDGED 0xffffffffu

/* Second chance: whether this host takes a TCP segment of the inner packet
 * (at in, family from the inner protocol) or leaves it to the second hop.
 * Taken: a SYN (a new flow belongs to the slot's owner), a segment of a
 * local socket (established, or a request socket), an ACK with a valid
 * syncookie. Returns the event reason of a segment taken, SC_NOT_JUDGED, or
 * 0 for a flow this host does not know. */
static __always_inline __u32 sc_local_tcp(struct xdp_md *ctx, void *in, void *end, int v6)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	struct tcphdr *th;
	__u32 tuple_len, ip_len;
	__u32 why = 0;

	if (!v6) {
		struct iphdr *ip = in;

		if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != XDPLB_IPPROTO_TCP)
			return SC_NOT_JUDGED; /* options or not TCP */
		th = (void *)(ip + 1);
		if ((void *)(th + 1) > end)
			return SC_NOT_JUDGED;
		t.ipv4.saddr = ip->saddr;
		t.ipv4.daddr = ip->daddr;
		t.ipv4.sport = th->source;
		t.ipv4.dport = th->dest;
		tuple_len = sizeof(t.ipv4);
		ip_len = sizeof(*ip);
	} else {
		struct ipv6hdr *ip6 = in;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != XDPLB_IPPROTO_TCP)
			return SC_NOT_JUDGED; /* extension headers or not TCP */
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > end)
			return SC_NOT_JUDGED;
		__builtin_memcpy(t.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, &ip6->daddr, 16);
		t.ipv6.sport = th->source;
		t.ipv6.dport = th->dest;
		tuple_len = sizeof(t.ipv6);
		ip_len = sizeof(*ip6);
	}
	if (th->syn && !th->ack)
		return XDPLB_EV_SC_SYN;
	sk = bpf_skc_lookup_tcp(ctx, &t, tuple_len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	if (sk->state != BPF_TCP_LISTEN)
		why = XDPLB_EV_SC_LOCAL;
	else if (th->ack && !th->syn && !th->rst && bpf_tcp_check_syncookie(sk, in, ip_len, th, sizeof(*th)) == 0)
		why = XDPLB_EV_SC_COOKIE;
	bpf_sk_release(sk);
	return why;
}

/* Send the packet on to its second hop: the outer destination becomes the
 * hop, no hop is left (the second hop delivers it whatever it knows), and the
 * host's stack forwards it (ip_forward). */
static __always_inline int sc_forward(void *outer, void *end, int outer_v6, struct gue_hop *h)
{
	h->hops_left = 0;
	if (!outer_v6) {
		struct iphdr *ip = outer;

		if ((void *)(ip + 1) > end)
			return -1;
		ip->daddr = h->addr[0];
		ip->check = 0;
		ip->check = ipv4_hdr_csum(ip);
		return 0;
	}
	struct ipv6hdr *ip6 = outer;

	if ((void *)(ip6 + 1) > end)
		return -1;
	__builtin_memcpy(&ip6->daddr, h->addr, 16);
	return 0;
}

static __always_inline int xdplb_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = ctx->data_end - ctx->data;
	struct cursor c = { .pos = data, .end = data_end };
	struct decap_key k = {};
	struct gue_hop *hop = NULL;
	struct ethhdr *eth;
	__u8 mac_dst[ETH_ALEN], mac_src[ETH_ALEN];
	__be32 tags[2] = {};
	__be16 inner_eth;
	__u8 vlans, frag, outer_family;
	void *l3, *inner;
	int proto, gue = 0;
	__u32 why = 0;
	long olen;

	proto = parse_ethhdr(&c, &eth, &vlans);
	if (proto < 0)
		return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
	l3 = c.pos;
	if (proto == ETH_P_IP_BE) {
		struct iphdr *ip;

		outer_family = XDPLB_FAMILY_V4;
		proto = parse_iphdr(&c, &ip, &frag);
	} else if (proto == ETH_P_IPV6_BE) {
		struct ipv6hdr *ip6;

		outer_family = XDPLB_FAMILY_V6;
		proto = parse_ipv6hdr(&c, &ip6, &frag);
	} else {
		return decap_verdict(frame_len, XDPLB_PASS_NOT_IP, XDP_PASS);
	}
	if (proto < 0)
		return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
	if (proto == XDPLB_IPPROTO_UDP) {
		struct udphdr *udp = c.pos;

		if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(XDPLB_GUE_PORT))
			return decap_verdict(frame_len, XDPLB_DECAP_PASS_NOT_TUNNEL, XDP_PASS);
		if (frag)
			return decap_verdict(frame_len, XDPLB_DECAP_PASS_FRAGMENT, XDP_PASS);
		c.pos = udp + 1;
		proto = parse_gue(&c, outer_family, &hop);
		if (proto < 0)
			return decap_verdict(frame_len, XDPLB_DECAP_PASS_NOT_TUNNEL, XDP_PASS);
		gue = 1;
	}
	if (proto != XDPLB_IPPROTO_IPIP && proto != XDPLB_IPPROTO_IPV6)
		return decap_verdict(frame_len, XDPLB_DECAP_PASS_NOT_TUNNEL, XDP_PASS);
	if (frag)
		return decap_verdict(frame_len, XDPLB_DECAP_PASS_FRAGMENT, XDP_PASS);

	inner = c.pos;
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

	if (gue && !hop) {
		/* No second hop (left): delivered here, nothing to judge (no socket lookup). */
		count_in(&decap_stats, XDPLB_EV_SC_NO_HOP, frame_len);
	} else if (gue) {
		/* Second chance: what this host does not know goes to the hop. */
		why = sc_local_tcp(ctx, inner, data_end, proto == XDPLB_IPPROTO_IPV6);
		if (why == 0) {
			if (sc_forward(l3, data_end, outer_family == XDPLB_FAMILY_V6, hop))
				return decap_verdict(frame_len, XDPLB_PASS_MALFORMED, XDP_PASS);
			return decap_verdict(frame_len, XDPLB_DECAP_FWD_SECOND_HOP, XDP_PASS);
		}
		if (why != SC_NOT_JUDGED)
			count_in(&decap_stats, why, frame_len);
	}

	/* Outer headers' length (IPv4 options, IPv6 extension headers, UDP and GUE). */
	olen = inner - l3;
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
